//! The node: start-up (recovery and log replay), background tasks, snapshots, shutdown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tracing::Instrument;
use vigil_base::REDIS_VERSION;
use vigil_base::clock::unix_ms;
use vigil_resp::command::CommandTable;
use vigil_resp::conn::{Ident, Limits, Shared};
use vigil_resp::request::ParseLimits;

use crate::cmd::{Handler, Prop};
use crate::config::{Mode, NodeConfig, parse_host_port};
use crate::db::Store;
use crate::error::NodeError;
use crate::gate::{self, Gate, Role};
use crate::persist::replay::{self, ReplPos};
use crate::persist::{self, Persistence};
use crate::repl::{Feed, Repl, feed};

/// A running storage node.
pub struct Node {
    /// Configuration (the mutable parts change through `CONFIG SET`).
    pub config: RwLock<NodeConfig>,
    /// The config file, if any.
    pub config_file: Option<PathBuf>,
    /// The dataset.
    pub store: Mutex<Store>,
    /// Append log and snapshots.
    pub persist: Arc<Persistence>,
    /// Connection-level shared state.
    pub shared: Arc<Shared>,
    /// The command table.
    pub table: CommandTable<Handler>,
    /// Process start (monotonic).
    pub started: Instant,
    /// Random id of this process run.
    pub run_id: String,
    /// Replication: the stream, replicas, the link to our master.
    pub repl: Repl,
    /// The write gate: role, epoch, fence, lease, and the checks every write passes.
    pub gate: Gate,
    /// Commands per second over the last second.
    pub ops_per_sec: AtomicU64,
    /// The actual TCP port (after binding port 0).
    pub port: AtomicU64,
    /// The node itself, for tasks it spawns.
    me: Weak<Node>,
    /// The span every log line of the node runs in: its port and current epoch.
    pub span: tracing::Span,
}

/// Result of propagating a write.
#[derive(Debug, Default, Clone, Copy)]
pub struct Propagated {
    /// Stream offset just after the write.
    pub offset: u64,
    /// Log sequence the reply must wait for: the write is in the file before the client
    /// hears of it (`None` without an append log).
    pub log_seq: Option<u64>,
}

impl Node {
    /// Recovers the data directory and builds the node.
    pub fn open(config: NodeConfig, config_file: Option<PathBuf>) -> Result<Arc<Node>, NodeError> {
        let started = Instant::now();
        let table = crate::cmd::table();
        let (lock, rec) = persist::recover(&config.dir, config.databases)?;
        let epoch = gate::load_epoch(&config.dir)?;
        let mut store = rec.store;
        let mut generation = rec.generation.max(1);
        let mut pos = ReplPos {
            replid: rec.repl.0,
            offset: rec.repl.1,
            data_offset: rec.repl.1,
            db: None,
        };
        let now = unix_ms();
        let mut scratch = Vec::new();
        for (g, path) in &rec.logs {
            replay::replay_log(
                path,
                &mut pos,
                (
                    config.limits.proto_max_bulk_len as usize,
                    config.limits.max_multibulk_len as usize,
                ),
                config.databases,
                |db, cmd| {
                    let r = crate::dispatch::apply_logged(
                        &table,
                        &mut store,
                        db,
                        cmd,
                        now,
                        &mut scratch,
                    );
                    scratch.clear();
                    r
                },
            )?;
            generation = generation.max(*g);
        }
        // Replay is history, not new changes.
        store.dirty = 0;
        let keys = store.total_keys();
        let replicaof = parse_host_port(&config.replication.replicaof)
            .map(|h| (h.host().to_string(), h.port()));
        let gate = Gate::new(
            config.mode == Mode::Managed,
            config.lease_reads,
            epoch,
            replicaof,
            (
                config.replication.min_replicas_to_write,
                config.replication.min_replicas_max_lag,
            ),
            config.replication.sync_replicas,
        );
        let known = !pos.replid.is_empty();
        let mut feed = Feed::new(
            if known { pos.replid } else { feed::random_id() },
            pos.offset,
            pos.db,
            config.replication.backlog_size as usize,
        );
        feed.data_offset = pos.data_offset.min(feed.offset);
        if gate.is_master() && known {
            // A restarted master may have lost the tail of its log (everysec): replicas that
            // got further must not continue this history, so it gets a new id; the old one
            // stays valid up to the recovered offset (PSYNC2).
            feed.shift_replid();
        }
        let persist = Persistence::start(
            &config.dir,
            lock,
            generation,
            rec.saved_at.unwrap_or(0),
            rec.snapshot_bytes,
            &config.persistence,
            feed.marker(),
        )?;
        tracing::info!(keys, logs = rec.logs.len(), ms = started.elapsed().as_millis() as u64, dir = %config.dir.display(), offset = feed.offset, epoch, "dataset loaded");
        let limits = limits_from(&config);
        let shared = Arc::new(Shared::new(
            Ident {
                server: "redis",
                version: REDIS_VERSION,
                mode: "standalone",
            },
            limits,
            config.password(),
            config.databases,
            config.limits.client_output_buffer_limit_pubsub as usize,
        ));
        // HELLO's `role`, in step with ROLE and INFO (an unassigned node reports master).
        *shared.role.write() = if matches!(gate.role(), Role::Replica { .. }) {
            "replica"
        } else {
            "master"
        };
        Ok(Arc::new_cyclic(|me| Node {
            config: RwLock::new(config),
            config_file,
            store: Mutex::new(store),
            persist: Arc::new(persist),
            shared,
            table,
            started,
            run_id: feed::random_id(),
            repl: Repl::new(feed),
            gate,
            ops_per_sec: AtomicU64::new(0),
            port: AtomicU64::new(0),
            me: me.clone(),
            span: tracing::info_span!("node", port = tracing::field::Empty, epoch),
        }))
    }

    /// The node as an `Arc`, for tasks it spawns (`None` only while it is being dropped).
    pub fn arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    /// Milliseconds since the node started, on the monotonic clock: lags, leases, link ages.
    pub fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Serves clients on `listener` until shutdown (SHUTDOWN or `shared.shutdown`), then makes
    /// everything durable.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        if let Ok(a) = listener.local_addr() {
            self.port.store(a.port() as u64, Ordering::Relaxed);
        }
        // Every log line of the node's tasks (connections, replication, admin) runs in this
        // span: it names the node by port and carries the current epoch.
        self.span.record("port", self.port());
        let span = self.span.clone();
        if let Role::Replica { host, port } = self.gate.role() {
            *self.repl.upstream.lock() = Some(crate::repl::replica::start(&self, host, port));
        }
        let bg = tokio::spawn(background(self.clone()).instrument(span.clone()));
        vigil_resp::conn::serve(listener, self.clone(), self.shared.clone())
            .instrument(span)
            .await;
        bg.abort();
        self.repl.upstream.lock().take();
        self.close();
    }

    /// Notes whether the node serves as a leased master (after every lease change, and on the
    /// background tick, which sees a lease run out) and closes the normal clients once when it
    /// stops (see [`Gate::lapsed`]), as Redis Sentinel's `CLIENT KILL TYPE normal` does on
    /// a demoted master: Sentinel clients re-resolve the master only when their connection
    /// drops.
    /// Pub/sub clients stay: a lapse may be a brief gap between renewals, and a subscriber
    /// loses messages while it reconnects; the sentinels close them when they demote the node.
    pub fn check_lease(&self) {
        if !self.gate.lapsed(Instant::now()) {
            return;
        }
        let closed = self.shared.clients.kill_where(|c| c.is_type("normal"));
        tracing::warn!(
            closed,
            "no valid master lease: reads and writes refused, normal clients closed so they ask the sentinels for the master"
        );
    }

    /// Flushes the log; without a log, writes a final snapshot if anything changed.
    pub fn close(&self) {
        if let Some(aof) = &self.persist.aof {
            aof.close();
        } else if self.changes_since_save() > 0
            && let Err(e) = self.save()
        {
            tracing::error!(error = %e, "final snapshot failed");
        }
        tracing::info!("node stopped");
    }

    /// Changes since the last snapshot.
    pub fn changes_since_save(&self) -> u64 {
        self.store
            .lock()
            .dirty
            .saturating_sub(self.persist.dirty_saved.load(Ordering::Relaxed))
    }

    /// Sends propagated commands down the replication stream (and so to the log and the
    /// replicas). Call under the store lock: the stream order is the order of the changes.
    pub fn propagate(&self, props: &[Prop]) -> Propagated {
        if props.is_empty() {
            return Propagated::default();
        }
        let mut feed = self.repl.feed.lock();
        let mut bytes = std::mem::take(&mut feed.scratch);
        bytes.clear();
        feed.encode(props, &mut bytes);
        feed.push(&bytes);
        let offset = feed.offset;
        // Every reply waits for its write to reach the file, which also holds the queue to what
        // the clients in flight wrote when the disk falls behind.
        let log_seq = self.persist.aof.as_ref().map(|aof| aof.append(&bytes));
        if bytes.capacity() <= 64 * 1024 {
            feed.scratch = bytes;
        }
        Propagated { offset, log_seq }
    }

    /// `SAVE`: a snapshot in the foreground.
    pub fn save(&self) -> Result<(), NodeError> {
        if !self.persist.try_begin() {
            return Err(NodeError::SaveInProgress);
        }
        let (generation, dirty, bytes) = {
            let store = self.store.lock();
            let feed = self.repl.feed.lock();
            self.persist.cut(&store, &feed.position(), false)
        };
        self.persist.finish(generation, dirty, bytes)
    }

    /// `BGSAVE` / `BGREWRITEAOF`: a snapshot encoded by a forked child and written on another
    /// thread. The store is locked only for the fork.
    pub fn save_background(&self) -> bool {
        if !self.persist.try_begin() {
            return false;
        }
        let (generation, dirty, bytes) = {
            let store = self.store.lock();
            let feed = self.repl.feed.lock();
            self.persist.cut(&store, &feed.position(), true)
        };
        let persist = self.persist.clone();
        std::thread::spawn(move || {
            let _ = persist.finish(generation, dirty, bytes);
        });
        true
    }

    /// The actual port.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed) as u16
    }
}

/// Limits from config.
pub fn limits_from(config: &NodeConfig) -> Limits {
    Limits {
        parse: ParseLimits {
            max_bulk_len: config.limits.proto_max_bulk_len as usize,
            max_multibulk_len: config.limits.max_multibulk_len as usize,
            max_inline_len: config.limits.max_inline_len as usize,
            max_query_buffer: config.limits.client_query_buffer_limit as usize,
        },
        maxclients: config.maxclients,
        idle_timeout: (!config.timeout.is_zero()).then_some(config.timeout),
    }
}

/// Active expiry, auto-compaction and the ops/sec sampler.
async fn background(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ticks = 0u64;
    let mut last_cmds = 0u64;
    let mut last_ping = Instant::now();
    loop {
        tick.tick().await;
        ticks += 1;
        node.check_lease();
        active_expire(&node);
        if last_ping.elapsed() >= node.config.read().replication.ping_period {
            last_ping = Instant::now();
            ping_replicas(&node);
        }
        if ticks.is_multiple_of(10) {
            let cmds = node.shared.stats.commands_processed.load(Ordering::Relaxed);
            node.ops_per_sec.store(cmds - last_cmds, Ordering::Relaxed);
            last_cmds = cmds;
            maybe_compact(&node);
        }
    }
}

/// A master sends PING down the stream so idle replicas know the link is alive.
///
/// Only while it may acknowledge writes: a PING is stream bytes, and a fenced master (or one
/// whose lease ran out) must not extend its history past the offset the sentinels took as
/// final, or every byte after it counts as divergent when it is demoted (Redis' own master
/// stops pinging its replicas while writes are paused, for FAILOVER, for the same reason).
/// Its replicas hear nothing meanwhile and, after `replication.timeout`, reconnect and
/// continue partially.
fn ping_replicas(node: &Node) {
    // Checked under the store lock, which a fence takes too: after the fence, no PING.
    let _store = node.store.lock();
    if !node.gate.may_write(Instant::now()) {
        return;
    }
    let mut feed = node.repl.feed.lock();
    if feed.links.is_empty() {
        return;
    }
    let mut bytes = Vec::new();
    crate::stream::encode_command(&mut bytes, &[Bytes::from_static(b"PING")]);
    feed.push_ping(&bytes);
    if let Some(aof) = &node.persist.aof {
        aof.append(&bytes);
    }
}

/// Redis' active expiry: sample keys with a TTL, delete the expired ones, repeat while more
/// than a quarter of a sample was expired, within a time budget so clients are not starved.
fn active_expire(node: &Node) {
    let start = Instant::now();
    let mut store = node.store.lock();
    // Only a node that takes writes expires keys: replicas (and fenced or unassigned nodes)
    // wait for the master's DEL, hiding expired keys meanwhile. Checked under the store lock,
    // as role changes and fences take it: a fenced master's history must not grow.
    if !node.gate.may_write(Instant::now()) {
        return;
    }
    let now = unix_ms();
    let mut props: Vec<Prop> = Vec::new();
    for dbi in 0..store.dbs.len() {
        loop {
            let db = &store.dbs[dbi];
            if db.expires.is_empty() {
                break;
            }
            let mut expired = Vec::new();
            let sample = 20.min(db.expires.len());
            for _ in 0..sample {
                let i = rand::random_range(0..db.expires.len());
                if let Some((k, at)) = db.expires.get_index(i)
                    && *at <= now
                {
                    expired.push(k.clone());
                }
            }
            expired.sort();
            expired.dedup();
            for k in &expired {
                let del = store.expire_key(dbi, k);
                props.push((dbi, del));
            }
            if expired.len() * 4 <= sample || start.elapsed() > Duration::from_millis(25) {
                break;
            }
        }
    }
    node.propagate(&props);
}

fn maybe_compact(node: &Node) {
    let (min, pct) = {
        let c = node.config.read();
        (
            c.persistence.auto_compact_min_size,
            c.persistence.auto_compact_percentage,
        )
    };
    let Some(aof) = &node.persist.aof else { return };
    if pct == 0 || node.persist.compacting() {
        return;
    }
    let size = aof.size();
    let base = node.persist.base_size.load(Ordering::Relaxed);
    if size >= min && size.saturating_mul(100) >= base.saturating_mul(pct) {
        tracing::info!(size, base, "append log grew past the threshold, compacting");
        node.save_background();
    }
}
