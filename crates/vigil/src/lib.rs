//! The `vigil` binary's operator tools, kept in a library so that the binary only parses
//! arguments: [`up`] (a local cluster), [`ctl`] (the sentinels' gRPC API from a terminal, and
//! the client library of that API the others use), [`drill`] (failover drills with reports).
//!
//! Imports run one way: `drill` uses `up` and `ctl`, `up` uses `ctl`, `ctl` uses neither.
#![deny(missing_docs)]

pub mod ctl;
pub mod drill;
pub mod up;
