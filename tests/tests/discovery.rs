//! The Redis Sentinel protocol on the sentinels' RESP port: redis-rs' `sentinel` module finds
//! the master and follows a failover; error replies are byte for byte those of a real
//! redis-sentinel; events arrive on their channels in Redis' payload formats; a demoted master
//! drops its clients so they re-resolve.

use std::time::{Duration, Instant};

use redis::TypedCommands;
use vigil_tests::backends::{Backend, Group};
use vigil_tests::managed::*;
use vigil_tests::{RawConn, RedisSentinelProc, free_port};

#[test]
fn redis_rs_finds_the_master_reads_replicas_and_follows_a_failover() {
    redis_rs_follows_a_failover(Backend::Vigil);
}

#[test]
fn redis_rs_follows_a_failover_of_stock_servers_with_agents() {
    redis_rs_follows_a_failover(Backend::RedisServer);
}

#[test]
fn redis_rs_follows_a_failover_of_stock_servers_agentless() {
    redis_rs_follows_a_failover(Backend::RedisResp);
}

fn redis_rs_follows_a_failover(backend: Backend) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Group::start(backend, "500ms");
    let (first, old) = rt.block_on(c.master_and_followers());
    let urls = c
        .resp_ports()
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let mut s = redis::sentinel::Sentinel::build(urls).unwrap();
    // The first write asks the sentinels again on READONLY, as an application does: with a
    // 500 ms `down_after` on a loaded machine the master's lease may lapse for a moment (it
    // answers READONLY meanwhile) or a false failover may move it.
    let t = Instant::now();
    let mut m = loop {
        let mut m = s
            .master_for("mymaster", None)
            .unwrap()
            .get_connection()
            .unwrap();
        match m.set("k", "v1") {
            Ok(_) => break m,
            Err(e) if t.elapsed() < Duration::from_secs(20) => {
                eprintln!("first write: {e}; asking the sentinels again");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no write reached the master for 20 s: {e}"),
        }
    };
    let role: redis::Value = redis::cmd("ROLE").query(&mut m).unwrap();
    assert!(format!("{role:?}").contains("master"), "{role:?}");
    // A replica has it soon (redis-rs checks each replica's ROLE and flags).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut r = s
            .replica_for("mymaster", None)
            .unwrap()
            .get_connection()
            .unwrap();
        if r.get("k").unwrap().as_deref() == Some("v1") {
            break;
        }
        assert!(Instant::now() < deadline, "no replica has the write");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The master dies; the client finds the new one through the sentinels on its own.
    let t = Instant::now();
    c.kill(old);
    loop {
        let ok = s
            .master_for("mymaster", None)
            .and_then(|cl| cl.get_connection())
            .and_then(|mut m| m.set("k", "v2"));
        if ok.is_ok() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "redis-rs never reached a new master: {ok:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "redis-rs: master SIGKILL -> write on the new master in {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let second = rt.block_on(c.master(first.epoch + 1, Duration::from_secs(5)));
    assert_ne!(second.address, first.address);
}

/// One request's exact reply bytes.
fn ask(c: &mut RawConn, args: &[&str]) -> Vec<u8> {
    c.call(args)
}

#[test]
fn sentinel_errors_match_redis_sentinel_byte_for_byte() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("5s");
    rt.block_on(c.master_and_followers());
    let reference = RedisSentinelProc::start("mymaster", free_port());
    let mut ours = RawConn::connect(c.sentinels[0].resp_port()).unwrap();
    let mut theirs = RawConn::connect(reference.port).unwrap();
    let cases: &[&[&str]] = &[
        &["SENTINEL"],
        &["SENTINEL", "MASTER"],
        &["SENTINEL", "MASTER", "nope"],
        &["SENTINEL", "MASTER", "a", "b"],
        &["SENTINEL", "FOO"],
        &["sentinel", "get-master-addr-by-name", "nope"],
        &["SENTINEL", "get-master-addr-by-name"],
        &["SENTINEL", "REPLICAS", "nope"],
        &["SENTINEL", "SLAVES", "nope"],
        &["SENTINEL", "SENTINELS", "nope"],
        &["SENTINEL", "FAILOVER", "nope"],
        &["SENTINEL", "CKQUORUM", "nope"],
        &["SENTINEL", "MYID", "x"],
        &["SENTINEL", "MASTERS", "x"],
        &["SENTINEL", "SET", "mymaster", "quorum", "x"],
        &["SENTINEL", "SET", "mymaster", "foo", "1"],
        &["SENTINEL", "SET", "mymaster"],
        &["SENTINEL", "SET", "nope", "quorum", "2"],
        &["SENTINEL", "RESET"],
        &["SENTINEL", "RESET", "nomatch"],
        &["SENTINEL", "MONITOR", "a", "b", "c", "d"],
        &["SENTINEL", "MONITOR", "mymaster", "127.0.0.1", "1", "2"],
        &["SENTINEL", "REMOVE", "nope"],
        &["GET", "x"],
        &["PING"],
        &["ROLE"],
    ];
    for proto in ["2", "3"] {
        for conn in [&mut ours, &mut theirs] {
            conn.call(&["HELLO", proto]);
        }
        for case in cases {
            let (a, b) = (ask(&mut ours, case), ask(&mut theirs, case));
            assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "RESP{proto} {case:?}"
            );
        }
    }
    // The connection survived every error.
    assert_eq!(ask(&mut ours, &["PING"]), b"+PONG\r\n");
}

#[test]
fn the_sentinel_endpoint_answers_the_records_clients_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("5s");
    let (m, mi) = rt.block_on(c.master_and_followers());
    let port = c.sentinels[1].resp_port();
    let mut s = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let (ip, mport) = m.address.rsplit_once(':').unwrap();
    let addr: Vec<String> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query(&mut s)
        .unwrap();
    assert_eq!(addr, vec![ip.to_string(), mport.to_string()]);
    let masters: Vec<std::collections::HashMap<String, String>> =
        redis::cmd("SENTINEL").arg("MASTERS").query(&mut s).unwrap();
    assert_eq!(masters.len(), 1);
    let rec = &masters[0];
    for (k, v) in [
        ("name", "mymaster"),
        ("ip", ip),
        ("port", mport),
        ("flags", "master"),
        ("num-slaves", "2"),
        ("num-other-sentinels", "2"),
        ("quorum", "2"),
        ("down-after-milliseconds", "5000"),
    ] {
        assert_eq!(rec.get(k).map(String::as_str), Some(v), "{k} in {rec:?}");
    }
    assert_eq!(rec["config-epoch"], m.epoch.to_string());
    // The records come from the sentinel's probes, at most one probe interval old.
    let deadline = Instant::now() + Duration::from_secs(5);
    let replicas = loop {
        let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg("mymaster")
            .query(&mut s)
            .unwrap();
        if replicas.iter().all(|r| r["master-link-status"] == "ok") || Instant::now() > deadline {
            break replicas;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(replicas.len(), 2);
    for r in &replicas {
        assert_eq!(r["flags"], "slave");
        assert_eq!(r["master-link-status"], "ok");
        assert_eq!(
            (r["master-host"].as_str(), r["master-port"].as_str()),
            (ip, mport)
        );
        assert_ne!(r["port"], c.nodes[mi].port.to_string());
    }
    // The other two sentinels, at their RESP ports (they announce them through the log).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let others: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("SENTINELS")
            .arg("mymaster")
            .query(&mut s)
            .unwrap();
        let mut ports: Vec<String> = others.iter().map(|o| o["port"].clone()).collect();
        ports.sort();
        let mut want: Vec<String> = [0usize, 2]
            .iter()
            .map(|&i| c.sentinels[i].resp_port().to_string())
            .collect();
        want.sort();
        if ports == want {
            break;
        }
        assert!(Instant::now() < deadline, "SENTINELS gave {others:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let role: redis::Value = redis::cmd("ROLE").query(&mut s).unwrap();
    assert_eq!(
        role,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"sentinel".to_vec()),
            redis::Value::Array(vec![redis::Value::BulkString(b"mymaster".to_vec())]),
        ])
    );
    let info: String = redis::cmd("INFO").arg("sentinel").query(&mut s).unwrap();
    assert!(
        info.contains(&format!(
            "master0:name=mymaster,status=ok,address={ip}:{mport},slaves=2,sentinels=3"
        )),
        "{info}"
    );
    let ck: String = redis::cmd("SENTINEL")
        .arg("CKQUORUM")
        .arg("mymaster")
        .query(&mut s)
        .unwrap();
    assert!(ck.starts_with("OK 3 usable Sentinels"), "{ck}");
    // MONITOR / SET / REMOVE change the committed state, seen by every sentinel.
    let mut raw = RawConn::connect(port).unwrap();
    let free = free_port().to_string();
    assert_eq!(
        raw.call(&["SENTINEL", "MONITOR", "other", "127.0.0.1", &free, "2"]),
        b"+OK\r\n"
    );
    assert_eq!(
        raw.call(&[
            "SENTINEL",
            "SET",
            "other",
            "down-after-milliseconds",
            "3000",
            "quorum",
            "3"
        ]),
        b"+OK\r\n"
    );
    let mut elsewhere = RawConn::connect(c.sentinels[0].resp_port()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rec =
            String::from_utf8_lossy(&elsewhere.call(&["SENTINEL", "MASTER", "other"])).into_owned();
        if rec.contains("down-after-milliseconds\r\n$4\r\n3000")
            && rec.contains("quorum\r\n$1\r\n3")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{rec}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.call(&["SENTINEL", "REMOVE", "other"]), b"+OK\r\n");
    assert_eq!(
        raw.call(&["SENTINEL", "MASTER", "other"]),
        b"-ERR No such master with that name\r\n"
    );
}

/// Reads RESP replies until one whose text contains `needle`, within `within`.
fn read_until(c: &mut RawConn, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Some(r) = c.read_reply() {
            let text = String::from_utf8_lossy(&r).into_owned();
            if text.contains(needle) {
                return text;
            }
            seen.push_str(&text);
        }
    }
    panic!("no message with {needle:?} within {within:?}; saw {seen}");
}

#[test]
fn failover_events_are_published_in_redis_sentinel_formats_and_clients_of_the_old_master_are_dropped()
 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // down_after 3 s: the old master is held paused below for well under that.
    let c = start_managed("3s");
    let (first, old) = rt.block_on(c.master_and_followers());
    let port = c.sentinels[2].resp_port();
    let mut sub = RawConn::connect(port).unwrap();
    sub.call(&["SUBSCRIBE", "+switch-master"]);
    let mut psub = RawConn::connect(port).unwrap();
    psub.call(&["HELLO", "3"]);
    psub.call(&["PSUBSCRIBE", "+*"]);
    // A client that has asked before (its answer is cached per connection) must get the new
    // master as soon as `+switch-master` is out: lookups switch first (COMPAT.md's order).
    let mut lookup = RawConn::connect(port).unwrap();
    let ask = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"];
    let before = lookup.call(&ask);
    assert_eq!(lookup.call(&ask), before);
    // Clients of the master that a switchover demotes: a normal one and a subscriber.
    let mut normal = RawConn::connect(c.nodes[old].port).unwrap();
    assert_eq!(normal.call(&["PING"]), b"+PONG\r\n");
    let mut subscriber = RawConn::connect(c.nodes[old].port).unwrap();
    subscriber.call(&["SUBSCRIBE", "news"]);
    let mut admin = RawConn::connect(c.sentinels[0].resp_port()).unwrap();
    // While it runs, another is refused. A switchover completes in a few milliseconds, which
    // a loaded machine can take to read the second command; so the old master is held paused
    // (SIGSTOP), and the hand-over the switchover asks of it waits until both are answered.
    c.nodes[old].pause();
    let failover = RawConn::encode(&["SENTINEL", "FAILOVER", "mymaster"]);
    admin
        .send_raw(&[failover.clone(), failover].concat())
        .unwrap();
    let began = admin.read_reply().unwrap();
    let again = admin.read_reply().unwrap();
    c.nodes[old].signal(libc::SIGCONT);
    assert_eq!(began, b"+OK\r\n");
    assert!(
        again.starts_with(b"-INPROG"),
        "{}",
        String::from_utf8_lossy(&again)
    );
    let msg = read_until(&mut sub, "mymaster", Duration::from_secs(20));
    let second = rt.block_on(c.master(first.epoch + 1, Duration::from_secs(5)));
    let (oh, op) = first.address.rsplit_once(':').unwrap();
    let (nh, np) = second.address.rsplit_once(':').unwrap();
    let payload = format!("mymaster {oh} {op} {nh} {np}");
    assert!(
        msg.ends_with(&format!("${}\r\n{payload}\r\n", payload.len())),
        "+switch-master message: {msg:?}"
    );
    let after = String::from_utf8_lossy(&lookup.call(&ask)).into_owned();
    assert_eq!(
        after,
        format!("*2\r\n${}\r\n{nh}\r\n${}\r\n{np}\r\n", nh.len(), np.len()),
        "a lookup right after +switch-master"
    );
    // Instance events as RESP3 pushes: the promoted replica against the master it replaced.
    let promoted = read_until(&mut psub, "+promoted-slave", Duration::from_secs(10));
    assert!(promoted.starts_with(">4\r\n"), "{promoted:?}");
    let text = format!("slave {nh}:{np} {nh} {np} @ mymaster {oh} {op}");
    assert!(promoted.contains(&text), "{promoted:?} lacks {text:?}");
    // The demoted master closes its normal and pub/sub connections so clients re-resolve.
    for (what, conn) in [("normal", &mut normal), ("pub/sub", &mut subscriber)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let closed =
                conn.send_raw(&RawConn::encode(&["PING"])).is_err() || conn.read_reply().is_none();
            if closed {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the old master kept its {what} client"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_sentinel_password_guards_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port()];
    let cfg = vigil_tests::write_config(
        dir.path(),
        "s1.toml",
        &vigil_tests::sentinel_config(1, &ports, dir.path(), TOKEN, "password = \"s3cret\"\n"),
    );
    let s = vigil_tests::SentinelProc::start(1, &cfg);
    let mut c = RawConn::connect(s.resp_port()).unwrap();
    assert_eq!(c.call(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    assert!(c.call(&["AUTH", "wrong"]).starts_with(b"-WRONGPASS"));
    assert_eq!(c.call(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(c.call(&["PING"]), b"+PONG\r\n");
    // HELLO 3 with AUTH in one step, as redis-py 8 and node-redis do.
    let mut h = RawConn::connect(s.resp_port()).unwrap();
    let hello =
        String::from_utf8_lossy(&h.call(&["HELLO", "3", "AUTH", "default", "s3cret"])).into_owned();
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    assert!(
        hello.contains("$4\r\nmode\r\n$8\r\nsentinel\r\n"),
        "{hello}"
    );
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"), "{hello}");
}

#[test]
fn a_sentinel_cut_off_from_the_majority_says_so_instead_of_naming_a_master() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = start_managed("5s");
    rt.block_on(c.master_and_followers());
    let port = c.sentinels[0].resp_port();
    c.sentinels[1].kill9();
    c.sentinels[2].kill9();
    let mut s = RawConn::connect(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let flags =
            String::from_utf8_lossy(&s.call(&["SENTINEL", "MASTER", "mymaster"])).into_owned();
        if flags.contains("s_down,disconnected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still vouching for the master: {flags}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        s.call(&["SENTINEL", "get-master-addr-by-name", "mymaster"]),
        b"*-1\r\n"
    );
    let ck = s.call(&["SENTINEL", "CKQUORUM", "mymaster"]);
    assert!(
        ck.starts_with(b"-NOQUORUM 1 usable"),
        "{}",
        String::from_utf8_lossy(&ck)
    );
}

/// What client libraries read from the nodes themselves (COMPAT.md, storage node endpoint):
/// INFO fields with `role:slave` spelled so, and ROLE in Redis' shapes.
#[test]
fn nodes_answer_info_and_role_in_the_shapes_clients_read() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("5s");
    let (_, mi) = rt.block_on(c.master_and_followers());
    let ri = (mi + 1) % 3;
    let info = |i: usize| {
        let mut r = RawConn::connect(c.nodes[i].port).unwrap();
        String::from_utf8_lossy(&r.call(&["INFO"])).into_owned()
    };
    let m = info(mi);
    for f in [
        "loading:0",
        "role:master",
        "connected_slaves:2",
        "master_replid:",
        "master_repl_offset:",
        "run_id:",
    ] {
        assert!(m.contains(f), "master INFO lacks {f}");
    }
    assert!(
        m.lines().any(|l| l.starts_with("slave0:ip=127.0.0.1,port=")
            && l.contains(",state=online,offset=")
            && l.contains(",lag=")),
        "{m}"
    );
    let r = info(ri);
    let mport = c.nodes[mi].port;
    for f in [
        "role:slave".to_string(),
        "master_host:127.0.0.1".into(),
        format!("master_port:{mport}"),
        "master_link_status:up".into(),
        "master_last_io_seconds_ago:".into(),
        "slave_repl_offset:".into(),
        "slave_priority:100".into(),
        "slave_read_only:1".into(),
        "master_replid:".into(),
        "master_repl_offset:".into(),
    ] {
        assert!(r.contains(&f), "replica INFO lacks {f}");
    }
    // ROLE: master *3 [master, offset, [[ip, port, offset] x2]]; replica *5.
    let mut mc = RawConn::connect(c.nodes[mi].port).unwrap();
    let role = String::from_utf8_lossy(&mc.call(&["ROLE"])).into_owned();
    assert!(role.starts_with("*3\r\n$6\r\nmaster\r\n:"), "{role}");
    assert!(role.contains("*2\r\n*3\r\n$9\r\n127.0.0.1\r\n"), "{role}");
    let mut rc = RawConn::connect(c.nodes[ri].port).unwrap();
    let role = String::from_utf8_lossy(&rc.call(&["ROLE"])).into_owned();
    let want = format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{mport}\r\n$9\r\nconnected\r\n:");
    assert!(role.starts_with(&want), "{role}");
    let w = rc.call(&["SET", "k", "v"]);
    assert_eq!(
        w,
        b"-READONLY You can't write against a read only replica.\r\n"
    );
    assert_eq!(rc.call(&["READONLY"]), b"+OK\r\n");
}
