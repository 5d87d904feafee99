//! What runs beside the gRPC server: the Redis Sentinel protocol endpoint (its listener,
//! shared connection state, and event publisher), and the reconciler, which keeps the
//! transport's addresses in step with the committed state, announces this sentinel's RESP
//! address, and (on the leader) adds the configured groups the state lacks and no operator
//! removed.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{CALL_TIMEOUT, Sentinel};
use crate::config::SentinelConfig;
use crate::state::{Command, GroupSpec};

/// The Redis Sentinel protocol endpoint (on `resp`, and `tls`), the publisher of its events,
/// and the metrics endpoint (on `metrics`).
pub(super) fn serve_resp(
    s: &Sentinel,
    resp: TcpListener,
    tls: Option<(TcpListener, Arc<vigil_resp::tls::ServerTls>)>,
    metrics: Option<TcpListener>,
    config: &SentinelConfig,
    shutdown: &CancellationToken,
) -> Result<(), super::ServeError> {
    let addr = resp.local_addr()?;
    const PUBSUB_LIMIT: usize = 32 * 1024 * 1024;
    let mut shared = vigil_resp::Shared::new(
        vigil_resp::conn::Ident {
            server: "redis",
            version: vigil_base::REDIS_VERSION,
            mode: "sentinel",
        },
        vigil_resp::Limits::default(),
        (!config.password.is_empty()).then(|| config.password.clone().into()),
        16,
        PUBSUB_LIMIT,
    );
    // Events on the TLS port name TLS addresses: its subscribers get a hub of their own.
    if tls.is_some() {
        shared.tls_hub = Some(vigil_resp::pubsub::Hub::new(PUBSUB_LIMIT));
    }
    let shared = Arc::new(shared);
    *shared.role.write() = "sentinel";
    let table = crate::discovery::commands::table();
    let sentinel_subs = vec![(
        "sentinel",
        crate::discovery::subcommands::SUBCOMMANDS
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>(),
    )];
    let universe =
        vigil_resp::acl::Universe::with_subcommands(table.iter().map(|(m, _)| m), &sentinel_subs);
    // A bad file stops start-up, naming the line, as it does for the node.
    vigil_resp::acl::file::install_with(&shared, universe, &config.aclfile).map_err(|message| {
        super::ServeError::AclFile {
            file: config.aclfile.clone(),
            message,
        }
    })?;
    let service = Arc::new(crate::discovery::Discovery::new(
        s.raft.clone(),
        s.health.clone(),
        s.ops.nodes.clone(),
        s.conditions.clone(),
        addr,
    ));
    tokio::spawn(crate::discovery::publish::run(
        s.raft.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    let stop = shared.shutdown.clone();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        sd.cancelled().await;
        stop.cancel();
    });
    if let Some(listener) = metrics {
        metrics_endpoint(listener, service.clone(), s.counters.clone(), shutdown);
    }
    if let Some((listener, tls)) = tls {
        let (service, shared) = (service.clone(), shared.clone());
        tokio::spawn(vigil_resp::conn::serve_tls(
            listener,
            service,
            shared,
            Some(tls),
        ));
    }
    tokio::spawn(vigil_resp::conn::serve(resp, service, shared));
    Ok(())
}

/// Binds the metrics port (`metrics`, if set). A port that cannot be bound (taken, not this
/// machine's) stops start-up, as it does for the node: a sentinel its load balancer or
/// Prometheus cannot reach must not look healthy.
pub(super) async fn bind_metrics(
    config: &SentinelConfig,
) -> Result<Option<TcpListener>, super::ServeError> {
    if config.metrics.is_empty() {
        return Ok(None);
    }
    let address: std::net::SocketAddr =
        config
            .metrics
            .parse()
            .map_err(|source| super::ServeError::BadAddress {
                what: "metrics",
                address: config.metrics.clone(),
                source,
            })?;
    let l = TcpListener::bind(address)
        .await
        .map_err(|source| super::ServeError::Bind {
            address,
            what: " (metrics)",
            source,
        })?;
    Ok(Some(l))
}

/// Serves `/metrics` and the health checks on `listener`, and counts what the metrics show,
/// until `shutdown`.
fn metrics_endpoint(
    listener: TcpListener,
    discovery: Arc<crate::discovery::Discovery>,
    counters: Arc<crate::metrics::Counters>,
    shutdown: &CancellationToken,
) {
    tokio::spawn(crate::metrics::watch(
        discovery.raft.clone(),
        counters.clone(),
        shutdown.clone(),
    ));
    let source = Arc::new(crate::metrics::SentinelOps {
        discovery,
        counters,
    });
    let stop = shutdown.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(e) = vigil_proto::ops::serve(listener, source, stop).await {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
}

/// Binds the TLS port of the Redis Sentinel protocol (on the `resp` host) and loads the
/// certificates (reloaded on SIGHUP).
pub(super) fn bind_tls(
    config: &SentinelConfig,
    resp: std::net::SocketAddr,
) -> Result<Option<(TcpListener, Arc<vigil_resp::tls::ServerTls>)>, super::ServeError> {
    let Some(files) = config.tls_files().filter(|_| config.tls_port != 0) else {
        return Ok(None);
    };
    let tls = vigil_resp::tls::ServerTls::new(files)
        .map_err(|e| super::ServeError::Tls(e.to_string()))?;
    let addr = std::net::SocketAddr::new(resp.ip(), config.tls_port);
    let l = vigil_resp::conn::bind(addr).map_err(|source| super::ServeError::Bind {
        address: addr,
        what: " (Redis Sentinel protocol, TLS)",
        source,
    })?;
    vigil_resp::tls::reload_on_sighup(tls.clone());
    Ok(Some((l, tls)))
}

/// Keeps the transport's addresses in step with the state, announces this sentinel's RESP
/// address, and (on the leader) adds the configured groups the state lacks and no operator
/// removed.
pub(super) async fn background(
    s: Sentinel,
    config: SentinelConfig,
    resp: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let (sentinels, missing): (Vec<(u64, String)>, Vec<GroupSpec>) = {
            let st = s.raft.state.read();
            (
                st.sentinels.iter().map(|(k, v)| (*k, v.clone())).collect(),
                config
                    .groups
                    .iter()
                    .filter(|g| !st.groups.contains_key(&g.name) && !st.removed.contains(&g.name))
                    .map(|g| g.spec())
                    .collect(),
            )
        };
        for (id, addr) in sentinels {
            s.transport.set_address(id, addr);
        }
        // Announce where this sentinel serves the Redis Sentinel protocol (SENTINEL SENTINELS).
        let announced = s.raft.state.read().sentinel_resp.get(&config.id).cloned();
        let me = announced_resp(&config, resp);
        if announced.as_deref() != Some(me.as_str()) && s.raft.status.read().leader != 0 {
            let cmd = Command::SetSentinelResp {
                id: config.id,
                address: me,
            };
            if let Err(e) = s.raft.propose(cmd, CALL_TIMEOUT).await {
                tracing::debug!(error = %e, "RESP address not announced yet");
            }
        }
        if s.raft.status.read().is_leader {
            for spec in missing {
                let name = spec.name.clone();
                match s.raft.propose(Command::Monitor(spec), CALL_TIMEOUT).await {
                    Ok(()) => tracing::info!(group = %name, "monitoring the configured group"),
                    Err(e) => {
                        tracing::warn!(group = %name, error = %e, "cannot add the configured group yet")
                    }
                }
            }
        }
    }
}

/// The Redis Sentinel protocol address this sentinel announces: `announce_ip` /
/// `announce_port` where set, the bound address otherwise.
fn announced_resp(config: &SentinelConfig, bound: std::net::SocketAddr) -> String {
    let host = match config.announce_ip.as_str() {
        "" => bound.ip().to_string(),
        h => h.to_string(),
    };
    let port = match config.announce_port {
        0 => bound.port(),
        p => p,
    };
    vigil_base::HostPort::new(&host, port)
        .map(|a| a.to_string())
        .unwrap_or_else(|_| bound.to_string())
}
