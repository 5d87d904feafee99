//! Streams against `redis-server` 7.0: a differential script (RESP2, then RESP3), blocking
//! readers woken by XADD in arrival order, and a replica and a restarted node that hold
//! exactly the master's streams and consumer-group state.

use std::time::{Duration, Instant};

use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::{NodeProc, RawConn};

/// Entries, ids, trimming, errors (explicit ids so replies compare byte for byte).
const ENTRIES: &str = r#"
# XADD basics and ids
XADD s 1-1 a 1 b 2
XADD s 1-1 a 1
XADD s 1-0 a 1
XADD s 1-2 a 1 b 2
XADD s 1-* a 1 b 2
XADD s 2-* c 3
XADD s 2 d 4
XADD s 0-0 a 1
XADD s2 0-0 a 1
EXISTS s2
XADD s 5-1 a
XADD s 5-1
XADD s 5-1 a 1 b
XADD s 5-x a 1
XADD s -1 a 1
XADD s abc a 1
XADD s 18446744073709551616-0 a 1
XADD s 10-5 a 1 b 2 c 3
XADD s 10-6 a 1 b 2 c 3
XADD s 10-7 x 1
XLEN s
XLEN nosuch
XRANGE s - +
XRANGE s - + COUNT 2
XRANGE s - + COUNT 0
XRANGE s - + COUNT -1
XRANGE s 1-2 2-0
XRANGE s 1 1
XRANGE s (1-1 +
XRANGE s - (10-6
XRANGE s (1-1 (1-3
XRANGE s ( +
XRANGE s - + COUNT
XRANGE s - + LIMIT 5
XRANGE s - + COUNT x
XRANGE s x +
XRANGE s - (0-0
XRANGE s (18446744073709551615-18446744073709551615 +
XRANGE s 5 3
XRANGE nosuch - +
XREVRANGE s + -
XREVRANGE s + - COUNT 3
XREVRANGE s (10-7 (1-1
XREVRANGE s 2 1
XREVRANGE s - +
XREVRANGE nosuch + -
# NOMKSTREAM and wrong types
XADD nomk NOMKSTREAM 1-1 a 1
EXISTS nomk
SET str v
XADD str 1-1 a 1
XLEN str
XRANGE str - +
XDEL str 1-1
XTRIM str MAXLEN 0
TYPE s
SET hk v
XADD s NOMKSTREAM 11-0 a 1
# XDEL
XDEL s 1-1 1-2 99-0
XDEL s 1-1
XDEL s bad
XDEL nosuch bad
XLEN s
XRANGE s - +
XADD s 10-7 a 1
XADD s 10-8 a 1
# trimming
DEL t
XADD t MAXLEN 2 1-1 a 1
XADD t MAXLEN 2 1-2 a 1
XADD t MAXLEN = 2 1-3 a 1
XADD t MAXLEN ~ 2 1-4 a 1
XRANGE t - +
XADD t MAXLEN -1 1-5 a 1
XADD t MAXLEN x 1-5 a 1
XADD t MINID 1-4 1-5 a 1
XRANGE t - +
XADD t MAXLEN 5 MINID 1 1-6 a 1
XADD t LIMIT 5 1-6 a 1
XADD t MAXLEN 5 LIMIT 5 1-6 a 1
XADD t MAXLEN ~ 5 LIMIT -1 1-6 a 1
XADD t MAXLEN ~ 5 LIMIT 5 1-6 a 1
XADD t MAXLEN 1
XADD t MAXLEN
XTRIM t
XTRIM t MAXLEN
XTRIM t FOO 1
XTRIM t MAXLEN 1 LIMIT 1
XTRIM t MAXLEN ~ 1 LIMIT 1
XTRIM t MINID 1-6
XRANGE t - +
XTRIM t MAXLEN 0
XLEN t
XTRIM nosuch MAXLEN 0
XTRIM t MINID ~ 1-6
XTRIM t MINID -
XTRIM t MAXLEN 1 MINID 1
XTRIM t MINID = 5
# large stream: nodes of 100 entries
DEL big
XADD big 1-1 f v
XADD big 1-2 f v
XADD big 1-3 f v
XADD big 1-4 f v
XADD big 1-5 f v
DEL a b
XADD a 0-* f v
XADD a 0-* f v
XADD a 5-* f v
XADD a 3-* f v
XADD a 5-18446744073709551615 f v
XADD a 5-* f v
XADD a 6-* f v
XREAD COUNT 0 STREAMS a 0
XREAD COUNT 1 STREAMS a a 0 0
XRANGE a (0-1 (6-0
XRANGE a - (0
XREVRANGE a (6-0 -
XREVRANGE a + (18446744073709551615
XTRIM a MAXLEN ~ 0 LIMIT 0
XTRIM a MAXLEN = 0 LIMIT 0
XLEN a
XGROUP CREATE b g 0 MKSTREAM
XADD b 1-1 a 1
XADD b 1-2 a 1
XADD b 1-3 a 1
XREADGROUP GROUP g c NOACK STREAMS b >
XPENDING b g
XINFO GROUPS b
XGROUP SETID b g 0
XREADGROUP GROUP g c COUNT 2 STREAMS b >
XDEL b 1-1 1-2
XAUTOCLAIM b g d 0 - JUSTID
XAUTOCLAIM b g d 0 - COUNT 1
XPENDING b g
XREADGROUP GROUP g c STREAMS b 0
XREADGROUP GROUP g d STREAMS b 0
XINFO GROUPS b
XGROUP CREATECONSUMER b g e
XGROUP DELCONSUMER b g e
XGROUP DELCONSUMER b g nobody
XINFO STREAM b
XADD b MAXLEN ~ 1 LIMIT 1 2-1 a 1
XADD b MINID ~ 2 2-2 a 1
XADD b MINID 9 NOMKSTREAM 2-3 a 1
XLEN b
XINFO STREAM b
XINFO GROUPS b
XREAD STREAMS b 0
XREADGROUP GROUP g z STREAMS b 0
XINFO STREAM b
XPENDING b g
XAUTOCLAIM b g d 0 0
XREAD STREAMS nosuch 0
"#;

/// Consumer groups, XINFO, XSETID. Lines with idle times or delivery times are run on both
/// (`!`) and their state compared afterwards with times masked.
const GROUPS: &str = r#"
# groups
DEL g
XGROUP CREATE g grp $
XGROUP CREATE g grp $ MKSTREAM
XGROUP CREATE g grp $ MKSTREAM
XGROUP CREATE g grp2 0 ENTRIESREAD 5
XGROUP CREATE g grp3 0 ENTRIESREAD -2
XGROUP CREATE g grp3 0 ENTRIESREAD x
XGROUP CREATE g grp3 0 FOO
XGROUP CREATE g grp3 bad
XGROUP CREATE str grp $
XGROUP CREATE g
XGROUP
XGROUP FOO
XGROUP HELP
XGROUP HELP x
XGROUP DESTROY g
XGROUP DESTROY g nope
XGROUP DESTROY g grp2
XGROUP DESTROY nosuch grp
XGROUP SETID nosuch grp 0
XGROUP SETID g nope 0
XGROUP SETID g grp 0 ENTRIESREAD
XGROUP SETID g grp 0 FOO 1
XGROUP SETID g grp 0 ENTRIESREAD -5
XGROUP CREATECONSUMER g grp alice
XGROUP CREATECONSUMER g grp alice
XGROUP CREATECONSUMER g nope alice
XGROUP DELCONSUMER g grp bob
XADD g 1-1 a 1
XADD g 1-2 b 2
XADD g 1-3 c 3
XADD g 1-4 d 4
XADD g 1-5 e 5
XINFO GROUPS g
XREADGROUP GROUP grp alice COUNT 2 STREAMS g >
XREADGROUP GROUP grp bob STREAMS g >
XREADGROUP GROUP grp bob STREAMS g >
XREADGROUP GROUP grp alice STREAMS g 0
XREADGROUP GROUP grp alice COUNT 1 STREAMS g 0
XREADGROUP GROUP grp alice STREAMS g 1-1
XREADGROUP GROUP grp carol STREAMS g 0
XREADGROUP GROUP grp alice STREAMS g $
XREADGROUP GROUP nope alice STREAMS g >
XREADGROUP GROUP grp alice STREAMS nosuch >
XREADGROUP GROUP grp alice STREAMS str >
XREADGROUP GROUP grp alice STREAMS g
XREADGROUP GROUP grp alice STREAMS g > >
XREADGROUP alice STREAMS g >
XREADGROUP STREAMS g >
XREADGROUP GROUP grp alice COUNT x STREAMS g >
XREADGROUP GROUP grp alice BLOCK -1 STREAMS g >
XREADGROUP GROUP grp alice BLOCK x STREAMS g >
XREADGROUP GROUP grp alice FOO STREAMS g >
XREADGROUP GROUP grp alice STREAMS g bad
XINFO GROUPS g
XPENDING g grp
!XPENDING g grp - + 10
!XPENDING g grp - + 10 alice
XPENDING g grp - + 10 nobody
XPENDING g grp - + 0
XPENDING g grp - + -5
!XPENDING g grp (1-1 (1-5 10
XPENDING g grp 1-3 1-2 10
!XPENDING g grp IDLE 0 - + 10
!XPENDING g grp IDLE 0 - + 10 bob
XPENDING g grp IDLE x - + 10
XPENDING g grp IDLE 0 - +
XPENDING g grp - +
XPENDING g grp - + x
XPENDING g grp x + 10
XPENDING g nope
XPENDING nosuch grp
XPENDING str grp
!XPENDING g grp - + 10 alice extra
XACK g grp 1-1 1-9
XACK g grp 1-1
XACK g grp bad
XACK g nope 1-2
XACK nosuch grp 1-2
XACK str grp 1-2
!XPENDING g grp - + 10
XDEL g 1-3
XREADGROUP GROUP grp bob STREAMS g 0
!XINFO CONSUMERS g grp
!XINFO CONSUMERS g grp
XINFO CONSUMERS g nope
XINFO CONSUMERS nosuch grp
# XCLAIM
XCLAIM g grp alice 0 1-2 1-4
XCLAIM g grp alice 0 1-2 JUSTID
!XPENDING g grp - + 10
XCLAIM g grp dave 0 1-4 RETRYCOUNT 7 JUSTID
XCLAIM g grp dave 0 1-4 IDLE 5000 JUSTID
!XPENDING g grp IDLE 4000 - + 10
XCLAIM g grp dave 3600000 1-4 JUSTID
XCLAIM g grp dave 0 1-3 JUSTID
!XPENDING g grp - + 10
XCLAIM g grp dave 0 1-1 FORCE JUSTID
XCLAIM g grp dave 0 1-5 FORCE
!XPENDING g grp - + 10
XCLAIM g grp dave 0 1-1 FOO
XCLAIM g grp dave x 1-1
XCLAIM g grp dave 0 1-1 IDLE x
XCLAIM g grp dave 0 1-1 TIME x
XCLAIM g grp dave 0 1-1 RETRYCOUNT x
XCLAIM g grp dave 0 1-1 LASTID x
XCLAIM g nope dave 0 1-1
XCLAIM nosuch grp dave 0 1-1
XCLAIM str grp dave 0 1-1
XCLAIM g grp dave 0 1-1 LASTID 1-9 JUSTID
XINFO GROUPS g
XCLAIM g grp erin 0 1-2 TIME 0
!XPENDING g grp - + 10
# XAUTOCLAIM
XADD g 1-6 f 6
XADD g 1-7 g 7
XREADGROUP GROUP grp frank STREAMS g >
XDEL g 1-6
XAUTOCLAIM g grp gina 0 0
XAUTOCLAIM g grp gina 0 0 COUNT 1
XAUTOCLAIM nosuch grp gina 0 0 COUNT 0
XAUTOCLAIM nosuch grp gina x 0
XAUTOCLAIM nosuch grp gina 0 0 BOGUS
XAUTOCLAIM g nogroup gina 0 0 COUNT 0
XAUTOCLAIM g grp gina 0 0 COUNT 1 JUSTID
XAUTOCLAIM g grp gina 0 (1-2 COUNT 2 JUSTID
XAUTOCLAIM g grp gina 3600000 0
XAUTOCLAIM g grp gina 0 0 COUNT 0
XAUTOCLAIM g grp gina 0 0 COUNT x
XAUTOCLAIM g grp gina 0 0 FOO
XAUTOCLAIM g grp gina x 0
XAUTOCLAIM g grp gina 0 x
XAUTOCLAIM g nope gina 0 0
XAUTOCLAIM nosuch grp gina 0 0
!XPENDING g grp - + 10
XPENDING g grp
XGROUP DELCONSUMER g grp gina
XPENDING g grp
XINFO GROUPS g
# NOACK and entries-read / lag
DEL l
XADD l 1-1 a 1
XADD l 1-2 a 1
XADD l 1-3 a 1
XGROUP CREATE l g1 0
XGROUP CREATE l g2 $
XGROUP CREATE l g3 1-2
XINFO GROUPS l
XREADGROUP GROUP g1 c NOACK COUNT 1 STREAMS l >
XINFO GROUPS l
XPENDING l g1
XDEL l 1-2
XINFO GROUPS l
XREADGROUP GROUP g1 c STREAMS l >
XINFO GROUPS l
XREADGROUP GROUP g3 c STREAMS l >
XINFO GROUPS l
XGROUP SETID l g2 0 ENTRIESREAD 0
XINFO GROUPS l
XGROUP SETID l g2 $
XINFO GROUPS l
XADD l 1-4 a 1
XINFO GROUPS l
XTRIM l MAXLEN 1
XINFO GROUPS l
# multi-stream XREAD
DEL r1 r2
XADD r1 1-1 a 1
XADD r2 2-1 b 2
XREAD STREAMS r1 r2 0 0
XREAD COUNT 1 STREAMS r1 r2 0 0
XREAD STREAMS r1 r2 1-1 0
XREAD STREAMS r1 r2 $ $
XREAD STREAMS r1 nosuch 0 0
XREAD STREAMS r1 str 0 0
XREAD STREAMS r1 r2 0
XREAD STREAMS r1 >
XREAD GROUP a b STREAMS r1 0
XREAD NOACK STREAMS r1 0
XREAD COUNT 1
XREAD BLOCK 0
XREAD STREAMS
XREAD STREAMS r1 bad
XREAD BLOCK x STREAMS r1 0
XREAD BLOCK -1 STREAMS r1 0
MULTI
XREAD BLOCK 0 STREAMS r1 $
XREADGROUP GROUP nog c BLOCK 0 STREAMS r1 >
EXEC
XGROUP CREATE r1 grp 0
MULTI
XREADGROUP GROUP grp c BLOCK 0 STREAMS r1 >
XREADGROUP GROUP grp c BLOCK 0 STREAMS r1 >
EXEC
# XSETID
DEL x
XSETID x 1-1
XADD x 5-1 a 1
XADD x 5-2 a 1
XSETID x 5-1
XSETID x 5-2
XSETID x 6-0 ENTRIESADDED 1
XSETID x 6-0 ENTRIESADDED -1
XSETID x 6-0 ENTRIESADDED 10 MAXDELETEDID 7-0
XSETID x 6-0 ENTRIESADDED 10 MAXDELETEDID 5-0
XINFO STREAM x
XSETID x 5-3
XSETID x 5-9
XSETID x bad
XSETID x 9-0 FOO
XSETID str 1-1
XADD x 5-9 a 1
XADD x 6-* a 1
XADD x 6-* a 1
XDEL x 6-1
XSETID x 6-0
XINFO STREAM x
XINFO STREAM x FULL
XINFO STREAM x FULL COUNT 1
XINFO STREAM x FULL COUNT -1
XINFO STREAM x FULL COUNT x
XINFO STREAM x FULL FOO 1
XINFO STREAM x PART
XINFO STREAM x FULL COUNT
XINFO STREAM nosuch
XINFO STREAM str
XINFO
XINFO FOO
XINFO HELP
XINFO HELP x
XINFO GROUPS
XINFO GROUPS nosuch
XINFO STREAM
# empty stream after deletes
DEL e
XADD e 1-1 a 1
XDEL e 1-1
XLEN e
EXISTS e
XINFO STREAM e
XRANGE e - +
XADD e MAXLEN 0 2-1 a 1
XINFO STREAM e
TYPE e
XADD e 18446744073709551615-18446744073709551615 a 1
XADD e * a 1
XADD e 18446744073709551615-* a 1
RENAME e e2
XINFO STREAM e2
EXPIRE e2 100
TTL e2
DEL e2
"#;

/// Big streams: node boundaries by entry count and by bytes (the defaults and configured
/// ones), approximate trimming, XINFO.
fn big_script() -> String {
    let mut s = String::from("DEL big bigv\n");
    for i in 1..=350 {
        if i % 7 == 0 {
            s.push_str(&format!("XADD big 1-{i} other {i}\n"));
        } else {
            s.push_str(&format!("XADD big 1-{i} f v n {i}\n"));
        }
    }
    let long = "x".repeat(700);
    for i in 1..=30 {
        s.push_str(&format!("XADD bigv {i}-0 field {long}{i}\n"));
    }
    s.push_str(
        "XINFO STREAM big
XINFO STREAM bigv
XDEL big 1-50 1-150 1-151
XADD big MAXLEN ~ 320 1-351 f v n 351
XLEN big
XINFO STREAM big
XTRIM big MAXLEN ~ 120 LIMIT 50
XTRIM big MAXLEN ~ 120 LIMIT 100
XLEN big
XTRIM big MAXLEN ~ 120
XLEN big
XRANGE big - + COUNT 3
XTRIM big MINID ~ 1-290
XTRIM big MINID ~ 1-310
XRANGE big - + COUNT 3
XINFO STREAM big
XTRIM big MINID 1-333
XREVRANGE big + - COUNT 3
XINFO STREAM big FULL COUNT 2
XTRIM bigv MAXLEN ~ 3
XINFO STREAM bigv
XDEL bigv 29-0 30-0
XINFO STREAM bigv
XADD bigv 31-0 a b
XINFO STREAM bigv
",
    );
    // The node limits are settings: smaller nodes, no entry limit, and the default LIMIT of an
    // approximate trim (a hundred nodes) follow them.
    s.push_str("DEL small\nCONFIG SET stream-node-max-entries 10\n");
    for i in 1..=100 {
        s.push_str(&format!("XADD small 1-{i} f v\n"));
    }
    s.push_str(
        "XINFO STREAM small
XADD small MAXLEN ~ 55 LIMIT 30 1-101 f v
XLEN small
XADD small MAXLEN ~ 55 LIMIT 30 1-102 f v
XLEN small
CONFIG SET stream-node-max-entries 2
XTRIM small MAXLEN ~ 0
XLEN small
CONFIG SET stream-node-max-entries 0
CONFIG SET stream-node-max-bytes 300
DEL small
",
    );
    for i in 1..=40 {
        s.push_str(&format!("XADD small 1-{i} f v\n"));
    }
    s.push_str(
        "XINFO STREAM small
XTRIM small MAXLEN ~ 5
XLEN small
CONFIG SET stream-node-max-entries 100
CONFIG SET stream-node-max-bytes 4096
",
    );
    s
}

/// Pending entries compared with the idle time (and delivery times) masked.
fn masked(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let v: redis::Value = cmd.query(c).unwrap_or(redis::Value::Nil);
    let redis::Value::Array(items) = v else {
        return format!("{v:?}");
    };
    let items: Vec<redis::Value> = items
        .into_iter()
        .map(|e| match e {
            redis::Value::Array(mut f) if f.len() == 4 => {
                f[2] = redis::Value::Nil;
                redis::Value::Array(f)
            }
            other => other,
        })
        .collect();
    format!("{items:?}")
}

fn pending_states() -> Vec<Vec<&'static str>> {
    vec![
        vec!["XPENDING", "g", "grp", "-", "+", "100"],
        vec!["XPENDING", "g", "grp", "-", "+", "100", "dave"],
        vec!["XPENDING", "l", "g1", "-", "+", "100"],
        vec!["XPENDING", "l", "g3", "-", "+", "100"],
        vec!["XPENDING", "r1", "grp", "-", "+", "100"],
    ]
}

#[test]
fn stream_replies_match_redis_server() {
    let mut pair = Pair::start();
    let script = format!("{ENTRIES}\n{}\n{GROUPS}", big_script());
    let mut failures = pair.compare(&script);
    let mut rc = redis::Client::open(format!("redis://127.0.0.1:{}", pair.redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut vc = pair.node.client();
    for args in pending_states() {
        let (want, got) = (masked(&mut rc, &args), masked(&mut vc, &args));
        if want != got {
            failures.push(format!("{args:?}\n   redis: {want}\n   vigil: {got}"));
        }
    }
    let resp3 = format!("FLUSHALL\n!HELLO 3\n{ENTRIES}\n{}\n{GROUPS}", big_script());
    failures.extend(pair.compare(&resp3));
    assert_none(&failures);
}

#[test]
fn scan_type_and_generic_commands_see_streams() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let mut c = node.client();
    let _: () = redis::cmd("XADD")
        .arg("st1")
        .arg("1-1")
        .arg("a")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("XADD")
        .arg("st2")
        .arg("1-1")
        .arg("a")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("str").arg("v").query(&mut c).unwrap();
    let (_, mut keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("stream")
        .arg("COUNT")
        .arg(100)
        .query(&mut c)
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["st1", "st2"]);
}

#[test]
fn blocked_readers_are_woken_by_xadd_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let mut admin = RawConn::connect(node.port).unwrap();
    admin.call(&["XGROUP", "CREATE", "bs", "grp", "$", "MKSTREAM"]);
    admin.call(&["XADD", "plain", "1-1", "a", "1"]);
    // Three group readers and one plain reader with `$` block; they arrive in order.
    let mut readers = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let mut c = RawConn::connect(node.port).unwrap();
        block_in_group(&mut c, name);
        readers.push(c);
        wait_blocked(&mut admin, readers.len());
    }
    let mut plain = RawConn::connect(node.port).unwrap();
    plain
        .send_raw(&RawConn::encode(&[
            "XREAD", "BLOCK", "0", "STREAMS", "plain", "$",
        ]))
        .unwrap();
    wait_blocked(&mut admin, 4);
    // A write to another key does not wake the plain reader with old entries (`$` resolved
    // once).
    admin.call(&["XADD", "bs", "1-1", "n", "1"]);
    admin.call(&["XADD", "bs", "1-2", "n", "2"]);
    let got1 = String::from_utf8_lossy(&readers[0].read_reply().unwrap()).into_owned();
    let got2 = String::from_utf8_lossy(&readers[1].read_reply().unwrap()).into_owned();
    assert!(got1.contains("1-1"), "first reader got {got1:?}");
    assert!(got2.contains("1-2"), "second reader got {got2:?}");
    admin.call(&["XADD", "bs", "1-3", "n", "3"]);
    let got3 = String::from_utf8_lossy(&readers[2].read_reply().unwrap()).into_owned();
    assert!(got3.contains("1-3"), "third reader got {got3:?}");
    admin.call(&["XADD", "plain", "2-1", "b", "2"]);
    let p = String::from_utf8_lossy(&plain.read_reply().unwrap()).into_owned();
    assert!(
        p.contains("2-1") && !p.contains("1-1"),
        "plain reader got {p:?}"
    );
    // A reader blocked on a group that is destroyed gets -NOGROUP; on a key deleted,
    // -UNBLOCKED.
    let mut c = RawConn::connect(node.port).unwrap();
    block_in_group(&mut c, "x");
    wait_blocked(&mut admin, 1);
    admin.call(&["XGROUP", "DESTROY", "bs", "grp"]);
    let e = String::from_utf8_lossy(&c.read_reply().unwrap()).into_owned();
    assert_eq!(
        e,
        "-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
    admin.call(&["XGROUP", "CREATE", "bs", "grp", "$"]);
    block_in_group(&mut c, "x");
    wait_blocked(&mut admin, 1);
    admin.call(&["DEL", "bs"]);
    let e = String::from_utf8_lossy(&c.read_reply().unwrap()).into_owned();
    assert_eq!(e, "-UNBLOCKED the stream key no longer exists\r\n");
    // So does a flush of the stream's database, or of all of them (a reader blocked until a
    // write that never comes, before).
    for flush in [&["FLUSHDB"][..], &["FLUSHALL", "ASYNC"]] {
        admin.call(&["XADD", "bs", "1-1", "f", "v"]);
        admin.call(&["XGROUP", "CREATE", "bs", "grp", "$"]);
        block_in_group(&mut c, "x");
        wait_blocked(&mut admin, 1);
        admin.call(flush);
        let e = String::from_utf8_lossy(&c.read_reply().unwrap()).into_owned();
        assert_eq!(
            e, "-UNBLOCKED the stream key no longer exists\r\n",
            "{flush:?}"
        );
    }
    // A timeout answers a null array.
    let t = c.call(&["XREAD", "BLOCK", "50", "STREAMS", "plain", "$"]);
    assert_eq!(t, b"*-1\r\n");
}

/// Sends `XREADGROUP GROUP grp <consumer> COUNT 1 BLOCK 0 STREAMS bs >` without waiting.
fn block_in_group(c: &mut RawConn, consumer: &str) {
    c.send_raw(&RawConn::encode(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        consumer,
        "COUNT",
        "1",
        "BLOCK",
        "0",
        "STREAMS",
        "bs",
        ">",
    ]))
    .unwrap();
}

/// Waits until `n` clients are blocked (INFO clients).
fn wait_blocked(admin: &mut RawConn, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = String::from_utf8_lossy(&admin.call(&["INFO", "clients"])).into_owned();
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if blocked >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} clients never blocked: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything a stream holds that must replicate: entries, counters, groups with their PELs
/// and consumers (seen-times excepted: Redis does not propagate them).
fn stream_state(c: &mut redis::Connection, key: &str) -> String {
    let mut out = String::new();
    let range: redis::Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap_or(redis::Value::Nil);
    out.push_str(&format!("{range:?}\n"));
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .arg("FULL")
        .arg("COUNT")
        .arg(0)
        .query(c)
        .unwrap_or(redis::Value::Nil);
    out.push_str(&mask_seen(format!("{info:?}")));
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(key)
        .arg("grp")
        .query(c)
        .unwrap_or(redis::Value::Nil);
    out.push_str(&format!("\n{pending:?}"));
    out
}

/// Where two states first differ, with some context.
fn first_diff(want: &str, got: &str) -> String {
    let at = want
        .bytes()
        .zip(got.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let from = at.saturating_sub(300);
    let cut = |s: &str| {
        s.get(from..(at + 300).min(s.len()))
            .unwrap_or("")
            .to_string()
    };
    format!("at byte {at}\n want: …{}\n  got: …{}", cut(want), cut(got))
}

/// Drops the `seen-time` values from a debug-printed XINFO reply.
fn mask_seen(s: String) -> String {
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("seen-time") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        out.push_str("seen-time");
        // Skip to the value's end (the next comma after the value).
        let after = &tail["seen-time".len()..];
        let v = after.find("int(").map(|j| j + 4).unwrap_or(0);
        let end = after[v..]
            .find(')')
            .map(|e| v + e + 1)
            .unwrap_or(after.len());
        out.push_str("<t>");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn group_workload(c: &mut redis::Connection) {
    let mut q = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(c).unwrap_or(redis::Value::Nil);
    };
    q(&["XGROUP", "CREATE", "s", "grp", "0", "MKSTREAM"]);
    q(&["XGROUP", "CREATE", "s", "other", "$"]);
    for i in 1..=250 {
        let id = format!("{i}-1");
        q(&["XADD", "s", "MAXLEN", "~", "200", &id, "f", "v", "i", &id]);
    }
    q(&["XADD", "s", "*", "auto", "1"]);
    q(&["XADD", "s", "MINID", "~", "60", "*", "auto", "2"]);
    q(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "alice",
        "COUNT",
        "10",
        "STREAMS",
        "s",
        ">",
    ]);
    q(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "bob",
        "COUNT",
        "5",
        "STREAMS",
        "s",
        ">",
    ]);
    q(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "carol",
        "NOACK",
        "COUNT",
        "3",
        "STREAMS",
        "s",
        ">",
    ]);
    q(&["XACK", "s", "grp", "101-1", "102-1"]);
    q(&["XDEL", "s", "105-1", "120-1"]);
    q(&["XCLAIM", "s", "grp", "dave", "0", "103-1", "104-1", "105-1"]);
    q(&["XAUTOCLAIM", "s", "grp", "erin", "0", "0", "COUNT", "3"]);
    q(&["XGROUP", "CREATECONSUMER", "s", "grp", "frank"]);
    q(&["XGROUP", "DELCONSUMER", "s", "grp", "bob"]);
    q(&["XREADGROUP", "GROUP", "other", "zed", "STREAMS", "s", "0"]);
    q(&["XTRIM", "s", "MAXLEN", "~", "150"]);
    q(&["XSETID", "s", "999999999999999-0"]);
    q(&["MULTI"]);
    q(&[
        "XREADGROUP",
        "GROUP",
        "grp",
        "gina",
        "COUNT",
        "2",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    q(&["XADD", "s", "1000000000000000-0", "m", "1"]);
    q(&["EXEC"]);
}

#[test]
fn replica_and_restarted_node_hold_the_masters_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    let mut c = master.client();
    group_workload(&mut c);
    let want = stream_state(&mut c, "s");
    let mut rc = replica.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = stream_state(&mut rc, "s");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica differs: {}",
            first_diff(&want, &got)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A replica that syncs fully afterwards gets the snapshot.
    let late = NodeProc::start(&dir.path().join("late"), &["--replicaof", &to]);
    let mut lc = late.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = stream_state(&mut lc, "s");
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late replica differs: {}",
            first_diff(&want, &got)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL and restart: the log replays to the same state.
    master.kill9();
    let restarted = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let got = stream_state(&mut restarted.client(), "s");
    assert!(
        got == want,
        "restarted node differs: {}",
        first_diff(&want, &got)
    );
    // After a snapshot (BGREWRITEAOF/SAVE) and another restart, the same again.
    let mut c2 = restarted.client();
    let _: redis::Value = redis::cmd("SAVE").query(&mut c2).unwrap();
    drop(restarted);
    let again = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let got = stream_state(&mut again.client(), "s");
    assert!(
        got == want,
        "node restarted from its snapshot differs: {}",
        first_diff(&want, &got)
    );
}
