//! Node configuration: a TOML file (`config/node.toml`), overridden by command-line flags.
//!
//! Unknown keys are errors, so a typo never silently falls back to a default. Durations are
//! humantime strings (`"500ms"`, `"5s"`), sizes are bytes or strings with Redis units
//! (`"512mb"`, `"64kb"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use vigil_base::HostPort;

use crate::error::NodeError;

pub mod bindings;
pub mod params;
pub mod redis;
pub mod values;

/// When the append log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// Before every acknowledgement: no acknowledged write is ever lost.
    Always,
    /// Once a second: at most about a second of writes lost on power failure.
    Everysec,
    /// Left to the OS.
    No,
}

impl AppendFsync {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }

    /// Parses the config-file spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(AppendFsync::Always),
            "everysec" => Some(AppendFsync::Everysec),
            "no" => Some(AppendFsync::No),
            _ => None,
        }
    }
}

/// Who decides the node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The node is master unless `replicaof` (or `REPLICAOF`) says otherwise.
    Standalone,
    /// The sentinels assign the role over NodeAdmin; the node boots read-only, persists the
    /// highest epoch it has seen and, as master, writes only under a valid lease.
    Managed,
}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Address to listen on.
    pub bind: String,
    /// RESP port (0 with `tls_port` set: TLS only; 0 otherwise: any free port).
    pub port: u16,
    /// RESP port over TLS (0: none).
    pub tls_port: u16,
    /// This node's certificate chain (PEM), for its TLS port and its TLS links.
    pub tls_cert_file: PathBuf,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: PathBuf,
    /// The CA that signs clients' and servers' certificates (PEM).
    pub tls_ca_cert_file: PathBuf,
    /// Whether TLS clients must present a certificate: `yes`, `no` or `optional`.
    pub tls_auth_clients: String,
    /// The link to the master uses TLS (to its TLS port).
    pub tls_replication: bool,
    /// NodeAdmin (gRPC) over TLS, callers checked against the CA per `tls_auth_clients`.
    pub tls_admin: bool,
    /// The address this node tells its master it can be reached at, where that differs from
    /// the address the master sees (NAT, containers): a hostname or an IP address (empty: the
    /// connection's own address). Redis' `replica-announce-ip`.
    pub announce_ip: String,
    /// The port this node tells its master (0: `port`). Redis' `replica-announce-port`.
    pub announce_port: u16,
    /// Data directory for the snapshot and append log.
    pub dir: PathBuf,
    /// Password clients must AUTH with (empty: none): the `default` user's password.
    pub requirepass: String,
    /// The ACL file (`user …` lines; ACL SAVE / LOAD); empty: none.
    pub aclfile: String,
    /// Number of databases.
    pub databases: usize,
    /// Most simultaneous clients.
    pub maxclients: usize,
    /// Worker threads serving clients (0: one per CPU core).
    pub threads: usize,
    /// Close idle clients after this long (`"0s"`: never).
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// A script running longer than this gets other clients `-BUSY` and may be killed
    /// (`busy-reply-threshold`, alias `lua-time-limit`).
    #[serde(deserialize_with = "duration")]
    pub busy_reply_threshold: Duration,
    /// Persistence settings.
    pub persistence: Persistence,
    /// Input and output bounds.
    pub limits: LimitsConfig,
    /// `standalone` or `managed`.
    pub mode: Mode,
    /// Managed mode: serve reads as master only under a valid lease, and close normal clients
    /// when it lapses (`false`: serve reads whatever the lease, as Redis does).
    pub lease_reads: bool,
    /// In a sharded cluster, a replica serves `READONLY` reads only while its link to its
    /// master streams and the master spoke within this (a keepalive comes every
    /// `replication.ping_period`); past it, reads are sent to the master with `MOVED`: the
    /// staleness bound of replica reads.
    #[serde(deserialize_with = "duration")]
    pub replica_max_read_lag: Duration,
    /// Replication settings.
    pub replication: Replication,
    /// The NodeAdmin gRPC endpoint.
    pub admin: Admin,
    /// `"ip:port"` of the HTTP `/metrics` and health-check endpoint (empty: none).
    pub metrics: String,
    /// `[redis]`: Redis parameters with no key of their own here (encoding thresholds, slow
    /// log, latency monitor, ...), as `CONFIG SET` takes them: name → value text. Only values
    /// that differ from Redis' default are kept (see [`params`]).
    pub redis: std::collections::BTreeMap<String, String>,
    /// An RDB file written by redis-server to load at start-up into an empty data directory
    /// (`vigil node --import`; not a config-file key: it is a one-time action).
    #[serde(skip)]
    pub import: Option<PathBuf>,
}

/// `[replication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// `"host:port"` of the master to follow at start-up (standalone mode).
    pub replicaof: String,
    /// Password to AUTH with at the master.
    pub masterauth: String,
    /// ACL user to AUTH as at the master (empty: `AUTH masterauth`, the default user).
    pub masteruser: String,
    /// Bytes of recent stream kept for partial resynchronisation.
    #[serde(deserialize_with = "size")]
    pub backlog_size: u64,
    /// Failover preference: lower is preferred, 0 never promoted (`replica-priority`).
    pub priority: u32,
    /// Serve (possibly stale) reads while the link to the master is down.
    pub serve_stale_data: bool,
    /// Refuse writes unless this many replicas acknowledged within `min_replicas_max_lag`.
    pub min_replicas_to_write: usize,
    /// See `min_replicas_to_write`.
    #[serde(deserialize_with = "duration")]
    pub min_replicas_max_lag: Duration,
    /// Synchronous mode: a write is acknowledged only once this many replicas have it (0: off).
    pub sync_replicas: usize,
    /// How long a synchronous write waits for its replicas; past it the write's outcome is
    /// unknown and its connection closes without a reply.
    #[serde(deserialize_with = "duration")]
    pub sync_timeout: Duration,
    /// The master sends a PING down an idle stream this often (the replica's liveness signal).
    #[serde(deserialize_with = "duration")]
    pub ping_period: Duration,
    /// A replica that hears nothing from its master for this long drops the link and reconnects.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Most stream bytes queued for one replica before the master drops it.
    #[serde(deserialize_with = "size")]
    pub output_buffer_limit: u64,
}

/// `[admin]`: the NodeAdmin gRPC endpoint. It runs when a token is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address to listen on.
    pub bind: String,
    /// Port (0: any free port).
    pub port: u16,
    /// Bearer token every call must carry.
    pub token: String,
    /// File holding the token (first line), instead of `token`.
    pub token_file: PathBuf,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replicaof: String::new(),
            masterauth: String::new(),
            masteruser: String::new(),
            backlog_size: 1024 * 1024,
            priority: 100,
            serve_stale_data: true,
            min_replicas_to_write: 0,
            min_replicas_max_lag: Duration::from_secs(10),
            sync_replicas: 0,
            sync_timeout: Duration::from_secs(1),
            ping_period: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            output_buffer_limit: 256 * 1024 * 1024,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            bind: "127.0.0.1".into(),
            port: 16379,
            token: String::new(),
            token_file: PathBuf::new(),
        }
    }
}

/// `[persistence]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Persistence {
    /// Keep an append-only command log.
    pub appendonly: bool,
    /// When to fsync it.
    pub appendfsync: AppendFsync,
    /// Compact the log into a snapshot once it exceeds this size...
    #[serde(deserialize_with = "size")]
    pub auto_compact_min_size: u64,
    /// ...and is at least this percentage of the snapshot's size (0: never automatically).
    pub auto_compact_percentage: u64,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest bulk string in a request.
    #[serde(deserialize_with = "size")]
    pub proto_max_bulk_len: u64,
    /// Most arguments in one request.
    pub max_multibulk_len: u64,
    /// Longest inline request.
    #[serde(deserialize_with = "size")]
    pub max_inline_len: u64,
    /// Most unparsed input buffered per client.
    #[serde(deserialize_with = "size")]
    pub client_query_buffer_limit: u64,
    /// Most output queued for a pub/sub client before it is disconnected.
    #[serde(deserialize_with = "size")]
    pub client_output_buffer_limit_pubsub: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            bind: "127.0.0.1".into(),
            port: 6379,
            tls_port: 0,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            tls_ca_cert_file: PathBuf::new(),
            tls_auth_clients: "yes".into(),
            tls_replication: false,
            tls_admin: false,
            announce_ip: String::new(),
            announce_port: 0,
            dir: PathBuf::from("./data/node"),
            requirepass: String::new(),
            aclfile: String::new(),
            databases: 16,
            maxclients: 10_000,
            threads: 0,
            timeout: Duration::ZERO,
            busy_reply_threshold: Duration::from_secs(5),
            persistence: Persistence::default(),
            limits: LimitsConfig::default(),
            mode: Mode::Standalone,
            lease_reads: true,
            replica_max_read_lag: Duration::from_secs(2),
            replication: Replication::default(),
            admin: Admin::default(),
            metrics: String::new(),
            redis: Default::default(),
            import: None,
        }
    }
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            appendonly: true,
            appendfsync: AppendFsync::Everysec,
            auto_compact_min_size: 64 * 1024 * 1024,
            auto_compact_percentage: 100,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        // The parser's defaults are Redis' defaults; they are defined once, there.
        let p = vigil_resp::request::ParseLimits::default();
        LimitsConfig {
            proto_max_bulk_len: p.max_bulk_len as u64,
            max_multibulk_len: p.max_multibulk_len as u64,
            max_inline_len: p.max_inline_len as u64,
            client_query_buffer_limit: p.max_query_buffer as u64,
            client_output_buffer_limit_pubsub: 32 * 1024 * 1024,
        }
    }
}

impl NodeConfig {
    /// Checks `[redis]`: every name a Redis parameter without a key of its own, every value
    /// one `CONFIG SET` would take; names and values are kept as `CONFIG GET` shows them.
    fn check_redis_table(&mut self, file: &str) -> Result<(), NodeError> {
        let bad = |message: String| NodeError::Config {
            file: file.to_string(),
            message,
        };
        let mut checked = std::collections::BTreeMap::new();
        for (k, v) in std::mem::take(&mut self.redis) {
            let p = params::lookup(&k)
                .ok_or_else(|| bad(format!("`redis.{k}`: no such Redis parameter")))?;
            if let Some(b) = p.bound {
                return Err(bad(format!("`redis.{k}`: set `{}` instead", b.toml)));
            }
            let v = p
                .check(&v, p.default)
                .map_err(|e| bad(format!("`redis.{k}`: {e}")))?;
            checked.insert(p.name.to_string(), v);
        }
        self.redis = checked;
        Ok(())
    }

    /// The TLS files when TLS is in use (a TLS port or TLS replication).
    pub fn tls_files(&self) -> Option<vigil_resp::tls::TlsFiles> {
        (self.tls_port != 0 || self.tls_replication || self.tls_admin).then(|| {
            vigil_resp::tls::TlsFiles {
                cert_file: self.tls_cert_file.clone(),
                key_file: self.tls_key_file.clone(),
                ca_cert_file: self.tls_ca_cert_file.clone(),
                auth_clients: vigil_resp::tls::AuthClients::parse(&self.tls_auth_clients)
                    .unwrap_or_default(),
            }
        })
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| NodeError::Config {
            file: file.clone(),
            message: format!("cannot read file: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, NodeError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().replace('\n', " ");
            // The line, quoted: serde names an unknown key but not the key of a value of the
            // wrong type, and the error must name the key.
            let message = match e.span().and_then(|s| text.get(..s.start)) {
                Some(before) => {
                    let l = before.matches('\n').count() + 1;
                    let from = before.rfind('\n').map_or(0, |i| i + 1);
                    let quoted: String = text[from..]
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .chars()
                        .take(80)
                        .collect();
                    format!("line {l} `{quoted}`: {message}")
                }
                None => message,
            };
            NodeError::Config {
                file: file.to_string(),
                message,
            }
        })?;
        let mut cfg = cfg;
        cfg.check_redis_table(file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, file: &str) -> Result<(), NodeError> {
        let bad = |message: String| {
            Err(NodeError::Config {
                file: file.to_string(),
                message,
            })
        };
        if self.databases == 0 || self.databases > 1024 {
            return bad(format!(
                "`databases` must be between 1 and 1024, got {}",
                self.databases
            ));
        }
        if self.maxclients == 0 {
            return bad("`maxclients` must be at least 1".into());
        }
        if vigil_resp::tls::AuthClients::parse(&self.tls_auth_clients).is_none() {
            return bad(format!(
                "`tls_auth_clients` must be yes, no or optional, got {:?}",
                self.tls_auth_clients
            ));
        }
        if let Some(files) = self.tls_files() {
            // Read now, so a missing or malformed file stops start-up with its key and path.
            files.server_config().map_err(|e| NodeError::Config {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        }
        if self.limits.proto_max_bulk_len < 1024 {
            return bad("`limits.proto_max_bulk_len` must be at least 1kb".into());
        }
        if self.limits.client_query_buffer_limit < 1024 * 1024 {
            return bad("`limits.client_query_buffer_limit` must be at least 1mb".into());
        }
        if self.bind.parse::<std::net::IpAddr>().is_err() && self.bind != "localhost" {
            return bad(format!("`bind` must be an IP address, got {:?}", self.bind));
        }
        if !self.announce_ip.is_empty() && HostPort::new(&self.announce_ip, 0).is_err() {
            return bad(format!(
                "`announce_ip` must be a hostname or an IP address, got {:?}",
                self.announce_ip
            ));
        }
        if self.admin.bind.parse::<std::net::IpAddr>().is_err() && self.admin.bind != "localhost" {
            return bad(format!(
                "`admin.bind` must be an IP address, got {:?}",
                self.admin.bind
            ));
        }
        if !self.metrics.is_empty() && self.metrics.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!("`metrics` must be ip:port, got {:?}", self.metrics));
        }
        let r = &self.replication;
        if !r.replicaof.is_empty() {
            if self.mode == Mode::Managed {
                return bad("`replication.replicaof` cannot be used with mode = \"managed\": the sentinels assign the role".into());
            }
            if parse_host_port(&r.replicaof).is_none() {
                return bad(format!(
                    "`replication.replicaof` must be \"host:port\", got {:?}",
                    r.replicaof
                ));
            }
        }
        if r.backlog_size < 16 * 1024 {
            return bad("`replication.backlog_size` must be at least 16kb".into());
        }
        if r.ping_period.is_zero() || r.timeout <= r.ping_period {
            return bad("`replication.timeout` must be longer than `replication.ping_period`, which must not be zero".into());
        }
        if self.replica_max_read_lag <= r.ping_period {
            return bad(format!(
                "`replica_max_read_lag` must be longer than `replication.ping_period` ({}), the master's keepalive: a replica would refuse reads between two",
                humantime::format_duration(r.ping_period)
            ));
        }
        if r.sync_replicas > 0 && r.sync_timeout.is_zero() {
            return bad("`replication.sync_timeout` must not be zero with sync_replicas".into());
        }
        self.check_token_file(file)?;
        if self.mode == Mode::Managed && self.admin_token().is_none() {
            return bad("mode = \"managed\" needs `admin.token` or `admin.token_file`: the sentinels reach the node through the admin API".into());
        }
        if !self.admin.token.is_empty() && !self.admin.token_file.as_os_str().is_empty() {
            return bad("set `admin.token` or `admin.token_file`, not both".into());
        }
        Ok(())
    }

    /// The admin token (from `token` or the first line of `token_file`), if one is set.
    pub fn admin_token(&self) -> Option<String> {
        if !self.admin.token.is_empty() {
            return Some(self.admin.token.clone());
        }
        if self.admin.token_file.as_os_str().is_empty() {
            return None;
        }
        std::fs::read_to_string(&self.admin.token_file)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|t| !t.is_empty())
    }

    /// Checks that a configured token file is readable and not empty.
    pub fn check_token_file(&self, file: &str) -> Result<(), NodeError> {
        let tf = &self.admin.token_file;
        if !tf.as_os_str().is_empty() && self.admin_token().is_none() {
            return Err(NodeError::Config {
                file: file.to_string(),
                message: format!(
                    "`admin.token_file` {} is missing, unreadable or empty",
                    tf.display()
                ),
            });
        }
        Ok(())
    }

    /// The password, if one is set.
    pub fn password(&self) -> Option<bytes::Bytes> {
        (!self.requirepass.is_empty()).then(|| bytes::Bytes::from(self.requirepass.clone()))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?}: {e} (use e.g. \"500ms\", \"5s\")"
        ))
    })
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(n) => Ok(n),
        Size::Text(s) => parse_size(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid size {s:?} (use bytes or e.g. \"64kb\", \"512mb\", \"1gb\")"
            ))
        }),
    }
}

/// Parses `replicaof`'s `host:port` (hostname, IPv4, or bracketed IPv6: the workspace's one
/// [`HostPort`] rules); port 0 is refused, as nothing listens there.
pub fn parse_host_port(s: &str) -> Option<HostPort> {
    s.parse::<HostPort>().ok().filter(|h| h.port() != 0)
}

/// Parses a Redis memory size: `123`, `1k` (1000), `1kb` (1024), `mb`, `gb` likewise.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests;
