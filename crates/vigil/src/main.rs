//! `vigil`: the one binary. It parses arguments, sets up logging and hands over to the
//! libraries (`vigil_node`, `vigil_sentinel`, `vigil_agent`, and this crate's `up`, `ctl` and `drill`, which
//! own their runtimes and exit codes).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil::{ctl, drill, up};
use vigil_node::NodeConfig;

/// jemalloc, as redis-server uses: many small, short-lived allocations (requests, replies,
/// Lua's strings and tables) cost less than with glibc's allocator, and fragment less.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "High-availability supervisor for Redis-protocol data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a storage node: a Redis-protocol server with durable persistence.
    Node(NodeArgs),
    /// Run a sentinel: a member of the Raft group that holds the cluster state.
    Sentinel(SentinelArgs),
    /// Run beside a stock redis-server or valkey-server and serve NodeAdmin for it, so the
    /// sentinels manage it as they manage `vigil node`.
    Agent(AgentArgs),
    /// Run a whole cluster on this machine: 3 storage nodes and 3 sentinels.
    Up(up::UpArgs),
    /// Operate the sentinels from a terminal: status, events, failover, membership.
    Ctl(ctl::CtlArgs),
    /// Rehearse failures: a workload, a fault each round, a report; non-zero exit if a round
    /// failed.
    Drill(drill::DrillArgs),
}

#[derive(clap::Args)]
struct SentinelArgs {
    /// TOML config file (see config/sentinel.toml).
    #[arg(long, required_unless_present = "import_redis_sentinel")]
    config: Option<PathBuf>,
    /// Print the Vigil `[[groups]]` equivalent to a Redis Sentinel config file (its `sentinel
    /// monitor`, settings, credentials and known replicas) and exit; runs no sentinel.
    #[arg(long, value_name = "SENTINEL_CONF", conflicts_with = "config")]
    import_redis_sentinel: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// TOML config file (see config/agent.toml).
    #[arg(long)]
    config: PathBuf,
    /// Serve /metrics and the health checks (/primary, /replica, /health...) over HTTP on
    /// this address ("127.0.0.1:9121").
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// TOML config file (see config/node.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// TCP port for clients (0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    bind: Option<String>,
    /// TCP port for TLS clients (with `--port 0`: TLS only).
    #[arg(long)]
    tls_port: Option<u16>,
    /// This node's certificate chain (PEM).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// The CA certificate that signs clients and servers (PEM).
    #[arg(long)]
    tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate: yes, no or optional.
    #[arg(long)]
    tls_auth_clients: Option<String>,
    /// The link to the master uses TLS.
    #[arg(long)]
    tls_replication: bool,
    /// NodeAdmin (gRPC) over TLS.
    #[arg(long)]
    tls_admin: bool,
    /// Data directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Password clients must AUTH with.
    #[arg(long)]
    requirepass: Option<String>,
    /// appendfsync policy: always, everysec or no.
    #[arg(long)]
    appendfsync: Option<String>,
    /// Follow this master ("host:port") at start-up.
    #[arg(long)]
    replicaof: Option<String>,
    /// Port of the NodeAdmin gRPC endpoint (0 picks a free one); it runs when a token is set.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Load this RDB file (written by redis-server 7.0 or older) into an empty data directory
    /// at start-up; the node's own persistence keeps it from then on.
    #[arg(long)]
    import: Option<PathBuf>,
    /// Serve /metrics and the health checks (/primary, /replica, /health...) over HTTP on
    /// this address ("127.0.0.1:9121").
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = vigil_node::maxmemory::ALLOCATOR.set("jemalloc-5.3.0");
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => run_node(args),
        Command::Sentinel(args) => run_sentinel(args),
        Command::Agent(args) => run_agent(args),
        Command::Up(args) => up::run(args),
        Command::Drill(args) => std::process::exit(drill::main(args)),
        Command::Ctl(args) => std::process::exit(ctl::main(args)),
    }
}

/// A runtime with `threads` workers (0: one per core).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(threads).enable_all();
    // Connections whose requests arrive together run in arrival order, as in redis-server's
    // event loop: tokio's LIFO slot would run the last one woken first, so a PUBLISH sent
    // just after another client's UNSUBSCRIBE could still reach that client.
    #[cfg(tokio_unstable)]
    b.disable_lifo_slot();
    b.build()
}

fn run_sentinel(args: SentinelArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.import_redis_sentinel {
        print!("{}", vigil_sentinel::import::convert_file(path)?);
        return Ok(());
    }
    let Some(path) = &args.config else {
        anyhow::bail!("--config is required");
    };
    let config = vigil_sentinel::config::SentinelConfig::load(path)?;
    let runtime = runtime(config.threads)?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        cancel_on_signal(shutdown.clone());
        Ok(vigil_sentinel::serve(config, shutdown).await?)
    })
}

fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = vigil_agent::AgentConfig::load(&args.config)?;
    if let Some(m) = args.metrics {
        config.metrics = m;
    }
    let runtime = runtime(2)?;
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        cancel_on_signal(shutdown.clone());
        Ok(vigil_agent::serve(config, shutdown).await?)
    })
}

fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if let Some(p) = args.port {
        config.port = p;
    }
    if let Some(b) = args.bind {
        config.bind = b;
    }
    if let Some(p) = args.tls_port {
        config.tls_port = p;
    }
    if let Some(f) = args.tls_cert_file {
        config.tls_cert_file = f;
    }
    if let Some(f) = args.tls_key_file {
        config.tls_key_file = f;
    }
    if let Some(f) = args.tls_ca_cert_file {
        config.tls_ca_cert_file = f;
    }
    if let Some(a) = args.tls_auth_clients {
        config.tls_auth_clients = a;
    }
    config.tls_replication |= args.tls_replication;
    config.tls_admin |= args.tls_admin;
    if let Some(d) = args.dir {
        config.dir = d;
    }
    if let Some(pw) = args.requirepass {
        config.requirepass = pw;
    }
    if let Some(f) = args.appendfsync {
        config.persistence.appendfsync =
            vigil_node::config::AppendFsync::parse(&f).ok_or_else(|| {
                anyhow::anyhow!("invalid --appendfsync {f:?}: use always, everysec or no")
            })?;
    }
    if let Some(r) = args.replicaof {
        config.replication.replicaof = r;
    }
    if let Some(p) = args.admin_port {
        config.admin.port = p;
    }
    if let Some(m) = args.metrics {
        config.metrics = m;
    }
    config.import = args.import;
    config.validate("command line")?;
    let runtime = runtime(config.threads)?;
    let config_file = args.config.clone();
    runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        cancel_on_signal(shutdown.clone());
        vigil_node::serve(config, config_file, shutdown.cancelled_owned()).await
    })?;
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT (Ctrl-C): the server then stops cleanly.
fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received, shutting down");
        token.cancel();
    });
}
