//! Keys by hash slot (Redis Cluster's `slots_to_keys`): for each of the 16,384 slots, the
//! indices in the keyspace's map of the keys in it. A cluster node needs it to copy, count and
//! drop one slot's keys without a scan of every key; a node outside a cluster never builds it
//! and pays nothing on writes.
//!
//! Indices, not keys: 4 bytes a key. The map moves only its last key when one is removed
//! (`swap_remove`), so one entry changes then; [`super::keyspace::Keyspace`] reports every
//! structural change here.

use std::collections::HashSet;

use ahash::RandomState;
use vigil_resp::slot::{SLOTS, key_slot};

/// The index: per slot, the map indices of its keys.
#[derive(Debug)]
pub struct SlotIndex {
    by_slot: Vec<HashSet<u32, RandomState>>,
}

impl SlotIndex {
    /// The index of `keys`, in map order.
    pub fn build<'a>(keys: impl Iterator<Item = &'a [u8]>) -> SlotIndex {
        let mut ix = SlotIndex {
            by_slot: (0..SLOTS).map(|_| HashSet::default()).collect(),
        };
        for (i, k) in keys.enumerate() {
            ix.inserted(k, i);
        }
        ix
    }

    /// `key` was added at index `i`.
    pub fn inserted(&mut self, key: &[u8], i: usize) {
        self.by_slot[key_slot(key) as usize].insert(i as u32);
    }

    /// `key` at index `i` was removed, and the map's last key (`moved`, from index `from`)
    /// took its place, unless it was the last.
    pub fn removed(&mut self, key: &[u8], i: usize, moved: Option<(&[u8], usize)>) {
        self.by_slot[key_slot(key) as usize].remove(&(i as u32));
        if let Some((m, from)) = moved {
            let set = &mut self.by_slot[key_slot(m) as usize];
            set.remove(&(from as u32));
            set.insert(i as u32);
        }
    }

    /// Every key was removed.
    pub fn clear(&mut self) {
        for s in &mut self.by_slot {
            *s = HashSet::default();
        }
    }

    /// The map indices of the keys in `slot`, in no order.
    pub fn in_slot(&self, slot: u16) -> impl Iterator<Item = usize> + '_ {
        self.by_slot[slot as usize].iter().map(|&i| i as usize)
    }

    /// How many keys `slot` holds.
    pub fn count(&self, slot: u16) -> usize {
        self.by_slot[slot as usize].len()
    }
}
