//! XREAD and XREADGROUP, blocking or not.
//!
//! A read that finds nothing and was given `BLOCK` asks the dispatcher to wait
//! ([`crate::ctx::Block`]) with the arguments to retry with: `$` resolved to the last id at
//! the first attempt, so entries added while waiting are returned, and a `COUNT` of 1000 when
//! none was given, as Redis bounds a woken reader. XREADGROUP is propagated as what it did to
//! the group (Redis' effects): `XGROUP CREATECONSUMER`, one `XCLAIM … FORCE JUSTID` per
//! delivered entry, and `XGROUP SETID … ENTRIESREAD`.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::stream_groups::{claim_prop, setid_prop};
use super::streams::{entries_reply, entry_reply};
use crate::ctx::{Block, Ctx, argv, int_arg};
use crate::db::stream::StreamId;
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "xread",
            -4,
            [READONLY, BLOCKING, MOVABLEKEYS],
            0,
            0,
            0,
            "stream",
            "Reads entries after given ids from streams, optionally blocking.",
            Data(|c, a| xread(c, a, false)),
            keys = vigil_resp::keys::xread
        ),
        row!(
            "xreadgroup",
            -7,
            [WRITE, BLOCKING, MOVABLEKEYS],
            0,
            0,
            0,
            "stream",
            "Reads entries for a consumer of a group, optionally blocking.",
            Data(|c, a| xread(c, a, true)),
            keys = vigil_resp::keys::xreadgroup
        ),
    ]
}

/// What a woken reader gets at most when it gave no COUNT (Redis' `XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: i64 = 1000;

/// The id a reader asked for.
#[derive(Clone, Copy)]
enum ReadId {
    /// `>`: entries never delivered to the group.
    New,
    /// Entries after this id.
    After(StreamId),
}

struct ReadArgs {
    block_ms: Option<i64>,
    count: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    keys: Vec<Bytes>,
    ids: Vec<Bytes>,
}

fn parse(argv: &[Bytes], group: bool) -> Result<ReadArgs, CmdError> {
    let mut r = ReadArgs {
        block_ms: None,
        count: 0,
        group: None,
        noack: false,
        keys: Vec::new(),
        ids: Vec::new(),
    };
    let mut streams_at = 0;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i][..];
        if o.eq_ignore_ascii_case(b"block") && more > 0 {
            i += 1;
            let t = vigil_resp::args::parse_int(&argv[i])
                .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
            if t < 0 {
                return Err(CmdError::msg("ERR timeout is negative"));
            }
            r.block_ms = Some(t);
        } else if o.eq_ignore_ascii_case(b"count") && more > 0 {
            i += 1;
            r.count = vigil_resp::args::parse_int(&argv[i])?.max(0) as usize;
        } else if o.eq_ignore_ascii_case(b"streams") && more > 0 {
            streams_at = i + 1;
            if !(argv.len() - streams_at).is_multiple_of(2) {
                // Redis 7.0 words it so for XREADGROUP too.
                return Err(CmdError::msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            break;
        } else if o.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !group {
                return Err(CmdError::msg(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 2;
        } else if o.eq_ignore_ascii_case(b"noack") {
            if !group {
                return Err(CmdError::msg(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if streams_at == 0 {
        return Err(CmdError::Syntax);
    }
    if group && r.group.is_none() {
        return Err(CmdError::msg("ERR Missing GROUP option for XREADGROUP"));
    }
    let n = (argv.len() - streams_at) / 2;
    r.keys = argv[streams_at..streams_at + n].to_vec();
    r.ids = argv[streams_at + n..].to_vec();
    Ok(r)
}

fn xread(ctx: &mut Ctx, args: &mut Args, group: bool) -> Result<Reply, CmdError> {
    let r = parse(args.all(), group)?;
    if r.block_ms.is_some() && ctx.in_script {
        let name = if group { "xreadgroup" } else { "xread" };
        return Err(CmdError::msg(format!(
            "ERR {name} command is not allowed with BLOCK option from scripts"
        )));
    }
    // A retry of a client already waiting in the key's queue (see `crate::ctx::Block`).
    let retry = ctx.waiter.is_some();
    let mut ids = Vec::with_capacity(r.ids.len());
    for (key, raw) in r.keys.iter().zip(&r.ids) {
        // One lookup per key here and one to serve it, as Redis looks (its keyspace hits).
        let found = ctx.get_stream(key).map(|s| {
            s.map(|s| {
                let has_group = r
                    .group
                    .as_ref()
                    .is_some_and(|(g, _)| s.groups.contains_key(&g[..]));
                (s.last_id, has_group)
            })
        });
        let wrong_type = found.is_err();
        let last_id = match &found {
            Ok(Some((id, _))) => *id,
            _ => StreamId::MIN,
        };
        if let Some((g, _)) = &r.group {
            let has_group = match found {
                Ok(Some((_, has))) => has,
                Ok(None) if retry => {
                    return Err(CmdError::msg("UNBLOCKED the stream key no longer exists"));
                }
                Err(_) if retry => {
                    return Err(CmdError::msg("UNBLOCKED the stream key no longer exists"));
                }
                Ok(None) => false,
                Err(e) => return Err(e),
            };
            if !has_group {
                return Err(CmdError::msg(if retry {
                    "NOGROUP the consumer group this client was blocked on no longer exists"
                        .to_string()
                } else {
                    format!(
                        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(g)
                    )
                }));
            }
        } else if wrong_type && !retry {
            return Err(CmdError::WrongType);
        }
        ids.push(match &raw[..] {
            b"$" if group => {
                return Err(CmdError::msg(
                    "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ));
            }
            b"$" => ReadId::After(last_id),
            b">" if !group => {
                return Err(CmdError::msg(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ));
            }
            b">" => ReadId::New,
            _ => ReadId::After(StreamId::parse_strict(raw)?),
        });
    }
    let mut out: Vec<(Reply, Reply)> = Vec::new();
    for (key, id) in r.keys.iter().zip(&ids) {
        let served = match &r.group {
            Some((g, c)) => read_group(ctx, key, g, c, *id, r.count, r.noack)?,
            None => read_plain(ctx, key, *id, r.count),
        };
        if let Some(entries) = served {
            out.push((Reply::Bulk(key.clone()), entries));
        }
    }
    if !out.is_empty() {
        return Ok(if ctx.resp3 {
            Reply::Map(out)
        } else {
            Reply::Array(
                out.into_iter()
                    .map(|(k, v)| Reply::Array(vec![k, v]))
                    .collect(),
            )
        });
    }
    if let Some(ms) = r.block_ms
        && ctx.may_block
    {
        ctx.block = Some(Block {
            keys: r.keys.clone(),
            timeout: ms as f64 / 1000.0,
            on_timeout: Reply::NilArray,
            retry: Some(retry_args(&r, &ids, group)),
        });
    }
    Ok(Reply::NilArray)
}

/// The command a blocked reader retries with: `$` resolved, a bounded COUNT.
fn retry_args(r: &ReadArgs, ids: &[ReadId], group: bool) -> Vec<Bytes> {
    let count = if r.count == 0 {
        BLOCKED_DEFAULT_COUNT
    } else {
        r.count as i64
    };
    let mut a = vec![Bytes::from_static(if group {
        b"XREADGROUP"
    } else {
        b"XREAD"
    })];
    if let Some((g, c)) = &r.group {
        a.extend([Bytes::from_static(b"GROUP"), g.clone(), c.clone()]);
    }
    a.extend([
        Bytes::from_static(b"COUNT"),
        int_arg(count),
        Bytes::from_static(b"BLOCK"),
        int_arg(r.block_ms.unwrap_or(0)),
    ]);
    if r.noack {
        a.push(Bytes::from_static(b"NOACK"));
    }
    a.push(Bytes::from_static(b"STREAMS"));
    a.extend(r.keys.iter().cloned());
    a.extend(ids.iter().map(|id| match id {
        ReadId::New => Bytes::from_static(b">"),
        ReadId::After(id) => id.to_bytes(),
    }));
    a
}

/// XREAD on one stream: entries after `id`, if the stream has any.
fn read_plain(ctx: &mut Ctx, key: &Bytes, id: ReadId, count: usize) -> Option<Reply> {
    let ReadId::After(after) = id else {
        return None;
    };
    let s = ctx.get_stream(key).ok().flatten()?;
    if s.length == 0 || s.edge(true).is_none_or(|top| top <= after) {
        return None;
    }
    let start = after.incr()?;
    Some(entries_reply(&s.range(start, StreamId::MAX, false, count)))
}

/// XREADGROUP on one stream (the group exists): the consumer's history after an id, or new
/// entries for `>`.
fn read_group(
    ctx: &mut Ctx,
    key: &Bytes,
    gname: &Bytes,
    cname: &Bytes,
    id: ReadId,
    count: usize,
    noack: bool,
) -> Result<Option<Reply>, CmdError> {
    let now = ctx.now;
    // Entries go to blocked readers in arrival order: a retry with readers ahead of it waits
    // for them to take theirs (each leaving the queue wakes those behind).
    let behind = ctx.waiter.is_some() && ctx.waiters_ahead(key) > 0;
    let mut props: Vec<Vec<Bytes>> = Vec::new();
    let reply = {
        let Some(s) = ctx.get_stream(key)? else {
            return Ok(None);
        };
        let Some(g) = s.groups.get(&gname[..]) else {
            return Ok(None);
        };
        let serve_new = match id {
            ReadId::After(_) => true,
            ReadId::New => {
                !behind && s.length > 0 && s.edge(true).is_some_and(|top| top > g.last_id)
            }
        };
        let start = match id {
            ReadId::After(a) => a,
            ReadId::New => g.last_id,
        };
        if !serve_new {
            return Ok(None);
        }
        // The consumer appears when it is first served (Redis 7.0).
        let Some(g) = s.groups.get_mut(&gname[..]) else {
            return Ok(None);
        };
        if g.create_consumer(cname, now) {
            props.push(argv([b"XGROUP", b"CREATECONSUMER", key, gname, cname]));
        }
        if let Some(c) = g.consumers.get_mut(&cname[..]) {
            c.seen_time = now;
        }
        if let ReadId::After(_) = id {
            Some(history(s, gname, cname, start, count, now))
        } else {
            let Some(from) = start.incr() else {
                return Ok(None);
            };
            let entries: Vec<_> = s
                .range(from, StreamId::MAX, false, count)
                .iter()
                .map(|e| (e.0, entry_reply(e)))
                .collect();
            let mut moved = false;
            for (eid, _) in &entries {
                let tomb = s.has_tombstones_from(*eid);
                let estimate = s.estimate_distance(*eid);
                let added = s.entries_added;
                let Some(g) = s.groups.get_mut(&gname[..]) else {
                    break;
                };
                if *eid > g.last_id {
                    if g.entries_read >= 0 && !tomb {
                        g.entries_read += 1;
                    } else if added > 0 {
                        g.entries_read = estimate.map_or(-1, |v| v as i64);
                    }
                    g.last_id = *eid;
                    moved = true;
                }
                if !noack {
                    g.assign(*eid, cname, now, Some(1));
                    if let Some(n) = g.pel.get(eid) {
                        props.push(claim_prop(key, gname, *eid, n, g.last_id));
                    }
                }
            }
            if moved && let Some(g) = s.groups.get(&gname[..]) {
                props.push(setid_prop(key, gname, g));
            }
            Some(Reply::Array(entries.into_iter().map(|(_, r)| r).collect()))
        }
    };
    for p in props {
        if p.get(1).is_some_and(|s| s[..] == b"CREATECONSUMER"[..]) {
            ctx.notify(crate::db::notify::STREAM, "xgroup-createconsumer", key);
        }
        ctx.changed(1);
        ctx.propagate(p);
    }
    Ok(reply)
}

/// The consumer's pending entries after `after` (deleted ones as `[id, nil]`); each delivery
/// is counted, as Redis counts it (and, as Redis, not propagated).
fn history(
    s: &mut crate::db::Stream,
    gname: &[u8],
    cname: &[u8],
    after: StreamId,
    count: usize,
    now: i64,
) -> Reply {
    let Some(from) = after.incr() else {
        return Reply::Array(vec![]);
    };
    let ids: Vec<StreamId> = s
        .groups
        .get(gname)
        .and_then(|g| g.consumers.get(cname))
        .map(|c| {
            c.pel
                .range(from..)
                .take(if count == 0 { usize::MAX } else { count })
                .copied()
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    let mut delivered = Vec::new();
    for id in ids {
        match s.get(id) {
            Some(e) => {
                out.push(entry_reply(&e));
                delivered.push(id);
            }
            None => out.push(Reply::Array(vec![
                Reply::Bulk(id.to_bytes()),
                Reply::NilArray,
            ])),
        }
    }
    if let Some(g) = s.groups.get_mut(gname) {
        for id in delivered {
            if let Some(n) = g.pel.get_mut(&id) {
                n.delivery_time = now;
                n.delivery_count += 1;
            }
        }
    }
    Reply::Array(out)
}
