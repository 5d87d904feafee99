//! Stream values (`STREAM_LISTPACKS`, `_2` of Redis 7.0, `_3` of 7.2): the nodes as listpacks
//! keyed by their master id, the stream's counters, then the consumer groups with their
//! pending entries and consumers.
//!
//! A node's listpack: `count deleted nfields field… 0`, then per entry `flags ms-diff seq-diff`,
//! the values (flag SAMEFIELDS: fields are the master's) or `n field value…`, and `lp-count`.

use std::collections::BTreeMap;
use std::io::Read;

use super::listpack::{self, Item};
use super::reader::Reader;
use super::writer::{put_len, put_millis, put_string};
use super::{RdbError, Result, types};
use crate::db::stream::group::ENTRIES_READ_UNKNOWN;
use crate::db::stream::{Chunk, Consumer, Group, Nack, Stream, StreamId};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

fn id_key(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

fn id_from(k: &[u8]) -> Option<StreamId> {
    let k: &[u8; 16] = k.try_into().ok()?;
    Some(StreamId {
        ms: u64::from_be_bytes(k[..8].try_into().ok()?),
        seq: u64::from_be_bytes(k[8..].try_into().ok()?),
    })
}

/// Writes a stream as `STREAM_LISTPACKS_2`.
pub fn encode(s: &Stream, out: &mut Vec<u8>) {
    let nodes: Vec<_> = s
        .chunks()
        .filter_map(|(m, c)| c.export(*m).map(|e| (*m, e)))
        .filter(|(_, (_, es))| !es.is_empty())
        .collect();
    put_len(out, nodes.len() as u64);
    for (master, (fields, entries)) in &nodes {
        put_string(out, &id_key(*master));
        let mut lp = listpack::Builder::new();
        lp.push_int(entries.len() as i64);
        lp.push_int(0);
        lp.push_int(fields.len() as i64);
        for f in fields {
            lp.push(f);
        }
        lp.push_int(0);
        for (id, same, pairs) in entries {
            lp.push_int(if *same { FLAG_SAMEFIELDS } else { 0 });
            lp.push_int(id.ms.wrapping_sub(master.ms) as i64);
            lp.push_int(id.seq.wrapping_sub(master.seq) as i64);
            let n = pairs.len() as i64;
            if *same {
                for (_, v) in pairs {
                    lp.push(v);
                }
                lp.push_int(3 + n);
            } else {
                lp.push_int(n);
                for (f, v) in pairs {
                    lp.push(f);
                    lp.push(v);
                }
                lp.push_int(4 + 2 * n);
            }
        }
        put_string(out, &lp.finish());
    }
    put_len(out, s.length);
    for id in [s.last_id, s.first_id, s.max_deleted] {
        put_len(out, id.ms);
        put_len(out, id.seq);
    }
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(out, name);
        put_len(out, g.last_id.ms);
        put_len(out, g.last_id.seq);
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, n) in &g.pel {
            out.extend_from_slice(&id_key(*id));
            put_millis(out, n.delivery_time);
            put_len(out, n.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(out, cname);
            put_millis(out, c.seen_time);
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id_key(*id));
            }
        }
    }
}

/// A cursor over a node's listpack items.
struct Items {
    items: std::vec::IntoIter<Item>,
    at: u64,
}

impl Items {
    fn int(&mut self) -> Result<i64> {
        self.items
            .next()
            .and_then(|i| i.as_int())
            .ok_or_else(|| RdbError::corrupt("stream node: expected an integer", self.at))
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        self.items
            .next()
            .map(Item::into_bytes)
            .ok_or_else(|| RdbError::corrupt("stream node: truncated entry", self.at))
    }
    fn count(&mut self) -> Result<usize> {
        let n = self.int()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.items.len())
            .ok_or_else(|| RdbError::corrupt("stream node: bad count", self.at))
    }
}

/// Reads one node's listpack into a chunk.
fn decode_node(master: StreamId, lp: &[u8], at: u64) -> Result<Chunk> {
    let bad = |what: &str| RdbError::corrupt(format!("stream node: {what}"), at);
    let mut it = Items {
        items: listpack::decode(lp, at)?.into_iter(),
        at,
    };
    let count = it.int()?;
    let deleted = it.int()?;
    let nfields = it.count()?;
    let mut fields = Vec::with_capacity(nfields);
    for _ in 0..nfields {
        fields.push(it.bytes()?);
    }
    if it.int()? != 0 {
        return Err(bad("missing master terminator"));
    }
    let mut live = Vec::new();
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    let mut last = master;
    while it.items.len() > 0 {
        let flags = it.int()?;
        let ms = master.ms.wrapping_add(it.int()? as u64);
        let seq = master.seq.wrapping_add(it.int()? as u64);
        let id = StreamId { ms, seq };
        if id < master || (seen_live + seen_deleted > 0 && id <= last) {
            return Err(bad("entry ids out of order"));
        }
        last = id;
        let mut pairs = Vec::new();
        let n = if flags & FLAG_SAMEFIELDS != 0 {
            for f in &fields {
                pairs.push(f.clone());
                pairs.push(it.bytes()?);
            }
            fields.len() as i64
        } else {
            let n = it.count()?;
            for _ in 0..2 * n {
                pairs.push(it.bytes()?);
            }
            n as i64
        };
        let want = if flags & FLAG_SAMEFIELDS != 0 {
            3 + n
        } else {
            4 + 2 * n
        };
        if it.int()? != want {
            return Err(bad("entry lp-count"));
        }
        if flags & FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            seen_live += 1;
            live.push((id, pairs));
        }
    }
    if seen_live != count || seen_deleted != deleted || count == 0 {
        return Err(bad("entry counts differ from the master entry"));
    }
    let c = Chunk::import(
        master,
        &fields,
        &live,
        deleted as u32,
        lp.len() as u64,
        last,
    );
    c.validate(master).map_err(|e| bad(&e))?;
    Ok(c)
}

fn read_id<R: Read>(r: &mut Reader<R>) -> Result<StreamId> {
    Ok(StreamId {
        ms: r.length()?,
        seq: r.length()?,
    })
}

/// Reads a stream of RDB type `ty`.
pub fn decode<R: Read>(ty: u8, r: &mut Reader<R>) -> Result<Stream> {
    let start = r.offset();
    let mut s = Stream::new();
    let nodes = r.count(2, "stream node")?;
    let mut prev: Option<StreamId> = None;
    for _ in 0..nodes {
        let at = r.offset();
        let key = r.string()?;
        let master = id_from(&key).ok_or_else(|| RdbError::corrupt("stream node key", at))?;
        if prev.is_some_and(|p| p >= master) {
            return r.corrupt("stream nodes out of order", at);
        }
        prev = Some(master);
        let lp_at = r.offset();
        let lp = r.string()?;
        s.insert_chunk(master, decode_node(master, &lp, lp_at)?);
    }
    s.length = r.length()?;
    s.last_id = read_id(r)?;
    let live: u64 = s.chunks().map(|(_, c)| u64::from(c.parts().1)).sum();
    if live != s.length {
        return r.corrupt("stream length differs from its entries", start);
    }
    if s.length > 0 && s.edge(true).is_some_and(|l| l > s.last_id) {
        return r.corrupt("stream entry above its last id", start);
    }
    if ty == types::STREAM_LISTPACKS {
        s.entries_added = s.length;
        s.first_id = s.edge(false).unwrap_or(StreamId::MIN);
    } else {
        s.first_id = read_id(r)?;
        s.max_deleted = read_id(r)?;
        s.entries_added = r.length()?;
    }
    let ngroups = r.count(3, "consumer group")?;
    for _ in 0..ngroups {
        let at = r.offset();
        let name = r.string()?;
        let last_id = read_id(r)?;
        let entries_read = if ty == types::STREAM_LISTPACKS {
            s.estimate_distance(last_id)
                .map_or(ENTRIES_READ_UNKNOWN, |d| d as i64)
        } else {
            r.length()? as i64
        };
        let mut g = Group::new(last_id, entries_read);
        let npel = r.count(17, "pending entry")?;
        let mut owners: BTreeMap<StreamId, Option<Vec<u8>>> = BTreeMap::new();
        let mut times = Vec::with_capacity(npel as usize);
        for _ in 0..npel {
            let id_at = r.offset();
            let id = id_from(&r.array::<16>("pending id")?).unwrap_or(StreamId::MIN);
            let time = r.millis()?;
            let count = r.length()?;
            if owners.insert(id, None).is_some() {
                return r.corrupt("duplicate pending entry", id_at);
            }
            times.push((id, time, count));
        }
        let nconsumers = r.count(9, "consumer")?;
        for _ in 0..nconsumers {
            let c_at = r.offset();
            let cname = r.string()?;
            let seen_time = r.millis()?;
            if ty == types::STREAM_LISTPACKS_3 {
                r.millis()?; // active time (7.2): not kept
            }
            let mut c = Consumer {
                seen_time,
                ..Consumer::default()
            };
            let n = r.count(16, "consumer pending entry")?;
            for _ in 0..n {
                let id = id_from(&r.array::<16>("pending id")?).unwrap_or(StreamId::MIN);
                match owners.get_mut(&id) {
                    Some(o @ None) => *o = Some(cname.clone()),
                    _ => return r.corrupt("consumer pending entry not in the group's", c_at),
                }
                c.pel.insert(id);
            }
            if g.consumers.insert(cname.into(), c).is_some() {
                return r.corrupt("duplicate consumer", c_at);
            }
        }
        for (id, time, count) in times {
            let Some(Some(owner)) = owners.remove(&id) else {
                return r.corrupt("pending entry without a consumer", at);
            };
            g.pel.insert(
                id,
                Nack {
                    delivery_time: time,
                    delivery_count: count,
                    consumer: owner.into(),
                },
            );
        }
        if s.groups.insert(name.into(), g).is_some() {
            return r.corrupt("duplicate consumer group", at);
        }
    }
    Ok(s)
}
