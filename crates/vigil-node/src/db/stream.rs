//! The stream value: entries in compact chunks, plus the consumer groups.
//!
//! Entries live in chunks of up to [`NODE_MAX_ENTRIES`] entries, keyed by the id of the first
//! entry ever added to the chunk (its "master" id), as Redis keeps listpacks in a radix tree.
//! A chunk is one flat byte buffer: the master field names, then each entry as a varint delta
//! of its id from the master id and its values (field names too only when they differ from the
//! master's). About 20 bytes of overhead-free data per small entry, not a `Vec` of boxed pairs.
//!
//! Chunk boundaries follow Redis' rules exactly (a new node when the emulated listpack size or
//! the live-plus-deleted count reaches the limit) because `MAXLEN ~`/`MINID ~` trimming removes
//! whole nodes only, and a reply byte for byte equal to Redis' needs the same nodes. Deleted
//! entries are removed from the buffer at once; only their count is kept, as Redis counts them.

pub mod group;
mod id;

use std::collections::BTreeMap;

pub use group::{Consumer, Group, Nack};
pub use id::StreamId;

use super::Key;

/// Redis' `stream-node-max-entries` default.
pub const NODE_MAX_ENTRIES: u32 = 100;
/// Redis' `stream-node-max-bytes` default.
pub const NODE_MAX_BYTES: u64 = 4096;
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

/// One node: a flat buffer of entries sharing a master id and master field names.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    buf: Vec<u8>,
    /// Live entries.
    live: u32,
    /// Entries deleted from this node (they still count toward its fill, as in Redis).
    deleted: u32,
    /// Emulated size of Redis' listpack for this node.
    lp_bytes: u64,
    /// The last id ever added to this node.
    last: StreamId,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over a chunk buffer: malformed bytes give `None`, never a panic.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// Size of one listpack element holding `b` (integers are stored as integers, as listpack does).
fn lp_elem(b: &[u8]) -> u64 {
    let enc = match vigil_resp::args::parse_int(b) {
        Ok(v) if b.len() <= 20 && int_canonical(b, v) => lp_int_enc(v),
        _ => {
            let n = b.len() as u64;
            if n < 64 {
                1 + n
            } else if n < 4096 {
                2 + n
            } else {
                5 + n
            }
        }
    };
    enc + lp_backlen(enc)
}

fn int_canonical(b: &[u8], v: i64) -> bool {
    itoa::Buffer::new().format(v).as_bytes() == b
}

fn lp_int_enc(v: i64) -> u64 {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    }
}

fn lp_int(v: i64) -> u64 {
    let e = lp_int_enc(v);
    e + lp_backlen(e)
}

fn lp_backlen(l: u64) -> u64 {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

impl Chunk {
    fn new(pairs: &[impl AsRef<[u8]>]) -> Chunk {
        let n = pairs.len() / 2;
        let mut buf = Vec::new();
        put_varint(&mut buf, n as u64);
        let mut lp = 6 + 1 + lp_int(1) + lp_int(0) + lp_int(n as i64) + lp_int(0);
        for f in pairs.iter().step_by(2) {
            put_varint(&mut buf, f.as_ref().len() as u64);
            buf.extend_from_slice(f.as_ref());
            lp += lp_elem(f.as_ref());
        }
        Chunk {
            buf,
            live: 0,
            deleted: 0,
            lp_bytes: lp,
            last: StreamId::MIN,
        }
    }

    /// The master field names and where entries start.
    fn master(&self) -> Option<(Vec<&[u8]>, usize)> {
        let mut c = Cur {
            b: &self.buf,
            pos: 0,
        };
        let n = c.varint()?;
        let mut fields = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            fields.push(c.bytes()?);
        }
        Some((fields, c.pos))
    }

    fn same_fields(&self, pairs: &[impl AsRef<[u8]>]) -> bool {
        let Some((master, _)) = self.master() else {
            return false;
        };
        master.len() * 2 == pairs.len()
            && master
                .iter()
                .zip(pairs.iter().step_by(2))
                .all(|(m, f)| *m == f.as_ref())
    }

    fn push(&mut self, master_id: StreamId, id: StreamId, pairs: &[impl AsRef<[u8]>]) {
        let same = self.same_fields(pairs);
        let n = pairs.len() / 2;
        let ms_diff = id.ms.wrapping_sub(master_id.ms);
        let seq_diff = id.seq.wrapping_sub(master_id.seq);
        put_varint(&mut self.buf, ms_diff);
        put_varint(&mut self.buf, seq_diff);
        put_varint(&mut self.buf, if same { 0 } else { n as u64 });
        let mut lp =
            lp_int(if same { 2 } else { 0 }) + lp_int(ms_diff as i64) + lp_int(seq_diff as i64);
        if !same {
            lp += lp_int(n as i64);
        }
        for (i, p) in pairs.iter().enumerate() {
            if same && i % 2 == 0 {
                continue;
            }
            put_varint(&mut self.buf, p.as_ref().len() as u64);
            self.buf.extend_from_slice(p.as_ref());
            lp += lp_elem(p.as_ref());
        }
        let lp_count = 3 + n as i64 + if same { 0 } else { n as i64 + 1 };
        lp += lp_int(lp_count);
        self.lp_bytes = self.lp_bytes.saturating_add(lp);
        self.live += 1;
        self.last = id;
    }

    /// Every live entry's id and byte range in `buf` (values skipped, not collected); `None`
    /// if the buffer is malformed.
    fn ids(&self, master_id: StreamId) -> Option<Vec<(StreamId, std::ops::Range<usize>)>> {
        let mut c = Cur {
            b: &self.buf,
            pos: 0,
        };
        let nmaster = c.varint()?;
        for _ in 0..nmaster {
            c.bytes()?;
        }
        // `live` may come from a file: bounded by the buffer, never trusted for an allocation.
        let mut out = Vec::with_capacity((self.live as usize).min(self.buf.len()));
        while !c.done() {
            let at = c.pos;
            let ms = master_id.ms.wrapping_add(c.varint()?);
            let seq = master_id.seq.wrapping_add(c.varint()?);
            let tag = c.varint()?;
            let items = if tag == 0 {
                nmaster
            } else {
                tag.checked_mul(2)?
            };
            for _ in 0..items {
                c.bytes()?;
            }
            out.push((StreamId { ms, seq }, at..c.pos));
        }
        Some(out)
    }

    /// The field/value pairs of the entry at `r` (a range from [`Chunk::ids`]).
    fn pairs_at<'a>(
        &'a self,
        master: &[&'a [u8]],
        r: std::ops::Range<usize>,
    ) -> Option<Vec<(&'a [u8], &'a [u8])>> {
        let mut c = Cur {
            b: self.buf.get(..r.end)?,
            pos: r.start,
        };
        c.varint()?;
        c.varint()?;
        let tag = c.varint()?;
        let mut pairs = Vec::new();
        if tag == 0 {
            for f in master {
                pairs.push((*f, c.bytes()?));
            }
        } else {
            for _ in 0..tag {
                let f = c.bytes()?;
                pairs.push((f, c.bytes()?));
            }
        }
        Some(pairs)
    }

    /// Entries of this node within `start..=end`, in order (`rev`: newest first), at most
    /// `want` of them.
    fn collect<'a>(
        &'a self,
        master_id: StreamId,
        start: StreamId,
        end: StreamId,
        rev: bool,
        want: usize,
        out: &mut Vec<Entry<'a>>,
    ) {
        let (Some(ids), Some((master, _))) = (self.ids(master_id), self.master()) else {
            return;
        };
        let take = |id: StreamId, r: std::ops::Range<usize>, out: &mut Vec<Entry<'a>>| {
            if let Some(p) = self.pairs_at(&master, r) {
                out.push((id, p));
            }
        };
        let inside = ids.into_iter().filter(|(id, _)| *id >= start && *id <= end);
        if rev {
            for (id, r) in inside.rev() {
                if out.len() >= want {
                    return;
                }
                take(id, r, out);
            }
        } else {
            for (id, r) in inside {
                if out.len() >= want {
                    return;
                }
                take(id, r, out);
            }
        }
    }

    /// Checks a chunk read from a file: every entry decodes, ids increase within the node's
    /// bounds and the live count matches.
    pub fn validate(&self, master_id: StreamId) -> Result<(), String> {
        let entries = self.ids(master_id).ok_or("malformed stream node buffer")?;
        if self.master().is_none() {
            return Err("malformed stream node buffer".into());
        }
        if entries.len() != self.live as usize || self.live == 0 {
            return Err("stream node entry count mismatch".into());
        }
        let mut prev = None;
        for (id, _) in &entries {
            if *id < master_id || *id > self.last || prev.is_some_and(|p| p >= *id) {
                return Err("stream node ids out of order".into());
            }
            prev = Some(*id);
        }
        Ok(())
    }

    /// The raw parts, for the snapshot: buffer, live, deleted, emulated size, last id.
    pub fn parts(&self) -> (&[u8], u32, u32, u64, StreamId) {
        (&self.buf, self.live, self.deleted, self.lp_bytes, self.last)
    }

    /// Rebuilds a chunk from its parts (validate it before use).
    pub fn from_parts(buf: Vec<u8>, live: u32, deleted: u32, lp: u64, last: StreamId) -> Chunk {
        Chunk {
            buf,
            live,
            deleted,
            lp_bytes: lp,
            last,
        }
    }
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

    /// Appends an entry; the caller checked `id > last_id` and the pairs' size.
    pub fn append(&mut self, id: StreamId, pairs: &[impl AsRef<[u8]>]) {
        let total: u64 = pairs.iter().map(|p| p.as_ref().len() as u64).sum();
        let tail_full = match self.chunks.last_key_value() {
            None => true,
            Some((_, c)) => {
                c.lp_bytes.saturating_add(total) >= NODE_MAX_BYTES
                    || c.live.saturating_add(c.deleted) >= NODE_MAX_ENTRIES
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
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn fill(n: u64) -> Stream {
        let mut s = Stream::new();
        for i in 1..=n {
            s.append(id(i, 0), &[b"f".as_ref(), b"v"]);
        }
        s
    }

    #[test]
    fn append_range_both_ways() {
        let mut s = Stream::new();
        s.append(id(1, 1), &[b"a".as_ref(), b"1", b"b", b"2"]);
        s.append(id(1, 2), &[b"a".as_ref(), b"3", b"b", b"4"]);
        s.append(id(2, 0), &[b"x".as_ref(), b"y"]);
        let all = s.range(StreamId::MIN, StreamId::MAX, false, 0);
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[1].1,
            vec![(&b"a"[..], &b"3"[..]), (&b"b"[..], &b"4"[..])]
        );
        assert_eq!(all[2].1, vec![(&b"x"[..], &b"y"[..])]);
        let rev = s.range(id(1, 2), StreamId::MAX, true, 0);
        assert_eq!(
            rev.iter().map(|e| e.0).collect::<Vec<_>>(),
            [id(2, 0), id(1, 2)]
        );
        assert_eq!(
            s.range(StreamId::MIN, StreamId::MAX, true, 1)[0].0,
            id(2, 0)
        );
    }

    #[test]
    fn nodes_split_at_one_hundred_entries_counting_deleted() {
        let mut s = fill(100);
        assert_eq!(s.nodes(), 1);
        assert!(s.delete(id(50, 0)));
        s.append(id(101, 0), &[b"f".as_ref(), b"v"]);
        assert_eq!(s.nodes(), 2);
        assert_eq!(s.length, 100);
        assert!(!s.delete(id(50, 0)));
    }

    #[test]
    fn approximate_trim_removes_whole_nodes_only() {
        let mut s = fill(250);
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 100);
        assert_eq!(s.length, 150);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.first_id, id(131, 0));
        assert_eq!(s.trim(Trim::MinId(id(205, 0)), false, 0), 74);
        assert_eq!(s.edge(false), Some(id(205, 0)));
        assert_eq!(s.edge(true), Some(id(250, 0)));
    }

    #[test]
    fn emptied_node_is_freed() {
        let mut s = fill(3);
        for i in 1..=3 {
            assert!(s.delete(id(i, 0)));
        }
        assert_eq!(s.nodes(), 0);
        assert_eq!(s.length, 0);
    }

    #[test]
    fn garbage_buffers_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..2000 {
            let mut buf = Vec::new();
            for _ in 0..(n % 64) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push(seed as u8);
            }
            let c = Chunk::from_parts(buf, 3, 0, 10, StreamId::MAX);
            let _ = c.validate(StreamId { ms: seed, seq: 1 });
        }
    }

    #[test]
    fn validate_accepts_own_chunks_and_rejects_garbage() {
        let s = fill(10);
        for (m, c) in s.chunks() {
            c.validate(*m).unwrap();
            let (buf, live, del, lp, last) = c.parts();
            let mut bad = buf.to_vec();
            bad.truncate(bad.len() - 1);
            assert!(
                Chunk::from_parts(bad, live, del, lp, last)
                    .validate(*m)
                    .is_err()
            );
        }
    }
}
