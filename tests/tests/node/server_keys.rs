//! Key commands against `redis-server` 7.0: INCRBYFLOAT and HINCRBYFLOAT in long double (fixed
//! cases and many random values), a seeded random sequence of key commands across databases
//! (COPY, MOVE, SWAPDB, ...), and DEBUG DIGEST equal on a master, its replica, after a restart
//! and after DEBUG RELOAD.

use std::time::{Duration, Instant};

use vigil_tests::diff::{assert_none, compare};
use vigil_tests::seeded::Rng;
use vigil_tests::{NodeProc, RawConn, RedisProc};

/// A redis-server that answers DEBUG, a node, and a connection to each.
fn pair() -> (RedisProc, NodeProc, RawConn, RawConn, tempfile::TempDir) {
    let redis = RedisProc::start_with(&["--enable-debug-command", "yes"]);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let r = RawConn::connect(redis.port).unwrap();
    let v = RawConn::connect(node.port).unwrap();
    (redis, node, r, v, dir)
}

const FLOATS: &str = r#"
SET n 9223372036854775806
INCRBYFLOAT n 1.5
INCRBYFLOAT f 10.5
INCRBYFLOAT f 0.1
INCRBYFLOAT f -10.6
INCRBYFLOAT f 5.0e3
INCRBYFLOAT f 2.0e2
INCRBYFLOAT f 1e-20
INCRBYFLOAT f " 1"
INCRBYFLOAT f "1 "
INCRBYFLOAT f abc
INCRBYFLOAT f nan
INCRBYFLOAT f inf
INCRBYFLOAT f -inf
INCRBYFLOAT f ""
SET big 1e4932
INCRBYFLOAT big 1e4932
SET s " 1"
INCRBYFLOAT s 1
LPUSH l a
INCRBYFLOAT l 1
HINCRBYFLOAT h f 1.5
HINCRBYFLOAT h f 9223372036854775806
HINCRBYFLOAT h f inf
HINCRBYFLOAT h f nan
HINCRBYFLOAT h f x
HSET h g x
HINCRBYFLOAT h g 1
HINCRBYFLOAT h big 1e4932
HINCRBYFLOAT h big 1e4932
HINCRBYFLOAT l f 1
"#;

#[test]
fn incrbyfloat_is_long_double_as_in_redis() {
    let mut script = String::from(FLOATS);
    // Many random values, added in long double: the digits must agree.
    let mut rng = Rng(7);
    for i in 0..300 {
        let v = match rng.bits() % 6 {
            0 => format!("{}", rng.bits() as i64),
            1 => format!("{}.{}", rng.bits() % 100000, rng.bits() % 1000),
            2 => format!(
                "-{}.{:03}e{}",
                rng.bits() % 10,
                rng.bits() % 1000,
                rng.bits() % 30
            ),
            3 => format!("{}e-{}", rng.bits() % 1000, rng.bits() % 20),
            4 => format!("0.{}", rng.bits()),
            _ => format!("{}", rng.bits() % 10),
        };
        script.push_str(&format!("INCRBYFLOAT r{} {v}\n", i % 7));
        script.push_str(&format!("HINCRBYFLOAT rh f{} {v}\n", i % 5));
    }
    let (_redis, _node, mut r, mut v, _dir) = pair();
    let mut f = compare(&format!("FLUSHALL\n{script}"), &mut r, &mut v);
    f.extend(compare(
        &format!("FLUSHALL\n!HELLO 3\n{script}"),
        &mut r,
        &mut v,
    ));
    assert_none(&f);
}

/// A fixed-seed generator (the sequence must be the same on every run).
/// A seeded random sequence of key commands across databases, valid and not.
fn random_key_script(seed: u64, n: usize) -> String {
    let mut rng = Rng(seed);
    let mut pick = |xs: &[&str]| xs[rng.bits() as usize % xs.len()].to_string();
    let keys = ["a", "b", "c", "l", "h", "z"];
    let dbs = ["0", "1", "2", "3", "15", "16", "-1", "x"];
    let mut out = String::new();
    for _ in 0..n {
        let k = pick(&keys);
        let k2 = pick(&keys);
        let d = pick(&dbs);
        let line = match pick(&[
            "set", "copy", "copyr", "move", "swap", "select", "incr", "rpush", "hset", "zadd",
            "get", "exists", "ttl", "expire", "digest", "dbsize", "mem", "type",
        ])
        .as_str()
        {
            "set" => format!(
                "SET {k} {}",
                pick(&["1", "v", "2.5", "9223372036854775806"])
            ),
            "copy" => format!("COPY {k} {k2} DB {d}"),
            "copyr" => format!("COPY {k} {k2} REPLACE"),
            "move" => format!("MOVE {k} {d}"),
            "swap" => format!("SWAPDB {d} {}", pick(&dbs)),
            "select" => format!("SELECT {}", pick(&["0", "1", "2"])),
            "incr" => format!(
                "INCRBYFLOAT {k} {}",
                pick(&["1.5", "-0.25", "1e3", "abc", "3.0e-5"])
            ),
            "rpush" => format!("RPUSH {k} {}", pick(&["x", "y"])),
            "hset" => format!("HSET {k} f {}", pick(&["1", "x"])),
            "zadd" => format!("ZADD {k} {} m", pick(&["1", "2.5"])),
            "get" => format!("GET {k}"),
            "exists" => format!("EXISTS {k} {k2}"),
            "ttl" => format!("TTL {k}"),
            "expire" => format!("EXPIRE {k} 1000"),
            "digest" => "DEBUG DIGEST".into(),
            "dbsize" => "DBSIZE".into(),
            "mem" => format!("!MEMORY USAGE {k}"),
            _ => format!("TYPE {k}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("DEBUG DIGEST\n");
    out
}

#[test]
fn random_key_commands_match_redis() {
    let (_redis, _node, mut r, mut v, _dir) = pair();
    let mut f = Vec::new();
    for seed in [1, 2, 3] {
        f.extend(compare(
            &format!("FLUSHALL\nSELECT 0\n{}", random_key_script(seed, 300)),
            &mut r,
            &mut v,
        ));
    }
    assert_none(&f);
}

fn digest(c: &mut RawConn) -> Vec<u8> {
    c.call(&["DEBUG", "DIGEST"])
}

#[test]
fn digest_is_equal_on_replica_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    let mut m = RawConn::connect(master.port).unwrap();
    for line in random_key_script(11, 400).lines() {
        let args: Vec<&str> = line.trim_start_matches('!').split(' ').collect();
        m.call(&args);
    }
    let want = digest(&mut m);
    let mut r = RawConn::connect(replica.port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while digest(&mut r) != want {
        assert!(Instant::now() < deadline, "replica digest differs");
        std::thread::sleep(Duration::from_millis(50));
    }
    master.kill9();
    let restarted = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let mut c = RawConn::connect(restarted.port).unwrap();
    assert_eq!(
        digest(&mut c),
        want,
        "digest differs after replaying the log"
    );
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    assert_eq!(digest(&mut c), want, "digest differs after DEBUG RELOAD");
    drop(restarted);
    let again = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let mut c = RawConn::connect(again.port).unwrap();
    assert_eq!(
        digest(&mut c),
        want,
        "digest differs after loading the snapshot"
    );
}
