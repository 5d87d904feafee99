//! The Lua 5.1 sandbox Redis scripts and functions run in: [`Engine`] (one Lua state with
//! Redis 7.0's libraries, protected globals and `redis` API), the conversions between Lua
//! values and replies ([`convert`]), and Redis' deterministic `math.random` ([`rand48`]).
//!
//! The crate knows nothing of the node: a script's `redis.call` goes through the [`Host`] the
//! caller passes, which runs the command on the locked dataset.
#![deny(missing_docs)]

pub mod convert;
mod engine;
mod ffi;
pub mod libs;
pub mod rand48;
mod run;
mod shebang;

pub use engine::{Engine, FunctionInfo, ScriptFlags, Tick, sha1_hex};
pub use rand48::Rand48;
pub use run::Host;
pub use shebang::{parse_metadata, parse_shebang};

#[cfg(test)]
mod tests;
