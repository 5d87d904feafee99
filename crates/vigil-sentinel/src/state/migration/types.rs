//! What the replicated state records of a slot migration (the transitions are in the parent).

use serde::{Deserialize, Serialize};

/// A migration's phase (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The target copies the slots.
    Copying,
    /// The source holds writes to them; the target catches up.
    Paused,
    /// The target owns them; the source deletes its copies.
    Cleanup,
}

/// Slots to move from one group to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The group giving the slots (it must own them).
    pub from: String,
    /// The group receiving them.
    pub to: String,
    /// Slot ranges `start..=end`, ascending.
    pub ranges: Vec<(u16, u16)>,
}

/// A queued or running migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Unique in the cluster for each attempt: a retry takes a new one, so nodes tell a fresh
    /// copy from a stale one.
    pub id: u64,
    /// What moves.
    pub slots: Move,
    /// Where it is.
    pub phase: Phase,
    /// Attempts started before this one.
    pub attempts: u32,
    /// The source's and target's group epochs when the pause was committed.
    pub epochs: (u64, u64),
}

/// What the leader commits about the migration at the head of a cluster's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The target is close behind: the source holds writes to the slots from now.
    Pause,
    /// The target holds everything the source wrote to the slots: it owns them.
    Commit,
    /// The source deleted its copies: the migration is over.
    Finish,
    /// Start over with a new id (a failover, a failed call, no progress).
    Retry(String),
    /// Give up: the slots stay with the source.
    Abort(String),
}
