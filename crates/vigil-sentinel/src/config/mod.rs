//! Sentinel configuration: a TOML file (`config/sentinel.toml`). Unknown keys are errors;
//! durations are humantime strings (`"100ms"`, `"5s"`).
//!
//! Every `[[groups]]` entry is checked exactly as a `Monitor` of it would be (plus what only
//! the file can get wrong: a node's `admin` against the group's `driver`), so a config that
//! loads never holds a group the leader would fail to add.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::state::{Driver, GroupSpec, NodeSpec, Rejected, Settings};

/// A configuration error naming the file and the key.
#[derive(Debug, Error)]
#[error("invalid config in {file}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

/// The whole sentinel configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// This sentinel's Raft id (unique, at least 1).
    pub id: u64,
    /// gRPC listen address (public API and Raft transport).
    pub grpc: String,
    /// The Redis Sentinel protocol endpoint's address (port 0: any free port, printed at
    /// start-up as `resp listening on ADDR`).
    #[serde(default = "defaults::resp")]
    pub resp: String,
    /// The Redis Sentinel protocol over TLS on the `resp` address' host (0: none); its
    /// clients are handed out the nodes' TLS addresses (`tls_data`).
    #[serde(default)]
    pub tls_port: u16,
    /// This sentinel's certificate chain (PEM).
    #[serde(default)]
    pub tls_cert_file: PathBuf,
    /// The private key of `tls_cert_file` (PEM).
    #[serde(default)]
    pub tls_key_file: PathBuf,
    /// The CA that signs clients' certificates (PEM).
    #[serde(default)]
    pub tls_ca_cert_file: PathBuf,
    /// Whether TLS clients must present a certificate: `yes`, `no` or `optional` (default yes).
    #[serde(default)]
    pub tls_auth_clients: Option<String>,
    /// gRPC over TLS: the client API and Raft traffic served with mutual TLS, and every
    /// channel to peers and nodes' NodeAdmin (which then need `tls_admin`) opened with TLS.
    #[serde(default)]
    pub tls_grpc: bool,
    /// The sentinel's own RESP connections to nodes (its PING probe) over TLS, to each node's
    /// `tls_data` address (its `data` when it has none: a TLS-only node). Redis Sentinel's
    /// `tls-replication`. Needed for nodes that serve TLS only (`port = 0`).
    #[serde(default)]
    pub tls_replication: bool,
    /// The host other sentinels and clients are told this sentinel's Redis Sentinel protocol
    /// endpoint is at, where that differs from `resp` (NAT, containers, a wildcard bind): a
    /// hostname or an IP address (empty: `resp`'s). Redis Sentinel's `announce-ip`.
    #[serde(default)]
    pub announce_ip: String,
    /// The port announced with it (0: `resp`'s). Redis Sentinel's `announce-port`.
    #[serde(default)]
    pub announce_port: u16,
    /// The password clients give the Redis Sentinel protocol endpoint (`AUTH`, `HELLO … AUTH`);
    /// empty: none.
    #[serde(default)]
    pub password: String,
    /// `"host:port"` of the HTTP endpoint serving `/metrics` and the health checks (empty:
    /// none).
    #[serde(default)]
    pub metrics: String,
    /// The ACL file of the Redis Sentinel protocol endpoint (`user …` lines, ACL SAVE /
    /// LOAD); empty: none (only `password`, the `default` user's).
    #[serde(default)]
    pub aclfile: String,
    /// Data directory (the Raft log).
    pub dir: PathBuf,
    /// The cluster token (every gRPC call carries it).
    #[serde(default)]
    pub token: String,
    /// A file whose first line is the token, instead of `token`.
    #[serde(default)]
    pub token_file: PathBuf,
    /// The storage nodes' NodeAdmin token (their `[admin] token`), presented on every
    /// NodeAdmin call the leader makes.
    #[serde(default)]
    pub node_token: String,
    /// The founding sentinels, this one included (used on first start only).
    pub peers: Vec<Peer>,
    /// Start as a newcomer waiting to be added (`AddSentinel`) instead of founding the group
    /// from `peers`.
    #[serde(default)]
    pub join: bool,
    /// Worker threads of the sentinel's runtime (0: one per core). One is plenty: lookups are
    /// cheap and a single worker answers them with less scheduling overhead (the Raft log has
    /// a thread of its own).
    #[serde(default = "defaults::threads")]
    pub threads: usize,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftConfig,
    /// Groups to monitor (the leader adds any that the cluster state lacks).
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
}

/// A founding sentinel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its Raft id.
    pub id: u64,
    /// Its gRPC address.
    pub address: String,
}

/// `[raft]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    /// One tick.
    #[serde(deserialize_with = "duration")]
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Snapshot and compact the log every this many entries.
    pub compact_every: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        let d = crate::driver::Options::default();
        RaftConfig {
            tick: d.tick,
            election_ticks: d.election_ticks,
            heartbeat_ticks: d.heartbeat_ticks,
            compact_every: d.compact_every,
        }
    }
}

/// `[[groups]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Group name (the Sentinel "master name").
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<NodeConfig>,
    /// Sentinels that must agree the master is down.
    #[serde(default = "defaults::quorum")]
    pub quorum: u32,
    /// Silence before a node is subjectively down.
    #[serde(default = "defaults::down_after", deserialize_with = "duration")]
    pub down_after: Duration,
    /// Longest a failover may take.
    #[serde(default = "defaults::failover_timeout", deserialize_with = "duration")]
    pub failover_timeout: Duration,
    /// Replicas repointed at a time.
    #[serde(default = "defaults::parallel_syncs")]
    pub parallel_syncs: u32,
    /// Replicas further behind (bytes) are not promoted.
    #[serde(default = "defaults::max_lag")]
    pub max_lag_on_failover: u64,
    /// The nodes' synchronous mode.
    #[serde(default)]
    pub sync_replicas: u32,
    /// Shortest time between failovers.
    #[serde(default = "defaults::min_interval", deserialize_with = "duration")]
    pub min_failover_interval: Duration,
    /// How the sentinels manage the nodes: `"grpc"` (default: `vigil node` / `vigil agent`
    /// over NodeAdmin at `admin`) or `"resp"` (stock servers over RESP at `data`).
    #[serde(default, deserialize_with = "driver")]
    pub driver: Driver,
    /// ACL user for the servers' data port (`resp` only; needs `auth_pass`).
    #[serde(default)]
    pub auth_user: String,
    /// Password for the servers' data port (`resp` only; empty: no `AUTH`).
    #[serde(default)]
    pub auth_pass: String,
    /// Commands the servers know by another name (their `rename-command`), e.g.
    /// `{ CONFIG = "XCONFIG" }`; names are case-insensitive (`resp` only).
    #[serde(default)]
    pub rename_commands: BTreeMap<String, String>,
}

/// `[[groups.nodes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique name within the group.
    pub name: String,
    /// Data address.
    pub data: String,
    /// NodeAdmin address: required with driver `grpc`; with `resp` absent (or equal to
    /// `data`: the sentinels manage a stock server at its data port).
    #[serde(default)]
    pub admin: Option<String>,
    /// Failover preference.
    #[serde(default = "defaults::priority")]
    pub priority: u32,
    /// The node's TLS data address (its `tls_port`), handed to clients of the TLS port.
    #[serde(default)]
    pub tls_data: Option<String>,
}

mod defaults {
    use std::time::Duration;
    pub fn threads() -> usize {
        1
    }

    pub fn resp() -> String {
        "127.0.0.1:26379".into()
    }
    pub fn quorum() -> u32 {
        2
    }
    pub fn down_after() -> Duration {
        Duration::from_secs(1)
    }
    pub fn failover_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn parallel_syncs() -> u32 {
        1
    }
    pub fn max_lag() -> u64 {
        1024 * 1024
    }
    pub fn min_interval() -> Duration {
        Duration::from_secs(5)
    }
    pub fn priority() -> u32 {
        100
    }
}

fn driver<'de, D: Deserializer<'de>>(d: D) -> Result<Driver, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|e: Rejected| serde::de::Error::custom(e))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?}: {e} (use e.g. \"500ms\", \"5s\")"
        ))
    })
}

impl GroupConfig {
    /// As the state machine declares it.
    pub fn spec(&self) -> GroupSpec {
        GroupSpec {
            name: self.name.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeSpec {
                    name: n.name.clone(),
                    data: n.data.clone(),
                    // A resp node is managed at its data port; a grpc node without `admin`
                    // was refused by `check` (and `validate` refuses the empty address).
                    admin: match self.driver {
                        Driver::Resp => n.data.clone(),
                        Driver::Grpc => n.admin.clone().unwrap_or_default(),
                    },
                    priority: n.priority,
                    tls_data: n.tls_data.clone().unwrap_or_default(),
                })
                .collect(),
            settings: Settings {
                quorum: self.quorum,
                down_after_ms: self.down_after.as_millis() as u64,
                failover_timeout_ms: self.failover_timeout.as_millis() as u64,
                parallel_syncs: self.parallel_syncs,
                max_lag_on_failover: self.max_lag_on_failover,
                sync_replicas: self.sync_replicas,
                min_failover_interval_ms: self.min_failover_interval.as_millis() as u64,
            },
            driver: self.driver,
            auth_user: self.auth_user.clone(),
            auth_pass: self.auth_pass.clone(),
            rename_commands: self
                .rename_commands
                .iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                .collect(),
        }
    }

    /// What the state machine cannot see in the spec: each node's `admin` against the driver,
    /// and a command renamed twice under different cases. Messages name the key and the group.
    fn check(&self) -> Result<(), String> {
        let g = &self.name;
        for n in &self.nodes {
            match (self.driver, &n.admin) {
                (Driver::Grpc, None) => {
                    return Err(format!(
                        "group {g:?}, node {:?}: `admin` (its NodeAdmin address) is required with driver = \"grpc\"",
                        n.name
                    ));
                }
                (Driver::Resp, Some(a)) if a != &n.data => {
                    return Err(format!(
                        "group {g:?}, node {:?}: `admin` must be absent or equal to `data` with driver = \"resp\" (the sentinels manage the server at its data port)",
                        n.name
                    ));
                }
                _ => {}
            }
        }
        if self.spec().rename_commands.len() != self.rename_commands.len() {
            return Err(format!(
                "group {g:?}: `rename_commands` names a command twice (names are case-insensitive)"
            ));
        }
        Ok(())
    }
}

/// Parses `[[groups]]` tables alone (what `--import-redis-sentinel` prints) and validates each
/// group as a sentinel's config does; `file` names the text in errors.
pub fn parse_groups(text: &str, file: &str) -> Result<Vec<GroupConfig>, ConfigError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Groups {
        #[serde(default)]
        groups: Vec<GroupConfig>,
    }
    let g: Groups = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
    for group in &g.groups {
        check_group(group, file)?;
    }
    Ok(g.groups)
}

fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let m = e.message().replace('\n', " ");
    ConfigError {
        file: file.to_string(),
        message: match line {
            Some(l) => format!("line {l}: {m}"),
            None => m,
        },
    }
}

/// One group as `Monitor` would take it.
fn check_group(g: &GroupConfig, file: &str) -> Result<(), ConfigError> {
    let bad = |message: String| ConfigError {
        file: file.to_string(),
        message,
    };
    g.check().map_err(bad)?;
    crate::state::ClusterState::default()
        .apply(
            1,
            &crate::state::Proposal {
                id: 0,
                by: 0,
                at_ms: 0,
                cmd: crate::state::Command::Monitor(g.spec()),
            },
        )
        .map_err(|e| bad(format!("group {:?}: {e}", g.name)))?;
    Ok(())
}

impl SentinelConfig {
    /// The TLS files, when `tls_port`, `tls_grpc` or `tls_replication` is set.
    pub fn tls_files(&self) -> Option<vigil_resp::tls::TlsFiles> {
        (self.tls_port != 0 || self.tls_grpc || self.tls_replication).then(|| {
            vigil_resp::tls::TlsFiles {
                cert_file: self.tls_cert_file.clone(),
                key_file: self.tls_key_file.clone(),
                ca_cert_file: self.tls_ca_cert_file.clone(),
                auth_clients: self
                    .tls_auth_clients
                    .as_deref()
                    .and_then(vigil_resp::tls::AuthClients::parse)
                    .unwrap_or_default(),
            }
        })
    }

    /// The gRPC TLS files, when `tls_grpc` is set.
    pub fn grpc_tls(&self) -> Option<vigil_resp::tls::TlsFiles> {
        self.tls_files().filter(|_| self.tls_grpc)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: format!("cannot read file: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let bad = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        let c: SentinelConfig = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        if c.id == 0 {
            return Err(bad("`id` must be at least 1".into()));
        }
        if !c.peers.iter().any(|p| p.id == c.id) {
            return Err(bad(format!(
                "`peers` must include this sentinel (id {})",
                c.id
            )));
        }
        let mut ids: Vec<u64> = c.peers.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) || ids.contains(&0) {
            return Err(bad("`peers` ids must be unique and at least 1".into()));
        }
        if let Some(files) = c.tls_files() {
            let auth = c.tls_auth_clients.as_deref().unwrap_or("yes");
            if vigil_resp::tls::AuthClients::parse(auth).is_none() {
                return Err(bad(format!(
                    "`tls_auth_clients` must be yes, no or optional, got {auth:?}"
                )));
            }
            files.server_config().map_err(|e| bad(e.to_string()))?;
        }
        if c.token().is_none() {
            return Err(bad(
                "set `token` or `token_file` (a readable, non-empty file): every gRPC call is authenticated".into(),
            ));
        }
        for (key, addr) in [("grpc", &c.grpc), ("resp", &c.resp)] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(format!(
                    "`{key}` must be an ip:port address, got {addr:?}"
                )));
            }
        }
        if !c.metrics.is_empty() && c.metrics.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(format!(
                "`metrics` must be an ip:port address such as \"127.0.0.1:9121\", got {:?}",
                c.metrics
            )));
        }
        if !c.announce_ip.is_empty() && vigil_base::HostPort::new(&c.announce_ip, 0).is_err() {
            return Err(bad(format!(
                "`announce_ip` must be a hostname or an IP address, got {:?}",
                c.announce_ip
            )));
        }
        if c.raft.election_ticks <= c.raft.heartbeat_ticks || c.raft.tick.is_zero() {
            return Err(bad("`raft.election_ticks` must exceed `raft.heartbeat_ticks`, and `raft.tick` must be positive".into()));
        }
        for g in &c.groups {
            check_group(g, file)?;
        }
        Ok(c)
    }

    /// The token.
    pub fn token(&self) -> Option<String> {
        if !self.token.is_empty() {
            return Some(self.token.clone());
        }
        if self.token_file.as_os_str().is_empty() {
            return None;
        }
        std::fs::read_to_string(&self.token_file)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
id = 1
grpc = "127.0.0.1:27379"
dir = "d"
token = "t"
peers = [{ id = 1, address = "127.0.0.1:27379" }, { id = 2, address = "127.0.0.1:27380" }]
[[groups]]
name = "g"
nodes = [{ name = "a", data = "127.0.0.1:6379", admin = "127.0.0.1:16379" }]
"#;

    #[test]
    fn parses_and_refuses_with_file_and_key() {
        let c = SentinelConfig::parse(OK, "s.toml").unwrap();
        assert_eq!(c.groups[0].spec().settings.quorum, 2);
        let named = OK.replace(
            "dir = \"d\"",
            "dir = \"d\"\nannounce_ip = \"sentinel-0.sentinels.svc\"\nannounce_port = 30001",
        );
        let c = SentinelConfig::parse(&named, "s.toml").unwrap();
        assert_eq!(
            (c.announce_ip.as_str(), c.announce_port),
            ("sentinel-0.sentinels.svc", 30001)
        );
        for (from, to, key) in [
            ("id = 1", "id = 0", "id"),
            ("token = \"t\"", "", "token"),
            (
                "id = 2, address = \"127.0.0.1:27380\"",
                "id = 1, address = \"x:1\"",
                "peers",
            ),
            (
                "data = \"127.0.0.1:6379\"",
                "data = \"nope\"",
                "data address",
            ),
            ("dir = \"d\"", "dir = \"d\"\nbogus = 1", "bogus"),
            (
                "dir = \"d\"",
                "dir = \"d\"\nannounce_ip = \"not a host\"",
                "announce_ip",
            ),
        ] {
            let text = OK.replace(from, to);
            let e = SentinelConfig::parse(&text, "s.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("s.toml") && e.contains(key), "{key}: {e}");
        }
    }
}

#[cfg(test)]
mod tests_schema;
