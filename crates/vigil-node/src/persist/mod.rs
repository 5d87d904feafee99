//! Persistence: recovery at start-up, the append log, and compaction into snapshots.
//!
//! The data directory holds `dump.vsnap` (generation G) and `appendonly.<g>.aof` files. The
//! dataset is the snapshot plus, in order, every log of generation G or later. Compaction takes
//! a snapshot under the store lock and rotates the log to G+1 at that same instant; once the
//! snapshot is durable (temp, fsync, rename, fsync dir) the older logs are deleted. A crash at
//! any point leaves a directory that recovers to the same data.

pub mod aof;
mod codec;
pub mod rdb;
// The forked snapshot child, only where the allocator is fork-safe (see the module).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod fork;
pub mod replay;
pub mod snapshot;
mod stream_codec;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::db::Store;
use crate::db::encoding::Thresholds;
use crate::error::NodeError;
use crate::stream::Mark;
use aof::Aof;

/// The snapshot file name.
pub const SNAPSHOT_FILE: &str = "dump.vsnap";

/// What start-up found on disk.
pub struct Recovery {
    /// The dataset from the snapshot (empty without one).
    pub store: Store,
    /// The snapshot's generation (0 without one).
    pub generation: u64,
    /// When the snapshot was taken (unix seconds), if there is one.
    pub saved_at: Option<i64>,
    /// Size of the snapshot file (0 without one).
    pub snapshot_bytes: u64,
    /// Logs to replay, oldest first.
    pub logs: Vec<(u64, PathBuf)>,
    /// Replication id and offset of the snapshot's data (empty id: unknown).
    pub repl: (String, u64),
}

/// Locks the data directory and reads the snapshot; lists the logs to replay.
pub fn recover(
    dir: &Path,
    databases: usize,
    thresholds: &Thresholds,
) -> Result<(File, Recovery), NodeError> {
    std::fs::create_dir_all(dir).map_err(NodeError::io("cannot create data directory", dir))?;
    let lock_path = dir.join("vigil.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(NodeError::io("cannot open lock file", &lock_path))?;
    // SAFETY: flock on a valid, owned file descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(NodeError::DirLocked(dir.to_path_buf()));
    }
    Ok((lock, read_dir(dir, databases, thresholds)?))
}

/// Reads the snapshot of a directory this node holds and lists the logs to replay (at
/// start-up, and for `DEBUG LOADAOF`).
pub fn read_dir(
    dir: &Path,
    databases: usize,
    thresholds: &Thresholds,
) -> Result<Recovery, NodeError> {
    let snap_path = dir.join(SNAPSHOT_FILE);
    let mut snapshot_bytes = 0;
    let mut repl = (String::new(), 0);
    let (store, generation, saved_at) = if snap_path.exists() {
        let bytes =
            std::fs::read(&snap_path).map_err(NodeError::io("cannot read snapshot", &snap_path))?;
        snapshot_bytes = bytes.len() as u64;
        let (h, store) = snapshot::decode(&bytes, databases, thresholds).map_err(|reason| {
            NodeError::CorruptSnapshot {
                path: snap_path.clone(),
                reason,
            }
        })?;
        repl = (h.replid, h.offset);
        (store, h.generation, Some(h.created_ms / 1000))
    } else {
        let mut store = Store::new(databases);
        store.thresholds = thresholds.clone();
        (store, 0, None)
    };
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(NodeError::io("cannot list data directory", dir))? {
        let entry = entry.map_err(NodeError::io("cannot list data directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(g) = aof::log_generation(&name) {
            if g >= generation {
                logs.push((g, entry.path()));
            } else {
                // Covered by the snapshot: a compaction finished but crashed before cleanup.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    logs.sort();
    Ok(Recovery {
        store,
        generation,
        saved_at,
        snapshot_bytes,
        logs,
        repl,
    })
}

/// Persistence at run time.
pub struct Persistence {
    /// The data directory.
    pub dir: PathBuf,
    /// The append log, when `appendonly` is on.
    pub aof: Option<Aof>,
    generation: AtomicU64,
    compacting: AtomicBool,
    /// Unix time of the last successful snapshot.
    pub last_save: AtomicI64,
    /// Whether the last compaction succeeded.
    pub last_ok: AtomicBool,
    /// `Store::dirty` at the last successful snapshot.
    pub dirty_saved: AtomicU64,
    /// Size of the current snapshot: the log is compacted once replaying it would cost about as
    /// much as loading the snapshot (`auto_compact_percentage` of it).
    pub base_size: AtomicU64,
    /// Keys in the last snapshot loaded (at start or by a full resync): Redis'
    /// `rdb_last_load_keys_loaded`.
    pub loaded_keys: AtomicU64,
    /// Compactions (snapshot and log rotation) run, and what they took.
    pub runs: Mutex<Runs>,
    _lock: File,
}

/// The compactions' history, for `INFO persistence`.
#[derive(Debug, Default)]
pub struct Runs {
    /// When the running one began (monotonic).
    pub began: Option<Instant>,
    /// Whole seconds the last one took (`None`: none yet).
    pub last_secs: Option<u64>,
    /// Compactions finished since start (`rdb_saves`).
    pub saves: u64,
    /// Compactions begun since start (`aof_rewrites`, which Redis counts as it forks).
    pub begun: u64,
    /// Failures since the last success.
    pub failures_in_a_row: u64,
}

impl Persistence {
    /// Starts persistence after recovery; the log continues at `generation`.
    pub fn start(
        dir: &Path,
        lock: File,
        generation: u64,
        last_save: i64,
        snapshot_bytes: u64,
        settings: &crate::config::Persistence,
        marker: Vec<u8>,
    ) -> Result<Persistence, NodeError> {
        let aof = if settings.appendonly {
            Some(
                Aof::open(dir, generation, settings.appendfsync, marker)
                    .map_err(NodeError::io("cannot open append log in", dir))?,
            )
        } else {
            None
        };
        Ok(Persistence {
            dir: dir.to_path_buf(),
            aof,
            generation: AtomicU64::new(generation),
            compacting: AtomicBool::new(false),
            last_save: AtomicI64::new(last_save),
            last_ok: AtomicBool::new(true),
            dirty_saved: AtomicU64::new(0),
            base_size: AtomicU64::new(snapshot_bytes),
            loaded_keys: AtomicU64::new(0),
            runs: Mutex::new(Runs::default()),
            _lock: lock,
        })
    }

    /// Whether a background compaction is running.
    pub fn compacting(&self) -> bool {
        self.compacting.load(Ordering::Relaxed)
    }

    /// Claims the compaction slot; false if one is already running.
    pub fn try_begin(&self) -> bool {
        let claimed = !self.compacting.swap(true, Ordering::AcqRel);
        if claimed {
            self.runs.lock().began = Some(Instant::now());
        }
        claimed
    }

    /// `CONFIG RESETSTAT`: the counts Redis resets (not the failures in a row).
    pub fn reset_stats(&self) {
        let mut runs = self.runs.lock();
        runs.saves = 0;
        runs.begun = 0;
        drop(runs);
        if let Some(aof) = &self.aof {
            aof.reset_stats();
        }
    }

    /// Takes the snapshot (in place, or by a forked child with `fork`) and rotates the log at
    /// that instant; `pos` is the replication position of `store`. Call under the store lock
    /// (the stream lock too, so `pos` stays the position), after [`Persistence::try_begin`].
    pub fn cut(&self, store: &Store, pos: &Mark, fork: bool) -> (u64, u64, snapshot::Pending) {
        let generation = self.next_generation();
        self.runs.lock().begun += 1;
        let header = snapshot::Header {
            generation,
            created_ms: vigil_base::clock::unix_ms(),
            replid: pos.replid.clone(),
            offset: pos.offset,
        };
        let bytes = if fork {
            snapshot::Pending::start(store, &header)
        } else {
            snapshot::Pending::Ready(snapshot::encode(store, &header))
        };
        if let Some(aof) = &self.aof {
            aof.rotate(generation, pos.encode());
        }
        (generation, store.dirty, bytes)
    }

    /// Claims the next generation number.
    pub fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Makes the snapshot durable and deletes the logs it covers; releases the slot.
    /// Blocking (a forked child's bytes are awaited here).
    pub fn finish(
        &self,
        generation: u64,
        dirty_at_cut: u64,
        pending: snapshot::Pending,
    ) -> Result<(), NodeError> {
        let path = self.dir.join(SNAPSHOT_FILE);
        let result = pending
            .write_to(&path)
            .map_err(NodeError::io("cannot write snapshot", &path));
        {
            // A compaction's own numbers; a full resync's load writes a snapshot too, but is
            // no save.
            let mut runs = self.runs.lock();
            runs.last_secs = runs.began.map(|b| b.elapsed().as_secs());
            if result.is_ok() {
                runs.saves += 1;
                runs.failures_in_a_row = 0;
            } else {
                runs.failures_in_a_row += 1;
            }
        }
        match &result {
            Ok(size) => self.saved(generation, dirty_at_cut, *size),
            Err(e) => {
                self.last_ok.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "snapshot failed; the append logs are kept");
            }
        }
        self.release();
        result.map(|_| ())
    }

    /// Records a durable snapshot of `generation`: older logs go, the counters move.
    pub fn saved(&self, generation: u64, dirty_at_cut: u64, size: u64) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if aof::log_generation(&name).is_some_and(|g| g < generation) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.last_save
            .store(vigil_base::clock::unix_ms() / 1000, Ordering::Relaxed);
        self.dirty_saved.store(dirty_at_cut, Ordering::Relaxed);
        self.base_size.store(size, Ordering::Relaxed);
        self.last_ok.store(true, Ordering::Relaxed);
        tracing::info!(generation, bytes = size, "snapshot written");
    }

    /// Releases the compaction slot taken by [`Persistence::try_begin`].
    pub fn release(&self) {
        self.runs.lock().began = None;
        self.compacting.store(false, Ordering::Release);
    }
}
