//! XINFO: STREAM [FULL [COUNT n]], GROUPS, CONSUMERS, HELP — Redis 7.0's fields, maps in
//! RESP3.

use std::collections::HashSet;

use vigil_resp::command::{bad_subcommand, unknown_subcommand};
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::stream_groups::{help, sub_syntax};
use super::streams::{entries_reply, entry_reply};
use crate::ctx::Ctx;
use crate::db::Stream;
use crate::db::stream::{Group, StreamId};
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "xinfo",
        -2,
        [READONLY],
        2,
        2,
        1,
        "stream",
        "Returns information about a stream, its groups or a group's consumers.",
        Data(xinfo),
        keys = vigil_resp::keys::xinfo
    )]
}

const HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk_static(k), v))
            .collect(),
    )
}

fn id(i: StreamId) -> Reply {
    Reply::Bulk(i.to_bytes())
}

fn opt_int(v: Option<u64>) -> Reply {
    v.map_or(Reply::Nil, |v| Reply::Int(v as i64))
}

fn entries_read(g: &Group) -> Reply {
    if g.entries_read >= 0 {
        Reply::Int(g.entries_read)
    } else {
        Reply::Nil
    }
}

/// The number of nodes Redis' radix tree has for these 128-bit keys: the root, every key,
/// every branching prefix and each branch's first node (path compression merges the rest).
fn rax_nodes(s: &Stream) -> usize {
    let keys: Vec<[u8; 16]> = s
        .chunks()
        .map(|(m, _)| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&m.ms.to_be_bytes());
            k[8..].copy_from_slice(&m.seq.to_be_bytes());
            k
        })
        .collect();
    let mut prefixes: HashSet<Vec<u8>> = HashSet::new();
    prefixes.insert(Vec::new());
    for k in &keys {
        prefixes.insert(k.to_vec());
    }
    for w in keys.windows(2) {
        let l = w[0].iter().zip(&w[1]).take_while(|(a, b)| a == b).count();
        if l < 16 {
            prefixes.insert(w[0][..l].to_vec());
            prefixes.insert(w[0][..=l].to_vec());
            prefixes.insert(w[1][..=l].to_vec());
        }
    }
    prefixes.len()
}

fn xinfo(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let sub = all[1].clone();
    let lower = String::from_utf8_lossy(&sub).to_lowercase();
    let ok = match lower.as_str() {
        "help" => all.len() == 2,
        "consumers" => all.len() == 4,
        "groups" => all.len() == 3,
        "stream" => all.len() >= 3,
        _ => return Ok(unknown_subcommand("xinfo", &sub)),
    };
    if !ok {
        return Ok(bad_subcommand(
            "xinfo",
            &sub,
            &["help", "consumers", "groups", "stream"],
        ));
    }
    if lower == "help" {
        return Ok(help(HELP));
    }
    let key = all[2].clone();
    let now = ctx.now;
    let Some(s) = ctx.get_stream(&key)? else {
        return Err(CmdError::NoSuchKey);
    };
    let s: &Stream = s;
    match lower.as_str() {
        "consumers" => {
            let Some(g) = s.groups.get(&all[3][..]) else {
                return Err(CmdError::msg(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(&all[3]),
                    String::from_utf8_lossy(&key)
                )));
            };
            Ok(Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        map(vec![
                            ("name", Reply::bulk(name)),
                            ("pending", Reply::Int(c.pel.len() as i64)),
                            ("idle", Reply::Int((now - c.seen_time).max(0))),
                        ])
                    })
                    .collect(),
            ))
        }
        "groups" => Ok(Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    map(vec![
                        ("name", Reply::bulk(name)),
                        ("consumers", Reply::Int(g.consumers.len() as i64)),
                        ("pending", Reply::Int(g.pel.len() as i64)),
                        ("last-delivered-id", id(g.last_id)),
                        ("entries-read", entries_read(g)),
                        ("lag", opt_int(s.lag(g))),
                    ])
                })
                .collect(),
        )),
        _ => stream_info(s, &all[3..]),
    }
}

fn stream_info(s: &Stream, opts: &[bytes::Bytes]) -> Result<Reply, CmdError> {
    let mut full = false;
    let mut count: i64 = 10;
    if !opts.is_empty() {
        if (opts.len() != 1 && opts.len() != 3) || !opts[0].eq_ignore_ascii_case(b"full") {
            return Err(sub_syntax("XINFO", b"STREAM"));
        }
        full = true;
        if opts.len() == 3 {
            if !opts[1].eq_ignore_ascii_case(b"count") {
                return Err(sub_syntax("XINFO", b"STREAM"));
            }
            count = vigil_resp::args::parse_int(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut m = vec![
        ("length", Reply::Int(s.length as i64)),
        ("radix-tree-keys", Reply::Int(s.nodes() as i64)),
        ("radix-tree-nodes", Reply::Int(rax_nodes(s) as i64)),
        ("last-generated-id", id(s.last_id)),
        ("max-deleted-entry-id", id(s.max_deleted)),
        ("entries-added", Reply::Int(s.entries_added as i64)),
        ("recorded-first-entry-id", id(s.first_id)),
    ];
    if !full {
        let edge = |last: bool| {
            s.range(StreamId::MIN, StreamId::MAX, last, 1)
                .first()
                .map_or(Reply::Nil, entry_reply)
        };
        m.push(("groups", Reply::Int(s.groups.len() as i64)));
        m.push(("first-entry", edge(false)));
        m.push(("last-entry", edge(true)));
        return Ok(map(m));
    }
    let n = count as usize;
    let limit = |i: usize| n == 0 || i < n;
    m.push((
        "entries",
        entries_reply(&s.range(StreamId::MIN, StreamId::MAX, false, n)),
    ));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .enumerate()
                .take_while(|(i, _)| limit(*i))
                .map(|(_, (pid, nack))| {
                    Reply::Array(vec![
                        id(*pid),
                        Reply::bulk(&nack.consumer),
                        Reply::Int(nack.delivery_time),
                        Reply::Int(nack.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pel = c
                        .pel
                        .iter()
                        .enumerate()
                        .take_while(|(i, _)| limit(*i))
                        .filter_map(|(_, pid)| {
                            let nack = g.pel.get(pid)?;
                            Some(Reply::Array(vec![
                                id(*pid),
                                Reply::Int(nack.delivery_time),
                                Reply::Int(nack.delivery_count as i64),
                            ]))
                        })
                        .collect();
                    map(vec![
                        ("name", Reply::bulk(cname)),
                        ("seen-time", Reply::Int(c.seen_time)),
                        ("pel-count", Reply::Int(c.pel.len() as i64)),
                        ("pending", Reply::Array(pel)),
                    ])
                })
                .collect();
            map(vec![
                ("name", Reply::bulk(name)),
                ("last-delivered-id", id(g.last_id)),
                ("entries-read", entries_read(g)),
                ("lag", opt_int(s.lag(g))),
                ("pel-count", Reply::Int(g.pel.len() as i64)),
                ("pending", Reply::Array(pending)),
                ("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push(("groups", Reply::Array(groups)));
    Ok(map(m))
}
