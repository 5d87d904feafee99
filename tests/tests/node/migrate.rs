//! MIGRATE between real processes: a node as the source, as the target, and both, each run side
//! by side with redis-server → redis-server doing the same thing. Replies are compared byte for
//! byte and the resulting datasets (sources and targets) key by key; every type in small and big
//! encodings, expiries, the KEYS form, COPY, REPLACE and BUSYKEY, NOKEY, destination databases,
//! AUTH and AUTH2, a dropped cached connection, and a seeded random sequence in RESP2 and RESP3.
//! What only the node does is in `migrate_node.rs`.

use redis::Connection;
use vigil_tests::diff::split_args;
use vigil_tests::seeded::Rng;
use vigil_tests::{NodeProc, RawConn, RedisProc};

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
    vigil_tests::content::of(c, key, vigil_tests::content::StreamView::Groups)
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
        COMMAND GETKEYS MIGRATE h 1 "" 0 0 auth keys b
        COMMAND GETKEYS MIGRATE h 1 "" 0 0 copy keys
        COMMAND GETKEYSANDFLAGS MIGRATE h 1 "" 0 0 replace keys a b
        COMMAND GETKEYSANDFLAGS MIGRATE h 1 k 0 0
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
                let mut l = "MIGRATE 127.0.0.1 $T".to_string();
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
    let mut resp3 = vec!["!HELLO 3".to_string()];
    resp3.extend(random_sequence(0x5eed_0018, 200));
    failures.extend(q.run(&resp3));
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
