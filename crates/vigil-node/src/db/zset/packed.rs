//! The compact form of a small sorted set, kept as Redis keeps one in a listpack: one buffer of
//! entries in rank order, searched linearly. Small sets are most sorted sets (a geo set of a few
//! places, a leaderboard of a few players), and one buffer instead of a hash table and a tree
//! per set is what keeps them within Redis' memory.
//!
//! Layout: a little-endian `u32` count, then per entry the score's 8 little-endian bytes, the
//! member's length as a LEB128 varint, and the member. An empty set holds no buffer at all.

use super::Score;

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

const HEADER: usize = 4;

impl Packed {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self.buf.get(..HEADER) {
            Some(h) => u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
            None => 0,
        }
    }

    /// Bytes of the buffer (for MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Entries in rank order.
    pub fn slots(&self) -> Slots<'_> {
        Slots {
            buf: &self.buf,
            pos: HEADER.min(self.buf.len()),
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
            .map_or(self.buf.len().max(HEADER), |s| s.start);
        let mut entry = Vec::with_capacity(8 + 5 + member.len());
        put_entry(&mut entry, member, score);
        let count = self.len() as u32 + 1;
        let mut out = Vec::with_capacity(self.buf.len().max(HEADER) + entry.len());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(self.buf.get(HEADER..at).unwrap_or_default());
        out.extend_from_slice(&entry);
        out.extend_from_slice(self.buf.get(at..).unwrap_or_default());
        self.buf = out.into_boxed_slice();
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
        let count = self.len().saturating_sub(1) as u32;
        if count == 0 {
            self.buf = Box::default();
            return;
        }
        let mut out = Vec::with_capacity(self.buf.len() - (end - start));
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(self.buf.get(HEADER..start).unwrap_or_default());
        out.extend_from_slice(self.buf.get(end..).unwrap_or_default());
        self.buf = out.into_boxed_slice();
    }
}

/// Appends one entry: score, member length (LEB128), member.
fn put_entry(out: &mut Vec<u8>, member: &[u8], score: f64) {
    out.extend_from_slice(&score.to_le_bytes());
    let mut n = member.len();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(member);
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
        let (mut len, mut shift, mut at) = (0usize, 0, start + 8);
        loop {
            let b = *self.buf.get(at)?;
            at += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 35 {
                break;
            }
        }
        let member = self.buf.get(at..at + len)?;
        self.pos = at + len;
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
