//! Streams in the snapshot: the nodes as they are (so node boundaries, and with them `~`
//! trimming, survive a restart), the stream's counters, and every group with its pending
//! entries and consumers. Decoding validates every node and every cross-reference: a file
//! that passes the checksum but is malformed still fails with an error, never a panic.
//!
//! Layout: `length last_id first_id max_deleted entries_added nodes(count)`, each node
//! `master_id live(u32) deleted(u32) lp_bytes(u64) last_id buf(bytes)`; `groups(count)`, each
//! `name last_id entries_read(i64) pel(count)` of `id delivery_time(i64) delivery_count(u64)
//! consumer(bytes)`, then `consumers(count)` of `name seen_time(i64)`. Ids are two u64.

use super::codec::{Reader, put_bytes, put_len};
use crate::db::stream::{Chunk, Consumer, Group, Nack, Stream, StreamId};

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.ms.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
}

fn get_id(r: &mut Reader) -> Result<StreamId, String> {
    Ok(StreamId {
        ms: r.u64()?,
        seq: r.u64()?,
    })
}

/// Appends a stream.
pub fn encode(out: &mut Vec<u8>, s: &Stream) {
    out.extend_from_slice(&s.length.to_le_bytes());
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted);
    out.extend_from_slice(&s.entries_added.to_le_bytes());
    put_len(out, s.nodes());
    for (master, c) in s.chunks() {
        let (buf, live, deleted, lp, last) = c.parts();
        put_id(out, *master);
        out.extend_from_slice(&live.to_le_bytes());
        out.extend_from_slice(&deleted.to_le_bytes());
        out.extend_from_slice(&lp.to_le_bytes());
        put_id(out, last);
        put_bytes(out, buf);
    }
    put_len(out, s.groups.len());
    for (name, g) in &s.groups {
        put_bytes(out, name);
        put_id(out, g.last_id);
        out.extend_from_slice(&g.entries_read.to_le_bytes());
        put_len(out, g.pel.len());
        for (id, n) in &g.pel {
            put_id(out, *id);
            out.extend_from_slice(&n.delivery_time.to_le_bytes());
            out.extend_from_slice(&n.delivery_count.to_le_bytes());
            put_bytes(out, &n.consumer);
        }
        put_len(out, g.consumers.len());
        for (name, c) in &g.consumers {
            put_bytes(out, name);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
        }
    }
}

/// Reads a stream, checking it is coherent.
pub fn decode(r: &mut Reader) -> Result<Stream, String> {
    let at = r.pos;
    let bad = |what: &str| format!("malformed stream at byte {at}: {what}");
    let mut s = Stream::new();
    s.length = r.u64()?;
    s.last_id = get_id(r)?;
    s.first_id = get_id(r)?;
    s.max_deleted = get_id(r)?;
    s.entries_added = r.u64()?;
    let nodes = r.count()?;
    let mut live_total = 0u64;
    let mut prev_last: Option<StreamId> = None;
    for _ in 0..nodes {
        let master = get_id(r)?;
        let live = r.u32()?;
        let deleted = r.u32()?;
        let lp = r.u64()?;
        let last = get_id(r)?;
        let buf = r.bytes()?.into_vec();
        if prev_last.is_some_and(|p| p >= master) || last > s.last_id {
            return Err(bad("nodes out of order"));
        }
        let c = Chunk::from_parts(buf, live, deleted, lp, last);
        c.validate(master).map_err(|e| bad(&e))?;
        live_total += u64::from(live);
        prev_last = Some(last);
        s.insert_chunk(master, c);
    }
    if live_total != s.length || s.entries_added < s.length {
        return Err(bad("length does not match the entries"));
    }
    let groups = r.count()?;
    for _ in 0..groups {
        let name = r.bytes()?;
        let mut g = Group::new(get_id(r)?, r.i64()?);
        let pending = r.count()?;
        for _ in 0..pending {
            let id = get_id(r)?;
            let delivery_time = r.i64()?;
            let delivery_count = r.u64()?;
            let consumer = r.bytes()?;
            g.pel.insert(
                id,
                Nack {
                    delivery_time,
                    delivery_count,
                    consumer,
                },
            );
        }
        let consumers = r.count()?;
        for _ in 0..consumers {
            let cname = r.bytes()?;
            let seen_time = r.i64()?;
            g.consumers.insert(
                cname,
                Consumer {
                    seen_time,
                    ..Consumer::default()
                },
            );
        }
        for (id, n) in &g.pel {
            let c = g
                .consumers
                .get_mut(&n.consumer)
                .ok_or_else(|| bad("pending entry of an unknown consumer"))?;
            c.pel.insert(*id);
        }
        if s.groups.insert(name, g).is_some() {
            return Err(bad("duplicate group"));
        }
    }
    Ok(s)
}
