//! Sorted-set algebra: `ZUNION`, `ZINTER`, `ZDIFF`, their `STORE` forms and `ZINTERCARD`.
//!
//! Inputs may be sorted sets or sets (members of a set score 1). As in Redis, the inputs of a
//! union or intersection are taken smallest first (a stable order), and scores are combined in
//! that order, so sums of floating-point scores round exactly as redis-server's do.

use bytes::Bytes;
use vigil_resp::args::parse_float;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::cmd::zsets::pairs_reply;
use crate::ctx::Ctx;
use crate::db::zset::{Entry, Score};
use crate::db::{Key, Value, ZSet};
use crate::node::{Handler, row};

/// The family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "zunionstore",
            -4,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "sorted-set",
            "Stores the union of sorted sets in a key.",
            Data(zunionstore),
            keys = vigil_resp::keys::numkeys_store
        ),
        row!(
            "zinterstore",
            -4,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "sorted-set",
            "Stores the intersection of sorted sets in a key.",
            Data(zinterstore),
            keys = vigil_resp::keys::numkeys_store
        ),
        row!(
            "zdiffstore",
            -4,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "sorted-set",
            "Stores the difference of sorted sets in a key.",
            Data(zdiffstore),
            keys = vigil_resp::keys::numkeys_store
        ),
        row!(
            "zunion",
            -3,
            [READONLY, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Returns the union of sorted sets.",
            Data(zunion),
            keys = vigil_resp::keys::numkeys_read
        ),
        row!(
            "zinter",
            -3,
            [READONLY, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Returns the intersection of sorted sets.",
            Data(zinter),
            keys = vigil_resp::keys::numkeys_read
        ),
        row!(
            "zdiff",
            -3,
            [READONLY, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Returns the difference of sorted sets.",
            Data(zdiff),
            keys = vigil_resp::keys::numkeys_read
        ),
        row!(
            "zintercard",
            -3,
            [READONLY, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Returns the number of members of the intersection of sorted sets.",
            Data(zintercard),
            keys = vigil_resp::keys::numkeys_read
        ),
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            // inf + -inf
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = target.min(v),
        Aggregate::Max => *target = target.max(v),
    }
}

type Members = indexmap::IndexMap<Key, f64, ahash::RandomState>;

/// One input: its members and scores (empty if the key is missing), and its weight.
struct Source {
    members: Members,
    weight: f64,
}

impl Source {
    fn score(&self, member: &[u8]) -> Option<f64> {
        self.members.get(member).copied()
    }
}

/// What the command asks for besides the operation.
struct Request {
    sources: Vec<Source>,
    how: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Parses `numkeys key … [WEIGHTS w …] [AGGREGATE SUM|MIN|MAX] [WITHSCORES] [LIMIT n]` in
/// Redis' order of checks: numkeys, the keys' types, then the options.
fn parse(
    ctx: &mut Ctx,
    args: &mut Args,
    name: &str,
    op: Op,
    store: bool,
    card: bool,
) -> Result<Request, CmdError> {
    let n = args.i64()?;
    if n < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as usize > args.remaining() {
        return Err(CmdError::Syntax);
    }
    let keys: Vec<Bytes> = (0..n).filter_map(|_| args.next()).collect();
    let mut sources = Vec::with_capacity(keys.len());
    for k in &keys {
        let members = match ctx.lookup(k) {
            None => Members::default(),
            Some(Value::ZSet(z)) => z.iter().map(|(s, m)| (Key::from(m), s.0)).collect(),
            Some(Value::Set(s)) => s.iter().map(|m| (Key::from(&*m), 1.0)).collect(),
            Some(_) => return Err(CmdError::WrongType),
        };
        sources.push(Source {
            members,
            weight: 1.0,
        });
    }
    let mut req = Request {
        sources,
        how: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    while let Some(opt) = args.next() {
        let opt = opt.to_ascii_lowercase();
        let left = args.remaining();
        match &opt[..] {
            b"weights" if op != Op::Diff && !card && left >= req.sources.len() => {
                for s in req.sources.iter_mut() {
                    let w = args.bytes()?;
                    s.weight = parse_float(&w)
                        .filter(|w| !w.is_nan())
                        .ok_or_else(|| CmdError::msg("ERR weight value is not a float"))?;
                }
            }
            b"aggregate" if op != Op::Diff && !card && left >= 1 => {
                req.how = match &args.bytes()?.to_ascii_lowercase()[..] {
                    b"sum" => Aggregate::Sum,
                    b"min" => Aggregate::Min,
                    b"max" => Aggregate::Max,
                    _ => return Err(CmdError::Syntax),
                };
            }
            b"withscores" if !store && !card => req.withscores = true,
            b"limit" if card && left >= 1 => {
                let l = args
                    .i64()
                    .map_err(|_| CmdError::msg("ERR LIMIT can't be negative"))?;
                if l < 0 {
                    return Err(CmdError::msg("ERR LIMIT can't be negative"));
                }
                req.limit = l as usize;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(req)
}

/// The result, as (score, member) in rank order.
fn compute(req: &mut Request, op: Op) -> Vec<(Score, Key)> {
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() { 0.0 } else { v }
    };
    if op != Op::Diff {
        req.sources.sort_by_key(|s| s.members.len());
    }
    let srcs = &req.sources;
    let mut out: Vec<(Score, Key)> = Vec::new();
    match op {
        Op::Inter => {
            'members: for (m, s0) in &srcs[0].members {
                let mut score = weighted(*s0, srcs[0].weight);
                for src in &srcs[1..] {
                    match src.score(m) {
                        Some(v) => aggregate(&mut score, v * src.weight, req.how),
                        None => continue 'members,
                    }
                }
                out.push((Score(score), m.clone()));
                if req.limit > 0 && out.len() >= req.limit {
                    break;
                }
            }
        }
        Op::Union => {
            let mut acc = Members::default();
            for src in srcs {
                for (m, s) in &src.members {
                    let v = weighted(*s, src.weight);
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, v, req.how),
                        None => {
                            acc.insert(m.clone(), v);
                        }
                    }
                }
            }
            out = acc.into_iter().map(|(m, s)| (Score(s), m)).collect();
        }
        Op::Diff => {
            for (m, s) in &srcs[0].members {
                if srcs[1..].iter().all(|src| src.score(m).is_none()) {
                    out.push((Score(*s), m.clone()));
                }
            }
        }
    }
    // -0 and 0 are the same score, as in a stored sorted set.
    for (s, _) in out.iter_mut() {
        if s.0 == 0.0 {
            s.0 = 0.0;
        }
    }
    out.sort();
    out
}

fn store(ctx: &mut Ctx, args: &mut Args, name: &'static str, op: Op) -> Result<Reply, CmdError> {
    let dst = args.bytes()?;
    let mut req = parse(ctx, args, name, op, true, false)?;
    let result = compute(&mut req, op);
    if result.is_empty() {
        if ctx.delete(&dst) {
            ctx.notify(crate::db::notify::GENERIC, "del", &dst);
        }
        return Ok(Reply::Int(0));
    }
    ctx.exists_write(&dst);
    let limits = ctx.store.thresholds.zset();
    let mut z = ZSet::default();
    for (s, m) in &result {
        z.insert(m, s.0, limits);
    }
    let db = ctx.db();
    db.set(&dst, Value::ZSet(z), false);
    db.touch(&dst);
    ctx.changed(1);
    ctx.notify(crate::db::notify::ZSET, name, &dst);
    Ok(Reply::Int(result.len() as i64))
}

fn read(ctx: &mut Ctx, args: &mut Args, name: &str, op: Op) -> Result<Reply, CmdError> {
    let mut req = parse(ctx, args, name, op, false, false)?;
    let result = compute(&mut req, op);
    let refs: Vec<Entry> = result.iter().map(|(s, m)| (*s, &m[..])).collect();
    Ok(pairs_reply(&refs, req.withscores, ctx.resp3))
}

fn zunionstore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    store(ctx, args, "zunionstore", Op::Union)
}

fn zinterstore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    store(ctx, args, "zinterstore", Op::Inter)
}

fn zdiffstore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    store(ctx, args, "zdiffstore", Op::Diff)
}

fn zunion(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    read(ctx, args, "zunion", Op::Union)
}

fn zinter(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    read(ctx, args, "zinter", Op::Inter)
}

fn zdiff(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    read(ctx, args, "zdiff", Op::Diff)
}

fn zintercard(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut req = parse(ctx, args, "zintercard", Op::Inter, false, true)?;
    Ok(Reply::Int(compute(&mut req, Op::Inter).len() as i64))
}
