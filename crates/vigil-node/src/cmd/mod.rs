//! The command table: every command family and the table that gathers their rows.
//!
//! Every command is one row — name, arity, flags, key positions, group, summary, handler — in
//! the family file that implements it. [`table`] gathers the rows; dispatch, the arity error and
//! `COMMAND` all read that one table.
//!
//! Data commands are plain functions `fn(&mut Ctx, &mut Args) -> Result<Reply, CmdError>` (see
//! [`crate::ctx`]) run
//! under the store lock, so they are testable without any I/O.

pub mod bitfield;
pub mod bitmaps;
pub mod blocking;
pub mod client;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod counters;
pub mod dbs;
pub mod debug;
pub mod functions;
pub mod geo;
pub mod geo_search;
pub mod hashes;
pub mod hyperloglog;
pub mod info;
pub mod keys;
pub mod lcs;
pub mod lists;
pub mod memory;
pub mod migrate;
pub mod mpop;
pub mod object;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod slowlog;
pub mod sort;
pub mod stream_claim;
pub mod stream_groups;
pub mod stream_info;
pub mod stream_read;
pub mod streams;
pub mod strings;
pub mod txn;
pub mod zalgebra;
pub mod zpop;
pub mod zrange;
pub mod zsets;

use vigil_resp::CommandMeta;
use vigil_resp::command::CommandTable;

use crate::node::Handler;

/// The node's whole command table.
pub fn table() -> CommandTable<Handler> {
    let mut rows: Vec<(CommandMeta, Handler)> = Vec::new();
    rows.extend(conn::commands());
    rows.extend(client::commands());
    rows.extend(server::commands());
    rows.extend(config::commands());
    rows.extend(slowlog::commands());
    rows.extend(info::commands());
    rows.extend(cluster::commands());
    rows.extend(replication::commands());
    rows.extend(txn::commands());
    rows.extend(keys::commands());
    rows.extend(migrate::commands());
    rows.extend(dbs::commands());
    rows.extend(debug::commands());
    rows.extend(memory::commands());
    rows.extend(object::commands());
    rows.extend(strings::commands());
    rows.extend(counters::commands());
    rows.extend(bitmaps::commands());
    rows.extend(bitfield::commands());
    rows.extend(hyperloglog::commands());
    rows.extend(lists::commands());
    rows.extend(blocking::commands());
    rows.extend(mpop::commands());
    rows.extend(hashes::commands());
    rows.extend(sets::commands());
    rows.extend(zsets::commands());
    rows.extend(zrange::commands());
    rows.extend(zalgebra::commands());
    rows.extend(zpop::commands());
    rows.extend(geo::commands());
    rows.extend(sort::commands());
    rows.extend(lcs::commands());
    rows.extend(scripting::commands());
    rows.extend(functions::commands());
    rows.extend(streams::commands());
    rows.extend(stream_read::commands());
    rows.extend(stream_groups::commands());
    rows.extend(stream_claim::commands());
    rows.extend(stream_info::commands());
    CommandTable::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use vigil_resp::{Args, Flags};

    use crate::ctx::Ctx;
    use crate::db::Store;

    /// Walks the table: names, arity, flags, key positions are coherent.
    #[test]
    fn table_rows_are_coherent() {
        let t = table();
        assert!(t.len() > 140);
        for (i, (m, _)) in t.iter().enumerate() {
            assert!(
                m.name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                "#{i} {}",
                m.name
            );
            assert!(m.arity != 0, "#{i} {}", m.name);
            assert!(
                !m.summary.is_empty() && !m.group.is_empty(),
                "#{i} {}",
                m.name
            );
            assert!(
                !(m.flags.has(Flags::WRITE) && m.flags.has(Flags::READONLY)),
                "#{i} {}",
                m.name
            );
            assert!(
                !m.flags.has(Flags::MOVABLEKEYS) || m.find_keys.is_some(),
                "#{i} {}: movablekeys without a key finder",
                m.name
            );
            // The shortest request, and one with room for a counted key, stay in bounds.
            // (Shorter ones too: `redis.acl_check_cmd` finds keys without an arity check.)
            let argc = m.arity.unsigned_abs() as usize;
            for argc in 1..=argc + 1 {
                let req = vec![bytes::Bytes::from_static(b"1"); argc];
                for k in m.keys(&req).unwrap_or_default() {
                    assert!(
                        k.pos >= 1 && k.pos < argc,
                        "#{i} {}: key position {} of {argc}",
                        m.name,
                        k.pos
                    );
                }
            }
        }
    }

    /// The transaction flags agree with Redis 7.0: `no-multi` is exactly the commands whose
    /// `src/commands/*.json` carry `NO_MULTI`, and the commands run at once inside MULTI are
    /// exactly those `processCommand` names.
    #[test]
    fn transaction_flags_match_redis() {
        let t = table();
        let with = |f: Flags| {
            let mut v: Vec<&str> = t
                .iter()
                .filter(|(m, _)| m.flags.has(f))
                .map(|(m, _)| m.name)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(with(Flags::NO_MULTI), ["psync", "save", "shutdown", "sync"]);
        assert_eq!(
            with(Flags::UNQUEUED),
            ["discard", "exec", "multi", "quit", "reset", "watch"]
        );
        for (m, _) in t.iter() {
            assert!(
                !m.flags.names().contains(&"unqueued"),
                "{}: COMMAND must not show a flag Redis does not have",
                m.name
            );
        }
    }

    /// Every data command, with argument lists of every plausible shape, on empty and populated
    /// keys of every type: it may return an error, it must never panic.
    #[test]
    fn no_data_command_panics_on_odd_arguments() {
        let t = table();
        let vocab = [
            "k",
            "1",
            "-1",
            "0",
            "x",
            "+inf",
            "(1",
            "[a",
            "-",
            "LIMIT",
            "WITHSCORES",
            "COUNT",
            "99999999999999999999",
            "STREAMS",
            ">",
            "GROUP",
        ];
        let mut store = Store::new(16);
        let mut props = Vec::new();
        let seed: &[&[&str]] = &[
            &["set", "s", "1"],
            &["rpush", "l", "a", "b"],
            &["hset", "h", "f", "1"],
            &["sadd", "st", "a"],
            &["zadd", "z", "1", "a"],
            &["xadd", "x", "1-1", "a", "1"],
            &["xgroup", "create", "x", "g", "0"],
            &["xreadgroup", "group", "g", "c", "streams", "x", ">"],
        ];
        for (i, (m, h)) in t.iter().enumerate() {
            let Handler::Data(f) = h else { continue };
            let min = m.arity.unsigned_abs() as usize;
            for extra in 0..4 {
                for key in ["k", "s", "l", "h", "st", "z", "x"] {
                    for v in 0..vocab.len() {
                        let mut items = vec![Bytes::from(m.name)];
                        for j in 1..min + extra {
                            let word = if j == 1 {
                                key
                            } else {
                                vocab[(v + j) % vocab.len()]
                            };
                            items.push(Bytes::from(word));
                        }
                        if !m.arity_ok(items.len()) {
                            continue;
                        }
                        for s in seed {
                            let mut ctx = Ctx::new(&mut store, 0, 1_000, &mut props);
                            let mut a = Args::new(s.iter().map(|w| Bytes::from(*w)).collect());
                            let Some((_, Handler::Data(seed_f))) = t.get(s[0].as_bytes()) else {
                                panic!()
                            };
                            let _ = seed_f(&mut ctx, &mut a);
                        }
                        let mut ctx = Ctx::new(&mut store, 0, 1_000, &mut props);
                        let mut a = Args::new(items);
                        let _ = f(&mut ctx, &mut a);
                        ctx.finish(&a);
                        props.clear();
                    }
                }
            }
            let _ = i;
        }
    }
}
