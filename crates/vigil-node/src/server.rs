//! Start-up and serving: recovers the data directory (snapshot, then log replay through the
//! command table), assembles the [`Node`], serves clients until shutdown, and
//! [`serve`] — the one call a binary needs: bind, announce, serve data and admin, stop.
//!
//! The invariant: nothing is served before recovery finished, and on shutdown everything
//! acknowledged is made durable (the append log flushed, or a final snapshot) before `run`
//! returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::net::TcpListener;
use tracing::Instrument;
use vigil_base::REDIS_VERSION;
use vigil_base::clock::unix_ms;
use vigil_resp::conn::{Ident, Shared};

use crate::config::{Mode, NodeConfig, parse_host_port};
use crate::error::NodeError;
use crate::gate::{Gate, Role};
use crate::node::{Node, Parts, limits_from};
use crate::persist::replay::ReplPos;
use crate::persist::{self, Persistence};
use crate::repl::{Feed, feed, replica};
use crate::tasks;

/// Recovers the data directory and builds the node.
pub fn open(config: NodeConfig, config_file: Option<PathBuf>) -> Result<Arc<Node>, NodeError> {
    let started = Instant::now();
    let table = crate::cmd::table();
    // The footprint before any data (`used_memory_startup`).
    let startup_rss = crate::maxmemory::rss_bytes();
    // Thresholds first: replayed writes take the configured encodings.
    let (lock, rec) = persist::recover(&config.dir, config.databases, &config.thresholds())?;
    let epoch = vigil_base::epoch::load(&config.dir)?;
    let cluster = crate::cluster::file::load(&config.dir)?;
    let mut store = rec.store;
    // Before the logs are replayed: what the snapshot held (`rdb_last_load_keys_loaded`).
    let snapshot_keys = store.total_keys();
    store.limits.proto_max_bulk_len = config.limits.proto_max_bulk_len;
    store.limits.hll_sparse_max_bytes = config.redis_int("hll-sparse-max-bytes").max(0) as usize;
    store.set_access_policy(config.access_policy());
    let mut generation = rec.generation.max(1);
    let mut pos = ReplPos {
        replid: rec.repl.0,
        offset: rec.repl.1,
        data_offset: rec.repl.1,
        db: None,
    };
    let now = unix_ms();
    let limits = (
        config.limits.proto_max_bulk_len as usize,
        config.limits.max_multibulk_len as usize,
    );
    if let Some(g) =
        crate::replay::replay_logs(&table, &mut store, &rec.logs, &mut pos, limits, now)?
    {
        generation = generation.max(g);
    }
    // Replay is history, not new changes.
    store.dirty = 0;
    store.limits.hll_sparse_max_bytes = config.redis_int("hll-sparse-max-bytes").max(0) as usize;
    let imported = match &config.import {
        Some(path) => Some(import(path, &mut store, now)?),
        None => None,
    };
    // After replay and import: history is not announced.
    store.configure_notify(config.notify_classes());
    store
        .tracking()
        .set_max_keys(config.redis_int("tracking-table-max-keys").max(0) as usize);
    let keys = store.total_keys();
    let replicaof =
        parse_host_port(&config.replication.replicaof).map(|h| (h.host().to_string(), h.port()));
    let gate = Gate::new(
        config.mode == Mode::Managed,
        config.lease_reads,
        epoch,
        replicaof,
        (
            config.replication.min_replicas_to_write,
            config.replication.min_replicas_max_lag,
        ),
        config.replication.sync_replicas,
    );
    let known = !pos.replid.is_empty();
    let mut feed = Feed::new(
        if known { pos.replid } else { feed::random_id() },
        pos.offset,
        pos.db,
        config.replication.backlog_size as usize,
    );
    feed.data_offset = pos.data_offset.min(feed.offset);
    if gate.is_master() && known {
        // A restarted master may have lost the tail of its log (everysec): replicas that
        // got further must not continue this history, so it gets a new id; the old one
        // stays valid up to the recovered offset (PSYNC2).
        feed.shift_replid();
    }
    let persist = Persistence::start(
        &config.dir,
        lock,
        generation,
        rec.saved_at.unwrap_or(0),
        rec.snapshot_bytes,
        &config.persistence,
        feed.marker(),
    )?;
    persist
        .loaded_keys
        .store(snapshot_keys as u64, Ordering::Relaxed);
    tracing::info!(keys, logs = rec.logs.len(), ms = started.elapsed().as_millis() as u64, dir = %config.dir.display(), offset = feed.offset, epoch, "dataset loaded");
    let limits = limits_from(&config);
    let shared = Arc::new(Shared::new(
        Ident {
            server: "redis",
            version: REDIS_VERSION,
            mode: "standalone",
        },
        limits,
        config.password(),
        config.databases,
        config.limits.client_output_buffer_limit_pubsub as usize,
    ));
    vigil_resp::acl::file::install(&shared, table.iter().map(|(m, _)| m), &config.aclfile)
        .map_err(|message| NodeError::Config {
            file: config.aclfile.clone(),
            message,
        })?;
    // HELLO's `role`, in step with ROLE and INFO (an unassigned node reports master).
    *shared.role.write() = if matches!(gate.role(), Role::Replica { .. }) {
        "replica"
    } else {
        "master"
    };
    let node = Node::assemble(Parts {
        config,
        config_file,
        store,
        persist,
        shared,
        table,
        started,
        feed,
        gate,
        cluster,
    });
    node.maxmemory.set_startup(startup_rss);
    if imported.is_some() {
        // From here the node's own persistence holds the data.
        node.save()?;
    }
    Ok(node)
}

/// Loads a redis-server RDB file into the (empty) recovered store.
fn import(path: &std::path::Path, store: &mut crate::db::Store, now: i64) -> Result<(), NodeError> {
    let err = |reason: String| NodeError::Import {
        path: path.to_path_buf(),
        reason,
    };
    if store.total_keys() > 0 || !store.functions.libs.is_empty() {
        return Err(err(
            "the data directory already holds data; import into an empty one".into(),
        ));
    }
    let started = Instant::now();
    let loaded =
        crate::persist::rdb::file::load_file(path, store, now).map_err(|e| err(e.to_string()))?;
    store.dirty = loaded.keys.max(1);
    tracing::info!(keys = loaded.keys, expired = loaded.expired, functions = loaded.functions, ms = started.elapsed().as_millis() as u64, file = %path.display(), "RDB file imported");
    Ok(())
}

/// Serves clients on `listener` until shutdown (SHUTDOWN or `shared.shutdown`), then makes
/// everything durable.
pub async fn run(node: Arc<Node>, listener: TcpListener) {
    run_ports(node, Some(listener), None).await
}

/// [`run`] with a plain listener, a TLS one, or both (TLS handshakes with `tls`).
pub async fn run_ports(
    node: Arc<Node>,
    listener: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<vigil_resp::tls::ServerTls>)>,
) {
    if let Some(a) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
        node.port.store(a.port() as u64, Ordering::Relaxed);
    }
    if let Some(a) = tls.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
        node.tls_port.store(a.port() as u64, Ordering::Relaxed);
        if listener.is_none() {
            // TLS only: the TLS port is the one the node is known by.
            node.port.store(a.port() as u64, Ordering::Relaxed);
        }
    }
    // Every log line of the node's tasks (connections, replication, admin) runs in this
    // span: it names the node by port and carries the current epoch.
    node.span.record("port", node.port());
    let span = node.span.clone();
    if let Role::Replica { host, port } = node.gate.role() {
        *node.repl.upstream.lock() = Some(replica::start(&node, host, port));
    }
    let bg = tokio::spawn(tasks::background(node.clone()).instrument(span.clone()));
    let slots =
        tokio::spawn(crate::cluster::migrate::supervise(node.clone()).instrument(span.clone()));
    let plain = async {
        if let Some(l) = listener {
            vigil_resp::conn::serve(l, node.clone(), node.shared.clone()).await
        }
    };
    let secure = async {
        if let Some((l, t)) = tls {
            vigil_resp::conn::serve_tls(l, node.clone(), node.shared.clone(), Some(t)).await
        }
    };
    async { tokio::join!(plain, secure) }.instrument(span).await;
    bg.abort();
    slots.abort();
    node.repl.upstream.lock().take();
    node.close();
}

/// Resolves `bind:port` (`localhost` meaning 127.0.0.1) for `what`.
fn socket_addr(bind: &str, port: u16, what: &str) -> Result<SocketAddr, NodeError> {
    let host = if bind == "localhost" {
        "127.0.0.1"
    } else {
        bind
    };
    format!("{host}:{port}")
        .parse()
        .map_err(|_| NodeError::Config {
            file: "command line".into(),
            message: format!("invalid {what} bind address {bind:?}"),
        })
}

/// Runs a node until `shutdown` completes (or a client sends SHUTDOWN): recovers the data
/// directory, listens on the data port (and the admin port when an admin token is set),
/// prints `listening on <addr>` (and `admin listening on <addr>`) for tools that start nodes
/// on port 0, then serves. Returns once everything is durable.
pub async fn serve(
    config: NodeConfig,
    config_file: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let addr = socket_addr(&config.bind, config.port, "data")?;
    let admin = config.admin_token().map(|t| (t, config.admin.clone()));
    let metrics = config.metrics.clone();
    let tls_files = config.tls_files();
    // NodeAdmin's own TLS state (ALPN h2), reloaded on SIGHUP like the RESP port's.
    let admin_tls = match (&tls_files, config.tls_admin) {
        (Some(f), true) => {
            let tls = vigil_proto::tls::server(f.clone()).map_err(|e| NodeError::Config {
                file: "TLS".into(),
                message: e.to_string(),
            })?;
            vigil_proto::tls::reload_on_sighup(tls.clone());
            // The node's own gRPC calls (PUBLISH forwarded to the other nodes of a sharded
            // cluster) reach admin ports that speak TLS too, with this certificate.
            vigil_proto::tls::set_client(f.clone()).map_err(|e| NodeError::Config {
                file: "TLS".into(),
                message: e.to_string(),
            })?;
            Some(tls)
        }
        _ => None,
    };
    let (port, tls_port) = (config.port, config.tls_port);
    let tls_addr = socket_addr(&config.bind, tls_port, "TLS")?;
    let node = open(config, config_file)?;
    let listen = |addr: SocketAddr| {
        let l = vigil_resp::conn::bind(addr).map_err(|e| NodeError::Listen {
            addr: addr.to_string(),
            source: e,
        })?;
        let local = l.local_addr().map_err(|e| NodeError::Listen {
            addr: addr.to_string(),
            source: e,
        })?;
        Ok::<_, NodeError>((l, local))
    };
    // `port = 0` beside a TLS port means TLS only, as in Redis.
    let listener = if port == 0 && tls_port != 0 {
        None
    } else {
        Some(listen(addr)?)
    };
    if let Some(files) = tls_files {
        let tls = vigil_resp::tls::ServerTls::new(files).map_err(|e| NodeError::Config {
            file: "TLS".into(),
            message: e.to_string(),
        })?;
        *node.tls.lock() = Some(tls.clone());
        vigil_resp::tls::reload_on_sighup(tls);
    }
    let tls = match node.tls.lock().clone() {
        Some(t) if tls_port != 0 => {
            let (l, local) = listen(tls_addr)?;
            Some((l, local, t))
        }
        _ => None,
    };
    if let Some((token, cfg)) = admin {
        let addr = socket_addr(&cfg.bind, cfg.port, "admin")?;
        let listen_err = |e| NodeError::Listen {
            addr: format!("{addr} (admin)"),
            source: e,
        };
        let l = TcpListener::bind(addr).await.map_err(listen_err)?;
        println!("admin listening on {}", l.local_addr().map_err(listen_err)?);
        let n = node.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::admin::serve(n, l, token, admin_tls).await {
                tracing::error!(error = %e, "admin endpoint failed");
            }
        });
    }
    if !metrics.is_empty() {
        let source = std::sync::Arc::new(crate::ops::NodeOps(node.clone()));
        let stop = node.shared.shutdown.clone().cancelled_owned();
        let local = vigil_proto::ops::spawn(&metrics, source, stop)
            .await
            .map_err(|e| NodeError::Listen {
                addr: format!("{metrics} (metrics)"),
                source: e,
            })?;
        println!("metrics listening on {local}");
    }
    // Printed once every port is bound (data, TLS, admin, metrics), so whoever read the line
    // can use any of them.
    let tls = tls.map(|(l, local, t)| {
        tracing::info!(%local, "vigil node ready to accept TLS connections");
        println!("tls listening on {local}");
        (l, t)
    });
    let listener = listener.map(|(l, local)| {
        tracing::info!(%local, "vigil node ready to accept connections");
        // Machine-readable lines for tools and tests that start nodes on port 0.
        println!("listening on {local}");
        l
    });
    let stop = node.shared.shutdown.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    // On a worker thread: the accept loop must not wait for the block_on thread to be woken.
    let _ = tokio::spawn(run_ports(node, listener, tls)).await;
    Ok(())
}
