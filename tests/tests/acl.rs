//! ACL users, compared with redis-server: rules and their descriptions, AUTH / HELLO as a
//! user, NOPERM refusals for commands, keys and channels (top level, in MULTI, from scripts),
//! ACL LOG; and end to end: an ACL file saved, reloaded and read at restart, a replica
//! authenticating as `masteruser`, a limited user through the `redis` crate.

use vigil_tests::NodeProc;
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
ACL SETUSER u on >pw ~k* %R~r* %W~w* &ch* +get +set +publish +subscribe +psubscribe +multi +exec +eval +config|get +acl|whoami +acl|setuser +client|list +sort
AUTH u wrong
AUTH nosuch pw
AUTH u pw
ACL WHOAMI
SORT k1 BY nosort
SORT k1 BY w_*
SORT k1 GET #
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
EVAL "return redis.call('sort','k1','by','nosort','get','r*')" 0
EVAL "return redis.call('sort','k1','by','w_*')" 0
EVAL "return redis.call('sort','k1','by','nosort')" 0
EVAL "return redis.call('del','k')" 0
EVAL "return redis.call('get','k1')" 0
EVAL "return redis.pcall('publish','zz','m')" 0
EVAL "return redis.acl_check_cmd('get','k1')" 0
EVAL "return redis.acl_check_cmd('get','x')" 0
EVAL "return redis.acl_check_cmd('set','w1','v')" 0
EVAL "return redis.acl_check_cmd('set','r1','v')" 0
EVAL "return redis.acl_check_cmd('del','k1')" 0
EVAL "return redis.acl_check_cmd('config','get','x')" 0
EVAL "return redis.acl_check_cmd('config','set','x','y')" 0
EVAL "return redis.acl_check_cmd('config','nosuch')" 0
EVAL "return redis.acl_check_cmd('nosuch')" 0
EVAL "return redis.acl_check_cmd('publish','ch1','m')" 0
EVAL "return redis.acl_check_cmd('publish','zz','m')" 0
EVAL "return redis.acl_check_cmd('get')" 0
EVAL "return redis.acl_check_cmd()" 0
EVAL "return redis.acl_check_cmd('get',{})" 0
MULTI
GET k1
SET k1 v
ACL SETUSER u -set resetkeys ~z
EXEC
ACL SETUSER u +set resetkeys ~k* %R~r* %W~w*
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
    let mut seed: u64 = 0x05ee_dac1;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let rules = [
        "on",
        "off",
        ">pw",
        "nopass",
        "resetpass",
        "~k*",
        "%R~r*",
        "%W~w*",
        "~*",
        "allkeys",
        "resetkeys",
        "&c*",
        "allchannels",
        "resetchannels",
        "+get",
        "-get",
        "+@string",
        "+@read",
        "-@write",
        "+@all",
        "-@all",
        "+@pubsub",
        "-@pubsub",
        "reset",
        "+bogus",
        "(+del ~d*)",
        "clearselectors",
        "~x y",
        "%X~a",
    ];
    let cmds = [
        "GET k1",
        "GET r1",
        "GET x",
        "SET k1 v",
        "SET w1 v",
        "SET r1 v",
        "DEL d1",
        "DEL k1",
        "PUBLISH c1 m",
        "PUBLISH z m",
        "GET w1",
        "MGET k1 r1",
        "INCR k2",
    ];
    let mut script = String::from("ACL DELUSER r\nACL SETUSER r on nopass\n");
    for _ in 0..300 {
        if next(3) == 0 {
            let n = 1 + next(3);
            let ops: Vec<&str> = (0..n)
                .map(|_| rules[next(rules.len() as u64) as usize])
                .collect();
            let ops: Vec<String> = ops
                .iter()
                .map(|o| {
                    if o.contains(' ') {
                        format!("\"{o}\"")
                    } else {
                        o.to_string()
                    }
                })
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

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The ACL file: read at start, written by ACL SAVE (and read back after a restart), reloaded
/// by ACL LOAD; a bad line names itself and changes nothing.
#[test]
fn acl_file_save_restart_load() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("users.acl");
    std::fs::write(
        &acl,
        "user default on nopass ~* &* +@all\nuser alice on >secret ~app:* resetchannels -@all +get +set\n",
    )
    .unwrap();
    let cfg = vigil_tests::write_config(
        dir.path(),
        "n.toml",
        &format!("aclfile = {:?}\n", acl.to_str().unwrap()),
    );
    let args = ["--config", cfg.to_str().unwrap()];
    let mut node = NodeProc::start(&dir.path().join("n"), &args);

    // A limited user through a real client.
    let url = format!("redis://alice:secret@127.0.0.1:{}/", node.port);
    let mut alice = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("app:1")
        .arg("v")
        .query(&mut alice)
        .unwrap();
    let v: String = redis::cmd("GET").arg("app:1").query(&mut alice).unwrap();
    assert_eq!(v, "v");
    let e = redis::cmd("SET")
        .arg("other")
        .arg("v")
        .query::<()>(&mut alice)
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("noperm"), "{e}");
    let e = redis::cmd("DEL")
        .arg("app:1")
        .query::<()>(&mut alice)
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("noperm"), "{e}");

    let mut admin = vigil_tests::RawConn::connect(node.port).unwrap();
    assert_eq!(
        admin.call(&["ACL", "SETUSER", "bob", "on", ">pw", "+ping"]),
        b"+OK\r\n"
    );
    assert_eq!(admin.call(&["ACL", "SAVE"]), b"+OK\r\n");
    let saved = std::fs::read_to_string(&acl).unwrap();
    assert!(saved.contains("user bob on #"), "{saved}");

    // Restart: the saved file is read at start-up.
    node.kill9();
    drop(node);
    let node = NodeProc::start(&dir.path().join("n"), &args);
    let mut c = vigil_tests::RawConn::connect(node.port).unwrap();
    assert_eq!(c.call(&["AUTH", "bob", "pw"]), b"+OK\r\n");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert!(c.call(&["GET", "x"]).starts_with(b"-NOPERM"));

    // A bad line: the error names it, and the users stay as they were.
    std::fs::write(
        &acl,
        "user default on nopass ~* &* +@all\nuser carol on +nosuch\n",
    )
    .unwrap();
    let mut admin = vigil_tests::RawConn::connect(node.port).unwrap();
    let r = String::from_utf8(admin.call(&["ACL", "LOAD"])).unwrap();
    assert!(
        r.contains("users.acl:2: Error in ACL SETUSER modifier '+nosuch'"),
        "{r}"
    );
    let users = String::from_utf8(admin.call(&["ACL", "USERS"])).unwrap();
    assert!(users.contains("bob") && !users.contains("carol"), "{users}");
    // Quotes are read as in redis.conf: an unbalanced one is an error naming the line.
    std::fs::write(
        &acl,
        "user default on nopass ~* &* +@all\nuser carol on \">open +ping\n",
    )
    .unwrap();
    let r = String::from_utf8(admin.call(&["ACL", "LOAD"])).unwrap();
    assert!(
        r.contains("users.acl:2: unbalanced quotes in acl line"),
        "{r}"
    );

    // A good file replaces the users; bob's connection is closed, his password refused.
    std::fs::write(
        &acl,
        "user default on nopass ~* &* +@all\nuser carol on nopass +ping\nuser dave on \">two words\" +ping\n",
    )
    .unwrap();
    assert_eq!(admin.call(&["ACL", "LOAD"]), b"+OK\r\n");
    let users = String::from_utf8(admin.call(&["ACL", "USERS"])).unwrap();
    assert!(users.contains("carol") && !users.contains("bob"), "{users}");
    let mut c2 = vigil_tests::RawConn::connect(node.port).unwrap();
    assert!(c2.call(&["AUTH", "bob", "pw"]).starts_with(b"-WRONGPASS"));
    assert_eq!(c2.call(&["AUTH", "dave", "two words"]), b"+OK\r\n");
}

/// A replica whose master requires a password authenticates as `masteruser`.
#[test]
fn replica_authenticates_as_masteruser() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("m.acl");
    std::fs::write(
        &acl,
        "user default on >adminpw ~* &* +@all\nuser repl on >replpw ~* &* -@all +psync +replconf +ping +sync\n",
    )
    .unwrap();
    let mcfg = vigil_tests::write_config(
        dir.path(),
        "m.toml",
        &format!("aclfile = {:?}\n", acl.to_str().unwrap()),
    );
    let master = NodeProc::start(&dir.path().join("m"), &["--config", mcfg.to_str().unwrap()]);
    let rcfg = vigil_tests::write_config(
        dir.path(),
        "r.toml",
        "[replication]\nmasteruser = \"repl\"\nmasterauth = \"replpw\"\n",
    );
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(
        &dir.path().join("r"),
        &["--replicaof", &to, "--config", rcfg.to_str().unwrap()],
    );
    replica.wait_info("master_link_status", |s| s == "up", "link");
    let mut m = vigil_tests::RawConn::connect(master.port).unwrap();
    assert!(m.call(&["SET", "a", "1"]).starts_with(b"-NOAUTH"));
    assert_eq!(m.call(&["AUTH", "adminpw"]), b"+OK\r\n");
    assert_eq!(m.call(&["SET", "a", "1"]), b"+OK\r\n");
    let mut r = vigil_tests::RawConn::connect(replica.port).unwrap();
    wait_until("replicated", || r.call(&["GET", "a"]) == b"$1\r\n1\r\n");
    // The replication user's own rights stay limited.
    let mut u = vigil_tests::RawConn::connect(master.port).unwrap();
    assert_eq!(u.call(&["AUTH", "repl", "replpw"]), b"+OK\r\n");
    assert!(u.call(&["GET", "a"]).starts_with(b"-NOPERM"));
}

/// The sentinel's RESP endpoint has ACL users too: AUTH as a limited user, NOPERM beyond it.
#[test]
fn sentinel_endpoint_has_acl_users() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("s.acl");
    std::fs::write(
        &acl,
        "user default on >adminpw ~* &* +@all\nuser app on >apppw -@all +sentinel|get-master-addr-by-name +ping +hello +acl|whoami\n",
    )
    .unwrap();
    let ports = [vigil_tests::free_port()];
    let cfg = vigil_tests::write_config(
        dir.path(),
        "s1.toml",
        &vigil_tests::sentinel_config(
            1,
            &ports,
            dir.path(),
            "tok",
            &format!("aclfile = {:?}\n", acl.to_str().unwrap()),
        ),
    );
    let s = vigil_tests::SentinelProc::start(1, &cfg);
    let mut c = vigil_tests::RawConn::connect(s.resp_port()).unwrap();
    assert_eq!(c.call(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    assert!(c.call(&["AUTH", "app", "wrong"]).starts_with(b"-WRONGPASS"));
    assert_eq!(c.call(&["AUTH", "app", "apppw"]), b"+OK\r\n");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b"$3\r\napp\r\n");
    let r = c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nosuch"]);
    assert!(
        !r.starts_with(b"-NOPERM"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(
        c.call(&["SENTINEL", "MASTERS"]),
        b"-NOPERM this user has no permissions to run the 'sentinel|masters' command\r\n"
    );
    let mut admin = vigil_tests::RawConn::connect(s.resp_port()).unwrap();
    assert_eq!(admin.call(&["AUTH", "adminpw"]), b"+OK\r\n");
    let users = String::from_utf8(admin.call(&["ACL", "USERS"])).unwrap();
    assert!(users.contains("app"), "{users}");
}
