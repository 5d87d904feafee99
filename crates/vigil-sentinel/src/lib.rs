//! The Vigil sentinel: one member of the Raft group that holds the cluster state.
//!
//! - [`config`]: the sentinel's TOML configuration.
//! - [`import`]: a Redis Sentinel config file converted to Vigil groups
//!   (`vigil sentinel --import-redis-sentinel`).
//! - [`storage`]: the durable Raft log (entries, hard state, conf state, snapshots).
//! - [`state`]: the replicated cluster state and the commands that change it.
//! - [`driver`]: the Raft driver task (Ready loop, proposals, linearizable reads, membership).
//! - [`transport`]: Raft messages between sentinels over gRPC.
//! - [`nodes`]: what the sentinel asks of a storage node ([`nodes::NodeAdmin`]) and its
//!   drivers: gRPC (`vigil node`, `vigil agent`) and RESP (stock servers, agentless mode).
//! - [`peers`]: the other sentinels' opinions of a node ([`peers::Opinions`]) over gRPC.
//! - [`monitor`]: every sentinel's probes of the nodes (subjective down).
//! - [`events`]: the event bus (Redis Sentinel's event names), fed by committed changes and
//!   by this sentinel's observations.
//! - [`controller`]: the leader's duties (first master, lease, replicas, failover,
//!   switchover), its pure decisions in [`controller::decide`].
//! - [`discovery`]: the Redis Sentinel protocol endpoint (RESP) and its event channels.
//! - [`metrics`]: the metrics page and health checks (`metrics = "host:port"`).
//! - [`shards`]: sharded clusters at run time: the leader pushes the committed slot map and
//!   masters to every shard's nodes.
//! - [`ops`]: the operator's operations (monitor, remove, set, switchover), shared by the gRPC
//!   API and the `SENTINEL` subcommands.
//! - [`server`]: the sentinel process: one builder, the gRPC services (`RaftPeer`,
//!   `SentinelService`), proto conversions, membership, the reconciler; [`serve`] runs it all.
//!
#![deny(missing_docs)]

pub mod config;
pub mod controller;
pub mod discovery;
pub mod driver;
pub mod events;
pub mod import;
pub mod metrics;
pub mod monitor;
pub mod nodes;
pub mod ops;
pub mod peers;
pub mod server;
pub mod shards;
pub mod state;
pub mod storage;
pub mod transport;

pub use server::{ServeError, serve};
