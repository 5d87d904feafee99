//! The `vigil` binary's operator tools, kept in a library so that the binary only parses
//! arguments: [`up`] (a local cluster), [`ctl`] (the sentinels' gRPC API from a terminal),
//! [`drill`] (failover drills with reports).
#![deny(missing_docs)]

pub mod ctl;
pub mod drill;
pub mod up;
