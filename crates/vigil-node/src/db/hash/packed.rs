//! The compact form of a small hash, kept as Redis keeps one in a listpack: one buffer of
//! field/value pairs in insertion order, searched linearly. Most hashes are small (an object's
//! few attributes), and one buffer instead of a table and two allocations per field is what
//! keeps them within Redis' memory.
//!
//! Layout ([`blob`]): the count of pairs, then per pair the field and the value, each a
//! length-prefixed byte string.

use crate::db::blob::{self, put, read};

/// One pair as it lies in the buffer: where it starts, where its value's length starts, where
/// it ends, and its bytes.
pub(super) struct Slot<'a> {
    pub start: usize,
    pub vstart: usize,
    pub end: usize,
    pub value: &'a [u8],
}

/// A hash in one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Packed {
    buf: Box<[u8]>,
}

impl Packed {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        blob::count(&self.buf)
    }

    /// Bytes of the buffer (for MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Pairs in insertion order.
    pub fn pairs(&self) -> Pairs<'_> {
        Pairs {
            buf: &self.buf,
            pos: blob::first(&self.buf),
        }
    }

    /// The slot of a field.
    pub fn find(&self, field: &[u8]) -> Option<Slot<'_>> {
        let mut pos = blob::first(&self.buf);
        loop {
            let start = pos;
            let (f, at) = read(&self.buf, pos)?;
            let (value, end) = read(&self.buf, at)?;
            if f == field {
                return Some(Slot {
                    start,
                    vstart: at,
                    end,
                    value,
                });
            }
            pos = end;
        }
    }

    /// Appends a pair whose field is not there.
    pub fn push(&mut self, field: &[u8], value: &[u8]) {
        let mut pair = Vec::with_capacity(10 + field.len() + value.len());
        put(&mut pair, field);
        put(&mut pair, value);
        let end = self.buf.len();
        self.buf = blob::splice(&self.buf, self.len() + 1, end, end, &pair);
    }

    /// Replaces the value of the pair whose value spans `vstart..end`, in place in the order.
    pub fn replace_value(&mut self, vstart: usize, end: usize, value: &[u8]) {
        let mut v = Vec::with_capacity(5 + value.len());
        put(&mut v, value);
        self.buf = blob::splice(&self.buf, self.len(), vstart, end, &v);
    }

    /// Removes the pair spanning `start..end`, keeping the order of the rest.
    pub fn remove(&mut self, start: usize, end: usize) {
        self.buf = blob::splice(&self.buf, self.len().saturating_sub(1), start, end, &[]);
    }

    /// A hash of distinct fields, in the given order.
    pub fn from_pairs<'a>(pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>) -> Packed {
        let count = pairs.len() as u32;
        if count == 0 {
            return Packed::default();
        }
        let mut out = count.to_le_bytes().to_vec();
        for (f, v) in pairs {
            put(&mut out, f);
            put(&mut out, v);
        }
        Packed {
            buf: out.into_boxed_slice(),
        }
    }
}

/// Walks the pairs of a [`Packed`] hash in order.
pub struct Pairs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (f, at) = read(self.buf, self.pos)?;
        let (v, end) = read(self.buf, at)?;
        self.pos = end;
        Some((f, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_keep_their_order_through_updates_and_removes() {
        let mut p = Packed::default();
        let long = vec![b'x'; 300];
        for (f, v) in [
            (&b"b"[..], &b"1"[..]),
            (b"a", b""),
            (b"", &long),
            (b"z", b"9"),
        ] {
            p.push(f, v);
        }
        assert_eq!(p.len(), 4);
        let s = p.find(b"a").map(|s| (s.vstart, s.end)).expect("a is there");
        p.replace_value(s.0, s.1, &long);
        assert_eq!(p.find(b"a").map(|s| s.value.len()), Some(300));
        let order: Vec<&[u8]> = p.pairs().map(|(f, _)| f).collect();
        assert_eq!(order, vec![&b"b"[..], b"a", b"", b"z"]);
        let s = p.find(b"").map(|s| (s.start, s.end)).expect("empty field");
        p.remove(s.0, s.1);
        let order: Vec<&[u8]> = p.pairs().map(|(f, _)| f).collect();
        assert_eq!(order, vec![&b"b"[..], b"a", b"z"]);
        for f in [&b"b"[..], b"a", b"z"] {
            let s = p.find(f).map(|s| (s.start, s.end)).expect("present");
            p.remove(s.0, s.1);
        }
        assert_eq!((p.len(), p.bytes()), (0, 0));
    }
}
