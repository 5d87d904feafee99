//! The durable Raft log: entries, hard state, conf state and the latest snapshot, on disk in
//! two files per sentinel, implementing raft-rs' [`Storage`].
//!
//! - `raft.log` is a sequence of checksummed records, `len(u32) crc32(u32) type(u8) payload`:
//!   a batch of entries (an entry at an index the log already has replaces it and everything
//!   after it, as Raft truncates a conflicting suffix), a hard state, or a conf state. The last
//!   hard and conf state win. Records are buffered and written with one `fdatasync` per Ready
//!   ([`DiskStorage::sync`]): nothing that depends on them may leave before it returns.
//! - `raft.snap` holds the latest snapshot (metadata and the whole state machine), replaced
//!   atomically (temp file, fsync, rename, fsync the directory).
//!
//! Compaction writes the snapshot first, then rewrites the log without the entries it covers
//! (again temp, fsync, rename): a crash between the two leaves entries the snapshot already
//! covers, which opening skips. A torn tail (a crash mid-write) is truncated with a warning; a
//! damaged record with valid records after it is corruption, and opening refuses with the file
//! and byte offset rather than start from a silently different state.
//!
//! The record format and its reader are in `record`; this module is [`DiskStorage`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use thiserror::Error;

use record::{
    HEADER, Stop, T_CONF, T_ENTRIES, T_HARD, T_SNAP, decode_entries, entries_payload, put_record,
    read_records, record_at,
};

mod record;

/// The log file.
pub const LOG_FILE: &str = "raft.log";
/// The snapshot file.
pub const SNAP_FILE: &str = "raft.snap";

/// A storage error; each names the file and what to do.
#[derive(Debug, Error)]
pub enum StoreError {
    /// An I/O error on a named file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is damaged before its tail.
    #[error(
        "{path} is corrupt at byte {offset}: {reason}. Restore this sentinel's data directory from a backup, or remove it and add the sentinel back to the cluster as a new member"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` crash-safely: temp file, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    vigil_base::fs::write_durable(path, bytes).map_err(io("cannot replace durably", path))
}

struct Core {
    dir: PathBuf,
    file: File,
    /// Records not yet written.
    pending: Vec<u8>,
    hard: HardState,
    conf: ConfState,
    /// The latest snapshot (index 0: none).
    snap: Snapshot,
    /// Entries after the snapshot, contiguous.
    entries: Vec<Entry>,
    /// Bytes in the log file.
    log_len: u64,
    /// Raft asked for a snapshot newer than the one we have.
    snapshot_wanted: bool,
}

impl Core {
    fn first_index(&self) -> u64 {
        self.snap.get_metadata().index + 1
    }

    fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snap.get_metadata().index, |e| e.index)
    }

    /// Adds entries in memory, replacing any suffix they conflict with.
    fn put_entries(&mut self, ents: &[Entry]) -> Result<(), String> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        // Entries the snapshot covers are already applied.
        let skip = ents
            .iter()
            .take_while(|e| e.index < self.first_index())
            .count();
        let ents = &ents[skip..];
        let Some(first_new) = ents.first() else {
            return Ok(());
        };
        if first_new.index > self.last_index() + 1 {
            return Err(format!(
                "entries start at {} but the log ends at {} (first in batch {})",
                first_new.index,
                self.last_index(),
                first.index
            ));
        }
        let keep = (first_new.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Rewrites the log from memory (hard state, conf state, entries), crash-safely.
    fn rewrite_log(&mut self) -> Result<(), StoreError> {
        let mut out = Vec::new();
        put_record(
            &mut out,
            T_HARD,
            &self.hard.write_to_bytes().unwrap_or_default(),
        );
        put_record(
            &mut out,
            T_CONF,
            &self.conf.write_to_bytes().unwrap_or_default(),
        );
        if !self.entries.is_empty() {
            put_record(&mut out, T_ENTRIES, &entries_payload(&self.entries));
        }
        let path = self.log_path();
        write_atomic(&path, &out)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io("cannot open", &path))?;
        self.log_len = out.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// The durable Raft storage. Cheap to clone: the driver and `RawNode` share one.
#[derive(Clone)]
pub struct DiskStorage {
    core: Arc<RwLock<Core>>,
}

impl DiskStorage {
    /// Opens (creating if needed) the storage in `dir`, recovering what is on disk.
    pub fn open(dir: &Path) -> Result<DiskStorage, StoreError> {
        std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let snap_path = dir.join(SNAP_FILE);
        let mut snap = Snapshot::default();
        if snap_path.exists() {
            let b = std::fs::read(&snap_path).map_err(io("cannot read", &snap_path))?;
            let corrupt = |offset, reason| StoreError::Corrupt {
                path: snap_path.clone(),
                offset,
                reason,
            };
            // Written atomically: any damage at all is corruption.
            let (kind, payload, end) = record_at(&b, 0).map_err(|r| corrupt(0, r))?;
            if kind != T_SNAP || end != b.len() {
                return Err(corrupt(0, "not a single snapshot record".into()));
            }
            snap = Snapshot::parse_from_bytes(payload)
                .map_err(|e| corrupt(HEADER as u64, format!("bad snapshot: {e}")))?;
        }
        let log_path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&log_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("cannot read", &log_path)(e)),
        };
        let mut hard = HardState::default();
        let mut conf = snap.get_metadata().get_conf_state().clone();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("cannot open", &log_path))?;
        let mut core = Core {
            dir: dir.to_path_buf(),
            file,
            pending: Vec::new(),
            hard: HardState::default(),
            conf: ConfState::default(),
            snap,
            entries: Vec::new(),
            log_len: bytes.len() as u64,
            snapshot_wanted: false,
        };
        let (records, stop) = read_records(&bytes);
        let corrupt = |offset, reason| StoreError::Corrupt {
            path: log_path.clone(),
            offset,
            reason,
        };
        for (offset, kind, payload) in records {
            match kind {
                T_ENTRIES => {
                    let ents = decode_entries(payload).map_err(|r| corrupt(offset, r))?;
                    core.put_entries(&ents).map_err(|r| corrupt(offset, r))?;
                }
                T_HARD => {
                    hard = HardState::parse_from_bytes(payload)
                        .map_err(|e| corrupt(offset, format!("bad hard state: {e}")))?;
                }
                T_CONF => {
                    conf = ConfState::parse_from_bytes(payload)
                        .map_err(|e| corrupt(offset, format!("bad conf state: {e}")))?;
                }
                _ => return Err(corrupt(offset, "snapshot record inside the log".into())),
            }
        }
        match stop {
            Some(Stop::Corrupt(offset, reason)) => return Err(corrupt(offset, reason)),
            Some(Stop::Torn(offset)) => {
                tracing::warn!(file = %log_path.display(), valid_bytes = offset, "raft log has an incomplete tail (crash during a write); truncating it");
                core.file
                    .set_len(offset)
                    .and_then(|()| core.file.sync_all())
                    .map_err(io("cannot truncate", &log_path))?;
                core.log_len = offset;
            }
            None => {}
        }
        // What the snapshot covers is committed.
        let snap_index = core.snap.get_metadata().index;
        if hard.commit < snap_index {
            hard.commit = snap_index;
        }
        core.hard = hard;
        core.conf = conf;
        Ok(DiskStorage {
            core: Arc::new(RwLock::new(core)),
        })
    }

    /// Whether anything was ever stored (a sentinel that must not bootstrap again).
    pub fn is_initialized(&self) -> bool {
        let c = self.core.read();
        c.last_index() > 0 || !c.conf.get_voters().is_empty() || c.hard.term > 0
    }

    /// Queues entries (replacing any conflicting suffix). Durable after [`DiskStorage::sync`].
    pub fn append(&self, ents: &[Entry]) -> Result<(), StoreError> {
        if ents.is_empty() {
            return Ok(());
        }
        let mut c = self.core.write();
        let path = c.log_path();
        c.put_entries(ents).map_err(|reason| StoreError::Corrupt {
            path,
            offset: 0,
            reason: format!("raft appended out of order: {reason}"),
        })?;
        let payload = entries_payload(ents);
        put_record(&mut c.pending, T_ENTRIES, &payload);
        Ok(())
    }

    /// Queues a new hard state.
    pub fn set_hard_state(&self, hs: &HardState) {
        let mut c = self.core.write();
        c.hard = hs.clone();
        let b = hs.write_to_bytes().unwrap_or_default();
        put_record(&mut c.pending, T_HARD, &b);
    }

    /// Queues a new commit index (a light Ready's).
    pub fn set_commit(&self, commit: u64) {
        let mut hs = self.core.read().hard.clone();
        if hs.commit != commit {
            hs.commit = commit;
            self.set_hard_state(&hs);
        }
    }

    /// Queues a new conf state (a conf change was applied).
    pub fn set_conf_state(&self, cs: &ConfState) {
        let mut c = self.core.write();
        c.conf = cs.clone();
        let b = cs.write_to_bytes().unwrap_or_default();
        put_record(&mut c.pending, T_CONF, &b);
    }

    /// Writes everything queued and fsyncs it: one fsync per Ready.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut c = self.core.write();
        if c.pending.is_empty() {
            return Ok(());
        }
        let path = c.log_path();
        let pending = std::mem::take(&mut c.pending);
        c.file
            .write_all(&pending)
            .and_then(|()| c.file.sync_data())
            .map_err(io("cannot write", &path))?;
        c.log_len += pending.len() as u64;
        Ok(())
    }

    /// Installs a snapshot received from the leader: it replaces the log.
    pub fn apply_snapshot(&self, snap: Snapshot) -> Result<(), StoreError> {
        let mut c = self.core.write();
        let meta = snap.get_metadata().clone();
        if meta.index <= c.snap.get_metadata().index {
            return Ok(());
        }
        let mut rec = Vec::new();
        put_record(&mut rec, T_SNAP, &snap.write_to_bytes().unwrap_or_default());
        write_atomic(&c.dir.join(SNAP_FILE), &rec)?;
        c.snap = snap;
        c.entries.clear();
        c.hard.commit = c.hard.commit.max(meta.index);
        c.hard.term = c.hard.term.max(meta.term);
        c.conf = meta.get_conf_state().clone();
        c.rewrite_log()
    }

    /// Takes a snapshot of the state machine at `index` (applied, so committed and in the log)
    /// and drops the entries it covers.
    pub fn compact(&self, index: u64, conf: ConfState, data: Vec<u8>) -> Result<(), StoreError> {
        let mut c = self.core.write();
        if index <= c.snap.get_metadata().index {
            return Ok(());
        }
        let path = c.log_path();
        if index > c.last_index() || index > c.hard.commit {
            return Err(StoreError::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "compaction at {index} beyond the log ({}) or the commit index ({})",
                    c.last_index(),
                    c.hard.commit
                ),
            });
        }
        let term = c.entries[(index - c.first_index()) as usize].term;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let m = snap.mut_metadata();
        m.index = index;
        m.term = term;
        m.set_conf_state(conf);
        let mut rec = Vec::new();
        put_record(&mut rec, T_SNAP, &snap.write_to_bytes().unwrap_or_default());
        write_atomic(&c.dir.join(SNAP_FILE), &rec)?;
        let drop = (index + 1 - c.first_index()) as usize;
        c.entries.drain(..drop);
        c.snap = snap;
        c.snapshot_wanted = false;
        c.rewrite_log()
    }

    /// Whether raft asked for a newer snapshot than the one stored (the driver then compacts
    /// at its applied index); clears the request.
    pub fn take_snapshot_request(&self) -> bool {
        std::mem::take(&mut self.core.write().snapshot_wanted)
    }

    /// Size of the log file, for compaction decisions.
    pub fn log_bytes(&self) -> u64 {
        self.core.read().log_len
    }

    /// The latest snapshot (its index is 0 if there is none).
    pub fn latest_snapshot(&self) -> Snapshot {
        self.core.read().snap.clone()
    }

    /// Where the snapshot lives (for messages that name it).
    pub fn snapshot_path(&self) -> PathBuf {
        self.core.read().dir.join(SNAP_FILE)
    }

    /// Index of the latest snapshot (0: none).
    pub fn snapshot_index(&self) -> u64 {
        self.core.read().snap.get_metadata().index
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> HardState {
        self.core.read().hard.clone()
    }
}

fn store_err(e: StorageError) -> raft::Error {
    raft::Error::Store(e)
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.core.read();
        Ok(RaftState {
            hard_state: c.hard.clone(),
            conf_state: c.conf.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let c = self.core.read();
        if low < c.first_index() {
            return Err(store_err(StorageError::Compacted));
        }
        // The trait says this may panic; a sentinel must not.
        if high > c.last_index() + 1 || low > high {
            return Err(store_err(StorageError::Unavailable));
        }
        let lo = (low - c.first_index()) as usize;
        let hi = (high - c.first_index()) as usize;
        let mut ents = c.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let c = self.core.read();
        let meta = c.snap.get_metadata();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < c.first_index() {
            return Err(store_err(StorageError::Compacted));
        }
        if idx > c.last_index() {
            return Err(store_err(StorageError::Unavailable));
        }
        Ok(c.entries[(idx - c.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.core.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.core.read().last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let mut c = self.core.write();
        let cs = c.snap.get_metadata().get_conf_state();
        // A snapshot from before `to` joined would be refused by it ("not in the ConfState"):
        // ask the driver for a fresh one instead.
        let knows_to = cs
            .get_voters()
            .iter()
            .chain(cs.get_learners())
            .chain(cs.get_voters_outgoing())
            .chain(cs.get_learners_next())
            .any(|&id| id == to);
        if c.snap.get_metadata().index < request_index || !knows_to {
            c.snapshot_wanted = true;
            return Err(store_err(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(c.snap.clone())
    }
}

#[cfg(test)]
mod tests;
