//! The stream value: entries in compact chunks, plus the consumer groups.
//!
//! Entries live in chunks ([`NodeLimits`]: `stream-node-max-bytes`, `stream-node-max-entries`),
//! keyed by the id of the first entry ever added to the chunk (its "master" id), as Redis keeps
//! listpacks in a radix tree.
//! A chunk is one flat byte buffer: the master field names, then each entry as a varint delta
//! of its id from the master id and its values (field names too only when they differ from the
//! master's). About 20 bytes of overhead-free data per small entry, not a `Vec` of boxed pairs.
//!
//! Chunk boundaries follow Redis' rules exactly (a new node when the emulated listpack size or
//! the live-plus-deleted count reaches the limit) because `MAXLEN ~`/`MINID ~` trimming removes
//! whole nodes only, and a reply byte for byte equal to Redis' needs the same nodes. Deleted
//! entries are removed from the buffer at once; only their count is kept, as Redis counts them.

mod chunk;
pub mod group;
mod id;

use std::collections::BTreeMap;

pub use chunk::Chunk;
pub use group::{Consumer, Group, Nack};
pub use id::StreamId;

use super::Key;

/// The largest node Redis lets a stream have whatever `stream-node-max-bytes` says.
const NODE_BYTES_CAP: u64 = 1 << 30;

/// When a node is full (`stream-node-max-bytes`, `stream-node-max-entries`), and how much an
/// approximate trim without `LIMIT` may remove, as Redis reads those settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    /// Bytes of the emulated listpack (0 or above 1 GB: 1 GB).
    pub bytes: u64,
    /// Live plus deleted entries (0: no limit).
    pub entries: u64,
}

impl Default for NodeLimits {
    /// Redis' defaults.
    fn default() -> Self {
        NodeLimits {
            bytes: 4096,
            entries: 100,
        }
    }
}

impl NodeLimits {
    /// Whether a node of `bytes` emulated bytes and `count` entries takes no entry of `more`
    /// bytes.
    fn full(&self, bytes: u64, count: u64, more: u64) -> bool {
        let max_bytes = if self.bytes == 0 || self.bytes > NODE_BYTES_CAP {
            NODE_BYTES_CAP
        } else {
            self.bytes
        };
        bytes.saturating_add(more) >= max_bytes || (self.entries > 0 && count >= self.entries)
    }

    /// The removals an approximate trim without `LIMIT` may make: a hundred nodes, between
    /// 10,000 (no entry limit) and 1,000,000.
    pub fn default_trim_limit(&self) -> u64 {
        match self.entries.saturating_mul(100) {
            0 => 10_000,
            n => n.min(1_000_000),
        }
    }
}
/// Largest total of field and value bytes in one entry (Redis refuses bigger ones).
pub const ENTRY_MAX_BYTES: u64 = (1 << 30) - 1;

/// An entry as read: id and field/value pairs borrowed from the chunk.
pub type Entry<'a> = (StreamId, Vec<(&'a [u8], &'a [u8])>);

/// How to trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries below this id.
    MinId(StreamId),
}

/// A stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    chunks: BTreeMap<StreamId, Chunk>,
    /// Live entries.
    pub length: u64,
    /// The last id ever generated (`last-generated-id`).
    pub last_id: StreamId,
    /// The first live id (0-0 when empty), `recorded-first-entry-id`.
    pub first_id: StreamId,
    /// The greatest id deleted by XDEL (`max-deleted-entry-id`).
    pub max_deleted: StreamId,
    /// Entries ever added (`entries-added`).
    pub entries_added: u64,
    /// Consumer groups by name (ordered, as Redis lists them).
    pub groups: BTreeMap<Key, Group>,
}

impl Stream {
    /// An empty stream.
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of nodes (`radix-tree-keys`).
    pub fn nodes(&self) -> usize {
        self.chunks.len()
    }

    /// The nodes, for the snapshot.
    pub fn chunks(&self) -> impl Iterator<Item = (&StreamId, &Chunk)> {
        self.chunks.iter()
    }

    /// Adds a node read from a snapshot (already validated).
    pub fn insert_chunk(&mut self, master: StreamId, c: Chunk) {
        self.chunks.insert(master, c);
    }

    /// The id `*` generates now, or `None` when the last possible id was used.
    pub fn next_id(&self, now_ms: i64) -> Option<StreamId> {
        let ms = now_ms.max(0) as u64;
        if ms > self.last_id.ms {
            Some(StreamId { ms, seq: 0 })
        } else {
            self.last_id.incr()
        }
    }

    /// Appends an entry, in a new node if the last is full by `limits`; the caller checked
    /// `id > last_id` and the pairs' size.
    pub fn append(&mut self, id: StreamId, pairs: &[impl AsRef<[u8]>], limits: NodeLimits) {
        let total: u64 = pairs.iter().map(|p| p.as_ref().len() as u64).sum();
        let tail_full = match self.chunks.last_key_value() {
            None => true,
            Some((_, c)) => {
                limits.full(c.lp_bytes, u64::from(c.live) + u64::from(c.deleted), total)
            }
        };
        if tail_full {
            // The node being left is final: give back its growth slack.
            if let Some(mut e) = self.chunks.last_entry() {
                e.get_mut().buf.shrink_to_fit();
            }
            self.chunks.insert(id, Chunk::new(pairs));
        }
        if let Some(mut e) = self.chunks.last_entry() {
            let master = *e.key();
            e.get_mut().push(master, id, pairs);
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// Entries from `start` to `end` inclusive (`rev`: from `end` down), at most `count`
    /// (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<Entry<'_>> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        // The node holding `start` begins at or before it.
        let from = self
            .chunks
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let want = if count == 0 { usize::MAX } else { count };
        let nodes = self.chunks.range(from..=end);
        if rev {
            for (m, c) in nodes.rev() {
                if c.last < start || out.len() >= want {
                    break;
                }
                c.collect(*m, start, end, true, want, &mut out);
            }
        } else {
            for (m, c) in nodes {
                if out.len() >= want {
                    break;
                }
                c.collect(*m, start, end, false, want, &mut out);
            }
        }
        out
    }

    /// One entry.
    pub fn get(&self, id: StreamId) -> Option<Entry<'_>> {
        self.range(id, id, false, 1).pop()
    }

    /// Whether a live entry has this id.
    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The first or last live id.
    pub fn edge(&self, last: bool) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX, last, 1)
            .pop()
            .map(|e| e.0)
    }

    /// Deletes one entry (XDEL); returns whether it existed. Does not touch `first_id` or
    /// `max_deleted` (XDEL updates them once for all its ids).
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, _)) = self.chunks.range(..=id).next_back() else {
            return false;
        };
        self.remove_in_node(master, |e| e == id, usize::MAX) == 1
    }

    /// Removes up to `max` entries of node `master` matching `pred`, in id order;
    /// returns how many. Frees the node when it empties.
    fn remove_in_node(
        &mut self,
        master: StreamId,
        mut pred: impl FnMut(StreamId) -> bool,
        max: usize,
    ) -> usize {
        let Some(c) = self.chunks.get_mut(&master) else {
            return 0;
        };
        let Some(es) = c.ids(master) else {
            return 0;
        };
        let mut cut: Vec<std::ops::Range<usize>> = Vec::new();
        for (id, r) in es {
            if cut.len() >= max {
                break;
            }
            if pred(id) {
                cut.push(r);
            }
        }
        let n = cut.len();
        if n == 0 {
            return 0;
        }
        let mut buf = Vec::with_capacity(c.buf.len());
        let mut at = 0;
        for r in &cut {
            buf.extend_from_slice(&c.buf[at..r.start]);
            at = r.end;
        }
        buf.extend_from_slice(&c.buf[at..]);
        c.buf = buf;
        c.live -= n as u32;
        c.deleted = c.deleted.saturating_add(n as u32);
        if c.live == 0 {
            self.chunks.remove(&master);
        }
        self.length -= n as u64;
        n
    }

    /// Trims as XADD/XTRIM do; `limit` bounds removals (0: none). Returns entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        loop {
            if let Trim::MaxLen(max) = how
                && self.length <= max
            {
                break;
            }
            let Some((&master, c)) = self.chunks.first_key_value() else {
                break;
            };
            let live = u64::from(c.live);
            if limit > 0 && removed + live > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(max) => self.length - live >= max,
                Trim::MinId(min) => c.last < min,
            };
            if whole {
                self.chunks.remove(&master);
                self.length -= live;
                removed += live;
                continue;
            }
            if approx {
                break;
            }
            let n = match how {
                Trim::MaxLen(max) => {
                    let excess = (self.length - max) as usize;
                    self.remove_in_node(master, |_| true, excess)
                }
                Trim::MinId(min) => self.remove_in_node(master, |id| id < min, usize::MAX),
            };
            removed += n as u64;
            break;
        }
        if removed > 0 {
            self.first_id = self.edge(false).unwrap_or(StreamId::MIN);
        }
        removed
    }

    /// The counter of `id` among all entries ever added, when it can be known (Redis'
    /// `streamEstimateDistanceFromFirstEverEntry`); `None` when it cannot.
    pub fn estimate_distance(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted == StreamId::MIN || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.length),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.length + 1),
                _ => {}
            }
        }
        None
    }

    /// Whether a deleted entry may lie in `start..` (Redis' `streamRangeHasTombstones`).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// A group's lag, `None` when unknown.
    pub fn lag(&self, g: &Group) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read >= 0 && !self.has_tombstones_from(g.last_id) {
            return Some(self.entries_added.saturating_sub(g.entries_read as u64));
        }
        self.estimate_distance(g.last_id)
            .map(|r| self.entries_added.saturating_sub(r))
    }

    /// Whether the stream holds no entries and no groups (it is still kept: Redis never deletes
    /// an empty stream).
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

#[cfg(test)]
mod tests;
