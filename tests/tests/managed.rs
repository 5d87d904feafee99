//! A managed group brought up by the sentinels alone: three storage nodes in managed mode boot
//! read-only; the sentinels' leader assigns the first master (a compare-and-swap in the log),
//! promotes it with a lease, points the others at it, and keeps the lease renewed, so writes
//! keep being acknowledged long after the first lease would have run out.

use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::managed::*;
use vigil_tests::{NodeProc, RawConn, sentinel_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_assign_a_master_and_keep_its_lease() {
    let c = start_managed("1s");
    let master = c.master(1, Duration::from_secs(20)).await;
    assert_eq!(master.epoch, 1);
    // Every sentinel gives the same answer.
    for &p in &c.ports {
        let m = sentinel_client(p, TOKEN)
            .get_master(GetMasterRequest {
                group: "mymaster".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((m.address.as_str(), m.epoch), (master.address.as_str(), 1));
    }
    let mi = c.node_at(&master.address);
    let mport = c.nodes[mi].port;
    set_until_ok(mport, "k", "1", Duration::from_secs(10)).await;
    // The replicas follow it and refuse writes.
    for (i, n) in c.nodes.iter().enumerate() {
        if i == mi {
            continue;
        }
        n.wait_info("master_link_status", |s| s == "up", "replica link");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut r = RawConn::connect(n.port).unwrap();
        while r.call(&["GET", "k"]) != b"$1\r\n1\r\n" {
            assert!(Instant::now() < deadline, "replica never got the write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(r.call(&["SET", "k", "2"]).starts_with(b"-READONLY"));
    }
    // Past the first lease (1 s): still writable, because the leader keeps renewing it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut m = RawConn::connect(mport).unwrap();
    assert_eq!(m.call(&["SET", "k", "3"]), b"+OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_and_rejoins_as_a_replica() {
    let mut c = start_managed("500ms");
    let first = c.master(1, Duration::from_secs(20)).await;
    let old = c.node_at(&first.address);
    let old_port = c.nodes[old].port;
    let old_admin = c.nodes[old].admin_port();
    set_until_ok(old_port, "before", "1", Duration::from_secs(10)).await;
    // Both replicas have it before the kill (async mode: that is what makes it survive).
    for (i, n) in c.nodes.iter().enumerate() {
        if i != old {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut r = RawConn::connect(n.port).unwrap();
            while r.call(&["GET", "before"]) != b"$1\r\n1\r\n" {
                assert!(Instant::now() < deadline, "replica {i} never got the write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let t = Instant::now();
    c.nodes[old].kill9();
    let second = c.master(first.epoch + 1, Duration::from_secs(20)).await;
    assert_ne!(second.address, first.address);
    let new = c.node_at(&second.address);
    set_until_ok(c.nodes[new].port, "after", "2", Duration::from_secs(10)).await;
    eprintln!(
        "master SIGKILL -> first write on the new master: {:?}",
        t.elapsed()
    );
    let mut r = RawConn::connect(c.nodes[new].port).unwrap();
    assert_eq!(r.call(&["GET", "before"]), b"$1\r\n1\r\n");
    // The old master comes back (managed: read-only) and is made a replica of the new one.
    let dir = c.nodes[old].dir.clone();
    let cfg = c.dir.path().join(format!("n{}.toml", old + 1));
    let admin = old_admin.to_string();
    let back = NodeProc::start_on(
        &dir,
        old_port,
        &["--config", cfg.to_str().unwrap(), "--admin-port", &admin],
    );
    back.wait_info(
        "master_link_status",
        |s| s == "up",
        "old master rejoins as a replica",
    );
    // Read again until answered: the sentinels may close normal clients as they repoint it.
    let want = c.nodes[new].port.to_string();
    back.wait_info(
        "master_port",
        |p| p == want,
        "old master follows the new master",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = RawConn::connect(back.port).unwrap();
    while b.call(&["GET", "after"]) != b"$1\r\n2\r\n" {
        assert!(Instant::now() < deadline, "the old master never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Jepsen's pause: the master is SIGSTOPped past `down_after`, the sentinels fail over, the new
/// master takes writes, the old one is resumed. It must acknowledge no write after its lease,
/// and serve no stale read: a client pinned to it (connected before, reconnecting to the same
/// address) never reads a value older than one the new master acknowledged before the read
/// was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_acknowledges_nothing_and_serves_no_stale_read_after_its_lease() {
    let c = start_managed("500ms");
    let first = c.master(1, Duration::from_secs(20)).await;
    let old = c.node_at(&first.address);
    let old_port = c.nodes[old].port;
    let old_addr = format!("127.0.0.1:{old_port}");
    let mut acked = write_register(&old_addr, "k", 0..=0);
    // Clients already connected to the old master, as in the Jepsen scenario.
    let mut stuck = RawConn::connect(old_port).unwrap();
    let pinned = Pinned::start(&old_addr, "k", None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.nodes[old].pause();
    let second = c.master(first.epoch + 1, Duration::from_secs(20)).await;
    let new = c.node_at(&second.address);
    assert_ne!(new, old);
    acked.extend(write_register(&second.address, "k", 1..=20));
    // Resumed long after its lease ran out: the first request of a client connected all along
    // is refused, a write as well as a read. (Or the connection is already closed: a master
    // whose lease lapsed drops its clients so they re-resolve. Either way, no acknowledgement
    // and no data.)
    c.nodes[old].signal(libc::SIGCONT);
    let mut ask = |args: &[&str]| match stuck.send_raw(&RawConn::encode(args)) {
        Ok(()) => stuck.read_reply().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for args in [&["GET", "k"][..], &["SET", "k", "from-the-old-master"]] {
        let reply = ask(args);
        assert!(
            reply.starts_with(b"-READONLY") || reply.is_empty(),
            "the deposed master answered {args:?} with {}",
            String::from_utf8_lossy(&reply)
        );
    }
    // And the sentinels make it a replica of the new master.
    c.nodes[old].wait_info("master_link_status", |s| s == "up", "old master follows");
    assert_eq!(
        c.nodes[old].info_field("master_port").unwrap(),
        c.nodes[new].port.to_string()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut r = RawConn::connect(old_port).unwrap();
    while r.call(&["GET", "k"]) != b"$2\r\n20\r\n" {
        assert!(Instant::now() < deadline, "old master never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = pinned.stop();
    eprintln!("{log}");
    let stale = stale_reads(&log, &acked);
    assert!(stale.is_empty(), "{} stale reads: {stale:?}", stale.len());
    // Never two masters: the old master acknowledged no write sent after the new master's first
    // acknowledgement.
    let first_new = acked[1].1;
    assert!(
        log.writes.iter().all(|(sent, _)| *sent < first_new),
        "the deposed master acknowledged a write sent after the new master took one"
    );
}

/// Roles of the nodes other than `except`, from INFO.
fn roles(c: &Managed, except: usize) -> Vec<String> {
    c.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != except)
        .map(|(_, n)| n.info_field("role").unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sentinel_majority_there_is_no_failover() {
    let mut c = start_managed("300ms");
    let (_, old) = c.master_and_followers().await;
    c.sentinels[1].kill9();
    c.sentinels[2].kill9();
    c.nodes[old].kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Nobody was promoted: both survivors are still replicas (of the dead master).
    assert_eq!(roles(&c, old), vec!["slave", "slave"]);
    // And the lone sentinel does not pretend to know the master.
    let e = sentinel_client(c.ports[0], TOKEN)
        .get_master(GetMasterRequest {
            group: "mymaster".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_stale_replica_left_means_unavailability_not_loss() {
    stale_replica_left(false).await;
}

/// The same with the sentinel leader killed too: the new leader never heard the master's
/// acknowledged offset from its own controller, but every sentinel's probes saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sentinel_leader_still_never_promotes_a_stale_replica() {
    stale_replica_left(true).await;
}

async fn stale_replica_left(kill_leader: bool) {
    // Synchronous mode: every acknowledged write is on at least one replica.
    let c = start_managed_with(
        "300ms",
        "[replication]\nsync_replicas = 1\nsync_timeout = \"2s\"\n",
        "sync_replicas = 1\n",
    );
    let (first, old) = c.master_and_followers().await;
    let replicas: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    // One replica goes down; the other takes the acknowledged writes.
    let (stale, fresh) = (replicas[0], replicas[1]);
    let mut c = c;
    let stale_dir = c.nodes[stale].dir.clone();
    let (stale_port, stale_admin) = (c.nodes[stale].port, c.nodes[stale].admin_port());
    c.nodes[stale].kill9();
    for i in 0..20 {
        set_until_ok(
            c.nodes[old].port,
            &format!("k{i}"),
            "v",
            Duration::from_secs(10),
        )
        .await;
    }
    // Let the leader see the master's acknowledged offset, then lose the fresh replica and the
    // master, and bring the stale one back with its old data: it is all that is left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ask = c.ports[0];
    if kill_leader {
        let leader = leader_of(&c, &[0, 1, 2]).await;
        c.sentinels[leader].kill9();
        ask = c.ports[(leader + 1) % 3];
    }
    c.nodes[fresh].kill9();
    c.nodes[old].kill9();
    let cfg = c.dir.path().join(format!("n{}.toml", stale + 1));
    let admin = stale_admin.to_string();
    let back = NodeProc::start_on(
        &stale_dir,
        stale_port,
        &["--config", cfg.to_str().unwrap(), "--admin-port", &admin],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The leader says why the group has no master.
    let mut statuses = Vec::new();
    // (A killed sentinel does not answer and is skipped.)
    for &p in &c.ports {
        if let Ok(r) = sentinel_client(p, TOKEN)
            .list_groups(vigil_proto::sentinel::ListGroupsRequest {})
            .await
        {
            statuses.push(r.into_inner().groups[0].status.clone());
        }
    }
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("no replica is eligible")),
        "{statuses:?}"
    );
    // It was not promoted: it lacks acknowledged writes. (Reads may be refused too: it holds
    // no lease, so INFO tells what it has.)
    let mut r = RawConn::connect(back.port).unwrap();
    assert!(r.call(&["SET", "x", "1"]).starts_with(b"-READONLY"));
    assert_eq!(
        back.info_field("db0"),
        None,
        "the stale node has no acknowledged write"
    );
    let m = sentinel_client(ask, TOKEN)
        .get_master(GetMasterRequest {
            group: "mymaster".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.epoch, first.epoch, "no failover committed: {m:?}");
}

/// The product's promise: in synchronous mode, SIGKILL of the master under a write load loses no
/// acknowledged write. Writers find the master through a sentinel, write unique keys, and
/// re-resolve on any error; afterwards every acknowledged key is on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_master_sigkill_under_load_loses_no_acknowledged_write() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let mut c = start_managed_with(
        "500ms",
        "[replication]\nsync_replicas = 1\nsync_timeout = \"2s\"\n",
        "sync_replicas = 1\n",
    );
    let (first, old) = c.master_and_followers().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers = spawn_writers(c.ports[0], &stop, &acked);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = acked.lock().unwrap().len();
    c.nodes[old].kill9();
    let second = c.master(first.epoch + 1, Duration::from_secs(20)).await;
    let new = c.node_at(&second.address);
    // Writes continue on the new master; every acknowledged one is there.
    let acked = resume_then_check(before, &stop, &acked, writers, c.nodes[new].port).await;
    eprintln!(
        "{} acknowledged writes, {before} before the kill, none lost",
        acked.len()
    );
}

/// A switchover under load in async mode: the master is fenced, the target catches up with its
/// final offset, and only then is promoted, so no acknowledged write is lost even without
/// synchronous replication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_under_load_loses_nothing_even_in_async_mode() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let c = start_managed("1s");
    let (first, old) = c.master_and_followers().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers = spawn_writers(c.ports[0], &stop, &acked);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = acked.lock().unwrap().len();
    sentinel_client(c.ports[1], TOKEN)
        .failover(vigil_proto::sentinel::FailoverRequest {
            group: "mymaster".into(),
            target: String::new(),
        })
        .await
        .unwrap();
    let second = c.master(first.epoch + 1, Duration::from_secs(20)).await;
    assert_ne!(second.address, first.address);
    let new = c.node_at(&second.address);
    resume_then_check(before, &stop, &acked, writers, c.nodes[new].port).await;
    // The old master is now a replica of the new one.
    c.nodes[old].wait_info("master_link_status", |s| s == "up", "old master follows");
    // An unknown target is refused clearly.
    let e = sentinel_client(c.ports[0], TOKEN)
        .failover(vigil_proto::sentinel::FailoverRequest {
            group: "mymaster".into(),
            target: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
}
