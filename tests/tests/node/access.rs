//! Per-key access data (Redis' `lru` field) on `vigil node` beside redis-server 7.0: OBJECT
//! IDLETIME follows use and not inspection, TOUCH and reads restart it, RESTORE IDLETIME and
//! FREQ set it, LFU counters grow logarithmically and survive an overwrite, a write's lookup
//! of the key it replaces counts as a use (SET, MSET, the `*STORE` commands), RENAME and MOVE
//! keep the moved value's counter, the EXPIRE family, PERSIST, RESTORE and COPY's destination
//! count as uses, the errors of each policy are worded as Redis words them,
//! CLIENT NO-TOUCH leaves access times alone, and an RDB file's idle-time hints are kept by
//! `--import`.
//!
//! Idle times are compared as ranges on both servers (the clocks tick at different instants);
//! replies that do not depend on time are compared byte for byte.

use std::thread::sleep;
use std::time::Duration;

use redis::Connection;
use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::{NodeProc, RedisProc};

fn conn(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn int(c: &mut Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn idle(c: &mut Connection, key: &str) -> i64 {
    int(c, &["OBJECT", "IDLETIME", key])
}

/// What does not depend on the clock, byte for byte in RESP2 and RESP3. A log factor of 0
/// makes every access raise an LFU counter (at 10, an access of a key at 100 raises it with
/// a probability of 1 in 951, on each server independently); the script runs away from a
/// minute boundary ([`away_from_a_minute_boundary`]), where counters decay.
const SCRIPT: &str = r#"
CONFIG SET lfu-log-factor 0
SET s hello
OBJECT FREQ s
OBJECT FREQ nosuch
OBJECT IDLETIME nosuch
CONFIG SET maxmemory-policy allkeys-lfu
OBJECT IDLETIME s
OBJECT FREQ nosuch
SET fresh v
OBJECT FREQ fresh
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 100
OBJECT FREQ k
SET k other
OBJECT FREQ k
APPEND k more
OBJECT FREQ k
MSET k a
OBJECT FREQ k
SET k b GET
OBJECT FREQ k
SETNX k c
OBJECT FREQ k
GETSET k d
OBJECT FREQ k
SETEX k 100 e
OBJECT FREQ k
MSETNX k f other g
OBJECT FREQ k
SET k h XX
OBJECT FREQ k
INCR k
RESTORE r 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 50
RENAME r r2
OBJECT FREQ r2
RESTORE r 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 20
RENAMENX r r2
OBJECT FREQ r2
OBJECT FREQ r
MOVE r 1
SELECT 1
OBJECT FREQ r
DEL r
SELECT 0
RESTORE dst 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 50
SADD set1 a
SUNIONSTORE dst set1
OBJECT FREQ dst
ZADD z1 1 a
ZUNIONSTORE dst 1 z1
OBJECT FREQ dst
ZRANGESTORE dst z1 0 -1
OBJECT FREQ dst
RPUSH l1 b a
SORT l1 ALPHA STORE dst
OBJECT FREQ dst
SET b1 x
BITOP NOT dst b1
OBJECT FREQ dst
COPY b1 dst REPLACE
OBJECT FREQ dst
SETRANGE dst 0 y
OBJECT FREQ dst
PFADD h1 a
PFMERGE dst2 h1
OBJECT FREQ dst2
LMOVE l1 dst3 LEFT LEFT
OBJECT FREQ dst3
GEOADD g1 0 0 p
GEOSEARCHSTORE dst g1 FROMLONLAT 0 0 BYRADIUS 10 km
OBJECT FREQ dst
DEL r2 dst dst2 dst3 set1 z1 l1 b1 h1 g1
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 0 REPLACE
OBJECT FREQ k
RESTORE k 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 255 REPLACE
GET k
OBJECT FREQ k
RESTORE k2 0 "\x00\x05hello\n\x00cr\xdfve4 \n" IDLETIME 50
OBJECT FREQ k2
RESTORE e 0 "\x00\x05hello\n\x00cr\xdfve4 \n" FREQ 30
EXPIRE e 1000
OBJECT FREQ e
PEXPIRE e 1000000 NX
OBJECT FREQ e
EXPIREAT e 99999999999 GT
OBJECT FREQ e
PERSIST e
OBJECT FREQ e
PERSIST e
OBJECT FREQ e
EXPIRE nosuch 10
PERSIST nosuch
RESTORE e 0 "\x00\x05hello\n\x00cr\xdfve4 \n"
OBJECT FREQ e
SET c1 x
COPY c1 e
OBJECT FREQ e
COPY c1 e DB 1
SELECT 1
OBJECT FREQ e
COPY e e DB 0
OBJECT FREQ e
SELECT 0
OBJECT FREQ e
DEL e c1
SELECT 1
DEL e
SELECT 0
CONFIG SET maxmemory-policy VOLATILE-LFU
OBJECT FREQ k
CONFIG SET maxmemory-policy volatile-lru
OBJECT FREQ k
CONFIG SET maxmemory-policy noeviction
CONFIG SET lfu-log-factor 10
"#;

/// Waits while either server's LFU minute clock is within a few seconds of its next minute:
/// Redis counts minutes of wall-clock time, the node of the monotonic clock (a clock step
/// must not decay every counter), and a key's counter decays by one at each minute boundary
/// it is idle across. Replies that would differ only by such a decay are then comparable.
fn away_from_a_minute_boundary() {
    fn secs(clock: libc::clockid_t) -> i64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
        assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
        ts.tv_sec
    }
    while [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC]
        .into_iter()
        .any(|c| secs(c) % 60 >= 55)
    {
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn access_replies_match_redis_server() {
    let mut p = Pair::start();
    away_from_a_minute_boundary();
    assert_none(&p.both_protocols(SCRIPT));
}

/// The same steps on both servers, with the same expectations: the test is checked against
/// redis-server as much as it checks the node.
fn idle_time_steps(port: u16, name: &str) {
    let mut c = conn(port);
    let _: () = redis::cmd("SET")
        .arg("foo")
        .arg("bar")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("read")
        .arg("bar")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("list")
        .arg("a")
        .query(&mut c)
        .unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("foo").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("old")
        .arg(0)
        .arg(&dump)
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let old = idle(&mut c, "old");
    assert!(
        (1000..=1002).contains(&old),
        "{name}: RESTORE IDLETIME 1000 gave {old}"
    );
    assert!(idle(&mut c, "foo") <= 1, "{name}: a new key is not idle");
    sleep(Duration::from_millis(3100));
    // Looking at keys is not using them.
    int(&mut c, &["TTL", "foo"]);
    int(&mut c, &["PTTL", "foo"]);
    int(&mut c, &["EXISTS", "foo"]);
    let _: String = redis::cmd("TYPE").arg("foo").query(&mut c).unwrap();
    let _: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("foo")
        .query(&mut c)
        .unwrap();
    int(&mut c, &["MEMORY", "USAGE", "foo"]);
    let looked_at = idle(&mut c, "foo");
    assert!(
        looked_at >= 2,
        "{name}: inspection reset the idle time to {looked_at}"
    );
    // Using them is.
    assert_eq!(int(&mut c, &["TOUCH", "foo", "nosuch"]), 1, "{name}");
    let _: String = redis::cmd("GET").arg("read").query(&mut c).unwrap();
    int(&mut c, &["LPUSH", "list", "b"]);
    for key in ["foo", "read", "list"] {
        let t = idle(&mut c, key);
        assert!(t < 2, "{name}: {key} is {t} s idle right after use");
    }
    let old = idle(&mut c, "old");
    assert!((1002..=1005).contains(&old), "{name}: old is {old} s idle");
    // An overwrite is a new object under an LRU policy.
    let _: () = redis::cmd("SET")
        .arg("old")
        .arg("new")
        .query(&mut c)
        .unwrap();
    assert!(
        idle(&mut c, "old") < 2,
        "{name}: SET kept the old idle time"
    );
}

#[test]
fn idle_time_follows_use_not_inspection() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    // Both at once: each sleeps 3 s.
    let rp = redis.port;
    let r = std::thread::spawn(move || idle_time_steps(rp, "redis-server"));
    idle_time_steps(node.port, "vigil node");
    r.join().expect("redis-server steps");
}

#[test]
fn client_no_touch_leaves_access_times_alone_except_for_touch() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut c = node.client();
    let dump: Vec<u8> = {
        let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
        redis::cmd("DUMP").arg("a").query(&mut c).unwrap()
    };
    for key in ["a", "b"] {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(&dump)
            .arg("REPLACE")
            .arg("IDLETIME")
            .arg(500)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("CLIENT")
        .arg("NO-TOUCH")
        .arg("ON")
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    int(&mut c, &["STRLEN", "a"]);
    assert!(
        idle(&mut c, "a") >= 500,
        "GET/STRLEN in NO-TOUCH mode touched the key"
    );
    assert_eq!(int(&mut c, &["TOUCH", "b"]), 1);
    assert!(
        idle(&mut c, "b") < 2,
        "TOUCH in NO-TOUCH mode must still touch"
    );
    let _: () = redis::cmd("CLIENT")
        .arg("NO-TOUCH")
        .arg("OFF")
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    assert!(
        idle(&mut c, "a") < 2,
        "GET after NO-TOUCH OFF did not touch"
    );
    let err = redis::cmd("CLIENT")
        .arg("NO-TOUCH")
        .arg("maybe")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
}

/// The counter of a key read 1000 times: about 18 with the default log factor (Redis' table),
/// on both servers; a lower `lfu-log-factor` makes it climb faster.
#[test]
fn lfu_counters_grow_logarithmically_on_both() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    for (port, name) in [(redis.port, "redis-server"), (node.port, "vigil node")] {
        away_from_a_minute_boundary();
        let mut c = conn(port);
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("allkeys-lfu")
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("SET").arg("hot").arg("v").query(&mut c).unwrap();
        let mut pipe = redis::pipe();
        for _ in 0..1000 {
            pipe.cmd("GET").arg("hot").ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
        let f = int(&mut c, &["OBJECT", "FREQ", "hot"]);
        assert!((9..=40).contains(&f), "{name}: 1000 reads gave counter {f}");
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("lfu-log-factor")
            .arg("0")
            .query(&mut c)
            .unwrap();
        for _ in 0..20 {
            let _: String = redis::cmd("GET").arg("hot").query(&mut c).unwrap();
        }
        let g = int(&mut c, &["OBJECT", "FREQ", "hot"]);
        assert!(
            g >= f + 20,
            "{name}: log factor 0 counts every hit ({f} then {g})"
        );
    }
}

/// redis-server under an LRU policy writes each key's idle time into its RDB file; the node
/// keeps it on import.
#[test]
fn import_keeps_idle_times_from_a_redis_rdb() {
    let rdir = tempfile::tempdir().unwrap();
    let redis = RedisProc::start_with(&[
        "--dir",
        rdir.path().to_str().unwrap(),
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let mut r = conn(redis.port);
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut r).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut r).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("idle")
        .arg(0)
        .arg(&dump)
        .arg("IDLETIME")
        .arg(7200)
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut r).unwrap();
    let file = rdir.path().join("dump.rdb");
    let ndir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &ndir.path().join("n"),
        &["--import", file.to_str().unwrap()],
    );
    let mut v = node.client();
    let t = idle(&mut v, "idle");
    assert!((7200..=7210).contains(&t), "imported idle time {t}");
    assert!(idle(&mut v, "k") < 60, "a fresh key imported as idle");
}
