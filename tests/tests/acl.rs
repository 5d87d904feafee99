//! ACL users, compared with redis-server: rules and their descriptions, AUTH / HELLO as a
//! user, NOPERM refusals for commands, keys and channels (top level, in MULTI, from scripts),
//! ACL LOG; and end to end: an ACL file saved, reloaded and read at restart, a replica
//! authenticating as `masteruser`, a limited user through the `redis` crate.

use vigil_tests::diff::{Pair, assert_none};

const RULES: &str = r#"
ACL DELUSER u v w x sel
ACL SETUSER u on >pw ~k* %R~r* %W~w* &ch* +get
ACL GETUSER u
ACL LIST
ACL USERS
ACL SETUSER v
ACL GETUSER v
ACL SETUSER v reset
ACL GETUSER v
ACL SETUSER v on nopass allkeys allchannels +@all
ACL GETUSER v
ACL SETUSER v -@all +@string
ACL GETUSER v
ACL SETUSER v +@all -@dangerous
ACL GETUSER v
ACL SETUSER v -@all +config|get
ACL GETUSER v
ACL SETUSER v -@all +select|0
ACL GETUSER v
ACL SETUSER w (+get ~a*) (%R~b* +set) clearselectors (-@all ~c)
ACL GETUSER w
ACL SETUSER w #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a >x <x
ACL GETUSER w
ACL SETUSER w !f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a resetpass
ACL GETUSER w
ACL SETUSER x +nosuch
ACL SETUSER x +@nosuch
ACL SETUSER x ~a allkeys ~b
ACL SETUSER x allchannels &b
ACL SETUSER x #abc
ACL SETUSER x <nope
ACL SETUSER x +config|get|x
ACL SETUSER x (+get
ACL SETUSER x foo
ACL SETUSER "x y" on
ACL GETUSER x
ACL GETUSER nosuch
ACL DELUSER default
ACL DELUSER nosuch w
ACL CAT
~ACL CAT hyperloglog
ACL CAT nosuch
ACL WHOAMI
ACL GENPASS 0
ACL GENPASS 5000
ACL GENPASS x
ACL DRYRUN u get k1
ACL DRYRUN u get x
ACL DRYRUN u set k1 v
ACL DRYRUN u publish ch1 m
ACL DRYRUN nosuch get k
ACL DRYRUN u nosuch k
ACL DRYRUN u get
ACL HELP
ACL NOSUCH
ACL SAVE
ACL LOAD
"#;

const CHECKS: &str = r#"
ACL DELUSER u
ACL LOG RESET
ACL SETUSER u on >pw ~k* %R~r* %W~w* &ch* +get +set +publish +subscribe +psubscribe +multi +exec +eval +config|get +acl|whoami +client|list
AUTH u wrong
AUTH nosuch pw
AUTH u pw
ACL WHOAMI
GET k1
GET x
SET k1 v
SET r1 v
GET r1
SET w1 v
GET w1
DEL k1
PUBLISH ch1 m
PUBLISH zz m
PSUBSCRIBE zz*
CONFIG GET maxmemory
CONFIG SET maxmemory 0
MULTI
GET x
GET k
EXEC
MULTI
SET k2 v
EXEC
EVAL "return redis.call('get','x')" 0
EVAL "return redis.call('del','k')" 0
EVAL "return redis.call('get','k1')" 0
EVAL "return redis.pcall('publish','zz','m')" 0
AUTH default x
HELLO 2 AUTH u wrong
ACL LOG 0
ACL LOG -1
ACL LOG x
ACL LOG 1 2
AUTH default anything
ACL WHOAMI
ACL DELUSER u
"#;

#[test]
fn acl_rules_and_descriptions_match_redis() {
    let mut p = Pair::start();
    assert_none(&p.both_protocols(RULES));
}

#[test]
fn acl_refusals_match_redis() {
    let mut p = Pair::start();
    assert_none(&p.both_protocols(CHECKS));
}

#[test]
fn acl_log_records_refusals() {
    let mut p = Pair::start();
    // The log's entries carry ages and client lines: compared field by field in RESP3 below.
    let f = p.compare(&format!("{CHECKS}\n!ACL LOG"));
    assert_none(&f);
    let log = |c: &mut vigil_tests::RawConn| -> Vec<String> {
        let raw = c.call(&["ACL", "LOG"]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.split("\r\n")
            .filter(|l| !l.starts_with("id=") && !l.starts_with('$') && !l.contains('.'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(log(&mut p.r), log(&mut p.v));
}

/// A fixed-seed random sequence of SETUSER rules and commands run as the user, compared.
#[test]
fn acl_random_sequence_matches_redis() {
    let mut seed: u64 = 0x5eed_ac1;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let rules = [
        "on", "off", ">pw", "nopass", "resetpass", "~k*", "%R~r*", "%W~w*", "~*", "allkeys",
        "resetkeys", "&c*", "allchannels", "resetchannels", "+get", "-get", "+@string", "+@read",
        "-@write", "+@all", "-@all", "+@pubsub", "-@pubsub", "reset", "+bogus", "(+del ~d*)",
        "clearselectors", "~x y", "%X~a",
    ];
    let cmds = [
        "GET k1", "GET r1", "GET x", "SET k1 v", "SET w1 v", "SET r1 v", "DEL d1", "DEL k1",
        "PUBLISH c1 m", "PUBLISH z m", "GET w1", "MGET k1 r1", "INCR k2",
    ];
    let mut script = String::from("ACL DELUSER r\nACL SETUSER r on nopass\n");
    for _ in 0..300 {
        if next(3) == 0 {
            let n = 1 + next(3);
            let ops: Vec<&str> = (0..n).map(|_| rules[next(rules.len() as u64) as usize]).collect();
            let ops: Vec<String> = ops
                .iter()
                .map(|o| if o.contains(' ') { format!("\"{o}\"") } else { o.to_string() })
                .collect();
            script.push_str(&format!("ACL SETUSER r {}\nACL LIST\n", ops.join(" ")));
        } else {
            let c = cmds[next(cmds.len() as u64) as usize];
            let (name, rest) = c.split_once(' ').unwrap_or((c, ""));
            script.push_str(&format!("ACL DRYRUN r {name} {rest}\n"));
        }
    }
    let mut p = Pair::start();
    assert_none(&p.both_protocols(&script));
}
