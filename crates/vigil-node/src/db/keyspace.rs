//! The keys of one database with their values, and when each was last used: Redis' 24-bit
//! per-object `lru` field, which holds either an LRU clock (seconds; `OBJECT IDLETIME`) or,
//! under an LFU `maxmemory-policy`, the minute of the last decrement and a logarithmic access
//! counter (`OBJECT FREQ`).
//!
//! The stamps live in a vector parallel to the map's dense indices (4 bytes a key, where a
//! field beside each value would cost 8 with padding). Every structural change of the map goes
//! through [`Keyspace`] so the two stay aligned; reads reach the map through `Deref`.
//!
//! The clock is monotonic (seconds since the process started, coarse), never the wall clock:
//! an idle time must not jump when the system time is set.

use std::ops::Deref;
use std::sync::OnceLock;
use std::time::Instant;

use ahash::RandomState;
use indexmap::IndexMap;

use super::slots::SlotIndex;
use super::{Key, Value};

/// The LRU clock wraps at 24 bits, as Redis' does (`LRU_CLOCK_MAX`).
const LRU_MAX: u32 = (1 << 24) - 1;
/// The counter a new key starts with under LFU (`LFU_INIT_VAL`), so it is not evicted at once.
pub const LFU_INIT: u8 = 5;

/// How access is recorded: the `maxmemory-policy` family and the LFU tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessPolicy {
    /// An LFU policy is selected: stamps are counters, not clocks.
    pub lfu: bool,
    /// `lfu-log-factor`: how many hits it takes to raise the counter.
    pub log_factor: u32,
    /// `lfu-decay-time`: minutes per decrement of an idle key's counter (0: never).
    pub decay_minutes: u32,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            lfu: false,
            log_factor: 10,
            decay_minutes: 1,
        }
    }
}

/// Seconds on a monotonic clock (`CLOCK_MONOTONIC_COARSE`: a few nanoseconds a read, which
/// every key lookup pays).
fn clock_secs() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
        return ts.tv_sec as u64;
    }
    base.elapsed().as_secs()
}

/// The LRU clock now (`LRU_CLOCK()`).
fn lru_clock() -> u32 {
    (clock_secs() & u64::from(LRU_MAX)) as u32
}

/// Minutes now, 16 bits (`LFUGetTimeInMinutes()`).
fn lfu_minutes() -> u32 {
    ((clock_secs() / 60) & 0xffff) as u32
}

impl AccessPolicy {
    /// The stamp of a key created now.
    fn fresh(&self) -> u32 {
        if self.lfu {
            (lfu_minutes() << 8) | u32::from(LFU_INIT)
        } else {
            lru_clock()
        }
    }

    /// The counter of `stamp` after its idle periods are taken off (`LFUDecrAndReturn`).
    fn decayed(&self, stamp: u32) -> u8 {
        let counter = stamp & 0xff;
        if self.decay_minutes == 0 {
            return counter as u8;
        }
        let elapsed = lfu_minutes().wrapping_sub(stamp >> 8) & 0xffff;
        counter.saturating_sub(elapsed / self.decay_minutes) as u8
    }

    /// The stamp after one access.
    fn accessed(&self, stamp: u32) -> u32 {
        if !self.lfu {
            return lru_clock();
        }
        let mut counter = self.decayed(stamp);
        // A logarithmic counter: the higher it is, the less likely a hit raises it.
        if counter < 255 {
            let base = f64::from(counter.saturating_sub(LFU_INIT));
            let p = 1.0 / (base * f64::from(self.log_factor) + 1.0);
            if rand::random::<f64>() < p {
                counter += 1;
            }
        }
        (lfu_minutes() << 8) | u32::from(counter)
    }
}

/// The map of keys to values with an access stamp per key.
#[derive(Debug, Default)]
pub struct Keyspace {
    map: IndexMap<Key, Value, RandomState>,
    stamps: Vec<u32>,
    policy: AccessPolicy,
    /// Keys created since they were last taken, kept only while `n` notifications are on.
    created: Option<Vec<Key>>,
    /// Keys by hash slot, once a cluster node asked ([`Keyspace::index_slots`]).
    slots: Option<SlotIndex>,
}

impl Deref for Keyspace {
    type Target = IndexMap<Key, Value, RandomState>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Keyspace {
    /// The access policy stamps follow.
    pub fn policy(&self) -> AccessPolicy {
        self.policy
    }

    /// Follows a change of `maxmemory-policy` or the LFU tuning. Stamps are not converted:
    /// as in Redis, they take a while to mean the new thing.
    pub fn set_policy(&mut self, policy: AccessPolicy) {
        self.policy = policy;
    }

    /// A value to change in place (its access stamp is left alone).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.map.get_mut(key)
    }

    /// The value at index `i`, to change in place.
    pub fn get_index_mut(&mut self, i: usize) -> Option<(&Key, &mut Value)> {
        self.map.get_index_mut(i)
    }

    /// A value looked up by a command: its key counts as used.
    pub fn get_accessed(&mut self, key: &[u8]) -> Option<&mut Value> {
        let (i, _, v) = self.map.get_full_mut(key)?;
        self.stamps[i] = self.policy.accessed(self.stamps[i]);
        Some(v)
    }

    /// Marks `key` used (`TOUCH`); returns whether it exists.
    pub fn access(&mut self, key: &[u8]) -> bool {
        self.get_accessed(key).is_some()
    }

    /// Marks the key at index `i` used.
    pub fn access_index(&mut self, i: usize) {
        if let Some(s) = self.stamps.get_mut(i) {
            *s = self.policy.accessed(*s);
        }
    }

    /// Stores `value` at `key`, as a new object: a replaced value's stamp restarts, except its
    /// LFU counter, which Redis carries over (`dbSetValue`).
    pub fn set(&mut self, key: &[u8], value: Value) {
        match self.map.get_full_mut(key) {
            Some((i, _, v)) => {
                *v = value;
                if !self.policy.lfu {
                    self.stamps[i] = self.policy.fresh();
                }
            }
            None => {
                self.map.insert(super::boxed(key), value);
                self.stamps.push(self.policy.fresh());
                if let Some(ix) = &mut self.slots {
                    ix.inserted(key, self.stamps.len() - 1);
                }
                if let Some(c) = &mut self.created {
                    c.push(super::boxed(key));
                }
            }
        }
    }

    /// Inserts or replaces a value; returns its index and the value replaced. A replaced
    /// value's stamp restarts, except its LFU counter, which Redis carries over.
    pub fn insert_full(&mut self, key: Key, value: Value) -> (usize, Option<Value>) {
        let created = self.created.is_some() && !self.map.contains_key(&key);
        if created && let Some(c) = &mut self.created {
            c.push(key.clone());
        }
        let (i, old) = self.map.insert_full(key, value);
        if i == self.stamps.len() {
            self.stamps.push(self.policy.fresh());
            if let Some(ix) = &mut self.slots {
                ix.inserted(&self.map.get_index(i).expect("just inserted").0[..], i);
            }
        } else if !self.policy.lfu {
            self.stamps[i] = self.policy.fresh();
        }
        (i, old)
    }

    /// Inserts or replaces a value (see [`Keyspace::insert_full`]).
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        self.insert_full(key, value).1
    }

    /// Removes a key; the last key takes its index, as in `IndexMap::swap_remove`.
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<Value> {
        let (i, k, v) = self.map.swap_remove_full(key)?;
        self.stamps.swap_remove(i);
        if let Some(ix) = &mut self.slots {
            let moved = self.map.get_index(i).map(|(m, _)| (&m[..], self.map.len()));
            ix.removed(&k, i, moved);
        }
        Some(v)
    }

    /// Keeps the keys by hash slot from now on (built now if it is not kept yet): a cluster
    /// node's slot commands and migrations read them with [`Keyspace::in_slot`].
    pub fn index_slots(&mut self) {
        if self.slots.is_none() {
            self.slots = Some(SlotIndex::build(self.map.keys().map(|k| &k[..])));
        }
    }

    /// Whether the keys are kept by hash slot ([`Keyspace::index_slots`]).
    pub fn slots_indexed(&self) -> bool {
        self.slots.is_some()
    }

    /// The keys of `slot` with their values, the newest first as Redis lists a slot's keys
    /// (by map index: a removal moves the last key into the hole); none unless
    /// [`Keyspace::index_slots`] was called.
    pub fn in_slot(&self, slot: u16) -> impl Iterator<Item = (&Key, &Value)> + '_ {
        let mut at: Vec<usize> = self.slots.iter().flat_map(|ix| ix.in_slot(slot)).collect();
        at.sort_unstable_by(|a, b| b.cmp(a));
        at.into_iter().filter_map(|i| self.map.get_index(i))
    }

    /// How many keys `slot` holds (0 unless [`Keyspace::index_slots`] was called).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.slots.as_ref().map_or(0, |ix| ix.count(slot))
    }

    /// Starts (or stops) remembering the keys created, for `new` notifications.
    pub fn track_created(&mut self, on: bool) {
        if on != self.created.is_some() {
            self.created = on.then(Vec::new);
        }
    }

    /// Takes the keys created since the last call, in order.
    pub fn take_created(&mut self) -> Vec<Key> {
        match &mut self.created {
            Some(c) if !c.is_empty() => std::mem::take(c),
            _ => Vec::new(),
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.stamps.clear();
        if let Some(ix) = &mut self.slots {
            ix.clear();
        }
    }

    /// Seconds since `key` was last used (`OBJECT IDLETIME`), if it exists.
    pub fn idle_secs(&self, key: &[u8]) -> Option<u64> {
        let i = self.map.get_index_of(key)?;
        Some(u64::from(
            lru_clock().wrapping_sub(self.stamps[i]) & LRU_MAX,
        ))
    }

    /// The access counter of `key`, decayed to now (`OBJECT FREQ`), if it exists.
    pub fn freq(&self, key: &[u8]) -> Option<u8> {
        let i = self.map.get_index_of(key)?;
        Some(self.policy.decayed(self.stamps[i]))
    }

    /// The raw stamp of `key` (`DEBUG OBJECT`'s `lru`).
    pub fn stamp(&self, key: &[u8]) -> Option<u32> {
        self.map.get_index_of(key).map(|i| self.stamps[i])
    }

    /// Gives `key` a stamp taken from another key ([`Keyspace::stamp`]): a value moved by
    /// RENAME or MOVE keeps its access data, as Redis moves the object itself.
    pub fn set_stamp(&mut self, key: &[u8], stamp: u32) {
        if let Some(i) = self.map.get_index_of(key) {
            self.stamps[i] = stamp;
        }
    }

    /// Sets how long ago `key` was used, or its counter under LFU (RESTORE's IDLETIME and
    /// FREQ, an RDB file's access hints): only the one the policy tracks applies. Returns
    /// whether it did.
    pub fn set_hint(&mut self, key: &[u8], idle_secs: Option<u64>, freq: Option<u8>) -> bool {
        let Some(i) = self.map.get_index_of(key) else {
            return false;
        };
        match (self.policy.lfu, idle_secs, freq) {
            (true, _, Some(f)) => self.stamps[i] = (lfu_minutes() << 8) | u32::from(f),
            (false, Some(idle), _) => {
                let idle = (idle & u64::from(LRU_MAX)) as u32;
                self.stamps[i] = lru_clock().wrapping_sub(idle) & LRU_MAX;
            }
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::boxed;

    fn ks(lfu: bool) -> Keyspace {
        let mut k = Keyspace::default();
        k.set_policy(AccessPolicy {
            lfu,
            ..AccessPolicy::default()
        });
        k
    }

    #[test]
    fn stamps_follow_their_keys_through_swap_removal() {
        let mut k = ks(false);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            k.insert(boxed(name.as_bytes()), Value::Str(boxed(b"v")));
            k.set_hint(name.as_bytes(), Some(100 * (i as u64 + 1)), None);
        }
        // "d" moves into "a"'s slot and must keep its own idle time.
        k.swap_remove(b"a");
        assert_eq!(k.len(), 3);
        for (name, idle) in [("b", 200), ("c", 300), ("d", 400)] {
            let got = k.idle_secs(name.as_bytes()).unwrap();
            assert!((idle..idle + 2).contains(&got), "{name}: {got}");
        }
        assert!(k.idle_secs(b"a").is_none());
        k.clear();
        assert!(k.is_empty() && k.stamps.is_empty());
    }

    #[test]
    fn lru_overwrite_restarts_the_clock_and_lfu_keeps_the_counter() {
        let mut k = ks(false);
        k.insert(boxed(b"k"), Value::Str(boxed(b"v")));
        k.set_hint(b"k", Some(1000), None);
        k.insert(boxed(b"k"), Value::Str(boxed(b"w")));
        assert!(k.idle_secs(b"k").unwrap() < 2);

        let mut k = ks(true);
        k.insert(boxed(b"k"), Value::Str(boxed(b"v")));
        assert_eq!(k.freq(b"k"), Some(LFU_INIT));
        assert!(k.set_hint(b"k", None, Some(100)));
        assert!(!k.set_hint(b"k", Some(5), None), "LFU ignores an idle time");
        k.insert(boxed(b"k"), Value::Str(boxed(b"w")));
        assert_eq!(k.freq(b"k"), Some(100));
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_saturates() {
        let mut k = ks(true);
        k.insert(boxed(b"k"), Value::Str(boxed(b"v")));
        for _ in 0..1000 {
            k.access(b"k");
        }
        let after = k.freq(b"k").unwrap();
        // With log factor 10, 1000 hits raise a counter from 5 to about 18 (Redis' table); a
        // simulation of 20,000 runs stayed within 11..=30.
        assert!((9..=40).contains(&after), "{after}");
        k.set_hint(b"k", None, Some(255));
        k.access(b"k");
        assert_eq!(k.freq(b"k"), Some(255));
    }

    /// The slot index agrees with a scan of the keys through inserts, replacements, removals
    /// (the last key moving) and a clear, whether built before or after them.
    #[test]
    fn slot_index_follows_every_change() {
        let check = |k: &Keyspace| {
            for slot in (0..16384u16)
                .step_by(97)
                .chain([vigil_resp::slot::key_slot(b"k7")])
            {
                let mut want: Vec<&[u8]> = k
                    .keys()
                    .filter(|x| vigil_resp::slot::key_slot(x) == slot)
                    .map(|x| &x[..])
                    .collect();
                let mut got: Vec<&[u8]> = k.in_slot(slot).map(|(x, _)| &x[..]).collect();
                want.sort();
                got.sort();
                assert_eq!(got, want, "slot {slot}");
                assert_eq!(k.count_in_slot(slot), want.len());
            }
        };
        let mut k = ks(false);
        for i in 0..3000 {
            k.insert(boxed(format!("k{i}").as_bytes()), Value::Str(boxed(b"v")));
        }
        k.index_slots();
        check(&k);
        for i in (0..3000).step_by(7) {
            k.swap_remove(format!("k{i}").as_bytes());
        }
        for i in 3000..3500 {
            k.set(format!("k{i}").as_bytes(), Value::Str(boxed(b"v")));
            k.insert(
                boxed(format!("k{}", i - 3000).as_bytes()),
                Value::Str(boxed(b"w")),
            );
        }
        check(&k);
        k.clear();
        check(&k);
        k.set(b"k7", Value::Str(boxed(b"v")));
        check(&k);
    }
}
