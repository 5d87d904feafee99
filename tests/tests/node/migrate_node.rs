//! MIGRATE behaviour only the node has, or that needs more than a reply comparison: a write
//! that races the migration keeps its key and other clients are served meanwhile (the node does
//! not block as Redis does); unreachable, refusing and silent targets fail with Redis' words
//! within the timeout (checked against redis-server too); the deletion reaches a replica and
//! survives a restart, with passwords hidden from SLOWLOG and MONITOR; a MIGRATE inside
//! MULTI is refused; cached connections are reused and released after 10 s unused.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use redis::Connection;
use vigil_tests::{NodeProc, RawConn, RedisProc, dump_dataset, free_port};

fn client(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A target that accepts, says when the request arrived, and answers only when told.
struct HeldTarget {
    port: u16,
    arrived: std::sync::mpsc::Receiver<()>,
    answer: std::sync::mpsc::Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<()>,
}

fn held_target() -> HeldTarget {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (answer, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (tell, arrived) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        // The node writes only after it dumped the keys.
        if s.read(&mut buf).unwrap_or(0) > 0 {
            let _ = tell.send(());
        }
        // Kept open until the test is done with it.
        while let Ok(a) = rx.recv() {
            s.write_all(&a).unwrap();
        }
    });
    HeldTarget {
        port,
        arrived,
        answer,
        thread,
    }
}

/// The node keeps serving while a target is slow, and a write that lands between the dump and
/// the acknowledgement keeps its key on the node (Redis blocks instead, so it cannot race).
#[test]
fn a_raced_write_is_kept_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut c = RawConn::connect(node.port).unwrap();
    assert_eq!(c.call(&["MSET", "a", "1", "b", "2"]), b"+OK\r\n");
    let held = held_target();
    let port = held.port.to_string();
    let m = std::thread::spawn({
        let node_port = node.port;
        move || {
            let mut m = RawConn::connect(node_port).unwrap();
            m.call(&[
                "MIGRATE",
                "127.0.0.1",
                &port,
                "",
                "0",
                "5000",
                "KEYS",
                "a",
                "b",
            ])
        }
    });
    held.arrived
        .recv_timeout(Duration::from_secs(10))
        .expect("the request reached the target");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.call(&["SET", "a", "new"]), b"+OK\r\n");
    held.answer.send(b"+OK\r\n+OK\r\n+OK\r\n".to_vec()).unwrap();
    assert_eq!(m.join().unwrap(), b"+OK\r\n");
    drop(held.answer);
    held.thread.join().unwrap();
    assert_eq!(c.call(&["GET", "a"]), b"$3\r\nnew\r\n");
    assert_eq!(c.call(&["EXISTS", "b"]), b":0\r\n");
}

/// Unreachable (a closed port) and silent targets fail with Redis' words within the timeout,
/// and the keys stay.
#[test]
fn unreachable_and_silent_targets_fail_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let redis = RedisProc::start();
    let closed = free_port().to_string();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port().to_string();
    for port in [node.port, redis.port] {
        let mut c = RawConn::connect(port).unwrap();
        c.call(&["SET", "k", "v"]);
        // Redis learns of a refused connection only when it writes; a name that does not
        // resolve, or a port that cannot be one, fails the connection itself.
        for (host, to, want) in [
            ("127.0.0.1", closed.as_str(), "writing to target instance"),
            ("127.0.0.1", "0", "writing to target instance"),
            ("127.0.0.1", "-5", "connecting to the client"),
            (
                "nonexistent.invalid",
                closed.as_str(),
                "connecting to the client",
            ),
        ] {
            let t = Instant::now();
            let r = c.call(&["MIGRATE", host, to, "k", "0", "500"]);
            assert_eq!(
                String::from_utf8_lossy(&r),
                format!("-IOERR error or timeout {want}\r\n"),
                "port {port}: {host} {to}"
            );
            assert!(t.elapsed() < Duration::from_millis(1500));
        }
        let t = Instant::now();
        assert_eq!(
            c.call(&["MIGRATE", "127.0.0.1", &silent_port, "k", "0", "300"]),
            b"-IOERR error or timeout reading to target instance\r\n",
            "port {port}"
        );
        assert!(t.elapsed() < Duration::from_millis(1500));
        assert_eq!(c.call(&["EXISTS", "k"]), b":1\r\n");
    }
}

/// Without COPY the moved keys are deleted as one DEL: a replica sees it, and so does the node
/// after a restart from its log; SLOWLOG and MONITOR hide the passwords.
#[test]
fn deletion_reaches_replica_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = RedisProc::start_with(&["--requirepass", "pw"]);
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut c = RawConn::connect(master.port).unwrap();
    let port = target.port.to_string();
    // A replica refuses it as a write; inside MULTI the node refuses it (EXEC cannot wait).
    assert_eq!(
        RawConn::connect(replica.port).unwrap().call(&[
            "MIGRATE",
            "127.0.0.1",
            &port,
            "k",
            "0",
            "1000"
        ]),
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(c.call(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        c.call(&["MIGRATE", "127.0.0.1", &port, "k", "0", "1000"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&c.call(&["EXEC"])),
        "*1\r\n-ERR MIGRATE cannot run inside a transaction on this server; run it on its own\r\n"
    );
    let mut mon = RawConn::connect(master.port).unwrap();
    assert_eq!(mon.call(&["MONITOR"]), b"+OK\r\n");
    c.call(&["MSET", "a", "1", "b", "2", "c", "3"]);
    c.call(&["SLOWLOG", "RESET"]);
    c.call(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let m = [
        "MIGRATE",
        "127.0.0.1",
        &port,
        "",
        "0",
        "5000",
        "AUTH2",
        "u",
        "p",
        "KEYS",
        "a",
        "b",
    ];
    let reply = c.call(&m);
    assert!(reply.starts_with(b"-ERR Target instance replied with error: "));
    let mut ok: Vec<&str> = m[..6].to_vec();
    ok.extend(["AUTH", "pw", "KEYS", "a", "b"]);
    assert_eq!(c.call(&ok), b"+OK\r\n");
    let slow = String::from_utf8_lossy(&c.call(&["SLOWLOG", "GET", "10"])).into_owned();
    assert!(
        slow.contains("(redacted)") && !slow.contains("\r\np\r\n") && !slow.contains("pw"),
        "{slow}"
    );
    let mut seen = Vec::new();
    while let Some(line) = mon.unsolicited(Duration::from_millis(500)) {
        seen.push(String::from_utf8_lossy(&line).into_owned());
    }
    let shown = seen
        .iter()
        .find(|l| l.contains("AUTH2"))
        .expect("MONITOR line");
    assert!(
        shown.ends_with("\"AUTH2\" \"(redacted)\" \"(redacted)\" \"KEYS\" \"a\" \"b\"\r\n"),
        "{shown}"
    );
    let want = dump_dataset(&mut master.client(), 1);
    assert_eq!(want.len(), 1, "{want:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dump_dataset(&mut replica.client(), 1) != want {
        assert!(Instant::now() < deadline, "the replica kept the moved keys");
        std::thread::sleep(Duration::from_millis(20));
    }
    master.kill9();
    let master = NodeProc::start_on(&dir.path().join("m"), master.port, &[]);
    assert_eq!(dump_dataset(&mut master.client(), 1), want);
    let mut t = redis::Client::open(format!("redis://:pw@127.0.0.1:{}/", target.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let moved = dump_dataset(&mut t, 1);
    assert_eq!(moved.len(), 2, "{moved:?}");
}

fn target_clients(port: u16) -> usize {
    let mut c = client(port);
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    list.lines().count() - 1
}

/// One connection per target serves successive MIGRATEs, and is closed after 10 s unused, as
/// Redis' `MIGRATE cached connections are released after some time` expects.
#[test]
fn cached_connections_are_reused_then_released() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let target = RedisProc::start();
    let mut c = RawConn::connect(node.port).unwrap();
    let port = target.port.to_string();
    assert_eq!(
        node.info_field("migrate_cached_sockets").as_deref(),
        Some("0")
    );
    for i in 0..3 {
        let key = format!("k{i}");
        c.call(&["SET", &key, "v"]);
        let db = (i % 2).to_string();
        let r = c.call(&["MIGRATE", "127.0.0.1", &port, &key, &db, "1000"]);
        assert_eq!(r, b"+OK\r\n");
    }
    assert_eq!(
        node.info_field("migrate_cached_sockets").as_deref(),
        Some("1")
    );
    assert_eq!(target_clients(target.port), 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.info_field("migrate_cached_sockets").as_deref() != Some("0") {
        assert!(Instant::now() < deadline, "the cached connection stayed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The target notices the close a moment later.
    while target_clients(target.port) != 0 {
        assert!(
            Instant::now() < deadline,
            "the target still sees the connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
