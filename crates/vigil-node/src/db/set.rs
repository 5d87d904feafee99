//! Sets. A set of integers is a sorted array ([`intset`]), as Redis keeps one in an intset, so
//! its members come back in ascending order; a non-integer member or growing past
//! `set-max-intset-entries` makes it an indexed set (Redis' hashtable) for good.

mod intset;

use std::ops::Deref;

use ahash::RandomState;
use indexmap::IndexSet;

use super::Key;
use super::encoding::string_int;
use intset::IntSet;

type Table = IndexSet<Key, RandomState>;

/// A set: an intset while its members are few integers, indexed otherwise.
#[derive(Debug, Clone)]
pub struct Set(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Ints(IntSet),
    Full(Box<Table>),
}

impl Default for Set {
    fn default() -> Self {
        Set(Repr::Ints(IntSet::default()))
    }
}

impl PartialEq for Set {
    /// Same members, whatever the order or form.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(&m))
    }
}

/// A member as iterated: borrowed bytes, or an integer of an intset formatted on the stack.
pub enum Member<'a> {
    /// A stored member.
    Bytes(&'a [u8]),
    /// An intset's integer, as decimal text.
    Int([u8; 20], u8),
}

impl Member<'_> {
    fn int(v: i64) -> Member<'static> {
        let mut buf = [0u8; 20];
        let mut fmt = itoa::Buffer::new();
        let text = fmt.format(v).as_bytes();
        buf[..text.len()].copy_from_slice(text);
        Member::Int(buf, text.len() as u8)
    }
}

impl Deref for Member<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Member::Bytes(b) => b,
            Member::Int(buf, len) => &buf[..usize::from(*len)],
        }
    }
}

impl Set {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Ints(s) => s.len(),
            Repr::Full(t) => t.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is an intset.
    pub fn is_intset(&self) -> bool {
        matches!(self.0, Repr::Ints(_))
    }

    /// An intset's width and body (its integers little-endian, ascending), as Redis serializes
    /// one.
    pub fn intset_parts(&self) -> Option<(usize, &[u8])> {
        match &self.0 {
            Repr::Ints(s) => Some((s.width(), s.body())),
            Repr::Full(_) => None,
        }
    }

    /// Bytes of an intset's buffer (for MEMORY USAGE).
    pub fn intset_bytes(&self) -> Option<usize> {
        match &self.0 {
            Repr::Ints(s) => Some(s.bytes()),
            Repr::Full(_) => None,
        }
    }

    /// Slots of the indexed form's table (for MEMORY USAGE).
    pub fn capacity(&self) -> usize {
        match &self.0 {
            Repr::Ints(s) => s.len(),
            Repr::Full(t) => t.capacity(),
        }
    }

    /// Whether `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.0 {
            Repr::Ints(s) => string_int(m).is_some_and(|v| s.search(v).is_ok()),
            Repr::Full(t) => t.contains(m),
        }
    }

    /// Adds a member; returns whether it is new. A non-integer, or an integer that takes an
    /// intset past `max_intset` members, makes the set indexed for good (Redis' setTypeAdd).
    pub fn insert(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(s) = &mut self.0 {
            if let Some(v) = string_int(m) {
                if s.search(v).is_ok() {
                    return false;
                }
                if s.len() < max_intset {
                    return s.insert(v);
                }
            }
            self.unpack();
        }
        match &mut self.0 {
            Repr::Full(t) => !t.contains(m) && t.insert(Key::from(m)),
            Repr::Ints(_) => false,
        }
    }

    /// Moves an intset to the indexed form.
    fn unpack(&mut self) {
        let mut t = Table::with_capacity_and_hasher(self.len() + 1, RandomState::new());
        t.extend(self.iter().map(|m| Key::from(&*m)));
        self.0 = Repr::Full(Box::new(t));
    }

    /// Removes a member; returns whether it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Ints(s) => string_int(m).is_some_and(|v| s.remove(v)),
            Repr::Full(t) => t.swap_remove(m),
        }
    }

    /// Removes and returns the member at position `i` of [`Set::get_index`]'s order.
    pub fn remove_index(&mut self, i: usize) -> Option<Key> {
        match &mut self.0 {
            Repr::Ints(s) => {
                let v = s.get(i)?;
                s.remove(v);
                Some(Key::from(&*Member::int(v)))
            }
            Repr::Full(t) => t.swap_remove_index(i),
        }
    }

    /// Members: ascending for an intset, the index's order otherwise.
    pub fn iter(&self) -> Iter<'_> {
        Iter { set: self, next: 0 }
    }

    /// The member at position `i` of [`Set::iter`]'s order.
    pub fn get_index(&self, i: usize) -> Option<Member<'_>> {
        match &self.0 {
            Repr::Ints(s) => s.get(i).map(Member::int),
            Repr::Full(t) => t.get_index(i).map(|m| Member::Bytes(m)),
        }
    }

    /// Builds a set from loaded members as Redis loads a plain one: an intset while they are
    /// integers and at most `max_intset`; `None` if a member repeats.
    pub fn build(members: Vec<Key>, max_intset: usize) -> Option<Set> {
        if members.len() <= max_intset {
            let ints: Option<Vec<i64>> = members.iter().map(|m| string_int(m)).collect();
            if let Some(mut ints) = ints {
                ints.sort_unstable();
                let s = IntSet::from_sorted(&ints, 2)?;
                return Some(Set(Repr::Ints(s)));
            }
        }
        let mut t = Table::with_capacity_and_hasher(members.len(), RandomState::new());
        for m in members {
            if !t.insert(m) {
                return None;
            }
        }
        Some(Set(Repr::Full(Box::new(t))))
    }

    /// A loaded intset (ascending integers, its width kept), indexed if it has more than
    /// `max_intset` members as Redis converts one it loads; `None` if not ascending.
    pub fn from_ints(values: &[i64], width: usize, max_intset: usize) -> Option<Set> {
        let s = IntSet::from_sorted(values, width)?;
        let mut set = Set(Repr::Ints(s));
        if values.len() > max_intset {
            set.unpack();
        }
        Some(set)
    }
}

/// Walks a [`Set`]'s members.
pub struct Iter<'a> {
    set: &'a Set,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        let m = self.set.get_index(self.next)?;
        self.next += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.set.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::db::seeded::Rng;

    fn members(s: &Set) -> Vec<Vec<u8>> {
        s.iter().map(|m| m.to_vec()).collect()
    }

    #[test]
    fn intset_and_indexed_forms_answer_alike() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let words: [&[u8]; 8] = [
            b"7",
            b"-2",
            b"40000",
            b"-9223372036854775808",
            b"x",
            b"07",
            b"",
            b"3",
        ];
        let (mut a, mut b) = (Set::default(), Set::default());
        let mut model: BTreeSet<i64> = BTreeSet::new();
        let mut strs: BTreeSet<Vec<u8>> = BTreeSet::new();
        for step in 0..4000 {
            let m: Vec<u8> = if rng.below(4) == 0 {
                words[rng.below(8) as usize].to_vec()
            } else {
                (rng.below(40) as i64 - 20).to_string().into_bytes()
            };
            if rng.below(3) == 0 {
                let was = a.remove(&m);
                assert_eq!(was, b.remove(&m), "#{step}");
                strs.remove(&m);
                if let Some(v) = string_int(&m) {
                    model.remove(&v);
                }
            } else {
                let new = a.insert(&m, 12);
                assert_eq!(new, b.insert(&m, 0), "#{step}");
                strs.insert(m.clone());
                if let Some(v) = string_int(&m) {
                    model.insert(v);
                }
            }
            assert_eq!(a, b, "#{step}");
            assert!(!b.is_intset() || b.is_empty(), "#{step}");
            assert_eq!(a.contains(&m), b.contains(&m), "#{step}");
            let mut got: Vec<Vec<u8>> = members(&b);
            got.sort();
            assert_eq!(got, strs.iter().cloned().collect::<Vec<_>>(), "#{step}");
            if a.is_intset() {
                let want: Vec<Vec<u8>> = model.iter().map(|v| v.to_string().into_bytes()).collect();
                assert_eq!(members(&a), want, "#{step}");
            } else {
                a = Set::default();
                b = Set::default();
                model.clear();
                strs.clear();
            }
        }
    }

    #[test]
    fn loading_decides_as_redis() {
        let k = |s: &str| Key::from(s.as_bytes());
        let s = Set::build(vec![k("3"), k("-1"), k("2")], 512).expect("distinct");
        assert!(s.is_intset());
        assert_eq!(
            members(&s),
            vec![b"-1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
        assert!(
            !Set::build(vec![k("3"), k("a")], 512)
                .expect("distinct")
                .is_intset()
        );
        assert!(
            !Set::build(vec![k("3"), k("4")], 1)
                .expect("distinct")
                .is_intset()
        );
        assert!(Set::build(vec![k("3"), k("3")], 512).is_none());
        assert!(Set::build(vec![k("a"), k("a")], 512).is_none());
        let wide = Set::from_ints(&[1, 2], 8, 512).expect("ascending");
        assert_eq!(wide.intset_parts().map(|p| p.0), Some(8));
        assert!(
            !Set::from_ints(&[1, 2], 2, 1)
                .expect("ascending")
                .is_intset()
        );
        let mut s = Set::default();
        assert!(s.insert(b"5", 0));
        assert!(!s.is_intset(), "past set-max-intset-entries 0 at once");
        let mut s = Set::default();
        s.insert(b"5", 10);
        assert_eq!(s.remove_index(0).as_deref(), Some(&b"5"[..]));
        assert!(s.is_empty() && s.is_intset());
    }
}
