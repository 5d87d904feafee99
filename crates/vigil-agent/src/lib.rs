//! `vigil agent`: NodeAdmin for a stock `redis-server` or `valkey-server`, so the sentinels
//! drive it exactly as they drive `vigil node`.
//!
//! Layout, bottom up:
//! - [`stock`]: the RESP connection to a stock server and its `INFO` (shared with the
//!   sentinels' agentless driver);
//! - [`config`], [`error`], [`authority`] (epoch, role, fence, lease: the rule for when the
//!   server may take writes);
//! - [`agent`] (shared state; observe the server, enforce the pause), [`owner`] (start and own
//!   the server process), [`keeper`] (the loop that watches the server and times the pause);
//! - [`service`] (the NodeAdmin gRPC service), [`ops`] (metrics and health checks over
//!   HTTP) and [`serve`], which wires them up.
//!
//! What the agent keeps of `vigil node`'s guarantees: epochs persisted in its directory and a
//! lower one refused; the write lease held on the agent's monotonic clock and enforced on the
//! server with `CLIENT PAUSE … WRITE` before it ends; a server the agent starts or attaches to
//! stays write-paused, and a replica of nothing that serves no replica, until the sentinels
//! give it a role; with `exec`, the server dies with
//! the agent. What it cannot keep: a write the server runs in the instant between the lease's
//! end and the pause (none when the agent is scheduled on time, see [`authority::margin`]),
//! and synchronous replication (`min-replicas-to-write` is best effort: Redis replicas
//! acknowledge once a second).
#![deny(missing_docs)]

pub mod agent;
pub mod authority;
pub mod config;
pub mod error;
pub mod keeper;
pub mod ops;
pub mod owner;
pub mod service;
pub mod stock;

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_proto::node::node_admin_server::NodeAdminServer;

pub use config::AgentConfig;
pub use error::AgentError;

use agent::{Agent, PAUSE_SPAN};
use owner::{Lifecycle, Owner};
use stock::{Access, Endpoint, Server};

/// How long a server the agent started may take to load its dataset and answer.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the agent until `shutdown`: starts (or attaches to) the server, pauses its writes,
/// serves NodeAdmin. Prints `admin listening on ADDR` once the admin port is open.
pub async fn serve(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.dir).map_err(|source| AgentError::Dir {
        path: config.dir.clone(),
        source,
    })?;
    let epoch = vigil_base::epoch::load(&config.dir)?;
    let access = Access {
        user: config.auth_user.clone(),
        pass: config.auth_pass.clone(),
        renames: config.rename_commands.clone(),
        tls: None,
    };
    let server = |t| Server::new(Endpoint::Tcp(config.server.clone()), access.clone(), t);
    let (query, control) = (server(config.timeout), server(config.timeout));
    let admin_addr = format!("{}:{}", config.admin.bind, config.admin.port);
    let listener = tokio::net::TcpListener::bind(&admin_addr)
        .await
        .map_err(|source| AgentError::Listen {
            addr: admin_addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AgentError::Listen {
        addr: admin_addr,
        source,
    })?;
    let token = config.admin.token.clone();
    let span = tracing::info_span!("agent", server = %config.server, epoch);
    let owned = (!config.exec.is_empty()).then(|| Owner::start(config.exec.clone(), &config.dir));
    let pid = owned.as_ref().map(|(o, _)| o.pid());
    let agent = Arc::new(Agent::new(config, epoch, query, control, span.clone(), pid));
    serve_agent(agent, listener, local, token, owned, shutdown)
        .instrument(span)
        .await
}

async fn serve_agent(
    agent: Arc<Agent>,
    listener: tokio::net::TcpListener,
    local: std::net::SocketAddr,
    token: String,
    owned: Option<(Owner, tokio::sync::mpsc::UnboundedReceiver<Lifecycle>)>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let span = tracing::Span::current();

    let owner = match owned {
        Some((owner, events)) => {
            tokio::spawn(watch_owned(agent.clone(), events).instrument(span.clone()));
            Some(owner)
        }
        None => {
            tracing::warn!(
                "attached to a running server (no `exec`): if this agent dies, the server keeps taking writes once its pause runs out ({} s); set `exec` so that it dies with the agent",
                PAUSE_SPAN.as_secs()
            );
            None
        }
    };
    tokio::spawn(keeper::run(agent.clone()).instrument(span));
    if !agent.config.metrics.is_empty() {
        let source = Arc::new(ops::AgentOps {
            agent: agent.clone(),
        });
        let stop = shutdown.clone().cancelled_owned();
        let addr = vigil_proto::ops::spawn(&agent.config.metrics, source, stop)
            .await
            .map_err(|source| AgentError::Listen {
                addr: agent.config.metrics.clone(),
                source,
            })?;
        println!("metrics listening on {addr}");
    }

    println!("admin listening on {local}");
    let check = vigil_proto::auth::TokenCheck::new(
        &token,
        "missing or wrong admin token: send `authorization: Bearer <token>` with the agent's [admin] token",
    );
    let svc = NodeAdminServer::with_interceptor(service::AdminService::new(agent.clone()), check);
    let stop = shutdown.clone();
    let result = tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned())
        .await;
    agent.shutdown.cancel();
    // Stops the server (SIGTERM) and waits for it.
    drop(owner);
    Ok(result?)
}

/// Follows the owned server's life: each time it starts, pause its writes over the boot
/// socket and only then open its data port.
async fn watch_owned(
    agent: Arc<Agent>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Lifecycle>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Lifecycle::Started(pid) => {
                tracing::info!(pid, "server started");
                match boot(&agent).await {
                    Ok(()) => tracing::info!(pid, "server writes paused, data port open"),
                    Err(e) => {
                        tracing::error!(pid, error = %e, "server not booted: its data port stays closed")
                    }
                }
                agent.changed.notify_one();
            }
            Lifecycle::Exited(how) => tracing::warn!(how, "server exited; restarting it"),
            Lifecycle::Failed(why) => tracing::error!(why, "server could not be started; retrying"),
        }
    }
}

/// Over the boot socket: pause writes, hold it as a replica of nothing (it serves no
/// replica, see [`Agent::reconcile`]), then open the data port.
async fn boot(agent: &Agent) -> Result<(), stock::StockError> {
    let socket = owner::boot_socket(&agent.config.dir);
    let access = Access {
        user: agent.config.auth_user.clone(),
        pass: agent.config.auth_pass.clone(),
        renames: agent.config.rename_commands.clone(),
        tls: None,
    };
    let s = Server::new(Endpoint::Unix(socket), access, agent.config.timeout);
    let deadline = tokio::time::Instant::now() + BOOT_TIMEOUT;
    let ms = PAUSE_SPAN.as_millis().to_string();
    let hold = agent::HOLD.1.to_string();
    let port = agent.config.server_port().to_string();
    loop {
        // The whole sequence is retried (each step is idempotent): while the server loads its
        // data it accepts CLIENT PAUSE but refuses REPLICAOF with -LOADING.
        let steps = async {
            s.call(&["CLIENT", "PAUSE", &ms, "WRITE"]).await?;
            s.call(&["REPLICAOF", agent::HOLD.0, &hold]).await?;
            s.call(&["CONFIG", "SET", "port", &port]).await
        };
        match steps.await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline || agent.shutdown.is_cancelled() => {
                return Err(e);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
