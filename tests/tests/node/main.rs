//! The suites that run nodes without sentinels (commands compared byte for byte with
//! redis-server, persistence, replication, protocol abuse, the code's layout), as one test
//! binary: one link and one lint pass instead of thirty, and the harness runs the suites' tests
//! side by side rather than one suite after another. The suites that start sentinels keep a
//! binary each: their failovers are timed, and they share the machine only with their own.

mod abuse;
mod access;
mod bitmaps;
mod client_modes;
mod cluster_differential;
mod command_keys;
mod commands;
mod compact;
mod conformance;
mod differential;
mod dump;
mod durability;
mod geo;
mod health;
mod layout;
mod metrics;
mod migrate;
mod migrate_node;
mod monitor;
mod mpop;
mod notifications;
mod replication;
mod scripting;
mod server_cmds;
mod server_keys;
mod sort_lcs;
mod stats;
mod streams;
mod tracking;
mod zalgebra;
