//! The blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH on lists, BZPOPMIN and BZPOPMAX on
//! sorted sets.
//!
//! A blocking command that finds nothing sets [`crate::ctx::Ctx::block`]; the dispatcher then
//! waits for a write to one of the keys (or the timeout) and runs the command again, keeping
//! the client's place in the key's queue. Inside MULTI it never blocks. Pops by blocking
//! commands are propagated as their non-blocking forms, so the stream never blocks.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::lists::{move_one, parse_timeout, side, take_at};
use crate::ctx::{Block, Ctx, argv};
use crate::db::Key;
use crate::node::{Handler, row};

/// The blocking commands' rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "blpop",
            -3,
            [WRITE, NOSCRIPT, BLOCKING],
            1,
            -2,
            1,
            "list",
            "Pops the first element of the first non-empty list, blocking.",
            Data(|c, a| bpop(c, a, true))
        ),
        row!(
            "brpop",
            -3,
            [WRITE, NOSCRIPT, BLOCKING],
            1,
            -2,
            1,
            "list",
            "Pops the last element of the first non-empty list, blocking.",
            Data(|c, a| bpop(c, a, false))
        ),
        row!(
            "blmove",
            6,
            [WRITE, DENYOOM, NOSCRIPT, BLOCKING],
            1,
            2,
            1,
            "list",
            "Moves an element between lists, blocking.",
            Data(blmove)
        ),
        row!(
            "brpoplpush",
            4,
            [WRITE, DENYOOM, NOSCRIPT, BLOCKING],
            1,
            2,
            1,
            "list",
            "Moves the last element to another list, blocking.",
            Data(brpoplpush)
        ),
        row!(
            "bzpopmin",
            -3,
            [WRITE, FAST, NOSCRIPT, BLOCKING],
            1,
            -2,
            1,
            "sorted-set",
            "Removes and returns the lowest-scored member of the first non-empty sorted set, blocking.",
            Data(|c, a| bzpop(c, a, false))
        ),
        row!(
            "bzpopmax",
            -3,
            [WRITE, FAST, NOSCRIPT, BLOCKING],
            1,
            -2,
            1,
            "sorted-set",
            "Removes and returns the highest-scored member of the first non-empty sorted set, blocking.",
            Data(|c, a| bzpop(c, a, true))
        ),
    ]
}

fn bzpop(ctx: &mut Ctx, args: &mut Args, max: bool) -> Result<Reply, CmdError> {
    let mut keys = args.rest();
    let timeout = parse_timeout(&keys.pop().unwrap_or_default())?;
    for key in &keys {
        // Waiters may pop from either end, so one in line waits its turn (the one ahead wakes
        // it on leaving); a client not in line leaves one member for each waiter.
        let ahead = ctx.waiters_ahead(key);
        if ahead > 0 && ctx.is_queued_on(key) {
            continue;
        }
        let Some(z) = ctx.get_zset(key)? else {
            continue;
        };
        let picked = if max {
            z.iter().nth_back(ahead)
        } else {
            z.iter().nth(ahead)
        }
        .map(|(s, m)| (s, Key::from(m)));
        let Some((score, member)) = picked else {
            continue;
        };
        z.remove(&member);
        let event = if max { "zpopmax" } else { "zpopmin" };
        ctx.took_from(crate::db::notify::ZSET, event, key);
        ctx.db().touch(key);
        ctx.changed(1);
        ctx.propagate(argv([b"ZREM", key, &member]));
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::bulk(&member),
            Reply::Double(score.0),
        ]));
    }
    Ok(wait_for(ctx, keys, timeout))
}

fn bpop(ctx: &mut Ctx, args: &mut Args, left: bool) -> Result<Reply, CmdError> {
    let mut keys = args.rest();
    let timeout = parse_timeout(&keys.pop().unwrap_or_default())?;
    for key in &keys {
        // Elements go to blocked clients in arrival order: leave enough for those ahead.
        let ahead = ctx.waiters_ahead(key);
        let Some(list) = ctx.get_list(key)? else {
            continue;
        };
        // The n-th client in line takes the n-th element from its end, so whichever order the
        // woken clients run in, each gets what Redis would have handed it.
        let Some(v) = take_at(list, left, ahead) else {
            continue;
        };
        ctx.took_from(crate::db::notify::LIST, super::lists::pop_event(left), key);
        ctx.db().touch(key);
        ctx.changed(1);
        ctx.propagate(argv([if left { b"LPOP" } else { b"RPOP" }, key]));
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::bulk(&v),
        ]));
    }
    Ok(wait_for(ctx, keys, timeout))
}

fn bmove(
    ctx: &mut Ctx,
    src: Bytes,
    dst: Bytes,
    from: bool,
    to: bool,
    timeout: f64,
) -> Result<Reply, CmdError> {
    let ahead = ctx.waiters_ahead(&src);
    let available = ctx.get_list(&src)?.map_or(0, |l| l.len());
    if available > ahead
        && let Some(v) = move_one(ctx, &src, &dst, from, to, ahead)?
    {
        let dir = |l: bool| if l { &b"LEFT"[..] } else { &b"RIGHT"[..] };
        ctx.propagate(argv([b"LMOVE", &src, &dst, dir(from), dir(to)]));
        return Ok(Reply::bulk(&v));
    }
    Ok(wait_for(ctx, vec![src], timeout))
}

fn blmove(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    let from = side(args)?;
    let to = side(args)?;
    let timeout = parse_timeout(&args.bytes()?)?;
    bmove(ctx, src, dst, from, to, timeout)
}

fn brpoplpush(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    let timeout = parse_timeout(&args.bytes()?)?;
    bmove(ctx, src, dst, false, true, timeout)
}

/// Nothing to pop: wait for a write to one of `keys` (if the command may block), answering a
/// null array now or at the timeout.
pub(crate) fn wait_for(ctx: &mut Ctx, keys: Vec<Bytes>, timeout: f64) -> Reply {
    if ctx.may_block {
        ctx.block = Some(Block {
            keys,
            timeout,
            on_timeout: Reply::NilArray,
            retry: None,
        });
    }
    Reply::NilArray
}
