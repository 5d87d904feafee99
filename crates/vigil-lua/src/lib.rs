//! The Lua 5.1 sandbox Redis scripts and functions run in: [`Engine`] (one Lua state with
//! Redis 7.0's libraries, protected globals and `redis` API), the conversions between Lua
//! values and replies ([`convert`]), and Redis' deterministic `math.random` ([`rand48`]).
//!
//! The crate knows nothing of the node: a script's `redis.call` goes through the [`Host`] the
//! caller passes, which runs the command on the locked dataset.
#![deny(missing_docs)]

pub mod convert;
mod engine;
pub mod libs;
pub mod rand48;

pub use engine::{
    Engine, FunctionInfo, Host, ScriptFlags, Tick, parse_metadata, parse_shebang, sha1_hex,
};
pub use rand48::Rand48;

#[cfg(test)]
mod tests;
