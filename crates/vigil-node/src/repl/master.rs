//! The master side: the replication handshake (`REPLCONF`, `PSYNC`/`SYNC`), the replica link
//! that runs on the replica's own connection, acknowledgements, `WAIT`, and the check that
//! runs before a write's reply leaves (synchronous mode, lease, fence).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use vigil_resp::args::parse_int;
use vigil_resp::request::{ParseLimits, RequestParser};
use vigil_resp::{Args, CmdError, Conn, Reply, Service};

use super::feed::{Link, LinkState};
use crate::node::Node;
use crate::persist::snapshot::{self, Header};
use crate::session::ConnState;
use vigil_base::clock::unix_ms;

/// `REPLCONF <option> <value> ...`: what a replica tells its master during the handshake.
pub fn replconf(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let r = (|| -> Result<Reply, CmdError> {
        if !args.remaining().is_multiple_of(2) {
            return Err(CmdError::Syntax);
        }
        while let Some(opt) = args.next() {
            let val = args.bytes()?;
            match &opt.to_ascii_lowercase()[..] {
                b"listening-port" => {
                    let p = parse_int(&val)
                        .ok()
                        .filter(|p| (0..=65535).contains(p))
                        .ok_or(CmdError::NotInteger)?;
                    conn.state.repl_port = p as u32;
                }
                b"vigil-epoch" => {
                    let e = parse_int(&val)
                        .ok()
                        .filter(|e| *e >= 0)
                        .ok_or(CmdError::NotInteger)? as u64;
                    let mine = node.gate.epoch();
                    if e > mine {
                        // The replica was told about a newer epoch than ours: we are a stale
                        // master and must not be followed.
                        return Err(CmdError::msg(format!(
                            "STALEEPOCH this node is at epoch {mine}, the replica at {e}: it must not follow a master of a lower epoch"
                        )));
                    }
                }
                b"ip-address" => {
                    // A hostname or an address; bounded like Redis' NET_HOST_STR_LEN.
                    if val.len() > 255 {
                        return Err(CmdError::msg(format!(
                            "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                            val.len()
                        )));
                    }
                    conn.state.repl_ip = Some(String::from_utf8_lossy(&val).into_owned());
                }
                b"capa" | b"rdb-only" | b"rdb-filter-only" => {}
                // Acknowledgements arrive on the link itself; here (before PSYNC) they mean
                // nothing.
                b"ack" | b"getack" => return Ok(Reply::ok()),
                _ => {
                    return Err(CmdError::msg(format!(
                        "ERR Unrecognized REPLCONF option: {}",
                        String::from_utf8_lossy(&opt)
                    )));
                }
            }
        }
        Ok(Reply::ok())
    })();
    conn.reply(Reply::from(r));
}

/// `PSYNC replid offset` / `SYNC`: turns this connection into a replica link.
pub fn psync<'a>(
    node: &'a Node,
    conn: &'a mut Conn<ConnState>,
    args: Args,
) -> crate::node::BoxFut<'a> {
    Box::pin(serve_replica(node, conn, args))
}

async fn serve_replica(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let is_psync = args.name().eq_ignore_ascii_case(b"psync");
    let (want_id, want_off) = if is_psync {
        let id = String::from_utf8_lossy(&args.next().unwrap_or_default()).into_owned();
        let off = args.next().and_then(|o| parse_int(&o).ok()).unwrap_or(-1);
        (id, off)
    } else {
        ("?".to_string(), -1)
    };
    if !node.gate.is_master() {
        conn.reply(Reply::error(
            "ERR this node is a replica; chained replication is not supported, replicate from the master",
        ));
        return;
    }
    let limit = node.config.read().replication.output_buffer_limit as usize;
    let link = Arc::new(Link::new(
        conn.info.id,
        conn.state
            .repl_ip
            .clone()
            .unwrap_or_else(|| conn.info.addr.ip().to_string()),
        conn.state.repl_port,
        limit,
        node.clock_ms(),
        conn.info.kill.clone(),
    ));
    let r = &node.repl;
    // Decided under the store lock: a full sync's snapshot and the offset it starts the
    // stream at are one instant, and the link receives every byte after it.
    let (first_line, payload) = {
        let store = node.store_when_free().await;
        let mut feed = r.feed.lock();
        let cont = (want_off > 0)
            .then(|| feed.continue_from(&want_id, want_off as u64))
            .flatten();
        match cont {
            Some(backlog) => {
                r.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
                link.set_state(LinkState::Online);
                link.ack.store(want_off as u64 - 1, Ordering::Relaxed);
                link.send(&backlog);
                feed.links.push(link.clone());
                (format!("+CONTINUE {}\r\n", feed.replid), None)
            }
            None => {
                if want_id != "?" {
                    r.sync_partial_err.fetch_add(1, Ordering::Relaxed);
                }
                r.sync_full.fetch_add(1, Ordering::Relaxed);
                let header = Header {
                    generation: 0,
                    created_ms: unix_ms(),
                    replid: feed.replid.clone(),
                    offset: feed.offset,
                };
                let bytes = snapshot::Pending::start(&store, &header);
                if let Some(ms) = bytes.fork_ms() {
                    node.slowlog.sample_if_needed("fork", ms);
                }
                feed.force_select();
                // No acknowledgement until the replica has loaded the snapshot and says so:
                // counting it earlier could acknowledge a synchronous write it lacks.
                link.set_state(LinkState::SendBulk);
                feed.links.push(link.clone());
                // The old SYNC has no header line: the payload comes first, as from Redis.
                let line = if is_psync {
                    format!("+FULLRESYNC {} {}\r\n", feed.replid, feed.offset)
                } else {
                    String::new()
                };
                (line, Some(bytes))
            }
        }
    };
    tracing::info!(replica = %conn.info.addr, full = payload.is_some(), "replica attached");
    conn.info.replica.store(true, Ordering::Relaxed);
    if conn.flush().await.is_ok()
        && let Err(e) = run_link(node, conn, &link, first_line, payload).await
    {
        tracing::info!(replica = %conn.info.addr, error = %e, "replica link ended");
    }
    node.repl
        .feed
        .lock()
        .links
        .retain(|l| !Arc::ptr_eq(l, &link));
    node.repl.acks.send_modify(|n| *n += 1);
    tracing::info!(replica = %conn.info.addr, "replica detached");
    conn.close = true;
}

/// Streams to the replica and reads its acknowledgements until either side stops.
async fn run_link(
    node: &Node,
    conn: &mut Conn<ConnState>,
    link: &Link,
    first_line: String,
    payload: Option<snapshot::Pending>,
) -> std::io::Result<()> {
    let (rd, wr, inbuf) = conn.io();
    let sent = |n: usize| {
        node.repl.net_out.fetch_add(n as u64, Ordering::Relaxed);
    };
    vigil_resp::conn::write_flush(wr, first_line.as_bytes()).await?;
    sent(first_line.len());
    if let Some(pending) = payload {
        // The snapshot comes from the forked child piece by piece (a few MiB in flight at
        // most), read on a blocking thread; a kill stops the transfer and the child.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let producer = tokio::task::spawn_blocking(move || {
            let gone = |_| std::io::Error::other("the replica went away");
            let head = tx.clone();
            pending.stream(
                |n| {
                    head.blocking_send(format!("${n}\r\n").into_bytes())
                        .map_err(gone)
                },
                |chunk| tx.blocking_send(chunk.to_vec()).map_err(gone),
            )
        });
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(bytes) => {
                        vigil_resp::conn::write_flush(wr, &bytes).await?;
                        sent(bytes.len());
                    }
                    None => break,
                },
                _ = link.kill.cancelled() => {
                    drop(rx);
                    let _ = producer.await;
                    return Ok(());
                }
            }
        }
        producer.await.map_err(std::io::Error::other)??;
        link.set_state(LinkState::Online);
    }
    let mut parser = RequestParser::new();
    let limits = ParseLimits::default();
    inbuf.clear();
    let mut out = Vec::new();
    loop {
        link.take_into(&mut out);
        if !out.is_empty() {
            tokio::select! {
                r = vigil_resp::conn::write_flush(wr, &out) => r?,
                _ = link.kill.cancelled() => return Ok(()),
            }
            sent(out.len());
            continue;
        }
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(4096);
        }
        tokio::select! {
            // As Redis writes to its replicas once per event-loop iteration: the clients
            // ready in this round of the scheduler queue their writes first, and one `write`
            // carries them all (not one per client batch, each answered by an ACK).
            _ = link.wake.notified() => tokio::task::yield_now().await,
            _ = link.kill.cancelled() => return Ok(()),
            r = rd.read_buf(inbuf) => {
                if r? == 0 {
                    return Ok(());
                }
                read_acks(node, link, &mut parser, inbuf, &limits)?;
            }
        }
    }
}

/// Handles what a replica sends on its link: `REPLCONF ACK <offset>`.
fn read_acks(
    node: &Node,
    link: &Link,
    parser: &mut RequestParser,
    inbuf: &mut BytesMut,
    limits: &ParseLimits,
) -> std::io::Result<()> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    while let Some(cmd) = parser
        .parse(inbuf, limits, true)
        .map_err(|e| bad(e.to_string()))?
    {
        if cmd.len() == 3
            && cmd[0].eq_ignore_ascii_case(b"replconf")
            && cmd[1].eq_ignore_ascii_case(b"ack")
        {
            let off = parse_int(&cmd[2]).map_err(|_| bad("bad ACK offset".into()))?;
            link.ack.fetch_max(off.max(0) as u64, Ordering::Relaxed);
            link.last_ack_ms.store(node.clock_ms(), Ordering::Relaxed);
            node.repl.acks.send_modify(|n| *n += 1);
        }
    }
    Ok(())
}

/// `WAIT numreplicas timeout`.
pub fn wait<'a>(
    node: &'a Node,
    conn: &'a mut Conn<ConnState>,
    args: Args,
) -> crate::node::BoxFut<'a> {
    Box::pin(wait_cmd(node, conn, args))
}

/// `WAIT` inside a transaction: never waits, answers how many replicas have the client's
/// writes now (Redis does the same in EXEC).
pub fn wait_now(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    match wait_start(node, conn, args) {
        Ok(w) => conn.reply(Reply::Int(w.acked as i64)),
        Err(r) => conn.reply(r),
    }
}

/// A parsed `WAIT`, with the replicas that already have the client's writes.
struct WaitStart {
    /// Replicas asked for.
    want: usize,
    /// Milliseconds to wait (0: forever).
    timeout_ms: u64,
    /// The stream offset of the client's last write.
    offset: u64,
    /// Replicas at that offset now.
    acked: usize,
}

/// Parses `WAIT` and counts the replicas that already have the client's writes.
fn wait_start(node: &Node, conn: &Conn<ConnState>, mut args: Args) -> Result<WaitStart, Reply> {
    let parsed = (|| -> Result<(usize, u64), CmdError> {
        let n = args.i64()?;
        let t = args
            .i64()
            .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
        if t < 0 {
            return Err(CmdError::msg("ERR timeout is negative"));
        }
        Ok((n.max(0) as usize, t as u64))
    })();
    let (n, timeout_ms) = parsed.map_err(|e| Reply::from(Err::<Reply, _>(e)))?;
    if !node.gate.is_master() {
        return Err(Reply::error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let offset = conn.state.woff;
    Ok(WaitStart {
        want: n,
        timeout_ms,
        offset,
        acked: node.repl.replicas_acked(offset),
    })
}

async fn wait_cmd(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let WaitStart {
        want: n,
        timeout_ms,
        offset,
        acked,
    } = match wait_start(node, conn, args) {
        Ok(w) => w,
        Err(r) => {
            conn.reply(r);
            return;
        }
    };
    if acked >= n {
        conn.reply(Reply::Int(acked as i64));
        return;
    }
    // Replies to earlier pipelined commands go out before we wait (unless the acknowledgement
    // check closes the connection).
    node.before_reply(conn).await;
    if conn.flush().await.is_err() || conn.close {
        conn.close = true;
        return;
    }
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    match conn
        .wait_or_disconnect(node.repl.wait_acks(offset, n, deadline))
        .await
    {
        Some(got) => conn.reply(Reply::Int(got as i64)),
        None => conn.close = true,
    }
}
