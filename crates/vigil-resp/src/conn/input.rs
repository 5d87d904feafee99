//! A connection's input: parsing the requests read so far into batches and running them, and
//! what `CLIENT LIST` shows of the query buffer.

use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::{Conn, Service};
use crate::reply::Reply;

/// Parses and executes every complete request in the input buffer; sets `conn.close` when the
/// connection must end (protocol error, QUIT).
pub(super) async fn process_input<Svc: Service>(conn: &mut Conn<Svc::State>, service: &Svc) {
    let limits = conn.shared.limits.read().parse;
    note_qbuf(conn);
    loop {
        let mut batch = Vec::new();
        let mut error = None;
        // Unauthenticated clients run one request at a time: AUTH changes the limits that apply
        // to the next one.
        let one_at_a_time = !conn.authenticated;
        loop {
            match conn
                .parser
                .parse(&mut conn.inbuf, &limits, conn.authenticated)
            {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => {
                    batch.push(args);
                    if one_at_a_time {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let more = one_at_a_time && !batch.is_empty() && error.is_none();
        // One shared-counter update per batch, not per command.
        conn.shared
            .stats
            .commands_processed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if !batch.is_empty() {
            service.call_batch(conn, batch).await;
            if conn.close {
                return;
            }
        }
        if let Some(e) = error {
            tracing::debug!(client = conn.info.id, error = %e, "protocol error, closing connection");
            conn.reply(Reply::error(e.to_string()));
            conn.close = true;
            return;
        }
        if !more {
            break;
        }
    }
    // Give back memory after a large request.
    if conn.inbuf.is_empty() && conn.inbuf.capacity() > 1024 * 1024 {
        conn.inbuf = BytesMut::with_capacity(1024);
    }
    note_qbuf(conn);
}

/// Shows the query buffer's bytes and spare room in `CLIENT LIST` (see [`crate::clients::ClientInfo::qbuf`]).
fn note_qbuf<S>(conn: &Conn<S>) {
    let len = conn.inbuf.len();
    conn.info.qbuf.store(len, Ordering::Relaxed);
    let free = conn.inbuf.capacity().saturating_sub(len);
    conn.info.qbuf_free.store(free, Ordering::Relaxed);
}
