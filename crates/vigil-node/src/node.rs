//! The node: start-up (recovery and log replay), background tasks, snapshots, shutdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tracing::Instrument;
use vigil_resp::Args;
use vigil_resp::command::CommandTable;
use vigil_resp::conn::{Ident, Limits, Shared};
use vigil_resp::request::ParseLimits;

use crate::cmd::{self, Ctx, Handler, Prop};
use crate::config::NodeConfig;
use crate::db::Store;
use crate::error::NodeError;
use crate::persist::{self, Persistence, aof};

/// Version reported to clients in HELLO and INFO: the Redis version whose behaviour the node
/// follows, since client libraries gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";

/// Most log bytes queued ahead of the disk before writers wait for it.
pub const AOF_BACKLOG_LIMIT: u64 = 32 * 1024 * 1024;

/// Wall-clock unix milliseconds: used for key expiry (absolute times, as Redis stores them)
/// and for display; never for timeouts.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

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
    /// Replication id (replication arrives with the next issue).
    pub replid: String,
    /// Commands per second over the last second.
    pub ops_per_sec: AtomicU64,
    /// The actual TCP port (after binding port 0).
    pub port: AtomicU64,
}

fn random_hex40() -> String {
    (0..40)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

impl Node {
    /// Recovers the data directory and builds the node.
    pub fn open(config: NodeConfig, config_file: Option<PathBuf>) -> Result<Arc<Node>, NodeError> {
        let started = Instant::now();
        let table = cmd::table();
        let (lock, rec) = persist::recover(&config.dir, config.databases)?;
        let mut store = rec.store;
        let mut generation = rec.generation.max(1);
        for (g, path) in &rec.logs {
            replay_log(&table, &mut store, path)?;
            generation = generation.max(*g);
        }
        // Replay is history, not new changes.
        store.dirty = 0;
        let keys = store.total_keys();
        let persist = Persistence::start(
            &config.dir,
            lock,
            generation,
            rec.saved_at.unwrap_or(0),
            rec.snapshot_bytes,
            config.persistence.appendonly,
            config.persistence.appendfsync,
        )?;
        tracing::info!(keys, logs = rec.logs.len(), ms = started.elapsed().as_millis() as u64, dir = %config.dir.display(), "dataset loaded");
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
        Ok(Arc::new(Node {
            config: RwLock::new(config),
            config_file,
            store: Mutex::new(store),
            persist: Arc::new(persist),
            shared,
            table,
            started,
            run_id: random_hex40(),
            replid: random_hex40(),
            ops_per_sec: AtomicU64::new(0),
            port: AtomicU64::new(0),
        }))
    }

    /// Serves clients on `listener` until shutdown (SHUTDOWN or `shared.shutdown`), then makes
    /// everything durable.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        if let Ok(a) = listener.local_addr() {
            self.port.store(a.port() as u64, Ordering::Relaxed);
        }
        // Every log line of the node's own tasks names the node (group and epoch join it with
        // replication and the sentinels).
        let span = tracing::info_span!("node", port = self.port());
        let bg = tokio::spawn(background(self.clone()).instrument(span.clone()));
        vigil_resp::conn::serve(listener, self.clone(), self.shared.clone())
            .instrument(span)
            .await;
        bg.abort();
        self.close();
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

    /// Appends propagated commands to the log; returns the sequence number to wait for before
    /// acknowledging, when `appendfsync` is `always`. Call under the store lock.
    pub fn propagate(&self, props: &[Prop]) -> Option<u64> {
        if props.is_empty() {
            return None;
        }
        let aof = self.persist.aof.as_ref()?;
        let seq = aof.append(props);
        // Backpressure: when the disk falls behind, writers wait for it rather than letting
        // the queue grow without bound (Redis gets the same from its blocking write()).
        (aof.is_always() || seq.saturating_sub(aof.written()) > AOF_BACKLOG_LIMIT).then_some(seq)
    }

    /// `SAVE`: a snapshot in the foreground.
    pub fn save(&self) -> Result<(), NodeError> {
        if !self.persist.try_begin() {
            return Err(NodeError::SaveInProgress);
        }
        let (generation, dirty, bytes) = self.persist.cut(&self.store.lock());
        self.persist.finish(generation, dirty, &bytes)
    }

    /// `BGSAVE` / `BGREWRITEAOF`: a snapshot whose writing happens on another thread. The store
    /// is locked only while it is serialised.
    pub fn save_background(&self) -> bool {
        if !self.persist.try_begin() {
            return false;
        }
        let (generation, dirty, bytes) = self.persist.cut(&self.store.lock());
        let persist = self.persist.clone();
        std::thread::spawn(move || {
            let _ = persist.finish(generation, dirty, &bytes);
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

/// Replays one log file into the store; truncates a torn tail with a warning.
fn replay_log(
    table: &CommandTable<Handler>,
    store: &mut Store,
    path: &std::path::Path,
) -> Result<(), NodeError> {
    let read = aof::read_log(path).map_err(|(offset, reason)| NodeError::CorruptLog {
        path: path.to_path_buf(),
        offset,
        reason,
    })?;
    let mut valid_len = read.valid_len;
    let mut db = 0usize;
    // Commands between MULTI and EXEC, and where the MULTI starts.
    let mut tx: Option<(u64, Vec<Vec<Bytes>>)> = None;
    let mut scratch = Vec::new();
    let now = now_ms();
    for (offset, cmd) in read.commands {
        let name = &cmd[0];
        if name.eq_ignore_ascii_case(b"select") {
            db = cmd
                .get(1)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok())
                .filter(|d| *d < store.dbs.len())
                .ok_or_else(|| NodeError::CorruptLog {
                    path: path.to_path_buf(),
                    offset,
                    reason: "SELECT of a database that does not exist".into(),
                })?;
        } else if name.eq_ignore_ascii_case(b"multi") {
            tx = Some((offset, Vec::new()));
        } else if name.eq_ignore_ascii_case(b"exec") {
            for c in tx.take().map(|(_, cmds)| cmds).unwrap_or_default() {
                apply(table, store, db, c, now, &mut scratch, path, offset)?;
            }
        } else if let Some((_, cmds)) = &mut tx {
            cmds.push(cmd);
        } else {
            apply(table, store, db, cmd, now, &mut scratch, path, offset)?;
        }
    }
    let mut torn = read.torn;
    if let Some((multi_offset, _)) = tx {
        // A transaction without its EXEC was never acknowledged: drop it.
        valid_len = multi_offset;
        torn = true;
    }
    if torn {
        tracing::warn!(file = %path.display(), valid_bytes = valid_len, "append log has an incomplete tail (crash during a write); truncating it");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(NodeError::io("cannot open for truncation", path))?;
        f.set_len(valid_len)
            .map_err(NodeError::io("cannot truncate", path))?;
        f.sync_all().map_err(NodeError::io("cannot fsync", path))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply(
    table: &CommandTable<Handler>,
    store: &mut Store,
    db: usize,
    cmd: Vec<Bytes>,
    now: i64,
    scratch: &mut Vec<Prop>,
    path: &std::path::Path,
    offset: u64,
) -> Result<(), NodeError> {
    let corrupt = |reason: String| NodeError::CorruptLog {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let Some((meta, Handler::Data(f))) = table.get(&cmd[0]) else {
        return Err(corrupt(format!(
            "command '{}' cannot appear in a log",
            String::from_utf8_lossy(&cmd[0])
        )));
    };
    if !meta.arity_ok(cmd.len()) {
        return Err(corrupt(format!("wrong argument count for '{}'", meta.name)));
    }
    let mut ctx = Ctx::new(store, db, now, scratch);
    ctx.loading = true;
    let mut args = Args::new(cmd);
    // A command that failed when first run never reached the log; one failing now means the
    // log and the code disagree, which is worth a warning but not a refusal to start.
    if let Err(e) = f(&mut ctx, &mut args) {
        tracing::warn!(command = meta.name, error = %e, "log command failed on replay");
    }
    ctx.finish(&args);
    scratch.clear();
    Ok(())
}

/// Active expiry, auto-compaction and the ops/sec sampler.
async fn background(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ticks = 0u64;
    let mut last_cmds = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        active_expire(&node);
        if ticks.is_multiple_of(10) {
            let cmds = node.shared.stats.commands_processed.load(Ordering::Relaxed);
            node.ops_per_sec.store(cmds - last_cmds, Ordering::Relaxed);
            last_cmds = cmds;
            maybe_compact(&node);
        }
    }
}

/// Redis' active expiry: sample keys with a TTL, delete the expired ones, repeat while more
/// than a quarter of a sample was expired, within a time budget so clients are not starved.
fn active_expire(node: &Node) {
    let start = Instant::now();
    let mut store = node.store.lock();
    let now = now_ms();
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
