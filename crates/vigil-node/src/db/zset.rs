//! Sorted sets. A small set is one compact buffer ([`packed`]), as Redis keeps one in a
//! listpack; past [`Limits`] it becomes a member → score index plus an ordered set of
//! (score, member), as Redis' skiplist, and stays so.

mod packed;

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use ahash::RandomState;
use indexmap::IndexMap;

use super::Key;
use packed::Packed;

/// A score with the total order Redis uses (scores are never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The size limits of the compact form (`zset-max-listpack-entries` and `-value`): a set that
/// would grow past either moves to the indexed form for good, as Redis converts a listpack to a
/// skiplist and never back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most members.
    pub entries: usize,
    /// Longest member.
    pub value: usize,
}

/// One member as iterated: its score and bytes.
pub type Entry<'a> = (Score, &'a [u8]);

/// A sorted set: compact while small, indexed once large (see [`Limits`]).
#[derive(Debug, Clone)]
pub struct ZSet(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Packed(Packed),
    Full(Box<Full>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Repr::Packed(Packed::default()))
    }
}

/// The indexed form.
#[derive(Debug, Clone, Default)]
struct Full {
    /// Member → score; indexed so ZSCAN and ZRANDMEMBER can walk it.
    scores: IndexMap<Key, f64, RandomState>,
    /// (score, member) in rank order.
    order: BTreeSet<(Score, Key)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A score bound for BYSCORE ranges: value and whether it is exclusive.
#[derive(Debug, Clone, Copy)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// `(` prefix.
    pub exclusive: bool,
}

/// A member bound for BYLEX ranges.
#[derive(Debug, Clone)]
pub enum LexBound {
    /// `-`.
    Min,
    /// `+`.
    Max,
    /// `[member`.
    Inclusive(Key),
    /// `(member`.
    Exclusive(Key),
}

impl ZSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.len(),
            Repr::Full(f) => f.scores.len(),
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

    /// The score of a member.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Packed(p) => p.find(member).map(|s| s.score.0),
            Repr::Full(f) => f.scores.get(member).copied(),
        }
    }

    /// Inserts or updates; returns the previous score. A new member that would take the set
    /// past `limits` moves it to the indexed form first.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: Limits) -> Option<f64> {
        // -0 and 0 are the same score, as in Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        if let Repr::Packed(p) = &mut self.0 {
            if let Some(s) = p.find(member) {
                let (start, end, old) = (s.start, s.end, s.score.0);
                if old != score {
                    p.remove(start, end);
                    p.insert(member, score);
                }
                return Some(old);
            }
            if p.len() < limits.entries && member.len() <= limits.value {
                p.insert(member, score);
                return None;
            }
            self.unpack();
        }
        let Repr::Full(f) = &mut self.0 else {
            return None;
        };
        let old = f.scores.get(member).copied();
        if let Some(o) = old {
            if o == score {
                return old;
            }
            f.order.remove(&(Score(o), Key::from(member)));
            if let Some(s) = f.scores.get_mut(member) {
                *s = score;
            }
        } else {
            f.scores.insert(Key::from(member), score);
        }
        f.order.insert((Score(score), Key::from(member)));
        old
    }

    /// Builds a set from loaded members, compact if it fits `limits` (as Redis converts a set it
    /// loads); `None` if a member repeats.
    pub fn build(mut items: Vec<(Key, f64)>, limits: Limits) -> Option<ZSet> {
        for (_, s) in &mut items {
            if *s == 0.0 {
                *s = 0.0;
            }
        }
        if items.len() <= limits.entries && items.iter().all(|(m, _)| m.len() <= limits.value) {
            items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if items.windows(2).any(|w| w[0].0 == w[1].0) {
                return None;
            }
            items.sort_unstable_by(|a, b| (Score(a.1), &a.0).cmp(&(Score(b.1), &b.0)));
            let packed = Packed::from_sorted(items.iter().map(|(m, s)| (*s, &m[..])));
            return Some(ZSet(Repr::Packed(packed)));
        }
        let mut full = Full::default();
        full.scores.reserve(items.len());
        for (m, s) in items {
            if !full.order.insert((Score(s), m.clone())) || full.scores.insert(m, s).is_some() {
                return None;
            }
        }
        Some(ZSet(Repr::Full(Box::new(full))))
    }

    /// Moves a compact set to the indexed form.
    fn unpack(&mut self) {
        let mut full = Full::default();
        for (s, m) in self.iter() {
            full.scores.insert(Key::from(m), s.0);
            full.order.insert((s, Key::from(m)));
        }
        self.0 = Repr::Full(Box::new(full));
    }

    /// Removes a member; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed(p) => match p.find(member).map(|s| (s.start, s.end)) {
                Some((start, end)) => {
                    p.remove(start, end);
                    true
                }
                None => false,
            },
            Repr::Full(f) => match f.scores.swap_remove(member) {
                Some(s) => {
                    f.order.remove(&(Score(s), Key::from(member)));
                    true
                }
                None => false,
            },
        }
    }

    /// Removes and returns the lowest (or highest) ranked member.
    pub fn pop(&mut self, highest: bool) -> Option<(Score, Key)> {
        let (s, m) = if highest {
            self.iter().next_back()
        } else {
            self.iter().next()
        }?;
        let (s, m) = (s, Key::from(m));
        self.remove(&m);
        Some((s, m))
    }

    /// Members in rank order (reversible).
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(p) => Iter::Packed(
                p.slots()
                    .map(|s| (s.score, s.member))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Repr::Full(f) => Iter::Full(f.order.iter()),
        }
    }

    /// The member at position `i` of the set's own walking order (ZSCAN, ZRANDMEMBER): rank
    /// order when compact, the index's order otherwise.
    pub fn get_index(&self, i: usize) -> Option<Entry<'_>> {
        match &self.0 {
            Repr::Packed(p) => p.slots().nth(i).map(|s| (s.score, s.member)),
            Repr::Full(f) => f.scores.get_index(i).map(|(m, s)| (Score(*s), &m[..])),
        }
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.0 {
            Repr::Packed(p) => p.slots().position(|s| s.member == member),
            Repr::Full(f) => {
                let s = *f.scores.get(member)?;
                Some(f.order.range(..(Score(s), Key::from(member))).count())
            }
        }
    }

    /// Members with scores in the range, ascending.
    pub fn range_by_score(&self, min: ScoreBound, max: ScoreBound) -> Vec<Entry<'_>> {
        if min.value > max.value {
            return Vec::new();
        }
        let above = |s: &Score| {
            if min.exclusive {
                s.0 > min.value
            } else {
                s.0 >= min.value
            }
        };
        let below = |s: &Score| {
            if max.exclusive {
                s.0 < max.value
            } else {
                s.0 <= max.value
            }
        };
        match &self.0 {
            Repr::Packed(_) => self
                .iter()
                .skip_while(|(s, _)| !above(s))
                .take_while(|(s, _)| below(s))
                .collect(),
            Repr::Full(f) => {
                let start = if min.value == 0.0 { 0.0 } else { min.value };
                let lo: Bound<(Score, Key)> = Bound::Included((Score(start), Key::default()));
                f.order
                    .range((lo, Bound::Unbounded))
                    .map(|(s, m)| (*s, &m[..]))
                    .skip_while(|(s, _)| !above(s))
                    .take_while(|(s, _)| below(s))
                    .collect()
            }
        }
    }

    /// Members in the lexicographic range, ascending (meaningful when all scores are equal).
    pub fn range_by_lex(&self, min: &LexBound, max: &LexBound) -> Vec<Entry<'_>> {
        self.iter()
            .filter(|(_, m)| lex_gte_min(m, min) && lex_lte_max(m, max))
            .collect()
    }
}

/// Walks a [`ZSet`] in rank order, from either end.
pub enum Iter<'a> {
    /// A compact set, decoded.
    Packed(std::vec::IntoIter<Entry<'a>>),
    /// The indexed form's tree.
    Full(std::collections::btree_set::Iter<'a, (Score, Key)>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        match self {
            Iter::Packed(i) => i.next(),
            Iter::Full(i) => i.next().map(|(s, m)| (*s, &m[..])),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Packed(i) => i.size_hint(),
            Iter::Full(i) => i.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(i) => i.next_back(),
            Iter::Full(i) => i.next_back().map(|(s, m)| (*s, &m[..])),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Whether `m` is at or above a lex minimum.
pub fn lex_gte_min(m: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Inclusive(b) => m >= &b[..],
        LexBound::Exclusive(b) => m > &b[..],
    }
}

/// Whether `m` is at or below a lex maximum.
pub fn lex_lte_max(m: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Inclusive(b) => m <= &b[..],
        LexBound::Exclusive(b) => m < &b[..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::seeded::Rng;

    fn entries(z: &ZSet) -> Vec<(f64, Vec<u8>)> {
        z.iter().map(|(s, m)| (s.0, m.to_vec())).collect()
    }

    #[test]
    fn compact_and_indexed_forms_answer_alike() {
        let small = Limits {
            entries: 8,
            value: 6,
        };
        let never = Limits {
            entries: 0,
            value: 0,
        };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut a, mut b) = (ZSet::default(), ZSet::default());
        let mut model: BTreeSet<(Score, Vec<u8>)> = BTreeSet::new();
        for step in 0..4000 {
            let len = if rng.below(20) == 0 { 7 } else { 2 };
            let m: Vec<u8> = (0..len).map(|_| b'a' + rng.below(4) as u8).collect();
            let s = [-0.0, 0.0, 1.5, 2.0, f64::INFINITY, -3.0][rng.below(6) as usize];
            if rng.below(3) == 0 {
                let was = a.remove(&m);
                assert_eq!(was, b.remove(&m), "#{step}");
                model.retain(|(_, x)| *x != m);
            } else {
                let old = a.insert(&m, s, small);
                assert_eq!(old, b.insert(&m, s, never), "#{step}");
                model.retain(|(_, x)| *x != m);
                model.insert((Score(if s == 0.0 { 0.0 } else { s }), m.clone()));
            }
            let want: Vec<(f64, Vec<u8>)> = model.iter().map(|(s, m)| (s.0, m.clone())).collect();
            assert_eq!(entries(&a), want, "#{step}");
            assert_eq!(entries(&b), want, "#{step}");
            assert!(!b.is_packed() || b.is_empty(), "#{step}");
            assert_eq!(a.rank(&m), b.rank(&m), "#{step}");
            assert_eq!(a.score(&m), b.score(&m), "#{step}");
            let (lo, hi) = (
                ScoreBound {
                    value: -0.0,
                    exclusive: rng.below(2) == 0,
                },
                ScoreBound {
                    value: 2.0,
                    exclusive: rng.below(2) == 0,
                },
            );
            assert_eq!(
                a.range_by_score(lo, hi),
                b.range_by_score(lo, hi),
                "#{step}"
            );
        }
    }

    #[test]
    fn a_small_set_is_one_pointer_in_the_keyspace() {
        // The compact form lives in the keyspace entry itself: no box around it.
        assert_eq!(std::mem::size_of::<ZSet>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 24);
    }

    #[test]
    fn growing_past_a_limit_is_for_good() {
        let lim = Limits {
            entries: 2,
            value: 3,
        };
        let mut z = ZSet::default();
        z.insert(b"a", 1.0, lim);
        z.insert(b"b", 2.0, lim);
        assert!(z.is_packed());
        z.insert(b"c", 3.0, lim);
        assert!(!z.is_packed());
        z.remove(b"c");
        z.remove(b"b");
        assert!(!z.is_packed(), "Redis never converts back");
        let mut z = ZSet::default();
        z.insert(b"long", 1.0, lim);
        assert!(!z.is_packed());
        let built = ZSet::build(
            vec![(Key::from(&b"x"[..]), 1.0), (Key::from(&b"y"[..]), 0.5)],
            lim,
        );
        let built = built.expect("distinct members");
        assert!(built.is_packed());
        assert_eq!(
            entries(&built),
            vec![(0.5, b"y".to_vec()), (1.0, b"x".to_vec())]
        );
        let dup = vec![(Key::from(&b"x"[..]), 1.0), (Key::from(&b"x"[..]), 2.0)];
        assert!(ZSet::build(dup.clone(), lim).is_none());
        assert!(
            ZSet::build(
                dup,
                Limits {
                    entries: 0,
                    value: 0
                }
            )
            .is_none()
        );
    }
}
