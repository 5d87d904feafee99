//! Hashes. A small hash is one buffer of field/value pairs in insertion order ([`packed`]), as
//! Redis keeps one in a listpack, so its fields come back in Redis' order and deleting keeps the
//! order of the rest; past [`Limits`] it becomes an indexed map (Redis' hashtable) and stays so.

mod packed;

use ahash::RandomState;
use indexmap::IndexMap;

use super::Key;
use packed::Packed;

/// The limits of the compact form (`hash-max-listpack-entries` and `-value`): a hash that would
/// go past either moves to the indexed form for good, as Redis converts a listpack to a
/// hashtable and never back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most fields.
    pub entries: usize,
    /// Longest field or value.
    pub value: usize,
}

type Map = IndexMap<Key, Key, RandomState>;

/// A hash: compact while small, indexed once large (see [`Limits`]).
#[derive(Debug, Clone)]
pub struct Hash(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Packed(Packed),
    Full(Box<Map>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash(Repr::Packed(Packed::default()))
    }
}

impl PartialEq for Hash {
    /// Same fields with the same values, whatever the order or form.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Hash {
    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.len(),
            Repr::Full(m) => m.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is in the compact form (Redis' `listpack` encoding).
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    /// Bytes of the compact form's buffer, if it is compact.
    pub fn packed_bytes(&self) -> Option<usize> {
        match &self.0 {
            Repr::Packed(p) => Some(p.bytes()),
            Repr::Full(_) => None,
        }
    }

    /// Slots of the indexed form's table (for MEMORY USAGE).
    pub fn capacity(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.len(),
            Repr::Full(m) => m.capacity(),
        }
    }

    /// The value of a field.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed(p) => p.find(field).map(|s| s.value),
            Repr::Full(m) => m.get(field).map(|v| &v[..]),
        }
    }

    /// Whether a field exists.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets a field; returns whether it is new. A field or value longer than `limits.value`, or
    /// a new field past `limits.entries`, moves a compact hash to the indexed form first (as
    /// Redis' hashTypeTryConversion and hashTypeSet do).
    pub fn insert(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if let Repr::Packed(p) = &mut self.0 {
            if field.len() <= limits.value && value.len() <= limits.value {
                if let Some(s) = p.find(field) {
                    let (vstart, end) = (s.vstart, s.end);
                    p.replace_value(vstart, end, value);
                    return false;
                }
                if p.len() < limits.entries {
                    p.push(field, value);
                    return true;
                }
            }
            self.unpack();
        }
        let Repr::Full(m) = &mut self.0 else {
            return false;
        };
        match m.get_mut(field) {
            Some(v) => {
                *v = Key::from(value);
                false
            }
            None => {
                m.insert(Key::from(field), Key::from(value));
                true
            }
        }
    }

    /// Moves a compact hash to the indexed form.
    fn unpack(&mut self) {
        let mut m = Map::with_capacity_and_hasher(self.len(), RandomState::new());
        for (f, v) in self.iter() {
            m.insert(Key::from(f), Key::from(v));
        }
        self.0 = Repr::Full(Box::new(m));
    }

    /// Removes a field; returns whether it was there. The compact form keeps the order of the
    /// rest, as a listpack does.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed(p) => match p.find(field).map(|s| (s.start, s.end)) {
                Some((start, end)) => {
                    p.remove(start, end);
                    true
                }
                None => false,
            },
            Repr::Full(m) => m.swap_remove(field).is_some(),
        }
    }

    /// Fields and values: insertion order when compact, the index's order otherwise.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(p) => Iter::Packed(p.pairs()),
            Repr::Full(m) => Iter::Full(m.iter()),
        }
    }

    /// Field names, in [`Hash::iter`] order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(f, _)| f)
    }

    /// Values, in [`Hash::iter`] order.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, v)| v)
    }

    /// The pair at position `i` of the indexed form's order (HSCAN, HRANDFIELD); a compact hash
    /// is walked to it.
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.0 {
            Repr::Packed(p) => p.pairs().nth(i),
            Repr::Full(m) => m.get_index(i).map(|(f, v)| (&f[..], &v[..])),
        }
    }

    /// Builds a hash from loaded pairs, compact if they fit `limits` (as Redis' rdbLoadObject
    /// decides; pass `value: usize::MAX` for a loaded listpack, which Redis keeps whatever its
    /// lengths); `None` if a field repeats.
    pub fn build(pairs: Vec<(Key, Key)>, limits: Limits) -> Option<Hash> {
        let fits = pairs.len() <= limits.entries
            && pairs
                .iter()
                .all(|(f, v)| f.len() <= limits.value && v.len() <= limits.value);
        if fits {
            let mut seen = std::collections::HashSet::with_capacity(pairs.len());
            if !pairs.iter().all(|(f, _)| seen.insert(&f[..])) {
                return None;
            }
            let packed = Packed::from_pairs(pairs.iter().map(|(f, v)| (&f[..], &v[..])));
            return Some(Hash(Repr::Packed(packed)));
        }
        let mut m = Map::with_capacity_and_hasher(pairs.len(), RandomState::new());
        for (f, v) in pairs {
            if m.insert(f, v).is_some() {
                return None;
            }
        }
        Some(Hash(Repr::Full(Box::new(m))))
    }
}

/// Walks a [`Hash`]'s fields and values.
pub enum Iter<'a> {
    /// A compact hash's buffer.
    Packed(packed::Pairs<'a>),
    /// The indexed form.
    Full(indexmap::map::Iter<'a, Key, Key>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(p) => p.next(),
            Iter::Full(i) => i.next().map(|(f, v)| (&f[..], &v[..])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::seeded::Rng;

    fn pairs(h: &Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn compact_form_keeps_insertion_order_like_a_model() {
        let small = Limits {
            entries: 8,
            value: 6,
        };
        let never = Limits {
            entries: 0,
            value: 0,
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut a, mut b) = (Hash::default(), Hash::default());
        // The model: insertion order, removal keeps the rest's order (a listpack).
        let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for step in 0..4000 {
            let f: Vec<u8> = (0..1 + rng.below(2))
                .map(|_| b'a' + rng.below(5) as u8)
                .collect();
            let vlen = if rng.below(40) == 0 { 9 } else { 3 };
            let v: Vec<u8> = (0..vlen).map(|_| b'0' + rng.below(10) as u8).collect();
            if rng.below(3) == 0 {
                let was = a.remove(&f);
                assert_eq!(was, b.remove(&f), "#{step}");
                let i = model.iter().position(|(x, _)| *x == f);
                assert_eq!(was, i.is_some(), "#{step}");
                if let Some(i) = i {
                    model.remove(i);
                }
            } else {
                let new = a.insert(&f, &v, small);
                assert_eq!(new, b.insert(&f, &v, never), "#{step}");
                match model.iter_mut().find(|(x, _)| *x == f) {
                    Some(e) => e.1 = v.clone(),
                    None => model.push((f.clone(), v.clone())),
                }
            }
            assert_eq!(a.len(), model.len(), "#{step}");
            assert_eq!(a, b, "#{step}");
            assert!(!b.is_packed() || b.is_empty(), "#{step}");
            if a.is_packed() {
                assert_eq!(pairs(&a), model, "#{step}");
            }
            assert_eq!(a.get(&f), b.get(&f), "#{step}");
            let mut sorted_a = pairs(&a);
            let mut sorted_b = pairs(&b);
            sorted_a.sort();
            sorted_b.sort();
            assert_eq!(sorted_a, sorted_b, "#{step}");
            if !a.is_packed() {
                // Start over so the compact form keeps being exercised.
                a = Hash::default();
                b = Hash::default();
                model.clear();
            }
        }
    }

    #[test]
    fn a_small_hash_is_one_pointer_in_the_keyspace() {
        assert_eq!(std::mem::size_of::<Hash>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Set>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 24);
    }

    #[test]
    fn growing_past_a_limit_is_for_good() {
        let lim = Limits {
            entries: 2,
            value: 3,
        };
        let mut h = Hash::default();
        assert!(h.insert(b"a", b"1", lim));
        assert!(h.insert(b"b", b"2", lim));
        assert!(h.is_packed());
        assert!(h.insert(b"c", b"3", lim));
        assert!(!h.is_packed());
        h.remove(b"c");
        assert!(!h.is_packed(), "Redis never converts back");
        let mut h = Hash::default();
        h.insert(b"a", b"1", lim);
        assert!(!h.insert(b"a", b"long", lim));
        assert!(!h.is_packed());
        assert_eq!(h.get(b"a"), Some(&b"long"[..]));
        let kv = |f: &[u8], v: &[u8]| (Key::from(f), Key::from(v));
        let built = Hash::build(vec![kv(b"y", b"1"), kv(b"x", b"2")], lim);
        let built = built.expect("distinct fields");
        assert!(built.is_packed());
        assert_eq!(
            pairs(&built),
            vec![
                (b"y".to_vec(), b"1".to_vec()),
                (b"x".to_vec(), b"2".to_vec())
            ]
        );
        assert!(Hash::build(vec![kv(b"x", b"1"), kv(b"x", b"2")], lim).is_none());
        let long = Hash::build(vec![kv(b"x", b"long")], lim).expect("one field");
        assert!(!long.is_packed());
    }
}
