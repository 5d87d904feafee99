//! RESP server plumbing shared by the storage node and the sentinel.
//!
//! Only [`conn`] touches sockets. Requests are parsed by [`request`] under hard size limits,
//! replies are typed [`Reply`] values encoded per connection for RESP2 or RESP3, and the
//! connection-level commands every Redis client sends first (HELLO, AUTH, CLIENT, PING, SELECT,
//! the pub/sub family) live in [`builtin`], and their table rows in [`connection`], so both
//! servers answer them the same way.
#![deny(missing_docs)]

pub mod acl;
pub mod args;
pub mod builtin;
pub mod clients;
pub mod command;
pub mod conn;
pub mod connection;
pub mod error;
pub mod errorstats;
pub mod glob;
pub mod keys;
pub mod pubsub;
pub mod reply;
pub mod request;
pub mod slot;
pub mod subcommands;
pub mod tls;

pub use args::Args;
pub use command::{CommandMeta, Flags};
pub use conn::{Conn, Limits, Protocol, Service, Shared};
pub use error::CmdError;
pub use reply::Reply;
