//! The stream structure: appends, ranges, node splits, trimming, hostile buffers.

use super::*;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId { ms, seq }
}

fn fill(n: u64) -> Stream {
    fill_in(n, NodeLimits::default())
}

/// `n` small entries in nodes of `limits`.
fn fill_in(n: u64, limits: NodeLimits) -> Stream {
    let mut s = Stream::new();
    for i in 1..=n {
        s.append(id(i, 0), &[b"f".as_ref(), b"v"], limits);
    }
    s
}

#[test]
fn append_range_both_ways() {
    let mut s = Stream::new();
    s.append(
        id(1, 1),
        &[b"a".as_ref(), b"1", b"b", b"2"],
        NodeLimits::default(),
    );
    s.append(
        id(1, 2),
        &[b"a".as_ref(), b"3", b"b", b"4"],
        NodeLimits::default(),
    );
    s.append(id(2, 0), &[b"x".as_ref(), b"y"], NodeLimits::default());
    let all = s.range(StreamId::MIN, StreamId::MAX, false, 0);
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[1].1,
        vec![(&b"a"[..], &b"3"[..]), (&b"b"[..], &b"4"[..])]
    );
    assert_eq!(all[2].1, vec![(&b"x"[..], &b"y"[..])]);
    let rev = s.range(id(1, 2), StreamId::MAX, true, 0);
    assert_eq!(
        rev.iter().map(|e| e.0).collect::<Vec<_>>(),
        [id(2, 0), id(1, 2)]
    );
    assert_eq!(
        s.range(StreamId::MIN, StreamId::MAX, true, 1)[0].0,
        id(2, 0)
    );
}

#[test]
fn nodes_split_at_one_hundred_entries_counting_deleted() {
    let mut s = fill(100);
    assert_eq!(s.nodes(), 1);
    assert!(s.delete(id(50, 0)));
    s.append(id(101, 0), &[b"f".as_ref(), b"v"], NodeLimits::default());
    assert_eq!(s.nodes(), 2);
    assert_eq!(s.length, 100);
    assert!(!s.delete(id(50, 0)));
}

#[test]
fn nodes_follow_the_configured_limits() {
    let ten = NodeLimits {
        bytes: 4096,
        entries: 10,
    };
    assert_eq!(fill_in(100, ten).nodes(), 10);
    // No entry limit: the byte limit alone splits nodes.
    let bytes_only = NodeLimits {
        bytes: 200,
        entries: 0,
    };
    let s = fill_in(100, bytes_only);
    assert!(s.nodes() > 1 && s.nodes() < 100, "{} nodes", s.nodes());
    assert_eq!(ten.default_trim_limit(), 1_000);
    assert_eq!(bytes_only.default_trim_limit(), 10_000);
    let huge = NodeLimits {
        bytes: 0,
        entries: 1 << 40,
    };
    assert_eq!(huge.default_trim_limit(), 1_000_000);
}

#[test]
fn approximate_trim_removes_whole_nodes_only() {
    let mut s = fill(250);
    assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 100);
    assert_eq!(s.length, 150);
    assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
    assert_eq!(s.first_id, id(131, 0));
    assert_eq!(s.trim(Trim::MinId(id(205, 0)), false, 0), 74);
    assert_eq!(s.edge(false), Some(id(205, 0)));
    assert_eq!(s.edge(true), Some(id(250, 0)));
}

#[test]
fn emptied_node_is_freed() {
    let mut s = fill(3);
    for i in 1..=3 {
        assert!(s.delete(id(i, 0)));
    }
    assert_eq!(s.nodes(), 0);
    assert_eq!(s.length, 0);
}

#[test]
fn garbage_buffers_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..2000 {
        let mut buf = Vec::new();
        for _ in 0..(n % 64) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push(seed as u8);
        }
        let c = Chunk::from_parts(buf, 3, 0, 10, StreamId::MAX);
        let _ = c.validate(StreamId { ms: seed, seq: 1 });
    }
}

#[test]
fn validate_accepts_own_chunks_and_rejects_garbage() {
    let s = fill(10);
    for (m, c) in s.chunks() {
        c.validate(*m).unwrap();
        let (buf, live, del, lp, last) = c.parts();
        let mut bad = buf.to_vec();
        bad.truncate(bad.len() - 1);
        assert!(
            Chunk::from_parts(bad, live, del, lp, last)
                .validate(*m)
                .is_err()
        );
    }
}
