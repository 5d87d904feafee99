//! The node replicating from a stock redis-server master: full sync from the master's RDB,
//! then its command stream, acknowledged; promoted afterwards with REPLICAOF NO ONE.

use super::*;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn node_follows_a_redis_server_master_and_can_be_promoted() {
    let redis = RedisProc::start();
    let mut r = conn(redis.port);
    let mut keys = populate(&mut r);
    run(&mut r, &["SELECT", "2"]);
    run(&mut r, &["SET", "db2", "x"]);
    run(&mut r, &["SELECT", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let to = format!("127.0.0.1:{}", redis.port);
    let node = NodeProc::start(&dir.path().join("n"), &["--replicaof", &to]);
    let mut v = node.client();
    let same = |r: &mut Connection, v: &mut Connection, keys: &[String]| {
        keys.iter().all(|k| content(r, k) == content(v, k))
    };
    wait_until("the full sync", || same(&mut r, &mut v, &keys));
    // The command stream: writes of every kind, a transaction, a script, expiry.
    run(&mut r, &["SET", "after", "1"]);
    run(&mut r, &["INCR", "after"]);
    run(&mut r, &["RPUSH", "l:5", "more"]);
    run(&mut r, &["HSET", "h:5", "new", "field"]);
    run(&mut r, &["XADD", "x", "1000-1", "f", "v"]);
    run(
        &mut r,
        &[
            "EVAL",
            "redis.call('set', KEYS[1], 'lua') return 1",
            "1",
            "scripted",
        ],
    );
    run(&mut r, &["SET", "short", "x", "PX", "100"]);
    run(&mut r, &["DEL", "s:int"]);
    run(&mut r, &["SELECT", "2"]);
    run(&mut r, &["SET", "db2", "y"]);
    run(&mut r, &["SELECT", "0"]);
    keys.extend(["after", "scripted", "short"].map(String::from));
    wait_until("the stream", || {
        std::thread::sleep(Duration::from_millis(150));
        same(&mut r, &mut v, &keys)
    });
    run(&mut v, &["SELECT", "2"]);
    assert_eq!(
        run(&mut v, &["GET", "db2"]),
        Value::BulkString(b"y".to_vec())
    );
    run(&mut v, &["SELECT", "0"]);
    // The master sees the replica's acknowledged offset reach its own.
    wait_until("REPLCONF ACK", || {
        let info = bytes(run(&mut r, &["INFO", "replication"]));
        let info = String::from_utf8_lossy(&info);
        let field = |name: &str| {
            info.split([',', '\r', '\n'])
                .find_map(|p| p.strip_prefix(name).map(str::to_string))
        };
        field("master_repl_offset:").is_some_and(|m| field("offset=") == Some(m))
    });
    // Promoted: it takes writes of its own.
    run(&mut v, &["REPLICAOF", "NO", "ONE"]);
    run(&mut v, &["SET", "mine", "1"]);
    assert_eq!(
        run(&mut v, &["GET", "mine"]),
        Value::BulkString(b"1".to_vec())
    );
}
