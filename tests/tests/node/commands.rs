//! Command semantics through real clients over TCP: the `redis` crate (RESP2 and RESP3) and raw
//! RESP where exact frames matter (push messages, protocol-level behaviour).

use std::thread;
use std::time::{Duration, Instant};

use redis::{Commands, Value};
use vigil_tests::{NodeProc, RawConn, RedisProc};

fn node() -> (tempfile::TempDir, NodeProc) {
    let dir = tempfile::tempdir().unwrap();
    let n = NodeProc::start(&dir.path().join("node"), &[]);
    (dir, n)
}

#[test]
fn strings_and_lazy_and_active_expiry() {
    let (_d, n) = node();
    let mut c = n.client();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("x")
        .arg("PX")
        .arg(150)
        .query(&mut c)
        .unwrap();
    let pttl: i64 = c.pttl("t").unwrap();
    assert!(pttl > 0 && pttl <= 150, "pttl {pttl}");
    thread::sleep(Duration::from_millis(250));
    // Lazy: the read itself sees it gone.
    assert_eq!(c.get::<_, Option<String>>("t").unwrap(), None);
    // Active: keys nobody reads disappear on their own. They are written and counted in one
    // transaction, so none can expire before the count however slow the machine.
    let mut tx = redis::pipe();
    tx.atomic();
    for i in 0..200 {
        tx.cmd("SET")
            .arg(format!("e{i}"))
            .arg("x")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    tx.cmd("DBSIZE");
    let (size,): (i64,) = tx.query(&mut c).unwrap();
    assert_eq!(size, 201);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if size == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "active expiry left {size} keys");
        thread::sleep(Duration::from_millis(50));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(info.contains("expired_keys:201"), "{info}");
}

#[test]
fn blocking_pops_wake_on_push_and_time_out() {
    let (_d, n) = node();
    let port = n.port;
    let waiter = thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let started = Instant::now();
        let v: (String, String) = redis::cmd("BLPOP")
            .arg("q1")
            .arg("q2")
            .arg(5)
            .query(&mut c)
            .unwrap();
        (v, started.elapsed())
    });
    thread::sleep(Duration::from_millis(200));
    let mut c = n.client();
    let _: () = c.rpush("q2", "hello").unwrap();
    let ((key, val), waited) = waiter.join().unwrap();
    assert_eq!((key.as_str(), val.as_str()), ("q2", "hello"));
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(
        c.llen::<_, i64>("q2").unwrap(),
        0,
        "the blocked client took the element"
    );

    let started = Instant::now();
    let v: Option<(String, String)> = redis::cmd("BRPOP")
        .arg("nothing")
        .arg(0.3)
        .query(&mut c)
        .unwrap();
    assert!(v.is_none());
    assert!(started.elapsed() >= Duration::from_millis(280));

    // BLMOVE moves atomically once the source gets an element.
    let port = n.port;
    let mover = thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("BLMOVE")
            .arg("src")
            .arg("dst")
            .arg("LEFT")
            .arg("RIGHT")
            .arg(5)
            .query::<String>(&mut c)
            .unwrap()
    });
    thread::sleep(Duration::from_millis(100));
    let _: () = c.rpush("src", "item").unwrap();
    assert_eq!(mover.join().unwrap(), "item");
    assert_eq!(
        c.lrange::<_, Vec<String>>("dst", 0, -1).unwrap(),
        vec!["item"]
    );
}

#[test]
fn a_blocked_client_that_disconnects_takes_nothing() {
    let (_d, n) = node();
    let mut raw = RawConn::connect(n.port).unwrap();
    raw.send_raw(&RawConn::encode(&["BLPOP", "jobs", "0"]))
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    drop(raw);
    thread::sleep(Duration::from_millis(100));
    let mut c = n.client();
    let _: () = c.rpush("jobs", "j1").unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        c.lrange::<_, Vec<String>>("jobs", 0, -1).unwrap(),
        vec!["j1"],
        "an element went to a dead client"
    );
}

#[test]
fn watch_aborts_exec_when_another_client_writes() {
    let (_d, n) = node();
    let mut a = n.client();
    let mut b = n.client();
    let _: () = a.set("bal", 10).unwrap();
    let _: () = redis::cmd("WATCH").arg("bal").query(&mut a).unwrap();
    let _: () = b.set("bal", 20).unwrap();
    let r: Option<(i64,)> = redis::pipe().atomic().incr("bal", 1).query(&mut a).unwrap();
    assert_eq!(r, None, "EXEC must abort after a watched key changed");
    let r: (i64,) = redis::pipe().atomic().incr("bal", 1).query(&mut a).unwrap();
    assert_eq!(r, (21,));
}

#[test]
fn pubsub_resp2_with_patterns() {
    let (_d, n) = node();
    let mut sub_conn = n.client();
    let mut publisher = n.client();
    let mut sub = sub_conn.as_pubsub();
    sub.subscribe("news").unwrap();
    sub.psubscribe("ev:*").unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let receivers: i64 = publisher.publish("news", "hello").unwrap();
    assert_eq!(receivers, 1);
    let m = sub.get_message().unwrap();
    assert_eq!(
        (
            m.get_channel_name(),
            m.get_payload::<String>().unwrap().as_str()
        ),
        ("news", "hello")
    );
    let _: i64 = publisher.publish("ev:1", "x").unwrap();
    let m = sub.get_message().unwrap();
    assert_eq!(m.get_pattern::<String>().unwrap(), "ev:*");
    assert_eq!(m.get_channel_name(), "ev:1");
}

#[test]
fn resp3_push_frames_and_types() {
    let (_d, n) = node();
    let mut s = RawConn::connect(n.port).unwrap();
    let hello = s.call(&["HELLO", "3"]);
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    assert!(String::from_utf8_lossy(&hello).contains("$5\r\nproto\r\n:3\r\n"));
    assert_eq!(
        s.call(&["SUBSCRIBE", "ch"]),
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    // Under RESP3 a subscribed connection may run any command.
    assert_eq!(s.call(&["GET", "nothing"]), b"_\r\n");
    let mut p = n.client();
    let _: i64 = p.publish("ch", "payload").unwrap();
    assert_eq!(
        s.read_reply().unwrap(),
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$7\r\npayload\r\n"
    );

    let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/?protocol=resp3", n.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = c.hset("h", "f", "v").unwrap();
    let v: Value = redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    assert!(matches!(v, Value::Map(ref m) if m.len() == 1), "{v:?}");
    let _: () = c.zadd("z", "m", 1.5).unwrap();
    let v: Value = redis::cmd("ZSCORE")
        .arg("z")
        .arg("m")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Double(1.5));
}

#[test]
fn resp2_subscribed_mode_restricts_commands() {
    let (_d, n) = node();
    let mut s = RawConn::connect(n.port).unwrap();
    s.call(&["SUBSCRIBE", "ch"]);
    assert_eq!(s.call(&["PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    let e = s.call(&["GET", "x"]);
    assert!(
        e.starts_with(b"-ERR Can't execute 'get'"),
        "{:?}",
        String::from_utf8_lossy(&e)
    );
    assert_eq!(
        s.call(&["UNSUBSCRIBE"]),
        b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"
    );
    assert_eq!(s.call(&["GET", "x"]), b"$-1\r\n");
}

#[test]
fn authentication_with_requirepass() {
    let dir = tempfile::tempdir().unwrap();
    let n = NodeProc::start(&dir.path().join("node"), &["--requirepass", "s3cret"]);
    let mut s = RawConn::connect(n.port).unwrap();
    assert_eq!(
        s.call(&["GET", "x"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        s.call(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert!(
        s.call(&["HELLO", "3"])
            .starts_with(b"-NOAUTH HELLO must be called")
    );
    assert!(
        s.call(&["HELLO", "3", "AUTH", "default", "s3cret"])
            .starts_with(b"%7")
    );
    assert_eq!(s.call(&["SET", "x", "1"]), b"+OK\r\n");
    // The redis crate authenticates from the URL.
    let mut c = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", n.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(c.get::<_, String>("x").unwrap(), "1");
    // Large requests from unauthenticated clients are refused before allocation.
    let mut u = RawConn::connect(n.port).unwrap();
    u.send_raw(b"*1\r\n$100000\r\n").unwrap();
    assert_eq!(
        u.read_reply().unwrap(),
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(u.is_closed());
}

#[test]
fn client_list_name_and_kill() {
    let (_d, n) = node();
    let mut a = n.client();
    let mut victim = RawConn::connect(n.port).unwrap();
    assert_eq!(victim.call(&["CLIENT", "SETNAME", "victim"]), b"+OK\r\n");
    let id = String::from_utf8(victim.call(&["CLIENT", "ID"])).unwrap();
    let id = id.trim_start_matches(':').trim();
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut a).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("name=victim") && l.contains(&format!("id={id} "))),
        "{list}"
    );
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut a)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(victim.is_closed());
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut a).unwrap();
    assert!(!list.contains("name=victim"), "{list}");
}

/// `qbuf` counts the query buffer as Redis does: while a batch runs, every byte read for it
/// (Redis' own suite expects `qbuf=26` from `CLIENT LIST` or `CLIENT INFO` sent alone).
#[test]
fn client_info_counts_the_query_buffer_as_redis_does() {
    let (_d, n) = node();
    let redis = RedisProc::start();
    for port in [n.port, redis.port] {
        let mut c = RawConn::connect(port).unwrap();
        let alone = String::from_utf8(c.call(&["CLIENT", "INFO"])).unwrap();
        assert!(alone.contains(" qbuf=26 "), "port {port}: {alone}");
        c.send_raw(b"*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
            .unwrap();
        assert_eq!(c.read_reply().unwrap(), b"+PONG\r\n");
        let batch = String::from_utf8(c.read_reply().unwrap()).unwrap();
        assert!(batch.contains(" qbuf=40 "), "port {port}: {batch}");
    }
}

/// `multi` is the count of commands queued in an open MULTI (-1 outside one) and `fd` the
/// client's socket, as in Redis.
#[test]
fn client_list_shows_queued_commands_and_the_socket_as_redis_does() {
    let (_d, n) = node();
    let redis = RedisProc::start();
    for port in [n.port, redis.port] {
        let mut a = RawConn::connect(port).unwrap();
        let mut b = RawConn::connect(port).unwrap();
        let id = String::from_utf8(a.call(&["CLIENT", "ID"])).unwrap();
        let id = format!("id={} ", id.trim_start_matches(':').trim());
        let field = |b: &mut RawConn, name: &str| -> i64 {
            let list = String::from_utf8(b.call(&["CLIENT", "LIST"])).unwrap();
            let line = list.lines().find(|l| l.contains(&id)).unwrap().to_string();
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("port {port}: no {name} in {line}"))
                .parse()
                .unwrap()
        };
        let mut seen = vec![field(&mut b, "multi")];
        assert_eq!(a.call(&["MULTI"]), b"+OK\r\n");
        seen.push(field(&mut b, "multi"));
        assert_eq!(a.call(&["SET", "k", "v"]), b"+QUEUED\r\n");
        assert_eq!(a.call(&["GET", "k"]), b"+QUEUED\r\n");
        seen.push(field(&mut b, "multi"));
        a.call(&["EXEC"]);
        seen.push(field(&mut b, "multi"));
        assert_eq!(seen, [-1, 0, 2, -1], "port {port}");
        let (fa, fb) = (field(&mut b, "fd"), {
            let me = String::from_utf8(b.call(&["CLIENT", "INFO"])).unwrap();
            me.split(' ')
                .find_map(|f| f.strip_prefix("fd="))
                .unwrap()
                .parse::<i64>()
                .unwrap()
        });
        assert!(
            fa > 2 && fb > 2 && fa != fb,
            "port {port}: fd {fa} and {fb}"
        );
    }
}

#[test]
fn scan_returns_every_key_exactly_as_promised() {
    let (_d, n) = node();
    let mut c = n.client();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.set(format!("key:{i}"), i).ignore();
        pipe.hset("bighash", format!("f{i}"), i).ignore();
    }
    pipe.rpush("alist", 1).ignore();
    let _: () = pipe.query(&mut c).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("key:*")
            .arg("COUNT")
            .arg(37)
            .query(&mut c)
            .unwrap();
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
    let (_, lists): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("list")
        .arg("COUNT")
        .arg(5000)
        .query(&mut c)
        .unwrap();
    assert_eq!(lists, vec!["alist"]);
    let fields: std::collections::HashSet<String> = c
        .hscan::<_, (String, String)>("bighash")
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(fields.len(), 1000);
}

#[test]
fn info_config_command_and_maxclients() {
    let (_d, n) = node();
    let mut c = n.client();
    let info: String = redis::cmd("INFO").query(&mut c).unwrap();
    for field in [
        "redis_version:",
        "run_id:",
        "loading:0",
        "role:master",
        "connected_clients:",
        "master_replid:",
        "aof_enabled:1",
        "total_commands_processed:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    let _: () = c.set("x", 1).unwrap();
    let ks: String = redis::cmd("INFO").arg("keyspace").query(&mut c).unwrap();
    assert!(ks.contains("db0:keys=1,expires=0"), "{ks}");
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(count > 140, "{count}");
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("get")
        .query(&mut c)
        .unwrap();
    assert!(format!("{docs:?}").contains("summary"));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(3)
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["maxclients", "3"]);
    let _a = RawConn::connect(n.port).unwrap();
    let _b = RawConn::connect(n.port).unwrap();
    thread::sleep(Duration::from_millis(100));
    let mut over = RawConn::connect(n.port).unwrap();
    assert_eq!(
        over.read_reply().unwrap(),
        b"-ERR max number of clients reached\r\n"
    );
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg(1)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
    // What this node sets only at start-up takes the value in force, as a no-op (Redis'
    // own test suite sets `appendonly yes` on a server that has it).
    let get = |c: &mut redis::Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(c).unwrap();
        v[1].clone()
    };
    let port = get(&mut c, "port");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg(&port)
        .query(&mut c)
        .unwrap_or_else(|e| panic!("CONFIG SET port {port}: {e}"));
    let on = ["", &get(&mut c, "appendonly")];
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg(on[1].to_uppercase())
        .query(&mut c)
        .unwrap();
    let other = if on[1] == "yes" { "no" } else { "yes" };
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg(other)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("can't set immutable config"), "{e}");
}

#[test]
fn shutdown_exits_cleanly_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = NodeProc::start(&dir.path().join("node"), &[]);
    let mut c = n.client();
    let _: () = c.set("kept", "yes").unwrap();
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut c);
    let status = n.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", n.stderr());
    let n2 = NodeProc::start(&dir.path().join("node"), &[]);
    assert_eq!(n2.client().get::<_, String>("kept").unwrap(), "yes");
}

#[test]
fn idle_clients_are_closed_after_timeout_but_subscribers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "timeout = \"1s\"\n").unwrap();
    let n = NodeProc::start(
        &dir.path().join("node"),
        &["--config", cfg.to_str().unwrap()],
    );
    let mut idle = RawConn::connect(n.port).unwrap();
    assert_eq!(idle.call(&["PING"]), b"+PONG\r\n");
    let mut sub = RawConn::connect(n.port).unwrap();
    sub.call(&["SUBSCRIBE", "ch"]);
    thread::sleep(Duration::from_millis(1600));
    assert!(idle.is_closed(), "idle client kept past the timeout");
    let _: i64 = n.client().publish("ch", "still here").unwrap();
    assert_eq!(
        sub.read_reply().unwrap(),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$10\r\nstill here\r\n"
    );
}

#[test]
fn reset_returns_the_connection_to_its_defaults() {
    let (_d, n) = node();
    let mut s = RawConn::connect(n.port).unwrap();
    s.call(&["HELLO", "3", "SETNAME", "worker"]);
    s.call(&["SELECT", "5"]);
    s.call(&["MULTI"]);
    assert_eq!(s.call(&["RESET"]), b"+RESET\r\n");
    // Back to RESP2, database 0, no name, no transaction.
    assert_eq!(s.call(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert_eq!(s.call(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(n.client().get::<_, String>("k").unwrap(), "v");
    assert_eq!(s.call(&["EXEC"]), b"-ERR EXEC without MULTI\r\n");
}

#[test]
fn blocked_clients_are_served_first_come_first_served() {
    let (_d, n) = node();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let mut w = RawConn::connect(n.port).unwrap();
        w.send_raw(&RawConn::encode(&["BLPOP", "jobs", "5"]))
            .unwrap();
        // Let each one block before the next arrives.
        thread::sleep(Duration::from_millis(150));
        waiters.push(w);
    }
    let mut c = n.client();
    let _: () = c.rpush("jobs", &["a", "b", "c"]).unwrap();
    for (i, w) in waiters.iter_mut().enumerate() {
        let want = format!("*2\r\n$4\r\njobs\r\n$1\r\n{}\r\n", ["a", "b", "c"][i]);
        assert_eq!(
            String::from_utf8(w.read_reply().unwrap()).unwrap(),
            want,
            "waiter #{i}"
        );
    }
    // One element at a time: the longest waiter gets each one.
    let mut first = RawConn::connect(n.port).unwrap();
    first
        .send_raw(&RawConn::encode(&["BLPOP", "q", "5"]))
        .unwrap();
    thread::sleep(Duration::from_millis(150));
    let mut second = RawConn::connect(n.port).unwrap();
    second
        .send_raw(&RawConn::encode(&["BLPOP", "q", "5"]))
        .unwrap();
    thread::sleep(Duration::from_millis(150));
    let _: () = c.rpush("q", "one").unwrap();
    assert_eq!(
        first.read_reply().unwrap(),
        b"*2\r\n$1\r\nq\r\n$3\r\none\r\n"
    );
    let _: () = c.rpush("q", "two").unwrap();
    assert_eq!(
        second.read_reply().unwrap(),
        b"*2\r\n$1\r\nq\r\n$3\r\ntwo\r\n"
    );
    assert_eq!(c.llen::<_, i64>("q").unwrap(), 0);
}

#[test]
fn blocked_sorted_set_pops_are_served_first_come_first_served() {
    let (_d, n) = node();
    let mut waiters = Vec::new();
    for cmd in ["BZPOPMIN", "BZPOPMIN", "BZPOPMAX"] {
        let mut w = RawConn::connect(n.port).unwrap();
        w.send_raw(&RawConn::encode(&[cmd, "nosuch", "tasks", "5"]))
            .unwrap();
        thread::sleep(Duration::from_millis(150));
        waiters.push(w);
    }
    let mut c = n.client();
    let _: () = c
        .zadd_multiple("tasks", &[(1, "a"), (2, "b"), (3, "c"), (4, "d")])
        .unwrap();
    // Each waiter takes what Redis would have handed it in arrival order: the lowest, the next
    // lowest, then the highest of what is left.
    for (i, m) in [("a", "1"), ("b", "2"), ("d", "4")].iter().enumerate() {
        let want = format!("*3\r\n$5\r\ntasks\r\n$1\r\n{}\r\n$1\r\n{}\r\n", m.0, m.1);
        assert_eq!(
            String::from_utf8(waiters[i].read_reply().unwrap()).unwrap(),
            want,
            "waiter #{i}"
        );
    }
    let left: Vec<String> = c.zrange("tasks", 0, -1).unwrap();
    assert_eq!(left, ["c"]);
}
