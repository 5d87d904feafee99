//! MEMORY: USAGE (an estimate of the bytes a key holds in Vigil's own layout), STATS, DOCTOR,
//! MALLOC-STATS, PURGE, HELP — shaped as Redis 7.0 answers them.

use bytes::Bytes;
use vigil_resp::args::lossy_lower;
use vigil_resp::command::bad_subcommand;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::stream::StreamId;
use crate::db::{Store, Value};
use crate::node::{Handler, row};

/// The MEMORY rows: USAGE reads a key (a data command, with lazy expiry); the rest are about
/// the process.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "memory",
        -2,
        [READONLY],
        0,
        0,
        0,
        "server",
        "Reports memory use.",
        Data(memory),
        keys = vigil_resp::keys::memory
    )]
}

/// Heap bytes of one allocation of `n` bytes (a pointer and length live in the owner).
fn boxed(n: usize) -> usize {
    if n == 0 { 0 } else { n.next_multiple_of(8) }
}

/// An estimate of the bytes a value holds: its elements and the tables that index them, in
/// Vigil's layout (hash tables: hash, key and value slots and an index per entry).
pub fn value_bytes(v: &Value) -> usize {
    const SLICE: usize = 16;
    match v {
        Value::Str(s) => boxed(s.len()),
        Value::List(l) => l.capacity() * SLICE + l.iter().map(|e| boxed(e.len())).sum::<usize>(),
        Value::Hash(h) => match h.packed_bytes() {
            Some(n) => boxed(n),
            None => {
                h.capacity() * (8 + 2 * SLICE + 8)
                    + h.iter()
                        .map(|(f, v)| boxed(f.len()) + boxed(v.len()))
                        .sum::<usize>()
            }
        },
        Value::Set(s) => match s.intset_bytes() {
            Some(n) => boxed(n),
            None => {
                s.capacity() * (8 + SLICE + 8) + s.iter().map(|m| boxed(m.len())).sum::<usize>()
            }
        },
        Value::ZSet(z) => match z.packed_bytes() {
            Some(n) => boxed(n),
            // The score table and the ordered tree each hold a copy of the member.
            None => {
                z.len() * (8 + SLICE + 8 + 8 + 8 + SLICE + 16)
                    + z.iter().map(|(_, m)| 2 * boxed(m.len())).sum::<usize>()
            }
        },
        Value::Stream(s) => s
            .range(StreamId::MIN, StreamId::MAX, false, usize::MAX)
            .iter()
            .map(|(_, f)| 16 + f.iter().map(|(a, b)| a.len() + b.len() + 2).sum::<usize>())
            .sum(),
    }
}

/// The bytes a key and its value hold, with the keyspace entry that points at them.
fn key_bytes(key: &[u8], v: &Value) -> usize {
    const ENTRY: usize = 8 + 16 + 16 + 8;
    let container = match v {
        Value::Str(_) => 0,
        _ => 64,
    };
    ENTRY + boxed(key.len()) + container + value_bytes(v)
}

fn memory(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let raw = args.bytes()?;
    let sub = lossy_lower(&raw);
    match sub.as_str() {
        "usage" if args.remaining() >= 1 => {
            let key = args.bytes()?;
            while let Some(o) = args.next() {
                if o.eq_ignore_ascii_case(b"samples") && args.remaining() >= 1 {
                    let n = args.i64()?;
                    if n < 0 {
                        return Err(CmdError::Syntax);
                    }
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            // Redis looks in the dictionary directly: no keyspace hit or miss.
            let reads = std::mem::replace(&mut ctx.reads, false);
            let size = ctx.peek(&key).map(|v| key_bytes(&key, v) as i64);
            ctx.reads = reads;
            Ok(size.map_or(Reply::Nil, Reply::Int))
        }
        "stats" if args.is_empty() => Ok(stats(ctx.store)),
        "doctor" if args.is_empty() => Ok(Reply::Verbatim(Bytes::from_static(
            b"Vigil's memory doctor sees nothing to report: values are kept in plain tables and \
no allocator statistics are gathered. MEMORY STATS and INFO memory show the totals.\n",
        ))),
        "malloc-stats" if args.is_empty() => Ok(Reply::Verbatim(Bytes::from_static(
            b"Stats not supported for the current allocator",
        ))),
        "purge" if args.is_empty() => Ok(Reply::ok()),
        "help" if args.is_empty() => Ok(crate::cmd::slowlog::help(
            "MEMORY",
            &[
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        )),
        _ => Ok(bad_subcommand(
            "memory",
            &raw,
            &["usage", "stats", "doctor", "malloc-stats", "purge", "help"],
        )),
    }
}

/// STATS: the fields Redis reports, from the process's resident size and the dataset's
/// estimated size.
fn stats(store: &Store) -> Reply {
    let rss = crate::cmd::info::rss_bytes() as i64;
    let int = |k: &'static str, v: i64| (Reply::bulk_static(k), Reply::Int(v));
    let dbl = |k: &'static str, v: f64| (Reply::bulk_static(k), Reply::Double(v));
    let mut dataset = 0i64;
    let mut keys = 0i64;
    let mut out = vec![
        int("peak.allocated", rss),
        int("total.allocated", rss),
        int("startup.allocated", 0),
        int("replication.backlog", 0),
        int("clients.slaves", 0),
        int("clients.normal", 0),
        int("cluster.links", 0),
        int("aof.buffer", 0),
        int("lua.caches", 0),
        int("functions.caches", 0),
    ];
    let mut overhead = 0i64;
    for (i, db) in store.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        let main = (db.keys.capacity() * 48) as i64;
        let exp = (db.expires.capacity() * 32) as i64;
        overhead += main + exp;
        keys += db.keys.len() as i64;
        dataset += db
            .keys
            .iter()
            .map(|(k, v)| key_bytes(k, v) as i64)
            .sum::<i64>();
        out.push((
            Reply::bulk_string(format!("db.{i}")),
            Reply::Map(vec![
                int("overhead.hashtable.main", main),
                int("overhead.hashtable.expires", exp),
                int("overhead.hashtable.slot-to-keys", 0),
            ]),
        ));
    }
    let pct = |a: i64, b: i64| {
        if b > 0 {
            a as f64 * 100.0 / b as f64
        } else {
            0.0
        }
    };
    out.extend([
        int("overhead.total", overhead),
        int("keys.count", keys),
        int(
            "keys.bytes-per-key",
            if keys > 0 { dataset / keys } else { 0 },
        ),
        int("dataset.bytes", dataset),
        dbl("dataset.percentage", pct(dataset, rss)),
        dbl("peak.percentage", 100.0),
        int("allocator.allocated", rss),
        int("allocator.active", rss),
        int("allocator.resident", rss),
        dbl("allocator-fragmentation.ratio", 1.0),
        int("allocator-fragmentation.bytes", 0),
        dbl("allocator-rss.ratio", 1.0),
        int("allocator-rss.bytes", 0),
        dbl("rss-overhead.ratio", 1.0),
        int("rss-overhead.bytes", 0),
        dbl("fragmentation", 1.0),
        int("fragmentation.bytes", 0),
    ]);
    Reply::Map(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigger_values_weigh_more() {
        let small = Value::Str(crate::db::boxed(b"x"));
        let big = Value::Str(crate::db::boxed(&[b'x'; 1000]));
        assert!(key_bytes(b"k", &big) >= key_bytes(b"k", &small) + 990);
        let mut h = crate::db::Hash::default();
        let limits = crate::db::encoding::Thresholds::default().hash();
        for i in 0..100 {
            h.insert(format!("f{i}").as_bytes(), b"v", limits);
        }
        assert!(value_bytes(&Value::Hash(h)) > 100 * 4);
    }
}
