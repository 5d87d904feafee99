//! The node ([`Node`]): the shared state every connection, task and admin call works on —
//! config, store, persistence, replication stream, write gate, command table — and the
//! operations on it that need no command layer: propagating writes, snapshots, the lease
//! lapse check, shutdown. Also the command [`Handler`] kinds, which name the node.
//!
//! The invariant: writes reach the stream (and so the log and the replicas) in the order they
//! changed the store, because [`Node::propagate`] runs under the store lock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use vigil_resp::command::CommandTable;
use vigil_resp::conn::{Limits, Shared};
use vigil_resp::request::ParseLimits;
use vigil_resp::{Args, Conn, Flags};

use crate::config::NodeConfig;
use crate::ctx::{DataFn, Prop};
use crate::db::Store;
use crate::error::NodeError;
use crate::gate::Gate;
use crate::persist::Persistence;
use crate::repl::{Feed, Repl, feed};
use crate::session::ConnState;

/// A connection command from `vigil_resp::builtin`.
pub type ConnFn = fn(&mut Conn<ConnState>, Args);
/// A server command that needs the node (INFO, CONFIG, SAVE, MULTI...).
pub type NodeFn = fn(&Node, &mut Conn<ConnState>, Args);
/// A boxed future borrowing the node and the connection.
pub type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
/// A command that waits (PSYNC turns the connection into a replica link; WAIT).
pub type AsyncFn = for<'a> fn(&'a Node, &'a mut Conn<ConnState>, Args) -> BoxFut<'a>;

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Under the store lock.
    Data(DataFn),
    /// On the connection only.
    Conn(ConnFn),
    /// With access to the node.
    Node(NodeFn),
    /// With access to the node, and may wait.
    Async(AsyncFn),
}

/// Builds a table row; a trailing `keys = finder` names the key finder of a command whose key
/// positions depend on its arguments (and marks it `movablekeys`).
macro_rules! row {
    ($name:literal, $arity:expr, [$($flag:ident),*], $first:expr, $last:expr, $step:expr, $group:literal, $summary:literal, $kind:ident($f:expr)) => {
        $crate::node::row!(@build $name, $arity, [$($flag),*], $first, $last, $step, $group, $summary, $kind($f), None)
    };
    ($name:literal, $arity:expr, [$($flag:ident),*], $first:expr, $last:expr, $step:expr, $group:literal, $summary:literal, $kind:ident($f:expr), keys = $keys:expr) => {
        $crate::node::row!(@build $name, $arity, [$($flag),*], $first, $last, $step, $group, $summary, $kind($f), Some($keys))
    };
    (@build $name:literal, $arity:expr, [$($flag:ident),*], $first:expr, $last:expr, $step:expr, $group:literal, $summary:literal, $kind:ident($f:expr), $keys:expr) => {
        (
            vigil_resp::CommandMeta {
                name: $name,
                arity: $arity,
                flags: vigil_resp::Flags(0 $(| vigil_resp::Flags::$flag.0)*),
                first_key: $first,
                last_key: $last,
                step: $step,
                find_keys: $keys,
                group: $group,
                summary: $summary,
                index: vigil_resp::CommandMeta::UNLISTED,
            },
            $crate::node::Handler::$kind($f),
        )
    };
}
pub(crate) use row;

/// What start-up assembled a node from.
pub(crate) struct Parts {
    pub config: NodeConfig,
    pub config_file: Option<PathBuf>,
    pub store: Store,
    pub persist: Persistence,
    pub shared: Arc<Shared>,
    pub table: CommandTable<Handler>,
    pub started: Instant,
    pub feed: Feed,
    pub gate: Gate,
    pub cluster: Option<crate::cluster::View>,
}

/// A running storage node.
pub struct Node {
    /// Configuration (the mutable parts change through `CONFIG SET`).
    pub(crate) config: RwLock<NodeConfig>,
    /// The config file, if any.
    pub(crate) config_file: Option<PathBuf>,
    /// The dataset.
    pub(crate) store: Mutex<Store>,
    /// Client-side caching (the store's, reachable without its lock).
    pub(crate) tracking: Arc<crate::tracking::Tracking>,
    /// Clients in MONITOR mode.
    pub(crate) monitors: crate::monitor::Monitors,
    /// `CLIENT PAUSE`.
    pub(crate) pause: crate::pause::Pause,
    /// Append log and snapshots.
    pub(crate) persist: Arc<Persistence>,
    /// Connection-level shared state.
    pub(crate) shared: Arc<Shared>,
    /// The command table.
    pub(crate) table: CommandTable<Handler>,
    /// Process start (monotonic).
    pub(crate) started: Instant,
    /// Random id of this process run.
    pub(crate) run_id: String,
    /// Replication: the stream, replicas, the link to our master.
    pub(crate) repl: Repl,
    /// The write gate: role, epoch, fence, lease, and the checks every write passes.
    pub(crate) gate: Gate,
    /// Commands per second over the last second.
    pub(crate) ops_per_sec: AtomicU64,
    /// Client bytes read and written per second, sampled with `ops_per_sec`
    /// (`instantaneous_input_kbps`, `instantaneous_output_kbps`).
    pub(crate) input_per_sec: AtomicU64,
    pub(crate) output_per_sec: AtomicU64,
    /// Replication bytes read and sent per second, sampled likewise.
    pub(crate) repl_input_per_sec: AtomicU64,
    pub(crate) repl_output_per_sec: AtomicU64,
    /// The actual TCP port (after binding port 0).
    pub(crate) port: AtomicU64,
    /// The actual TLS port (0: none).
    pub(crate) tls_port: AtomicU64,
    /// TLS certificates (when a TLS port or TLS replication is configured).
    pub(crate) tls: parking_lot::Mutex<Option<Arc<vigil_resp::tls::ServerTls>>>,
    /// The node itself, for tasks it spawns.
    me: Weak<Node>,
    /// Lua scripts and functions: engines, the running script.
    pub(crate) scripts: crate::engines::Scripting,
    /// The span every log line of the node runs in: its port and current epoch.
    pub(crate) span: tracing::Span,
    /// Slow log and latency events.
    pub(crate) slowlog: crate::slowlog::Monitor,
    /// Per-command calls and latencies.
    pub(crate) cmdstats: crate::cmdstats::CmdStats,
    /// Whether the background task expires keys (`DEBUG SET-ACTIVE-EXPIRE`).
    pub(crate) active_expire: std::sync::atomic::AtomicBool,
    /// `maxmemory`: past it, commands that may grow the dataset get `-OOM`.
    pub(crate) maxmemory: crate::maxmemory::MaxMemory,
    /// MIGRATE's cached connections to targets.
    pub(crate) migrate: crate::migrate::Sockets,
    /// The cluster view served (`None`: not in cluster mode), see [`crate::cluster`].
    pub(crate) cluster: RwLock<Option<Arc<crate::cluster::View>>>,
    /// Woken when a new view is served: writes held for a migration look again.
    pub(crate) view_changed: tokio::sync::Notify,
    /// The served view holds writes to some slots (a migration's pause): checked, without the
    /// view's lock, before every write under the store lock.
    pub(crate) holding: std::sync::atomic::AtomicBool,
    /// Slot migration: the export this node streams as a source.
    pub(crate) export: crate::cluster::export::Exporter,
    /// Slot migration: the import this node runs as a target.
    pub(crate) import: crate::cluster::import::Importer,
    /// PUBLISH forwarded to the cluster's other nodes.
    pub(crate) bus: crate::cluster::bus::Bus,
    /// WATCHes of clients that disconnected while a script held the store: the background
    /// tick removes them once it ends, rather than a worker waiting for the lock.
    pub(crate) leftovers: Mutex<Vec<crate::session::Watched>>,
    /// The key count NodeAdmin's last status read, which a status during a script reports.
    pub(crate) status_keys: AtomicU64,
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
    /// Builds the node from what start-up recovered (`server::open`).
    pub(crate) fn assemble(p: Parts) -> Arc<Node> {
        let epoch = p.gate.epoch();
        let threshold = p.config.busy_reply_threshold.as_millis() as u64;
        let maxmemory = p.config.redis_int("maxmemory").max(0) as u64;
        let slowlog = crate::slowlog::Monitor::default();
        slowlog.configure_from(&p.config);
        let cmdstats = crate::cmdstats::CmdStats::new(p.table.iter().map(|(m, _)| m.name));
        let tracking = p.store.tracking().clone();
        Arc::new_cyclic(|me| Node {
            config: RwLock::new(p.config),
            config_file: p.config_file,
            tracking,
            monitors: Default::default(),
            pause: Default::default(),
            store: Mutex::new(p.store),
            persist: Arc::new(p.persist),
            shared: {
                let cluster = p.cluster.is_some();
                p.shared
                    .cluster_mode
                    .store(cluster, std::sync::atomic::Ordering::Relaxed);
                p.shared
            },
            table: p.table,
            started: p.started,
            run_id: feed::random_id(),
            repl: Repl::new(p.feed),
            gate: p.gate,
            ops_per_sec: AtomicU64::new(0),
            input_per_sec: AtomicU64::new(0),
            output_per_sec: AtomicU64::new(0),
            repl_input_per_sec: AtomicU64::new(0),
            repl_output_per_sec: AtomicU64::new(0),
            port: AtomicU64::new(0),
            tls_port: AtomicU64::new(0),
            tls: parking_lot::Mutex::new(None),
            scripts: crate::engines::Scripting::new(threshold),
            me: me.clone(),
            span: tracing::info_span!("node", port = tracing::field::Empty, epoch),
            slowlog,
            cmdstats,
            active_expire: std::sync::atomic::AtomicBool::new(true),
            maxmemory: crate::maxmemory::MaxMemory::new(maxmemory),
            migrate: Default::default(),
            holding: std::sync::atomic::AtomicBool::new(
                p.cluster.as_ref().is_some_and(|v| v.holds_any()),
            ),
            cluster: RwLock::new(p.cluster.map(Arc::new)),
            view_changed: Default::default(),
            export: Default::default(),
            import: Default::default(),
            bus: Default::default(),
            status_keys: AtomicU64::new(0),
            leftovers: Mutex::default(),
        })
    }

    /// Stops the node as SHUTDOWN does: [`crate::run`] returns once everything is durable.
    pub fn stop(&self) {
        self.shared.shutdown.cancel();
    }

    /// The node as an `Arc`, for tasks it spawns (`None` only while it is being dropped).
    pub fn arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    /// Milliseconds since the node started, on the monotonic clock: lags, leases, link ages.
    pub fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Notes whether the node serves as a leased master (after every lease change, and on the
    /// background tick, which sees a lease run out) and closes the normal clients once when it
    /// stops (see [`Gate::lapsed`]), as Redis Sentinel's `CLIENT KILL TYPE normal` does on
    /// a demoted master: Sentinel clients re-resolve the master only when their connection
    /// drops.
    /// Pub/sub clients stay: a lapse may be a brief gap between renewals, and a subscriber
    /// loses messages while it reconnects; the sentinels close them when they demote the node.
    /// In cluster mode nothing is closed: cluster clients retry `CLUSTERDOWN` and follow
    /// `MOVED` on the connections they have, as with Redis Cluster, and surface a dropped
    /// connection to the application as an error.
    pub fn check_lease(&self) {
        let cluster = self.shared.cluster_mode.load(Ordering::Acquire);
        if !self.gate.lapsed(Instant::now(), !cluster) {
            return;
        }
        if cluster {
            // Blocked clients (BLPOP...) look again and are told too, as Redis Cluster tells
            // them (they wait on view changes; no store lock taken here).
            self.view_changed.notify_waiters();
            tracing::warn!(
                "no valid master lease: commands on this shard's slots answer CLUSTERDOWN until it is renewed"
            );
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
        // A slot migration's source streams the writes to the slots it exports.
        self.export.feed(&self.table, props);
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
        if let Some(ms) = bytes.fork_ms() {
            self.slowlog.sample_if_needed("fork", ms);
        }
        let persist = self.persist.clone();
        std::thread::spawn(move || {
            let _ = persist.finish(generation, dirty, bytes);
        });
        true
    }

    /// Offers a command that ran to the slow log and the latency monitor; whether they kept
    /// it (and took a lock).
    pub(crate) fn record(&self, conn: &Conn<ConnState>, args: &[Bytes], micros: u64) -> bool {
        let fast = || {
            self.table
                .get(&args[0])
                .is_some_and(|(m, _)| m.flags.has(Flags::FAST))
        };
        let who = || {
            let name = conn.info.details.lock().name.clone().unwrap_or_default();
            (conn.info.addr.to_string(), name)
        };
        self.slowlog.record(args, micros, fast, who)
    }

    /// Counts a data command that ran for `micros` (per-command statistics) and offers it to
    /// the slow log and the latency monitor; whether they kept it (and took a lock).
    pub(crate) fn ran(
        &self,
        conn: &Conn<ConnState>,
        meta: &vigil_resp::CommandMeta,
        args: &[Bytes],
        micros: u64,
        error: Option<&str>,
    ) -> bool {
        if let Some((_, s)) = self.cmdstats.stat(meta, args.get(1).map(|a| &a[..])) {
            s.finished(micros, error.map(str::as_bytes));
        }
        self.slowlog.watching() && self.record(conn, args, micros)
    }

    /// The replication offset of this node's data.
    pub fn offset(&self) -> u64 {
        self.repl.feed.lock().offset
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
