//! List commands; the blocking ones (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH) are in
//! `blocking.rs` and share the moves and pops defined here.

use bytes::Bytes;
use vigil_resp::args::parse_float;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::notify::{GENERIC, LIST};
use crate::db::{Key, boxed};
use crate::node::{Handler, row};

/// The list family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "lpush",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "list",
            "Prepends elements to a list.",
            Data(|c, a| push(c, a, true, false))
        ),
        row!(
            "rpush",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "list",
            "Appends elements to a list.",
            Data(|c, a| push(c, a, false, false))
        ),
        row!(
            "lpushx",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "list",
            "Prepends elements to an existing list.",
            Data(|c, a| push(c, a, true, true))
        ),
        row!(
            "rpushx",
            -3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "list",
            "Appends elements to an existing list.",
            Data(|c, a| push(c, a, false, true))
        ),
        row!(
            "lpop",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "list",
            "Removes and returns the first elements of a list.",
            Data(|c, a| pop_generic(c, a, true))
        ),
        row!(
            "rpop",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "list",
            "Removes and returns the last elements of a list.",
            Data(|c, a| pop_generic(c, a, false))
        ),
        row!(
            "llen",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "list",
            "Returns the length of a list.",
            Data(llen)
        ),
        row!(
            "lrange",
            4,
            [READONLY],
            1,
            1,
            1,
            "list",
            "Returns a range of elements.",
            Data(lrange)
        ),
        row!(
            "lindex",
            3,
            [READONLY],
            1,
            1,
            1,
            "list",
            "Returns an element by index.",
            Data(lindex)
        ),
        row!(
            "lset",
            4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "list",
            "Sets an element by index.",
            Data(lset)
        ),
        row!(
            "lrem",
            4,
            [WRITE],
            1,
            1,
            1,
            "list",
            "Removes elements equal to a value.",
            Data(lrem)
        ),
        row!(
            "ltrim",
            4,
            [WRITE],
            1,
            1,
            1,
            "list",
            "Trims a list to a range.",
            Data(ltrim)
        ),
        row!(
            "linsert",
            5,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "list",
            "Inserts an element before or after another.",
            Data(linsert)
        ),
        row!(
            "lpos",
            -3,
            [READONLY],
            1,
            1,
            1,
            "list",
            "Returns the index of matching elements.",
            Data(lpos)
        ),
        row!(
            "lmove",
            5,
            [WRITE, DENYOOM],
            1,
            2,
            1,
            "list",
            "Moves an element from one list to another.",
            Data(lmove)
        ),
        row!(
            "rpoplpush",
            3,
            [WRITE, DENYOOM],
            1,
            2,
            1,
            "list",
            "Moves the last element of a list to the head of another.",
            Data(rpoplpush)
        ),
    ]
}

fn push(
    ctx: &mut Ctx,
    args: &mut Args,
    left: bool,
    only_existing: bool,
) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if only_existing && ctx.get_list(&key)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let items = args.rest();
    let list = ctx.list_or_new(&key)?;
    for v in &items {
        if left {
            list.push_front(boxed(v));
        } else {
            list.push_back(boxed(v));
        }
    }
    let len = list.len();
    ctx.db().touch(&key);
    ctx.changed(items.len() as u64);
    ctx.notify(LIST, push_event(left), &key);
    Ok(Reply::Int(len as i64))
}

/// The event of a push at one end.
pub(crate) fn push_event(left: bool) -> &'static str {
    if left { "lpush" } else { "rpush" }
}

/// The event of a pop at one end.
pub(crate) fn pop_event(left: bool) -> &'static str {
    if left { "lpop" } else { "rpop" }
}

/// Pops up to `n` elements from one end, as replies (LPOP/RPOP with a count, LMPOP).
pub(crate) fn pop_n(list: &mut crate::db::List, left: bool, n: usize) -> Vec<Reply> {
    let n = n.min(list.len());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = if left {
            list.pop_front()
        } else {
            list.pop_back()
        };
        out.extend(v.map(|v| Reply::bulk(&v)));
    }
    out
}

fn pop_generic(ctx: &mut Ctx, args: &mut Args, left: bool) -> Result<Reply, CmdError> {
    if args.remaining() > 2 {
        // LPOP key count extra: Redis answers with the arity error, not a syntax error.
        return Err(CmdError::Arity(if left { "lpop" } else { "rpop" }.into()));
    }
    let key = args.bytes()?;
    let count = crate::ctx::pop_count(args)?;
    args.finish()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    let take = count.unwrap_or(1).min(list.len());
    let mut out = pop_n(list, left, take);
    if take > 0 {
        ctx.took_from(LIST, pop_event(left), &key);
        ctx.db().touch(&key);
        ctx.changed(take as u64);
    }
    Ok(match count {
        Some(_) => Reply::Array(out),
        None => out.pop().unwrap_or(Reply::Nil),
    })
}

fn llen(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_list(&key)?.map_or(0, |l| l.len() as i64),
    ))
}

/// Normalises a Redis `start stop` pair over `len` elements; `None` if the range is empty.
pub(crate) fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

fn lrange(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let start = args.i64()?;
    let stop = args.i64()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(Reply::Array(vec![]));
    };
    let Some((s, e)) = clamp_range(start, stop, list.len()) else {
        return Ok(Reply::Array(vec![]));
    };
    Ok(Reply::Array(
        list.range(s..=e).map(|v| Reply::bulk(v)).collect(),
    ))
}

fn index_of(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { len as i64 + idx } else { idx };
    (i >= 0 && i < len as i64).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let idx = args.i64()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(Reply::Nil);
    };
    Ok(index_of(idx, list.len())
        .and_then(|i| list.get(i))
        .map_or(Reply::Nil, |v| Reply::bulk(v)))
}

fn lset(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let idx = args.i64()?;
    let value = args.bytes()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Err(CmdError::NoSuchKey);
    };
    let i = index_of(idx, list.len()).ok_or(CmdError::IndexOutOfRange)?;
    list[i] = boxed(&value);
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(LIST, "lset", &key);
    Ok(Reply::ok())
}

fn lrem(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let count = args.i64()?;
    let value = args.bytes()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(Reply::Int(0));
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut removed = 0;
    if count >= 0 {
        let mut i = 0;
        while i < list.len() && removed < limit {
            if list[i][..] == value[..] {
                list.remove(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
    } else {
        let mut i = list.len();
        while i > 0 && removed < limit {
            i -= 1;
            if list[i][..] == value[..] {
                list.remove(i);
                removed += 1;
            }
        }
    }
    if removed > 0 {
        ctx.took_from(LIST, "lrem", &key);
        ctx.db().touch(&key);
        ctx.changed(removed as u64);
    }
    Ok(Reply::Int(removed as i64))
}

fn ltrim(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let start = args.i64()?;
    let stop = args.i64()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(Reply::ok());
    };
    match clamp_range(start, stop, list.len()) {
        None => list.clear(),
        Some((s, e)) => {
            list.truncate(e + 1);
            list.drain(..s);
        }
    }
    ctx.took_from(LIST, "ltrim", &key);
    ctx.db().touch(&key);
    ctx.changed(1);
    Ok(Reply::ok())
}

fn linsert(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let before = if args.eat("before") {
        true
    } else if args.eat("after") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let pivot = args.bytes()?;
    let value = args.bytes()?;
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(Reply::Int(0));
    };
    let Some(pos) = list.iter().position(|v| v[..] == pivot[..]) else {
        return Ok(Reply::Int(-1));
    };
    list.insert(if before { pos } else { pos + 1 }, boxed(&value));
    let len = list.len();
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(LIST, "linsert", &key);
    Ok(Reply::Int(len as i64))
}

fn lpos(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let value = args.bytes()?;
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    while let Some(opt) = args.next() {
        if opt.eq_ignore_ascii_case(b"rank") {
            rank = args.i64()?;
            if rank == 0 || rank == i64::MIN {
                return Err(CmdError::msg(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if opt.eq_ignore_ascii_case(b"count") {
            let c = args.i64()?;
            if c < 0 {
                return Err(CmdError::msg("ERR COUNT can't be negative"));
            }
            count = Some(c as usize);
        } else if opt.eq_ignore_ascii_case(b"maxlen") {
            let m = args.i64()?;
            if m < 0 {
                return Err(CmdError::msg("ERR MAXLEN can't be negative"));
            }
            maxlen = m as usize;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(list) = ctx.get_list(&key)? else {
        return Ok(if count.is_some() {
            Reply::Array(vec![])
        } else {
            Reply::Nil
        });
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() as usize - 1;
    let mut found = Vec::new();
    let len = list.len();
    let scan = if maxlen == 0 { len } else { maxlen.min(len) };
    for step in 0..scan {
        let i = if rank > 0 { step } else { len - 1 - step };
        if list[i][..] == value[..] {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(i as i64);
                if found.len() >= want {
                    break;
                }
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()),
        None => found.first().map_or(Reply::Nil, |&i| Reply::Int(i)),
    })
}

pub(crate) fn side(args: &mut Args) -> Result<bool, CmdError> {
    if args.eat("left") {
        Ok(true)
    } else if args.eat("right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Moves one element; `None` if the source is empty.
/// Moves one element; `None` if the source is empty. `skip` leaves that many elements at the
/// source end for blocked clients ahead in line.
pub(crate) fn move_one(
    ctx: &mut Ctx,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
    skip: usize,
) -> Result<Option<Key>, CmdError> {
    if ctx.get_list(src)?.is_none() {
        return Ok(None);
    }
    // Check the destination type before taking anything from the source.
    ctx.get_list(dst)?;
    let Some(list) = ctx.get_list(src)? else {
        return Ok(None);
    };
    let Some(v) = take_at(list, from_left, skip) else {
        return Ok(None);
    };
    let emptied = ctx.remove_if_empty(src);
    let d = ctx.list_or_new(dst)?;
    if to_left {
        d.push_front(v.clone());
    } else {
        d.push_back(v.clone());
    }
    ctx.db().touch(src);
    ctx.db().touch(dst);
    ctx.changed(1);
    // Redis announces the push before the pop.
    ctx.notify(LIST, push_event(to_left), dst);
    ctx.notify(LIST, pop_event(from_left), src);
    if emptied && src != dst {
        ctx.notify(GENERIC, "del", src);
    }
    Ok(Some(v))
}

fn lmove(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    let from = side(args)?;
    let to = side(args)?;
    Ok(move_one(ctx, &src, &dst, from, to, 0)?.map_or(Reply::Nil, |v| Reply::bulk(&v)))
}

fn rpoplpush(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    Ok(move_one(ctx, &src, &dst, false, true, 0)?.map_or(Reply::Nil, |v| Reply::bulk(&v)))
}

/// Removes the element `skip` places from the front (or back); `None` if there are not enough.
pub(crate) fn take_at(list: &mut crate::db::List, from_left: bool, skip: usize) -> Option<Key> {
    if list.len() <= skip {
        return None;
    }
    let i = if from_left {
        skip
    } else {
        list.len() - 1 - skip
    };
    list.remove(i)
}

/// Parses a blocking timeout in seconds, as Redis words its errors.
pub(crate) fn parse_timeout(b: &[u8]) -> Result<f64, CmdError> {
    let t = parse_float(b)
        .filter(|t| t.is_finite())
        .ok_or_else(|| CmdError::msg("ERR timeout is not a float or out of range"))?;
    if t < 0.0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    Ok(t)
}
