//! The local cluster's configuration (`config/local-cluster.toml`'s format, built into the
//! binary as the default) and what its storage nodes are ([`Backend`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The local cluster's default configuration (`config/local-cluster.toml`), built in.
pub const DEFAULT_CONFIG: &str = include_str!("../../../../config/local-cluster.toml");

/// What the cluster's storage nodes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `vigil node`: every guarantee (epochs, leases, synchronous replication).
    #[default]
    Vigil,
    /// Stock `redis-server`s, each owned by a `vigil agent` (NodeAdmin, the lease enforced by
    /// pausing writes).
    RedisServer,
    /// Stock `redis-server`s managed by the sentinels over RESP, as Redis Sentinel does.
    RedisResp,
}

impl Backend {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vigil => "vigil",
            Backend::RedisServer => "redis-server",
            Backend::RedisResp => "redis-resp",
        }
    }
}

/// The local cluster's configuration (`config/local-cluster.toml`'s format).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCluster {
    /// Where the processes keep their data, configs and logs (default: [`default_dir`]).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// First node's data port (then +1, +2).
    pub base_port: u16,
    /// First node's admin port.
    pub admin_base_port: u16,
    /// First sentinel's gRPC port.
    pub grpc_base_port: u16,
    /// First sentinel's Redis Sentinel protocol port.
    pub resp_base_port: u16,
    /// First node's metrics port (`/metrics` and the health checks; then +1, +2), followed
    /// by the sentinels' (+3, +4, +5). Stock servers managed over RESP have none.
    #[serde(default = "default_metrics_base_port")]
    pub metrics_base_port: u16,
    /// The group's name.
    pub group: String,
    /// `down_after` of the group, e.g. `"1s"`.
    pub down_after: String,
    /// Synchronous replicas (0: asynchronous replication).
    pub sync_replicas: u32,
    /// The sentinels' cluster token.
    pub token: String,
    /// The nodes' admin token.
    pub node_token: String,
    /// What the storage nodes are.
    #[serde(default)]
    pub backend: Backend,
    /// The `redis-server` program of the stock backends.
    #[serde(default = "default_redis_server")]
    pub redis_server: String,
    /// Shards: 0 runs one group named `group`; N > 0 runs N groups, `shard1` to `shardN`,
    /// sharing the hash slots as the sharded cluster `cluster` (`vigil node` backend only).
    #[serde(default)]
    pub shards: u16,
    /// Replicas of each shard's master (with `shards`; default 2, so three nodes a shard): as
    /// `redis-cli --cluster create --cluster-replicas`.
    #[serde(default = "default_shard_replicas")]
    pub shard_replicas: u16,
    /// The sharded cluster's name (with `shards`).
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Worker threads of each `vigil node` (default 1, redis-server's one event loop; 0: one
    /// per core). Every node of a local cluster shares this machine's cores with the others and
    /// with the clients, so a worker per core in each would only make them take turns.
    #[serde(default = "default_node_threads")]
    pub node_threads: usize,
}

fn default_node_threads() -> usize {
    1
}

fn default_shard_replicas() -> u16 {
    2
}

fn default_cluster() -> String {
    "mycluster".into()
}

fn default_metrics_base_port() -> u16 {
    9121
}

fn default_redis_server() -> String {
    "redis-server".into()
}

/// Where a local cluster keeps its data unless told otherwise: `$XDG_DATA_HOME/vigil/local-cluster`,
/// else `~/.local/share/vigil/local-cluster`, else `./vigil-data`.
pub fn default_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("XDG_DATA_HOME") {
        d.join("vigil/local-cluster")
    } else if let Some(h) = env("HOME") {
        h.join(".local/share/vigil/local-cluster")
    } else {
        PathBuf::from("vigil-data")
    }
}

impl LocalCluster {
    /// Reads the file.
    pub fn load(path: &Path) -> anyhow::Result<LocalCluster> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in configuration ([`DEFAULT_CONFIG`]).
    pub fn builtin() -> anyhow::Result<LocalCluster> {
        Self::parse(DEFAULT_CONFIG, "the built-in local cluster configuration")
    }

    /// Parses `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<LocalCluster> {
        let c: LocalCluster = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("invalid config in {origin}: {}", e.message()))?;
        humantime::parse_duration(&c.down_after).with_context(|| {
            format!(
                "invalid config in {origin}: `down_after` {:?} is not a duration",
                c.down_after
            )
        })?;
        if c.token.is_empty() || c.node_token.is_empty() {
            bail!("invalid config in {origin}: `token` and `node_token` must not be empty");
        }
        c.check_shards(origin)?;
        Ok(c)
    }

    /// Shards need `vigil node`s, and every port of 3 nodes per shard must fit.
    pub fn check_shards(&self, origin: &str) -> anyhow::Result<()> {
        if self.shards == 0 {
            return Ok(());
        }
        if self.backend != Backend::Vigil {
            bail!(
                "invalid config in {origin}: `shards` needs the `vigil` backend (stock servers cannot be shards)"
            );
        }
        if self.shards > 64 {
            bail!(
                "invalid config in {origin}: `shards` is at most 64, got {}",
                self.shards
            );
        }
        if self.shard_replicas > 4 {
            bail!(
                "invalid config in {origin}: `shard_replicas` is at most 4, got {}",
                self.shard_replicas
            );
        }
        if self.sync_replicas > u32::from(self.shard_replicas) {
            bail!(
                "invalid config in {origin}: `sync_replicas` ({}) cannot exceed `shard_replicas` ({}): no write could be acknowledged",
                self.sync_replicas,
                self.shard_replicas
            );
        }
        Ok(())
    }

    /// Nodes in each group: three in one group, a master and `shard_replicas` in a shard.
    pub fn per_group(&self) -> u16 {
        match self.shards {
            0 => 3,
            _ => 1 + self.shard_replicas,
        }
    }

    /// The groups: `(name, first node index)`, [`LocalCluster::per_group`] nodes each.
    pub fn groups(&self) -> Vec<(String, u16)> {
        if self.shards == 0 {
            return vec![(self.group.clone(), 0)];
        }
        (0..self.shards)
            .map(|k| (format!("shard{}", k + 1), self.per_group() * k))
            .collect()
    }

    /// How many storage nodes run.
    pub fn node_count(&self) -> u16 {
        self.per_group() * self.shards.max(1)
    }

    /// The sentinels' Raft tick: a twentieth of `down_after` (10–100 ms), so that an election
    /// (a candidate stands 8 to 12 ticks after the leader's last heartbeat) ends within what the
    /// master's lease has left when the sentinel leader dies; the sentinels warn at start where
    /// the margin is thin (a short `down_after`).
    pub(super) fn raft_tick(&self) -> Duration {
        humantime::parse_duration(&self.down_after)
            .map_or(Duration::from_millis(50), |d| d / 20)
            .clamp(Duration::from_millis(10), Duration::from_millis(100))
    }
}
