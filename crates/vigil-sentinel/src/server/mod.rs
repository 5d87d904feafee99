//! The sentinel process, assembled by one builder, [`run`]: config → Raft storage → gRPC
//! transport → Raft driver → this sentinel's duties (probes, controller, reconciler, the Redis
//! Sentinel protocol endpoint) → the gRPC server, which serves the peer service (`RaftPeer`:
//! Raft messages and opinions) and the client API (`SentinelService`) on one port, both behind
//! the cluster token, until shutdown. [`serve`] binds the listeners first and says where.
//!
//! - `client_api`: `SentinelService` (lookups, watches, the operator's calls).
//! - `peer`: `RaftPeer` (Raft messages in, this sentinel's opinion of a node out).
//! - `convert`: proto ↔ domain (`TryFrom`, failing with `INVALID_ARGUMENT`), and errors → gRPC
//!   status by variant.
//! - `membership`: adding and removing sentinels, handing leadership over.
//! - `reconcile`: the RESP endpoint's start-up and the background reconciler (addresses,
//!   configured groups).

mod client_api;
mod convert;
mod membership;
mod peer;
mod reconcile;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_proto::sentinel::raft_peer_server::RaftPeerServer;
use vigil_proto::sentinel::sentinel_service_server::SentinelServiceServer;

use crate::config::SentinelConfig;
use crate::driver::{self, Handle, Options};
use crate::monitor::Health;
use crate::nodes::{Drivers, NodeAdmin};
use crate::ops::Ops;
use crate::peers::GrpcOpinions;
use crate::storage::{DiskStorage, StoreError};
use crate::transport::GrpcTransport;

/// How long an API read waits for the Raft majority.
const CALL_TIMEOUT: std::time::Duration = crate::driver::CALL_BUDGET;
/// How long an API change waits to commit.
const PROPOSAL_TIMEOUT: std::time::Duration = crate::driver::PROPOSAL_BUDGET;

/// Why the sentinel could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address in the config does not parse.
    #[error("invalid {what} address {address:?}: {source}")]
    BadAddress {
        /// Which listener (`grpc`, `resp`, `metrics`).
        what: &'static str,
        /// The address as configured.
        address: String,
        /// Why.
        source: std::net::AddrParseError,
    },
    /// A listener could not be bound.
    #[error(
        "cannot listen on {address}{what}: {source} (free the port or change it in the config)"
    )]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Which listener, in words (empty for gRPC).
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The Raft log or the driver could not start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error(transparent)]
    Grpc(#[from] tonic::transport::Error),
    /// The TLS certificates could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// The ACL file (`aclfile`) cannot be read or has a bad line.
    #[error("invalid aclfile {file}: {message}")]
    AclFile {
        /// The file.
        file: String,
        /// What is wrong, naming the line.
        message: String,
    },
}

/// A running sentinel's shared parts.
#[derive(Clone)]
pub struct Sentinel {
    /// The Raft driver.
    pub raft: Handle,
    transport: Arc<GrpcTransport>,
    id: u64,
    /// This sentinel's own gRPC address, as its peers know it.
    address: String,
    /// Membership changes one at a time (Raft also refuses a second pending one).
    membership: Arc<tokio::sync::Mutex<()>>,
    /// This sentinel's probes of the nodes.
    health: Arc<Health>,
    /// The operator's operations (shared with the RESP endpoint).
    ops: Ops,
    /// What the controller is doing about each group (while this sentinel leads).
    conditions: crate::controller::Conditions,
    /// What the metrics endpoint shows (the controller counts its calls here).
    counters: Arc<crate::metrics::Counters>,
    /// Cancelled when the sentinel stops.
    shutdown: CancellationToken,
}

/// Binds the gRPC and Redis Sentinel protocol listeners of `config` and runs the sentinel until
/// `shutdown` ([`run`] says what it prints once it is ready).
pub async fn serve(config: SentinelConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    let addr: std::net::SocketAddr =
        config
            .grpc
            .parse()
            .map_err(|source| ServeError::BadAddress {
                what: "grpc",
                address: config.grpc.clone(),
                source,
            })?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            address: addr,
            what: "",
            source,
        })?;
    let resp_addr: std::net::SocketAddr =
        config
            .resp
            .parse()
            .map_err(|source| ServeError::BadAddress {
                what: "resp",
                address: config.resp.clone(),
                source,
            })?;
    let resp = vigil_resp::conn::bind(resp_addr).map_err(|source| ServeError::Bind {
        address: resp_addr,
        what: " (Redis Sentinel protocol)",
        source,
    })?;
    let metrics = reconcile::bind_metrics(&config).await?;
    run(config, listener, resp, metrics, shutdown).await
}

/// Starts a sentinel from `config`, serving gRPC on `listener`, the Redis Sentinel protocol on
/// `resp` and the metrics and health checks on `metrics` until `shutdown`. Once every port is
/// bound (TLS too) and the Raft log is open, prints `metrics listening on ADDR` and
/// `tls listening on ADDR` (when configured), `resp listening on ADDR` and, last,
/// `grpc listening on ADDR`: whoever waits for that line (scripts, tests) can use them all.
pub async fn run(
    config: SentinelConfig,
    listener: TcpListener,
    resp: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let token = config.token().unwrap_or_default();
    // Before any channel is made: peers' and nodes' channels all use TLS with `tls_grpc`.
    let grpc_tls = match config.grpc_tls() {
        Some(f) => {
            let tls_err = |e: vigil_resp::tls::TlsError| ServeError::Tls(e.to_string());
            vigil_proto::tls::set_client(f.clone()).map_err(tls_err)?;
            let tls = vigil_proto::tls::server(f).map_err(tls_err)?;
            vigil_proto::tls::reload_on_sighup(tls.clone());
            Some(tls)
        }
        None => None,
    };
    let peers: HashMap<u64, String> = config
        .peers
        .iter()
        .filter(|p| p.id != config.id)
        .map(|p| (p.id, p.address.clone()))
        .collect();
    // Storage.
    let storage = DiskStorage::open(&config.dir.join("raft"))?;
    // Transport.
    let transport = GrpcTransport::new(config.id, token.clone(), peers);
    // Raft. A joining sentinel starts empty and learns the membership from the leader.
    let founders: Vec<u64> = if config.join {
        Vec::new()
    } else {
        config.peers.iter().map(|p| p.id).collect()
    };
    let opts = Options {
        tick: config.raft.tick,
        election_ticks: config.raft.election_ticks,
        heartbeat_ticks: config.raft.heartbeat_ticks,
        compact_every: config.raft.compact_every,
    };
    warn_if_elections_outlast_leases(&config, &opts);
    let raft = driver::start(
        config.id,
        storage,
        &founders,
        opts,
        Arc::new(transport.clone()),
    )?;
    transport.attach(raft.clone());
    // Services: this sentinel's duties, then the gRPC ones.
    // As the peers list names it; a joining sentinel may not be in its own list.
    let address = config
        .peers
        .iter()
        .find(|p| p.id == config.id)
        .map(|p| p.address.clone())
        .or_else(|| listener.local_addr().ok().map(|a| a.to_string()))
        .unwrap_or_default();
    // The certificate the sentinel presents to nodes over TLS, re-read on SIGHUP.
    let resp_tls = match config.tls_files().filter(|_| config.tls_replication) {
        Some(f) => {
            let t =
                vigil_resp::tls::ServerTls::new(f).map_err(|e| ServeError::Tls(e.to_string()))?;
            vigil_resp::tls::reload_on_sighup(t.clone());
            Some(t)
        }
        None => None,
    };
    let nodes: Arc<dyn NodeAdmin> = Arc::new(Drivers::new(
        config.node_token.clone(),
        raft.state.clone(),
        resp_tls,
    ));
    let s = Sentinel {
        ops: Ops {
            raft: raft.clone(),
            nodes: nodes.clone(),
            budget: PROPOSAL_TIMEOUT,
        },
        raft,
        transport,
        id: config.id,
        address,
        shutdown: shutdown.clone(),
        membership: Arc::default(),
        health: Health::new(),
        conditions: Arc::default(),
        counters: Arc::default(),
    };
    let resp_addr = resp.local_addr()?;
    tokio::spawn(reconcile::background(
        s.clone(),
        config.clone(),
        resp_addr,
        shutdown.clone(),
    ));
    let tls = reconcile::bind_tls(&config, resp_addr)?;
    let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    reconcile::serve_resp(&s, resp, tls, metrics, &config, &shutdown)?;
    tokio::spawn(crate::monitor::run(
        s.raft.clone(),
        nodes.clone(),
        s.health.clone(),
        config.tls_replication,
        shutdown.clone(),
    ));
    tokio::spawn(crate::shards::run(
        s.raft.clone(),
        nodes.clone(),
        s.health.clone(),
        shutdown.clone(),
    ));
    let opinions = Arc::new(GrpcOpinions::new(token.clone(), s.transport.clone()));
    tokio::spawn(crate::controller::run(
        crate::controller::Controller::new(
            s.raft.clone(),
            nodes,
            s.health.clone(),
            opinions,
            s.conditions.clone(),
        )
        .with_counters(s.counters.clone()),
        shutdown.clone(),
    ));
    // Server.
    let check = vigil_proto::auth::TokenCheck::new(
        &token,
        "missing or wrong cluster token: send `authorization: Bearer <token>` with the sentinels' token",
    );
    // Keepalive pings end the connection of a peer that vanished without closing it (killed
    // with its machine, partitioned): its Raft stream would otherwise stay open, and hold up
    // a graceful shutdown, until TCP gives up.
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(CALL_TIMEOUT))
        .add_service(RaftPeerServer::with_interceptor(s.clone(), check.clone()))
        .add_service(SentinelServiceServer::with_interceptor(s, check));
    let local = listener.local_addr()?;
    tracing::info!(%local, resp = %resp_addr, id = config.id, "vigil sentinel ready");
    if let Some(a) = metrics_addr {
        println!("metrics listening on {a}");
    }
    if let Some(a) = tls_addr {
        println!("tls listening on {a}");
    }
    println!("resp listening on {resp_addr}");
    println!("grpc listening on {local}");
    vigil_proto::tls::serve(router, listener, grpc_tls, shutdown.cancelled_owned()).await?;
    Ok(())
}

/// What the master's lease has left when the sentinel leader dies (the lease less one renewal
/// interval) must outlast the next election, or writes pause until the new leader renews it:
/// says so for every group where it may not.
fn warn_if_elections_outlast_leases(config: &SentinelConfig, opts: &Options) {
    let election = opts.longest_election_wait();
    for g in &config.groups {
        let settings = g.spec().settings;
        let lease = crate::controller::lease(&settings);
        // Two ticks of slack: a renewal round's own time, and the new leader's first steps
        // (its no-op committed, a ReadIndex) before it renews.
        let left = lease
            .saturating_sub(crate::controller::renew_every(&settings))
            .saturating_sub(opts.tick * 2);
        if election >= left {
            tracing::warn!(
                group = %g.name,
                election_ms = election.as_millis() as u64,
                lease_ms = lease.as_millis() as u64,
                left_ms = left.as_millis() as u64,
                "a Raft election may outlast what the master's write lease has left when the \
                 sentinel leader dies: writes may then pause for the difference; lower \
                 `raft.tick` (or `raft.election_ticks`) so that 2 x election_ticks x tick stays \
                 below the lease (down_after less a probe interval) less a renewal interval \
                 and two ticks"
            );
        }
    }
}
