//! Agentless mode end to end: three stock `redis-server`s, set up as a Redis Sentinel
//! deployment runs them (one master, two `--replicaof` replicas), under three `vigil
//! sentinel`s with a `driver = "resp"` group, and redis-py's Sentinel client writing through
//! the sentinels. A SIGKILLed master is failed over (the other replica repointed,
//! `+switch-master` announced, the client carries on against the new master); a switchover
//! is the server's own `FAILOVER` and loses no acknowledged write; passwords, an ACL user and
//! a renamed `CONFIG` are honoured.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use vigil_tests::agentless::*;
use vigil_tests::managed::{EventLog, TOKEN, master_of};
use vigil_tests::sentinel_client;

/// The indexes in `acked` whose keys (`w:<i>`) the server on `port` lacks.
fn missing(port: u16, auth: Option<(&str, &str)>, acked: &[u64]) -> Vec<u64> {
    let mut c = connect(port, auth);
    let mut out = Vec::new();
    for chunk in acked.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("w:{i}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
        for (i, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(i.to_string().as_str()) {
                out.push(*i);
            }
        }
    }
    out
}

/// `CONFIG GET name` (as `config`, the server's name for CONFIG) on the server at `port`.
fn config_get(port: u16, auth: Option<(&str, &str)>, config: &str, name: &str) -> String {
    let mut c = connect(port, auth);
    let kv: Vec<String> = redis::cmd(config)
        .arg("GET")
        .arg(name)
        .query(&mut c)
        .unwrap();
    kv.get(1).cloned().unwrap_or_default()
}

/// Waits until the master at `port` carries the write guard the sentinels set.
fn wait_guarded(port: u16, auth: Option<(&str, &str)>, config: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while config_get(port, auth, config, "min-replicas-to-write") != "1" {
        assert!(
            Instant::now() < deadline,
            "min-replicas-to-write never set on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_while_redis_py_writes() {
    let mut c = start_agentless("500ms", &[], "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    assert_eq!(old, 0, "the sentinels keep the master the servers had");
    wait_followed(&c, old, &[1, 2], None, Duration::from_secs(10));
    wait_guarded(c.servers[old].port, None, "CONFIG");
    let events = EventLog::watch(c.ports[0]).await;
    let w = Writer::start(&c.sentinel_addrs(), "");
    w.wait_more(50, Duration::from_secs(10));
    c.servers[old].kill9();
    let killed = Instant::now();
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(15)).await;
    assert_ne!(second.address, first.address);
    let new = c.server_at(&second.address);
    let switch = events
        .wait_for("+switch-master", Duration::from_secs(5))
        .await;
    assert!(
        switch.detail.contains(&c.servers[new].port.to_string()),
        "{switch:?}"
    );
    assert_eq!(
        info_field(c.servers[new].port, None, "role").as_deref(),
        Some("master")
    );
    let other = 3 - old - new;
    wait_followed(&c, new, &[other], None, Duration::from_secs(10));
    // redis-py found the new master on its own and keeps writing there.
    w.wait_more(100, Duration::from_secs(15));
    eprintln!("failover seen by the test after {:?}", killed.elapsed());
    wait_guarded(c.servers[new].port, None, "CONFIG");
    let acked = w.stop();
    let after: Vec<u64> = acked
        .iter()
        .filter(|(_, at)| *at > killed)
        .map(|(i, _)| *i)
        .collect();
    assert!(after.len() >= 100, "{} writes after the kill", after.len());
    let lost = missing(c.servers[new].port, None, &after);
    assert!(
        lost.is_empty(),
        "writes acknowledged after the failover lost: {lost:?}"
    );
    let all: Vec<u64> = acked.iter().map(|(i, _)| *i).collect();
    eprintln!(
        "{} acknowledged, {} of them missing on the new master (async replication, SIGKILL)",
        all.len(),
        missing(c.servers[new].port, None, &all).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_is_redis_failover_and_loses_no_acknowledged_write() {
    let c = start_agentless("1s", &[], "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    wait_followed(&c, old, &[1, 2], None, Duration::from_secs(10));
    let w = Writer::start(&c.sentinel_addrs(), "");
    w.wait_more(100, Duration::from_secs(10));
    sentinel_client(c.ports[1], TOKEN)
        .failover(vigil_proto::sentinel::FailoverRequest {
            group: "mymaster".into(),
            target: String::new(),
        })
        .await
        .unwrap();
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(20)).await;
    assert_ne!(second.address, first.address);
    let new = c.server_at(&second.address);
    let other = 3 - old - new;
    w.wait_more(100, Duration::from_secs(15));
    let acked: Vec<u64> = w.stop().into_iter().map(|(i, _)| i).collect();
    let lost = missing(c.servers[new].port, None, &acked);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(20)]
    );
    // The old master follows the new one; so does the third server.
    wait_followed(&c, new, &[old, other], None, Duration::from_secs(10));
    // Done by the server itself, not by fence and promotion.
    let logs: String = c.sentinels.iter().map(|s| s.stderr()).collect();
    assert!(
        logs.contains("switchover: FAILOVER completed"),
        "no FAILOVER-based hand-over in the sentinels' logs"
    );
    let distinct: HashSet<u64> = acked.iter().copied().collect();
    assert_eq!(distinct.len(), acked.len(), "each index acknowledged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_acl_users_and_a_renamed_config_are_honoured() {
    let server = [
        "--requirepass",
        "secret",
        "--masterauth",
        "secret",
        "--user",
        "vigil",
        "on",
        ">vpass",
        "~*",
        "&*",
        "+@all",
        "--rename-command",
        "CONFIG",
        "XCONFIG",
    ];
    let group = "auth_user = \"vigil\"\nauth_pass = \"vpass\"\nrename_commands = { config = \"XCONFIG\" }\n";
    let c = start_agentless("500ms", &server, group);
    let auth = Some(("default", "secret"));
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    assert_eq!(old, 0);
    wait_followed(&c, old, &[1, 2], auth, Duration::from_secs(10));
    // The sentinels logged in as `vigil` and reached CONFIG as XCONFIG.
    wait_guarded(c.servers[old].port, auth, "XCONFIG");
    // Every server answers well: none is held down.
    let status = sentinel_client(c.ports[0], TOKEN)
        .list_groups(vigil_proto::sentinel::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    let g = &status.groups[0];
    assert_eq!(g.driver, "resp");
    assert!(
        g.health.len() == 3 && g.health.iter().all(|n| n.role != "unknown" && !n.sdown),
        "{:?}",
        g.health
    );
    let w = Writer::start(&c.sentinel_addrs(), "secret");
    w.wait_more(20, Duration::from_secs(10));
    sentinel_client(c.ports[2], TOKEN)
        .failover(vigil_proto::sentinel::FailoverRequest {
            group: "mymaster".into(),
            target: "n3".into(),
        })
        .await
        .unwrap();
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(20)).await;
    let new = c.server_at(&second.address);
    assert_eq!(new, 2, "the requested target");
    wait_followed(&c, new, &[0, 1], auth, Duration::from_secs(10));
    wait_guarded(c.servers[new].port, auth, "XCONFIG");
    w.wait_more(20, Duration::from_secs(15));
    let acked: Vec<u64> = w.stop().into_iter().map(|(i, _)| i).collect();
    assert!(missing(c.servers[new].port, auth, &acked).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_that_returns_is_demoted_at_once() {
    let c = start_agentless("500ms", &[], "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    wait_followed(&c, old, &[1, 2], None, Duration::from_secs(10));
    // `+convert-to-slave` comes from the leader alone: watch every sentinel.
    let mut logs = Vec::new();
    for p in &c.ports {
        logs.push(EventLog::watch(*p).await);
    }
    c.servers[old].signal(libc::SIGSTOP);
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(15)).await;
    let new = c.server_at(&second.address);
    let other = 3 - old - new;
    wait_followed(&c, new, &[other], None, Duration::from_secs(10));
    c.servers[old].signal(libc::SIGCONT);
    let back = Instant::now();
    // Still a master when it wakes up: the sentinels make it a replica of the new one.
    wait_followed(&c, new, &[old], None, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    let demoted = loop {
        let seen = logs
            .iter()
            .flat_map(|l| l.all())
            .find(|e| e.kind == "+convert-to-slave");
        if let Some(e) = seen {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no +convert-to-slave from the leader: {:?}",
            logs.iter().map(|l| l.kinds()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(demoted.node, format!("n{}", old + 1));
    eprintln!(
        "old master demoted and in sync {:?} after it woke",
        back.elapsed()
    );
}

/// Redis Sentinel's best-known failure: a master without persistence restarts empty before it
/// is seen down, stays master, and its replicas resync from it, wiping the data set. Here the
/// sentinels see a new run id, do not count it as the master it was, and fail over from it
/// at once since it is behind its replicas; it is then resynced from the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_empty_is_failed_over_not_resynced_from() {
    // Full syncs at once (the default waits 5 s for more replicas).
    let args = ["--repl-diskless-sync-delay", "0"];
    let mut c = start_agentless("1s", &args, "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    wait_followed(&c, old, &[1, 2], None, Duration::from_secs(10));
    let mut m = connect(c.servers[old].port, None);
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut m).unwrap();
    for i in [1, 2] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::cmd("GET")
            .arg("k")
            .query::<Option<String>>(&mut connect(c.servers[i].port, None))
            .unwrap()
            .is_none()
        {
            assert!(Instant::now() < deadline, "replica {i} never got k");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(m);
    // Well within down_after: no sentinel sees it down.
    c.servers[old].restart_empty(&args);
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(10)).await;
    assert_ne!(
        second.address, first.address,
        "the emptied server kept its role"
    );
    let new = c.server_at(&second.address);
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut connect(c.servers[new].port, None))
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"), "the failover lost k");
    let others: Vec<usize> = (0..3).filter(|i| *i != new).collect();
    wait_followed(&c, new, &others, None, Duration::from_secs(10));
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut connect(c.servers[old].port, None))
        .unwrap();
    assert_eq!(v.as_deref(), Some("v"), "the restarted server was resynced");
}

/// When the master cannot hand over itself (here `FAILOVER TO` cannot name the target: the
/// group knows the servers as `localhost`, the master sees its replicas as 127.0.0.1), a
/// switchover pauses the old master's writes (`CLIENT PAUSE … WRITE`), promotes the target
/// only once it has the paused master's final offset, and demotes the old master: still no
/// acknowledged write lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_without_failover_fences_and_loses_no_acknowledged_write() {
    let c = start_agentless_as("localhost", "1s", &[], "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let old = c.server_at(&first.address);
    assert_eq!(old, 0);
    let w = Writer::start(&c.sentinel_addrs(), "");
    w.wait_more(100, Duration::from_secs(10));
    sentinel_client(c.ports[0], TOKEN)
        .failover(vigil_proto::sentinel::FailoverRequest {
            group: "mymaster".into(),
            target: String::new(),
        })
        .await
        .unwrap();
    let second = master_of(&c.ports, first.epoch + 1, Duration::from_secs(20)).await;
    let new = c.server_at(&second.address);
    assert_ne!(new, old);
    w.wait_more(100, Duration::from_secs(15));
    let acked: Vec<u64> = w.stop().into_iter().map(|(i, _)| i).collect();
    let lost = missing(c.servers[new].port, None, &acked);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(20)]
    );
    let others: Vec<usize> = (0..3).filter(|i| *i != new).collect();
    wait_followed(&c, new, &others, None, Duration::from_secs(10));
    let logs: String = c.sentinels.iter().map(|s| s.stderr()).collect();
    assert!(logs.contains("fenced (CLIENT PAUSE WRITE)"), "not fenced");
    assert!(!logs.contains("FAILOVER completed"));
    // The pause was lifted with the demotion: the old master replicates again.
    assert_eq!(
        info_field(c.servers[old].port, None, "master_link_status").as_deref(),
        Some("up")
    );
}

/// The write guard the sentinels set: a master that no replica acknowledges (here they are
/// stopped; a partition looks the same to it) refuses writes within `min-replicas-max-lag`
/// (2 s) and a second, and takes them again once a replica is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_replicas_stops_taking_writes() {
    let c = start_agentless("1s", &[], "");
    let first = master_of(&c.ports, 1, Duration::from_secs(20)).await;
    let m = c.server_at(&first.address);
    wait_followed(&c, m, &[1, 2], None, Duration::from_secs(10));
    wait_guarded(c.servers[m].port, None, "CONFIG");
    let mut conn = connect(c.servers[m].port, None);
    let set = |conn: &mut redis::Connection| {
        redis::cmd("SET")
            .arg("g")
            .arg("v")
            .query::<()>(conn)
            .map_err(|e| e.to_string())
    };
    // Takes writes while its replicas acknowledge (on a loaded machine an acknowledgement
    // can be late, and the guard refuses meanwhile: wait for a good one).
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = set(&mut conn) {
        assert!(
            Instant::now() < deadline,
            "the guarded master never took a write: {e}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in [1, 2] {
        c.servers[i].signal(libc::SIGSTOP);
    }
    let cut = Instant::now();
    let refused = loop {
        if let Err(e) = set(&mut conn) {
            break e;
        }
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "the master still takes writes without replicas"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(refused.contains("NOREPLICAS"), "{refused}");
    eprintln!(
        "writes refused {:?} after the replicas stopped",
        cut.elapsed()
    );
    for i in [1, 2] {
        c.servers[i].signal(libc::SIGCONT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while set(&mut conn).is_err() {
        assert!(Instant::now() < deadline, "writes never resumed");
        std::thread::sleep(Duration::from_millis(20));
    }
}
