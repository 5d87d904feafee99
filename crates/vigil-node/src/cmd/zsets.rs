//! Sorted set commands.

use vigil_resp::args::parse_float;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::Key;
use crate::db::notify::ZSET;
use crate::db::zset::{Entry, LexBound, ScoreBound};
use crate::node::{Handler, row};

/// The sorted set family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "zadd",
            -4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Adds members or updates their scores.",
            Data(zadd)
        ),
        row!(
            "zincrby",
            4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Increments a member's score.",
            Data(zincrby)
        ),
        row!(
            "zrem",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Removes members.",
            Data(zrem)
        ),
        row!(
            "zscore",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Returns a member's score.",
            Data(zscore)
        ),
        row!(
            "zmscore",
            -3,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Returns several members' scores.",
            Data(zmscore)
        ),
        row!(
            "zcard",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Returns the number of members.",
            Data(zcard)
        ),
        row!(
            "zcount",
            4,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Counts members in a score range.",
            Data(zcount)
        ),
        row!(
            "zlexcount",
            4,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Counts members in a lexicographic range.",
            Data(zlexcount)
        ),
        row!(
            "zrank",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Returns a member's rank, ascending.",
            Data(|c, a| rank_generic(c, a, false))
        ),
        row!(
            "zrevrank",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Returns a member's rank, descending.",
            Data(|c, a| rank_generic(c, a, true))
        ),
    ]
}

fn score_arg(b: &[u8]) -> Result<f64, CmdError> {
    parse_float(b).ok_or(CmdError::NotFloat)
}

pub(crate) fn zadd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    while let Some(p) = args.peek() {
        match &p.to_ascii_uppercase()[..] {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            b"CH" => ch = true,
            b"INCR" => incr = true,
            _ => break,
        }
        args.next();
    }
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::msg(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::msg(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::msg(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        pairs.push((score_arg(&p[0])?, p[1].clone()));
    }
    if xx && ctx.get_zset(&key)?.is_none() {
        ctx.get_zset(&key)?;
        return Ok(if incr { Reply::Nil } else { Reply::Int(0) });
    }
    let limits = ctx.store.thresholds.zset();
    let z = ctx.zset_or_new(&key)?;
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (score, member) in pairs {
        let cur = z.score(&member);
        if (nx && cur.is_some()) || (xx && cur.is_none()) {
            continue;
        }
        let new = if incr {
            cur.unwrap_or(0.0) + score
        } else {
            score
        };
        if new.is_nan() {
            ctx.remove_if_empty(&key);
            return Err(CmdError::msg("ERR resulting score is not a number (NaN)"));
        }
        if let Some(c) = cur {
            if (gt && new <= c) || (lt && new >= c) {
                continue;
            }
            if c != new {
                z.insert(&member, new, limits);
                changed += 1;
            }
        } else {
            z.insert(&member, new, limits);
            added += 1;
        }
        incr_result = Some(new);
    }
    if z.is_empty() {
        ctx.remove_if_empty(&key);
    }
    if added + changed > 0 {
        ctx.db().touch(&key);
        ctx.changed((added + changed) as u64);
        ctx.notify(ZSET, if incr { "zincr" } else { "zadd" }, &key);
    }
    if incr {
        return Ok(incr_result.map_or(Reply::Nil, Reply::Double));
    }
    Ok(Reply::Int(if ch { added + changed } else { added }))
}

fn zincrby(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let by = score_arg(&args.bytes()?)?;
    let member = args.bytes()?;
    let limits = ctx.store.thresholds.zset();
    let z = ctx.zset_or_new(&key)?;
    let cur = z.score(&member);
    let new = cur.unwrap_or(0.0) + by;
    if new.is_nan() {
        ctx.remove_if_empty(&key);
        return Err(CmdError::msg("ERR resulting score is not a number (NaN)"));
    }
    z.insert(&member, new, limits);
    ctx.db().touch(&key);
    ctx.changed(1);
    if cur != Some(new) {
        ctx.notify(ZSET, "zincr", &key);
    }
    Ok(Reply::Double(new))
}

fn zrem(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let members = args.rest();
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Int(0));
    };
    let n = members.iter().filter(|m| z.remove(m)).count();
    if n > 0 {
        ctx.took_from(ZSET, "zrem", &key);
        ctx.db().touch(&key);
        ctx.changed(n as u64);
    }
    Ok(Reply::Int(n as i64))
}

fn zscore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let m = args.bytes()?;
    Ok(ctx
        .get_zset(&key)?
        .and_then(|z| z.score(&m))
        .map_or(Reply::Nil, Reply::Double))
}

fn zmscore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let ms = args.rest();
    let z = ctx.get_zset(&key)?;
    Ok(Reply::Array(
        ms.iter()
            .map(|m| {
                z.as_ref()
                    .and_then(|z| z.score(m))
                    .map_or(Reply::Nil, Reply::Double)
            })
            .collect(),
    ))
}

fn zcard(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_zset(&key)?.map_or(0, |z| z.len() as i64),
    ))
}

pub(super) fn score_bound(b: &[u8]) -> Result<ScoreBound, CmdError> {
    let err = || CmdError::msg("ERR min or max is not a float");
    let (exclusive, rest) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let value = parse_float(rest).ok_or_else(err)?;
    Ok(ScoreBound { value, exclusive })
}

pub(super) fn lex_bound(b: &[u8]) -> Result<LexBound, CmdError> {
    match b {
        b"-" => Ok(LexBound::Min),
        b"+" => Ok(LexBound::Max),
        [b'[', rest @ ..] => Ok(LexBound::Inclusive(Key::from(rest))),
        [b'(', rest @ ..] => Ok(LexBound::Exclusive(Key::from(rest))),
        _ => Err(CmdError::msg("ERR min or max not valid string range item")),
    }
}

fn zcount(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let min = score_bound(&args.bytes()?)?;
    let max = score_bound(&args.bytes()?)?;
    Ok(Reply::Int(
        ctx.get_zset(&key)?
            .map_or(0, |z| z.range_by_score(min, max).len() as i64),
    ))
}

fn zlexcount(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let min = lex_bound(&args.bytes()?)?;
    let max = lex_bound(&args.bytes()?)?;
    Ok(Reply::Int(
        ctx.get_zset(&key)?
            .map_or(0, |z| z.range_by_lex(&min, &max).len() as i64),
    ))
}

fn rank_generic(ctx: &mut Ctx, args: &mut Args, rev: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let m = args.bytes()?;
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Nil);
    };
    let len = z.len();
    Ok(z.rank(&m).map_or(Reply::Nil, |r| {
        Reply::Int(if rev { len - 1 - r } else { r } as i64)
    }))
}

/// Renders (member, score) pairs as Redis does for the connection's protocol.
pub(crate) fn pairs_reply(items: &[Entry], withscores: bool, resp3: bool) -> Reply {
    let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
    for (s, m) in items {
        if !withscores {
            out.push(Reply::bulk(m));
        } else if resp3 {
            out.push(Reply::Array(vec![Reply::bulk(m), Reply::Double(s.0)]));
        } else {
            out.push(Reply::bulk(m));
            out.push(Reply::Double(s.0));
        }
    }
    Reply::Array(out)
}
