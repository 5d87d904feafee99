//! MIGRATE between real processes: a node as the source, as the target, and both, each run side
//! by side with redis-server → redis-server doing the same thing. Replies are compared byte for
//! byte and the resulting datasets (sources and targets) key by key; every type in small and big
//! encodings, expiries, the KEYS form, COPY, REPLACE and BUSYKEY, NOKEY, destination databases,
//! AUTH and AUTH2, a dropped cached connection, and a seeded random sequence. Then what only
//! the node does: a write that races the migration is kept, the node serves others meanwhile,
//! the deletion reaches a replica and survives a restart, unreachable and silent targets fail
//! within the timeout, and cached connections are reused and released.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use redis::Connection;
use vigil_tests::diff::split_args;
use vigil_tests::seeded::Rng;
use vigil_tests::{NodeProc, RawConn, RedisProc, dump_dataset, free_port};

/// A server under test: either kind, killed on drop.
enum Proc {
    Redis(RedisProc),
    Node(NodeProc),
}

impl Proc {
    fn port(&self) -> u16 {
        match self {
            Proc::Redis(r) => r.port,
            Proc::Node(n) => n.port,
        }
    }
}

fn start(node: bool, dir: &std::path::Path, name: &str) -> Proc {
    if node {
        Proc::Node(NodeProc::start(&dir.join(name), &[]))
    } else {
        Proc::Redis(RedisProc::start())
    }
}

fn client(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// One source and its target, with a connection to each.
struct Side {
    src: Proc,
    tgt: Proc,
    s: RawConn,
    t: RawConn,
}

/// redis-server → redis-server (the reference) beside a pair where a node is the source, the
/// target or both.
struct Quad {
    reference: Side,
    tested: Side,
    _dir: tempfile::TempDir,
}

impl Quad {
    fn start(node_src: bool, node_tgt: bool) -> Quad {
        let dir = tempfile::tempdir().unwrap();
        let side = |src: Proc, tgt: Proc| Side {
            s: RawConn::connect(src.port()).unwrap(),
            t: RawConn::connect(tgt.port()).unwrap(),
            src,
            tgt,
        };
        let reference = side(start(false, dir.path(), ""), start(false, dir.path(), ""));
        let tested = side(
            start(node_src, dir.path(), "src"),
            start(node_tgt, dir.path(), "tgt"),
        );
        Quad {
            reference,
            tested,
            _dir: dir,
        }
    }

    /// Runs script lines on both sides: plain lines on the sources, lines starting `T ` on the
    /// targets, `$T` standing for the side's target port; `!` skips comparing a reply.
    fn run(&mut self, script: &[String]) -> Vec<String> {
        let mut failures = Vec::new();
        for (i, line) in script.iter().enumerate() {
            let (compare, line) = match line.strip_prefix('!') {
                Some(l) => (false, l),
                None => (true, line.as_str()),
            };
            let (on_target, line) = match line.strip_prefix("T ") {
                Some(l) => (true, l),
                None => (false, line),
            };
            let args = split_args(line).unwrap_or_else(|| panic!("bad line {line}"));
            let mut replies = Vec::new();
            for side in [&mut self.reference, &mut self.tested] {
                let port = side.tgt.port().to_string();
                let args: Vec<Vec<u8>> = args
                    .iter()
                    .map(|a| {
                        if a == b"$T" {
                            port.clone().into_bytes()
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                let conn = if on_target { &mut side.t } else { &mut side.s };
                replies.push(conn.call_bytes(&refs));
            }
            if compare && replies[0] != replies[1] {
                failures.push(format!(
                    "#{i} {}\n   redis: {}\n   vigil: {}",
                    short(line),
                    short(&String::from_utf8_lossy(&replies[0])),
                    short(&String::from_utf8_lossy(&replies[1]))
                ));
            }
        }
        failures
    }

    /// Both sources hold the same data, and so do both targets (expiries within 2 s).
    fn same_data(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, a, b) in [
            ("source", &self.reference.src, &self.tested.src),
            ("target", &self.reference.tgt, &self.tested.tgt),
        ] {
            let (x, y) = (contents(a.port()), contents(b.port()));
            if let Some(d) = first_difference(&x, &y) {
                out.push(format!("{what} data differ: {d}"));
            }
        }
        out
    }
}

/// Every key of databases 0..4: its content, and its absolute expiry (-1: none).
fn contents(port: u16) -> Vec<(String, i64)> {
    let mut c = client(port);
    let mut out = Vec::new();
    for db in 0..4 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut c).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        keys.sort();
        for k in keys {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut c).unwrap();
            out.push((format!("db{db} {k} {}", content(&mut c, &k)), at));
        }
    }
    out
}

/// The first key whose content or expiry differs (expiries within 2 s count as equal).
fn first_difference(x: &[(String, i64)], y: &[(String, i64)]) -> Option<String> {
    let differ = |(a, at): &(String, i64), (b, bt): &(String, i64)| {
        a != b || (at != bt && !(*at > 0 && *bt > 0 && (at - bt).abs() < 2000))
    };
    if let Some((a, b)) = x.iter().zip(y).find(|(a, b)| differ(a, b)) {
        return Some(format!(
            "\n   {} ({})\n   {} ({})",
            short(&a.0),
            a.1,
            short(&b.0),
            b.1
        ));
    }
    (x.len() != y.len()).then(|| {
        let names = |v: &[(String, i64)]| {
            let n: Vec<String> = v
                .iter()
                .map(|(c, _)| short(c)[..20.min(c.len())].to_string())
                .collect();
            n.join(", ")
        };
        format!(
            "{} keys vs {}:\n   {}\n   {}",
            x.len(),
            y.len(),
            names(x),
            names(y)
        )
    })
}

fn short(s: &str) -> String {
    let s = s.escape_debug().to_string();
    if s.len() > 240 {
        format!("{}…", &s[..s.floor_char_boundary(240)])
    } else {
        s
    }
}

/// A key's type and value (sets and hashes sorted; a stream's entries and groups).
fn content(c: &mut Connection, key: &str) -> String {
    let ty: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let q = |c: &mut Connection, args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        format!("{:?}", cmd.query::<redis::Value>(c).unwrap())
    };
    let body = match ty.as_str() {
        "string" => q(c, &["GET", key]),
        "list" => q(c, &["LRANGE", key, "0", "-1"]),
        "zset" => q(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "set" => {
            let mut m: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query(c).unwrap();
            m.sort();
            format!("{m:?}")
        }
        "hash" => {
            let mut m: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(key).query(c).unwrap();
            m.sort();
            format!("{m:?}")
        }
        "stream" => format!(
            "{} {}",
            q(c, &["XRANGE", key, "-", "+"]),
            q(c, &["XINFO", "GROUPS", key])
        ),
        t => t.to_string(),
    };
    format!("{ty} {body}")
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every type, in small and big encodings, some with expiries.
fn populate() -> Vec<String> {
    let mut out = Vec::new();
    let big = "x".repeat(100_000);
    out.push(format!("SET s:big {big}"));
    out.push("SET s:int 12345".into());
    out.push("SET s:ttl v PX 100000000".into());
    for n in [5usize, 1000] {
        let words = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>().join(" ");
        out.push(format!("RPUSH l:{n} {}", words(&|i| format!("v{i}"))));
        out.push(format!("HSET h:{n} {}", words(&|i| format!("f{i} {i}"))));
        out.push(format!("SADD set:{n} {}", words(&|i| format!("m{i}"))));
        out.push(format!(
            "SADD iset:{n} {}",
            words(&|i| format!("{}", i * 7))
        ));
        out.push(format!(
            "ZADD z:{n} {}",
            words(&|i| format!("{}.5 m{i}", i))
        ));
    }
    out.push("PEXPIRE h:1000 100000000".into());
    out.push("PEXPIRE z:5 100000000".into());
    for i in 1..=200 {
        out.push(format!("XADD x {i}-1 f v{i}"));
    }
    out.push("XGROUP CREATE x g 0".into());
    out.push("!XREADGROUP GROUP g c COUNT 3 STREAMS x >".into());
    out
}

/// The scripted cases every pairing runs.
fn scripted(acl: bool) -> Vec<String> {
    let mut s = populate();
    s.extend(lines(
        r#"
        # arguments
        MIGRATE 127.0.0.1 $T s:int 0 1000 nope
        MIGRATE 127.0.0.1 $T s:int 0 1000 auth
        MIGRATE 127.0.0.1 $T s:int 0 1000 auth2 u
        MIGRATE 127.0.0.1 $T s:int 0 1000 keys a
        MIGRATE 127.0.0.1 $T s:int 0 x
        MIGRATE 127.0.0.1 $T s:int x 1000
        MIGRATE 127.0.0.1 $T s:int 0
        MIGRATE 127.0.0.1 $T nokey 0 1000
        MIGRATE 127.0.0.1 $T "" 0 1000 keys nokey1 nokey2
        MIGRATE 127.0.0.1 $T "" 0 1000 keys
        COMMAND GETKEYS MIGRATE h 1 "" 0 0 keys a b
        COMMAND GETKEYS MIGRATE h 1 k 0 0 copy
        COMMAND GETKEYS MIGRATE h 1 k 0 0 keys a
        # every type, one by one and with KEYS
        MIGRATE 127.0.0.1 $T s:big 0 5000
        MIGRATE 127.0.0.1 $T s:ttl 0 0
        MIGRATE 127.0.0.1 $T "" 0 5000 keys l:5 l:1000 nokey h:5 h:1000
        MIGRATE 127.0.0.1 $T "" 1 5000 copy keys set:5 set:1000 iset:5 iset:1000
        MIGRATE 127.0.0.1 $T z:5 2 5000
        MIGRATE 127.0.0.1 $T z:1000 0 -3
        MIGRATE 127.0.0.1 $T x 3 5000 copy
        EXISTS s:big l:5 set:5 z:5 x
        # BUSYKEY and REPLACE
        MIGRATE 127.0.0.1 $T set:5 1 5000 copy
        MIGRATE 127.0.0.1 $T set:5 1 5000 copy replace
        SET s:int 999
        T SET s:int taken
        MIGRATE 127.0.0.1 $T "" 0 5000 keys s:int iset:5
        MIGRATE 127.0.0.1 $T "" 0 5000 replace keys s:int
        # a database the target does not have, then back to one it has
        SET k1 v
        MIGRATE 127.0.0.1 $T k1 99 5000
        MIGRATE 127.0.0.1 $T k1 -1 5000
        MIGRATE 127.0.0.1 $T k1 2 5000
        # the target drops the cached connection: Redis reconnects once, silently
        SET k2 v
        T CLIENT KILL TYPE normal SKIPME yes
        MIGRATE 127.0.0.1 $T k2 0 5000
        # AUTH against a target without a password, then with one, then an ACL user
        SET k3 v
        MIGRATE 127.0.0.1 $T k3 0 5000 AUTH pw
        T CONFIG SET requirepass pw
        MIGRATE 127.0.0.1 $T k3 0 5000
        MIGRATE 127.0.0.1 $T k3 0 5000 AUTH bad
        MIGRATE 127.0.0.1 $T k3 0 5000 AUTH pw
        "#,
    ));
    // The node has no ACL users yet: AUTH2 is checked against redis-server targets only.
    if acl {
        s.extend(lines(
            r#"
        SET k4 v
        T ACL SETUSER mover on >secret ~* +@all
        MIGRATE 127.0.0.1 $T k4 0 5000 AUTH2 mover wrong
        MIGRATE 127.0.0.1 $T k4 0 5000 AUTH2 nobody secret
        MIGRATE 127.0.0.1 $T k4 0 5000 AUTH2 mover secret
        T ACL SETUSER mover resetkeys ~other*
        SET k5 v
        MIGRATE 127.0.0.1 $T k5 0 5000 AUTH2 mover secret
        T ACL DELUSER mover
        "#,
        ));
    }
    s.extend(lines(
        r#"
        T CONFIG SET requirepass ""
        # keys of another database on the source
        SELECT 1
        SET k6 v
        MIGRATE 127.0.0.1 $T k6 0 5000
        SELECT 0
        "#,
    ));
    s
}

/// A seeded random sequence: writes on both ends and MIGRATEs with random options, valid and
/// invalid.
fn random_sequence(seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    let keys = ["a", "b", "c", "d", "e"];
    let mut out = Vec::new();
    for _ in 0..n {
        let k = rng.pick(&keys);
        let line = match rng.below(10) {
            0 => format!("SET {k} {}", rng.below(100)),
            1 => format!("RPUSH {k} {}", rng.below(100)),
            2 => format!("ZADD {k} {} m{}", rng.below(9), rng.below(5)),
            3 => format!("PEXPIRE {k} {}", 50_000 + rng.below(50_000)),
            4 => format!("T SET {k} t"),
            5 => format!("T DEL {k}"),
            _ => {
                let db = rng.pick(&["0", "0", "1", "2", "-1", "x", "16"]);
                let timeout = rng.pick(&["5000", "0", "-1", "x", "5000"]);
                let mut l = format!("MIGRATE 127.0.0.1 $T");
                let multi = rng.below(3) == 0;
                let key = if multi && rng.below(4) != 0 {
                    "\"\""
                } else {
                    k
                };
                l.push_str(&format!(" {key} {db} {timeout}"));
                for opt in ["COPY", "REPLACE", "AUTH x", "AUTH2 u p", "BOGUS"] {
                    let p = if opt.starts_with("AUTH") || opt == "BOGUS" {
                        12
                    } else {
                        3
                    };
                    if rng.below(p) == 0 {
                        l.push(' ');
                        l.push_str(opt);
                    }
                }
                if multi {
                    l.push_str(" KEYS");
                    for _ in 0..rng.below(4) {
                        l.push(' ');
                        l.push_str(rng.pick(&keys));
                    }
                }
                l
            }
        };
        out.push(line);
    }
    out
}

fn check_pairing(node_src: bool, node_tgt: bool) {
    let mut q = Quad::start(node_src, node_tgt);
    let mut failures = q.run(&scripted(!node_tgt));
    failures.extend(q.same_data());
    failures.extend(q.run(&random_sequence(0x5eed_0017, 400)));
    failures.extend(q.same_data());
    assert!(
        failures.is_empty(),
        "{} differences from redis-server → redis-server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn node_source_to_redis_target_matches_redis() {
    check_pairing(true, false);
}

#[test]
fn redis_source_to_node_target_matches_redis() {
    check_pairing(false, true);
}

#[test]
fn node_to_node_matches_redis() {
    check_pairing(true, true);
}

/// Each key's content on the target equals what the source held before the move, for every
/// pairing with a node in it.
#[test]
fn every_type_arrives_as_it_left() {
    let dir = tempfile::tempdir().unwrap();
    for (node_src, node_tgt) in [(true, false), (false, true), (true, true)] {
        let src = start(node_src, dir.path(), &format!("s{node_src}{node_tgt}"));
        let tgt = start(node_tgt, dir.path(), &format!("t{node_src}{node_tgt}"));
        let mut s = RawConn::connect(src.port()).unwrap();
        for l in populate() {
            let args = split_args(l.trim_start_matches('!')).unwrap();
            let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            s.call_bytes(&refs);
        }
        let before = contents(src.port());
        let keys: Vec<String> = before
            .iter()
            .map(|(c, _)| c.split(' ').nth(1).unwrap().to_string())
            .collect();
        let mut cmd = vec!["MIGRATE", "127.0.0.1", "", "", "0", "5000", "KEYS"];
        let port = tgt.port().to_string();
        cmd[2] = &port;
        cmd.extend(keys.iter().map(String::as_str));
        assert_eq!(s.call(&cmd), b"+OK\r\n", "{node_src} {node_tgt}");
        assert!(contents(src.port()).is_empty());
        let after = contents(tgt.port());
        let d = first_difference(&before, &after);
        assert!(
            d.is_none(),
            "{node_src} {node_tgt}: {}",
            d.unwrap_or_default()
        );
    }
}

/// A target that accepts, reads the request, and answers only when told.
fn held_target() -> (
    u16,
    std::sync::mpsc::Sender<Vec<u8>>,
    std::thread::JoinHandle<()>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(answer) = rx.recv() {
            let _ = s.read(&mut buf);
            s.write_all(&answer).unwrap();
        }
    });
    (port, tx, h)
}

/// The node keeps serving while a target is slow, and a write that lands between the dump and
/// the acknowledgement keeps its key on the node (Redis blocks instead, so it cannot race).
#[test]
fn a_raced_write_is_kept_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut c = RawConn::connect(node.port).unwrap();
    assert_eq!(c.call(&["MSET", "a", "1", "b", "2"]), b"+OK\r\n");
    let (port, answer, h) = held_target();
    let port = port.to_string();
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
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.call(&["SET", "a", "new"]), b"+OK\r\n");
    answer.send(b"+OK\r\n+OK\r\n+OK\r\n".to_vec()).unwrap();
    assert_eq!(m.join().unwrap(), b"+OK\r\n");
    drop(answer);
    h.join().unwrap();
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
    let mut mon = RawConn::connect(master.port).unwrap();
    assert_eq!(mon.call(&["MONITOR"]), b"+OK\r\n");
    c.call(&["MSET", "a", "1", "b", "2", "c", "3"]);
    c.call(&["SLOWLOG", "RESET"]);
    c.call(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let port = target.port.to_string();
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
    assert_eq!(target_clients(target.port), 0);
}
