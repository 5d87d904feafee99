//! Client-side caching (`CLIENT TRACKING`) compared with redis-server byte for byte, message by
//! message, across several connections: RESP3 pushes, RESP2 redirection to a
//! `__redis__:invalidate` subscriber, OPTIN/OPTOUT, NOLOOP, BCAST prefixes, flushes, expiry,
//! transactions and scripts; `INFO`'s tracking counts beside redis-server's; then node-redis'
//! cache and redis-py's tracking API on a real node.

use vigil_tests::client_script::Client;
use vigil_tests::sessions::assert_sessions_match;
use vigil_tests::{NodeProc, RedisProc};

#[test]
fn default_mode_in_resp3_matches_redis() {
    assert_sessions_match(
        r#"
        a: HELLO 3
        a: CLIENT TRACKING on
        a: CLIENT TRACKINGINFO
        a: CLIENT GETREDIR
        a: GET k
        b: SET k 1
        a<
        b: SET k 2
        a!
        a: MGET k x y
        b: MSET x 1 y 2 k 3
        a<
        a<
        a<
        a: HGETALL h
        b: HSET h f v
        a<
        a: SMEMBERS s
        b: DEL s
        a!
        b: SADD s m
        a<
        a: GET e
        b: SET e v PX 30
        a<
        a: GET k
        b: FLUSHDB
        a<
        a: GET k
        b: FLUSHALL
        a<
        a: CLIENT TRACKING off
        a: CLIENT TRACKINGINFO
        a: GET k
        b: SET k 9
        a!
        "#,
    );
}

#[test]
fn own_writes_transactions_and_scripts_match_redis() {
    assert_sessions_match(
        r#"
        a: HELLO 3
        a: CLIENT TRACKING on
        a: GET k
        a: SET k 1
        a<
        a: GET k
        a: MULTI
        a: GET k
        a: SET k 2
        a: EXEC
        a<
        a: CLIENT TRACKING on NOLOOP
        a: GET k
        a: SET k 3
        a!
        b: SET k 4
        a<
        a: CLIENT TRACKING off
        a: CLIENT TRACKING on
        a: EVAL "return redis.call('get', KEYS[1])" 2 k1 k2
        b: MSET k2 1 k1 1
        a<
        a<
        a: EVAL "return 1" 1 k3
        b: SET k3 1
        a!
        "#,
    );
}

#[test]
fn optin_optout_and_their_errors_match_redis() {
    assert_sessions_match(
        r#"
        a: HELLO 3
        a: CLIENT CACHING yes
        a: CLIENT TRACKING on OPTIN OPTOUT
        a: CLIENT TRACKING on OPTIN BCAST
        a: CLIENT TRACKING on PREFIX p
        a: CLIENT TRACKING on REDIRECT 0
        a: CLIENT TRACKING on REDIRECT 99999
        a: CLIENT TRACKING on REDIRECT x
        a: CLIENT TRACKING maybe
        a: CLIENT TRACKING on BOGUS
        a: CLIENT TRACKING
        a: CLIENT TRACKING on OPTIN
        a: CLIENT CACHING no
        a: CLIENT CACHING maybe
        a: CLIENT TRACKING on OPTOUT
        a: CLIENT TRACKING on BCAST
        a: GET k1
        b: SET k1 1
        a!
        a: CLIENT CACHING yes
        a: CLIENT TRACKINGINFO
        a: GET k2
        a: CLIENT TRACKINGINFO
        b: SET k2 1
        a<
        a: CLIENT CACHING yes
        a: PING
        a: GET k3
        b: SET k3 1
        a!
        a: CLIENT CACHING yes
        a: MULTI
        a: GET k4
        a: EXEC
        b: SET k4 1
        a<
        c: HELLO 3
        c: CLIENT TRACKING on OPTOUT
        c: CLIENT CACHING yes
        c: CLIENT CACHING no
        c: CLIENT TRACKINGINFO
        c: GET k5
        c: GET k6
        b: MSET k5 1 k6 1
        c<
        c!
        "#,
    );
}

#[test]
fn bcast_and_resp2_redirection_match_redis() {
    assert_sessions_match(
        r#"
        l: SUBSCRIBE __redis__:invalidate
        a: CLIENT TRACKING on BCAST REDIRECT {id:l} PREFIX user: PREFIX job:
        a: CLIENT TRACKING on BCAST PREFIX use
        a: CLIENT TRACKING on BCAST PREFIX a PREFIX ab
        a: CLIENT TRACKING on
        a: CLIENT TRACKINGINFO
        b: MULTI
        b: SET user:1 a
        b: SET job:1 b
        b: SET other c
        b: SET user:2 d
        b: EXEC
        l<
        l<
        l!
        a: CLIENT TRACKING on BCAST REDIRECT {id:l} PREFIX cart:
        b: INCR cart:9
        l<
        a: CLIENT TRACKING off
        a: CLIENT TRACKING on BCAST REDIRECT {id:l} NOLOOP
        a: SET mine 1
        b: SET theirs 1
        l<
        b: FLUSHALL
        l<
        r: CLIENT TRACKING on REDIRECT {id:l}
        r: GET k
        b: SET k 1
        l<
        x: HELLO 3
        y: CLIENT TRACKING on REDIRECT {id:x}
        y: GET q
        b: SET q 1
        x<
        y: CLIENT GETREDIR
        "#,
    );
}

/// A redirect target that disconnects: the tracking RESP3 client hears `tracking-redir-broken`.
#[test]
fn broken_redirection_matches_redis() {
    assert_sessions_match(
        r#"
        t: HELLO 3
        a: HELLO 3
        a: CLIENT TRACKING on REDIRECT {id:t}
        a: GET k
        t: QUIT
        b: SET k 1
        a<
        a: CLIENT TRACKINGINFO
        "#,
    );
}

#[test]
fn node_redis_cache_and_redis_py_tracking_see_invalidations() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let port = node.port.to_string();
    Client::spawn(
        "node",
        "tests/clients/node/caching.js",
        std::slice::from_ref(&port),
    )
    .finish();
    Client::spawn("python", "tests/clients/python/caching.py", &[port]).finish();
}

/// The integer `field` of `INFO section`.
fn info_int(c: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    let name = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(name.as_str()))
        .unwrap_or_else(|| panic!("no {field} in {info:?}"))
        .trim()
        .parse()
        .unwrap()
}

/// `CLIENT TRACKING on REDIRECT target` and `extra` options on `c`.
fn tracking_on(c: &mut redis::Connection, target: i64, extra: &[&str]) {
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("on")
        .arg("REDIRECT")
        .arg(target)
        .arg(extra)
        .query(c)
        .unwrap();
}

/// `INFO clients`' `tracking_clients` on a server at `port` after each step: two clients
/// start tracking (one RESP2 with a redirect, one BCAST), one turns it off, the other leaves.
fn tracking_clients_through_a_session(port: u16) -> Vec<u64> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut watcher = client.get_connection().unwrap();
    let count = |c: &mut redis::Connection| info_int(c, "clients", "tracking_clients");
    let mut seen = vec![count(&mut watcher)];
    let target: i64 = redis::cmd("CLIENT").arg("ID").query(&mut watcher).unwrap();
    let mut a = client.get_connection().unwrap();
    let mut b = client.get_connection().unwrap();
    let on = |c: &mut redis::Connection, extra: &[&str]| tracking_on(c, target, extra);
    on(&mut a, &[]);
    seen.push(count(&mut watcher));
    on(&mut b, &["BCAST", "PREFIX", "p:"]);
    // Turning it on again changes nothing.
    on(&mut a, &[]);
    seen.push(count(&mut watcher));
    let _: () = redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("off")
        .query(&mut a)
        .unwrap();
    seen.push(count(&mut watcher));
    drop(b);
    // The server notices the disconnect on its own time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count(&mut watcher) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    seen.push(count(&mut watcher));
    seen
}

#[test]
fn info_counts_tracking_clients_as_redis_does() {
    let redis = RedisProc::start();
    let expected = tracking_clients_through_a_session(redis.port);
    assert_eq!(expected, [0, 1, 2, 1, 0], "redis-server");
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    assert_eq!(tracking_clients_through_a_session(node.port), expected);
}

/// `INFO stats`' `tracking_total_keys`, `_items` and `_prefixes` on a server at `port` after
/// each step: two default-mode clients read keys (one key by both, one twice), a BCAST client
/// takes two prefixes, a write invalidates a key, a re-read changes nothing; with
/// every client's tracking off a write still drops its key, and FLUSHALL clears the table. Invalidations go to a RESP2 subscriber of `__redis__:invalidate`.
fn tracking_totals_through_a_session(port: u16) -> Vec<[u64; 3]> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut watcher = client.get_connection().unwrap();
    let totals = |c: &mut redis::Connection| -> [u64; 3] {
        ["keys", "items", "prefixes"].map(|f| info_int(c, "stats", &format!("tracking_total_{f}")))
    };
    let mut sink = client.get_connection().unwrap();
    let target: i64 = redis::cmd("CLIENT").arg("ID").query(&mut sink).unwrap();
    let mut sink = sink.as_pubsub();
    sink.subscribe("__redis__:invalidate").unwrap();
    let on = |c: &mut redis::Connection, extra: &[&str]| tracking_on(c, target, extra);
    let read = |c: &mut redis::Connection, keys: &[&str]| {
        let _: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query(c).unwrap();
    };
    let mut seen = vec![totals(&mut watcher)];
    let (mut a, mut b, mut c) = (
        client.get_connection().unwrap(),
        client.get_connection().unwrap(),
        client.get_connection().unwrap(),
    );
    on(&mut a, &[]);
    read(&mut a, &["k1", "k2"]);
    seen.push(totals(&mut watcher));
    on(&mut b, &[]);
    read(&mut b, &["k1", "k3", "k3"]);
    seen.push(totals(&mut watcher));
    on(&mut c, &["BCAST", "PREFIX", "p:", "PREFIX", "q:"]);
    seen.push(totals(&mut watcher));
    let _: () = redis::cmd("SET")
        .arg("k1")
        .arg("v")
        .query(&mut watcher)
        .unwrap();
    seen.push(totals(&mut watcher));
    read(&mut a, &["k2"]);
    seen.push(totals(&mut watcher));
    // With no client tracking, a write still drops its key and FLUSHALL the rest.
    for conn in [&mut a, &mut b, &mut c] {
        let _: () = redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("off")
            .query(conn)
            .unwrap();
    }
    seen.push(totals(&mut watcher));
    let _: () = redis::cmd("SET")
        .arg("k2")
        .arg("v")
        .query(&mut watcher)
        .unwrap();
    seen.push(totals(&mut watcher));
    let _: () = redis::cmd("FLUSHALL").query(&mut watcher).unwrap();
    seen.push(totals(&mut watcher));
    seen
}

#[test]
fn info_counts_the_tracking_table_as_redis_does() {
    let redis = RedisProc::start();
    let expected = tracking_totals_through_a_session(redis.port);
    assert_eq!(
        expected,
        [
            [0, 0, 0],
            [2, 2, 0],
            [3, 4, 0],
            [3, 4, 2],
            [2, 2, 2],
            [2, 2, 2],
            [2, 2, 0],
            [1, 1, 0],
            [0, 0, 0]
        ],
        "redis-server"
    );
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    assert_eq!(tracking_totals_through_a_session(node.port), expected);
}
