//! Consumer groups: the last delivered id, the pending entries list (PEL) and consumers.

use std::collections::{BTreeMap, BTreeSet};

use super::StreamId;
use crate::db::Key;

/// A group's entries-read counter is unknown.
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

/// A consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Last id delivered to the group.
    pub last_id: StreamId,
    /// Logical count of entries read (`entries-read`), or [`ENTRIES_READ_UNKNOWN`].
    pub entries_read: i64,
    /// Delivered, unacknowledged entries.
    pub pel: BTreeMap<StreamId, Nack>,
    /// Consumers by name (ordered, as Redis lists them).
    pub consumers: BTreeMap<Key, Consumer>,
}

/// A pending entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    /// Last delivery (unix ms).
    pub delivery_time: i64,
    /// Deliveries so far.
    pub delivery_count: u64,
    /// The consumer owning it.
    pub consumer: Key,
}

/// A consumer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consumer {
    /// Last time it read or claimed (unix ms).
    pub seen_time: i64,
    /// Its pending entries.
    pub pel: BTreeSet<StreamId>,
}

impl Group {
    /// A new group delivering after `last_id`.
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Creates a consumer if missing; returns whether it was created.
    pub fn create_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            Key::from(name),
            Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Removes a pending entry from the group and its owner; returns whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(n) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&n.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Gives the pending entry `id` to `consumer` (creating the NACK if missing), moving it from
    /// its previous owner.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time: i64, count: Option<u64>) {
        let prev = self.pel.get(&id).map(|n| n.consumer.clone());
        if let Some(p) = prev.as_deref()
            && p != consumer
            && let Some(c) = self.consumers.get_mut(p)
        {
            c.pel.remove(&id);
        }
        let n = self.pel.entry(id).or_insert_with(|| Nack {
            delivery_time: time,
            delivery_count: 0,
            consumer: Key::from(consumer),
        });
        n.delivery_time = time;
        if let Some(c) = count {
            n.delivery_count = c;
        }
        if &*n.consumer != consumer {
            n.consumer = Key::from(consumer);
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }
}
