use super::*;
use crate::db::stream::StreamId;
use crate::db::{Stream, boxed};
use crate::persist::rdb::{PayloadError, dump, undump};

const LIMITS: Limits = Limits {
    entries: 128,
    value: 64,
};

fn samples() -> Vec<Value> {
    let mut out = vec![
        Value::Str(boxed(b"12")),
        Value::Str(boxed(b"hello")),
        Value::Str(vec![b'a'; 500].into()),
    ];
    for n in [3usize, 2000] {
        let l: List = (0..n).map(|i| boxed(format!("e{i}").as_bytes())).collect();
        out.push(Value::List(Box::new(l)));
        let t = Thresholds::default();
        let mut h = Hash::default();
        let mut s = Set::default();
        let mut si = Set::default();
        let mut z = ZSet::default();
        for i in 0..n {
            h.insert(
                format!("f{i}").as_bytes(),
                format!("{i}").as_bytes(),
                t.hash(),
            );
            s.insert(format!("m{i}").as_bytes(), t.set_max());
            si.insert(format!("{}", i as i64 * 7 - 50).as_bytes(), t.set_max());
            z.insert(format!("z{i}").as_bytes(), i as f64 / 3.0, LIMITS);
        }
        z.insert(b"inf", f64::INFINITY, LIMITS);
        out.push(Value::Hash(h));
        out.push(Value::Set(s));
        out.push(Value::Set(si));
        out.push(Value::ZSet(z));
    }
    let mut st = Stream::new();
    for i in 1..=250u64 {
        let f = if i % 3 == 0 { "other" } else { "f" };
        st.append(
            StreamId { ms: i, seq: 0 },
            &[f.as_bytes(), format!("v{i}").as_bytes()],
            crate::db::stream::NodeLimits::default(),
        );
    }
    st.delete(StreamId { ms: 5, seq: 0 });
    st.length = 249;
    let mut g = crate::db::stream::Group::new(StreamId { ms: 10, seq: 0 }, 10);
    g.create_consumer(b"alice", 77);
    g.assign(StreamId { ms: 7, seq: 0 }, b"alice", 99, Some(2));
    st.groups.insert(boxed(b"g"), g);
    out.push(Value::Stream(Box::new(st)));
    out
}

/// Equal values; streams by entries, counters and groups (a node's deleted count and size are
/// not carried: the writer leaves deleted entries out).
fn same_content(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Stream(x), Value::Stream(y)) => {
            let all = |s: &Stream| {
                s.range(StreamId::MIN, StreamId::MAX, false, 0)
                    .into_iter()
                    .map(|(id, p)| {
                        (
                            id,
                            p.into_iter()
                                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            all(x) == all(y)
                && x.length == y.length
                && x.last_id == y.last_id
                && x.first_id == y.first_id
                && x.max_deleted == y.max_deleted
                && x.entries_added == y.entries_added
                && x.groups == y.groups
        }
        _ => a == b,
    }
}

#[test]
fn every_value_round_trips_through_a_payload() {
    let t = Thresholds::default();
    for (i, v) in samples().into_iter().enumerate() {
        let p = dump(&v, &t);
        let back = undump(&p, &t).unwrap_or_else(|e| panic!("#{i}: {e:?}"));
        assert!(same_content(&back, &v), "#{i}");
        assert_eq!(dump(&back, &t), p, "#{i} re-encoding differs");
    }
}

#[test]
fn payloads_are_checked() {
    let t = Thresholds::default();
    let p = dump(&Value::Str(boxed(b"x")), &t);
    let mut bad = p.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(undump(&bad, &t), Err(PayloadError::Footer)));
    let mut newer = p[..n - 10].to_vec();
    newer.extend_from_slice(&11u16.to_le_bytes());
    let crc = crate::persist::rdb::crc64::crc64(&newer);
    newer.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(undump(&newer, &t), Err(PayloadError::Footer)));
    assert!(matches!(undump(b"short", &t), Err(PayloadError::Footer)));
}

/// Random corruptions of valid payloads (with a fixed checksum) never panic.
#[test]
fn corrupt_values_never_panic() {
    let t = Thresholds::default();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for v in samples() {
        let mut body = Vec::new();
        let ty = encode(&v, &t, &mut body);
        for _ in 0..300 {
            let mut b = body.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
            }
            if rnd() % 5 == 0 {
                b.truncate((rnd() as usize) % b.len());
            }
            let _ = decode(ty, &mut Reader::from_slice(&b), &t);
        }
    }
}
