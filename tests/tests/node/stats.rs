//! Per-command and per-error statistics beside redis-server 7.0: the same commands (failing as
//! they run, refused before running, inside transactions and scripts) leave the same
//! `calls`/`rejected_calls`/`failed_calls` in `INFO commandstats`, the same `INFO errorstats`
//! and the same `total_error_replies` on both. Times are left out of the comparison.
//! `keyspace_hits`/`keyspace_misses` count Redis' read lookups only, command by command.

use std::collections::BTreeMap;

use redis::Connection;
use vigil_tests::{NodeProc, RedisProc};

/// Each command is sent as is; replies (errors included) are not compared here: the
/// differential suites do that.
const STEPS: &[&[&str]] = &[
    &["SET", "foo", "1"],
    &["GEOADD", "foo", "0", "0", "bar"],
    &["SET", "k"],
    &["SET", "k1", "v1"],
    &["EXPIRE", "foo", "100"],
    &["ASDF"],
    &["MULTI"],
    &["SET"],
    &["SET", "a", "b"],
    &["EXEC"],
    &["MULTI"],
    &["SET", "a", "b"],
    &["LPUSH", "a", "x"],
    &["EXEC"],
    &["EXEC"],
    &[
        "EVAL",
        "redis.pcall('XGROUP', 'CREATECONSUMER', 's1', 'g', 'c'); redis.call('set', KEYS[1], 0)",
        "1",
        "viascript",
    ],
    &["EVALSHA", "NotValidShaSUM", "0"],
    // A command error that ends the script counts once, as the script's reply.
    &["SET", "str", "abc"],
    &["EVAL", "return redis.call('incr', KEYS[1])", "1", "str"],
    &["EVAL", "return redis.error_reply('MYCODE custom')", "0"],
    &["EVAL", "error('raised')", "0"],
    &[
        "EVAL",
        "redis.pcall('incr', KEYS[1]); return redis.call('hget', KEYS[1], 'f')",
        "1",
        "str",
    ],
    &["EVAL"],
    &["XADD", "s", "*", "f", "v"],
    &["XGROUP", "CREATECONSUMER", "s", "nogroup", "c"],
    &["CONFIG", "GET"],
    &["OBJECT", "ENCODING", "foo"],
    &["INCR", "k1"],
    // A library change counts once, though it also runs as a data command.
    &[
        "FUNCTION",
        "LOAD",
        "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)",
    ],
    // Every command of a transaction counts, whatever kind of command it is.
    &["MULTI"],
    &["PING"],
    &["CONFIG", "GET", "maxmemory"],
    &["FUNCTION", "DELETE", "lib1"],
    &["CLIENT", "GETNAME"],
    &["EXEC"],
];

fn run(c: &mut Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _ = cmd.query::<redis::Value>(c);
}

fn connect(port: u16) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn info(c: &mut Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(c).unwrap()
}

/// `cmdstat_x:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..` without the
/// times, for every command the steps name (INFO and CONFIG RESETSTAT themselves left out).
fn counts(c: &mut Connection) -> BTreeMap<String, String> {
    info(c, "commandstats")
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            if name == "info" || name == "config|resetstat" {
                return None;
            }
            let kept: Vec<&str> = rest
                .trim_end()
                .split(',')
                .filter(|f| !f.starts_with("usec"))
                .collect();
            Some((name.to_string(), kept.join(",")))
        })
        .collect()
}

fn errors(c: &mut Connection) -> (Vec<String>, String) {
    let e = info(c, "errorstats")
        .lines()
        .filter(|l| l.starts_with("errorstat_"))
        .map(|l| l.trim_end().to_string())
        .collect();
    let total = info(c, "stats")
        .lines()
        .find(|l| l.starts_with("total_error_replies:"))
        .map(|l| l.trim_end().to_string())
        .unwrap_or_default();
    (e, total)
}

#[test]
fn command_and_error_statistics_match_redis_server() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut seen = Vec::new();
    for port in [redis.port, node.port] {
        let mut c = connect(port);
        run(&mut c, &["CONFIG", "RESETSTAT"]);
        for step in STEPS {
            run(&mut c, step);
        }
        seen.push((counts(&mut c), errors(&mut c)));
    }
    let (want, got) = (&seen[0], &seen[1]);
    assert!(
        want.0.contains_key("xgroup|createconsumer") && want.1.1 != "total_error_replies:0",
        "the steps must exercise what they claim: {want:?}"
    );
    let mut diffs = Vec::new();
    for name in want.0.keys().chain(got.0.keys()) {
        let (w, g) = (want.0.get(name), got.0.get(name));
        if w != g && !diffs.iter().any(|d: &String| d.starts_with(name.as_str())) {
            diffs.push(format!("{name}: redis {w:?} node {g:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "commandstats differ:\n{}",
        diffs.join("\n")
    );
    assert_eq!(
        got.1, want.1,
        "errorstats / total_error_replies (node, redis)"
    );
}

/// Read lookups (GET, EXISTS, a `*STORE`'s sources, XACK, PFCOUNT, SORT) count as keyspace
/// hits and misses, once per key; write lookups (INCR, LPUSH, SMOVE, a destination) do not.
const LOOKUPS: &[&[&str]] = &[
    &["SET", "s", "v"],
    &["GET", "s"],
    &["GET", "nosuch"],
    &["MGET", "s", "nosuch", "s"],
    &["INCR", "counter"],
    &["INCR", "counter"],
    &["APPEND", "s", "x"],
    &["STRLEN", "s"],
    &["EXISTS", "s", "nosuch"],
    &["TTL", "s"],
    &["PTTL", "nosuch"],
    &["TYPE", "s"],
    &["OBJECT", "ENCODING", "s"],
    &["OBJECT", "FREQ", "nosuch"],
    &["TOUCH", "s", "nosuch"],
    &["EXPIRE", "s", "100"],
    &["PERSIST", "s"],
    &["LPUSH", "l", "a", "b", "c"],
    &["LRANGE", "l", "0", "-1"],
    &["LPOP", "l"],
    &["RPOPLPUSH", "l", "l2"],
    &["LMOVE", "nosuch", "l2", "LEFT", "LEFT"],
    &["HSET", "h", "f", "v"],
    &["HGET", "h", "f"],
    &["HGET", "nosuch", "f"],
    &["HINCRBY", "h", "n", "1"],
    &["SADD", "s1", "a", "b"],
    &["SADD", "s2", "b", "c"],
    &["SUNIONSTORE", "s3", "s1", "s2", "nosuch"],
    &["SINTERCARD", "2", "s1", "s2"],
    &["SMOVE", "s1", "s2", "a"],
    &["ZADD", "z", "1", "a"],
    &["ZSCORE", "z", "a"],
    &["ZRANGESTORE", "z2", "z", "0", "-1"],
    &["ZINCRBY", "z", "1", "a"],
    &["PFADD", "p", "a"],
    &["PFCOUNT", "p"],
    &["PFCOUNT", "nosuch"],
    &["PFCOUNT", "p", "nosuch"],
    &["PFMERGE", "p2", "p", "nosuch"],
    &["SORT", "l2", "ALPHA"],
    &["SORT", "l2", "ALPHA", "STORE", "l3"],
    &[
        "SORT", "l2", "BY", "nosuch_*", "GET", "#", "GET", "h_*", "STORE", "l4",
    ],
    &["GETDEL", "s"],
    &["GETEX", "nosuch"],
    &["GETSET", "counter", "5"],
    &["SET", "counter", "6", "GET"],
    &["SET", "nosuch2", "v", "GET"],
    &["RENAME", "counter", "c2"],
    &["COPY", "c2", "c3"],
    &["DUMP", "c2"],
    &["XADD", "x", "*", "f", "v"],
    &["XGROUP", "CREATE", "x", "g", "0"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">"],
    &["XREAD", "STREAMS", "x", "nosuch", "0", "0"],
    &["XREAD", "STREAMS", "x", "$"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", "0"],
    &["XACK", "x", "g", "0-1"],
    &["XACK", "x", "nogroup", "0-1"],
    &["XACK", "nosuch", "g", "0-1"],
    &["XLEN", "x"],
    &["SETBIT", "b", "1", "1"],
    &["GETBIT", "b", "1"],
    &["BITOP", "AND", "b2", "b", "nosuch"],
    &["MEMORY", "USAGE", "c2"],
    &["BITFIELD", "b", "GET", "u8", "0"],
    &["BITFIELD", "nosuch", "GET", "u8", "0"],
    &["BITFIELD", "b", "SET", "u8", "0", "1"],
    &["XCLAIM", "x", "g", "c2", "0", "0-1"],
    &["XAUTOCLAIM", "x", "g", "c2", "0", "0"],
    &[
        "GEOADD", "geo", "13.36", "38.11", "a", "15.08", "37.50", "b",
    ],
    &[
        "GEOSEARCH",
        "geo",
        "FROMMEMBER",
        "a",
        "BYRADIUS",
        "500",
        "km",
    ],
    &[
        "GEOSEARCH",
        "nosuch",
        "FROMLONLAT",
        "15",
        "37",
        "BYRADIUS",
        "500",
        "km",
    ],
    &["GEORADIUSBYMEMBER", "geo", "a", "500", "km"],
    &[
        "GEOSEARCHSTORE",
        "geo2",
        "geo",
        "FROMMEMBER",
        "b",
        "BYBOX",
        "900",
        "900",
        "km",
    ],
    &["GEODIST", "geo", "a", "b"],
    &["EVAL", "return redis.call('get', KEYS[1])", "1", "c2"],
    &["EVAL", "return redis.call('incr', KEYS[1])", "1", "c9"],
    &["DEL", "b", "nosuch"],
];

fn hits_and_misses(c: &mut Connection) -> (String, String) {
    let stats = info(c, "stats");
    let field = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("absent")
            .trim_end()
            .to_string()
    };
    (field("keyspace_hits:"), field("keyspace_misses:"))
}

#[test]
fn keyspace_hits_and_misses_count_read_lookups_only() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let mut conns: Vec<Connection> = [redis.port, node.port].into_iter().map(connect).collect();
    let mut diffs = Vec::new();
    let mut counted = 0;
    for (i, step) in LOOKUPS.iter().enumerate() {
        let mut seen = Vec::new();
        for c in &mut conns {
            run(c, &["CONFIG", "RESETSTAT"]);
            run(c, step);
            seen.push(hits_and_misses(c));
        }
        if seen[0] != ("0".into(), "0".into()) {
            counted += 1;
        }
        if seen[0] != seen[1] {
            diffs.push(format!(
                "#{i} {step:?}: (hits, misses) redis {:?} node {:?}",
                seen[0], seen[1]
            ));
        }
    }
    assert!(
        counted > 10,
        "the steps must include read lookups: {counted}"
    );
    assert!(
        diffs.is_empty(),
        "keyspace stats differ:\n{}",
        diffs.join("\n")
    );
}

/// `latest_fork_usec` and `total_forks` of `INFO stats`.
fn forks(c: &mut Connection) -> (u64, u64) {
    let text = info(c, "stats");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats:\n{text}"))
    };
    (field("latest_fork_usec"), field("total_forks"))
}

/// A background save forks on both, and both count and time the fork; `CONFIG RESETSTAT`
/// clears the numbers. (A node forks where its allocator is known to be fork-safe.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn forks_are_counted_and_timed_as_redis_does() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    for port in [redis.port, node.port] {
        let mut c = connect(port);
        run(&mut c, &["SET", "k", "v"]);
        run(&mut c, &["CONFIG", "RESETSTAT"]);
        assert_eq!(forks(&mut c), (0, 0), "port {port} before a save");
        let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while info(&mut c, "persistence").contains("rdb_bgsave_in_progress:1") {
            assert!(
                std::time::Instant::now() < deadline,
                "port {port}: BGSAVE never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let (usec, total) = forks(&mut c);
        assert_eq!(total, 1, "port {port}");
        assert!(usec > 0, "port {port}: the fork took {usec} µs");
        run(&mut c, &["CONFIG", "RESETSTAT"]);
        assert_eq!(forks(&mut c), (0, 0), "port {port} after CONFIG RESETSTAT");
    }
}

/// Every `INFO` section has redis-server 7.0's fields in its order (with the log on, as a
/// node runs by default); the node adds only `vigil_version` and `pubsub_clients`. Both count
/// a finished background save in `rdb_saves` and time it, and `CONFIG RESETSTAT` clears the
/// count.
#[test]
fn info_sections_have_redis_fields_in_order() {
    const SECTIONS: [&str; 7] = [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
    ];
    const OURS: [&str; 2] = ["vigil_version", "pubsub_clients"];
    let redis = RedisProc::start_with(&["--appendonly", "yes"]);
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
            .collect()
    };
    let field = |text: &str, name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO persistence:\n{text}"))
    };
    let mut seen = Vec::new();
    for port in [redis.port, node.port] {
        let mut c = connect(port);
        let before = info(&mut c, "persistence");
        assert_eq!(field(&before, "rdb_saves"), 0, "port {port}");
        assert_eq!(
            field(&before, "rdb_last_bgsave_time_sec"),
            -1,
            "port {port}"
        );
        run(&mut c, &["SET", "k", "v"]);
        let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let after = loop {
            let text = info(&mut c, "persistence");
            if text.contains("rdb_bgsave_in_progress:0") && field(&text, "rdb_saves") == 1 {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {port}: BGSAVE never ended:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(
            field(&after, "rdb_last_bgsave_time_sec") >= 0,
            "port {port}:\n{after}"
        );
        assert_eq!(
            field(&after, "rdb_current_bgsave_time_sec"),
            -1,
            "port {port}"
        );
        seen.push(SECTIONS.map(|s| names(&info(&mut c, s))));
        run(&mut c, &["CONFIG", "RESETSTAT"]);
        let reset = info(&mut c, "persistence");
        assert_eq!(
            field(&reset, "rdb_saves"),
            0,
            "port {port} after CONFIG RESETSTAT"
        );
        assert_eq!(
            field(&reset, "aof_rewrites"),
            0,
            "port {port} after CONFIG RESETSTAT"
        );
    }
    for (i, section) in SECTIONS.iter().enumerate() {
        let (theirs, ours) = (&seen[0][i], &seen[1][i]);
        let extra: Vec<_> = ours.iter().filter(|n| !theirs.contains(n)).collect();
        assert!(
            extra.iter().all(|n| OURS.contains(&n.as_str())),
            "INFO {section}: fields redis-server has not: {extra:?}"
        );
        let shared: Vec<_> = ours.iter().filter(|n| theirs.contains(n)).collect();
        let want: Vec<_> = theirs.iter().collect();
        assert_eq!(
            shared, want,
            "INFO {section}: the node's fields, then redis-server's"
        );
    }
}

/// The last fields of `INFO memory`, which scripts poll (Redis' own test suite waits for
/// `lazyfree_pending_objects` to reach 0): present and the same on both after an `UNLINK`.
#[test]
fn lazyfree_and_defrag_fields_match_redis() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("n"), &[]);
    let fields = [
        "active_defrag_running",
        "lazyfree_pending_objects",
        "lazyfreed_objects",
    ];
    let mut seen = Vec::new();
    for port in [redis.port, node.port] {
        let mut c = connect(port);
        run(&mut c, &["SET", "k", "v"]);
        run(&mut c, &["UNLINK", "k"]);
        let text = info(&mut c, "memory");
        let values: Vec<Option<String>> = fields
            .iter()
            .map(|f| {
                text.lines()
                    .find_map(|l| l.strip_prefix(f)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
            .collect();
        seen.push(values);
    }
    assert!(seen[0].iter().all(Option::is_some), "redis: {:?}", seen[0]);
    assert_eq!(seen[0], seen[1], "{fields:?}: redis, then node");
}
