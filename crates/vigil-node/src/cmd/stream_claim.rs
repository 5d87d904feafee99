//! Claiming pending entries: XCLAIM and XAUTOCLAIM. Each claim is propagated as the
//! idempotent `XCLAIM … FORCE JUSTID` that sets the entry's exact owner, time and count.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::stream_groups::{claim_prop, emit, nogroup, setid_prop, stream_group};
use super::streams::entry_reply;
use crate::ctx::{Ctx, argv};
use crate::db::Stream;
use crate::db::stream::{Nack, StreamId};
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "xclaim",
            -6,
            [WRITE, FAST],
            1,
            1,
            1,
            "stream",
            "Changes the owner of pending entries.",
            Data(xclaim)
        ),
        row!(
            "xautoclaim",
            -6,
            [WRITE, FAST],
            1,
            1,
            1,
            "stream",
            "Claims pending entries idle long enough, scanning from a cursor.",
            Data(xautoclaim)
        ),
    ]
}

/// Takes the pending entry `id` for `consumer` (creating the consumer on first use), as XCLAIM
/// and XAUTOCLAIM do; returns its propagation.
#[allow(clippy::too_many_arguments)]
fn take_over(
    s: &mut Stream,
    ctx_now: i64,
    key: &[u8],
    gname: &[u8],
    consumer: &[u8],
    id: StreamId,
    time: i64,
    count: u64,
    created: &mut bool,
) -> Option<Vec<Bytes>> {
    let g = s.groups.get_mut(gname)?;
    if g.create_consumer(consumer, ctx_now) {
        *created = true;
    }
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.seen_time = ctx_now;
    }
    g.assign(id, consumer, time, Some(count));
    let n = g.pel.get(&id)?;
    Some(claim_prop(key, gname, id, n, g.last_id))
}

fn claimed_reply(s: &Stream, id: StreamId, justid: bool) -> Reply {
    if justid {
        return Reply::Bulk(id.to_bytes());
    }
    match s.get(id) {
        Some(e) => entry_reply(&e),
        None => Reply::Nil,
    }
}

fn xclaim(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let (key, gname, cname, min_idle) = claim_args(ctx, &all, "XCLAIM")?;
    let mut j = 5;
    let mut ids = Vec::new();
    while j < all.len() {
        match StreamId::parse_strict(&all[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now;
    let (mut force, mut justid) = (false, false);
    let mut time: Option<i64> = None;
    let mut retry: Option<i64> = None;
    let mut last = StreamId::MIN;
    while j < all.len() {
        let more = all.len() - 1 - j;
        let opt = &all[j][..];
        let int = |b: &[u8], what: &str| {
            vigil_resp::args::parse_int(b).map_err(|_| {
                CmdError::msg(format!("ERR Invalid {what} option argument for XCLAIM"))
            })
        };
        if opt.eq_ignore_ascii_case(b"force") {
            force = true;
        } else if opt.eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else if opt.eq_ignore_ascii_case(b"idle") && more > 0 {
            j += 1;
            time = Some(now.saturating_sub(int(&all[j], "IDLE")?));
        } else if opt.eq_ignore_ascii_case(b"time") && more > 0 {
            j += 1;
            time = Some(int(&all[j], "TIME")?);
        } else if opt.eq_ignore_ascii_case(b"retrycount") && more > 0 {
            j += 1;
            retry = Some(int(&all[j], "RETRYCOUNT")?);
        } else if opt.eq_ignore_ascii_case(b"lastid") && more > 0 {
            j += 1;
            last = StreamId::parse_strict(&all[j])?;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    let time = match time {
        Some(t) if (0..=now).contains(&t) => t,
        _ => now,
    };
    let Some(s) = stream_group(ctx, &key, &gname)? else {
        return Err(nogroup(&key, &gname));
    };
    let mut props = Vec::new();
    let mut moved_last = false;
    if let Some(g) = s.groups.get_mut(&gname[..])
        && last > g.last_id
    {
        g.last_id = last;
        moved_last = true;
    }
    let mut out = Vec::new();
    let mut created = false;
    for id in ids {
        let Some(g) = s.groups.get(&gname[..]) else {
            break;
        };
        let nack = g.pel.get(&id).cloned();
        if !s.contains(id) {
            if let Some(n) = nack {
                props.push(claim_prop(&key, &gname, id, &n, g.last_id));
                moved_last = false;
                if let Some(g) = s.groups.get_mut(&gname[..]) {
                    g.ack(id);
                }
            }
            continue;
        }
        let Some(n) = nack.or_else(|| {
            force.then(|| Nack {
                delivery_time: now,
                delivery_count: 1,
                consumer: Box::from(&b""[..]),
            })
        }) else {
            continue;
        };
        let fresh = n.consumer.is_empty() && force;
        if !fresh && min_idle > 0 && now - n.delivery_time < min_idle {
            continue;
        }
        let count = match retry {
            Some(r) if r >= 0 => r as u64,
            _ if justid => n.delivery_count,
            _ => n.delivery_count + 1,
        };
        if let Some(p) = take_over(s, now, &key, &gname, &cname, id, time, count, &mut created) {
            props.push(p);
        }
        moved_last = false;
        out.push(claimed_reply(s, id, justid));
    }
    if moved_last && let Some(g) = s.groups.get(&gname[..]) {
        props.push(setid_prop(&key, &gname, g));
    }
    emit_claims(ctx, created, &key, &gname, &cname, props);
    Ok(Reply::Array(out))
}

fn xautoclaim(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let (key, gname, cname) = (all[1].clone(), all[2].clone(), all[3].clone());
    // Unlike XCLAIM, Redis reads every argument before it looks the group up.
    let min_idle = min_idle_arg(&all[4], "XAUTOCLAIM")?;
    let start = StreamId::parse_interval(&all[5], true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < all.len() {
        let more = all.len() - 1 - j;
        if all[j].eq_ignore_ascii_case(b"count") && more > 0 {
            let max = i64::MAX / 16;
            count = match vigil_resp::args::parse_int(&all[j + 1]) {
                Ok(c) if (1..=max).contains(&c) => c,
                _ => return Err(CmdError::msg("ERR COUNT must be > 0")),
            };
            j += 1;
        } else if all[j].eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let now = ctx.now;
    let Some(s) = stream_group(ctx, &key, &gname)? else {
        return Err(nogroup(&key, &gname));
    };
    let mut attempts = count.saturating_mul(10);
    let mut remaining = count;
    let mut props = Vec::new();
    let mut out = Vec::new();
    let mut deleted = Vec::new();
    let mut created = false;
    let mut cursor = start;
    let mut next = StreamId::MIN;
    while let Some(g) = s.groups.get(&gname[..]) {
        let Some((&id, n)) = g.pel.range(cursor..).next() else {
            next = StreamId::MIN;
            break;
        };
        if attempts == 0 || remaining == 0 {
            next = id;
            break;
        }
        attempts -= 1;
        let n = n.clone();
        cursor = match id.incr() {
            Some(c) => c,
            None => StreamId::MAX,
        };
        if !s.contains(id) {
            props.push(claim_prop(&key, &gname, id, &n, g.last_id));
            if let Some(g) = s.groups.get_mut(&gname[..]) {
                g.ack(id);
            }
            deleted.push(Reply::Bulk(id.to_bytes()));
            remaining -= 1;
        } else if min_idle == 0 || now - n.delivery_time >= min_idle {
            let count = if justid {
                n.delivery_count
            } else {
                n.delivery_count + 1
            };
            if let Some(p) = take_over(s, now, &key, &gname, &cname, id, now, count, &mut created) {
                props.push(p);
            }
            out.push(claimed_reply(s, id, justid));
            remaining -= 1;
        }
        if id == StreamId::MAX {
            next = StreamId::MIN;
            break;
        }
    }
    emit_claims(ctx, created, &key, &gname, &cname, props);
    Ok(Reply::Array(vec![
        Reply::Bulk(next.to_bytes()),
        Reply::Array(out),
        Reply::Array(deleted),
    ]))
}

/// `key group consumer min-idle-time` of XCLAIM and XAUTOCLAIM: the group must exist.
fn claim_args(
    ctx: &mut Ctx,
    all: &[Bytes],
    cmd: &str,
) -> Result<(Bytes, Bytes, Bytes, i64), CmdError> {
    let (key, gname, cname) = (all[1].clone(), all[2].clone(), all[3].clone());
    if stream_group(ctx, &key, &gname)?.is_none() {
        return Err(nogroup(&key, &gname));
    }
    // Redis reads the key once: the lookups that follow are not keyspace hits.
    ctx.reads = false;
    Ok((key, gname, cname, min_idle_arg(&all[4], cmd)?))
}

/// The min-idle-time argument (negative: 0).
fn min_idle_arg(arg: &[u8], cmd: &str) -> Result<i64, CmdError> {
    Ok(vigil_resp::args::parse_int(arg)
        .map_err(|_| CmdError::msg(format!("ERR Invalid min-idle-time argument for {cmd}")))?
        .max(0))
}

/// Propagates a claim as Redis does: the consumer's creation first, then the claims.
fn emit_claims(
    ctx: &mut Ctx,
    created: bool,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    props: Vec<Vec<Bytes>>,
) {
    if created {
        emit(
            ctx,
            argv([b"XGROUP", b"CREATECONSUMER", key, group, consumer]),
        );
        ctx.notify(crate::db::notify::STREAM, "xgroup-createconsumer", key);
    }
    for p in props {
        emit(ctx, p);
    }
}
