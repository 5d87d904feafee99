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
    let addrs: Vec<(u16, u16)> = nodes.iter().map(|n| (n.port, n.admin_port())).collect();
    let (sentinels, ports) = start_sentinels(dir.path(), &addrs, down_after, group_extra);
    Managed {
        nodes,
        sentinels,
        ports,
        dir,
    }
}

/// Three sentinels (ids 1..3, configs and data in `dir`) monitoring `nodes` (data port,
/// admin port; named `n1`..) as `mymaster`; their gRPC ports.
pub fn start_sentinels(
    dir: &std::path::Path,
    nodes: &[(u16, u16)],
    down_after: &str,
    group_extra: &str,
) -> (Vec<SentinelProc>, Vec<u16>) {
    let addrs: Vec<(String, String)> = nodes
        .iter()
        .map(|(data, admin)| (format!("127.0.0.1:{data}"), format!("127.0.0.1:{admin}")))
        .collect();
    start_sentinels_at(dir, &addrs, down_after, group_extra)
}

/// A group's `nodes` entries in a sentinel's TOML, `n1`, `n2`, … for each `(data, admin)`.
pub fn node_entries(nodes: &[(String, String)]) -> Vec<String> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, (data, admin))| {
            format!(
                "{{ name = \"n{}\", data = \"{data}\", admin = \"{admin}\" }}",
                i + 1
            )
        })
        .collect()
}

/// Each node's `(data, admin)` address.
pub fn addresses(nodes: &[crate::NodeProc]) -> Vec<(String, String)> {
    nodes
        .iter()
        .map(|n| {
            (
                format!("127.0.0.1:{}", n.port),
                format!("127.0.0.1:{}", n.admin_port()),
            )
        })
        .collect()
}

/// [`start_sentinels`] with the nodes' (data, admin) addresses spelled out (host names).
pub fn start_sentinels_at(
    dir: &std::path::Path,
    nodes: &[(String, String)],
    down_after: &str,
    group_extra: &str,
) -> (Vec<SentinelProc>, Vec<u16>) {
    let node_list = node_entries(nodes);
    three_sentinels(dir, |_| {
        format!(
            "node_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"{down_after}\"\n{group_extra}nodes = [{}]\n",
            node_list.join(", ")
        )
    })
}

/// Three sentinels (ids 1..3 on free ports, configs and data in `dir`), each config ending
/// with `rest(id)` (its node token, Raft settings and groups); their gRPC ports.
pub fn three_sentinels(
    dir: &std::path::Path,
    rest: impl Fn(u64) -> String,
) -> (Vec<SentinelProc>, Vec<u16>) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinels = (1..=3u64)
        .map(|id| {
            let text = sentinel_config(id, &ports, dir, TOKEN, &rest(id));
            let cfg = write_config(dir, &format!("s{id}.toml"), &text);
            SentinelProc::start(id, &cfg)
        })
        .collect();
    (sentinels, ports)
}

/// The master the sentinels on `ports` name and its index in `data` (the nodes' data ports),
/// once the other nodes follow it with their links up (asked again if the master changes
/// meanwhile, as a false failover on an overloaded machine may do).
pub async fn master_and_followers_at(
    ports: &[u16],
    data: &[u16],
) -> (vigil_proto::sentinel::MasterInfo, usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let m = master_of(ports, 1, Duration::from_secs(30)).await;
        let port = crate::port_of(&m.address);
        let mi = data
            .iter()
            .position(|p| *p == port)
            .expect("a node of the group");
        let want = port.to_string();
        let follow = data.iter().enumerate().all(|(i, &p)| {
            i == mi
                || (crate::info_field(p, "master_port").as_deref() == Some(want.as_str())
                    && crate::info_field(p, "master_link_status").as_deref() == Some("up"))
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

/// The master the sentinels on `ports` answer with for `mymaster`, once it has one at
/// `min_epoch` or later.
pub async fn master_of(
    ports: &[u16],
    min_epoch: u64,
    within: Duration,
) -> vigil_proto::sentinel::MasterInfo {
    let deadline = Instant::now() + within;
    loop {
        let r = sentinel_client(ports[0], TOKEN)
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

impl Managed {
    /// The master the sentinels answer with, once it has one at `epoch` or later.
    pub async fn master(
        &self,
        min_epoch: u64,
        within: Duration,
    ) -> vigil_proto::sentinel::MasterInfo {
        master_of(&self.ports, min_epoch, within).await
    }

    /// The current master and its index, once both other nodes follow it with their links
    /// up (asked again if the master changes meanwhile, as a false failover on an overloaded
    /// machine may do).
    pub async fn master_and_followers(&self) -> (vigil_proto::sentinel::MasterInfo, usize) {
        let data: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        master_and_followers_at(&self.ports, &data).await
    }

    /// The index of the node listening at `address`.
    pub fn node_at(&self, address: &str) -> usize {
        let port = crate::port_of(address);
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }
}

/// SETs `key` on `port` until it is acknowledged. A connection closed without a reply (the
/// node's answer when a write's outcome is unknown, e.g. its sync replica did not confirm in
/// time on a loaded machine) is retried like an error: the SET is idempotent.
pub async fn set_until_ok(port: u16, key: &str, value: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut c) = RawConn::connect(port)
            && c.send_raw(&RawConn::encode(&["SET", key, value])).is_ok()
            && c.read_reply().as_deref() == Some(&b"+OK\r\n"[..])
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
                                let port = m
                                    .address
                                    .parse::<vigil_base::HostPort>()
                                    .unwrap_or_else(|e| panic!("{e}"))
                                    .port();
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

/// One read of the register by a [`Pinned`] client, answered by the node as master.
#[derive(Debug, Clone)]
pub struct PinnedRead {
    /// When it was sent.
    pub sent: Instant,
    /// The register's value (-1: no such key).
    pub value: i64,
}

/// What a client pinned to one address saw.
#[derive(Debug, Default)]
pub struct PinnedLog {
    /// Reads answered with a value by the node as master (`ROLE`, sent right after, said
    /// `master`: a node never goes back from replica to master within a pipeline).
    pub reads: Vec<PinnedRead>,
    /// Reads answered by the node as a replica: not judged, replicas serve possibly stale
    /// data as Redis' do.
    pub replica_reads: usize,
    /// Reads refused with an error (`-READONLY` from a node without a lease).
    pub refused: usize,
    /// Requests cut off: connection closed, or no reply within a second.
    pub dropped: usize,
    /// Writes (of `<key>:pinned`) it saw acknowledged: when sent, when acknowledged.
    pub writes: Vec<(Instant, Instant)>,
}

impl std::fmt::Display for PinnedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pinned client: {} reads as master, {} refused, {} as replica, {} cut off, {} writes acknowledged",
            self.reads.len(),
            self.refused,
            self.replica_reads,
            self.dropped,
            self.writes.len()
        )
    }
}

/// A client pinned to one node's address, as an application holding a connection to the old
/// master is: connected before the fault, reconnecting to the same address whenever its
/// connection drops. It reads a register (`GET key`, then `ROLE`) and writes `<key>:pinned`,
/// every 10 ms, until stopped.
pub struct Pinned {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<PinnedLog>,
}

impl Pinned {
    /// Starts the client (inside the network namespace at `ns`, if given) and returns once its
    /// first read was answered.
    pub fn start(addr: &str, key: &str, ns: Option<String>) -> Pinned {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (addr, key, s) = (addr.to_string(), key.to_string(), stop.clone());
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let mut ready_tx = Some(ready_tx);
        let thread = std::thread::spawn(move || {
            if let Some(ns) = ns {
                crate::netns::enter(&ns);
            }
            let mut log = PinnedLog::default();
            let mut conn: Option<RawConn> = None;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match RawConn::connect_to(&addr, Duration::from_secs(1)) {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    },
                };
                i += 1;
                let req = [
                    RawConn::encode(&["GET", &key]),
                    RawConn::encode(&["ROLE"]),
                    RawConn::encode(&["SET", &format!("{key}:pinned"), &i.to_string()]),
                ]
                .concat();
                let sent = Instant::now();
                if c.send_raw(&req).is_err() {
                    log.dropped += 1;
                    conn = None;
                    continue;
                }
                let (get, role, set) = (c.read_reply(), c.read_reply(), c.read_reply());
                let acked = Instant::now();
                match (get, role) {
                    (Some(g), Some(_)) if g.starts_with(b"-") => log.refused += 1,
                    (Some(g), Some(r)) if r.starts_with(b"*3\r\n$6\r\nmaster\r\n") => {
                        log.reads.push(PinnedRead {
                            sent,
                            value: register_value(&g),
                        });
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    (Some(_), Some(_)) => log.replica_reads += 1,
                    _ => log.dropped += 1,
                }
                match set {
                    Some(r) if r == b"+OK\r\n" => log.writes.push((sent, acked)),
                    Some(_) => {}
                    None => conn = None,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            log
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("the pinned client's first read");
        Pinned { stop, thread }
    }

    /// Stops the client and returns what it saw.
    pub fn stop(self) -> PinnedLog {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The integer a `GET` of the register returned (-1: no such key).
fn register_value(reply: &[u8]) -> i64 {
    if reply == b"$-1\r\n" {
        return -1;
    }
    let text = String::from_utf8_lossy(reply);
    text.split("\r\n")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the register holds integers, read {text:?}"))
}

/// Sets the register `key` on `addr` to each of `values` in turn, each retried until
/// acknowledged; returns each value with the moment its acknowledgement arrived.
pub fn write_register(
    addr: &str,
    key: &str,
    values: std::ops::RangeInclusive<i64>,
) -> Vec<(i64, Instant)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked = Vec::new();
    let mut conn: Option<RawConn> = None;
    for v in values {
        loop {
            assert!(
                Instant::now() < deadline,
                "{addr} never acknowledged {key} = {v}"
            );
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match RawConn::connect_to(addr, Duration::from_secs(2)) {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
            };
            let ok = c
                .send_raw(&RawConn::encode(&["SET", key, &v.to_string()]))
                .is_ok()
                && c.read_reply().as_deref() == Some(b"+OK\r\n");
            if ok {
                acked.push((v, Instant::now()));
                break;
            }
            conn = None;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    acked
}

/// The reads of `log` that returned a value older than one of `acked` (the register's
/// acknowledged values, with the moments their acknowledgements arrived) acknowledged before
/// the read was even sent: stale reads, described.
pub fn stale_reads(log: &PinnedLog, acked: &[(i64, Instant)]) -> Vec<String> {
    log.reads
        .iter()
        .filter_map(|r| {
            let newest = acked
                .iter()
                .filter(|(_, at)| *at < r.sent)
                .map(|(v, _)| *v)
                .max()?;
            (r.value < newest).then(|| {
                format!(
                    "read {} although {newest} had been acknowledged before it was sent",
                    r.value
                )
            })
        })
        .collect()
}
