//! The Vigil sentinel: one member of the Raft group that holds the cluster state.
//!
//! - [`config`]: the sentinel's TOML configuration.
//! - [`storage`]: the durable Raft log (entries, hard state, conf state, snapshots).
//! - [`state`]: the replicated cluster state and the commands that change it.
//! - [`driver`]: the Raft driver task (Ready loop, proposals, linearizable reads, membership).
//! - [`transport`]: Raft messages between sentinels over gRPC.
//! - [`nodes`]: NodeAdmin clients for the storage nodes.
//! - [`monitor`]: every sentinel's probes of the nodes (subjective down).
//! - [`events`]: the event bus (Redis Sentinel's event names), fed by committed changes and
//!   by this sentinel's observations.
//! - [`controller`]: the leader's steady-state duties (first master, lease, replicas).
//! - [`discovery`]: the Redis Sentinel protocol endpoint (RESP) and its event channels.
//! - [`server`]: the sentinel process: the gRPC services (`RaftPeer`, `SentinelService`).
//!
#![deny(missing_docs)]

pub mod config;
pub mod controller;
pub mod discovery;
pub mod driver;
pub mod events;
pub mod monitor;
pub mod nodes;
pub mod server;
pub mod state;
pub mod storage;
pub mod transport;
