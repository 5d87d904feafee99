//! The keyspace: databases of keys with typed values and absolute expiry times.
//!
//! Keys and values are owned boxed byte slices, copied out of the network buffer so a stored
//! value never pins a whole read buffer. Maps are `IndexMap`s: O(1) random access gives
//! RANDOMKEY, SPOP and active-expiry sampling, and a cursor that walks indices downwards gives
//! SCAN its guarantee (see [`scan_indices`]).

pub mod bits;
pub mod blob;
pub mod digest;
pub mod encoding;
pub mod functions;
pub mod geohash;
pub mod hash;
pub mod hll;
pub mod keyspace;
pub mod notify;
#[cfg(test)]
mod seeded;
pub mod set;
pub mod slots;
pub mod stream;
pub mod watch;
pub mod zset;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ahash::RandomState;
use indexmap::IndexMap;
use tokio::sync::Notify;

pub use hash::Hash;
pub use keyspace::{AccessPolicy, Keyspace};
pub use set::Set;
pub use stream::Stream;

use crate::tracking::Tracking;
pub use zset::ZSet;

/// A key or a string value.
pub type Key = Box<[u8]>;
/// A list value.
pub type List = VecDeque<Key>;

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(Key),
    /// A list.
    List(Box<List>),
    /// A hash.
    Hash(Hash),
    /// A set.
    Set(Set),
    /// A sorted set.
    ZSet(ZSet),
    /// A stream.
    Stream(Box<Stream>),
}

impl Value {
    /// The `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Whether an aggregate is empty (and its key must go).
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // Redis keeps empty streams (their last id and groups matter).
            Value::Stream(_) => false,
        }
    }
}

/// Boxes a slice as an owned key or value.
pub fn boxed(b: &[u8]) -> Key {
    Box::from(b)
}

/// One database.
#[derive(Debug, Default)]
pub struct Db {
    /// Keys and values, with when each was last used.
    pub keys: Keyspace,
    /// Absolute expiry times (unix milliseconds) of keys that have one.
    pub expires: IndexMap<Key, i64, RandomState>,
    /// The WATCHes of each watched key.
    pub watched: HashMap<Key, Vec<watch::Watcher>>,
    /// Clients blocked on a key (BLPOP and friends), in arrival order; woken when it is written.
    pub blocked: HashMap<Key, Vec<Arc<Notify>>>,
    /// String keys last written in place (APPEND, SETRANGE): Redis holds those `raw` whatever
    /// their length or content, until the value is replaced (see [`encoding`]).
    pub edited: std::collections::HashSet<Key, RandomState>,
    /// Client-side caching, shared by every database of the store: told of every modification.
    pub tracking: Arc<Tracking>,
}

impl Db {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the database is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The expiry of a key, if it has one.
    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        if self.expires.is_empty() {
            None
        } else {
            self.expires.get(key).copied()
        }
    }

    /// Whether the key exists but is past its expiry.
    pub fn is_expired(&self, key: &[u8], now: i64) -> bool {
        self.expire_of(key).is_some_and(|t| t <= now)
    }

    /// Inserts or replaces a value; `keep_ttl` keeps an existing expiry, otherwise it is cleared.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        self.keys.set(key, value);
        if !keep_ttl && !self.expires.is_empty() {
            self.expires.swap_remove(key);
        }
        if !self.edited.is_empty() {
            self.edited.remove(key);
        }
    }

    /// Records that the string at `key` was written in place (see `edited`).
    pub fn mark_edited(&mut self, key: &[u8]) {
        if !self.edited.contains(key) {
            self.edited.insert(boxed(key));
        }
    }

    /// Removes a key and its expiry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let v = self.keys.swap_remove(key)?;
        if !self.expires.is_empty() {
            self.expires.swap_remove(key);
        }
        if !self.edited.is_empty() {
            self.edited.remove(key);
        }
        Some(v)
    }

    /// Sets an absolute expiry on an existing key.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) {
        if let Some(v) = self.expires.get_mut(key) {
            *v = at_ms;
        } else {
            self.expires.insert(boxed(key), at_ms);
        }
    }

    /// Removes an expiry; returns whether there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        self.expires.swap_remove(key).is_some()
    }

    /// Removes everything; WATCHes of the keys that were here see the change.
    pub fn clear(&mut self) {
        for (k, ws) in &self.watched {
            let before = self.keys.contains_key(k);
            for w in ws {
                w.replaced(before, false, false);
            }
        }
        // A client blocked in XREADGROUP on a stream that goes is told so (`-UNBLOCKED`) when
        // it looks again, as Redis unblocks it on a flush.
        for (k, waiters) in &self.blocked {
            if matches!(self.keys.get(k), Some(Value::Stream(_))) {
                for w in waiters {
                    w.notify_one();
                }
            }
        }
        self.keys.clear();
        self.expires.clear();
        self.edited.clear();
        self.tracking.note_flush();
    }

    /// Records a modification of `key` for WATCH, client-side caching, and wakes clients
    /// blocked on it.
    pub fn touch(&mut self, key: &[u8]) {
        if self.tracking.in_use() {
            self.tracking.invalidate(key);
        }
        if !self.watched.is_empty()
            && let Some(ws) = self.watched.get(key)
        {
            let exists = self.keys.contains_key(key);
            for w in ws {
                w.touched(exists);
            }
        }
        if !self.blocked.is_empty()
            && let Some(waiters) = self.blocked.get(key)
        {
            // All are woken; each may take only what the waiters ahead of it leave (see
            // `waiters_ahead`), so service stays first-come, first-served.
            for w in waiters {
                w.notify_one();
            }
        }
    }

    /// How many clients blocked on `key` are ahead of `me` (all of them if `me` is not
    /// waiting on it): a blocking pop may take an element only if more are available.
    pub fn waiters_ahead(&self, key: &[u8], me: Option<&Arc<Notify>>) -> usize {
        let Some(waiters) = self.blocked.get(key) else {
            return 0;
        };
        me.and_then(|me| waiters.iter().position(|w| Arc::ptr_eq(w, me)))
            .unwrap_or(waiters.len())
    }

    /// Registers a WATCH of `key`, already logically expired or not.
    pub fn watch(&mut self, key: &[u8], expired: bool) -> watch::Watcher {
        let w = watch::WatchFlags::new(expired);
        self.watched.entry(boxed(key)).or_default().push(w.clone());
        w
    }

    /// Drops one WATCH of a key.
    pub fn unwatch(&mut self, key: &[u8], w: &watch::Watcher) {
        if let Some(ws) = self.watched.get_mut(key) {
            ws.retain(|x| !Arc::ptr_eq(x, w));
            if ws.is_empty() {
                self.watched.remove(key);
            }
        }
    }
}

/// One step of a SCAN-family iteration over `len` indexed elements.
///
/// The cursor counts down: `0` starts at the top (index `len - 1`) and a returned `0` ends the
/// scan. `IndexMap::swap_remove` only ever moves the *last* element, which a downward walk has
/// either already visited (so it may be returned twice) or which stays above the cursor's
/// unvisited range; insertions append at the top, already passed. So every element present for
/// the whole scan is returned at least once, as Redis promises.
pub fn scan_indices(len: usize, cursor: u64, count: usize) -> (u64, std::ops::Range<usize>) {
    let top = if cursor == 0 {
        len
    } else {
        (cursor as usize).min(len)
    };
    let bottom = top.saturating_sub(count.max(1));
    let next = if bottom == 0 { 0 } else { bottom as u64 };
    (next, bottom..top)
}

/// The whole dataset: all databases plus counters kept under the same lock.
#[derive(Debug)]
pub struct Store {
    /// The databases.
    pub dbs: Vec<Db>,
    /// Changes since the last successful snapshot (`rdb_changes_since_last_save`).
    pub dirty: u64,
    /// Keys removed by expiry.
    pub expired_keys: u64,
    /// Successful lookups.
    pub hits: u64,
    /// Failed lookups.
    pub misses: u64,
    /// Function libraries (`FUNCTION LOAD`), kept with the data they are part of.
    pub functions: functions::Libraries,
    /// The encoding thresholds (`hash-max-listpack-entries` and friends).
    pub thresholds: encoding::Thresholds,
    /// Size limits data commands obey (`CONFIG SET` changes them under the store lock).
    pub limits: DataLimits,
    /// Keyspace notifications: the enabled classes and the events not yet published.
    pub notify: notify::Notify,
}

/// Size limits that decide what data commands build, kept with the store so commands read
/// them under the lock they already hold.
#[derive(Debug, Clone, Copy)]
pub struct DataLimits {
    /// `proto-max-bulk-len`: bitmap offsets address bytes below it (512 MB by default).
    pub proto_max_bulk_len: u64,
    /// `hll-sparse-max-bytes`: a sparse HyperLogLog that would grow past it turns dense.
    pub hll_sparse_max_bytes: usize,
}

impl Default for DataLimits {
    fn default() -> Self {
        DataLimits {
            proto_max_bulk_len: 512 * 1024 * 1024,
            hll_sparse_max_bytes: hll::SPARSE_MAX_BYTES,
        }
    }
}

impl Store {
    /// An empty store of `n` databases.
    pub fn new(n: usize) -> Self {
        let tracking = Arc::new(Tracking::default());
        Store {
            dbs: (0..n)
                .map(|_| Db {
                    tracking: tracking.clone(),
                    ..Db::default()
                })
                .collect(),
            dirty: 0,
            expired_keys: 0,
            hits: 0,
            misses: 0,
            functions: functions::Libraries::default(),
            thresholds: encoding::Thresholds::default(),
            limits: DataLimits::default(),
            notify: notify::Notify::default(),
        }
    }

    /// Deletes a key whose expiry has passed; returns the `DEL` that replays it (expiry is
    /// propagated as a deletion, so replicas and the log never expire keys on their own clock).
    pub fn expire_key(&mut self, dbi: usize, key: &[u8]) -> Vec<bytes::Bytes> {
        let db = &mut self.dbs[dbi];
        db.remove(key);
        db.touch(key);
        self.expired_keys += 1;
        self.notify.event(notify::EXPIRED, "expired", dbi, key);
        vec![
            bytes::Bytes::from_static(b"DEL"),
            bytes::Bytes::copy_from_slice(key),
        ]
    }

    /// Follows `notify-keyspace-events`.
    pub fn configure_notify(&mut self, classes: &str) {
        self.notify.configure(classes);
        let track = self.notify.wants(notify::NEW);
        for db in &mut self.dbs {
            db.keys.track_created(track);
        }
    }

    /// Records a `new` event for each key created since the last call (Redis announces a
    /// key's creation before what the command did to it).
    pub fn note_created(&mut self) {
        if !self.notify.wants(notify::NEW) {
            return;
        }
        for (i, db) in self.dbs.iter_mut().enumerate() {
            for k in db.keys.take_created() {
                self.notify.event(notify::NEW, "new", i, &k);
            }
        }
    }

    /// Publishes the events of what ran (see [`notify`]).
    pub fn publish_events(&mut self, hub: &vigil_resp::pubsub::Hub) {
        self.note_created();
        self.notify.publish(hub);
    }

    /// Replaces the whole dataset with `new` (a full resync), keeping clients' WATCHes and
    /// blocked queues: every watched key counts as modified, so their transactions abort.
    pub fn replace_data(&mut self, mut new: Store) {
        for (old, fresh) in self.dbs.iter_mut().zip(new.dbs.iter_mut()) {
            fresh.watched = std::mem::take(&mut old.watched);
            for w in fresh.watched.values().flatten() {
                w.mark_dirty();
            }
            fresh.blocked = std::mem::take(&mut old.blocked);
            fresh.tracking = old.tracking.clone();
        }
        // Clients caching keys of the old dataset must drop them all, as after FLUSHALL.
        self.tracking().invalidate_all();
        let policy = self.access_policy();
        self.dbs = new.dbs;
        self.set_access_policy(policy);
        let track = self.notify.wants(notify::NEW);
        for db in &mut self.dbs {
            db.keys.track_created(track);
        }
        self.dirty += 1;
    }

    /// How key access is recorded (the `maxmemory-policy` family).
    pub fn access_policy(&self) -> AccessPolicy {
        self.dbs[0].keys.policy()
    }

    /// Follows `maxmemory-policy` and the LFU tuning in every database.
    pub fn set_access_policy(&mut self, policy: AccessPolicy) {
        for db in &mut self.dbs {
            db.keys.set_policy(policy);
        }
    }

    /// The client-side caching state.
    pub fn tracking(&self) -> &Arc<Tracking> {
        &self.dbs[0].tracking
    }

    /// Total keys over all databases.
    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_visits_every_survivor_despite_removals() {
        let mut m: IndexMap<u32, (), RandomState> = IndexMap::with_hasher(RandomState::new());
        for i in 0..1000 {
            m.insert(i, ());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            let (next, range) = scan_indices(m.len(), cursor, 10);
            for i in range {
                seen.insert(*m.get_index(i).unwrap().0);
            }
            // Remove some elements (multiples of 7 only) and add new ones between calls.
            let victim = step * 7;
            m.swap_remove(&victim);
            m.insert(10_000 + step, ());
            step += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000u32 {
            if i % 7 != 0 || i / 7 >= step {
                assert!(
                    seen.contains(&i),
                    "element {i} present throughout but never returned"
                );
            }
        }
    }
}
