//! Slot migration, the target's half (the state here; the task in [`super::migrate`]): while
//! the view lists a migration to this node's shard and this node leads the shard (a master,
//! not fenced; a lapsed lease pauses the import rather than ending it), it reads the source master's export (NodeAdmin `ExportSlots`) and applies it to
//! database 0 as its own writes, so its replicas and its append log get them as they get any
//! other.
//!
//! The invariants:
//! - Every batch is applied under the store lock after checking, under that lock, that the
//!   import was not cancelled and that the node may write; so nothing of an import lands
//!   after it was cancelled (a newer attempt, a `DropSlots`), after the node was fenced, or
//!   outside its lease (the batch waits for a renewal).
//! - An import deletes what an earlier attempt left in its slots (which this shard does not
//!   own) only once the source has accepted the export, so has taken its snapshot: a source
//!   keeps the keys until after the commit and refuses exports from then on, so a node whose
//!   view lags the commit (restarted, a push late) cannot delete a copy the sentinels have
//!   just committed. And an attempt is not started twice on a node: one interrupted (the
//!   node was fenced or demoted) reports an error, and the sentinels
//!   retry under a new id.
//! - The applied byte count ([`Progress::offset`]) only grows, chunk by chunk, as the source
//!   counts its stream: the sentinels commit once it reaches the source's final count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::ctx::Prop;
use crate::db::Store;

/// Keys deleted per propagated `DEL`.
const DEL_BATCH: usize = 512;

/// How far an import got.
#[derive(Debug, Default)]
pub struct Progress {
    pub(super) generation: AtomicU64,
    pub(super) offset: AtomicU64,
    pub(super) snapshot_done: AtomicBool,
    pub(super) running: AtomicBool,
    pub(super) error: Mutex<String>,
}

/// An import in progress (see [`super::migrate`]).
pub(super) struct Import {
    pub(super) id: u64,
    pub(super) progress: Arc<Progress>,
    pub(super) cancel: CancellationToken,
    pub(super) ranges: Vec<(u16, u16)>,
}

/// The node's import slot: at most one import at a time.
#[derive(Default)]
pub struct Importer {
    pub(super) current: Mutex<Option<Import>>,
    /// The highest migration id an import was started for in the node's cluster: never
    /// started again.
    pub(super) started: AtomicU64,
}

impl Importer {
    /// The node joins another cluster, whose migration ids start over.
    pub(super) fn forget_started(&self) {
        self.started.store(0, Ordering::Release);
    }
}

/// What [`Importer::status`] reports of one migration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportStatus {
    /// The import of it is running.
    pub importing: bool,
    /// Its snapshot is applied.
    pub snapshot_done: bool,
    /// Stream bytes applied.
    pub offset: u64,
    /// Why it failed (empty: it did not).
    pub error: String,
    /// The export it reads (0: none yet).
    pub generation: u64,
}

impl Importer {
    /// Migration `id`'s import, if it is this node's.
    pub fn status(&self, id: u64) -> ImportStatus {
        match self.current.lock().as_ref() {
            Some(i) if i.id == id => ImportStatus {
                importing: i.progress.running.load(Ordering::Acquire),
                snapshot_done: i.progress.snapshot_done.load(Ordering::Acquire),
                offset: i.progress.offset.load(Ordering::Acquire),
                error: i.progress.error.lock().clone(),
                generation: i.progress.generation.load(Ordering::Acquire),
            },
            _ => ImportStatus::default(),
        }
    }

    /// Ends the import in progress with an error the sentinels read, which makes them start
    /// the migration over.
    pub fn fail(&self, why: &str) {
        if let Some(i) = self.current.lock().as_ref()
            && !i.cancel.is_cancelled()
        {
            i.cancel.cancel();
            *i.progress.error.lock() = why.to_string();
        }
    }

    /// Cancels an import that touches `ranges`. Call under the store lock: its next batch then
    /// sees the cancellation before it applies anything.
    pub(super) fn cancel_overlapping(&self, ranges: &[(u16, u16)]) {
        let mut cur = self.current.lock();
        let overlaps = cur.as_ref().is_some_and(|i| {
            i.ranges
                .iter()
                .any(|&(a, b)| ranges.iter().any(|&(c, d)| a <= d && c <= b))
        });
        if overlaps && let Some(i) = cur.take() {
            i.cancel.cancel();
        }
    }
}

/// Why slots were not dropped.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// Not in cluster mode.
    #[error("this node serves no cluster view")]
    NoView,
    /// The node's shard owns one of the slots.
    #[error("slot {0} belongs to this node's shard: its keys stay")]
    Owned(u16),
    /// The node may not write.
    #[error("this node is not its shard's writable master")]
    NotMaster,
    /// The node's view is older than the caller's decision.
    #[error("this node serves map epoch {have}, older than {want}: retry once it has the new view")]
    Stale {
        /// The served view's epoch.
        have: u64,
        /// The caller's.
        want: u64,
    },
}

/// Deletes the keys of `ranges` in database 0 (at most `limit`); returns the `DEL`s to
/// propagate.
pub(super) fn delete_keys(store: &mut Store, ranges: &[(u16, u16)], limit: usize) -> Vec<Prop> {
    let db = &mut store.dbs[0];
    db.keys.index_slots();
    let keys: Vec<Bytes> = ranges
        .iter()
        .flat_map(|&(a, b)| a..=b)
        .flat_map(|s| db.keys.in_slot(s).map(|(k, _)| k))
        .take(limit)
        .map(|k| Bytes::copy_from_slice(k))
        .collect();
    let mut props = Vec::new();
    for batch in keys.chunks(DEL_BATCH) {
        let mut del = Vec::with_capacity(batch.len() + 1);
        del.push(Bytes::from_static(b"DEL"));
        for k in batch {
            db.remove(k);
            db.touch(k);
            del.push(k.clone());
        }
        props.push((0, del));
    }
    store.dirty += keys.len() as u64;
    props
}
