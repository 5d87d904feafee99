//! Gaps found by running Redis 7.0.15's own test suite (tests/unit/*.tcl, external mode)
//! against the node, each pinned here against `redis-server` byte for byte: refusals inside
//! transactions (busy script, `maxmemory`, `min-replicas-to-write`), blocked clients woken by a
//! key of another type, FUNCTION's wording, Lua calls with thousands of arguments, and small
//! arity and CLIENT details. Scripts run in RESP2 and RESP3; scenarios that need several
//! clients run the same steps on both servers and compare every reply.

use std::thread::sleep;
use std::time::Duration;

use vigil_tests::RawConn;
use vigil_tests::diff::{Pair, assert_none};

const SINGLE: &str = r##"
PING a b c
PING a b
CLIENT KILL
CLIENT KILL user wrong_user
CLIENT KILL id 10 wrong_arg
CLIENT KILL id str
CLIENT KILL type wrong_type
CLIENT KILL skipme yes_or_no
FUNCTION LOAD "#!lua name=t\nredis.register_function('test', function() return 'hello1' end)"
FCALL TEST 0
FCALL test 0
FUNCTION LOAD foo bar "#!lua name=t2\nredis.register_function('x', function() return 1 end)"
FUNCTION LOAD replace foo "#!lua name=t2\nredis.register_function('x', function() return 1 end)"
FUNCTION LOAD REPLACE REPLACE "#!lua name=t\nredis.register_function('TEST', function() return 'hello2' end)"
FCALL test 0
FUNCTION LOAD "#!lua name=t3\nredis.register_function('Test', function() return 3 end)"
FUNCTION RESTORE a b c
FUNCTION RESTORE a
FUNCTION FLUSH a b
FUNCTION DELETE a b
FUNCTION FLUSH
FUNCTION LOAD "#!lua name=lib\nlocal a = 1\nwhile 1 do a = a + 1 end"
PING
EVAL "local a = {} for i=1,7999 do a[i] = 1 end return redis.call('lpush', 'l', unpack(a))" 0
EVAL "local a = {} for i=1,100 do a[i] = {} end return redis.pcall('lpush', 'l', unpack(a))" 0
EVAL "local a = {} for i=1,65 do a[i] = 'x' end return redis.call('rpush', 'l2', unpack(a))" 0
CONFIG SET maxmemory 1
FUNCTION LOAD "#!lua name=m\nredis.register_function('m', function() return 1 end)"
FUNCTION RESTORE x
FUNCTION FLUSH
CONFIG SET maxmemory 0
FUNCTION LOAD "#!lua name=w\nredis.register_function('w', function() return redis.call('set', 'x', '1') end)\nredis.register_function{function_name='r', callback=function() return 'hello' end, flags={'no-writes'}}"
CONFIG SET maxmemory 1
FCALL w 1 k
FCALL r 1 k
FCALL_RO r 1 k
EVAL "#!lua\nreturn 1" 0
EVAL "#!lua flags=no-writes\nreturn 1" 0
FUNCTION FLUSH
SET x 1
LPUSH l y
GET x
MULTI
GET x
DISCARD
CONFIG SET maxmemory 0
SET x 1
CONFIG SET min-replicas-to-write 2
SET x 2
GET x
MULTI
SET x 3
EXEC
CONFIG GET min-replicas-to-write
CONFIG SET min-replicas-to-write 0
SET x 4
REPLICAOF localhost 65536
REPLICAOF localhost x
"##;

#[test]
fn single_client_gaps_match_redis() {
    assert_none(&Pair::start().both_protocols(SINGLE));
}

/// Runs `steps` on both servers (with three clients each, in RESP3 if asked) and fails where
/// the replies they collect differ.
fn on_both(p: &Pair, resp3: bool, steps: fn(&mut [RawConn; 3]) -> Vec<Vec<u8>>) {
    let run = |port: u16| {
        let mut c = [0, 1, 2].map(|_| RawConn::connect(port).unwrap());
        for conn in c.iter_mut() {
            conn.call(&["HELLO", if resp3 { "3" } else { "2" }]);
            conn.call(&["FLUSHALL"]);
        }
        steps(&mut c)
    };
    let (r, v) = (run(p.redis.port), run(p.node.port));
    let show = |x: &[Vec<u8>]| {
        x.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(show(&v), show(&r), "node (left) vs redis-server (right)");
}

fn both_protocols(steps: fn(&mut [RawConn; 3]) -> Vec<Vec<u8>>) {
    let p = Pair::start_with(&["--enable-debug-command", "yes"]);
    on_both(&p, false, steps);
    on_both(&p, true, steps);
}

const LOOP: [&str; 3] = ["EVAL", "while true do end", "0"];
const BUSY_WAIT: Duration = Duration::from_millis(250);

/// Kills the busy script `c[2]` runs and waits for its end.
fn kill_script(c: &mut [RawConn; 3]) -> Vec<u8> {
    let killed = c[0].call(&["SCRIPT", "KILL"]);
    c[2].read_reply();
    killed
}

#[test]
fn transactions_meet_a_busy_script_as_redis() {
    both_protocols(|c| {
        let mut out = vec![
            c[0].call(&["CONFIG", "SET", "busy-reply-threshold", "10"]),
            c[0].call(&["SET", "xx", "1"]),
        ];
        // EXEC during the busy script: aborted, naming BUSY; the client leaves MULTI.
        out.push(c[1].call(&["MULTI"]));
        out.push(c[1].call(&["INCR", "xx"]));
        c[2].send_raw(&RawConn::encode(&LOOP)).unwrap();
        sleep(BUSY_WAIT);
        out.push(c[1].call(&["EXEC"]));
        out.push(kill_script(c));
        out.push(c[0].call(&["GET", "xx"]));
        out.push(c[1].call(&["PING", "asdf"]));
        // MULTI is let through, a command refused meanwhile fails the transaction.
        c[2].send_raw(&RawConn::encode(&LOOP)).unwrap();
        sleep(BUSY_WAIT);
        out.push(c[1].call(&["MULTI"]));
        out.push(c[1].call(&["INCR", "xx"]));
        out.push(kill_script(c));
        out.push(c[1].call(&["INCR", "xx"]));
        out.push(c[1].call(&["EXEC"]));
        out.push(c[0].call(&["GET", "xx"]));
        out.push(c[0].call(&["CONFIG", "SET", "busy-reply-threshold", "5000"]));
        out
    });
}

#[test]
fn exec_refused_by_a_state_change_is_aborted_as_redis() {
    both_protocols(|c| {
        let mut out = vec![c[0].call(&["SET", "xx", "1"])];
        out.push(c[0].call(&["MULTI"]));
        out.push(c[0].call(&["INCR", "xx"]));
        out.push(c[1].call(&["CONFIG", "SET", "min-replicas-to-write", "2"]));
        out.push(c[0].call(&["EXEC"]));
        out.push(c[1].call(&["CONFIG", "SET", "min-replicas-to-write", "0"]));
        out.push(c[0].call(&["GET", "xx"]));
        // maxmemory reached after queueing: EXEC fails only with a command that may grow.
        out.push(c[0].call(&["MULTI"]));
        out.push(c[0].call(&["GET", "xx"]));
        out.push(c[0].call(&["PING"]));
        out.push(c[1].call(&["CONFIG", "SET", "maxmemory", "1"]));
        out.push(c[0].call(&["EXEC"]));
        out.push(c[1].call(&["CONFIG", "SET", "maxmemory", "0"]));
        out.push(c[0].call(&["MULTI"]));
        out.push(c[0].call(&["SET", "xx", "2"]));
        out.push(c[1].call(&["CONFIG", "SET", "maxmemory", "1"]));
        out.push(c[0].call(&["EXEC"]));
        out.push(c[1].call(&["CONFIG", "SET", "maxmemory", "0"]));
        out.push(c[0].call(&["GET", "xx"]));
        out
    });
}

#[test]
fn blocked_pops_wait_for_their_type_as_redis() {
    both_protocols(|c| {
        let mut out = Vec::new();
        // Replaced by a string before it could be served: still waiting.
        c[1].send_raw(&RawConn::encode(&["BLPOP", "list", "0"]))
            .unwrap();
        sleep(Duration::from_millis(100));
        for cmd in [
            &["MULTI"][..],
            &["LPUSH", "list", "a"],
            &["DEL", "list"],
            &["SET", "list", "foo"],
            &["EXEC"],
            &["DEL", "list"],
            &["LPUSH", "list", "b"],
        ] {
            out.push(c[0].call(cmd));
        }
        out.push(c[1].read_reply().unwrap_or_default());
        // The destination of the wrong type: served, and refused with WRONGTYPE.
        out.push(c[0].call(&["SET", "target", "nolist"]));
        c[1].send_raw(&RawConn::encode(&["BRPOPLPUSH", "blist", "target", "0"]))
            .unwrap();
        sleep(Duration::from_millis(100));
        out.push(c[0].call(&["RPUSH", "blist", "foo"]));
        out.push(c[1].read_reply().unwrap_or_default());
        out.push(c[0].call(&["LRANGE", "blist", "0", "-1"]));
        out
    });
}

#[test]
fn subscriptions_are_confirmed_with_replies_off_as_redis() {
    both_protocols(|c| {
        let mut out = Vec::new();
        c[1].send_raw(&RawConn::encode(&["CLIENT", "REPLY", "OFF"]))
            .unwrap();
        c[1].send_raw(&RawConn::encode(&["SUBSCRIBE", "ch"]))
            .unwrap();
        out.push(c[1].read_reply().unwrap_or_default());
        out.push(c[0].call(&["PUBLISH", "ch", "hello"]));
        out.push(c[1].read_reply().unwrap_or_default());
        c[1].send_raw(&RawConn::encode(&["UNSUBSCRIBE", "ch"]))
            .unwrap();
        out.push(c[1].read_reply().unwrap_or_default());
        out
    });
}

#[test]
fn a_self_referencing_script_result_is_cut_not_fatal() {
    // Redis cuts it ~8,000 levels deep, past what the test client decodes, so only the end
    // is compared: Redis' error, and a node still serving.
    let p = Pair::start();
    let mut v = RawConn::connect(p.node.port).unwrap();
    v.send_raw(&RawConn::encode(&[
        "EVAL",
        "local a = {}; local b = {a}; a[1] = b; return a",
        "0",
    ]))
    .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") || !String::from_utf8_lossy(&got).contains('-') {
        let chunk = v.read_raw();
        assert!(!chunk.is_empty(), "the node closed the connection");
        got.extend_from_slice(&chunk);
    }
    assert!(got.ends_with(b"-ERR reached lua stack limit\r\n"));
    assert_eq!(v.call(&["PING"]), b"+PONG\r\n");
}

/// Runs `cmds` on `c`, collecting the replies.
fn run(c: &mut RawConn, cmds: &[&[&str]], out: &mut Vec<Vec<u8>>) {
    for cmd in cmds {
        out.push(c.call(cmd));
    }
}

/// Runs `cmds`, then `MULTI`, `PING`, `EXEC`: whether the transaction runs tells whether a
/// watched key counted as changed.
fn watched(c: &mut RawConn, cmds: &[&[&str]], out: &mut Vec<Vec<u8>>) {
    run(c, cmds, out);
    run(c, &[&["MULTI"], &["PING"], &["EXEC"]], out);
}

#[test]
fn watched_stale_keys_follow_redis_rules() {
    both_protocols(|c| {
        let mut out = Vec::new();
        let c = &mut c[0];
        let stale = |c: &mut RawConn, db: &str, out: &mut Vec<Vec<u8>>| {
            run(c, &[&["SELECT", db], &["SET", "x", "foo", "PX", "1"]], out);
            sleep(Duration::from_millis(5));
        };
        out.push(c.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]));
        // Watched while stale, then deleted by a lookup or by FLUSHDB: no change.
        stale(c, "9", &mut out);
        watched(c, &[&["WATCH", "x"], &["EXISTS", "x"]], &mut out);
        stale(c, "9", &mut out);
        watched(c, &[&["WATCH", "x"], &["FLUSHDB"]], &mut out);
        // FLUSHALL / FLUSHDB leave a missing watched key alone, break a live one.
        watched(
            c,
            &[&["DEL", "x"], &["WATCH", "x"], &["FLUSHALL"]],
            &mut out,
        );
        watched(
            c,
            &[&["SET", "x", "1"], &["WATCH", "x"], &["FLUSHDB"]],
            &mut out,
        );
        // SWAPDB: stale by nothing, nothing by stale, stale by stale: no change.
        run(c, &[&["FLUSHALL"]], &mut out);
        stale(c, "1", &mut out);
        watched(c, &[&["WATCH", "x"], &["SWAPDB", "0", "1"]], &mut out);
        run(c, &[&["FLUSHALL"]], &mut out);
        stale(c, "0", &mut out);
        watched(
            c,
            &[&["SELECT", "1"], &["WATCH", "x"], &["SWAPDB", "0", "1"]],
            &mut out,
        );
        run(
            c,
            &[
                &["FLUSHALL"],
                &["SELECT", "1"],
                &["SET", "x", "foo", "PX", "1"],
            ],
            &mut out,
        );
        stale(c, "0", &mut out);
        watched(
            c,
            &[&["SELECT", "1"], &["WATCH", "x"], &["SWAPDB", "0", "1"]],
            &mut out,
        );
        // A live key swapped away, or a missing one swapped in: the transaction fails.
        watched(
            c,
            &[
                &["FLUSHALL"],
                &["SELECT", "0"],
                &["SET", "x", "30"],
                &["WATCH", "x"],
                &["SWAPDB", "0", "1"],
            ],
            &mut out,
        );
        watched(
            c,
            &[
                &["FLUSHALL"],
                &["SELECT", "1"],
                &["SET", "x", "30"],
                &["SELECT", "0"],
                &["WATCH", "x"],
                &["SWAPDB", "0", "1"],
            ],
            &mut out,
        );
        run(
            c,
            &[&["DEBUG", "SET-ACTIVE-EXPIRE", "1"], &["SELECT", "0"]],
            &mut out,
        );
        out
    });
}

#[test]
fn scan_and_randomkey_delete_the_expired_keys_they_meet() {
    both_protocols(|c| {
        let mut out = Vec::new();
        let c = &mut c[0];
        run(
            c,
            &[
                &["DEBUG", "SET-ACTIVE-EXPIRE", "0"],
                &["SET", "foo1", "bar", "PX", "1"],
                &["SET", "foo2", "bar", "PX", "1"],
            ],
            &mut out,
        );
        sleep(Duration::from_millis(5));
        run(
            c,
            &[
                &["DBSIZE"],
                &["SCAN", "0"],
                &["DBSIZE"],
                &["SET", "foo3", "bar", "PX", "1"],
            ],
            &mut out,
        );
        sleep(Duration::from_millis(5));
        run(
            c,
            &[
                &["RANDOMKEY"],
                &["DBSIZE"],
                &["DEBUG", "SET-ACTIVE-EXPIRE", "1"],
            ],
            &mut out,
        );
        out
    });
}
