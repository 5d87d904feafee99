//! COMMAND GETKEYS, GETKEYSANDFLAGS and LIST against `redis-server` 7.0: a scripted run of the
//! movable-key commands (numkeys, STORE, STREAMS, subcommands) and their errors in RESP2 and
//! RESP3, and a seeded random sequence of requests with random counts and keywords.

use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::seeded::Rng;

const SCRIPT: &str = r#"
COMMAND GETKEYS GET key
COMMAND GETKEYS GET
COMMAND GETKEYS GET a b
COMMAND GETKEYS
COMMAND GETKEYS NOSUCH a
COMMAND GETKEYS PING x
COMMAND GETKEYS MSET a 1 b 2
COMMAND GETKEYS MSET a 1 b
COMMAND GETKEYS EVAL "return 1" 1 key
COMMAND GETKEYS EVAL "return 1" 0
COMMAND GETKEYS EVAL "return 1" 2 a
COMMAND GETKEYS EVAL "return 1" -1 a
COMMAND GETKEYS EVAL "return 1" x a
COMMAND GETKEYS EVAL "return 1" 1x a
COMMAND GETKEYS EVAL "return 1"
COMMAND GETKEYS EVALSHA abc 2 a b c
COMMAND GETKEYS EVAL_RO s 1 a
COMMAND GETKEYS FCALL f 1 a
COMMAND GETKEYS FCALL_RO f 3 a b c
COMMAND GETKEYS SINTERCARD 2 a b
COMMAND GETKEYS SINTERCARD 2 a b LIMIT 1
COMMAND GETKEYS SINTERCARD 3 a b
COMMAND GETKEYS SINTERCARD 0 a
COMMAND GETKEYS SINTERCARD -1 a
COMMAND GETKEYS SINTERCARD 99999999999999999999 a
COMMAND GETKEYS SORT a
COMMAND GETKEYS SORT a STORE b
COMMAND GETKEYS SORT a BY x STORE
COMMAND GETKEYS SORT a LIMIT store b STORE c
COMMAND GETKEYS SORT a STORE b STORE c GET # BY store
COMMAND GETKEYS SORT_RO a STORE b
COMMAND GETKEYS XREAD STREAMS a b 1 2
COMMAND GETKEYS XREAD STREAMS a b 1
COMMAND GETKEYS XREAD COUNT 2 STREAMS a 1
COMMAND GETKEYS XREAD COUNT 2 a
COMMAND GETKEYS XREAD STREAMS a
COMMAND GETKEYS XREAD COUNT streams streams a 1
COMMAND GETKEYS XREADGROUP GROUP g c STREAMS a 1
COMMAND GETKEYS XREADGROUP GROUP g c COUNT 1 STREAMS a b > >
COMMAND GETKEYS XREADGROUP GROUP streams c STREAMS a 1
COMMAND GETKEYS GEORADIUS a 1 2 3 km
COMMAND GETKEYS GEORADIUS a 1 2 3 km STORE b STOREDIST c
COMMAND GETKEYS GEORADIUS a 1 2 3 km STOREDIST c STORE b
COMMAND GETKEYS GEORADIUS a 1 2 3 km STORE b STORE c
COMMAND GETKEYS GEORADIUS a 1 2 3 km STORE
COMMAND GETKEYS GEORADIUSBYMEMBER a m 3 km STORE b
COMMAND GETKEYS GEORADIUS_RO a 1 2 3 km STORE b
COMMAND GETKEYS XGROUP CREATE key groupname $
COMMAND GETKEYS XGROUP CREATE key
COMMAND GETKEYS XGROUP DESTROY key g
COMMAND GETKEYS XGROUP HELP
COMMAND GETKEYS XGROUP NOSUCH a
COMMAND GETKEYS OBJECT ENCODING k
COMMAND GETKEYS OBJECT ENCODING
COMMAND GETKEYS OBJECT HELP
COMMAND GETKEYS XINFO STREAM k FULL
COMMAND GETKEYS XINFO CONSUMERS k g
COMMAND GETKEYS XINFO HELP
COMMAND GETKEYS LCS key1 key2
COMMAND GETKEYS MEMORY USAGE key
COMMAND GETKEYS MEMORY USAGE
COMMAND GETKEYS MEMORY STATS
COMMAND GETKEYS MEMORY NOSUCH
COMMAND GETKEYSANDFLAGS MEMORY USAGE k SAMPLES 5
COMMAND GETKEYSANDFLAGS SET k1 v1
COMMAND GETKEYSANDFLAGS SET k1 v1 GET
COMMAND GETKEYSANDFLAGS MSET k1 v1 k2 v2
COMMAND GETKEYSANDFLAGS LMOVE k1 k2 left right
COMMAND GETKEYSANDFLAGS SORT k1 STORE k2
COMMAND GETKEYSANDFLAGS GET k
COMMAND GETKEYSANDFLAGS DEL a b
COMMAND GETKEYSANDFLAGS RENAME a b
COMMAND GETKEYSANDFLAGS INCR a
COMMAND GETKEYSANDFLAGS SADD a b
COMMAND GETKEYSANDFLAGS SMOVE a b c
COMMAND GETKEYSANDFLAGS GETDEL a
COMMAND GETKEYSANDFLAGS EVAL s 1 a
COMMAND GETKEYSANDFLAGS EVAL s 1x a
COMMAND GETKEYSANDFLAGS EVAL_RO s 1 a
COMMAND GETKEYSANDFLAGS SINTERCARD 1 a
COMMAND GETKEYSANDFLAGS XREAD STREAMS a 1
COMMAND GETKEYSANDFLAGS XREADGROUP GROUP g c STREAMS a b 1 2
COMMAND GETKEYSANDFLAGS GEORADIUS a 1 2 3 km STORE b
COMMAND GETKEYSANDFLAGS XGROUP CREATE k g $
COMMAND GETKEYSANDFLAGS OBJECT ENCODING k
COMMAND GETKEYSANDFLAGS XINFO STREAM k
COMMAND GETKEYSANDFLAGS PING x
COMMAND GETKEYSANDFLAGS
COMMAND LIST bad_arg
COMMAND LIST FILTERBY bad_arg
COMMAND LIST FILTERBY bad_arg bad_arg2
COMMAND LIST FILTERBY PATTERN
COMMAND LIST FILTERBY PATTERN a b
COMMAND LIST FILTERBY PATTERN set
COMMAND LIST FILTERBY pattern GET
COMMAND LIST FILTERBY PATTERN non_exists
COMMAND LIST FILTERBY PATTERN non_exists*
COMMAND LIST FILTERBY MODULE non_existing_module
COMMAND LIST FILTERBY ACLCAT non_existing_category
~COMMAND LIST FILTERBY PATTERN georadius*
~COMMAND LIST FILTERBY ACLCAT hyperloglog
"#;

#[test]
fn command_getkeys_and_list_match_redis_server() {
    let mut pair = Pair::start();
    let mut failures = pair.compare(SCRIPT);
    failures.extend(pair.compare(&format!("!HELLO 3\n{SCRIPT}\n!HELLO 2")));
    assert_none(&failures);
}

/// Arguments that are counts, keywords of the movable-key commands, or plain words.
fn arg(r: &mut Rng) -> String {
    match r.below(4) {
        0 => (r.below(7) as i64 - 2).to_string(),
        1 => r
            .pick(&[
                "STORE",
                "storedist",
                "STREAMS",
                "limit",
                "BY",
                "get",
                "GROUP",
                "count",
                "1x",
                "x",
                "",
            ])
            .into(),
        _ => format!("k{}", r.below(6)),
    }
}

fn request(r: &mut Rng) -> String {
    let sub = r.pick(&["GETKEYS", "GETKEYS", "GETKEYSANDFLAGS"]);
    let cmd = r.pick(&[
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "FCALL",
        "FCALL_RO",
        "SINTERCARD",
        "SORT",
        "SORT_RO",
        "XREAD",
        "XREADGROUP",
        "GEORADIUS",
        "GEORADIUSBYMEMBER",
        "GET",
        "MSET",
        "LMOVE",
        "XGROUP CREATE",
        "XGROUP DESTROY",
        "OBJECT ENCODING",
        "XINFO STREAM",
    ]);
    let mut line = format!("COMMAND {sub} {cmd}");
    for _ in 0..r.below(9) {
        line.push(' ');
        let a = arg(r);
        if a.is_empty() {
            line.push_str("\"\"");
        } else {
            line.push_str(&a);
        }
    }
    line
}

#[test]
fn random_getkeys_requests_match_redis_server() {
    let mut pair = Pair::start();
    let mut failures = Vec::new();
    for (seed, proto) in [(0x6e75_0001u64, "2"), (0x6e75_0002, "3")] {
        let mut r = Rng(seed);
        let mut script = format!("!HELLO {proto}\n");
        for _ in 0..300 {
            script.push_str(&request(&mut r));
            script.push('\n');
        }
        failures.extend(pair.compare(&script));
    }
    assert_none(&failures);
}
