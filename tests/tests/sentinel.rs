//! Sentinels as real processes: a Raft group of 3 or 5 forms from its config, elects a leader,
//! elects another within two election timeouts when the leader is SIGKILLed, serves what was
//! written before; all sentinels SIGKILLed during a stream of proposals come back with every
//! acknowledged change; calls without the token are refused; a fourth sentinel joins and one
//! leaves; a stock-server (`resp`) group added over gRPC reaches every sentinel; the ready line
//! comes once every port is bound, and a metrics port that cannot be bound stops start-up.

use std::path::Path;
use std::time::{Duration, Instant};

use tonic::Code;
use vigil_proto::sentinel::{
    AddSentinelRequest, ClusterStatusRequest, GetMasterRequest, ListGroupsRequest, MonitorRequest,
    RemoveSentinelRequest,
};
use vigil_tests::{
    SentinelClient, SentinelProc, agreed_leader, free_port, monitor_request, sentinel_client,
    sentinel_config, write_config,
};

const TOKEN: &str = "cluster-token";
/// Raft timing of the test clusters: 50 ms ticks, elections after 10 ticks (randomised up to
/// twice that).
const ELECTION: Duration = Duration::from_millis(500);

async fn client(port: u16, token: &str) -> SentinelClient {
    sentinel_client(port, token)
}

struct Cluster {
    procs: Vec<SentinelProc>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

fn config_text(id: u64, ports: &[u16], dir: &Path, join: bool) -> String {
    sentinel_config(
        id,
        ports,
        dir,
        TOKEN,
        &format!(
            "join = {join}\n[raft]\ntick = \"50ms\"\nelection_ticks = 10\nheartbeat_ticks = 2\ncompact_every = 50\n"
        ),
    )
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let procs = (1..=n as u64)
            .map(|id| {
                let cfg = write_config(
                    dir.path(),
                    &format!("s{id}.toml"),
                    &config_text(id, &ports, dir.path(), false),
                );
                SentinelProc::start(id, &cfg)
            })
            .collect();
        Cluster { procs, ports, dir }
    }

    fn restart(&mut self, id: u64) {
        let cfg = self.procs[id as usize - 1].config.clone();
        self.procs[id as usize - 1] = SentinelProc::start(id, &cfg);
    }

    /// The leader all live sentinels agree on.
    async fn leader(&self, alive: &[u64]) -> u64 {
        let ids: Vec<(u64, u16)> = alive
            .iter()
            .map(|&id| (id, self.ports[id as usize - 1]))
            .collect();
        agreed_leader(&ids, TOKEN, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("no agreed leader among {alive:?}"))
    }
}

fn group(name: &str) -> MonitorRequest {
    monitor_request(name)
}

async fn monitor_retrying(port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = client(port, TOKEN).await;
    loop {
        match c.monitor(group(name)).await {
            Ok(_) => return,
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("monitor {name}: {e}"),
        }
    }
}

async fn groups(port: u16) -> Vec<String> {
    let mut c = client(port, TOKEN).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match c.list_groups(ListGroupsRequest {}).await {
            Ok(r) => return r.into_inner().groups.into_iter().map(|g| g.name).collect(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("list groups on {port}: {e}"),
        }
    }
}

async fn leader_killed_and_replaced(n: usize) {
    let mut c = Cluster::start(n);
    let all: Vec<u64> = (1..=n as u64).collect();
    let leader = c.leader(&all).await;
    let follower = all.iter().copied().find(|&i| i != leader).unwrap();
    // Written through a follower, which forwards to the leader.
    monitor_retrying(c.ports[follower as usize - 1], "before").await;
    for &i in &all {
        let mut cl = client(c.ports[i as usize - 1], TOKEN).await;
        let m = cl
            .get_master(GetMasterRequest {
                group: "before".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (m.status.as_str(), m.epoch),
            ("no-master", 0),
            "sentinel {i}"
        );
        let e = cl
            .get_master(GetMasterRequest {
                group: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
    let t = Instant::now();
    c.procs[leader as usize - 1].kill9();
    let rest: Vec<u64> = all.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = c.leader(&rest).await;
    let took = t.elapsed();
    assert_ne!(new_leader, leader);
    // An election timeout is randomised in [ELECTION, 2 × ELECTION): two of them at most.
    assert!(
        took < ELECTION * 4,
        "{n} sentinels: new leader after {took:?}"
    );
    eprintln!("{n} sentinels: new leader {new_leader} after {took:?}");
    for &i in &rest {
        assert!(
            groups(c.ports[i as usize - 1])
                .await
                .contains(&"before".to_string())
        );
    }
    // The killed sentinel comes back and catches up.
    monitor_retrying(c.ports[new_leader as usize - 1], "after").await;
    c.restart(leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !groups(c.ports[leader as usize - 1])
        .await
        .contains(&"after".to_string())
    {
        assert!(
            Instant::now() < deadline,
            "restarted sentinel never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sentinels_replace_a_killed_leader() {
    leader_killed_and_replaced(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sentinels_replace_a_killed_leader() {
    leader_killed_and_replaced(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_sentinels_killed_mid_stream_keep_every_acknowledged_change() {
    let mut c = Cluster::start(3);
    let all = [1u64, 2, 3];
    let leader = c.leader(&all).await;
    let port = c.ports[leader as usize - 1];
    let writer = tokio::spawn(async move {
        let mut cl = client(port, TOKEN).await;
        let mut acked = Vec::new();
        for i in 0.. {
            match cl.monitor(group(&format!("g{i}"))).await {
                Ok(_) => acked.push(format!("g{i}")),
                Err(_) => return acked,
            }
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    for p in &mut c.procs {
        p.kill9();
    }
    let acked = writer.await.unwrap();
    assert!(acked.len() > 5, "only {} changes acknowledged", acked.len());
    for id in all {
        c.restart(id);
    }
    c.leader(&all).await;
    for id in all {
        let have = groups(c.ports[id as usize - 1]).await;
        for g in &acked {
            assert!(have.contains(g), "sentinel {id} lost acknowledged {g}");
        }
    }
    // (That nothing is applied twice after a restart is checked on the change history by the
    // in-process suite, crates/vigil-sentinel/tests/raft_cluster.rs.)
    drop(c.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_the_token_are_refused() {
    let c = Cluster::start(3);
    c.leader(&[1, 2, 3]).await;
    for token in ["", "wrong"] {
        let mut cl = client(c.ports[0], token).await;
        let e = cl.monitor(group("x")).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}");
        let e = cl
            .cluster_status(ClusterStatusRequest {})
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    assert!(!groups(c.ports[0]).await.contains(&"x".to_string()));
    let mut cl = client(c.ports[0], TOKEN).await;
    let mut bad = group("bad");
    bad.nodes[0].data = "nohostport".into();
    assert_eq!(
        cl.monitor(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_sentinel_joins_and_one_leaves() {
    let mut c = Cluster::start(3);
    let leader = c.leader(&[1, 2, 3]).await;
    let lport = c.ports[leader as usize - 1];
    for i in 0..60 {
        monitor_retrying(lport, &format!("g{i}")).await;
    }
    // The newcomer knows the founders' addresses; it joins empty and catches up (from a
    // snapshot: the log was compacted every 50 entries).
    c.ports.push(free_port());
    let cfg = write_config(
        c.dir.path(),
        "s4.toml",
        &config_text(4, &c.ports, c.dir.path(), true),
    );
    c.procs.push(SentinelProc::start(4, &cfg));
    // Proposals keep running through the membership changes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (writer_stop, writer_port) = (stop.clone(), lport);
    let writer = tokio::spawn(async move {
        let mut cl = client(writer_port, TOKEN).await;
        let mut ok = 0;
        let mut i = 0;
        while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            i += 1;
            if cl.monitor(group(&format!("w{i}"))).await.is_ok() {
                ok += 1;
            }
        }
        ok
    });
    // Membership changes go to the leader as it is now: on a loaded machine leadership may
    // have moved during the sixty proposals above (`vigil ctl` asks for the leader too).
    let add = AddSentinelRequest {
        id: 4,
        address: format!("127.0.0.1:{}", c.ports[3]),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (leader, mut cl) = loop {
        let leader = c.leader(&[1, 2, 3]).await;
        let mut cl = client(c.ports[leader as usize - 1], TOKEN).await;
        match cl.add_sentinel(add.clone()).await {
            Ok(_) => break (leader, cl),
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("add: {e}; s4 log: {}", c.procs[3].stderr()),
        }
    };
    let lport = c.ports[leader as usize - 1];
    let s = cl
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let voters: Vec<u64> = s.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    assert_eq!(voters.len(), 4, "{s:?}");
    assert!(
        groups(c.ports[3]).await.len() >= 60,
        "the newcomer caught up"
    );
    // Remove a follower.
    let gone = [1u64, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    cl.remove_sentinel(RemoveSentinelRequest { id: gone })
        .await
        .unwrap();
    let s = cl
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!s.members.iter().any(|m| m.id == gone), "{s:?}");
    c.procs[gone as usize - 1].kill9();
    // The remaining three still commit.
    monitor_retrying(lport, "after-removal").await;
    assert!(
        groups(c.ports[3])
            .await
            .contains(&"after-removal".to_string())
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(
        written > 0,
        "no proposal committed during the membership changes"
    );
    // Removing the leader: leadership moves first, then the new leader removes it.
    let e = cl
        .remove_sentinel(RemoveSentinelRequest { id: leader })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    let rest: Vec<u64> = [1u64, 2, 3, 4]
        .into_iter()
        .filter(|&i| i != leader && i != gone)
        .collect();
    let new_leader = c.leader(&rest).await;
    let mut nl = client(c.ports[new_leader as usize - 1], TOKEN).await;
    nl.remove_sentinel(RemoveSentinelRequest { id: leader })
        .await
        .unwrap();
    let s = nl
        .cluster_status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let voters: Vec<u64> = s.members.iter().filter(|m| m.voter).map(|m| m.id).collect();
    assert_eq!(voters.len(), 2, "{s:?}");
    monitor_retrying(c.ports[new_leader as usize - 1], "two-left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resp_group_monitored_over_grpc_reaches_every_sentinel() {
    let c = Cluster::start(3);
    let leader = c.leader(&[1, 2, 3]).await;
    let mut stock = group("stock");
    stock.driver = "resp".into();
    stock.nodes[0].admin = String::new();
    stock.auth_pass = "pw".into();
    stock
        .rename_commands
        .insert("config".into(), "XCONFIG".into());
    let mut cl = client(c.ports[leader as usize - 1], TOKEN).await;
    // An unknown driver, or a resp node whose admin is another address, is refused.
    let mut bad = stock.clone();
    bad.driver = "redis".into();
    let e = cl.monitor(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let mut bad = stock.clone();
    bad.nodes[0].admin = "127.0.0.1:16379".into();
    let e = cl.monitor(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = cl.monitor(stock.clone()).await {
        assert!(
            e.code() == Code::Unavailable && Instant::now() < deadline,
            "monitor stock: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every sentinel has it from the Raft log, driver and all; `admin` is the data address.
    for port in &c.ports {
        let list = client(*port, TOKEN)
            .await
            .list_groups(ListGroupsRequest {})
            .await
            .unwrap_or_else(|e| panic!("list groups on {port}: {e}"))
            .into_inner();
        let g = list
            .groups
            .iter()
            .find(|g| g.name == "stock")
            .unwrap_or_else(|| panic!("no group stock on {port}"));
        assert_eq!(g.driver, "resp", "on {port}");
        assert_eq!(g.nodes[0].admin, g.nodes[0].data, "on {port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_and_a_lost_majority_serves_nothing() {
    use tokio_stream::StreamExt;
    let mut c = Cluster::start(3);
    let leader = c.leader(&[1, 2, 3]).await;
    let mut cl = client(c.ports[0], TOKEN).await;
    let mut events = cl
        .watch_topology(vigil_proto::sentinel::WatchRequest {})
        .await
        .unwrap()
        .into_inner();
    monitor_retrying(c.ports[leader as usize - 1], "watched").await;
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("no event within 10 s")
        .expect("stream ended")
        .unwrap();
    assert_eq!(
        (ev.group.as_str(), ev.kind.as_str(), ev.index > 0),
        ("watched", "+monitor", true)
    );
    // Two of three gone: the survivor neither commits nor answers linearizable reads.
    let survivor = leader;
    for id in [1u64, 2, 3] {
        if id != survivor {
            c.procs[id as usize - 1].kill9();
        }
    }
    let mut s = client(c.ports[survivor as usize - 1], TOKEN).await;
    let e = s
        .get_master(GetMasterRequest {
            group: "watched".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    let e = s.monitor(group("lonely")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_raft_log_stops_start_up_naming_the_file() {
    let mut c = Cluster::start(3);
    let leader = c.leader(&[1, 2, 3]).await;
    for i in 0..5 {
        monitor_retrying(c.ports[leader as usize - 1], &format!("g{i}")).await;
    }
    let victim = [1u64, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    c.procs[victim as usize - 1].kill9();
    let log = c.dir.path().join(format!("s{victim}/raft/raft.log"));
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 64);
    bytes[10] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let out = std::process::Command::new(vigil_tests::vigil_bin())
        .args(["sentinel", "--config"])
        .arg(&c.procs[victim as usize - 1].config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("raft.log") && err.contains("corrupt at byte"),
        "{err}"
    );
}

/// Whoever read a sentinel's `grpc listening on` line can use every port it has: its metrics
/// port answers at once. A metrics port it cannot bind stops start-up, naming the port, as it
/// does for the node, rather than leaving a sentinel its load balancer and Prometheus cannot
/// reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_port_answers_once_the_sentinel_is_ready_and_a_taken_one_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, mp) = (free_port(), free_port());
    let cfg = write_config(
        dir.path(),
        "s1.toml",
        &sentinel_config(
            1,
            &[grpc],
            dir.path(),
            TOKEN,
            &format!("metrics = \"127.0.0.1:{mp}\"\n"),
        ),
    );
    let s = SentinelProc::start(1, &cfg);
    // No wait: the line promised the port.
    let health = vigil_tests::ops_http::request(mp, "GET", "/health")
        .unwrap_or_else(|e| panic!("metrics port {mp} after the ready line: {e}"));
    assert_eq!(health.status, 200, "{}", health.body);
    drop(s);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let (grpc, dir2) = (free_port(), tempfile::tempdir().unwrap());
    let cfg = write_config(
        dir2.path(),
        "s1.toml",
        &sentinel_config(
            1,
            &[grpc],
            dir2.path(),
            TOKEN,
            &format!("metrics = \"127.0.0.1:{busy}\"\n"),
        ),
    );
    let out = std::process::Command::new(vigil_tests::vigil_bin())
        .args(["sentinel", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a sentinel whose metrics port is taken must not start"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{busy} (metrics)")),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("grpc listening on"),
        "it must not say it is ready"
    );
}
