//! The Vigil sentinel: one member of the Raft group that holds the cluster state.
//!
//! - [`storage`]: the durable Raft log (entries, hard state, conf state, snapshots).
//! - [`state`]: the replicated cluster state and the commands that change it.
//!
//! The Raft driver, the state machine, the transport and the public API build on it (issue 4).
#![deny(missing_docs)]

pub mod state;
pub mod storage;
