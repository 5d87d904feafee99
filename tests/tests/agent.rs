//! `vigil agent` end to end with real `redis-server`s: NodeAdmin for a stock server. A server
//! the agent starts stays write-paused until it is given a role; promotion, repointing, the
//! fence and the lease all act on the real server (`REPLICAOF`, `CLIENT PAUSE WRITE`); the
//! server dies with the agent; a server it cannot reach is an error, not a guess; and three
//! agents under the sentinels fail over when a master's server restarts empty.

use std::time::{Duration, Instant};

use tonic::Code;
use vigil_proto::node::{
    ClientType, FenceRequest, GetStatusRequest, KillClientsRequest, PromoteRequest,
    RenewLeaseRequest, ReplicateFromRequest, Role,
};
use vigil_tests::agents::{AgentProc, start_stock};
use vigil_tests::managed::{NODE_TOKEN, master_of};
use vigil_tests::{RawConn, admin_client, free_port};

/// Sends `SET key value` on a fresh connection; the reply, or `None` if none came within
/// `wait` (the server holds paused writes).
fn set_within(port: u16, key: &str, value: &str, wait: Duration) -> Option<String> {
    let mut c = RawConn::connect_to(&format!("127.0.0.1:{port}"), wait).ok()?;
    c.send_raw(&RawConn::encode(&["SET", key, value])).ok()?;
    c.read_reply()
        .map(|r| String::from_utf8_lossy(&r).into_owned())
}

fn get(port: u16, key: &str) -> String {
    let mut c = RawConn::connect(port).expect("connect");
    String::from_utf8_lossy(&c.call(&["GET", key])).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_drives_a_stock_server() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&dir.path().join("a"), "");
    let b = AgentProc::start(&dir.path().join("b"), "");
    let short = Duration::from_millis(400);

    // The token is checked before anything else.
    let mut bad = admin_client(a.admin_port, Some("wrong")).await;
    let e = bad
        .get_status(GetStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let mut none = admin_client(a.admin_port, None).await;
    let e = none.fence(FenceRequest { epoch: 9 }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    let mut ca = admin_client(a.admin_port, Some(NODE_TOKEN)).await;
    let mut cb = admin_client(b.admin_port, Some(NODE_TOKEN)).await;

    // Boots write-paused: a write waits, a read is served.
    let st = ca
        .get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.role, Role::Unassigned as i32, "{st:?}");
    assert!(st.managed && !st.writable && st.epoch == 0, "{st:?}");
    assert_eq!(st.data_port, u32::from(a.port));
    // (Held as a replica of nothing, it refuses writes outright, as a replica does.)
    let r = set_within(a.port, "k", "boot", short);
    assert!(
        r.as_deref().is_none_or(|r| r.starts_with("-READONLY")),
        "a write before any role: {r:?}"
    );
    assert_eq!(get(a.port, "k"), "$-1\r\n");

    // Promotion with a lease opens writes; the paused write of before is never acknowledged
    // (its connection was dropped by the client above, so it runs now, with the lease).
    let st = ca
        .promote(PromoteRequest {
            epoch: 1,
            min_offset: 0,
            lease_ttl_ms: 60_000,
            lease_since_node_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        st.role == Role::Master as i32 && st.writable && st.epoch == 1,
        "{st:?}"
    );
    assert_eq!(
        set_within(a.port, "k", "v1", short).as_deref(),
        Some("+OK\r\n")
    );

    // Repointing: b follows a, gets the data, refuses writes.
    let st = cb
        .replicate_from(ReplicateFromRequest {
            epoch: 1,
            host: "127.0.0.1".into(),
            port: a.port.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.role, Role::Replica as i32, "{st:?}");
    b.wait_info("master_link_status", |v| v == "up", "b never synced with a");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(b.port, "k") != "$2\r\nv1\r\n" {
        assert!(Instant::now() < deadline, "b never got k");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = set_within(b.port, "k", "x", short).unwrap_or_default();
    assert!(r.starts_with("-READONLY"), "{r}");
    let st = ca
        .get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.replicas.len(), 1, "{st:?}");

    // The lease, enforced by the agent: a short renewal, then writes sent after its end are
    // never acknowledged (they wait paused), while those before it are.
    let called = Instant::now();
    let lease = Duration::from_millis(600);
    let reply = ca
        .renew_lease(RenewLeaseRequest {
            epoch: 1,
            ttl_ms: lease.as_millis() as u64,
            since_node_ms: 0,
        })
        .await
        .unwrap()
        .into_inner();
    // A renewal never shortens the lease granted with the promotion.
    assert!(reply.lease_remaining_ms > 50_000, "{reply:?}");
    // So fence at epoch 2 and promote again at 3 with the short lease only.
    let st = ca
        .fence(FenceRequest { epoch: 2 })
        .await
        .unwrap()
        .into_inner();
    assert!(st.fenced && !st.writable && st.epoch == 2, "{st:?}");
    assert_eq!(
        set_within(a.port, "k", "fenced", short),
        None,
        "a fenced server took a write"
    );
    let e = ca
        .promote(PromoteRequest {
            epoch: 1,
            ..PromoteRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "stale epoch: {e:?}");
    let _ = called;
    let promoted = Instant::now();
    ca.promote(PromoteRequest {
        epoch: 3,
        min_offset: 0,
        lease_ttl_ms: lease.as_millis() as u64,
        lease_since_node_ms: 0,
    })
    .await
    .unwrap();
    let lease_end = promoted + lease;
    let mut acked_after_end = Vec::new();
    let mut acked = 0;
    let mut i = 0;
    while Instant::now() < lease_end + Duration::from_millis(400) {
        let sent = Instant::now();
        if let Some(r) = set_within(a.port, &format!("w{i}"), "x", Duration::from_millis(100)) {
            assert_eq!(r, "+OK\r\n");
            acked += 1;
            if sent >= lease_end {
                acked_after_end.push(i);
            }
        }
        i += 1;
    }
    assert!(acked > 0, "no write acknowledged within the lease");
    assert!(
        acked_after_end.is_empty(),
        "writes sent after the lease ended were acknowledged: {acked_after_end:?}"
    );
    let st = ca
        .get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        st.role == Role::Master as i32 && !st.writable && st.lease_remaining_ms == 0,
        "{st:?}"
    );
    // A renewal lifts the pause.
    ca.renew_lease(RenewLeaseRequest {
        epoch: 3,
        ttl_ms: 60_000,
        since_node_ms: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        set_within(a.port, "k", "v2", Duration::from_secs(2)).as_deref(),
        Some("+OK\r\n")
    );

    // A switchover: fence a, promote b at a's final offset, repoint a. A write waiting on
    // the fenced a is answered -READONLY once it is a replica (its client re-resolves).
    let st = ca
        .fence(FenceRequest { epoch: 4 })
        .await
        .unwrap()
        .into_inner();
    let final_offset = st.offset;
    let mut waiting = RawConn::connect(a.port).unwrap();
    waiting
        .send_raw(&RawConn::encode(&["SET", "k", "late"]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cb
            .promote(PromoteRequest {
                epoch: 4,
                min_offset: final_offset,
                lease_ttl_ms: 60_000,
                lease_since_node_ms: 0,
            })
            .await;
        match r {
            Ok(st) => {
                assert!(st.into_inner().offset >= final_offset);
                break;
            }
            Err(e) if e.code() == Code::FailedPrecondition => {
                assert!(Instant::now() < deadline, "b never caught up: {e:?}")
            }
            Err(e) => panic!("{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ca.replicate_from(ReplicateFromRequest {
        epoch: 4,
        host: "127.0.0.1".into(),
        port: b.port.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let late = waiting
        .read_reply()
        .map(|r| String::from_utf8_lossy(&r).into_owned());
    assert!(
        late.as_deref().is_none_or(|r| r.starts_with("-READONLY")),
        "a write held by the fence was acknowledged: {late:?}"
    );
    assert_eq!(
        get(b.port, "k"),
        "$2\r\nv2\r\n",
        "the switchover lost the last write"
    );
    assert_eq!(
        set_within(b.port, "k", "v3", short).as_deref(),
        Some("+OK\r\n")
    );
    let killed = cb
        .kill_clients(KillClientsRequest {
            r#type: ClientType::Normal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let _ = killed.killed;
    // The epoch survives a restart of the agent.
    assert_eq!(
        std::fs::read_to_string(a.dir.join("agent/epoch"))
            .unwrap()
            .trim(),
        "4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_dies_with_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = AgentProc::start(&dir.path().join("a"), "");
    let pid = a.server_pid();
    a.kill9();
    // Dying takes a moment: the port closes once every thread of the server has exited, and
    // the process shows as running (`R`, in the kernel's exit path) until it turns zombie.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let dead = state.is_empty() || state.split_whitespace().nth(2) == Some("Z");
        if dead && RawConn::connect(a.port).is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server {pid} outlived its agent: {state}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Attached (no exec) to a port where nothing listens.
    let a = AgentProc::start_with(&dir.path().join("a"), free_port(), "");
    let mut c = admin_client(a.admin_port, Some(NODE_TOKEN)).await;
    let e = c.get_status(GetStatusRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("cannot reach the server"), "{e:?}");
    let e = c
        .promote(PromoteRequest {
            epoch: 1,
            ..PromoteRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = c.fence(FenceRequest { epoch: 0 }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        a.stderr().contains("no `exec`"),
        "the log says a dead agent leaves the server unfenced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_fail_over_when_a_stock_master_restarts_empty() {
    let c = start_stock("1s");
    let m = master_of(&c.ports, 1, Duration::from_secs(30)).await;
    let mi = c.agent_at(&m.address);
    let master = &c.agents[mi];
    let deadline = Instant::now() + Duration::from_secs(20);
    while set_within(master.port, "k", "v", Duration::from_millis(500)).as_deref()
        != Some("+OK\r\n")
    {
        assert!(
            Instant::now() < deadline,
            "the master never took a write: {}",
            master.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, a) in c.agents.iter().enumerate() {
        if i != mi {
            a.wait_info(
                "master_link_status",
                |v| v == "up",
                "a replica never synced",
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while get(a.port, "k") != "$1\r\nv\r\n" {
                assert!(Instant::now() < deadline, "replica {i} never got k");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // SIGKILL the master's server (not the agent): the agent restarts it empty (no
    // persistence) and keeps it paused; the sentinels fail over from it at once; it is
    // repointed and resynced.
    let pid = master.server_pid();
    // SAFETY: kill(2) on the redis-server our agent child started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let m2 = tokio::time::timeout(
        Duration::from_secs(30),
        master_of(&c.ports, m.epoch + 1, Duration::from_secs(60)),
    )
    .await
    .unwrap_or_else(|_| {
        let dump: Vec<String> = c
            .agents
            .iter()
            .map(|a| {
                let mut r = RawConn::connect(a.port).ok();
                let mut ask = |args: &[&str]| {
                    r.as_mut()
                        .map(|r| String::from_utf8_lossy(&r.call(args)).into_owned())
                        .unwrap_or_default()
                };
                let pid = a.info_field("process_id").unwrap_or_default();
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                format!(
                    "{} pid {pid} stat {state}\n{}\n{}\n{}\n{}",
                    a.port,
                    ask(&["INFO", "replication"]),
                    ask(&["INFO", "clients"]),
                    ask(&["CLIENT", "LIST"]),
                    std::fs::read_to_string(a.dir.join("redis.log")).unwrap_or_default()
                )
            })
            .collect();
        panic!("no failover within 30 s:\n{}", dump.join("\n-----\n"))
    });
    assert_ne!(
        m2.address, m.address,
        "the emptied server was promoted again"
    );
    let new = &c.agents[c.agent_at(&m2.address)];
    assert_eq!(get(new.port, "k"), "$1\r\nv\r\n", "the failover lost k");
    master.wait_info(
        "role",
        |v| v == "slave",
        "the restarted server never became a replica",
    );
    master.wait_info(
        "master_port",
        |v| v == new.port.to_string(),
        "it follows the new master",
    );
    master.wait_info("master_link_status", |v| v == "up", "it never resynced");
    assert_eq!(
        get(master.port, "k"),
        "$1\r\nv\r\n",
        "the restarted server was not resynced"
    );
    assert!(
        master.stderr().contains("server exited; restarting it"),
        "{}",
        master.stderr()
    );
}

/// A server that cannot confirm its write pause before its lease ends (here SIGSTOPped) is
/// killed by its agent: a write waiting on it is never acknowledged, not even once the server
/// would have been continued; the agent restarts it, held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_server_that_cannot_be_paused_is_killed_at_the_lease_end() {
    let dir = tempfile::tempdir().unwrap();
    let a = AgentProc::start(&dir.path().join("a"), "");
    let mut c = admin_client(a.admin_port, Some(NODE_TOKEN)).await;
    c.promote(PromoteRequest {
        epoch: 1,
        min_offset: 0,
        lease_ttl_ms: 800,
        lease_since_node_ms: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        set_within(a.port, "k", "v", Duration::from_secs(1)).as_deref(),
        Some("+OK\r\n")
    );
    let pid = a.server_pid();
    // SAFETY: kill(2) on the redis-server our agent child started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut waiting =
        RawConn::connect_to(&format!("127.0.0.1:{}", a.port), Duration::from_secs(5)).unwrap();
    waiting
        .send_raw(&RawConn::encode(&["SET", "k", "zombie"]))
        .unwrap();
    let reply = waiting.read_reply();
    // SAFETY: as above (a no-op if it is gone).
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(reply, None, "a write was acknowledged after the lease");
    assert!(
        a.stderr()
            .contains("did not confirm its write pause before its lease ended"),
        "{}",
        a.stderr()
    );
    // Restarted and held: a replica of nothing, not a master.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a
        .info_field("process_id")
        .is_none_or(|p| p == pid.to_string())
        || a.info_field("role").as_deref() != Some("slave")
    {
        assert!(
            Instant::now() < deadline,
            "the server was not restarted held: {}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server that is still loading its data answers `CLIENT PAUSE` but refuses `REPLICAOF`
/// (`-LOADING`): the agent's boot waits out the load and then opens the data port, rather
/// than leaving the server closed for good (as a restart after a drill's pause once did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_still_loading_its_data_is_booted_once_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let data_s = data.to_str().unwrap();
    {
        let r = vigil_tests::RedisProc::start_with(&["--dir", data_s]);
        let mut c = RawConn::connect(r.port).unwrap();
        let mut batch = Vec::new();
        for i in 0..20_000 {
            batch.extend(RawConn::encode(&["SET", &format!("key:{i}"), "value"]));
        }
        c.send_raw(&batch).unwrap();
        for _ in 0..20_000 {
            c.read_reply().unwrap();
        }
        assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    }
    // 50 µs a key: the load takes a second or more, and clients are served all through it.
    let port = free_port();
    let exec = format!(
        "exec = [\"redis-server\", \"--bind\", \"127.0.0.1\", \"--save\", \"\", \"--appendonly\", \"no\", \"--dir\", \"{data_s}\", \"--key-load-delay\", \"50\", \"--loading-process-events-interval-bytes\", \"1024\"]\n"
    );
    let a = AgentProc::start_with(&dir.path().join("a"), port, &exec);
    let deadline = Instant::now() + Duration::from_secs(30);
    while RawConn::connect(port).is_err() {
        assert!(
            Instant::now() < deadline,
            "the data port never opened: {}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        RawConn::connect(port).unwrap().call(&["DBSIZE"]),
        b":20000\r\n"
    );
}
