//! Jepsen's Redis scenario with a real partition (network namespaces, see `vigil_tests::netns`):
//! the master, the sentinel leader and some clients are cut off from the other two nodes, the
//! other two sentinels and the other clients, while clients on both sides keep writing.
//!
//! Checked every time: the old master acknowledges nothing once its lease has run out, and no
//! write is acknowledged by the old master after the first write the new master acknowledged
//! was even sent (never two masters acknowledging at once); a client pinned to the old master
//! (reconnecting to the same address) never reads a value older than one the new master
//! acknowledged before the read was sent (lease reads: no stale read). In synchronous mode no
//! acknowledged write is lost. In async mode the writes the old master acknowledged alone are
//! lost, and the sentinels count them when they demote it (`+convert-to-slave divergent_bytes`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_proto::sentinel::{ClusterStatusRequest, GetMasterRequest};
use vigil_tests::managed::{Pinned, stale_reads, write_register};
use vigil_tests::netns::{Net, enter};
use vigil_tests::{RawConn, sentinel_client_at};

const TOKEN: &str = "cluster-token";
const NODE_TOKEN: &str = "node-token";
const DOWN_AFTER_MS: u64 = 500;
/// How far the replication stream may run behind the master's acknowledgements in async
/// mode on a loaded machine.
const REPLICATION_LAG: Duration = Duration::from_millis(500);
/// The lease the sentinels grant: down_after less one probe interval (a quarter of it, at most
/// 100 ms) and the clock margin (2 % + 5 ms).
const LEASE_MS: u64 = DOWN_AFTER_MS - 100 - (DOWN_AFTER_MS / 50 + 5);

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    key: String,
    /// The master that acknowledged it (`ip:port`).
    master: String,
    sent: Instant,
    acked: Instant,
}

struct Cluster {
    net: Net,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(sync: bool) -> Cluster {
        let mut net = Net::new(&["n1", "n2", "n3", "s1", "s2", "s3", "ca", "cb"]);
        let dir = tempfile::tempdir().unwrap();
        let repl = if sync {
            "[replication]\nsync_replicas = 1\nsync_timeout = \"1s\"\n"
        } else {
            ""
        };
        for n in ["n1", "n2", "n3"] {
            let ip = net.ip(n);
            let cfg = dir.path().join(format!("{n}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "mode = \"managed\"\nbind = \"{ip}\"\nport = 6379\ndir = \"{}\"\n[admin]\nbind = \"{ip}\"\nport = 16379\ntoken = \"{NODE_TOKEN}\"\n{repl}",
                    dir.path().join(n).display()
                ),
            )
            .unwrap();
            let log = dir.path().join(format!("{n}.log"));
            net.spawn(n, &["node", "--config", cfg.to_str().unwrap()], &log);
        }
        let nodes: Vec<String> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                let ip = net.ip(n);
                format!("{{ name = \"{n}\", data = \"{ip}:6379\", admin = \"{ip}:16379\" }}")
            })
            .collect();
        let peers: Vec<String> = (1..=3)
            .map(|i| {
                format!(
                    "{{ id = {i}, address = \"{}:27379\" }}",
                    net.ip(&format!("s{i}"))
                )
            })
            .collect();
        for i in 1..=3 {
            let s = format!("s{i}");
            let ip = net.ip(&s);
            let cfg = dir.path().join(format!("{s}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "id = {i}\ngrpc = \"{ip}:27379\"\nresp = \"{ip}:26379\"\ndir = \"{}\"\ntoken = \"{TOKEN}\"\nnode_token = \"{NODE_TOKEN}\"\npeers = [{}]\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"{DOWN_AFTER_MS}ms\"\nsync_replicas = {}\nnodes = [{}]\n",
                    dir.path().join(&s).display(),
                    peers.join(", "),
                    u32::from(sync),
                    nodes.join(", ")
                ),
            )
            .unwrap();
            let log = dir.path().join(format!("{s}.log"));
            net.spawn(&s, &["sentinel", "--config", cfg.to_str().unwrap()], &log);
        }
        Cluster { net, _dir: dir }
    }

    fn sentinel(&self, i: u64) -> String {
        format!("{}:27379", self.net.ip(&format!("s{i}")))
    }

    fn node(&self, n: &str) -> String {
        format!("{}:6379", self.net.ip(n))
    }

    /// The master `sentinel` gives (address, epoch), asked from `from`'s side.
    fn master(&self, from: &str, sentinel: u64) -> Option<(String, u64)> {
        let addr = self.sentinel(sentinel);
        self.net.run_in(from, move || {
            block_on(async move {
                let m = sentinel_client_at(&addr, TOKEN, Duration::from_secs(2))
                    .get_master(GetMasterRequest {
                        group: "mymaster".into(),
                    })
                    .await
                    .ok()?
                    .into_inner();
                (m.status == "ok").then_some((m.address, m.epoch))
            })
        })
    }

    /// An INFO field of the node at `addr`, asked from `from`'s side.
    fn info(&self, from: &str, addr: &str, field: &str) -> Option<String> {
        let (addr, field) = (addr.to_string(), format!("{field}:"));
        self.net.run_in(from, move || {
            // A poll: a node that closes the connection (the sentinels disconnect a demoted
            // master's clients) or answers late is asked again.
            let mut c = RawConn::connect_to(&addr, Duration::from_secs(1)).ok()?;
            c.send_raw(&RawConn::encode(&["INFO", "everything"])).ok()?;
            let info = String::from_utf8_lossy(&c.read_reply()?).into_owned();
            info.lines()
                .find_map(|l| l.strip_prefix(&field).map(|v| v.trim().to_string()))
        })
    }

    /// Once the master has both replicas in sync: its address, the epoch and its name.
    fn ready(&self) -> (String, u64, &'static str) {
        let mut first = None;
        self.wait(
            "a master with two replicas",
            Duration::from_secs(30),
            || {
                let Some((m, e)) = self.master("cb", 1) else {
                    return false;
                };
                let follow = ["n1", "n2", "n3"]
                    .iter()
                    .map(|n| self.node(n))
                    .filter(|a| *a != m)
                    .all(|a| self.info("cb", &a, "master_link_status").as_deref() == Some("up"));
                first = Some((m, e));
                follow
            },
        );
        let (m, e) = first.unwrap();
        let name = ["n1", "n2", "n3"]
            .into_iter()
            .find(|n| self.node(n) == m)
            .unwrap();
        (m, e, name)
    }

    /// The sentinel leader as sentinel `ask` sees it, asked from the majority clients' side.
    fn leader_seen_by(&self, ask: u64) -> u64 {
        let addr = self.sentinel(ask);
        self.net.run_in("cb", move || {
            block_on(async move {
                sentinel_client_at(&addr, TOKEN, Duration::from_secs(2))
                    .cluster_status(ClusterStatusRequest {})
                    .await
                    .map_or(0, |s| s.into_inner().leader)
            })
        })
    }

    /// The sentinel leader (1..=3).
    fn leader(&self) -> u64 {
        let mut leader = 0;
        self.wait("a sentinel leader", Duration::from_secs(20), || {
            leader = self.leader_seen_by(1);
            (1..=3).contains(&leader)
        });
        leader
    }

    fn wait(&self, what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !ok() {
            assert!(Instant::now() < deadline, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `n` writers inside `member`'s namespace, resolving the master through `sentinel`, writing
/// unique keys `<tag><w>:<i>`, re-resolving after any error, until `stop`.
fn writers(
    c: &Cluster,
    member: &str,
    sentinel: u64,
    tag: &'static str,
    stop: &Arc<AtomicBool>,
    acks: &Arc<Mutex<Vec<Ack>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|w| {
            let (stop, acks) = (stop.clone(), acks.clone());
            let ns = c.net.ns_path(member);
            let addr = c.sentinel(sentinel);
            std::thread::spawn(move || {
                enter(&ns);
                block_on(async move {
                    let mut conn: Option<(RawConn, String)> = None;
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            let m = sentinel_client_at(&addr, TOKEN, Duration::from_secs(1))
                                .get_master(GetMasterRequest {
                                    group: "mymaster".into(),
                                })
                                .await;
                            if let Ok(m) = m.map(|m| m.into_inner())
                                && m.status == "ok"
                            {
                                conn = RawConn::connect_to(&m.address, Duration::from_secs(3))
                                    .ok()
                                    .map(|c| (c, m.address));
                            }
                            if conn.is_none() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        }
                        let key = format!("{tag}{w}:{i}");
                        i += 1;
                        let Some((c, master)) = conn.as_mut() else {
                            continue;
                        };
                        let sent = Instant::now();
                        let ok = c.send_raw(&RawConn::encode(&["SET", &key, "v"])).is_ok()
                            && c.read_reply().as_deref() == Some(b"+OK\r\n");
                        if ok {
                            let master = master.clone();
                            acks.lock().unwrap().push(Ack {
                                key,
                                master,
                                sent,
                                acked: Instant::now(),
                            });
                        } else {
                            conn = None;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
        })
        .collect()
}

/// Watches the two majority sentinels' events for `+convert-to-slave` of `node`; returns its
/// detail (or `None` after `within`).
fn watch_conversion(
    c: &Cluster,
    sentinels: [u64; 2],
    node: &str,
    within: Duration,
) -> std::thread::JoinHandle<Option<String>> {
    let ns = c.net.ns_path("cb");
    let addrs: Vec<String> = sentinels.iter().map(|&s| c.sentinel(s)).collect();
    let node = node.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        block_on(async move {
            use tokio_stream::StreamExt;
            let mut streams = Vec::new();
            for a in &addrs {
                let s = sentinel_client_at(a, TOKEN, Duration::from_secs(120))
                    .watch_topology(vigil_proto::sentinel::WatchRequest {})
                    .await
                    .ok()?
                    .into_inner();
                streams.push(s);
            }
            let mut merged = tokio_stream::StreamMap::new();
            for (i, s) in streams.into_iter().enumerate() {
                merged.insert(i, s);
            }
            let found = async {
                while let Some((_, Ok(ev))) = merged.next().await {
                    if ev.kind == "+convert-to-slave" && ev.node == node {
                        return Some(ev.detail);
                    }
                }
                None
            };
            tokio::time::timeout(within, found).await.ok().flatten()
        })
    })
}

/// Bytes of `SET key v` in the replication stream.
fn set_bytes(key: &str) -> u64 {
    RawConn::encode(&["SET", key, "v"]).len() as u64
}

fn scenario(sync: bool) {
    let c = Cluster::start(sync);
    let (old, epoch0, old_name) = c.ready();
    // The sentinel leader goes with the master: the hardest case.
    let leader = c.leader();
    let majority: Vec<u64> = (1..=3).filter(|&s| s != leader).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let mut threads = writers(&c, "ca", leader, "a", &stop, &acks);
    threads.extend(writers(&c, "cb", majority[0], "b", &stop, &acks));
    // A register, and a client on the old master's side pinned to it that reads the register.
    let o = old.clone();
    let mut register = c.net.run_in("cb", move || write_register(&o, "reg", 0..=0));
    let pinned = Pinned::start(&old, "reg", Some(c.net.ns_path("ca")));
    std::thread::sleep(Duration::from_millis(1000));
    let conversion = watch_conversion(
        &c,
        [majority[0], majority[1]],
        old_name,
        Duration::from_secs(60),
    );
    let leader_name = format!("s{leader}");
    let cut_at = Instant::now();
    c.net.cut(&[old_name, &leader_name, "ca"]);
    // The majority fails over; its clients write to the new master.
    let mut new = String::new();
    c.wait(
        "a failover on the majority side",
        Duration::from_secs(20),
        || match c.master("cb", majority[0]) {
            Some((m, e)) if e > epoch0 && m != old => {
                new = m;
                true
            }
            _ => false,
        },
    );
    c.wait("writes on the new master", Duration::from_secs(20), || {
        acks.lock()
            .unwrap()
            .iter()
            .filter(|a| a.master == new)
            .count()
            >= 50
    });
    // The new master takes new values of the register while the old one is still cut off.
    let n = new.clone();
    register.extend(
        c.net
            .run_in("cb", move || write_register(&n, "reg", 1..=20)),
    );
    std::thread::sleep(Duration::from_millis(500));
    c.net.heal();
    // The old master becomes a replica of the new one.
    c.wait(
        "the old master follows the new one",
        Duration::from_secs(30),
        || {
            c.info("cb", &old, "master_port").as_deref() == Some("6379")
                && c.info("cb", &old, "master_host")
                    == new.rsplit_once(':').map(|(h, _)| h.to_string())
                && c.info("cb", &old, "master_link_status").as_deref() == Some("up")
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let pinned = pinned.stop();
    let acks = acks.lock().unwrap().clone();
    let on_old: Vec<&Ack> = acks.iter().filter(|a| a.master == old).collect();
    let on_new: Vec<&Ack> = acks.iter().filter(|a| a.master == new).collect();
    assert!(!on_new.is_empty());
    // The old master stopped acknowledging by the end of its lease: no write it acknowledged
    // was sent later. (When its reply reached the client says less: on a loaded machine the
    // client may read it a while after the node sent it.)
    let last_old = on_old.iter().map(|a| a.acked).max().unwrap();
    let last_sent = on_old.iter().map(|a| a.sent).max().unwrap();
    let after_cut = last_sent.saturating_duration_since(cut_at);
    assert!(
        after_cut <= Duration::from_millis(LEASE_MS + 100),
        "the old master acknowledged a write sent {after_cut:?} after the partition (lease {LEASE_MS} ms)"
    );
    // Never two masters: its last acknowledgement arrived before the new master's first
    // acknowledged write was even sent.
    let first_new = on_new.iter().map(|a| a.sent).min().unwrap();
    assert!(
        last_old < first_new,
        "the old master acknowledged a write {:?} after the new master's first one was sent",
        last_old - first_new
    );
    assert!(
        pinned.writes.iter().all(|(_, acked)| *acked < first_new),
        "the old master acknowledged a pinned client's write after the new master's first one was sent"
    );
    // No stale read on the old master.
    eprintln!("{pinned}");
    let stale = stale_reads(&pinned, &register);
    assert!(stale.is_empty(), "{} stale reads: {stale:?}", stale.len());
    // What the new master has.
    let keys: Vec<String> = acks.iter().map(|a| a.key.clone()).collect();
    let new_addr = new.clone();
    let missing: Vec<String> = c.net.run_in("cb", move || {
        // The new master closes its clients if its lease lapses for a moment (a renewal late
        // on a loaded machine): a dropped connection is not a missing key, so ask again.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn: Option<RawConn> = None;
        keys.into_iter()
            .filter(|k| {
                loop {
                    let r = match conn.as_mut() {
                        Some(r) => r,
                        None => match RawConn::connect_to(&new_addr, Duration::from_secs(5)) {
                            Ok(r) => conn.insert(r),
                            Err(e) => {
                                assert!(Instant::now() < deadline, "cannot reach {new_addr}: {e}");
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        },
                    };
                    let reply = r
                        .send_raw(&RawConn::encode(&["EXISTS", k]))
                        .ok()
                        .and_then(|()| r.read_reply());
                    match reply {
                        Some(reply) => break reply != b":1\r\n",
                        None => {
                            assert!(
                                Instant::now() < deadline,
                                "{new_addr} kept dropping the read-back"
                            );
                            conn = None;
                        }
                    }
                }
            })
            .collect()
    });
    let detail = conversion.join().unwrap();
    eprintln!(
        "{} writes acknowledged ({} by the old master, the last {after_cut:?} after the cut; {} by the new), {} lost; old master demoted: {detail:?}",
        acks.len(),
        on_old.len(),
        on_new.len(),
        missing.len()
    );
    let detail = detail.expect("the old master's +convert-to-slave event");
    let divergent: u64 = detail
        .strip_prefix("divergent_bytes ")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("unexpected detail {detail:?}"));
    if sync {
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost in synchronous mode, e.g. {:?}",
            missing.len(),
            acks.len(),
            &missing[..missing.len().min(5)]
        );
    } else {
        // Only writes the old master acknowledged after the cut, or just before it (replication
        // is asynchronous: the stream to the replicas runs a little behind the acknowledgements
        // on a loaded machine), can be lost, and the sentinels counted at least their bytes.
        assert!(
            !missing.is_empty(),
            "async mode: the old master's writes after the cut should be lost"
        );
        for k in &missing {
            let a = acks.iter().find(|a| &a.key == k).unwrap();
            assert!(
                a.master == old && a.acked + REPLICATION_LAG >= cut_at,
                "lost a write acknowledged well before the cut: {a:?}"
            );
        }
        let lost: u64 = missing.iter().map(|k| set_bytes(k)).sum();
        assert!(
            divergent >= lost,
            "divergent_bytes {divergent} < {lost} bytes of lost acknowledged writes"
        );
    }
}

#[test]
fn a_partitioned_master_loses_no_acknowledged_write_in_sync_mode() {
    scenario(true);
}

#[test]
fn a_partitioned_master_in_async_mode_loses_only_counted_writes_within_its_lease() {
    scenario(false);
}

/// Asymmetric visibility: only the sentinel leader loses its route to the master. The others
/// still see it, so there is no quorum for a failover; instead of letting the master's lease
/// run out, the leader hands leadership to a sentinel that sees the master, and writes go on
/// at the same epoch.
#[test]
fn a_leader_that_alone_cannot_reach_the_master_hands_over_instead_of_failing_over() {
    let c = Cluster::start(false);
    let (master, epoch0, master_name) = c.ready();
    let leader = c.leader();
    let other = (1..=3).find(|&s| s != leader).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let threads = writers(&c, "cb", other, "b", &stop, &acks);
    std::thread::sleep(Duration::from_millis(500));
    c.net.blackhole(&format!("s{leader}"), master_name);
    let mut new_leader = leader;
    c.wait("leadership handed over", Duration::from_secs(20), || {
        new_leader = c.leader_seen_by(other);
        (1..=3).contains(&new_leader) && new_leader != leader
    });
    let handed = Instant::now();
    c.wait(
        "writes on the same master after the hand-over",
        Duration::from_secs(20),
        || {
            acks.lock()
                .unwrap()
                .iter()
                .filter(|a| a.sent > handed && a.master == master)
                .count()
                >= 50
        },
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let (m, epoch) = c.master("cb", other).expect("a master");
    assert_eq!(
        (m.as_str(), epoch),
        (master.as_str(), epoch0),
        "no failover happened"
    );
    assert!(acks.lock().unwrap().iter().all(|a| a.master == master));
}
