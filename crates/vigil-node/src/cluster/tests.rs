//! Table tests of the view's validation, the accept rule and routing.

use vigil_proto::node as pb;

use super::route::{Client, Redirect, keys_slot, not_master, route};
use super::{View, ViewError};

/// The id of test node `n`.
pub(crate) fn id(n: u8) -> String {
    format!("{n:040x}")
}

/// Test node `n` at 127.0.0.1:7000+n (with a TLS port 8000+n when `tls`).
pub(crate) fn member(n: u8, tls: bool) -> pb::ClusterNode {
    pb::ClusterNode {
        id: id(n),
        host: "127.0.0.1".into(),
        port: 7000 + n as u32,
        tls_host: String::new(),
        tls_port: if tls { 8000 + n as u32 } else { 0 },
        admin: format!("127.0.0.1:{}", 9000 + n as u32),
    }
}

fn range(start: u32, end: u32) -> pb::SlotRange {
    pb::SlotRange { start, end }
}

/// Three shards: `a` (master 1, replica 2, slots 0-5460), `b` (master 3, replica 4,
/// 5461-10922), `c` (master 5 with a TLS port, 10923-16383); this node is `me` of `my_group`.
pub(crate) fn pb_view(me: u8, my_group: &str) -> pb::ClusterView {
    let shard = |group: &str, m: u8, r: Option<u8>, tls, slots| pb::ClusterShard {
        group: group.into(),
        epoch: 1,
        master: Some(member(m, tls)),
        replicas: r.map(|r| member(r, false)).into_iter().collect(),
        slots,
    };
    pb::ClusterView {
        name: "c1".into(),
        epoch: 3,
        my_id: id(me),
        my_group: my_group.into(),
        shards: vec![
            shard("a", 1, Some(2), false, vec![range(0, 5460)]),
            shard("b", 3, Some(4), false, vec![range(5461, 10922)]),
            shard("c", 5, None, true, vec![range(10923, 16383)]),
        ],
        migrations: vec![],
    }
}

/// A validated view (see [`pb_view`]).
pub(crate) fn view(me: u8, my_group: &str) -> View {
    View::from_proto(&pb_view(me, my_group), "d".into()).unwrap()
}

#[test]
fn validation_refuses_malformed_views() {
    type Edit = fn(&mut pb::ClusterView);
    let cases: &[(&str, Edit)] = &[
        ("name is empty", |v| v.name.clear()),
        ("my_id", |v| v.my_id = "ABC".into()),
        ("my_id", |v| {
            v.my_id = id(1).to_uppercase().replace('0', "A")
        }),
        ("not a shard", |v| v.my_group = "zz".into()),
        ("not within", |v| {
            v.shards[0].slots.push(range(16383, 16384))
        }),
        ("not within", |v| v.shards[0].slots.push(range(9, 8))),
        ("owned by both a and b", |v| {
            v.shards[1].slots.push(range(100, 100))
        }),
        ("appears twice", |v| {
            v.shards[1].replicas.push(member(1, false))
        }),
        ("not 40", |v| v.shards[1].replicas[0].id = "x".into()),
        ("no valid address", |v| v.shards[1].replicas[0].port = 0),
        ("no valid address", |v| v.shards[1].replicas[0].host.clear()),
        ("repeated", |v| v.shards[1].group = "a".into()),
    ];
    for (i, (want, edit)) in cases.iter().enumerate() {
        let mut v = pb_view(1, "a");
        edit(&mut v);
        let e = View::from_proto(&v, String::new()).unwrap_err();
        assert!(matches!(e, ViewError::Invalid(_)), "#{i} {e}");
        assert!(e.to_string().contains(want), "#{i}: {e}");
    }
    // A replica is a member of its group; a shard may have no master nor slots.
    let mut v = pb_view(2, "a");
    v.shards[2].master = None;
    v.shards[2].slots.clear();
    let v = View::from_proto(&v, String::new()).unwrap();
    assert!(!v.i_am_master());
    assert_eq!(v.slot_counts(), (10923, 10923));
    assert_eq!(v.runs(), [(0, 5460, 0), (5461, 10922, 1)]);
}

#[test]
fn accept_rule_refuses_older_and_other_clusters() {
    let cur = view(1, "a");
    type Edit = fn(&mut pb::ClusterView);
    // (edit, accepted, refused as older)
    let cases: &[(Edit, bool, bool)] = &[
        (|_| {}, true, false),
        (|v| v.epoch = 4, true, false),
        (|v| v.epoch = 2, false, true),
        (|v| v.shards[1].epoch = 0, false, true),
        (|v| v.shards[1].epoch = 2, true, false),
        // A newer map may lower a group's epoch (the group was recreated).
        (
            |v| {
                v.epoch = 4;
                v.shards[1].epoch = 0
            },
            true,
            false,
        ),
        // A group new to the map has nothing to compare with.
        (|v| v.shards[2].group = "d".into(), true, false),
        (|v| v.name = "other".into(), false, false),
    ];
    for (i, (edit, ok, older)) in cases.iter().enumerate() {
        let mut v = pb_view(1, "a");
        edit(&mut v);
        let new = View::from_proto(&v, String::new()).unwrap();
        let r = new.check_replaces(Some(&cur));
        assert_eq!(r.is_ok(), *ok, "#{i} {r:?}");
        assert_eq!(matches!(r, Err(ViewError::Older(_))), *older, "#{i} {r:?}");
        assert!(new.check_replaces(None).is_ok(), "#{i}");
    }
}

#[test]
fn keys_share_one_slot_or_crossslot() {
    let k = |ks: &[&'static str]| keys_slot(ks.iter().map(|k| k.as_bytes()));
    assert_eq!(k(&[]), Ok(None));
    assert_eq!(k(&["foo"]), Ok(Some(12182)));
    assert_eq!(
        k(&["{user1000}.a", "user1000", "{user1000}"]),
        Ok(Some(3443))
    );
    assert_eq!(k(&["foo", "hello"]), Err(Redirect::CrossSlot));
}

#[test]
fn routing_follows_redis() {
    let (plain, ro, tls) = (
        Client::default(),
        Client {
            readonly: true,
            tls: false,
        },
        Client {
            readonly: false,
            tls: true,
        },
    );
    let moved = |slot, port| {
        Err(Redirect::Moved {
            slot,
            host: "127.0.0.1".into(),
            port,
        })
    };
    let mut headless = pb_view(4, "b");
    headless.shards[1].master = None;
    headless.shards[0].slots = vec![range(0, 99)];
    let headless = View::from_proto(&headless, String::new()).unwrap();
    let (m1, r2, r4) = (view(1, "a"), view(2, "a"), view(4, "b"));
    // Node 6 of shard a, not listed as serving (syncing, or unassigned after a restart).
    let unlisted = view(6, "a");
    // (view, slot, write, client, expected)
    type Case<'a> = (&'a View, u16, bool, Client, Result<(), Redirect>);
    let cases: Vec<Case> = vec![
        // The master serves its slots, reads and writes, whatever the client's mode.
        (&m1, 0, true, plain, Ok(())),
        (&m1, 5460, false, ro, Ok(())),
        // Other shards' slots: MOVED to their master, on the port matching the connection.
        (&m1, 5461, false, plain, moved(5461, 7003)),
        (&m1, 16383, true, plain, moved(16383, 7005)),
        (&m1, 16383, true, tls, moved(16383, 8005)),
        // A shard master without a TLS port: the plain one even for a TLS client.
        (&m1, 6000, false, tls, moved(6000, 7003)),
        // A replica: reads after READONLY only; else MOVED to its master.
        (&r2, 10, false, ro, Ok(())),
        (&r2, 10, true, ro, moved(10, 7001)),
        (&r2, 10, false, plain, moved(10, 7001)),
        // A replica the sentinels do not list as serving redirects its reads too.
        (&unlisted, 10, false, ro, moved(10, 7001)),
        (&unlisted, 6000, false, ro, moved(6000, 7003)),
        // READONLY does not make another shard's slot local.
        (&r2, 6000, false, ro, moved(6000, 7003)),
        (&r4, 6000, false, ro, Ok(())),
        // No owner, or an owner without a master.
        (&headless, 200, false, plain, Err(Redirect::Unserved)),
        (&headless, 6000, false, ro, Err(Redirect::Unserved)),
        (&headless, 50, false, plain, moved(50, 7001)),
    ];
    for (i, (v, slot, write, client, want)) in cases.into_iter().enumerate() {
        assert_eq!(route(v, slot, write, client, || true), want, "#{i}");
    }
    // A listed replica that has not heard from its master within `replica_max_read_lag`
    // sends its reads to the master; a master never asks.
    assert_eq!(route(&r2, 10, false, ro, || false), moved(10, 7001));
    assert_eq!(route(&m1, 10, false, ro, || panic!("asked")), Ok(()));
    // The view's master while the node is not master: MOVED to whom it follows, named by
    // its data or TLS address, at the client's kind of port; CLUSTERDOWN while it follows none.
    let nm = |follows, client| not_master(&m1, 7, follows, client);
    assert_eq!(
        nm(Some(("127.0.0.1", 7002)), plain),
        moved(7, 7002).unwrap_err()
    );
    assert_eq!(
        nm(Some(("127.0.0.1", 8005)), plain),
        moved(7, 7005).unwrap_err()
    );
    assert_eq!(
        nm(Some(("127.0.0.1", 7005)), tls),
        moved(7, 8005).unwrap_err()
    );
    assert_eq!(
        nm(Some(("10.0.0.9", 7777)), plain),
        Redirect::Moved {
            slot: 7,
            host: "10.0.0.9".into(),
            port: 7777
        }
    );
    assert_eq!(nm(None, plain), Redirect::Unserved);
    let rendered = [
        (moved(3, 7003).unwrap_err(), "MOVED 3 127.0.0.1:7003"),
        (Redirect::Down, "CLUSTERDOWN The cluster is down"),
        (
            Redirect::CrossSlot,
            "CROSSSLOT Keys in request don't hash to the same slot",
        ),
        (Redirect::Unserved, "CLUSTERDOWN Hash slot not served"),
    ];
    for (r, want) in rendered {
        assert_eq!(r.to_string(), want);
    }
}

#[test]
fn views_round_trip_through_the_file() {
    use prost::Message;
    let d = tempfile::tempdir().unwrap();
    assert!(super::file::load(d.path()).unwrap().is_none());
    let v = pb_view(1, "a");
    let bytes = v.encode_to_vec();
    super::file::save(d.path(), &bytes).unwrap();
    let loaded = super::file::load(d.path()).unwrap().unwrap();
    assert_eq!(loaded, View::from_proto(&v, super::digest(&bytes)).unwrap());
    assert_eq!(loaded.digest.len(), 40);
    std::fs::write(d.path().join(super::file::VIEW_FILE), b"\xff\xff\xff").unwrap();
    let e = super::file::load(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("cluster-view.pb") && e.contains("corrupt"),
        "{e}"
    );
}

#[test]
fn asking_lasts_one_command_or_one_transaction() {
    let mut s = crate::session::ConnState::default();
    // ASKING itself, then the command it covers.
    (s.asking, s.asking_just_set) = (true, true);
    s.command_done();
    assert!(s.asking);
    s.command_done();
    assert!(!s.asking);
    // Inside MULTI it lasts until EXEC ends the transaction.
    s.multi = Some(Vec::new());
    (s.asking, s.asking_just_set) = (true, true);
    s.command_done();
    s.command_done();
    assert!(s.asking);
    s.multi = None;
    s.command_done();
    assert!(!s.asking);
}

/// A node whose group left keeps the map to send clients on, serves no slot itself (one the
/// last view still gave its shard is unserved), and is marked as left.
#[test]
fn a_left_view_serves_no_slot_of_its_own() {
    let v = view(1, "a");
    let left = v.left();
    assert!(left.is_left() && !v.is_left());
    assert!(left.migration.is_none());
    assert_eq!(left.owner_of(0), None);
    assert_eq!(left.owner_of(5460), None);
    let moved = |v: &View, s| v.owner_of(s).map(|(i, sh)| (i, sh.group.clone()));
    assert_eq!(moved(&left, 5461), moved(&v, 5461));
    assert_eq!(moved(&left, 16383), Some((2, "c".into())));
    assert_eq!(
        route(&left, 0, true, Client::default(), || true),
        Err(Redirect::Unserved)
    );
}

/// An import's commands go in batches of about `APPLY_BYTES`, at least one command each (a
/// single large value is one batch).
#[test]
fn imports_apply_in_bounded_batches() {
    use super::migrate::{APPLY_BYTES, apply_batch};
    use bytes::Bytes;
    let cmd = |n: usize| vec![Bytes::from_static(b"RESTORE"), Bytes::from(vec![b'x'; n])];
    let small: Vec<_> = (0..10_000).map(|_| cmd(100)).collect();
    let n = apply_batch(&small);
    assert!(n > 1 && n < small.len(), "{n}");
    let bytes: usize = small[..n].iter().flatten().map(|a| a.len()).sum();
    assert!((APPLY_BYTES..APPLY_BYTES + 200).contains(&bytes), "{bytes}");
    assert_eq!(apply_batch(&[cmd(10 << 20), cmd(1)]), 1);
    assert_eq!(apply_batch(&small[..3]), 3);
}
