//! Sorted sets: a member → score index plus an ordered set of (score, member).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;

use ahash::RandomState;
use indexmap::IndexMap;

use super::Key;

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

/// A sorted set.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    /// Member → score; indexed so ZSCAN and ZRANDMEMBER can walk it.
    pub scores: IndexMap<Key, f64, RandomState>,
    /// (score, member) in rank order.
    pub order: BTreeSet<(Score, Key)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
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
        self.scores.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The score of a member.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Inserts or updates; returns the previous score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        // -0 and 0 are the same score, as in Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.get(member).copied();
        if let Some(o) = old {
            if o == score {
                return old;
            }
            self.order.remove(&(Score(o), Key::from(member)));
            if let Some(s) = self.scores.get_mut(member) {
                *s = score;
            }
        } else {
            self.scores.insert(Key::from(member), score);
        }
        self.order.insert((Score(score), Key::from(member)));
        old
    }

    /// Removes a member; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.swap_remove(member) {
            Some(s) => {
                self.order.remove(&(Score(s), Key::from(member)));
                true
            }
            None => false,
        }
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        Some(self.order.range(..(Score(s), Key::from(member))).count())
    }

    /// Members with scores in the range, ascending.
    pub fn range_by_score(&self, min: ScoreBound, max: ScoreBound) -> Vec<&(Score, Key)> {
        if min.value > max.value {
            return Vec::new();
        }
        let start = if min.value == 0.0 { 0.0 } else { min.value };
        let lo: Bound<(Score, Key)> = Bound::Included((Score(start), Key::default()));
        self.order
            .range((lo, Bound::Unbounded))
            .skip_while(|(s, _)| min.exclusive && s.0 == min.value)
            .take_while(|(s, _)| {
                if max.exclusive {
                    s.0 < max.value
                } else {
                    s.0 <= max.value
                }
            })
            .collect()
    }

    /// Members in the lexicographic range, ascending (meaningful when all scores are equal).
    pub fn range_by_lex(&self, min: &LexBound, max: &LexBound) -> Vec<&(Score, Key)> {
        self.order
            .iter()
            .filter(|(_, m)| lex_gte_min(m, min) && lex_lte_max(m, max))
            .collect()
    }
}

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
