//! A managed group brought up by the sentinels alone (three managed nodes, three sentinels
//! monitoring them as `mymaster`), and the write load the failover suites drive through it.

use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;

use crate::{
    NodeProc, RawConn, SentinelProc, free_port, sentinel_client, sentinel_config, write_config,
};

pub const TOKEN: &str = "cluster-token";
pub const NODE_TOKEN: &str = "node-token";

/// Three managed nodes and three sentinels monitoring them as `mymaster`.
pub struct Managed {
    /// The storage nodes, `n1`..`n3`.
    pub nodes: Vec<NodeProc>,
    /// The sentinels, ids 1..3.
    pub sentinels: Vec<SentinelProc>,
    /// Their gRPC ports.
    pub ports: Vec<u16>,
    /// Configs, data and logs.
    pub dir: tempfile::TempDir,
}

pub fn start_managed(down_after: &str) -> Managed {
    start_managed_with(down_after, "", "")
}

/// `node_extra` goes into each node's config, `group_extra` into the group's.
pub fn start_managed_with(down_after: &str, node_extra: &str, group_extra: &str) -> Managed {
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("VIGIL_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let nodes: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let cfg = write_config(
                dir.path(),
                &format!("n{i}.toml"),
                &format!(
                    "mode = \"managed\"\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n{node_extra}"
                ),
            );
            NodeProc::start(
                &dir.path().join(format!("n{i}")),
                &["--config", cfg.to_str().unwrap()],
            )
        })
        .collect();
    let node_list: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{ name = \"n{}\", data = \"127.0.0.1:{}\", admin = \"127.0.0.1:{}\" }}",
                i + 1,
                n.port,
                n.admin_port()
            )
        })
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinels = (1..=3u64)
        .map(|id| {
            let text = sentinel_config(
                id,
                &ports,
                dir.path(),
                TOKEN,
                &format!(
                    "node_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"{down_after}\"\n{group_extra}nodes = [{}]\n",
                    node_list.join(", ")
                ),
            );
            let cfg = write_config(dir.path(), &format!("s{id}.toml"), &text);
            SentinelProc::start(id, &cfg)
        })
        .collect();
    Managed {
        nodes,
        sentinels,
        ports,
        dir,
    }
}

impl Managed {
    /// The master the sentinels answer with, once it has one at `epoch` or later.
    pub async fn master(
        &self,
        min_epoch: u64,
        within: Duration,
    ) -> vigil_proto::sentinel::MasterInfo {
        let deadline = Instant::now() + within;
        loop {
            let r = sentinel_client(self.ports[0], TOKEN)
                .get_master(GetMasterRequest {
                    group: "mymaster".into(),
                })
                .await;
            if let Ok(m) = r.map(|r| r.into_inner())
                && m.status == "ok"
                && m.epoch >= min_epoch
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no master at epoch {min_epoch} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The current master and its index, once both other nodes follow it with their links
    /// up (asked again if the master changes meanwhile, as a false failover on an overloaded
    /// machine may do).
    pub async fn master_and_followers(&self) -> (vigil_proto::sentinel::MasterInfo, usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.master(1, Duration::from_secs(20)).await;
            let mi = self.node_at(&m.address);
            let port = self.nodes[mi].port.to_string();
            let follow = self.nodes.iter().enumerate().all(|(i, n)| {
                i == mi
                    || (n.info_field("master_port").as_deref() == Some(port.as_str())
                        && n.info_field("master_link_status").as_deref() == Some("up"))
            });
            if follow {
                return (m, mi);
            }
            assert!(
                Instant::now() < deadline,
                "the replicas never followed the master {m:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn node_at(&self, address: &str) -> usize {
        let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }
}

/// SETs `key` on `port` until it is acknowledged.
pub async fn set_until_ok(port: u16, key: &str, value: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut c) = RawConn::connect(port)
            && c.call(&["SET", key, value]) == b"+OK\r\n"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged on {port} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three writers that find the master through the sentinel on `sentinel`, write unique keys,
/// record each acknowledged one, and re-resolve the master on any error, until `stop`.
pub fn spawn_writers(
    sentinel: u16,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    (0..3)
        .map(|w| {
            let (stop, acked) = (stop.clone(), acked.clone());
            // Blocking socket I/O: a thread of its own, with a small runtime for the gRPC lookups.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut conn: Option<RawConn> = None;
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            let m = sentinel_client(sentinel, TOKEN)
                                .get_master(GetMasterRequest {
                                    group: "mymaster".into(),
                                })
                                .await;
                            if let Ok(m) = m.map(|m| m.into_inner())
                                && m.status == "ok"
                            {
                                let port: u16 =
                                    m.address.rsplit(':').next().unwrap().parse().unwrap();
                                conn = RawConn::connect(port).ok();
                            }
                            if conn.is_none() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        }
                        let key = format!("w{w}:{i}");
                        i += 1;
                        let c = conn.as_mut().unwrap();
                        let ok = c.send_raw(&RawConn::encode(&["SET", &key, "v"])).is_ok()
                            && c.read_reply().as_deref() == Some(b"+OK\r\n");
                        if ok {
                            acked.lock().unwrap().push(key);
                        } else {
                            // Refused or cut: find the master again.
                            conn = None;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
        })
        .collect()
}

/// Every key of `acked` exists on the node at `port`.
pub fn assert_all_present(port: u16, acked: &[String]) {
    let mut r = RawConn::connect(port).unwrap();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| r.call(&["EXISTS", k]) != b":1\r\n")
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Waits until the writers have had 50 more writes acknowledged than `before` (writes resumed
/// after the failover), stops them, and checks every acknowledged key is on the node at `port`.
pub async fn resume_then_check(
    before: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: &std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    writers: Vec<std::thread::JoinHandle<()>>,
    port: u16,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < before + 50 {
        assert!(Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_all_present(port, &acked);
    acked
}

/// The events one sentinel streams (`WatchTopology`), collected as they arrive.
pub struct EventLog {
    seen: std::sync::Arc<std::sync::Mutex<Vec<vigil_proto::sentinel::TopologyEvent>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Starts watching the sentinel on `port`; returns once the stream is open.
    pub async fn watch(port: u16) -> EventLog {
        use tokio_stream::StreamExt;
        let mut stream = sentinel_client(port, TOKEN)
            .watch_topology(vigil_proto::sentinel::WatchRequest {})
            .await
            .expect("WatchTopology")
            .into_inner();
        let seen: std::sync::Arc<std::sync::Mutex<Vec<_>>> = Default::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                s.lock().unwrap().push(ev);
            }
        });
        EventLog { seen, task }
    }

    /// Everything so far.
    pub fn all(&self) -> Vec<vigil_proto::sentinel::TopologyEvent> {
        self.seen.lock().unwrap().clone()
    }

    /// The first event of `kind`, waiting up to `within` for it.
    pub async fn wait_for(
        &self,
        kind: &str,
        within: Duration,
    ) -> vigil_proto::sentinel::TopologyEvent {
        let deadline = Instant::now() + within;
        loop {
            if let Some(ev) = self.all().into_iter().find(|e| e.kind == kind) {
                return ev;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event within {within:?}; saw {:?}",
                self.kinds()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The kinds seen so far, in order, with the node each is about.
    pub fn kinds(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|e| format!("{} {}", e.kind, e.node))
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sentinel leader all live sentinels of `c` agree on (id, index into `c.sentinels`).
pub async fn leader_of(c: &Managed, alive: &[usize]) -> usize {
    let ids: Vec<(u64, u16)> = alive
        .iter()
        .map(|&i| (c.sentinels[i].id, c.ports[i]))
        .collect();
    let id = crate::agreed_leader(&ids, TOKEN, Duration::from_secs(20))
        .await
        .expect("the sentinels agree on a leader");
    id as usize - 1
}
