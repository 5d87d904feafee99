//! The Vigil sentinel: one member of the Raft group that holds the cluster state.
//!
//! - [`storage`]: the durable Raft log (entries, hard state, conf state, snapshots).
//! - [`state`]: the replicated cluster state and the commands that change it.
//! - [`driver`]: the Raft driver task (Ready loop, proposals, linearizable reads, membership).
//!
//! The Raft driver, the state machine, the transport and the public API build on it (issue 4).
#![deny(missing_docs)]

pub mod driver;
pub mod state;
pub mod storage;
