//! Replica reads in a sharded cluster have a staleness bound: a replica serves `READONLY`
//! reads only while its master spoke within `replica_max_read_lag` (default 2 s); past it,
//! `MOVED` sends the read to the master. Real processes, a real SIGSTOP.

use std::time::{Duration, Instant};

use vigil_tests::RawConn;
use vigil_tests::sharded::start_sharded;

/// A READONLY connection's reply to `GET key` on the node at `port`.
fn readonly_get(port: u16, key: &str) -> Option<String> {
    let mut c = RawConn::connect(port).ok()?;
    c.send_raw(&RawConn::encode(&["READONLY"])).ok()?;
    c.read_reply()?;
    c.send_raw(&RawConn::encode(&["GET", key])).ok()?;
    Some(String::from_utf8_lossy(&c.read_reply()?).into_owned())
}

/// Polls `f` every 100 ms until it holds, for up to `within`; how long it took.
fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

#[test]
fn a_replica_that_stops_hearing_its_master_sends_reads_to_it() {
    // A long `down_after`: the master is stopped for less, so no failover.
    let c = start_sharded(1, 2, "8s", "");
    let slots = c.wait_serving(1, &[], Duration::from_secs(60));
    let (master, replica) = (slots[0].master.1, slots[0].replicas[0].1);
    let master_proc = c.groups[0]
        .iter()
        .find(|n| n.port == master)
        .expect("the master is one of the group's nodes");
    // `foo` hashes to slot 12182.
    let mut m = RawConn::connect(master).unwrap();
    assert_eq!(m.call(&["SET", "foo", "bar"]), b"+OK\r\n");
    until(
        Duration::from_secs(10),
        "the replica serves the read",
        || readonly_get(replica, "foo").as_deref() == Some("$3\r\nbar\r\n"),
    );
    master_proc.signal(libc::SIGSTOP);
    let moved = format!("-MOVED 12182 127.0.0.1:{master}\r\n");
    let refused_after = until(
        Duration::from_secs(6),
        "the replica sends reads to its silent master",
        || readonly_get(replica, "foo").as_deref() == Some(moved.as_str()),
    );
    master_proc.signal(libc::SIGCONT);
    // The bound, not less: a keepalive came at most a ping period (1 s) before the stop.
    assert!(
        refused_after >= Duration::from_millis(900),
        "refused after {refused_after:?}"
    );
    until(
        Duration::from_secs(10),
        "the replica serves reads again",
        || readonly_get(replica, "foo").as_deref() == Some("$3\r\nbar\r\n"),
    );
}

/// A shard master whose lease lapses (the sentinels stopped: no renewal comes) keeps its
/// clients' connections, as a Redis Cluster node does, and answers `CLUSTERDOWN`, which
/// cluster clients retry: to reads and writes, and to a client blocked in `BLPOP`, which is
/// woken to be told. Once renewals resume it serves again.
#[test]
fn a_master_whose_lease_lapses_answers_clusterdown_and_keeps_its_clients() {
    let c = start_sharded(1, 2, "2s", "");
    let slots = c.wait_serving(1, &[], Duration::from_secs(60));
    let master = slots[0].master.1;
    let down = "-CLUSTERDOWN The cluster is down\r\n";
    let mut blocked = RawConn::connect(master).unwrap();
    blocked
        .send_raw(&RawConn::encode(&["BLPOP", "queue", "0"]))
        .unwrap();
    let mut client = RawConn::connect(master).unwrap();
    assert_eq!(client.call(&["SET", "foo", "bar"]), b"+OK\r\n");
    for s in &c.sentinels {
        s.signal(libc::SIGSTOP);
    }
    // The lease (shorter than `down_after`) runs out without renewals.
    let got = blocked.read_reply();
    let read = client.call(&["GET", "foo"]);
    for s in &c.sentinels {
        s.signal(libc::SIGCONT);
    }
    assert_eq!(
        got.map(|r| String::from_utf8_lossy(&r).into_owned())
            .as_deref(),
        Some(down),
        "the blocked client is told"
    );
    assert_eq!(String::from_utf8_lossy(&read), down, "a read is refused so");
    // The same connections go on: no reconnect needed once renewals resume.
    until(Duration::from_secs(20), "the master serves again", || {
        client.call(&["GET", "foo"]) == b"$3\r\nbar\r\n"
    });
    assert_eq!(blocked.call(&["PING"]), b"+PONG\r\n");
}
