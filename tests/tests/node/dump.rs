//! Redis' RDB format on `vigil node` against redis-server 7.0: DUMP on redis-server → RESTORE on
//! the node → DUMP → RESTORE on redis-server for every type and encoding, compared by content;
//! DUMP bytes compared byte for byte where Redis' output is deterministic; RESTORE errors and
//! options and OBJECT ENCODING across the thresholds as differential scripts (RESP2, RESP3); an
//! RDB file written by redis-server imported with `--import` and compared key by key; a
//! corrupt file refused naming the key and offset.

use redis::{Connection, Value};
use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::{NodeProc, RedisProc};

fn conn(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn run(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// A key's content in a comparable form: type, value (sets and hashes sorted), expiry or not.
fn content(c: &mut Connection, key: &str) -> String {
    let body = vigil_tests::content::of(c, key, vigil_tests::content::StreamView::Full);
    let ttl: i64 = redis::cmd("PEXPIRETIME").arg(key).query(c).unwrap();
    format!("{body} ttl:{}", ttl > 0)
}

/// Every type in small and big encodings, with integers, expiries and a stream with groups.
fn populate(c: &mut Connection) -> Vec<String> {
    let mut keys = Vec::new();
    let mut k = |name: &str| {
        keys.push(name.to_string());
        name.to_string()
    };
    let big = "x".repeat(100);
    let comp = "abcabcabcabc".repeat(50);
    for (name, v) in [
        ("s:int", "12345"),
        ("s:neg", "-5"),
        ("s:big-int", "9223372036854775807"),
        ("s:short", "hello"),
        ("s:zero-pad", "0123"),
        ("s:long", big.as_str()),
        ("s:comp", comp.as_str()),
    ] {
        run(c, &["SET", &k(name), v]);
    }
    run(c, &["SET", &k("s:ttl"), "v", "PX", "100000000"]);
    for n in [5usize, 3000] {
        let l = k(&format!("l:{n}"));
        let h = k(&format!("h:{n}"));
        let s = k(&format!("set:{n}"));
        let si = k(&format!("iset:{n}"));
        let z = k(&format!("z:{n}"));
        for i in 0..n {
            let v = if i % 3 == 0 {
                format!("{i}")
            } else {
                format!("val-{i}")
            };
            run(c, &["RPUSH", &l, &v]);
            run(c, &["HSET", &h, &format!("f{i}"), &v]);
            run(c, &["SADD", &s, &format!("m{i}")]);
            run(c, &["SADD", &si, &format!("{}", i as i64 * 1_000_003 - 7)]);
            run(
                c,
                &["ZADD", &z, &format!("{}", i as f64 / 7.0), &format!("m{i}")],
            );
        }
    }
    run(c, &["HSET", &k("h:longval"), "f", &big]);
    run(
        c,
        &[
            "ZADD",
            &k("z:ints"),
            "1",
            "a",
            "-2",
            "b",
            "300000",
            "c",
            "inf",
            "d",
        ],
    );
    run(c, &["SADD", &k("iset:wide"), "1", "70000", "5000000000"]);
    run(c, &["PEXPIRE", "h:5", "100000000"]);
    let x = k("x");
    for i in 1..=300 {
        let f = if i % 4 == 0 { "other" } else { "f" };
        run(
            c,
            &[
                "XADD",
                &x,
                &format!("{i}-1"),
                f,
                &format!("v{i}"),
                "n",
                &format!("{i}"),
            ],
        );
    }
    run(c, &["XDEL", &x, "7-1", "150-1"]);
    run(c, &["XGROUP", "CREATE", &x, "g1", "0"]);
    run(c, &["XGROUP", "CREATE", &x, "g2", "$"]);
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "5",
            "STREAMS",
            &x,
            ">",
        ],
    );
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "3",
            "STREAMS",
            &x,
            ">",
        ],
    );
    run(c, &["XACK", &x, "g1", "2-1"]);
    run(c, &["XGROUP", "CREATECONSUMER", &x, "g2", "carol"]);
    let e = k("x:empty");
    run(c, &["XADD", &e, "1-1", "a", "1"]);
    run(c, &["XDEL", &e, "1-1"]);
    keys
}

/// DUMP on redis-server → RESTORE on the node → DUMP → RESTORE on redis-server: the same
/// content everywhere; and the node's DUMP bytes equal redis-server's where Redis' output is
/// deterministic.
#[test]
fn dump_restore_round_trips_every_type_and_encoding() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut r = conn(redis.port);
    let mut v = node.client();
    let keys = populate(&mut r);
    let mut failures = Vec::new();
    for key in &keys {
        let want = content(&mut r, key);
        let payload = bytes(run(&mut r, &["DUMP", key]));
        let ttl: i64 = redis::cmd("PEXPIRETIME").arg(key).query(&mut r).unwrap();
        let ttl = ttl.max(0).to_string();
        let ok: String = redis::cmd("RESTORE")
            .arg(key)
            .arg(&ttl)
            .arg(&payload)
            .arg("ABSTTL")
            .query(&mut v)
            .unwrap_or_else(|e| panic!("RESTORE {key} on the node: {e}"));
        assert_eq!(ok, "OK");
        let got = content(&mut v, key);
        if got != want {
            failures.push(format!("{key}: node holds\n  {got}\nredis holds\n  {want}"));
            continue;
        }
        let back = bytes(run(&mut v, &["DUMP", key]));
        let copy = format!("{key}:copy");
        let _: () = redis::cmd("RESTORE")
            .arg(&copy)
            .arg(&ttl)
            .arg(&back)
            .arg("ABSTTL")
            .query(&mut r)
            .unwrap_or_else(|e| panic!("RESTORE of the node's DUMP of {key} on redis-server: {e}"));
        let again = content(&mut r, &copy);
        if again != want {
            failures.push(format!(
                "{key}: redis restored from the node's DUMP\n  {again}\nwant\n  {want}"
            ));
        }
        let deterministic = key.starts_with("s:")
            || key.starts_with("iset:")
            || key == "h:5"
            || key == "z:5"
            || key == "z:ints"
            || key == "l:5";
        if deterministic && back != payload {
            failures.push(format!(
                "{key}: DUMP bytes differ\n  redis {payload:?}\n  vigil {back:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RESTORE's errors and options, DUMP of missing keys, OBJECT across the thresholds.
const SCRIPT: &str = r#"
SET s hello
! DUMP s
DUMP nosuch
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n"
GET k
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n"
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n" REPLACE
RESTORE k2 -1 "\x00\x05hello\n\x00cr\xdfve4 \n"
RESTORE k2 abc "\x00\x05hello\n\x00cr\xdfve4 \n"
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \x0b"
RESTORE k2 0 "\x00\x05hello\x0b\x00cr\xdfve4 \n"
RESTORE k2 0 short
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" BADOPT
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" IDLETIME -1
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 256
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" IDLETIME 10 FREQ 5
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" IDLETIME
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 5
RESTORE k3 1 "\x00\x05hello\n\x00cr\xdfve4 \n" ABSTTL
EXISTS k3
RESTORE k 1 "\x00\x05hello\n\x00cr\xdfve4 \n" ABSTTL REPLACE
EXISTS k
RESTORE k4 100000 "\x00\x05hello\n\x00cr\xdfve4 \n"
! PTTL k4
RESTORE
RESTORE k4 0
OBJECT ENCODING s
OBJECT ENCODING nosuch
OBJECT REFCOUNT s
OBJECT REFCOUNT nosuch
# Touched just before, in one transaction: idle 0 on both, however long the script took to
# get here (two requests could straddle a tick of the seconds-resolution LRU clock).
MULTI
GET s
OBJECT IDLETIME s
EXEC
OBJECT FREQ s
OBJECT HELP
OBJECT HELP x
OBJECT ENCODING
OBJECT ENCODING a b
OBJECT NOPE k
OBJECT
SET i 12
OBJECT ENCODING i
OBJECT REFCOUNT i
SET i 123456
OBJECT REFCOUNT i
SET e 012
OBJECT ENCODING e
SET e aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
OBJECT ENCODING e
SET e aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
OBJECT ENCODING e
SET e 9223372036854775808
OBJECT ENCODING e
INCR n
OBJECT ENCODING n
RPUSH l a
OBJECT ENCODING l
HSET h f v
OBJECT ENCODING h
HSET h g vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
OBJECT ENCODING h
HSET h g vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
OBJECT ENCODING h
SADD st 1 2 3
OBJECT ENCODING st
SADD st x
OBJECT ENCODING st
SADD st2 1 -5 99999999999
OBJECT ENCODING st2
ZADD z 1 a
OBJECT ENCODING z
ZADD z 2 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
OBJECT ENCODING z
XADD x 1-1 a 1
OBJECT ENCODING x
SET a 1234
SETRANGE a 0 2
OBJECT ENCODING a
INCR a
OBJECT ENCODING a
SET a 1234
SETRANGE a 0 ""
OBJECT ENCODING a
APPEND b x
OBJECT ENCODING b
APPEND b 1
OBJECT ENCODING b
SETRANGE c 2 x
OBJECT ENCODING c
SET c 5
OBJECT ENCODING c
INCRBYFLOAT f 1.5
OBJECT ENCODING f
DUMP i
DUMP st2
DUMP nosuch
"#;

#[test]
fn restore_and_object_match_redis_in_resp2_and_resp3() {
    let mut p = Pair::start();
    assert_none(&p.compare(SCRIPT));
    let mut p = Pair::start();
    let mut f = p.compare("! HELLO 3");
    f.extend(p.compare(SCRIPT));
    assert_none(&f);
}

/// Crossing the count thresholds (512 hash fields and set integers, 128 sorted set members)
/// changes the encoding as in Redis.
#[test]
fn encodings_follow_the_count_thresholds() {
    let mut script = String::new();
    for i in 0..514 {
        script.push_str(&format!("HSET h f{i} {i}\nSADD s {i}\n"));
        if i < 130 {
            script.push_str(&format!("ZADD z {i} m{i}\n"));
        }
        if (126..130).contains(&i) || (510..514).contains(&i) {
            script.push_str("OBJECT ENCODING h\nOBJECT ENCODING s\nOBJECT ENCODING z\n");
        }
    }
    assert_matches(&script);
}

/// A sorted set keeps its encoding as Redis does: a listpack becomes a skiplist when it grows
/// past a threshold and stays one when it shrinks; loading (DEBUG RELOAD), storing results
/// (ZUNIONSTORE, ZRANGESTORE, GEOSEARCHSTORE) and COPY decide as Redis does; a listpack scans
/// whole, in rank order, with cursor 0.
#[test]
fn sorted_set_encodings_are_sticky_as_in_redis() {
    let mut script = String::from(
        "ZADD z 2 b 1 a 3 c\nOBJECT ENCODING z\nZSCAN z 0\nZSCAN z 0 MATCH b* COUNT 1\n\
         ZADD z 4 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nOBJECT ENCODING z\nZREM z xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nOBJECT ENCODING z\n\
         COPY z zc\nOBJECT ENCODING zc\nDEBUG RELOAD\nOBJECT ENCODING z\nOBJECT ENCODING zc\n\
         ZUNIONSTORE u 2 z zc\nOBJECT ENCODING u\nZRANGESTORE r z 0 -1\nOBJECT ENCODING r\n\
         GEOADD g 13.361389 38.115556 p1 15.087269 37.502669 p2\nOBJECT ENCODING g\n\
         GEOSEARCHSTORE gs g FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST\nOBJECT ENCODING gs\n\
         CONFIG SET zset-max-listpack-entries 0\nZADD y 1 a\nOBJECT ENCODING y\n\
         ZUNIONSTORE u2 2 z zc\nOBJECT ENCODING u2\nZINCRBY n 1 a\nOBJECT ENCODING n\n\
         CONFIG SET zset-max-listpack-entries 128\nCONFIG SET zset-max-listpack-value 1\n\
         ZADD v 1 a 2 bb\nOBJECT ENCODING v\nCONFIG SET zset-max-listpack-value 64\n\
         ZPOPMIN z\nZPOPMAX z\nOBJECT ENCODING z\n\
         ZSCAN nosuch 0 COUNT 0\nZSCAN nosuch x\nZSCAN z 0 COUNT 0\nZSCAN z 0 MATCH\n",
    );
    for i in 0..129 {
        script.push_str(&format!("ZADD big {i} m{i}\n"));
    }
    script.push_str(
        "OBJECT ENCODING big\nZREMRANGEBYRANK big 0 -3\nOBJECT ENCODING big\n\
         ZRANGE big 0 -1 WITHSCORES\nCOPY big big2\nOBJECT ENCODING big2\n\
         DEBUG RELOAD\nOBJECT ENCODING big\nOBJECT ENCODING big2\n",
    );
    let mut p = Pair::start_with(&["--enable-debug-command", "yes"]);
    assert_none(&p.compare(&script));
}

fn assert_matches(script: &str) {
    assert_none(&Pair::start().compare(script));
}

mod import;
mod redis_master;
mod seeded;

/// RESTOREd keys (relative TTLs propagated as absolute ones) reach a replica and survive a
/// SIGKILL restart (log replay) and a snapshot restart, with the same expiry times.
#[test]
fn restored_keys_replicate_and_survive_restarts() {
    let redis = RedisProc::start();
    let mut r = conn(redis.port);
    let keys = populate(&mut r);
    let dir = tempfile::tempdir().unwrap();
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    let mut m = master.client();
    for (i, key) in keys.iter().enumerate() {
        let payload = bytes(run(&mut r, &["DUMP", key]));
        let ttl = if i % 3 == 0 { "50000000" } else { "0" };
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(ttl)
            .arg(&payload)
            .query(&mut m)
            .unwrap();
    }
    let state = |c: &mut Connection| -> Vec<String> {
        keys.iter()
            .map(|k| {
                let at: i64 = redis::cmd("PEXPIRETIME").arg(k).query(c).unwrap();
                format!("{} {at}", content(c, k))
            })
            .collect()
    };
    let want = state(&mut m);
    let mut rc = replica.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while state(&mut rc) != want {
        assert!(std::time::Instant::now() < deadline, "replica differs");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    master.kill9();
    let restarted = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let mut c = restarted.client();
    assert!(state(&mut c) == want, "restarted node differs");
    let _: Value = redis::cmd("SAVE").query(&mut c).unwrap();
    drop(restarted);
    let again = NodeProc::start(&dir.path().join("m"), &[]);
    assert!(
        state(&mut again.client()) == want,
        "node restarted from its snapshot differs"
    );
}
