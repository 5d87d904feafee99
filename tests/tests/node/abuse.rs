//! Protocol abuse: random bytes, oversized lengths, half frames, slow pub/sub readers and 10k
//! idle connections. The server must answer with an error (or close), never crash, never touch
//! the data, and keep serving everyone else.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use rand::RngExt;
use redis::Commands;
use vigil_tests::{NodeProc, RawConn};

fn assert_healthy(n: &NodeProc) {
    let mut c = n.client();
    assert_eq!(
        c.get::<_, String>("canary").unwrap(),
        "intact",
        "data changed"
    );
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

fn node_with_canary(extra: &[&str]) -> (tempfile::TempDir, NodeProc) {
    let dir = tempfile::tempdir().unwrap();
    let n = NodeProc::start(&dir.path().join("node"), extra);
    let _: () = n.client().set("canary", "intact").unwrap();
    (dir, n)
}

#[test]
fn random_bytes_never_hurt_the_server() {
    let (_d, n) = node_with_canary(&[]);
    let mut rng = rand::rng();
    for round in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", n.port)).unwrap();
        let len = rng.random_range(1..8192);
        // Half the rounds start like a multibulk request, to get past the first check.
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if round % 2 == 0 {
            bytes[0] = b'*';
        }
        let _ = s.write_all(&bytes);
        drop(s);
    }
    assert_healthy(&n);
}

#[test]
fn oversized_and_invalid_lengths_get_an_error_and_a_close() {
    let (_d, n) = node_with_canary(&[]);
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*1\r\n$600000000\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*-\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$1x\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n+OK\r\n",
            b"-ERR Protocol error: expected '$', got '+'\r\n",
        ),
    ];
    for (i, (input, want)) in cases.iter().enumerate() {
        let mut c = RawConn::connect(n.port).unwrap();
        c.send_raw(input).unwrap();
        assert_eq!(c.read_reply().as_deref(), Some(*want), "#{i}");
        assert!(c.is_closed(), "#{i} connection left open");
    }
    // An inline request with no newline beyond 64 KiB.
    let mut c = RawConn::connect(n.port).unwrap();
    c.send_raw(&vec![b'a'; 70 * 1024]).unwrap();
    assert_eq!(
        c.read_reply().as_deref(),
        Some(&b"-ERR Protocol error: too big inline request\r\n"[..])
    );
    assert_healthy(&n);
}

#[test]
fn half_frames_and_query_buffer_limit() {
    let (_d, n) = node_with_canary(&[]);
    // A client stuck mid-request blocks nobody.
    let mut half = RawConn::connect(n.port).unwrap();
    half.send_raw(b"*3\r\n$3\r\nSET\r\n$6\r\ncanary\r\n$100\r\nbroken")
        .unwrap();
    assert_healthy(&n);
    drop(half);
    thread::sleep(Duration::from_millis(50));
    assert_healthy(&n);
    // A request that outgrows the query buffer limit closes the connection.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-query-buffer-limit")
        .arg("1mb")
        .query(&mut n.client())
        .unwrap();
    let mut big = RawConn::connect(n.port).unwrap();
    big.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$3000000\r\n")
        .unwrap();
    let _ = big.send_raw(&vec![b'x'; 1_500_000]);
    assert!(big.is_closed(), "over-limit client not disconnected");
    assert_healthy(&n);
}

#[test]
fn slow_pubsub_reader_is_disconnected_not_buffered_forever() {
    let (_d, n) = node_with_canary(&[]);
    let mut sub = RawConn::connect(n.port).unwrap();
    sub.call(&["SUBSCRIBE", "firehose"]);
    // The subscriber never reads; 64 MB of messages must not all be queued for it.
    let mut p = n.client();
    let payload = "x".repeat(1024 * 1024);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut disconnected = false;
    for _ in 0..64 {
        let receivers: i64 = p.publish("firehose", &payload).unwrap();
        if receivers == 0 {
            disconnected = true;
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert!(disconnected, "slow subscriber was never disconnected");
    assert_healthy(&n);
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[test]
fn ten_thousand_idle_connections() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "maxclients = 10100\n").unwrap();
    let n = NodeProc::start(
        &dir.path().join("node"),
        &["--config", cfg.to_str().unwrap()],
    );
    let _: () = n.client().set("canary", "intact").unwrap();
    let mut idle = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        match TcpStream::connect(("127.0.0.1", n.port)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i} failed: {e}"),
        }
    }
    // Everyone is accepted and the server still answers others promptly.
    wait_for_clients(&n, 10_001);
    let started = Instant::now();
    assert_healthy(&n);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "slow with idle clients: {:?}",
        started.elapsed()
    );
    drop(idle);
    wait_for_clients(&n, 1);
}

/// Waits until INFO reports exactly `count` connected clients (the asking one included).
fn wait_for_clients(n: &NodeProc, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut n.client())
            .unwrap();
        if info.contains(&format!("connected_clients:{count}\r")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} clients: {info}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Replication commands with odd arguments, and fake "replicas" that send garbage on their
/// link or vanish mid-transfer: errors or closed links, never a crash or a changed dataset.
#[test]
fn bogus_replicas_and_odd_replication_arguments() {
    let (_d, n) = node_with_canary(&[]);
    let mut c = RawConn::connect(n.port).unwrap();
    for args in [
        &["WAIT", "-1", "0"][..],
        &["WAIT", "99999999999999999999", "0"],
        &["WAIT", "0", "99999999999999999999"],
        &["REPLICAOF", "127.0.0.1", "65536"],
        &["REPLICAOF", "127.0.0.1", "-1"],
        &["REPLCONF", "listening-port", "99999"],
        &["REPLCONF", "vigil-epoch", "-3"],
        &["REPLCONF", "ack", "12"],
    ] {
        let reply = c.call(args);
        assert!(!reply.is_empty(), "{args:?}");
    }
    assert_eq!(c.call(&["ROLE"])[..10], b"*3\r\n$6\r\nma"[..]);
    for psync in [
        &["PSYNC", "?", "-1"][..],
        &["PSYNC", "x", "y"],
        &["PSYNC", &"f".repeat(40), "99999999999"],
        &["SYNC"],
    ] {
        let mut r = RawConn::connect(n.port).unwrap();
        r.send_raw(&RawConn::encode(psync)).unwrap();
        // Read the start of the answer, then send garbage and vanish. PSYNC answers
        // +FULLRESYNC; the old SYNC sends the payload at once, as redis-server does.
        let first = r.read_raw();
        let want: &[u8] = if psync[0] == "SYNC" {
            b"$"
        } else {
            b"+FULLRESYNC"
        };
        assert!(first.starts_with(want), "{psync:?}: {first:?}");
        let _ = r.send_raw(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\nabc\r\n\x00\xff garbage");
    }
    let mut r = RawConn::connect(n.port).unwrap();
    r.send_raw(&RawConn::encode(&["PSYNC", "?", "-1"])).unwrap();
    drop(r);
    std::thread::sleep(Duration::from_millis(200));
    assert_healthy(&n);
    let info = n.info_field("connected_slaves").unwrap();
    assert_eq!(info, "0", "dead links are dropped");
}

/// Reads one multibulk request (`*N` of `$len` strings) from a replica, `None` at EOF.
fn read_request(r: &mut impl BufRead) -> Option<Vec<String>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0u8; len + 2];
        r.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(String::from_utf8_lossy(&arg).into_owned());
    }
    Some(args)
}

/// A rogue master: answers the handshake, then announces a 100 GB string, a 100 G-argument
/// command, a 100 GB snapshot. Each is the link's error (logged, naming the limit), the link is
/// retried, and the replica stays up and serves, never trying to allocate what was claimed.
#[test]
fn a_rogue_master_announcing_huge_sizes_only_drops_the_link() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = sessions.clone();
    thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(mut wr) = conn else { return };
            let mut rd = BufReader::new(wr.try_clone().unwrap());
            // The handshake: PING, REPLCONF..., then PSYNC.
            while let Some(req) = read_request(&mut rd) {
                let reply: &[u8] = match req[0].to_ascii_uppercase().as_str() {
                    "PING" => b"+PONG\r\n",
                    "PSYNC" => break,
                    _ => b"+OK\r\n",
                };
                let _ = wr.write_all(reply);
            }
            let attack: &[u8] = match i % 3 {
                0 => b"+CONTINUE\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\nabc",
                1 => b"+CONTINUE\r\n*99999999999\r\n$3\r\nSET\r\n",
                _ => {
                    b"+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n$99999999999\r\nabc"
                }
            };
            let _ = wr.write_all(attack);
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i % 3 == 2 {
                // The snapshot never comes: the replica must give up when the link ends.
                drop(wr);
                continue;
            }
            // The replica must drop the link by itself (its ACKs are ignored).
            while read_request(&mut rd).is_some() {}
        }
    });
    let (_d, n) = {
        let dir = tempfile::tempdir().unwrap();
        let replicaof = format!("127.0.0.1:{port}");
        let n = NodeProc::start(&dir.path().join("node"), &["--replicaof", &replicaof]);
        (dir, n)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while sessions.load(std::sync::atomic::Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < deadline,
            "the replica stopped retrying: {}",
            n.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let log = n.stderr();
    for what in [
        "limits.proto_max_bulk_len (536870912 bytes)",
        "limits.max_multibulk_len",
    ] {
        assert!(log.contains(what), "no clear error naming {what}: {log}");
    }
    let mut c = n.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(c.get::<_, Option<String>>("k").unwrap(), None);
    assert_eq!(n.info_field("role").as_deref(), Some("slave"));
}
