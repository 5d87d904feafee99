//! Sorted set commands.

use bytes::Bytes;
use vigil_resp::args::parse_float;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::lists::clamp_range;
use crate::ctx::Ctx;
use crate::db::zset::{LexBound, Score, ScoreBound};
use crate::db::{Key, ZSet};
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
        row!(
            "zrange",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members by rank, score or lexicographic range.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Rank, false), true))
        ),
        row!(
            "zrangebyscore",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members in a score range.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Score, false), false))
        ),
        row!(
            "zrevrangebyscore",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members in a score range, descending.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Score, true), false))
        ),
        row!(
            "zrangebylex",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members in a lexicographic range.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Lex, false), false))
        ),
        row!(
            "zrevrangebylex",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members in a lexicographic range, descending.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Lex, true), false))
        ),
        row!(
            "zrevrange",
            -4,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns members by rank, descending.",
            Data(|c, a| range_generic(c, a, spec(RangeBy::Rank, true), false))
        ),
        row!(
            "zremrangebyrank",
            4,
            [WRITE],
            1,
            1,
            1,
            "sorted-set",
            "Removes members in a rank range.",
            Data(|c, a| remrange(c, a, RangeBy::Rank))
        ),
        row!(
            "zremrangebyscore",
            4,
            [WRITE],
            1,
            1,
            1,
            "sorted-set",
            "Removes members in a score range.",
            Data(|c, a| remrange(c, a, RangeBy::Score))
        ),
        row!(
            "zremrangebylex",
            4,
            [WRITE],
            1,
            1,
            1,
            "sorted-set",
            "Removes members in a lexicographic range.",
            Data(|c, a| remrange(c, a, RangeBy::Lex))
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
                z.insert(&member, new);
                changed += 1;
            }
        } else {
            z.insert(&member, new);
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
    let z = ctx.zset_or_new(&key)?;
    let new = z.score(&member).unwrap_or(0.0) + by;
    if new.is_nan() {
        ctx.remove_if_empty(&key);
        return Err(CmdError::msg("ERR resulting score is not a number (NaN)"));
    }
    z.insert(&member, new);
    ctx.db().touch(&key);
    ctx.changed(1);
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
        ctx.remove_if_empty(&key);
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

fn score_bound(b: &[u8]) -> Result<ScoreBound, CmdError> {
    let err = || CmdError::msg("ERR min or max is not a float");
    let (exclusive, rest) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let value = parse_float(rest).ok_or_else(err)?;
    Ok(ScoreBound { value, exclusive })
}

fn lex_bound(b: &[u8]) -> Result<LexBound, CmdError> {
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
pub(crate) fn pairs_reply(items: &[&(Score, Key)], withscores: bool, resp3: bool) -> Reply {
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

#[derive(Clone, Copy, PartialEq)]
enum RangeBy {
    Rank,
    Score,
    Lex,
}

struct RangeSpec {
    by: RangeBy,
    rev: bool,
    limit: Option<(i64, i64)>,
    withscores: bool,
}

/// Selects the members of a range request, in reply order.
fn select<'z>(
    z: &'z ZSet,
    min: &[u8],
    max: &[u8],
    spec: &RangeSpec,
) -> Result<Vec<&'z (Score, Key)>, CmdError> {
    let mut items: Vec<&(Score, Key)> = match spec.by {
        RangeBy::Rank => {
            let start = vigil_resp::args::parse_int(min)?;
            let stop = vigil_resp::args::parse_int(max)?;
            let len = z.len();
            let Some((s, e)) = clamp_range(start, stop, len) else {
                return Ok(vec![]);
            };
            if spec.rev {
                z.order.iter().rev().skip(s).take(e - s + 1).collect()
            } else {
                z.order.iter().skip(s).take(e - s + 1).collect()
            }
        }
        RangeBy::Score => {
            // In REV form the first bound is the maximum.
            let (lo, hi) = if spec.rev { (max, min) } else { (min, max) };
            let mut v = z.range_by_score(score_bound(lo)?, score_bound(hi)?);
            if spec.rev {
                v.reverse();
            }
            v
        }
        RangeBy::Lex => {
            let (lo, hi) = if spec.rev { (max, min) } else { (min, max) };
            let (lo, hi) = (lex_bound(lo)?, lex_bound(hi)?);
            let mut v = z.range_by_lex(&lo, &hi);
            if spec.rev {
                v.reverse();
            }
            v
        }
    };
    if let Some((offset, count)) = spec.limit {
        if offset < 0 {
            return Ok(vec![]);
        }
        let offset = offset as usize;
        items = items
            .into_iter()
            .skip(offset)
            .take(if count < 0 {
                usize::MAX
            } else {
                count as usize
            })
            .collect();
    }
    Ok(items)
}

fn range_generic(
    ctx: &mut Ctx,
    args: &mut Args,
    mut spec: RangeSpec,
    allow_by: bool,
) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let min = args.bytes()?;
    let max = args.bytes()?;
    while let Some(opt) = args.next() {
        match &opt.to_ascii_uppercase()[..] {
            b"WITHSCORES" => spec.withscores = true,
            b"LIMIT" if args.remaining() >= 2 => spec.limit = Some((args.i64()?, args.i64()?)),
            b"BYSCORE" if allow_by => spec.by = RangeBy::Score,
            b"BYLEX" if allow_by => spec.by = RangeBy::Lex,
            b"REV" if allow_by => spec.rev = true,
            _ => return Err(CmdError::Syntax),
        }
    }
    if spec.limit.is_some() && spec.by == RangeBy::Rank {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if spec.withscores && spec.by == RangeBy::Lex {
        return Err(CmdError::msg(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let resp3 = ctx.resp3;
    // Bounds are validated before the key is looked up, as Redis does.
    select(&ZSet::default(), &min, &max, &spec)?;
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Array(vec![]));
    };
    let items = select(z, &min, &max, &spec)?;
    Ok(pairs_reply(&items, spec.withscores, resp3))
}

fn spec(by: RangeBy, rev: bool) -> RangeSpec {
    RangeSpec {
        by,
        rev,
        limit: None,
        withscores: false,
    }
}

fn remove_selected(ctx: &mut Ctx, key: &Bytes, members: Vec<Key>) -> Reply {
    let n = members.len();
    if n > 0 {
        if let Ok(Some(z)) = ctx.get_zset(key) {
            for m in &members {
                z.remove(m);
            }
        }
        ctx.remove_if_empty(key);
        ctx.db().touch(key);
        ctx.changed(n as u64);
    }
    Reply::Int(n as i64)
}

fn remrange(ctx: &mut Ctx, args: &mut Args, by: RangeBy) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let min = args.bytes()?;
    let max = args.bytes()?;
    let sp = spec(by, false);
    select(&ZSet::default(), &min, &max, &sp)?;
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Int(0));
    };
    let members: Vec<Key> = select(z, &min, &max, &sp)?
        .into_iter()
        .map(|(_, m)| m.clone())
        .collect();
    Ok(remove_selected(ctx, &key, members))
}
