//! The Vigil storage node: a Redis-protocol key-value server with durable persistence.
//!
//! Modules in layers, each using only those below it (no import cycle):
//!
//! 1. Bottom — [`error`], [`config`], [`ldouble`], [`maxmemory`], [`db`] (the keyspace and value types), [`ctx`] (the
//!    context data commands run in), [`stream`] (the replication-stream grammar).
//! 2. Mechanics — [`gate`] (the write gate: role, epoch, fence, lease; the check before a
//!    command runs and the one when its reply leaves), [`persist`] (append log, snapshots,
//!    recovery, replay), [`repl`]`::feed` (the stream, backlog, replica buffers),
//!    [`engines`] (the Lua engines and the running script's state),
//!    [`session`] (per-connection state), [`slowlog`] (slow log, latency events),
//!    [`cmdstats`] (per-command calls and latency histograms).
//! 3. The node — [`node`]: the shared state and the operations that need no command layer;
//!    [`script`]: Lua scripts and functions run on the locked store.
//! 3. The node — [`node`]: the shared state and the operations that need no command layer.
//! 4. On top — [`dispatch`] (how a request runs: MULTI, blocking, the gate), [`repl`]
//!    (`master`: PSYNC, acknowledgements, WAIT; `replica`: following a master), [`replay`]
//!    (applying logged and streamed commands), [`cmd`] (the
//!    command table, one file per family), [`admin`] (the NodeAdmin gRPC service),
//!    [`ops`] (the metrics page and health checks), [`server`] (start-up, serving, [`serve`]),
//!    [`cluster`] (Redis Cluster mode: the slot map the sentinels push, routing).
#![deny(missing_docs)]

pub mod admin;
pub mod cluster;
pub mod cmd;
pub mod cmdstats;
pub mod config;
pub mod ctx;
pub mod db;
pub mod dispatch;
pub mod engines;
pub mod error;
pub mod execute;
pub mod gate;
mod hold;
pub mod ldouble;
pub mod maxmemory;
pub mod migrate;
pub mod monitor;
pub mod node;
pub mod ops;
pub mod pause;
pub mod persist;
pub mod repl;
pub mod replay;
pub mod script;
pub mod server;
pub mod session;
pub mod slowlog;
pub mod stream;
mod tasks;
pub mod tracking;
mod waits;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::Node;
pub use server::{open, run, serve};
