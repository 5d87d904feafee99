//! The range commands of sorted sets: ZRANGE in all its forms, ZRANGESTORE and the
//! ZREMRANGEBY* family, which share one selection of members by rank, score or lexicographic
//! range.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::lists::clamp_range;
use super::zsets::{lex_bound, pairs_reply, score_bound};
use crate::ctx::Ctx;
use crate::db::notify::{GENERIC, ZSET};
use crate::db::zset::Entry;
use crate::db::{Key, Value, ZSet};
use crate::node::{Handler, row};

/// The range rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
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
        row!(
            "zrangestore",
            -5,
            [WRITE, DENYOOM],
            1,
            2,
            1,
            "sorted-set",
            "Stores a range of members in a key.",
            Data(zrangestore)
        ),
    ]
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
) -> Result<Vec<Entry<'z>>, CmdError> {
    let mut items: Vec<Entry> = match spec.by {
        RangeBy::Rank => {
            let start = vigil_resp::args::parse_int(min)?;
            let stop = vigil_resp::args::parse_int(max)?;
            let len = z.len();
            let Some((s, e)) = clamp_range(start, stop, len) else {
                return Ok(vec![]);
            };
            if spec.rev {
                z.iter().rev().skip(s).take(e - s + 1).collect()
            } else {
                z.iter().skip(s).take(e - s + 1).collect()
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

/// Reads `min max [options]`: BYSCORE/BYLEX/REV where `allow_by`, WITHSCORES where
/// `withscores`, LIMIT; checks the combinations as Redis does.
fn parse_range(
    args: &mut Args,
    mut spec: RangeSpec,
    allow_by: bool,
    withscores: bool,
) -> Result<(Bytes, Bytes, RangeSpec), CmdError> {
    let min = args.bytes()?;
    let max = args.bytes()?;
    while let Some(opt) = args.next() {
        match &opt.to_ascii_uppercase()[..] {
            b"WITHSCORES" if withscores => spec.withscores = true,
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
    // Bounds are validated before the key is looked up, as Redis does.
    select(&ZSet::default(), &min, &max, &spec)?;
    Ok((min, max, spec))
}

fn range_generic(
    ctx: &mut Ctx,
    args: &mut Args,
    spec: RangeSpec,
    allow_by: bool,
) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let (min, max, spec) = parse_range(args, spec, allow_by, true)?;
    let resp3 = ctx.resp3;
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Array(vec![]));
    };
    let items = select(z, &min, &max, &spec)?;
    Ok(pairs_reply(&items, spec.withscores, resp3))
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`: an empty result
/// deletes `dst`.
fn zrangestore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let dst = args.bytes()?;
    let src = args.bytes()?;
    let (min, max, spec) = parse_range(args, spec(RangeBy::Rank, false), true, false)?;
    let limits = ctx.store.thresholds.zset();
    let mut z = ZSet::default();
    if let Some(from) = ctx.get_zset(&src)? {
        for (s, m) in select(from, &min, &max, &spec)? {
            z.insert(m, s.0, limits);
        }
    }
    let n = z.len();
    if n == 0 {
        if ctx.delete(&dst) {
            ctx.notify(GENERIC, "del", &dst);
        }
        return Ok(Reply::Int(0));
    }
    ctx.exists_write(&dst);
    let db = ctx.db();
    db.set(&dst, Value::ZSet(z), false);
    db.touch(&dst);
    ctx.changed(1);
    ctx.notify(ZSET, "zrangestore", &dst);
    Ok(Reply::Int(n as i64))
}

fn spec(by: RangeBy, rev: bool) -> RangeSpec {
    RangeSpec {
        by,
        rev,
        limit: None,
        withscores: false,
    }
}

fn remove_selected(ctx: &mut Ctx, key: &Bytes, members: Vec<Key>, event: &'static str) -> Reply {
    let n = members.len();
    if n > 0 {
        if let Ok(Some(z)) = ctx.get_zset(key) {
            for m in &members {
                z.remove(m);
            }
        }
        ctx.took_from(ZSET, event, key);
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
        .map(|(_, m)| Key::from(m))
        .collect();
    let event = match by {
        RangeBy::Rank => "zremrangebyrank",
        RangeBy::Score => "zremrangebyscore",
        RangeBy::Lex => "zremrangebylex",
    };
    Ok(remove_selected(ctx, &key, members, event))
}
