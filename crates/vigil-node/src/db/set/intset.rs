//! The compact form of a set of integers, kept as Redis keeps one in an intset: the integers in
//! ascending order, each in the width (2, 4 or 8 bytes) of the widest one ever added. The width
//! only grows (Redis never narrows an intset), which DUMP payloads show.
//!
//! Layout: one byte of width, then the integers little-endian. An empty set holds no buffer.

/// Sorted integers in one buffer.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct IntSet {
    buf: Box<[u8]>,
}

/// The narrowest width that holds `v`.
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

impl IntSet {
    /// Width of each integer.
    pub fn width(&self) -> usize {
        self.buf.first().map_or(2, |w| usize::from(*w))
    }

    /// Number of integers.
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(1) / self.width()
    }

    /// Bytes of the buffer (for MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The integers' bytes, little-endian in [`IntSet::width`] each (Redis' intset body).
    pub fn body(&self) -> &[u8] {
        self.buf.get(1..).unwrap_or_default()
    }

    /// The integer at position `i`.
    pub fn get(&self, i: usize) -> Option<i64> {
        let w = self.width();
        let c = self.buf.get(1 + i * w..1 + (i + 1) * w)?;
        Some(match w {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
    }

    /// Where `v` is (`Ok`) or would go (`Err`).
    pub fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).map(|m| m.cmp(&v)) {
                Some(std::cmp::Ordering::Less) => lo = mid + 1,
                Some(std::cmp::Ordering::Greater) => hi = mid,
                _ => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Adds `v`; returns whether it is new.
    pub fn insert(&mut self, v: i64) -> bool {
        let Err(at) = self.search(v) else {
            return false;
        };
        let w = self.width().max(width_of(v));
        let n = self.len();
        let mut out = Vec::with_capacity(1 + (n + 1) * w);
        out.push(w as u8);
        let mut put = |x: i64| out.extend_from_slice(&x.to_le_bytes()[..w]);
        for i in 0..at {
            put(self.get(i).unwrap_or_default());
        }
        put(v);
        for i in at..n {
            put(self.get(i).unwrap_or_default());
        }
        self.buf = out.into_boxed_slice();
        true
    }

    /// Removes `v`; returns whether it was there. The width stays.
    pub fn remove(&mut self, v: i64) -> bool {
        let Ok(at) = self.search(v) else {
            return false;
        };
        if self.len() == 1 {
            self.buf = Box::default();
            return true;
        }
        let w = self.width();
        let (start, end) = (1 + at * w, 1 + (at + 1) * w);
        let mut out = Vec::with_capacity(self.buf.len() - w);
        out.extend_from_slice(self.buf.get(..start).unwrap_or_default());
        out.extend_from_slice(self.buf.get(end..).unwrap_or_default());
        self.buf = out.into_boxed_slice();
        true
    }

    /// An intset of ascending, distinct integers in width `width` (at least the narrowest that
    /// holds them all); `None` if they are not ascending or the width is not 2, 4 or 8.
    pub fn from_sorted(values: &[i64], width: usize) -> Option<IntSet> {
        if !matches!(width, 2 | 4 | 8) || values.windows(2).any(|p| p[0] >= p[1]) {
            return None;
        }
        if values.is_empty() {
            return Some(IntSet::default());
        }
        let w = values.iter().map(|v| width_of(*v)).fold(width, usize::max);
        let mut out = Vec::with_capacity(1 + values.len() * w);
        out.push(w as u8);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes()[..w]);
        }
        Some(IntSet {
            buf: out.into_boxed_slice(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &IntSet) -> Vec<i64> {
        (0..s.len()).filter_map(|i| s.get(i)).collect()
    }

    #[test]
    fn stays_sorted_and_widens_for_good() {
        let mut s = IntSet::default();
        for v in [5, -3, 9, 5, 0] {
            s.insert(v);
        }
        assert_eq!((all(&s), s.width()), (vec![-3, 0, 5, 9], 2));
        assert!(s.insert(70_000));
        assert_eq!(s.width(), 4);
        assert!(s.insert(i64::MIN));
        assert_eq!((s.width(), s.len()), (8, 6));
        assert!(s.remove(i64::MIN) && s.remove(70_000) && !s.remove(1));
        assert_eq!((all(&s), s.width()), (vec![-3, 0, 5, 9], 8));
        assert_eq!(s.search(5), Ok(2));
        assert_eq!(s.search(6), Err(3));
        for v in [-3, 0, 5, 9] {
            assert!(s.remove(v));
        }
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(IntSet::from_sorted(&[1, 1], 2).is_none());
        let b = IntSet::from_sorted(&[1, 100_000], 2).expect("ascending");
        assert_eq!((b.width(), all(&b)), (4, vec![1, 100_000]));
    }
}
