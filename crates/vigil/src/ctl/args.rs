//! `vigil ctl`'s command line: the flags and subcommands (clap), and the parsing of the values
//! clap leaves as text (`--node NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY]`, the token sources).
//! Nothing here talks to a sentinel; an argument that cannot be used fails here, before any
//! connection, with a sentence that shows the expected form.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use vigil_proto::sentinel as pb;

/// `vigil ctl` flags.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// A sentinel's gRPC address (`grpc` in its config).
    #[arg(long, env = "VIGIL_SENTINEL", default_value = "127.0.0.1:27379")]
    pub sentinel: String,
    /// The sentinels' cluster token (`token` in their config).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the cluster token (surrounding whitespace ignored).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Print JSON (one document; one object per line for `watch`) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long one call may take (a change waits up to 10 s for the sentinels to commit it).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// TLS to sentinels with `tls_grpc`.
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// TLS for the gRPC calls of `vigil ctl` and `vigil drill` (sentinels with `tls_grpc`).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct TlsClientArgs {
    /// The CA certificate (PEM) the sentinels' certificates are signed by; turns TLS on.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) to present (sentinels with `tls_auth_clients = "yes"`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsClientArgs {
    /// Makes every gRPC channel of this process use TLS, if --tls-ca was given.
    pub fn apply(&self) -> anyhow::Result<()> {
        let Some(ca) = &self.tls_ca else {
            if self.tls_cert.is_some() {
                bail!("--tls-cert needs --tls-ca");
            }
            return Ok(());
        };
        let files = vigil_resp::tls::TlsFiles {
            cert_file: self.tls_cert.clone().unwrap_or_default(),
            key_file: self.tls_key.clone().unwrap_or_default(),
            ca_cert_file: ca.clone(),
            auth_clients: vigil_resp::tls::AuthClients::No,
        };
        vigil_proto::tls::set_client(files).map_err(|e| anyhow!(e))?;
        Ok(())
    }
}

/// `vigil ctl` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CtlCommand {
    /// Groups (master, replicas with their lag, epoch, failover state) and the sentinels
    /// (Raft leader, term, members).
    Status,
    /// Streams events (`+sdown`, `+odown`, `+switch-master`, ...) as they happen; Ctrl-C ends.
    Watch {
        /// Only this group's events.
        #[arg(long)]
        group: Option<String>,
    },
    /// Manual failover (switchover): fence the master, let a replica catch up, promote it.
    Failover {
        /// The group.
        group: String,
        /// The node to promote (default: the best replica).
        #[arg(long)]
        to: Option<String>,
    },
    /// Starts monitoring a group of storage nodes.
    Monitor {
        /// The group's name (the Sentinel "master name").
        group: String,
        /// A node as NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY[,TLS-DATA-ADDR]], e.g.
        /// `n1,10.0.0.1:6379,10.0.0.1:16379` or `n1,10.0.0.1:6379,10.0.0.1:16379,100,10.0.0.1:6380`;
        /// repeat for each node.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Sentinels that must see the master down (default: a majority).
        #[arg(long)]
        quorum: Option<u32>,
        /// How long a master may be silent before it counts as down (e.g. `1s`).
        #[arg(long, value_parser = humantime::parse_duration)]
        down_after: Option<Duration>,
        /// Replicas that must acknowledge a write before the master does (0: asynchronous).
        #[arg(long)]
        sync_replicas: Option<u32>,
    },
    /// Stops monitoring a group (its nodes keep running).
    Remove {
        /// The group.
        group: String,
    },
    /// Changes a group setting, with Redis Sentinel's names: quorum, down-after-milliseconds,
    /// failover-timeout, parallel-syncs, max-lag-on-failover, sync-replicas,
    /// min-failover-interval.
    Set {
        /// The group.
        group: String,
        /// The setting.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Changes the sentinels' Raft membership.
    #[command(subcommand)]
    Sentinel(SentinelCommand),
    /// Sharded clusters: groups sharing the 16,384 hash slots (Redis Cluster protocol).
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `vigil ctl cluster ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Creates a cluster over monitored groups, spreading the slots evenly among them (the
    /// first group gets the lowest slots).
    Create {
        /// The cluster's name.
        name: String,
        /// Its groups, comma-separated: `--groups g1,g2,g3`.
        #[arg(long, required = true, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Each cluster's slot ranges with their group's master, replicas and key counts, and the
    /// migrations in flight.
    Status {
        /// Only this cluster.
        name: Option<String>,
    },
    /// Moves slots from one group to another without losing a write: the target copies them,
    /// the source holds writes to them for a moment, the owner changes, the source deletes
    /// its copies. Waits until it is done.
    MoveSlots {
        /// The cluster.
        name: String,
        /// The group giving the slots.
        #[arg(long)]
        from: String,
        /// The group receiving them.
        #[arg(long)]
        to: String,
        /// Slots or ranges, comma-separated: `--slots 0-999,5000`.
        #[arg(long, required = true, value_delimiter = ',')]
        slots: Vec<String>,
        /// Return once the move is queued.
        #[arg(long)]
        no_wait: bool,
    },
    /// Moves slots until each group holds a share proportional to its weight (evenly by
    /// default). Waits until it is done.
    Rebalance {
        /// The cluster.
        name: String,
        /// Weights, comma-separated: `--weights g1=2,g3=0` (missing groups weigh 1; 0 empties
        /// a group).
        #[arg(long, value_delimiter = ',')]
        weights: Vec<String>,
        /// Return once the moves are queued.
        #[arg(long)]
        no_wait: bool,
    },
    /// Adds a monitored `vigil node` group to a cluster, then rebalances the slots onto it.
    AddGroup {
        /// The cluster.
        name: String,
        /// The group.
        group: String,
        /// Add it without slots.
        #[arg(long)]
        no_rebalance: bool,
    },
    /// Moves a group's slots to the cluster's other groups, then removes it from the cluster
    /// (it stays monitored).
    RemoveGroup {
        /// The cluster.
        name: String,
        /// The group.
        group: String,
    },
}

/// `vigil ctl sentinel ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SentinelCommand {
    /// Adds a sentinel (a learner first, a voter once it has caught up). Start it first with
    /// the others as its peers.
    Add {
        /// Its id.
        id: u64,
        /// Its gRPC address, host:port.
        address: String,
    },
    /// Removes a sentinel (leadership moves away first if it leads).
    Remove {
        /// Its id.
        id: u64,
    },
    /// Hands Raft leadership to another sentinel.
    TransferLeader {
        /// The sentinel to lead.
        to: u64,
    },
}

impl CtlArgs {
    /// The cluster token, from `--token` / `VIGIL_TOKEN` or `--token-file`; never empty.
    pub fn token(&self) -> anyhow::Result<String> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => bail!(
                "no cluster token: pass --token, set VIGIL_TOKEN, or --token-file (the sentinels' `token`)"
            ),
        };
        if token.is_empty() {
            bail!("the cluster token is empty");
        }
        Ok(token)
    }
}

/// A `--node` value: `NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY[,TLS-DATA-ADDR]]` (priority 100 when
/// left out or empty).
pub fn parse_node(spec: &str) -> anyhow::Result<pb::Node> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let bad = || {
        anyhow!(
            "--node {spec:?}: expected NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY[,TLS-DATA-ADDR]], e.g. \
             n1,10.0.0.1:6379,10.0.0.1:16379 or n1,10.0.0.1:6379,10.0.0.1:16379,100,10.0.0.1:6380"
        )
    };
    let (name, data, admin) = match parts.as_slice() {
        [n, d, a] | [n, d, a, _] | [n, d, a, _, _] if !n.is_empty() => (n, d, a),
        _ => return Err(bad()),
    };
    let priority = match parts.get(3) {
        Some(p) if !p.is_empty() => p.parse().map_err(|_| bad())?,
        _ => 100,
    };
    Ok(pb::Node {
        name: name.to_string(),
        data: data.to_string(),
        admin: admin.to_string(),
        priority,
        tls_data: parts.get(4).map(|t| t.to_string()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs() {
        let n = parse_node("n1,10.0.0.1:6379,10.0.0.1:16379,5").unwrap();
        assert_eq!(
            (
                n.name.as_str(),
                n.data.as_str(),
                n.admin.as_str(),
                n.priority
            ),
            ("n1", "10.0.0.1:6379", "10.0.0.1:16379", 5)
        );
        assert_eq!(parse_node("n2,a:1,a:2").unwrap().priority, 100);
        let t = parse_node("n3,a:1,a:2,,a:3").unwrap();
        assert_eq!((t.priority, t.tls_data.as_str()), (100, "a:3"));
        assert_eq!(parse_node("n3,a:1,a:2,7").unwrap().tls_data, "");
        for (i, bad) in [
            "n1",
            "n1,a:1",
            ",a:1,a:2",
            "n1,a:1,a:2,x",
            "n1,a:1,a:2,1,a:3,x",
        ]
        .iter()
        .enumerate()
        {
            assert!(parse_node(bad).is_err(), "#{i} {bad}");
        }
    }

    #[test]
    fn the_token_comes_from_a_flag_or_a_file() {
        let args = |token: Option<&str>, token_file: Option<PathBuf>| CtlArgs {
            sentinel: "127.0.0.1:27379".into(),
            token: token.map(str::to_string),
            token_file,
            json: false,
            timeout: Duration::from_secs(5),
            tls: TlsClientArgs::default(),
            command: CtlCommand::Status,
        };
        assert_eq!(args(Some("t"), None).token().unwrap(), "t");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "  secret\n").unwrap();
        assert_eq!(args(None, Some(f.clone())).token().unwrap(), "secret");
        std::fs::write(&f, "\n").unwrap();
        let e = args(None, Some(f)).token().unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = args(None, None).token().unwrap_err();
        assert!(e.to_string().contains("no cluster token"), "{e}");
        let e = args(None, Some(dir.path().join("missing")))
            .token()
            .unwrap_err();
        assert!(e.to_string().contains("cannot read the token file"), "{e}");
    }
}
