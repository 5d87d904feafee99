//! Consumer-group commands: XGROUP, XACK, XPENDING (claims are in `stream_claim.rs`).
//!
//! Group state replicates as Redis propagates it: claims as `XCLAIM … TIME t RETRYCOUNT n
//! FORCE JUSTID LASTID id` (idempotent on the replica, the NACK's exact time and count), the
//! delivered position as `XGROUP SETID … ENTRIESREAD n`.

use bytes::Bytes;
use vigil_resp::command::{bad_subcommand, unknown_subcommand};
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::{Ctx, argv, int_arg};
use crate::db::Stream;
use crate::db::notify::STREAM;
use crate::db::stream::group::ENTRIES_READ_UNKNOWN;
use crate::db::stream::{Group, Nack, StreamId};
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "xgroup",
            -2,
            [WRITE],
            2,
            2,
            1,
            "stream",
            "Creates, changes and destroys consumer groups and consumers.",
            Data(xgroup),
            keys = vigil_resp::keys::xgroup
        ),
        row!(
            "xack",
            -4,
            [WRITE, FAST],
            1,
            1,
            1,
            "stream",
            "Acknowledges delivered entries of a group.",
            Data(xack)
        ),
        row!(
            "xpending",
            -3,
            [READONLY],
            1,
            1,
            1,
            "stream",
            "Returns the pending entries of a group.",
            Data(xpending)
        ),
    ]
}

/// `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID LASTID last`: the state
/// of one pending entry, as Redis propagates a delivery or claim.
pub fn claim_prop(key: &[u8], group: &[u8], id: StreamId, n: &Nack, last: StreamId) -> Vec<Bytes> {
    let mut v = argv([b"XCLAIM", key, group, &n.consumer, b"0"]);
    v.extend([
        id.to_bytes(),
        Bytes::from_static(b"TIME"),
        int_arg(n.delivery_time),
        Bytes::from_static(b"RETRYCOUNT"),
        int_arg(n.delivery_count as i64),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        last.to_bytes(),
    ]);
    v
}

/// `XGROUP SETID key group last ENTRIESREAD n`.
pub fn setid_prop(key: &[u8], group: &[u8], g: &Group) -> Vec<Bytes> {
    let mut v = argv([b"XGROUP", b"SETID", key, group]);
    v.extend([
        g.last_id.to_bytes(),
        Bytes::from_static(b"ENTRIESREAD"),
        int_arg(g.entries_read),
    ]);
    v
}

pub(super) fn emit(ctx: &mut Ctx, cmd: Vec<Bytes>) {
    ctx.changed(1);
    ctx.propagate(cmd);
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

/// A HELP reply: status lines.
pub fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().copied().map(Reply::simple).collect())
}

/// Redis' `addReplySubcommandSyntaxError`.
pub fn sub_syntax(cmd: &str, sub: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn entries_read_arg(b: &[u8]) -> Result<i64, CmdError> {
    let n = vigil_resp::args::parse_int(b)?;
    if n < 0 && n != ENTRIES_READ_UNKNOWN {
        return Err(CmdError::msg(
            "ERR value for ENTRIESREAD must be positive or -1",
        ));
    }
    Ok(n)
}

fn xgroup(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let sub = all[1].clone();
    let lower = String::from_utf8_lossy(&sub).to_lowercase();
    let arity_ok = match lower.as_str() {
        "create" | "setid" => all.len() >= 5,
        "destroy" => all.len() == 4,
        "createconsumer" | "delconsumer" => all.len() == 5,
        "help" => all.len() == 2,
        _ => return Ok(unknown_subcommand("xgroup", &sub)),
    };
    if !arity_ok {
        return Ok(bad_subcommand(
            "xgroup",
            &sub,
            &[
                "create",
                "setid",
                "destroy",
                "createconsumer",
                "delconsumer",
                "help",
            ],
        ));
    }
    if lower == "help" {
        return Ok(help(XGROUP_HELP));
    }
    let key = all[2].clone();
    let gname = all[3].clone();
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_UNKNOWN;
    if lower == "create" {
        let mut i = 5;
        while i < all.len() {
            if all[i].eq_ignore_ascii_case(b"mkstream") {
                mkstream = true;
                i += 1;
            } else if all[i].eq_ignore_ascii_case(b"entriesread") && i + 1 < all.len() {
                entries_read = entries_read_arg(&all[i + 1])?;
                i += 2;
            } else {
                return Err(sub_syntax("XGROUP", &sub));
            }
        }
    }
    let exists = ctx.get_stream(&key)?.is_some();
    if !mkstream && !exists {
        return Err(CmdError::msg(
            "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    }
    let has_group = exists
        && ctx
            .get_stream(&key)?
            .is_some_and(|s| s.groups.contains_key(&gname[..]));
    if !has_group && matches!(lower.as_str(), "setid" | "createconsumer" | "delconsumer") {
        return Err(CmdError::msg(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(&gname),
            String::from_utf8_lossy(&key)
        )));
    }
    let now = ctx.now;
    match lower.as_str() {
        "create" => {
            if all.len() > 8 {
                return Err(sub_syntax("XGROUP", &sub));
            }
            let id = if &all[4][..] == b"$" {
                ctx.get_stream(&key)?.map_or(StreamId::MIN, |s| s.last_id)
            } else {
                StreamId::parse_strict(&all[4])?
            };
            let s = ctx.stream_or_new(&key)?;
            if s.groups.contains_key(&gname[..]) {
                return Err(CmdError::msg(
                    "BUSYGROUP Consumer Group name already exists",
                ));
            }
            s.groups
                .insert(gname.to_vec().into(), Group::new(id, entries_read));
            ctx.db().touch(&key);
            ctx.changed(1);
            ctx.notify(STREAM, "xgroup-create", &key);
            Ok(Reply::ok())
        }
        "setid" => {
            if all.len() != 5 && all.len() != 7 {
                return Err(sub_syntax("XGROUP", &sub));
            }
            let Some(s) = ctx.get_stream(&key)? else {
                return Ok(Reply::ok());
            };
            let id = if &all[4][..] == b"$" {
                s.last_id
            } else {
                StreamId::parse(&all[4], 0)?
            };
            if all.len() == 7 {
                if !all[5].eq_ignore_ascii_case(b"entriesread") {
                    return Err(sub_syntax("XGROUP", &sub));
                }
                entries_read = entries_read_arg(&all[6])?;
            }
            if let Some(g) = s.groups.get_mut(&gname[..]) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.changed(1);
            ctx.notify(STREAM, "xgroup-setid", &key);
            Ok(Reply::ok())
        }
        "destroy" => {
            let removed = ctx
                .get_stream(&key)?
                .is_some_and(|s| s.groups.remove(&gname[..]).is_some());
            if removed {
                // Wakes readers blocked on the group: they answer -NOGROUP.
                ctx.db().touch(&key);
                ctx.changed(1);
                ctx.notify(STREAM, "xgroup-destroy", &key);
            }
            Ok(Reply::Int(removed as i64))
        }
        "createconsumer" => {
            let created = ctx
                .get_stream(&key)?
                .and_then(|s| s.groups.get_mut(&gname[..]))
                .is_some_and(|g| g.create_consumer(&all[4], now));
            if created {
                ctx.changed(1);
                ctx.notify(STREAM, "xgroup-createconsumer", &key);
            }
            Ok(Reply::Int(created as i64))
        }
        _ => {
            let pending = ctx
                .get_stream(&key)?
                .and_then(|s| s.groups.get_mut(&gname[..]))
                .and_then(|g| g.delete_consumer(&all[4]));
            if pending.is_some() {
                ctx.changed(1);
                ctx.notify(STREAM, "xgroup-delconsumer", &key);
            }
            Ok(Reply::Int(pending.unwrap_or(0) as i64))
        }
    }
}

/// The stream and group for XACK/XPENDING/XCLAIM: `None` if either is missing.
pub(super) fn stream_group<'s>(
    ctx: &'s mut Ctx,
    key: &[u8],
    group: &[u8],
) -> Result<Option<&'s mut Stream>, CmdError> {
    Ok(ctx
        .get_stream(key)?
        .filter(|s| s.groups.contains_key(group)))
}

pub(super) fn nogroup(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn xack(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let gname = args.bytes()?;
    let raw = args.rest();
    // One lookup (one keyspace hit, as in Redis), before the IDs are parsed: a missing key
    // or group answers 0 whatever they are.
    let Some(g) = stream_group(ctx, &key, &gname)?.and_then(|s| s.groups.get_mut(&gname[..]))
    else {
        return Ok(Reply::Int(0));
    };
    let ids = raw
        .iter()
        .map(|b| StreamId::parse_strict(b))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    if acked > 0 {
        ctx.changed(acked as u64);
    }
    Ok(Reply::Int(acked as i64))
}

fn xpending(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let (key, gname) = (&all[1], &all[2]);
    let n = all.len();
    if n != 3 && !(6..=9).contains(&n) {
        return Err(CmdError::Syntax);
    }
    let mut min_idle = 0i64;
    let mut range = None;
    if n >= 6 {
        let mut at = 3;
        if all[3].eq_ignore_ascii_case(b"idle") {
            min_idle = vigil_resp::args::parse_int(&all[4])?;
            if n < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = vigil_resp::args::parse_int(&all[at + 2])?.max(0) as usize;
        let start = StreamId::parse_interval(&all[at], true)?;
        let end = StreamId::parse_interval(&all[at + 1], false)?;
        // Redis ignores anything after the consumer.
        let consumer = all.get(at + 3).cloned();
        range = Some((start, end, count, consumer));
    }
    let now = ctx.now;
    let Some(s) = stream_group(ctx, key, gname)? else {
        return Err(nogroup(key, gname));
    };
    let Some(g) = s.groups.get(&gname[..]) else {
        return Err(nogroup(key, gname));
    };
    let Some((start, end, count, consumer)) = range else {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let owners = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::bulk(name),
                    Reply::bulk_string(c.pel.len().to_string()),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            Reply::Bulk(first.to_bytes()),
            Reply::Bulk(last.to_bytes()),
            Reply::Array(owners),
        ]));
    };
    let ids: Vec<StreamId> = match &consumer {
        Some(c) => match g.consumers.get(&c[..]) {
            Some(c) if start <= end => c.pel.range(start..=end).copied().collect(),
            Some(_) => vec![],
            None => return Ok(Reply::Array(vec![])),
        },
        None if start <= end => g.pel.range(start..=end).map(|(k, _)| *k).collect(),
        None => vec![],
    };
    let mut out = Vec::new();
    for id in ids {
        if out.len() >= count {
            break;
        }
        let Some(nack) = g.pel.get(&id) else { continue };
        if min_idle > 0 && now - nack.delivery_time < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            Reply::Bulk(id.to_bytes()),
            Reply::bulk(&nack.consumer),
            Reply::Int((now - nack.delivery_time).max(0)),
            Reply::Int(nack.delivery_count as i64),
        ]));
    }
    Ok(Reply::Array(out))
}
