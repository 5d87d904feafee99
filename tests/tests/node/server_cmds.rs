//! CONFIG, DEBUG, SLOWLOG, LATENCY, MEMORY, COPY/MOVE/SWAPDB against `redis-server` 7.0 (scripts
//! compared byte for byte in RESP2 and RESP3), plus what only Vigil can show: CONFIG REWRITE
//! keeping the TOML file's comments, and slow log entries with their client.

use std::collections::BTreeMap;
use vigil_tests::diff::{Pair, assert_none, compare};
use vigil_tests::{NodeProc, RawConn};

/// A redis-server that answers DEBUG, a node, and a connection to each.
fn pair() -> Pair {
    Pair::start_with(&["--enable-debug-command", "yes"])
}

const CONFIG: &str = r#"
CONFIG GET maxmemory
CONFIG GET MAXMEMORY
CONFIG GET hash-max-ziplist-entries
~CONFIG GET hash-max-*
~CONFIG GET slave-*
~CONFIG GET zset-max-listpack-value hz nosuch
CONFIG GET nosuch
CONFIG GET
CONFIG SET hz 20 maxmemory 1mb
CONFIG GET hz
CONFIG GET maxmemory
CONFIG SET hz 30 hz 40
CONFIG SET hz 30 HZ 40
CONFIG SET hz 50 nosuch 1
CONFIG SET nosuch 1 hz 50
CONFIG SET hz 60 maxmemory bad
CONFIG GET hz
CONFIG SET hz 60 daemonize yes
CONFIG GET hz
CONFIG SET hz x
CONFIG SET hz -1
CONFIG SET maxmemory -1
CONFIG SET maxmemory 2gb
CONFIG GET maxmemory
CONFIG SET maxmemory-clients 10%
CONFIG GET maxmemory-clients
CONFIG SET maxmemory-clients 200%
CONFIG SET activerehashing maybe
CONFIG SET activerehashing NO
CONFIG GET activerehashing
CONFIG SET loglevel loud
CONFIG SET maxmemory-policy ALLKEYS-LRU
CONFIG GET maxmemory-policy
CONFIG SET oom-score-adj relative
CONFIG GET oom-score-adj
CONFIG SET hash-max-ziplist-entries 64
CONFIG GET hash-max-listpack-entries
CONFIG GET hash-max-ziplist-entries
CONFIG SET list-max-listpack-size -3
CONFIG SET list-max-ziplist-size 99999999999
CONFIG SET active-expire-effort 11
CONFIG SET shutdown-on-sigterm "save now"
CONFIG GET shutdown-on-sigterm
CONFIG SET shutdown-on-sigterm "save nosave"
CONFIG SET shutdown-on-sigterm bogus
CONFIG SET save "100 10 20 1"
CONFIG GET save
CONFIG SET save "100"
CONFIG SET save ""
CONFIG GET save
CONFIG SET notify-keyspace-events KEA
CONFIG GET notify-keyspace-events
CONFIG SET notify-keyspace-events Ex
CONFIG GET notify-keyspace-events
CONFIG SET notify-keyspace-events Q
CONFIG SET notify-keyspace-events ""
CONFIG SET client-output-buffer-limit "pubsub 1mb 2mb 3"
CONFIG GET client-output-buffer-limit
CONFIG SET client-output-buffer-limit "replica 1 2 3 pubsub 4mb 5mb 6"
CONFIG GET client-output-buffer-limit
CONFIG SET client-output-buffer-limit "bogus 1 2 3"
CONFIG SET client-output-buffer-limit "pubsub 1 2"
CONFIG SET oom-score-adj-values "1 2 3"
CONFIG GET oom-score-adj-values
CONFIG SET oom-score-adj-values "1 2"
CONFIG SET latency-tracking-info-percentiles "50 99.90 100"
CONFIG GET latency-tracking-info-percentiles
CONFIG SET latency-tracking-info-percentiles "101"
CONFIG SET unixsocketperm 700
CONFIG SET slowlog-max-len -1
CONFIG SET slowlog-log-slower-than -2
CONFIG SET appendfsync sometimes
CONFIG SET appendfsync always
CONFIG GET appendfsync
CONFIG SET appendfsync everysec
CONFIG SET dbfilename x.rdb
CONFIG SET
CONFIG SET hz
CONFIG SET hz 1 maxmemory
CONFIG GET rdb-key-save-delay
CONFIG SET rdb-key-save-delay 0
CONFIG RESETSTAT
CONFIG RESETSTAT x
CONFIG HELP
CONFIG HELP x
CONFIG NOSUCH
CONFIG SET hash-max-ziplist-entries 1 hash-max-listpack-entries 2
CONFIG GET hash-max-ziplist-entries
CONFIG SET hz 10 maxmemory 0 maxmemory-clients 0 maxmemory-policy noeviction save "" notify-keyspace-events ""
"#;

const DEBUG: &str = r#"
DEBUG PROTOCOL string
DEBUG PROTOCOL integer
DEBUG PROTOCOL double
DEBUG PROTOCOL bignum
DEBUG PROTOCOL null
DEBUG PROTOCOL array
DEBUG PROTOCOL set
DEBUG PROTOCOL map
DEBUG PROTOCOL true
DEBUG PROTOCOL false
DEBUG PROTOCOL verbatim
DEBUG PROTOCOL nosuch
DEBUG PROTOCOL
DEBUG NOSUCH
DEBUG DIGEST
SET n 9223372036854775807.5
RPUSH l a b 1
SADD s 1 2 x
SADD si 1 2 3
ZADD z 1.5 a 2 b 0.1 c
HSET h f v g 1
XADD x 1-1 a b
XADD x 2-1 c d e f
PEXPIRE l 100000
DEBUG DIGEST
DEBUG DIGEST-VALUE n l s si z h x nokey
OBJECT ENCODING n
OBJECT ENCODING l
OBJECT ENCODING s
OBJECT ENCODING si
OBJECT ENCODING z
OBJECT ENCODING h
OBJECT ENCODING x
OBJECT ENCODING nokey
OBJECT REFCOUNT z
OBJECT FREQ z
OBJECT NOSUCH z
OBJECT HELP
DEBUG DIGEST-VALUE
DEBUG SET-ACTIVE-EXPIRE 0
DEBUG SET-ACTIVE-EXPIRE 1
DEBUG SLEEP 0
DEBUG JMAP
DEBUG RELOAD
DEBUG DIGEST
GET n
DEBUG QUICKLIST-PACKED-THRESHOLD 1mb
DEBUG QUICKLIST-PACKED-THRESHOLD 10gb
DEBUG QUICKLIST-PACKED-THRESHOLD x
DEBUG OBJECT nokey
DEBUG LISTPACK nokey
DEBUG LISTPACK h
DEBUG LISTPACK s
DEBUG STRINGMATCH-TEST
"#;

/// DEBUG PROTOCOL's RESP3-only shapes (attributes, push).
const DEBUG3: &str = "DEBUG PROTOCOL attrib\nDEBUG PROTOCOL push";

const KEYS: &str = r#"
SET a 1
EXPIRE a 1000
RPUSH l x y
COPY a b
TTL b
GET b
COPY a b
COPY a b REPLACE
COPY a a
COPY a a DB 1
COPY a a DB 16
COPY a a DB x
COPY a a DB -1
COPY a c DB 1 REPLACE
COPY a c DB
COPY a c BOGUS
COPY nosuch c
COPY l l2
LRANGE l2 0 -1
SELECT 1
GET a
TTL a
SELECT 0
MOVE a 1
MOVE a 1
MOVE b 1
MOVE b 0
MOVE b 16
MOVE b x
MOVE nosuch 2
SELECT 1
EXISTS a b
DBSIZE
SELECT 0
SWAPDB 0 1
DBSIZE
~KEYS *
SWAPDB 0 1
SWAPDB 0 0
SWAPDB 0 16
SWAPDB x 0
SWAPDB 0 x
SWAPDB -1 0
SWAPDB 0
MEMORY USAGE nosuch
MEMORY USAGE a SAMPLES
MEMORY USAGE a SAMPLES x
MEMORY USAGE a BOGUS 1
MEMORY PURGE
MEMORY HELP
MEMORY NOSUCH
MEMORY
FLUSHALL
"#;

const MONITOR: &str = r#"
SLOWLOG RESET
SLOWLOG LEN
SLOWLOG GET
SLOWLOG GET -2
SLOWLOG GET x
SLOWLOG LEN x
SLOWLOG HELP
SLOWLOG NOSUCH
LATENCY RESET
LATENCY LATEST
LATENCY HISTORY command
LATENCY RESET nosuch
LATENCY GRAPH nosuch
LATENCY HELP
LATENCY HELP x
LATENCY NOSUCH
"#;

#[test]
fn config_get_lists_every_redis_parameter() {
    let p = pair();
    let get = |port: u16| -> BTreeMap<String, String> {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("*")
            .query(&mut c)
            .unwrap()
    };
    let (want, got) = (get(p.redis.port), get(p.node.port));
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    // Values of parameters whose defaults mean the same on both (not where Vigil's own
    // settings, the test set-up or the machine decide them).
    let own = [
        "appendonly",
        "appendfilename",
        "bind",
        "busy-reply-threshold",
        "client-query-buffer-limit",
        "dir",
        "enable-debug-command",
        "lua-time-limit",
        "port",
        "proto-max-bulk-len",
        "repl-ping-replica-period",
        "repl-ping-slave-period",
        "repl-timeout",
        "min-replicas-max-lag",
        "min-slaves-max-lag",
        "databases",
        "maxclients",
        "auto-aof-rewrite-min-size",
        "auto-aof-rewrite-percentage",
        "repl-backlog-size",
        "replicaof",
        "slaveof",
    ];
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| !own.contains(&k.as_str()) && got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: redis {v:?}, vigil {:?}", got.get(k)))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn config_set_is_atomic_and_worded_as_redis() {
    assert_none(&pair().both_protocols(CONFIG));
}

#[test]
fn debug_replies_match_redis() {
    let mut p = pair();
    let mut f = p.both_protocols(DEBUG);
    f.extend(compare(
        &format!("!HELLO 3\n{DEBUG3}\n!HELLO 2"),
        &mut p.r,
        &mut p.v,
    ));
    assert_none(&f);
}

#[test]
fn copy_move_swapdb_and_memory_match_redis() {
    assert_none(&pair().both_protocols(KEYS));
}

#[test]
fn slowlog_and_latency_shapes_match_redis() {
    assert_none(&pair().both_protocols(MONITOR));
}

#[test]
fn config_rewrite_keeps_the_file_and_its_comments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    let original = "# my node\nport = 0 # any port\n\n# scripts\nbusy_reply_threshold = \"5s\" # busy after\n\n[replication]\n# keep it\npriority = 100 # preferred\n\n[redis]\n# tuning kept for restarts\nhash-max-ziplist-entries = \"64\" # alias kept\nhz = \"20\"\n";
    std::fs::write(&file, original).unwrap();
    let node = NodeProc::start(&dir.path().join("d"), &["--config", file.to_str().unwrap()]);
    let mut c = RawConn::connect(node.port).unwrap();
    assert_eq!(
        c.call(&["CONFIG", "GET", "hz"]),
        b"*2\r\n$2\r\nhz\r\n$2\r\n20\r\n"
    );
    let set = [
        "CONFIG",
        "SET",
        "busy-reply-threshold",
        "2000",
        "replica-priority",
        "7",
        "hz",
        "10",
        "hash-max-listpack-entries",
        "32",
        "slowlog-max-len",
        "5",
    ];
    assert_eq!(c.call(&set), b"+OK\r\n");
    assert_eq!(c.call(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let got = std::fs::read_to_string(&file).unwrap();
    let want = "# my node\nport = 0 # any port\n\n# scripts\nbusy_reply_threshold = \"2s\" # busy after\n\n[replication]\n# keep it\npriority = 7 # preferred\n\n[redis]\n# tuning kept for restarts\nhash-max-ziplist-entries = \"32\" # alias kept\nslowlog-max-len = \"5\"\n";
    assert_eq!(got, want);
    drop(node);
    let node = NodeProc::start(&dir.path().join("d"), &["--config", file.to_str().unwrap()]);
    let mut c = RawConn::connect(node.port).unwrap();
    assert_eq!(
        c.call(&["CONFIG", "GET", "slowlog-max-len"]),
        b"*2\r\n$15\r\nslowlog-max-len\r\n$1\r\n5\r\n"
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "hz"]),
        b"*2\r\n$2\r\nhz\r\n$2\r\n10\r\n"
    );
    let plain = NodeProc::start(&dir.path().join("e"), &[]);
    let mut c = RawConn::connect(plain.port).unwrap();
    assert_eq!(
        c.call(&["CONFIG", "REWRITE"]),
        b"-ERR The server is running without a config file\r\n"
    );
}

#[test]
fn slow_commands_are_logged_with_their_client() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", node.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let q = |c: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(c).unwrap()
    };
    q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "0",
            "slowlog-max-len",
            "3",
        ],
    );
    q(&mut c, &["SLOWLOG", "RESET"]);
    q(&mut c, &["CLIENT", "SETNAME", "me"]);
    let long = "A".repeat(129);
    q(&mut c, &["SET", "k", &long]);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let mut sadd = vec!["SADD", "s"];
    sadd.extend(many.iter().map(String::as_str));
    q(&mut c, &sadd);
    let entries: Vec<(i64, i64, i64, Vec<String>, String, String)> =
        redis::cmd("SLOWLOG").arg("GET").query(&mut c).unwrap();
    assert_eq!(entries.len(), 3);
    let (_, _, _, args, addr, name) = &entries[0];
    assert_eq!(args.len(), 32);
    assert_eq!(args[31], "... (11 more arguments)");
    assert!(addr.starts_with("127.0.0.1:"));
    assert_eq!(name, "me");
    assert_eq!(
        entries[1].3[2],
        format!("{}... (1 more bytes)", &long[..128])
    );
    // A transaction's slow commands are logged, not its EXEC, whatever kind they are.
    q(
        &mut c,
        &["CONFIG", "SET", "slowlog-log-slower-than", "50000"],
    );
    q(&mut c, &["SLOWLOG", "RESET"]);
    q(&mut c, &["MULTI"]);
    q(&mut c, &["DEBUG", "SLEEP", "0.1"]);
    q(&mut c, &["EXEC"]);
    let entries: Vec<(i64, i64, i64, Vec<String>, String, String)> =
        redis::cmd("SLOWLOG").arg("GET").query(&mut c).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].3, ["DEBUG", "SLEEP", "0.1"]);
    q(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "-1",
            "latency-monitor-threshold",
            "50",
        ],
    );
    q(&mut c, &["DEBUG", "SLEEP", "0.1"]);
    let latest: Vec<(String, i64, i64, i64)> =
        redis::cmd("LATENCY").arg("LATEST").query(&mut c).unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].0, "command");
    assert!(latest[0].2 >= 100 && latest[0].3 >= 100, "{latest:?}");
}
