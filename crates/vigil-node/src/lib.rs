//! The Vigil storage node: a Redis-protocol key-value server with durable persistence.
//!
//! - [`db`]: the keyspace and value types.
//! - [`cmd`]: the command table and every command, grouped by family.
//! - [`dispatch`]: how a request runs (MULTI, blocking, waiting for the log).
//! - [`persist`]: append log, snapshots, recovery.
//! - [`stream`]: the replication-stream grammar, read by log replay and by replicas.
//! - [`repl`]: replication master → replica.
//! - [`gate`]: the write gate: role, epoch, fence and lease, the check before a command runs
//!   and the one when its reply leaves.
//! - [`admin`]: the NodeAdmin gRPC service.
//! - [`node`]: the node itself: start-up, background tasks, shutdown.
#![deny(missing_docs)]

pub mod admin;
pub mod cmd;
pub mod config;
pub mod ctx;
pub mod db;
pub mod dispatch;
pub mod error;
pub mod gate;
pub mod node;
pub mod persist;
pub mod repl;
pub mod server;
pub mod session;
pub mod stream;
mod tasks;

pub use config::NodeConfig;
pub use error::NodeError;
pub use node::Node;
pub use server::{open, run, serve};
