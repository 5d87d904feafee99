//! WATCH: one client's watch of one key, shared by the database and the client, with Redis'
//! rules for keys that were already logically expired when watched (`watchedKey.expired`):
//! deleting such a key is no change, and neither is FLUSHDB or SWAPDB replacing one stale or
//! missing key with another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The state of one WATCH (read and written under the store lock; atomics only so the
/// dataset stays `Send`).
#[derive(Debug, Default)]
pub struct WatchFlags {
    /// The key changed: EXEC fails.
    dirty: AtomicBool,
    /// The key was already logically expired when watched (and not deleted since).
    expired: AtomicBool,
}

/// A WATCH, held by the database's list for the key and by the client.
pub type Watcher = Arc<WatchFlags>;

impl WatchFlags {
    /// A watch of a key that is (`expired`) or is not already logically expired.
    pub fn new(expired: bool) -> Watcher {
        Arc::new(WatchFlags {
            dirty: AtomicBool::new(false),
            expired: AtomicBool::new(expired),
        })
    }

    /// Whether EXEC must fail because the key changed.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Relaxed)
    }

    /// Whether the key was already expired when watched (so its expiry is no change).
    pub fn was_expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// Marks the key changed.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The key was written (`exists`: whether it exists afterwards). Deleting a key that was
    /// already expired when watched is no logical change: only the flag goes.
    pub fn touched(&self, exists: bool) {
        if self.was_expired() && !exists {
            self.expired.store(false, Ordering::Relaxed);
            return;
        }
        self.mark_dirty();
    }

    /// FLUSHDB / SWAPDB replaced the database the key was in: `before` whether it existed
    /// there, `after` whether it exists now and `after_expired` whether it is logically
    /// expired now (Redis' `touchAllWatchedKeysInDb`).
    pub fn replaced(&self, before: bool, after: bool, after_expired: bool) {
        if !before && !after {
            return;
        }
        if self.was_expired() {
            if !after {
                self.expired.store(false, Ordering::Relaxed);
                return;
            }
            if after_expired {
                return;
            }
        } else if !before && after_expired {
            self.expired.store(true, Ordering::Relaxed);
            return;
        }
        self.mark_dirty();
    }
}
