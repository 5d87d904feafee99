//! The Lua 5.1 sandbox Redis scripts and functions run in.
#![deny(missing_docs)]

pub mod libs;
