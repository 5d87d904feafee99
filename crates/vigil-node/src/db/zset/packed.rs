//! The compact form of a small sorted set, kept as Redis keeps one in a listpack: one buffer of
//! entries in rank order, searched linearly. Small sets are most sorted sets (a geo set of a few
//! places, a leaderboard of a few players), and one buffer instead of a hash table and a tree
//! per set is what keeps them within Redis' memory.
//!
//! Layout ([`blob`]): the count of entries, then per entry the score's 8 little-endian bytes and
//! the member as a length-prefixed byte string.

use super::Score;
use crate::db::blob::{self, put, read};

/// One entry as it lies in the buffer: where it starts and ends, its score and member.
pub(super) struct Slot<'a> {
    pub start: usize,
    pub end: usize,
    pub score: Score,
    pub member: &'a [u8],
}

/// A sorted set in one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Packed {
    buf: Box<[u8]>,
}

impl Packed {
    /// Number of entries.
    pub fn len(&self) -> usize {
        blob::count(&self.buf)
    }

    /// Bytes of the buffer (for MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Entries in rank order.
    pub fn slots(&self) -> Slots<'_> {
        Slots {
            buf: &self.buf,
            pos: blob::first(&self.buf),
        }
    }

    /// The entry of a member.
    pub fn find(&self, member: &[u8]) -> Option<Slot<'_>> {
        self.slots().find(|s| s.member == member)
    }

    /// Inserts a member that is not there, at its rank.
    pub fn insert(&mut self, member: &[u8], score: f64) {
        let key = (Score(score), member);
        let at = self
            .slots()
            .find(|s| (s.score, s.member) > key)
            .map_or(self.buf.len(), |s| s.start);
        let mut entry = Vec::with_capacity(8 + 5 + member.len());
        put_entry(&mut entry, member, score);
        self.buf = blob::splice(&self.buf, self.len() + 1, at, at, &entry);
    }

    /// A set of entries already in rank order and distinct.
    pub fn from_sorted<'a>(entries: impl ExactSizeIterator<Item = (f64, &'a [u8])>) -> Packed {
        let count = entries.len() as u32;
        if count == 0 {
            return Packed::default();
        }
        let mut out = count.to_le_bytes().to_vec();
        for (score, member) in entries {
            put_entry(&mut out, member, score);
        }
        Packed {
            buf: out.into_boxed_slice(),
        }
    }

    /// Removes the entry spanning `start..end` (a [`Slot`] of this set).
    pub fn remove(&mut self, start: usize, end: usize) {
        self.buf = blob::splice(&self.buf, self.len().saturating_sub(1), start, end, &[]);
    }
}

/// Appends one entry: the score, then the member.
fn put_entry(out: &mut Vec<u8>, member: &[u8], score: f64) {
    out.extend_from_slice(&score.to_le_bytes());
    put(out, member);
}

/// Walks the entries of a [`Packed`] set forwards.
pub(super) struct Slots<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Slots<'a> {
    type Item = Slot<'a>;

    fn next(&mut self) -> Option<Slot<'a>> {
        let start = self.pos;
        let score = self.buf.get(start..start + 8)?;
        let score = f64::from_le_bytes(score.try_into().ok()?);
        let (member, end) = read(self.buf, start + 8)?;
        self.pos = end;
        Some(Slot {
            start,
            end: self.pos,
            score: Score(score),
            member,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(p: &Packed) -> Vec<(f64, Vec<u8>)> {
        p.slots().map(|s| (s.score.0, s.member.to_vec())).collect()
    }

    #[test]
    fn entries_stay_in_rank_order_through_inserts_and_removes() {
        let mut p = Packed::default();
        assert_eq!(p.len(), 0);
        let long = vec![b'x'; 300];
        for (m, s) in [
            (&b"b"[..], 2.0),
            (b"a", 2.0),
            (b"z", -1.0),
            (&long, 7.5),
            (b"", 2.0),
        ] {
            p.insert(m, s);
        }
        assert_eq!(p.len(), 5);
        let got = members(&p);
        let want: Vec<(f64, Vec<u8>)> = vec![
            (-1.0, b"z".to_vec()),
            (2.0, b"".to_vec()),
            (2.0, b"a".to_vec()),
            (2.0, b"b".to_vec()),
            (7.5, long.clone()),
        ];
        assert_eq!(got, want);
        let s = p.find(b"a").map(|s| (s.start, s.end));
        let (start, end) = s.expect("a is there");
        p.remove(start, end);
        assert_eq!(p.len(), 4);
        assert!(p.find(b"a").is_none());
        let s = p.find(&long).map(|s| (s.start, s.end, s.score.0));
        assert_eq!(s.map(|s| s.2), Some(7.5));
        for m in [&b"z"[..], b"", b"b", &long] {
            let (start, end) = p.find(m).map(|s| (s.start, s.end)).expect("present");
            p.remove(start, end);
        }
        assert_eq!(p.len(), 0);
        assert_eq!(p.bytes(), 0);
    }
}
