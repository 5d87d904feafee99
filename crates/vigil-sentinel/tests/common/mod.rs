//! The in-process sentinel network shared by the integration tests: Raft drivers on their own
//! disk logs, connected by a router whose links can be cut (`cut`, `isolate`), made lossy with
//! a seeded RNG (`drop(from, to, pct)`) and healed (`heal`).
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{Message, MessageType};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use vigil_sentinel::driver::{self, DriverError, Handle, Options, Transport};
use vigil_sentinel::state::{Command, GroupSpec, NodeSpec, Rejected, Settings};
use vigil_sentinel::storage::DiskStorage;

pub mod fake_nodes;

/// Routes messages between in-process drivers; links can be cut both ways or made lossy.
pub struct Net {
    pub handles: RwLock<HashMap<u64, Handle>>,
    cut: Mutex<HashSet<(u64, u64)>>,
    /// Per directed link, the percentage of messages lost.
    drops: Mutex<HashMap<(u64, u64), u32>>,
    /// Decides which messages are lost: seeded, so a failing run can be replayed.
    rng: Mutex<StdRng>,
    /// Heartbeats that carry a ReadIndex request (safe mode: a context), by sender.
    pub read_heartbeats: Mutex<HashMap<u64, u64>>,
}

impl Default for Net {
    fn default() -> Self {
        Net::seeded(SEED)
    }
}

/// The seed of every test network unless a test picks another.
pub const SEED: u64 = 0x5e7_1e1;

struct Port {
    from: u64,
    net: Arc<Net>,
}

impl Transport for Port {
    fn send(&self, msgs: Vec<Message>) {
        let handles = self.net.handles.read();
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgHeartbeat && !m.context.is_empty() {
                *self
                    .net
                    .read_heartbeats
                    .lock()
                    .entry(self.from)
                    .or_default() += 1;
            }
            if !self.net.delivers(self.from, m.to) {
                continue;
            }
            if let Some(h) = handles.get(&m.to) {
                h.step(m);
            }
        }
    }
}

impl Net {
    /// A network whose losses follow `seed`.
    pub fn seeded(seed: u64) -> Net {
        Net {
            handles: RwLock::default(),
            cut: Mutex::default(),
            drops: Mutex::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            read_heartbeats: Mutex::default(),
        }
    }

    /// Whether one message from `from` to `to` gets through now.
    pub fn delivers(&self, from: u64, to: u64) -> bool {
        if self.cut.lock().contains(&(from, to)) {
            return false;
        }
        match self.drops.lock().get(&(from, to)) {
            Some(&pct) => self.rng.lock().random_range(0..100u32) >= pct,
            None => true,
        }
    }

    /// Cuts the link from `from` to `to` (one way).
    pub fn cut(&self, from: u64, to: u64) {
        self.cut.lock().insert((from, to));
    }

    /// Loses `pct` percent of the messages from `from` to `to` (one way; 0 restores it).
    pub fn drop(&self, from: u64, to: u64, pct: u32) {
        let mut d = self.drops.lock();
        if pct == 0 {
            d.remove(&(from, to));
        } else {
            d.insert((from, to), pct.min(100));
        }
    }

    /// Cuts `id` off from every other of `ids`, both ways.
    pub fn isolate(&self, id: u64, ids: &[u64]) {
        let mut cut = self.cut.lock();
        for &o in ids {
            if o != id {
                cut.insert((id, o));
                cut.insert((o, id));
            }
        }
    }

    /// Restores every link: no cut, no loss.
    pub fn heal(&self) {
        self.cut.lock().clear();
        self.drops.lock().clear();
    }
}

/// Raft drivers on disk logs in a temporary directory, routed through one [`Net`].
pub struct Cluster {
    pub net: Arc<Net>,
    dirs: HashMap<u64, PathBuf>,
    pub ids: Vec<u64>,
    _tmp: tempfile::TempDir,
    opts: Options,
}

/// Fast Raft timing for tests.
pub fn opts() -> Options {
    Options {
        tick: Duration::from_millis(20),
        election_ticks: 10,
        heartbeat_ticks: 2,
        compact_every: 10_000,
    }
}

impl Cluster {
    /// `n` sentinels, founded together.
    pub fn new(n: u64, opts: Options) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let ids: Vec<u64> = (1..=n).collect();
        let dirs = ids
            .iter()
            .map(|&i| (i, tmp.path().join(format!("s{i}"))))
            .collect();
        let c = Cluster {
            net: Arc::new(Net::default()),
            dirs,
            ids,
            _tmp: tmp,
            opts,
        };
        for &i in &c.ids.clone() {
            c.start(i);
        }
        c
    }

    /// Starts (or restarts) sentinel `id` from its directory.
    pub fn start(&self, id: u64) {
        let storage = DiskStorage::open(&self.dirs[&id]).unwrap();
        let port = Arc::new(Port {
            from: id,
            net: self.net.clone(),
        });
        let h = driver::start(id, storage, &self.ids, self.opts, port).unwrap();
        self.net.handles.write().insert(id, h);
    }

    /// Stops a driver (its mailbox closes when the last handle goes).
    pub fn stop(&self, id: u64) {
        self.net.handles.write().remove(&id);
    }

    /// Sentinel `id`'s driver.
    pub fn h(&self, id: u64) -> Handle {
        self.net.handles.read()[&id].clone()
    }

    /// The leader among `among`, once there is one.
    pub async fn leader(&self, among: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for &i in among {
                if let Some(h) = self.net.handles.read().get(&i)
                    && h.status.read().is_leader
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Monitoring a one-node group.
pub fn monitor(name: &str) -> Command {
    Command::Monitor(GroupSpec {
        name: name.into(),
        nodes: vec![NodeSpec {
            name: "a".into(),
            data: "127.0.0.1:6379".into(),
            admin: "127.0.0.1:16379".into(),
            priority: 100,
            tls_data: String::new(),
        }],
        settings: Settings::default(),
        ..GroupSpec::default()
    })
}

/// Proposes through `via` until it commits (retrying while there is no leader). A proposal
/// that timed out may still have committed (a lossy network loses the reply, not the entry):
/// a retried `Monitor` then finds its group there, which is the commit it was waiting for.
pub async fn propose_retrying(c: &Cluster, via: u64, cmd: Command) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut timed_out = false;
    loop {
        match c
            .h(via)
            .propose(cmd.clone(), Duration::from_millis(500))
            .await
        {
            Ok(()) => return,
            Err(DriverError::Rejected(Rejected::AlreadyMonitored(_)))
                if timed_out && matches!(cmd, Command::Monitor(_)) =>
            {
                return;
            }
            Err(e @ (DriverError::NoLeader | DriverError::Timeout(_)))
                if Instant::now() < deadline =>
            {
                timed_out |= matches!(e, DriverError::Timeout(_));
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("proposal failed: {e}"),
        }
    }
}
