//! The replica side: connect to the master, handshake, resynchronise (partially from the
//! master's backlog, or fully from a snapshot), then apply the stream and acknowledge it.
//!
//! The stream is applied under the store lock in units that never split a MULTI/EXEC block,
//! and the same bytes go unchanged into this node's feed (and so its append log and backlog):
//! the replica's offset is exactly the number of stream bytes it has applied, before and after
//! a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use vigil_resp::error::ProtocolError;
use vigil_resp::request::{ParseLimits, RequestParser};

pub use super::wire::ReplError;
use super::wire::{Wire, read_payload};
use super::{LinkStatus, Phase, Upstream};
use crate::node::Node;
use crate::persist::{SNAPSHOT_FILE, snapshot};
use crate::stream::{Op, Read, Reader, apply_unit};
use vigil_base::clock::unix_ms;

/// Starts following `host:port`.
pub fn start(node: &Arc<Node>, host: String, port: u16) -> Upstream {
    let status = Arc::new(LinkStatus::default());
    status.set(Phase::Connect, node.clock_ms());
    let cancel = CancellationToken::new();
    let task = run(
        node.clone(),
        host.clone(),
        port,
        status.clone(),
        cancel.clone(),
    );
    tokio::spawn(tracing::Instrument::instrument(task, node.span.clone()));
    Upstream {
        host,
        port,
        status,
        cancel,
    }
}

async fn run(
    node: Arc<Node>,
    host: String,
    port: u16,
    status: Arc<LinkStatus>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        status.set(Phase::Connecting, node.clock_ms());
        let started = Instant::now();
        let result = tokio::select! {
            r = session(&node, &host, port, &status, &cancel) => r,
            _ = cancel.cancelled() => Ok(()),
            _ = node.shared.shutdown.cancelled() => Ok(()),
        };
        status.set(Phase::Connect, node.clock_ms());
        if cancel.is_cancelled() || node.shared.shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(master = %format!("{host}:{port}"), error = %e, "replication link down");
        }
        if started.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(50);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn session(
    node: &Arc<Node>,
    host: &str,
    port: u16,
    status: &LinkStatus,
    cancel: &CancellationToken,
) -> Result<(), ReplError> {
    let (masterauth, masteruser, timeout, announce_ip, announce_port, tls) = {
        let c = node.config.read();
        let tls = c.tls_replication.then(|| node.tls.lock().clone()).flatten();
        (
            c.replication.masterauth.clone(),
            c.replication.masteruser.clone(),
            c.replication.timeout,
            c.announce_ip.clone(),
            c.announce_port,
            tls,
        )
    };
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| ReplError::Timeout(timeout, "connect"))??;
    stream.set_nodelay(true)?;
    // With `tls_replication`, `port` is the master's TLS port (as in Redis).
    let (rd, wr) = match &tls {
        Some(t) => {
            let s = vigil_resp::tls::connect(t.client_config(), host, stream).await?;
            vigil_resp::tls::split_tls(s)
        }
        None => vigil_resp::tls::split_tcp(stream),
    };
    let mut w = Wire {
        rd,
        wr,
        buf: BytesMut::with_capacity(64 * 1024),
        timeout,
    };
    // As Redis: `AUTH masteruser masterauth` when a user is set, else the default user's.
    match (masteruser.as_str(), masterauth.as_str()) {
        (_, "") => {}
        ("", pass) => drop(w.call(&["AUTH", pass], "AUTH").await?),
        (user, pass) => drop(w.call(&["AUTH", user, pass], "AUTH").await?),
    }
    w.call(&["PING"], "PING").await?;
    // Where the master (and whoever reads its INFO) should say this replica is: over TLS
    // replication, its TLS port (as Redis).
    let tls_port = node.tls_port.load(std::sync::atomic::Ordering::Relaxed) as u16;
    let my_port = match announce_port {
        0 if tls.is_some() && tls_port != 0 => tls_port,
        0 => node.port(),
        p => p,
    }
    .to_string();
    w.call(
        &["REPLCONF", "listening-port", &my_port],
        "REPLCONF listening-port",
    )
    .await?;
    if !announce_ip.is_empty() {
        w.call(
            &["REPLCONF", "ip-address", &announce_ip],
            "REPLCONF ip-address",
        )
        .await?;
    }
    let (managed, epoch) = (node.gate.managed(), node.gate.epoch());
    if managed {
        w.call(
            &["REPLCONF", "vigil-epoch", &epoch.to_string()],
            "the epoch check",
        )
        .await?;
    }
    w.call(&["REPLCONF", "capa", "psync2"], "REPLCONF capa")
        .await?;
    let (id, offset) = {
        let f = node.repl.feed.lock();
        (f.replid.clone(), f.offset)
    };
    // A node with no history yet asks for a full sync outright, as Redis does.
    let (id, next) = if offset == 0 {
        ("?".to_string(), "-1".to_string())
    } else {
        (id, (offset + 1).to_string())
    };
    let reply = w.call(&["PSYNC", &id, &next], "PSYNC").await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut parts = rest.split_whitespace();
        let (Some(id), Some(Ok(off))) = (parts.next(), parts.next().map(str::parse::<u64>)) else {
            return Err(ReplError::Protocol(format!(
                "bad FULLRESYNC line {reply:?}"
            )));
        };
        status.set(Phase::Sync, node.clock_ms());
        tracing::info!(master = %format!("{host}:{port}"), replid = id, offset = off, "full resync");
        let payload = read_payload(&mut w).await?;
        load_full_sync(node, id.to_string(), off, payload, cancel).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        tracing::info!(master = %format!("{host}:{port}"), offset, "partial resync");
        if !new_id.is_empty() {
            let _store = node.store_when_free().await;
            let mut feed = node.repl.feed.lock();
            if feed.replid != new_id {
                feed.adopt_replid(new_id.to_string());
                if let Some(aof) = &node.persist.aof {
                    aof.append(&feed.marker());
                }
            }
        }
    } else {
        return Err(ReplError::Protocol(format!(
            "unexpected PSYNC reply {reply:?}"
        )));
    }
    status.set(Phase::Connected, node.clock_ms());
    status.last_io_ms.store(node.clock_ms(), Ordering::Relaxed);
    stream_loop(node, &mut w, status, cancel).await
}

/// Installs a master's snapshot: decoded off the runtime, written to a temp file, then, under
/// the store lock, the file takes the snapshot's place and the data is swapped, with the log
/// rotated at the same instant, so a crash at any point recovers either the old data with the
/// old position or the new data with the new one.
async fn load_full_sync(
    node: &Arc<Node>,
    replid: String,
    offset: u64,
    payload: Vec<u8>,
    cancel: &CancellationToken,
) -> Result<(), ReplError> {
    let (databases, thresholds) = {
        let c = node.config.read();
        (c.databases, c.thresholds())
    };
    let started = Instant::now();
    node.repl
        .net_in
        .fetch_add(payload.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let (replid_c, created) = (replid.clone(), unix_ms() as i64);
    let (mut payload, fresh) = tokio::task::spawn_blocking(move || {
        if payload.starts_with(b"REDIS") {
            // A stock redis-server master sends its RDB: decoded, then kept as our own
            // snapshot of the same data and position.
            let mut store = crate::db::Store::new(databases);
            store.thresholds = thresholds.clone();
            crate::persist::rdb::file::load(&payload[..], payload.len() as u64, &mut store, None)
                .map_err(|e| format!("the master's RDB: {e}"))?;
            let header = snapshot::Header {
                generation: 0,
                created_ms: created,
                replid: replid_c,
                offset,
            };
            return Ok((snapshot::encode(&store, &header), store));
        }
        snapshot::decode(&payload, databases, &thresholds).map(|(_, s)| (payload, s))
    })
    .await
    .map_err(|e| ReplError::Snapshot(e.to_string()))?
    .map_err(ReplError::Snapshot)?;
    while !node.persist.try_begin() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let generation = node.persist.next_generation();
    let path = node.persist.dir.join(SNAPSHOT_FILE);
    let written = {
        let tmp = path.clone();
        let result = snapshot::set_generation(&mut payload, generation);
        let size = payload.len() as u64;
        tokio::task::spawn_blocking(move || {
            result
                .map_err(std::io::Error::other)
                .and_then(|()| snapshot::write_temp(&tmp, &payload))
                .map(|()| size)
        })
        .await
        .map_err(|e| ReplError::Snapshot(e.to_string()))
        .and_then(|r| {
            r.map_err(|e| ReplError::Snapshot(format!("cannot write {}: {e}", path.display())))
        })
    };
    let size = match written {
        Ok(s) => s,
        Err(e) => {
            node.persist.release();
            return Err(e);
        }
    };
    let keys = fresh.total_keys();
    let dirty = {
        let mut store = node.store_when_free().await;
        if cancel.is_cancelled() {
            node.persist.release();
            return Ok(());
        }
        if let Err(e) = vigil_base::fs::commit_temp(&path) {
            node.persist.release();
            return Err(ReplError::Snapshot(format!(
                "cannot install {}: {e}",
                path.display()
            )));
        }
        store.replace_data(fresh);
        let mut feed = node.repl.feed.lock();
        feed.reset(replid, offset);
        if let Some(aof) = &node.persist.aof {
            aof.rotate(generation, feed.marker());
        }
        store.dirty
    };
    node.persist.saved(generation, dirty, size);
    node.persist.release();
    node.persist
        .loaded_keys
        .store(keys as u64, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        keys,
        bytes = size,
        ms = started.elapsed().as_millis() as u64,
        "full resync loaded"
    );
    Ok(())
}

/// Reads, applies and acknowledges the stream until an error or cancellation.
async fn stream_loop(
    node: &Arc<Node>,
    w: &mut Wire,
    status: &LinkStatus,
    cancel: &CancellationToken,
) -> Result<(), ReplError> {
    // A master's commands are client commands it ran (or their effects), so this node's client
    // limits bound them too; a larger claim is damage or a rogue peer, never a reason to
    // allocate. A master with larger limits than this replica needs them raised here.
    let limits = {
        let c = node.config.read();
        ParseLimits::peer(
            c.limits.proto_max_bulk_len as usize,
            c.limits.max_multibulk_len as usize,
        )
    };
    let mut parser = RequestParser::new();
    // Stream bytes not yet applied, and how much of the input they cover.
    let mut raw = BytesMut::new();
    let mut inbuf = std::mem::take(&mut w.buf);
    raw.extend_from_slice(&inbuf);
    let mut total_in = inbuf.len() as u64;
    let mut applied_to = 0u64;
    // Input position after the last data command (not a keepalive), overall and as of the
    // end of the last complete unit: the feed learns where the data ends.
    let mut data_end = 0u64;
    let mut unit_data_end = 0u64;
    let mut reader = Reader::new(node.config.read().databases, false);
    let mut ops: Vec<Op> = Vec::new();
    let mut scratch = Vec::new();
    let ack_every = Duration::from_secs(1);
    let mut next_ack = Instant::now() + ack_every;
    w.ack(node.offset()).await?;
    loop {
        // Parse whatever complete units the input holds.
        let mut unit_end = applied_to;
        let mut getack = false;
        loop {
            let cmd = match parser.parse(&mut inbuf, &limits, true) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(ProtocolError::BulkLength) => {
                    return Err(ReplError::Protocol(format!(
                        "a string length that is invalid or above limits.proto_max_bulk_len ({} bytes)",
                        limits.max_bulk_len
                    )));
                }
                Err(ProtocolError::MultibulkLength) => {
                    return Err(ReplError::Protocol(format!(
                        "an argument count that is invalid or above limits.max_multibulk_len ({})",
                        limits.max_multibulk_len
                    )));
                }
                Err(e) => return Err(ReplError::Protocol(e.to_string())),
            };
            if cmd.is_empty() {
                continue;
            }
            let pos = total_in - inbuf.len() as u64;
            if reader.is_data(&cmd) {
                data_end = pos;
            }
            match reader.read(cmd) {
                Err(e) => return Err(ReplError::Protocol(e.to_string())),
                Ok(Read::Open) => {}
                // Only log files carry position records (the reader is told so).
                Ok(Read::Mark(_)) => unit_end = pos,
                Ok(Read::Unit { ops: unit, ack }) => {
                    ops.extend(unit);
                    getack |= ack;
                    unit_end = pos;
                }
            }
            if unit_end == pos {
                unit_data_end = data_end;
            }
        }
        if unit_end > applied_to {
            let bytes = raw.split_to((unit_end - applied_to) as usize).freeze();
            let data_len = unit_data_end.saturating_sub(applied_to) as usize;
            applied_to = unit_end;
            // A script on this replica holds the store: the stream waits for it, as Redis'
            // single thread does, without holding the worker.
            node.script_done().await;
            let seq = apply(
                node,
                std::mem::take(&mut ops),
                &bytes,
                data_len,
                &mut scratch,
                cancel,
            )?;
            if let (Some(seq), Some(aof)) = (seq, &node.persist.aof) {
                aof.wait(seq).await;
            }
            w.ack(node.offset()).await?;
            next_ack = Instant::now() + ack_every;
        } else if getack {
            w.ack(node.offset()).await?;
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(64 * 1024);
        }
        let before = inbuf.len();
        let deadline = tokio::time::sleep_until(next_ack.into());
        tokio::select! {
            r = tokio::time::timeout(w.timeout, w.rd.read_buf(&mut inbuf)) => {
                let n = r.map_err(|_| ReplError::Timeout(w.timeout, "the stream"))??;
                if n == 0 {
                    return Err(ReplError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the master closed the connection")));
                }
                raw.extend_from_slice(&inbuf[before..]);
                total_in += n as u64;
                node.repl.net_in.fetch_add(n as u64, Ordering::Relaxed);
                status.last_io_ms.store(node.clock_ms(), Ordering::Relaxed);
            }
            _ = deadline => {
                w.ack(node.offset()).await?;
                next_ack = Instant::now() + ack_every;
            }
        }
    }
}

/// Applies complete units under the store lock and feeds their bytes on (the first
/// `data_len` of them ending with data, the rest keepalives); returns the log sequence to wait
/// for before acknowledging: as a client's reply, the acknowledgement leaves only once the log
/// has the bytes (fsynced too under `always`).
fn apply(
    node: &Node,
    ops: Vec<Op>,
    bytes: &[u8],
    data_len: usize,
    scratch: &mut Vec<crate::ctx::Prop>,
    cancel: &CancellationToken,
) -> Result<Option<u64>, ReplError> {
    let mut store = node.store.lock();
    // A promotion or a new master cancels us under this same lock: nothing of the old
    // stream may land after it.
    if cancel.is_cancelled() {
        return Err(ReplError::Protocol("replication stopped".into()));
    }
    let now = unix_ms();
    let mut feed = node.repl.feed.lock();
    let mut db = Some(feed.db().unwrap_or(0));
    let applied: Result<(), std::convert::Infallible> = apply_unit(ops, &mut db, |db, cmd| {
        if let Err(e) = crate::replay::apply_logged(
            &node.table,
            crate::cmd::functions::logged,
            &mut store,
            db,
            cmd,
            now,
            scratch,
        ) {
            tracing::warn!(error = %e, "replicated command refused");
        }
        scratch.clear();
        // A replica announces what its master's stream did, as Redis' replicas do.
        store.publish_events(&node.shared.hub);
        Ok(())
    });
    let Ok(()) = applied;
    feed.set_db(db.unwrap_or(0));
    feed.push_with_data(bytes, data_len);
    Ok(node.persist.aof.as_ref().map(|a| a.append(bytes)))
}

impl Node {
    /// Becomes a master: stops following (under the store lock, so nothing of the old stream
    /// lands afterwards) and starts a new history that keeps the old one as `replid2`, so the
    /// other replicas of the old master can continue partially from this node.
    pub fn become_master(&self) {
        let store = self.store.lock();
        let upstream = self.repl.upstream.lock().take();
        drop(upstream);
        if self.gate.promote() {
            let mut feed = self.repl.feed.lock();
            feed.shift_replid();
            if let Some(aof) = &self.persist.aof {
                aof.append(&feed.marker());
            }
            tracing::info!(replid = %feed.replid, offset = feed.offset, epoch = self.gate.epoch(), "now a master");
        }
        *self.shared.role.write() = "master";
        drop(store);
    }

    /// Becomes a replica of `host:port`: drops our own replicas and follows the new master,
    /// resynchronising partially when it shares our history.
    pub fn become_replica(&self, host: String, port: u16) {
        let old = self.repl.upstream.lock().take();
        drop(old);
        {
            let _store = self.store.lock();
            self.gate.follow(host.clone(), port);
            *self.shared.role.write() = "replica";
            for l in &self.repl.feed.lock().links {
                l.kill.cancel();
            }
            tracing::info!(master = %format!("{host}:{port}"), epoch = self.gate.epoch(), "now a replica");
        }
        self.wake_blocked();
        // Only a node being dropped has no Arc left; it has nothing to follow any more.
        if let Some(me) = self.arc() {
            let up = start(&me, host, port);
            *self.repl.upstream.lock() = Some(up);
        }
    }
}
