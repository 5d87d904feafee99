//! Replication end to end: real `vigil node` processes, real signals. Datasets must match
//! after random workloads (every type, expiries, transactions, random commands made
//! deterministic); link cuts resynchronise partially, an exceeded backlog fully, a restarted
//! replica partially from its own log; synchronous writes never get a false OK.

use std::time::{Duration, Instant};

use vigil_tests::{NodeProc, RawConn, dump_dataset, write_config};

const DBS: usize = 3;

fn offset(n: &NodeProc) -> u64 {
    n.info_field("master_repl_offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

fn stat(n: &NodeProc, field: &str) -> u64 {
    n.info_field(field)
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

/// Waits until `replica` has applied everything `master` has streamed.
fn caught_up(master: &NodeProc, replica: &NodeProc) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (m, r) = (offset(master), offset(replica));
        if m == r && replica.info_field("master_link_status").as_deref() == Some("up") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica at {r}, master at {m} after 20s; replica log:\n{}",
            replica.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_same(master: &NodeProc, replica: &NodeProc, what: &str) {
    // The workload sets keys that live 100-150 ms: let them expire first, or one dump may see a
    // key the other (taken a moment later) no longer shows. Both hide expired keys the same way.
    std::thread::sleep(Duration::from_millis(400));
    caught_up(master, replica);
    let m = dump_dataset(&mut master.client(), DBS);
    let r = dump_dataset(&mut replica.client(), DBS);
    assert!(!m.is_empty(), "{what}: empty dataset proves nothing");
    if m != r {
        let only_m: Vec<_> = m.iter().filter(|x| !r.contains(x)).take(5).collect();
        let only_r: Vec<_> = r.iter().filter(|x| !m.contains(x)).take(5).collect();
        panic!(
            "{what}: datasets differ ({} vs {} keys)\nmaster only: {only_m:#?}\nreplica only: {only_r:#?}",
            m.len(),
            r.len()
        );
    }
}

fn pick<'a>(items: &[&'a str]) -> &'a str {
    items[rand::random_range(0..items.len())]
}

/// One random command over a small key space, so types collide and every family is hit.
fn random_command() -> Vec<String> {
    let k = format!("k{}", rand::random_range(0..40u32));
    let k2 = format!("k{}", rand::random_range(0..40u32));
    let v = format!("v{}", rand::random_range(0..1000u32));
    let n = rand::random_range(0..5u32).to_string();
    let s = |x: &[&str]| x.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match rand::random_range(0..34u32) {
        0 => s(&["SET", &k, &v]),
        1 => s(&["SET", &k, &v, "EX", "1000"]),
        2 => s(&["SET", &k, &v, "PX", "150"]),
        3 => s(&["INCR", &k]),
        4 => s(&["INCRBYFLOAT", &k, "1.5"]),
        5 => s(&["APPEND", &k, &v]),
        6 => s(&["DEL", &k]),
        7 => s(&["EXPIRE", &k, "500"]),
        8 => s(&["PEXPIRE", &k, "100"]),
        9 => s(&["PERSIST", &k]),
        10 => s(&["LPUSH", &k, &v, &n]),
        11 => s(&["RPUSH", &k, &v]),
        12 => s(&["LPOP", &k]),
        13 => s(&["LTRIM", &k, "0", "3"]),
        14 => s(&["HSET", &k, &n, &v]),
        15 => s(&["HDEL", &k, &n]),
        16 => s(&["HINCRBY", &k, &n, "3"]),
        17 => s(&["SADD", &k, &v, &n]),
        18 => s(&["SPOP", &k]),
        19 => s(&["SREM", &k, &n]),
        20 => s(&["SMOVE", &k, &k2, &n]),
        21 => s(&["ZADD", &k, &n, &v]),
        22 => s(&["ZINCRBY", &k, "2.5", &v]),
        23 => s(&["ZPOPMIN", &k]),
        24 => s(&["SELECT", pick(&["0", "1", "2"])]),
        25 => s(&["RENAME", &k, &k2]),
        26 => s(&["GETDEL", &k]),
        27 => s(&["GETEX", &k, "EX", "900"]),
        28 => s(&["SRANDMEMBER", &k, "-2"]),
        29 => s(&["LMOVE", &k, &k2, "LEFT", "RIGHT"]),
        30 => s(&["HSETNX", &k, &v, &n]),
        31 => s(&["SETRANGE", &k, "2", &v]),
        32 => s(&["ZREMRANGEBYRANK", &k, "0", "0"]),
        _ => s(&["EXPIREAT", &k, "4000000000"]),
    }
}

/// Sends `n` random commands pipelined in batches, with some MULTI/EXEC blocks.
fn workload(port: u16, n: usize) {
    let mut c = RawConn::connect(port).expect("connect");
    let mut sent = 0;
    while sent < n {
        let mut batch = Vec::new();
        let mut count = 0;
        for _ in 0..50 {
            if rand::random_range(0..10u32) == 0 {
                batch.extend(RawConn::encode(&["MULTI"]));
                count += 1;
                for _ in 0..3 {
                    let cmd = random_command();
                    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                    if args[0] == "SELECT" {
                        continue;
                    }
                    batch.extend(RawConn::encode(&args));
                    count += 1;
                }
                batch.extend(RawConn::encode(&["EXEC"]));
                count += 1;
            } else {
                let cmd = random_command();
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                batch.extend(RawConn::encode(&args));
                count += 1;
            }
        }
        c.send_raw(&batch).expect("send");
        for _ in 0..count {
            c.read_reply().expect("reply");
        }
        sent += count;
    }
}

#[test]
fn random_workload_leaves_two_replicas_identical() {
    let dir = tempfile::tempdir().unwrap();
    let master = NodeProc::start(&dir.path().join("m"), &[]);
    let to = format!("127.0.0.1:{}", master.port);
    let r1 = NodeProc::start(&dir.path().join("r1"), &["--replicaof", &to]);
    r1.wait_info("master_link_status", |s| s == "up", "first replica link");
    workload(master.port, 3000);
    // The second replica joins mid-stream: full sync while writes continue.
    let port = master.port;
    let writer = std::thread::spawn(move || workload(port, 3000));
    let r2 = NodeProc::start(&dir.path().join("r2"), &["--replicaof", &to]);
    writer.join().unwrap();
    workload(master.port, 1000);
    assert_same(&master, &r1, "replica from the start");
    assert_same(&master, &r2, "replica that joined mid-stream");
    assert_eq!(stat(&master, "sync_full"), 2);
    assert_eq!(stat(&master, "connected_slaves"), 2);
    // ROLE on both sides, in the shapes clients parse.
    let role: redis::Value = redis::cmd("ROLE").query(&mut r1.client()).unwrap();
    let text = format!("{role:?}");
    assert!(
        text.contains("slave") && text.contains("connected"),
        "{text}"
    );
    let role: redis::Value = redis::cmd("ROLE").query(&mut master.client()).unwrap();
    assert!(format!("{role:?}").contains("master"), "{role:?}");
}

#[test]
fn replica_rejects_writes_and_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    let master = NodeProc::start(&dir.path().join("m"), &[]);
    let to = format!("127.0.0.1:{}", master.port);
    let cfg = write_config(
        dir.path(),
        "r.toml",
        "[replication]\nserve_stale_data = false\n",
    );
    let mut replica = NodeProc::start(
        &dir.path().join("r"),
        &["--replicaof", &to, "--config", cfg.to_str().unwrap()],
    );
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut m = RawConn::connect(master.port).unwrap();
    assert_eq!(m.call(&["SET", "a", "1"]), b"+OK\r\n");
    caught_up(&master, &replica);
    let mut r = RawConn::connect(replica.port).unwrap();
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n1\r\n");
    assert_eq!(
        r.call(&["SET", "a", "2"]),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(r.call(&["MULTI"]), b"+OK\r\n");
    assert!(r.call(&["INCR", "a"]).starts_with(b"-READONLY"));
    assert!(r.call(&["EXEC"]).starts_with(b"-EXECABORT"));
    assert!(
        r.call(&["WAIT", "1", "0"])
            .starts_with(b"-ERR WAIT cannot be used with replica")
    );
    assert_eq!(r.call(&["READONLY"]), b"+OK\r\n");
    // serve_stale_data = false: with the master gone, data commands get -MASTERDOWN; INFO
    // still answers.
    drop(master);
    replica.wait_info("master_link_status", |s| s == "down", "link down");
    assert!(r.call(&["GET", "a"]).starts_with(b"-MASTERDOWN"));
    assert!(r.call(&["INFO", "replication"]).starts_with(b"$"));
    replica.kill9();
}

#[test]
fn link_cut_resyncs_partially_and_exceeded_backlog_fully() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "m.toml",
        "[replication]\nbacklog_size = \"16kb\"\n",
    );
    let master = NodeProc::start(&dir.path().join("m"), &["--config", cfg.to_str().unwrap()]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    workload(master.port, 300);
    assert_eq!(stat(&master, "sync_full"), 1);
    // Cut the link for a moment (the master drops its replica connection) while writes go on.
    let mut m = RawConn::connect(master.port).unwrap();
    assert_eq!(m.call(&["CLIENT", "KILL", "TYPE", "replica"]), b":1\r\n");
    workload(master.port, 50);
    assert_same(&master, &replica, "after a short cut");
    assert_eq!(
        stat(&master, "sync_partial_ok"),
        1,
        "a short cut resyncs from the backlog"
    );
    assert_eq!(stat(&master, "sync_full"), 1);
    // Freeze the replica, cut the link and write more than the backlog holds.
    replica.pause();
    assert_eq!(m.call(&["CLIENT", "KILL", "TYPE", "replica"]), b":1\r\n");
    let big = "x".repeat(1000);
    for i in 0..40 {
        assert_eq!(m.call(&["SET", &format!("big{i}"), &big]), b"+OK\r\n");
    }
    replica.signal(libc::SIGCONT);
    assert_same(&master, &replica, "after the backlog was exceeded");
    assert_eq!(stat(&master, "sync_full"), 2, "backlog exceeded: full sync");
    assert_eq!(stat(&master, "sync_partial_err"), 1);
}

#[test]
fn restarted_replica_resyncs_partially_from_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let master = NodeProc::start(&dir.path().join("m"), &[]);
    let to = format!("127.0.0.1:{}", master.port);
    let rdir = dir.path().join("r");
    let args = ["--replicaof", to.as_str(), "--appendfsync", "always"];
    let mut replica = NodeProc::start(&rdir, &args);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    workload(master.port, 1000);
    caught_up(&master, &replica);
    replica.kill9();
    workload(master.port, 200);
    let replica = NodeProc::start(&rdir, &args);
    assert_same(&master, &replica, "after the replica's restart");
    assert_eq!(
        stat(&master, "sync_partial_ok"),
        1,
        "resumed from its own log"
    );
    assert_eq!(
        stat(&master, "sync_full"),
        1,
        "only the first sync was full"
    );
}

#[test]
fn promoted_replica_keeps_the_others_on_partial_resync() {
    let dir = tempfile::tempdir().unwrap();
    let old = NodeProc::start(&dir.path().join("m"), &[]);
    let to = format!("127.0.0.1:{}", old.port);
    let a = NodeProc::start(&dir.path().join("a"), &["--replicaof", &to]);
    let b = NodeProc::start(&dir.path().join("b"), &["--replicaof", &to]);
    a.wait_info("master_link_status", |s| s == "up", "a link");
    b.wait_info("master_link_status", |s| s == "up", "b link");
    workload(old.port, 500);
    caught_up(&old, &a);
    caught_up(&old, &b);
    let mut ca = RawConn::connect(a.port).unwrap();
    assert_eq!(ca.call(&["REPLICAOF", "NO", "ONE"]), b"+OK\r\n");
    let mut cb = RawConn::connect(b.port).unwrap();
    assert_eq!(
        cb.call(&["REPLICAOF", "127.0.0.1", &a.port.to_string()]),
        b"+OK\r\n"
    );
    let mut co = RawConn::connect(old.port).unwrap();
    assert_eq!(
        co.call(&["SLAVEOF", "127.0.0.1", &a.port.to_string()]),
        b"+OK\r\n"
    );
    workload(a.port, 300);
    assert_same(&a, &b, "sibling replica");
    assert_same(&a, &old, "old master");
    assert_eq!(
        stat(&a, "sync_partial_ok"),
        2,
        "both continued the shared history"
    );
    assert_eq!(stat(&a, "sync_full"), 0);
}

#[test]
fn wait_and_min_replicas_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "m.toml",
        "[replication]\nmin_replicas_to_write = 1\nmin_replicas_max_lag = \"1500ms\"\n",
    );
    let master = NodeProc::start(&dir.path().join("m"), &["--config", cfg.to_str().unwrap()]);
    let mut m = RawConn::connect(master.port).unwrap();
    assert_eq!(
        m.call(&["SET", "a", "1"]),
        b"-NOREPLICAS Not enough good replicas to write.\r\n"
    );
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    assert_eq!(m.call(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(m.call(&["WAIT", "1", "0"]), b":1\r\n");
    replica.pause();
    assert_eq!(m.call(&["SET", "a", "2"]), b"+OK\r\n");
    let t = Instant::now();
    assert_eq!(m.call(&["WAIT", "1", "300"]), b":0\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        m.call(&["SET", "a", "3"]),
        b"-NOREPLICAS Not enough good replicas to write.\r\n",
        "the paused replica's last ack is older than min_replicas_max_lag"
    );
    replica.signal(libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.call(&["SET", "a", "4"]) != b"+OK\r\n" {
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sync_mode_never_acknowledges_a_write_its_replicas_lack() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "m.toml",
        "[replication]\nsync_replicas = 1\nsync_timeout = \"300ms\"\n",
    );
    let master = NodeProc::start(&dir.path().join("m"), &["--config", cfg.to_str().unwrap()]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut m = RawConn::connect(master.port).unwrap();
    assert_eq!(m.call(&["SET", "a", "1"]), b"+OK\r\n");
    // The OK above means the replica has it, right now.
    let mut r = RawConn::connect(replica.port).unwrap();
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n1\r\n");
    replica.pause();
    // The write runs but its replica does not confirm it in time: its outcome is unknown, so
    // no reply at all (an error would tell the client it did not run), the connection closes.
    let t = Instant::now();
    m.send_raw(&RawConn::encode(&["SET", "a", "2"])).unwrap();
    assert_eq!(
        m.read_reply(),
        None,
        "no reply to a write of unknown outcome"
    );
    assert!(t.elapsed() >= Duration::from_millis(280));
    assert!(m.is_closed());
    // A pipeline: replies before the first unconfirmed write go, nothing from it on.
    let mut m = RawConn::connect(master.port).unwrap();
    m.send_raw(
        &[
            RawConn::encode(&["GET", "a"]),
            RawConn::encode(&["INCR", "n"]),
            RawConn::encode(&["GET", "a"]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(m.read_reply().unwrap(), b"$1\r\n2\r\n", "the SET did run");
    assert_eq!(m.read_reply(), None);
    assert!(m.is_closed());
    replica.signal(libc::SIGCONT);
    caught_up(&master, &replica);
    let mut m = RawConn::connect(master.port).unwrap();
    assert_eq!(m.call(&["SET", "a", "3"]), b"+OK\r\n");
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n3\r\n");
    assert_eq!(r.call(&["GET", "n"]), b"$1\r\n1\r\n", "the INCR ran too");
}

#[test]
fn blocked_clients_are_released_when_the_master_becomes_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let other = NodeProc::start(&dir.path().join("o"), &[]);
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut blocked = RawConn::connect(node.port).unwrap();
    blocked
        .send_raw(&RawConn::encode(&["BLPOP", "q", "0"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut admin = RawConn::connect(node.port).unwrap();
    assert_eq!(
        admin.call(&["REPLICAOF", "127.0.0.1", &other.port.to_string()]),
        b"+OK\r\n"
    );
    assert_eq!(
        blocked.read_reply().unwrap(),
        b"-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
    );
}

/// The node side of invariant 4: in synchronous mode every acknowledged write is on a replica,
/// so after the master is SIGKILLed mid-stream, the replica with the highest offset holds every
/// write any client saw acknowledged. (With `sync_replicas = 0` this test catches lost writes:
/// one run in three lost one on this machine.)
#[test]
fn sync_mode_loses_no_acknowledged_write_when_the_master_is_killed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "m.toml",
        "[replication]\nsync_replicas = 1\nsync_timeout = \"2s\"\n",
    );
    let mut master = NodeProc::start(&dir.path().join("m"), &["--config", cfg.to_str().unwrap()]);
    let to = format!("127.0.0.1:{}", master.port);
    let a = NodeProc::start(&dir.path().join("a"), &["--replicaof", &to]);
    let b = NodeProc::start(&dir.path().join("b"), &["--replicaof", &to]);
    a.wait_info("master_link_status", |s| s == "up", "a link");
    b.wait_info("master_link_status", |s| s == "up", "b link");
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acked, port) = (stop.clone(), acked.clone(), master.port);
            std::thread::spawn(move || {
                let mut c = RawConn::connect(port).unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}:{i}");
                    i += 1;
                    if c.send_raw(&RawConn::encode(&["SET", &key, "v"])).is_err() {
                        return;
                    }
                    match c.read_reply() {
                        Some(r) if r == b"+OK\r\n" => acked.lock().unwrap().push(key),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    master.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    // The replicas keep what they applied; the better one is the promotion candidate.
    std::thread::sleep(Duration::from_millis(200));
    let best = if offset(&a) >= offset(&b) { &a } else { &b };
    let mut c = best.client();
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut c).unwrap();
        missing.extend(
            chunk
                .iter()
                .zip(vals)
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone()),
        );
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing on the best replica, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// The old `SYNC` (what Redis' own test suite uses to watch the stream) starts with the payload,
/// as from redis-server: no `+FULLRESYNC` line, then the commands that follow.
#[test]
fn old_sync_sends_the_payload_first_then_the_stream() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("m"), &[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"SYNC\r\n").unwrap();
    let mut first = [0u8; 1];
    // A master may send newlines while it prepares the payload (Redis does too).
    loop {
        s.read_exact(&mut first).unwrap();
        if first[0] != b'\n' {
            break;
        }
    }
    assert_eq!(
        first[0], b'$',
        "SYNC must answer with the payload's length first"
    );
    let mut c = RawConn::connect(node.port).unwrap();
    c.call(&["SET", "after", "sync"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.windows(5).any(|w| w == b"after") && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.windows(5).any(|w| w == b"after"),
        "the stream follows the payload"
    );
}

/// Writes reach the replicas and the log as redis-server propagates them: GETDEL as DEL, and a
/// transaction that switches databases as one MULTI/EXEC with each write under its database
/// (it went out in pieces, so a replica or a replay could apply half of it).
#[test]
fn the_stream_carries_rewrites_and_whole_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("m"), &[]);
    let mut stream = RawConn::connect(node.port).unwrap();
    stream.attach_to_stream();
    let mut c = RawConn::connect(node.port).unwrap();
    c.call(&["SET", "k", "v"]);
    assert_eq!(c.call(&["GETDEL", "k"]), b"$1\r\nv\r\n");
    assert_eq!(c.call(&["GETDEL", "k"]), b"$-1\r\n");
    for cmd in [
        &["MULTI"][..],
        &["SELECT", "1"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["SELECT", "2"],
        &["SET", "b", "2"],
    ] {
        c.call(cmd);
    }
    assert_eq!(
        c.call(&["EXEC"]),
        b"*5\r\n+OK\r\n+OK\r\n$1\r\n1\r\n+OK\r\n+OK\r\n"
    );
    c.call(&["SELECT", "0"]);
    c.call(&["SET", "end", "x"]);
    let mut seen = Vec::new();
    loop {
        let cmd = stream.read_command();
        if cmd[0] == "ping" {
            continue;
        }
        let end = cmd == ["set", "end", "x"];
        seen.push(cmd.join(" "));
        if end {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "select 0",
            "set k v",
            "del k",
            "select 1",
            "multi",
            "set a 1",
            "select 2",
            "set b 2",
            "exec",
            "select 0",
            "set end x"
        ]
    );
}
