//! Set commands.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::hashes::{rand_args, random_indices};
use crate::ctx::{Ctx, ScanOpts, scan_cursor, scan_reply};
use crate::db::notify::{GENERIC, SET};
use crate::db::{Key, Set, Value, scan_indices};
use crate::node::{Handler, row};

/// The set family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "sadd",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "set",
            "Adds members to a set.",
            Data(sadd)
        ),
        row!(
            "srem",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "set",
            "Removes members from a set.",
            Data(srem)
        ),
        row!(
            "smembers",
            2,
            [READONLY],
            1,
            1,
            1,
            "set",
            "Returns all members.",
            Data(smembers)
        ),
        row!(
            "sismember",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "set",
            "Whether a value is a member.",
            Data(sismember)
        ),
        row!(
            "smismember",
            -3,
            [READONLY, FAST],
            1,
            1,
            1,
            "set",
            "Whether each value is a member.",
            Data(smismember)
        ),
        row!(
            "scard",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "set",
            "Returns the number of members.",
            Data(scard)
        ),
        row!(
            "spop",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "set",
            "Removes and returns random members.",
            Data(spop)
        ),
        row!(
            "srandmember",
            -2,
            [READONLY],
            1,
            1,
            1,
            "set",
            "Returns random members.",
            Data(srandmember)
        ),
        row!(
            "smove",
            4,
            [WRITE, FAST],
            1,
            2,
            1,
            "set",
            "Moves a member from one set to another.",
            Data(smove)
        ),
        row!(
            "sinter",
            -2,
            [READONLY],
            1,
            -1,
            1,
            "set",
            "Intersects sets.",
            Data(|c, a| op_reply(c, a, SetOp::Inter))
        ),
        row!(
            "sunion",
            -2,
            [READONLY],
            1,
            -1,
            1,
            "set",
            "Unites sets.",
            Data(|c, a| op_reply(c, a, SetOp::Union))
        ),
        row!(
            "sdiff",
            -2,
            [READONLY],
            1,
            -1,
            1,
            "set",
            "Subtracts sets.",
            Data(|c, a| op_reply(c, a, SetOp::Diff))
        ),
        row!(
            "sinterstore",
            -3,
            [WRITE, DENYOOM],
            1,
            -1,
            1,
            "set",
            "Stores the intersection of sets.",
            Data(|c, a| op_store(c, a, SetOp::Inter))
        ),
        row!(
            "sunionstore",
            -3,
            [WRITE, DENYOOM],
            1,
            -1,
            1,
            "set",
            "Stores the union of sets.",
            Data(|c, a| op_store(c, a, SetOp::Union))
        ),
        row!(
            "sdiffstore",
            -3,
            [WRITE, DENYOOM],
            1,
            -1,
            1,
            "set",
            "Stores the difference of sets.",
            Data(|c, a| op_store(c, a, SetOp::Diff))
        ),
        row!(
            "sintercard",
            -3,
            [READONLY, MOVABLEKEYS],
            0,
            0,
            0,
            "set",
            "Counts the intersection of sets.",
            Data(sintercard),
            keys = vigil_resp::keys::numkeys_read
        ),
        row!(
            "sscan",
            -3,
            [READONLY],
            1,
            1,
            1,
            "set",
            "Iterates over members.",
            Data(sscan)
        ),
    ]
}

fn sadd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let members = args.rest();
    let max = ctx.store.thresholds.set_max();
    let s = ctx.set_or_new(&key)?;
    let added = members.iter().filter(|m| s.insert(m, max)).count();
    if added > 0 {
        ctx.db().touch(&key);
        ctx.changed(added as u64);
        ctx.notify(SET, "sadd", &key);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let members = args.rest();
    let Some(s) = ctx.get_set(&key)? else {
        return Ok(Reply::Int(0));
    };
    let n = members.iter().filter(|m| s.remove(m)).count();
    if n > 0 {
        ctx.took_from(SET, "srem", &key);
        ctx.db().touch(&key);
        ctx.changed(n as u64);
    }
    Ok(Reply::Int(n as i64))
}

fn members_reply(s: &Set) -> Reply {
    Reply::Set(s.iter().map(|m| Reply::bulk(&m)).collect())
}

fn smembers(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(ctx
        .get_set(&key)?
        .map_or(Reply::Set(vec![]), |s| members_reply(s)))
}

fn sismember(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let m = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_set(&key)?.is_some_and(|s| s.contains(&m[..])) as i64,
    ))
}

fn smismember(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let ms = args.rest();
    let s = ctx.get_set(&key)?;
    Ok(Reply::Array(
        ms.iter()
            .map(|m| Reply::Int(s.as_ref().is_some_and(|s| s.contains(&m[..])) as i64))
            .collect(),
    ))
}

fn scard(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(ctx.get_set(&key)?.map_or(0, |s| s.len() as i64)))
}

fn spop(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let count = crate::ctx::pop_count(args)?;
    args.finish()?;
    let Some(s) = ctx.get_set(&key)? else {
        return Ok(if count.is_some() {
            Reply::Set(vec![])
        } else {
            Reply::Nil
        });
    };
    let n = count.unwrap_or(1).min(s.len());
    if count.is_some() && n == s.len() {
        // All of it: the members in the set's order, and the key goes (Redis' SPOP case 1,
        // propagated as a DEL).
        let reply = members_reply(s);
        ctx.db().remove(&key);
        ctx.db().touch(&key);
        ctx.changed(n as u64);
        ctx.propagate(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(SET, "spop", &key);
        ctx.notify(GENERIC, "del", &key);
        return Ok(reply);
    }
    let mut popped: Vec<Key> = Vec::with_capacity(n);
    for _ in 0..n {
        let i = rand::random_range(0..s.len());
        if let Some(m) = s.remove_index(i) {
            popped.push(m);
        }
    }
    if popped.is_empty() {
        return Ok(if count.is_some() {
            Reply::Set(vec![])
        } else {
            Reply::Nil
        });
    }
    ctx.took_from(SET, "spop", &key);
    ctx.db().touch(&key);
    ctx.changed(popped.len() as u64);
    // The choice was random: propagate exactly which members went.
    let mut cmd = vec![Bytes::from_static(b"SREM"), key.clone()];
    cmd.extend(popped.iter().map(|m| Bytes::copy_from_slice(m)));
    ctx.propagate(cmd);
    Ok(match count {
        None => Reply::bulk(&popped[0]),
        Some(_) => Reply::Set(popped.iter().map(|m| Reply::bulk(m)).collect()),
    })
}

fn srandmember(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let (count, _) = rand_args(args, None)?;
    let s = ctx.get_set(&key)?;
    let Some(count) = count else {
        return Ok(match s {
            Some(s) if !s.is_empty() => s
                .get_index(rand::random_range(0..s.len()))
                .map_or(Reply::Nil, |m| Reply::bulk(&m)),
            _ => Reply::Nil,
        });
    };
    let Some(s) = s else {
        return Ok(Reply::Array(vec![]));
    };
    Ok(Reply::Array(
        random_indices(s.len(), count)
            .into_iter()
            .filter_map(|i| s.get_index(i))
            .map(|m| Reply::bulk(&m))
            .collect(),
    ))
}

fn smove(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    let m = args.bytes()?;
    if ctx.get_set(&src)?.is_none() {
        return Ok(Reply::Int(0));
    }
    ctx.get_set(&dst)?;
    let Some(s) = ctx.get_set(&src)? else {
        return Ok(Reply::Int(0));
    };
    // Onto itself: nothing moves (and nothing is propagated), as in Redis.
    if src == dst {
        return Ok(Reply::Int(s.contains(&m) as i64));
    }
    if !s.remove(&m) {
        return Ok(Reply::Int(0));
    }
    ctx.took_from(SET, "srem", &src);
    let max = ctx.store.thresholds.set_max();
    let added = ctx.set_or_new(&dst)?.insert(&m, max);
    if added {
        ctx.notify(SET, "sadd", &dst);
    }
    ctx.db().touch(&src);
    // The destination is modified (for WATCH) only if the member is new to it, as in Redis.
    if added {
        ctx.db().touch(&dst);
    }
    ctx.changed(1 + added as u64);
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Computes an operation over the sets at `keys` (missing keys are empty sets). The result is
/// built as Redis builds it, an intset while it can be, so it answers in the same order.
fn compute(ctx: &mut Ctx, keys: &[Bytes], op: SetOp) -> Result<Set, CmdError> {
    let mut sets: Vec<Option<Set>> = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(ctx.get_set(k)?.map(|s| s.clone()));
    }
    let max = ctx.store.thresholds.set_max();
    let mut out = Set::default();
    match op {
        SetOp::Union => {
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    out.insert(&m, max);
                }
            }
        }
        SetOp::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Ok(out);
            };
            // A key repeating the first makes the difference empty.
            if keys[1..].iter().any(|k| *k == keys[0]) {
                return Ok(out);
            }
            // Redis' choice of algorithm, which decides the result's encoding: filtering the
            // first set, or copying it whole (maybe past the intset limit) and removing the
            // others' members.
            let others = sets[1..].iter().flatten();
            let one = first.len() * (1 + others.clone().count()) / 2;
            let two = first.len() + others.clone().map(|s| s.len()).sum::<usize>();
            if one <= two {
                for m in first.iter() {
                    if !others.clone().any(|s| s.contains(&m)) {
                        out.insert(&m, max);
                    }
                }
            } else {
                for m in first.iter() {
                    out.insert(&m, max);
                }
                for s in others {
                    for m in s.iter() {
                        out.remove(&m);
                    }
                }
            }
        }
        SetOp::Inter => {
            if sets.iter().any(|s| s.is_none()) {
                return Ok(out);
            }
            let all: Vec<&Set> = sets.iter().flatten().collect();
            let Some(smallest) = all.iter().min_by_key(|s| s.len()) else {
                return Ok(out);
            };
            for m in smallest.iter() {
                if all.iter().all(|s| s.contains(&m)) {
                    out.insert(&m, max);
                }
            }
        }
    }
    Ok(out)
}

fn op_reply(ctx: &mut Ctx, args: &mut Args, op: SetOp) -> Result<Reply, CmdError> {
    let keys = args.rest();
    Ok(members_reply(&compute(ctx, &keys, op)?))
}

fn op_store(ctx: &mut Ctx, args: &mut Args, op: SetOp) -> Result<Reply, CmdError> {
    let dst = args.bytes()?;
    let keys = args.rest();
    let result = compute(ctx, &keys, op)?;
    let n = result.len();
    if n > 0 {
        // Replaced in place, as Redis' setKey: not a new key if it existed, and used.
        ctx.exists_write(&dst);
        ctx.db().set(&dst, Value::Set(result), false);
        let event = match op {
            SetOp::Inter => "sinterstore",
            SetOp::Union => "sunionstore",
            SetOp::Diff => "sdiffstore",
        };
        ctx.notify(SET, event, &dst);
    } else if ctx.delete(&dst) {
        ctx.notify(GENERIC, "del", &dst);
    }
    ctx.db().touch(&dst);
    ctx.changed(1);
    Ok(Reply::Int(n as i64))
}

fn sintercard(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let n = args
        .i64()
        .map_err(|_| CmdError::msg("ERR numkeys should be greater than 0"))?;
    if n <= 0 {
        return Err(CmdError::msg("ERR numkeys should be greater than 0"));
    }
    if (n as usize) > args.remaining() {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let keys: Vec<Bytes> = (0..n).filter_map(|_| args.next()).collect();
    let mut limit = 0usize;
    if args.eat("limit") {
        // LIMIT without its value is a syntax error, as any unknown trailing word.
        if args.is_empty() {
            return Err(CmdError::Syntax);
        }
        // Redis words a non-integer limit as a negative one.
        let l = args
            .i64()
            .map_err(|_| CmdError::msg("ERR LIMIT can't be negative"))?;
        if l < 0 {
            return Err(CmdError::msg("ERR LIMIT can't be negative"));
        }
        limit = l as usize;
    }
    args.finish()?;
    let card = compute(ctx, &keys, SetOp::Inter)?.len();
    Ok(Reply::Int(
        if limit > 0 { card.min(limit) } else { card } as i64
    ))
}

fn sscan(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if let Some(c) = args.peek() {
        scan_cursor(c)?;
    }
    let Some(s) = ctx.get_set(&key)? else {
        return Ok(scan_reply(0, vec![]));
    };
    let o = ScanOpts::parse(args, false)?;
    // An intset is answered whole, ascending, as Redis answers one.
    if s.is_intset() {
        let items = s
            .iter()
            .filter(|m| o.matches(m))
            .map(|m| Reply::bulk(&m))
            .collect();
        return Ok(scan_reply(0, items));
    }
    let (next, range) = scan_indices(s.len(), o.cursor, o.count);
    let items = range
        .rev()
        .filter_map(|i| s.get_index(i))
        .filter(|m| o.matches(m))
        .map(|m| Reply::bulk(&m))
        .collect();
    Ok(scan_reply(next, items))
}
