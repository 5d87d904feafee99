//! `vigil drill`'s command line: the flags (clap) and the replication mode they choose.

use std::path::PathBuf;
use std::time::Duration;

use super::faults::Scenario;

/// Replication mode of the drilled group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Writes acknowledged once a replica has them (`sync_replicas = 1`): nothing may be lost.
    Sync,
    /// Asynchronous replication: a failover may discard the old master's last writes.
    Async,
}

/// `vigil drill` flags.
#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// TLS to sentinels with `tls_grpc` (--tls-ca, --tls-cert, --tls-key).
    #[command(flatten)]
    pub tls: crate::ctl::args::TlsClientArgs,
    /// The fault each round injects.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// How many rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Replication mode of a local cluster (an attached one is drilled as configured).
    #[arg(long, value_enum, default_value = "sync")]
    pub mode: Mode,
    /// What the local cluster's nodes are (default: `vigil`, or the `--cluster` file's
    /// `backend`): `vigil` nodes, stock `redis-server`s owned by agents, or stock servers
    /// managed over RESP.
    #[arg(long, value_enum, conflicts_with = "attach")]
    pub backend: Option<crate::up::Backend>,
    /// `down_after` of a local cluster.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub down_after: Duration,
    /// Concurrent writers (with `--shards`, at least one per shard, each writing the slots
    /// of one shard).
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Drill a sharded cluster: a local one of N groups of three nodes sharing the hash slots
    /// or, with `--attach`, the sharded cluster named by `--group` (or the only one; any N
    /// above 0). Each round hits the next shard.
    #[arg(long, default_value_t = 0)]
    pub shards: u16,
    /// Slots each round of `migrate-under-load` and `kill-during-migration` moves.
    #[arg(long, default_value_t = 1000)]
    pub move_slots: u32,
    /// Start the local cluster from this file (config/local-cluster.toml's format) instead
    /// of on free ports in a temporary directory.
    #[arg(long, conflicts_with = "attach")]
    pub cluster: Option<PathBuf>,
    /// Drill a running cluster: its sentinels' gRPC addresses, comma-separated. Faults act
    /// on processes of this machine found by their ports; killed ones must be restarted by
    /// their supervisor.
    #[arg(long, value_delimiter = ',')]
    pub attach: Vec<String>,
    /// The group to drill (attached clusters).
    #[arg(long, default_value = "mymaster")]
    pub group: String,
    /// The cluster token (attached clusters).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where to write report.json and report.html.
    #[arg(long, default_value = "drill-report")]
    pub report: PathBuf,
}
