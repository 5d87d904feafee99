//! Keyspace notifications compared with redis-server message by message: a subscriber
//! (`PSUBSCRIBE __key*@*__:*`, RESP2 and RESP3) on each server sees what a writer running the
//! same commands makes both servers announce, byte for byte and in order, under several
//! `notify-keyspace-events` settings; blocked clients served later, transactions, scripts,
//! lazy and active expiry; a seeded random sequence; and a replica announcing its master's
//! writes.

use std::time::{Duration, Instant};

use vigil_tests::NodeProc;
use vigil_tests::diff::{Pair, assert_none, compare};
use vigil_tests::raw::RawConn;
use vigil_tests::seeded::Rng;

/// The channel a writer publishes on to mark the end of a run (it matches the pattern).
const END: &str = "__keyx@0__:end";

/// The connections of one server: the writer, a second client for blocking commands, and
/// the subscriber.
struct Side {
    w: RawConn,
    b: RawConn,
    sub: RawConn,
}

impl Side {
    fn open(port: u16, classes: &str, resp3: bool) -> Side {
        let mut w = RawConn::connect(port).unwrap();
        let b = RawConn::connect(port).unwrap();
        assert_eq!(w.call(&["FLUSHALL"]), b"+OK\r\n");
        let set = w.call(&["CONFIG", "SET", "notify-keyspace-events", classes]);
        assert_eq!(set, b"+OK\r\n", "port {port}");
        let mut sub = RawConn::connect(port).unwrap();
        if resp3 {
            sub.call(&["HELLO", "3"]);
        }
        sub.call(&["PSUBSCRIBE", "__key*@*__:*"]);
        Side { w, b, sub }
    }

    /// Every message up to the end mark (which is left out).
    fn messages(&mut self) -> Vec<Vec<u8>> {
        self.w.call(&["PUBLISH", END, "end"]);
        let mut out = Vec::new();
        while let Some(m) = self.sub.unsolicited(Duration::from_secs(5)) {
            if m.windows(END.len()).any(|w| w == END.as_bytes()) {
                return out;
            }
            out.push(m);
            assert!(out.len() < 20_000, "runaway notifications");
        }
        panic!("the end mark never arrived; got {} messages", out.len());
    }
}

/// Runs `script` on both servers (lines as in `diff::compare`; `b> cmd` sends on the blocking
/// client without reading, `b<` reads and compares its reply), then compares every message
/// the subscribers got. Returns the failures and the number of messages compared.
fn run(pair: &Pair, classes: &str, resp3: bool, script: &str) -> (Vec<String>, usize) {
    let mut r = Side::open(pair.redis.port, classes, resp3);
    let mut v = Side::open(pair.node.port, classes, resp3);
    let mut failures = Vec::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("b> ") {
            let args = vigil_tests::diff::split_args(cmd).expect("quoting");
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            r.b.send_raw(&RawConn::encode_bytes(&args)).unwrap();
            v.b.send_raw(&RawConn::encode_bytes(&args)).unwrap();
            // Blocked on both before the script goes on.
            std::thread::sleep(Duration::from_millis(100));
        } else if line == "b<" {
            let (want, got) = (r.b.read_reply(), v.b.read_reply());
            if want != got {
                failures.push(format!("blocked reply: {want:?} vs {got:?}"));
            }
        } else {
            failures.extend(compare(line, &mut r.w, &mut v.w));
        }
    }
    let (want, got) = (r.messages(), v.messages());
    let show = |m: &[Vec<u8>]| -> Vec<String> {
        m.iter()
            .map(|b| String::from_utf8_lossy(b).replace("\r\n", " "))
            .collect()
    };
    if want != got {
        let (w, g) = (show(&want), show(&got));
        let first = w.iter().zip(&g).position(|(a, b)| a != b);
        failures.push(format!(
            "[{classes}, resp3 {resp3}] messages differ (redis {}, vigil {}), first at {first:?}:\n  redis: {:?}\n  vigil: {:?}",
            w.len(),
            g.len(),
            first.map_or(&w[g.len().min(w.len())..], |i| &w[i..(i + 6).min(w.len())]),
            first.map_or(&g[w.len().min(g.len())..], |i| &g[i..(i + 6).min(g.len())]),
        ));
    }
    (failures, want.len())
}

/// Every write family, with the cases Redis announces in its own way.
const FAMILIES: &str = r#"
SET a 1
SET a 2 XX
SET b 2 EX 100
SET c 3 PX 100000 GET
SET c 4 GET
SETNX a 5
SETNX n1 5
SETEX se 100 v
PSETEX pse 100000 v
GETSET a 9
GETDEL n1
GETDEL nosuch
GETEX b EX 200
GETEX b PERSIST
GETEX b PERSIST
GETEX b PXAT 1
GET nosuch
MGET a nosuch
MSET m1 1 m2 2
MSETNX m3 3 m4 4
MSETNX m3 3 m5 5
APPEND ap x
APPEND ap y
SETRANGE sr 2 ab
SETRANGE sr 0 ""
SETRANGE nosr 0 ""
INCR i
INCRBY i 5
DECR i
DECRBY i 2
INCRBYFLOAT f 1.5
SET f notnum
INCR f
DEL a ap nosuch
UNLINK m1
EXISTS m2 nosuch
TTL nosuch
TYPE nosuch
EXPIRE m2 100
PEXPIRE m2 100000
EXPIREAT m2 99999999999
EXPIRE m2 50 NX
EXPIRE m2 -1
EXPIRE nosuch 10
PERSIST se
PERSIST se
RENAME pse pse2
RENAME pse2 pse2
RENAMENX i pse2
RENAMENX i i2
SET x 1
RENAME i2 x
COPY x x2
COPY x x2
COPY x x2 REPLACE
COPY x x3 DB 2
COPY nosuch x4
MOVE x2 3
MOVE nosuch 3
SELECT 3
SET y 1
MOVE y 0
SELECT 0
TOUCH x nosuch
LPUSH l a b c
RPUSH l d
LPUSHX l e
LPUSHX nol e
RPUSHX l f
LINSERT l BEFORE a z
LINSERT l BEFORE nopivot z
LSET l 0 q
LREM l 1 q
LREM l 0 nothing
LTRIM l 0 2
LTRIM l 0 -1
LPOP l
RPOP l 2
LPOP nol
LMOVE l l2 LEFT RIGHT
RPOPLPUSH l2 l3
LMOVE l3 l3 LEFT LEFT
RPOPLPUSH nol l3
LPUSH l4 1 2 3 4
LMPOP 1 l4 LEFT COUNT 2
LMPOP 2 nol l4 RIGHT COUNT 5
LTRIM l3 5 10
SADD s 1 2 3 4 5
SADD s 1
SREM s 1 9
SMOVE s s2 2
SMOVE s s2 99
SMOVE s2 s2 2
SADD s3 a
SMOVE s3 s4 a
SADD one only
!SPOP one
SADD many a b c
~SPOP many 10
~SINTERSTORE si s s2
~SUNIONSTORE su s s2
SDIFFSTORE sd s s
SINTERSTORE su nosuch s
SUNIONSTORE nosuch2 nosuch
HSET h f 1 g 2
HSETNX h f 3
HSETNX h k 3
HMSET h a 1
HINCRBY h f 5
HINCRBYFLOAT h f 1.5
HDEL h f g nosuch
HDEL h a k
HDEL h a
ZADD z 1 a 2 b 3 c
ZADD z 1 a
ZADD z XX 5 a
ZADD z INCR 1 a
ZADD z NX 1 a
ZADD z GT CH 1 a
ZINCRBY z 0 a
ZINCRBY z 1 d
ZREM z d nosuch
ZREMRANGEBYSCORE z 0 1
ZREMRANGEBYRANK z 0 0
ZREMRANGEBYRANK z 5 6
ZADD zl 0 a 0 b 0 c
ZREMRANGEBYLEX zl [a [b
ZPOPMIN zl
ZPOPMAX z
ZPOPMAX z 0
ZADD z2 1 x 2 y
ZUNIONSTORE zu 2 z2 zl
ZINTERSTORE zi 2 z2 zl
ZINTERSTORE zu 2 z2 nosuch
ZDIFFSTORE zd 1 z2
ZRANGESTORE zr z2 0 -1
ZRANGESTORE zr nosuch 0 -1
ZMPOP 1 z2 MIN COUNT 5
XADD st 1-1 f v
XADD st MAXLEN 1 2-1 f v
XADD nost NOMKSTREAM 1-1 f v
XTRIM st MAXLEN 0
XTRIM st MAXLEN 0
XADD st 3-1 f v
XDEL st 3-1
XDEL st 3-1
XSETID st 10-1
XGROUP CREATE st g 0
XGROUP CREATE st2 g $ MKSTREAM
XGROUP SETID st g 0
XGROUP CREATECONSUMER st g c1
XGROUP CREATECONSUMER st g c1
XADD st 11-1 f v
XREADGROUP GROUP g c2 COUNT 1 STREAMS st >
XACK st g 11-1
XGROUP DELCONSUMER st g c1
XGROUP DELCONSUMER st g c1
XGROUP DESTROY st g
XGROUP DESTROY st g
SETBIT bm 7 1
SETBIT bm 7 1
SETBIT bm 100 0
BITFIELD bf SET u8 0 255
BITFIELD bf SET u8 0 255
BITFIELD bf GET u8 0
BITOP AND bo bm bf
BITOP OR bo nosuch
PFADD hl a b
PFADD hl a
PFADD hl
PFMERGE hl2 hl
GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
GEOSEARCHSTORE gs g FROMLONLAT 15 37 BYRADIUS 200 km
GEORADIUS g 15 37 200 km STORE gr
GEORADIUS g 0 0 1 km STORE gr
RPUSH sl 3 1 2
SORT sl STORE so
SORT nosuch STORE so
RESTORE rx 0 "\x00\x05hello\n\x00cr\xdfve4 \n"
RESTORE rx 0 "\x00\x05hello\n\x00cr\xdfve4 \n" REPLACE
RESTORE rx 1 "\x00\x05hello\n\x00cr\xdfve4 \n" REPLACE ABSTTL
MULTI
SET t1 1
LPUSH t2 a
INCR t1
DEL t2
EXEC
EVAL "redis.call('set', KEYS[1], 'v'); redis.call('incr', 'cnt'); redis.call('get', 'nosuch'); return redis.call('del', KEYS[1])" 1 ek
SWAPDB 0 1
SWAPDB 0 1
FLUSHDB
SET after flush
FLUSHALL
"#;

/// Blocked clients served after the write that wakes them.
const BLOCKING: &str = r#"
b> BLPOP bl 0
RPUSH bl x
b<
b> BLMOVE src dst LEFT RIGHT 0
LPUSH src a b
b<
b> BRPOPLPUSH src2 dst 0
RPUSH src2 only
b<
b> BZPOPMIN bz 0
ZADD bz 1 a
b<
b> BLMPOP 0 1 bm RIGHT COUNT 5
RPUSH bm 1 2
b<
b> BZMPOP 0 1 bzm MAX COUNT 1
ZADD bzm 1 a 2 b
b<
"#;

fn families(classes: &str) {
    let pair = Pair::start();
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for resp3 in [false, true] {
        for script in [FAMILIES, BLOCKING] {
            let (f, n) = run(&pair, classes, resp3, script);
            failures.extend(f);
            counts.push(n);
        }
    }
    assert_none(&failures);
    // The families announce something under every setting but `x` alone (nothing expires).
    assert!(
        (counts[0] > 0 && counts[2] > 0) || classes == "Kx",
        "no messages at all: {counts:?}"
    );
}

#[test]
fn every_family_with_kea_matches_redis() {
    families("KEA");
}

#[test]
fn class_subsets_match_redis() {
    families("Kx");
    families("Eg$");
    families("Klshzt");
}

#[test]
fn new_and_keymiss_match_redis() {
    families("KEAnm");
    families("En");
    families("Km");
}

#[test]
fn off_publishes_nothing() {
    let pair = Pair::start();
    let (f, n) = run(&pair, "", false, FAMILIES);
    assert_none(&f);
    assert_eq!(n, 0);
    let (f, n) = run(&pair, "A", true, BLOCKING);
    assert_none(&f);
    assert_eq!(n, 0);
}

/// Keys with PX 50 expired by access (lazy) and by waiting (active expiry).
#[test]
fn expired_events_match_redis() {
    let pair = Pair::start();
    for resp3 in [false, true] {
        let mut r = Side::open(pair.redis.port, "KEA", resp3);
        let mut v = Side::open(pair.node.port, "KEA", resp3);
        for s in [&mut r, &mut v] {
            // Active expiry is off on neither; a read right after the deadline finds the key
            // either way, and announces `expired` once.
            s.w.call(&["SET", "lazy", "v", "PX", "50"]);
        }
        std::thread::sleep(Duration::from_millis(60));
        for s in [&mut r, &mut v] {
            assert_eq!(s.w.call(&["GET", "lazy"]), b"$-1\r\n");
        }
        let (want, got) = (r.messages(), v.messages());
        assert_eq!(want, got, "lazy");
        assert_eq!(want.len(), 3 * 2, "{want:?}");
        for s in [&mut r, &mut v] {
            s.w.call(&["SET", "active", "v", "PX", "50"]);
            s.w.call(&["HSET", "active2", "f", "v"]);
            s.w.call(&["PEXPIRE", "active2", "50"]);
        }
        // Nothing reads the keys: the servers' own cycles delete them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let gone = |c: &mut RawConn| c.call(&["DBSIZE"]) == b":0\r\n";
            if gone(&mut r.w) && gone(&mut v.w) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut want = r.messages();
        let mut got = v.messages();
        assert_eq!(want.len(), 6 * 2, "{want:?}");
        // The two keys expire in one cycle on either server, in an order of its own.
        want.sort();
        got.sort();
        assert_eq!(want, got, "active");
        assert!(
            got.iter()
                .filter(|m| m.windows(7).any(|w| w == b"expired"))
                .count()
                == 4
        );
    }
}

/// A seeded random sequence over a few keys of every type, invalid commands included.
#[test]
fn seeded_random_sequence_matches_redis() {
    let mut rng = Rng(0x6e6f_7469_6679);
    let keys = ["k1", "k2", "k3", "k4"];
    let mut script = String::new();
    for _ in 0..400 {
        let k = rng.pick(&keys);
        let k2 = rng.pick(&keys);
        let n = rng.below(6);
        let cmd = match rng.below(34) {
            0 => format!("SET {k} {n}"),
            1 => format!("SET {k} {n} EX 100 GET"),
            2 => format!("INCRBY {k} {n}"),
            3 => format!("APPEND {k} x"),
            4 => format!("DEL {k} {k2}"),
            5 => format!("RENAME {k} {k2}"),
            6 => format!("LPUSH {k} {n} a"),
            7 => format!("RPOP {k} {n}"),
            8 => format!("LMOVE {k} {k2} LEFT RIGHT"),
            9 => format!("LREM {k} 0 a"),
            10 => format!("SADD {k} {n} b"),
            11 => format!("SREM {k} {n} b"),
            12 => format!("SMOVE {k} {k2} b"),
            13 => format!("~SUNIONSTORE {k} {k2}"),
            14 => format!("HSET {k} f{n} {n}"),
            15 => format!("HDEL {k} f{n} f1"),
            16 => format!("HINCRBY {k} f{n} 2"),
            17 => format!("ZADD {k} {n} m{n}"),
            18 => format!("ZREM {k} m{n}"),
            19 => format!("ZPOPMIN {k} {n}"),
            20 => format!("ZUNIONSTORE {k} 1 {k2}"),
            // Past (a deletion) or far off: nothing expires while the sequence runs.
            21 => format!(
                "EXPIRE {k} {}",
                if n < 3 { n as i64 - 2 } else { 100 * n as i64 }
            ),
            22 => format!("PERSIST {k}"),
            23 => format!("COPY {k} {k2} REPLACE"),
            24 => format!("GET {k}"),
            25 => format!("SETRANGE {k} {n} yz"),
            26 => format!("LTRIM {k} 1 {n}"),
            27 => format!("XADD {k} * f v"),
            28 => format!("SETBIT {k} {n} 1"),
            29 => format!("PFADD {k} {n}"),
            30 => format!("GETDEL {k}"),
            31 => format!("SORT {k} STORE {k2}"),
            32 => format!("HINCRBYFLOAT {k} f {n}.5"),
            _ => format!("MSET {k} {n} {k2} x"),
        };
        // Stream ids come from the clock: the replies differ, the events do not.
        let cmd = if cmd.starts_with("XADD") {
            format!("!{cmd}")
        } else {
            cmd
        };
        script.push_str(&cmd);
        script.push('\n');
    }
    let pair = Pair::start();
    let (f, n) = run(&pair, "KEAn", false, &script);
    assert_none(&f);
    assert!(n > 400, "{n}");
}

/// A replica announces what its master's stream does to its data, as Redis' replicas do,
/// and holds the same data (the announcements change nothing), also after a restart.
#[test]
fn replica_announces_its_masters_writes() {
    let dir = tempfile::tempdir().unwrap();
    let master = NodeProc::start(&dir.path().join("m"), &[]);
    let to = format!("127.0.0.1:{}", master.port);
    let args = ["--replicaof", to.as_str(), "--appendfsync", "always"];
    let mut replica = NodeProc::start(&dir.path().join("r"), &args);
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut rc = RawConn::connect(replica.port).unwrap();
    rc.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = RawConn::connect(replica.port).unwrap();
    sub.call(&["PSUBSCRIBE", "__keyevent@*__:*"]);
    let mut mc = RawConn::connect(master.port).unwrap();
    mc.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    mc.call(&["SET", "k", "v"]);
    mc.call(&["LPUSH", "l", "a"]);
    mc.call(&["LPOP", "l"]);
    mc.call(&["SET", "e", "v", "PX", "50"]);
    let mut got = Vec::new();
    while got.len() < 6 {
        let m = sub
            .unsolicited(Duration::from_secs(5))
            .expect("replica event");
        let text = String::from_utf8_lossy(&m).into_owned();
        let event = text
            .split("__keyevent@0__:")
            .nth(1)
            .and_then(|t| t.split("\r\n").next());
        got.push(event.unwrap_or("?").to_string());
    }
    assert_eq!(got, ["set", "lpush", "lpop", "del", "set", "expire"]);
    // The master expires `e` and sends DEL: the replica announces a deletion, not an expiry
    // of its own.
    let m = sub.unsolicited(Duration::from_secs(5)).expect("del of e");
    assert!(
        String::from_utf8_lossy(&m).contains("__keyevent@0__:del"),
        "{m:?}"
    );
    assert!(sub.unsolicited(Duration::from_millis(300)).is_none());
    let dump = |c: &mut RawConn| {
        (
            c.call(&["GET", "k"]),
            c.call(&["EXISTS", "l", "e"]),
            c.call(&["DBSIZE"]),
        )
    };
    assert_eq!(dump(&mut mc), dump(&mut rc));
    drop((rc, sub));
    replica.kill9();
    let replica = NodeProc::start(&dir.path().join("r"), &[]);
    let mut rc = RawConn::connect(replica.port).unwrap();
    assert_eq!(dump(&mut mc), dump(&mut rc));
}

/// MIGRATE announces the keys it moved away as deleted (`del`), as Redis does.
#[test]
fn migrate_announces_its_deletions_as_redis() {
    let pair = Pair::start();
    let target = vigil_tests::RedisProc::start();
    let t = target.port;
    let script = format!(
        "SET mk v\n\
         MIGRATE 127.0.0.1 {t} mk 0 5000 REPLACE\n\
         MSET m1 a m2 b\n\
         MIGRATE 127.0.0.1 {t} \"\" 0 5000 COPY REPLACE KEYS m1\n\
         MIGRATE 127.0.0.1 {t} \"\" 0 5000 REPLACE KEYS m1 m2 nosuch\n\
         EXISTS mk m1 m2"
    );
    let (failures, n) = run(&pair, "KEA", false, &script);
    assert_none(&failures);
    assert!(n >= 6, "the script should announce sets and deletions: {n}");
}
