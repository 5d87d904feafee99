//! A sharded cluster for the cluster suites: `shards` groups (`g1`..) of managed `vigil node`s,
//! three sentinels monitoring them all, and the cluster created with `vigil ctl cluster create`
//! as an operator would; helpers that wait until every node serves the committed slot map.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::managed::{NODE_TOKEN, TOKEN, addresses, node_entries};
use crate::{NodeProc, RawConn, SentinelProc, vigil_bin, write_config};

/// A sharded cluster: groups of nodes, the sentinels, the cluster named `c`.
pub struct Sharded {
    /// Per group (`g1`, `g2`, …), its nodes (`n1`, `n2`, …).
    pub groups: Vec<Vec<NodeProc>>,
    /// The sentinels, ids 1..3.
    pub sentinels: Vec<SentinelProc>,
    /// Their gRPC ports.
    pub ports: Vec<u16>,
    /// Configs, data and logs.
    pub dir: tempfile::TempDir,
}

/// `shards` groups of `per_group` managed nodes, three sentinels, and the cluster `c` over the
/// groups, created through `vigil ctl`; `group_extra` goes into each group's table.
pub fn start_sharded(
    shards: usize,
    per_group: usize,
    down_after: &str,
    group_extra: &str,
) -> Sharded {
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("VIGIL_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let groups: Vec<Vec<NodeProc>> = (1..=shards)
        .map(|g| {
            (1..=per_group)
                .map(|i| {
                    let name = format!("g{g}n{i}");
                    let cfg = write_config(
                        dir.path(),
                        &format!("{name}.toml"),
                        &format!(
                            "mode = \"managed\"\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n"
                        ),
                    );
                    NodeProc::start(
                        &dir.path().join(&name),
                        &["--config", cfg.to_str().unwrap()],
                    )
                })
                .collect()
        })
        .collect();
    let tables: String = groups
        .iter()
        .enumerate()
        .map(|(g, nodes)| {
            format!(
                "[[groups]]\nname = \"g{}\"\ndown_after = \"{down_after}\"\n{group_extra}nodes = [{}]\n",
                g + 1,
                node_entries(&addresses(nodes)).join(", ")
            )
        })
        .collect();
    let (sentinels, ports) = crate::managed::three_sentinels(dir.path(), |_| {
        format!("node_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n{tables}")
    });
    let s = Sharded {
        groups,
        sentinels,
        ports,
        dir,
    };
    let names: Vec<String> = (1..=shards).map(|g| format!("g{g}")).collect();
    let out = s.ctl(
        &["cluster", "create", "c", "--groups", &names.join(",")],
        30,
    );
    assert!(out.contains("created"), "vigil ctl cluster create: {out}");
    s
}

impl Sharded {
    /// Runs `vigil ctl ARGS` against the first sentinel, retrying for up to `within_s` seconds
    /// while it fails (the sentinels may still be electing or loading their groups); its stdout.
    /// `vigil ctl <args>` against the first sentinel, once.
    pub fn ctl_once(&self, args: &[&str]) -> std::process::Output {
        self.ctl_on(0, args)
    }

    /// `vigil ctl <args>` against sentinel `i` (an index into `sentinels`), once.
    pub fn ctl_on(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new(vigil_bin())
            .args(["ctl", "--sentinel"])
            .arg(format!("127.0.0.1:{}", self.ports[i]))
            .args(["--token", TOKEN])
            .args(args)
            .output()
            .expect("run vigil ctl")
    }

    pub fn ctl(&self, args: &[&str], within_s: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(within_s);
        loop {
            let out = Command::new(vigil_bin())
                .args(["ctl", "--sentinel"])
                .arg(format!("127.0.0.1:{}", self.ports[0]))
                .args(["--token", TOKEN])
                .args(args)
                .output()
                .expect("run vigil ctl");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                Instant::now() < deadline,
                "vigil ctl {args:?} kept failing: {err}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every node, `(group index, node index, node)`.
    pub fn nodes(&self) -> impl Iterator<Item = (usize, usize, &NodeProc)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(g, ns)| ns.iter().enumerate().map(move |(i, n)| (g, i, n)))
    }

    /// `vigil ctl cluster move-slots c --from g1 --to g2 --slots SLOTS` (`--no-wait` unless
    /// `wait`), once.
    pub fn move_slots(&self, slots: &str, wait: bool) -> std::process::Output {
        self.move_slots_in("c", "g1", "g2", slots, wait)
    }

    /// `vigil ctl cluster move-slots CLUSTER --from FROM --to TO --slots SLOTS` (`--no-wait`
    /// unless `wait`), once.
    pub fn move_slots_in(
        &self,
        cluster: &str,
        from: &str,
        to: &str,
        slots: &str,
        wait: bool,
    ) -> std::process::Output {
        let mut args = vec![
            "cluster",
            "move-slots",
            cluster,
            "--from",
            from,
            "--to",
            to,
            "--slots",
            slots,
        ];
        if !wait {
            args.push("--no-wait");
        }
        self.ctl_once(&args)
    }

    /// The node listening on `port`: (group, node).
    pub fn find(&self, port: u16) -> (usize, usize) {
        self.nodes()
            .find(|(_, _, n)| n.port == port)
            .map(|(g, i, _)| (g, i))
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// Every node's data port.
    pub fn data_ports(&self) -> Vec<u16> {
        self.nodes().map(|(_, _, n)| n.port).collect()
    }

    /// Waits until every node but those in `down` (group, node) answers `CLUSTER SLOTS` with
    /// full coverage, each range with a master and at least `replicas` replicas, all alike;
    /// that reply.
    pub fn wait_serving(
        &self,
        replicas: usize,
        down: &[(usize, usize)],
        within: Duration,
    ) -> Vec<SlotRange> {
        let deadline = Instant::now() + within;
        loop {
            let replies: Vec<Option<Vec<SlotRange>>> = self
                .nodes()
                .filter(|(g, i, _)| !down.contains(&(*g, *i)))
                .map(|(_, _, n)| cluster_slots(n.port))
                .collect();
            if let Some(Some(first)) = replies.first()
                && replies.iter().all(|r| r.as_ref() == Some(first))
                && covers_all(first)
                && first.iter().all(|r| r.replicas.len() >= replicas)
                && first
                    .iter()
                    .all(|r| takes_writes(r.master.1, r.start as u16))
            {
                return first.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the nodes never agreed on a full slot map with {replicas} replicas per shard: {replies:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the master on `port` takes writes to `slot` now (its lease granted): a `DEL` of a
/// key of that slot that does not exist answers `:0`, where a master that may not write
/// answers `CLUSTERDOWN`. Changes nothing.
fn takes_writes(port: u16, slot: u16) -> bool {
    let key = (0u64..)
        .map(|i| format!("vigil-probe-{i}"))
        .find(|k| vigil_resp::slot::key_slot(k.as_bytes()) == slot)
        .unwrap_or_default();
    raw_reply(port, &["DEL", &key]) == ":0\r\n"
}

/// One entry of `CLUSTER SLOTS`: a range, its master and replicas as `(host, port, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: i64,
    pub end: i64,
    pub master: (String, u16, String),
    pub replicas: Vec<(String, u16, String)>,
}

/// `CLUSTER SLOTS` on `port`, parsed (asserting the 7.x shape: 4-element nodes, an integer
/// port, a 40-hex id); `None` on an error reply or no connection.
pub fn cluster_slots(port: u16) -> Option<Vec<SlotRange>> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let v: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).ok()?;
    let redis::Value::Array(entries) = v else {
        panic!("CLUSTER SLOTS is not an array: {v:?}");
    };
    let node = |v: &redis::Value| -> (String, u16, String) {
        let redis::Value::Array(f) = v else {
            panic!("a CLUSTER SLOTS node is not an array: {v:?}")
        };
        assert_eq!(f.len(), 4, "7.x nodes have 4 elements: {f:?}");
        let host: String = redis::from_redis_value_ref(&f[0]).expect("host");
        let redis::Value::Int(port) = f[1] else {
            panic!("the port must be an integer: {f:?}")
        };
        let id: String = redis::from_redis_value_ref(&f[2]).expect("id");
        assert!(
            id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "id {id:?}"
        );
        assert!(
            matches!(&f[3], redis::Value::Array(m) if m.is_empty()),
            "metadata {:?}",
            f[3]
        );
        (host, port as u16, id)
    };
    Some(
        entries
            .iter()
            .map(|e| {
                let redis::Value::Array(f) = e else {
                    panic!("a CLUSTER SLOTS entry is not an array: {e:?}")
                };
                let (redis::Value::Int(start), redis::Value::Int(end)) = (&f[0], &f[1]) else {
                    panic!("slot bounds must be integers: {f:?}")
                };
                SlotRange {
                    start: *start,
                    end: *end,
                    master: node(&f[2]),
                    replicas: f[3..].iter().map(node).collect(),
                }
            })
            .collect(),
    )
}

/// The range of `slots` holding `slot`.
pub fn range_of(slots: &[SlotRange], slot: i64) -> &SlotRange {
    slots
        .iter()
        .find(|r| r.start <= slot && slot <= r.end)
        .expect("every slot is covered")
}

/// Whether `ranges` cover slots 0..=16383 once each, in order.
pub fn covers_all(ranges: &[SlotRange]) -> bool {
    let mut next = 0;
    for r in ranges {
        if r.start != next || r.end < r.start {
            return false;
        }
        next = r.end + 1;
    }
    next == 16384
}

/// One raw reply of `args` on `port` (the exact bytes, for wording checks).
pub fn raw_reply(port: u16, args: &[&str]) -> String {
    let mut c = RawConn::connect(port).expect("connect");
    String::from_utf8_lossy(&c.call(args)).into_owned()
}

/// A redis-rs cluster client writing `prefix:<i>` = `i`, one key after another, from its own
/// thread until stopped: what it was told is acknowledged, what failed, and the longest a
/// write waited.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    attempted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: std::thread::JoinHandle<Written>,
}

/// What a [`Writer`] did.
#[derive(Debug)]
pub struct Written {
    /// Keys attempted: `0..attempted`.
    pub attempted: u64,
    /// The acknowledged ones, ascending.
    pub acked: Vec<u64>,
    /// Failed writes, with the error.
    pub errors: Vec<String>,
    /// The longest wait for one write's reply.
    pub longest: Duration,
}

impl Writer {
    /// Starts writing through a client seeded with `seed` (`host:port`), as fast as it can.
    pub fn start(seed: &str, prefix: &str) -> Writer {
        Writer::paced(seed, prefix, Duration::ZERO)
    }

    /// Starts writing, `pace` apart.
    pub fn paced(seed: &str, prefix: &str, pace: Duration) -> Writer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attempted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (seed, prefix, flag) = (format!("redis://{seed}/"), prefix.to_string(), stop.clone());
        let count = attempted.clone();
        let thread = std::thread::spawn(move || {
            let client = redis::cluster::ClusterClient::new(vec![seed]).unwrap();
            let mut conn = client.get_connection().expect("cluster connection");
            let mut w = Written {
                attempted: 0,
                acked: Vec::new(),
                errors: Vec::new(),
                longest: Duration::ZERO,
            };
            while !flag.load(Ordering::Relaxed) {
                let i = w.attempted;
                let t = Instant::now();
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("{prefix}:{i}"))
                    .arg(i)
                    .query(&mut conn);
                w.longest = w.longest.max(t.elapsed());
                match r {
                    Ok(()) => w.acked.push(i),
                    Err(e) => w.errors.push(format!("{prefix}:{i}: {e}")),
                }
                w.attempted += 1;
                count.store(w.attempted, Ordering::Relaxed);
                std::thread::sleep(pace);
            }
            w
        });
        Writer {
            stop,
            attempted,
            thread,
        }
    }

    /// How many writes it has made so far (keys `0..` that).
    pub fn attempted(&self) -> u64 {
        self.attempted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops it; what it did.
    pub fn stop(self) -> Written {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("writer thread")
    }
}

/// `DBSIZE` on `port`.
pub fn dbsize(port: u16) -> usize {
    try_dbsize(port).unwrap_or_else(|r| panic!("DBSIZE on {port}: {r}"))
}

/// `DBSIZE` on `port`, or the reply that was not a count (a node restarting after a kill, or
/// between roles, refuses it for a moment).
fn try_dbsize(port: u16) -> Result<usize, String> {
    let mut c = RawConn::connect(port).map_err(|e| e.to_string())?;
    c.send_raw(&RawConn::encode(&["DBSIZE"]))
        .map_err(|e| e.to_string())?;
    let r = c
        .read_reply()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok_or_else(|| "no reply".to_string())?;
    r.trim_start_matches(':').trim().parse().map_err(|_| r)
}

/// Checks, through a fresh cluster client seeded with `seed`, that every acknowledged key of
/// `w` reads its value, and that every key is in exactly one shard of `slots` (the masters'
/// key counts add up to the keys that exist, and so do each shard's replicas'). Returns how
/// many keys exist.
pub fn assert_each_key_once(seed: &str, prefix: &str, w: &Written, slots: &[SlotRange]) -> usize {
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{seed}/")]).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut existing = 0;
    for i in 0..w.attempted {
        let key = format!("{prefix}:{i}");
        let v: Option<u64> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        if w.acked.binary_search(&i).is_ok() && v != Some(i) {
            panic!("acknowledged {key} reads {v:?}");
        }
        existing += v.is_some() as usize;
    }
    // One entry per shard (a shard may own several ranges).
    let mut shards: Vec<(u16, Vec<u16>)> = slots
        .iter()
        .map(|r| (r.master.1, r.replicas.iter().map(|x| x.1).collect()))
        .collect();
    shards.sort();
    shards.dedup();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let masters: Result<usize, String> = shards.iter().map(|s| try_dbsize(s.0)).sum();
        let replicas_ok = shards.iter().all(|(m, rs)| {
            rs.iter()
                .all(|&r| try_dbsize(r).is_ok_and(|n| Ok(n) == try_dbsize(*m)))
        });
        if masters == Ok(existing) && replicas_ok {
            return existing;
        }
        assert!(
            Instant::now() < deadline,
            "{existing} keys exist, the masters hold {masters:?} (replicas agree: {replicas_ok}): a key is in two shards or none"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
