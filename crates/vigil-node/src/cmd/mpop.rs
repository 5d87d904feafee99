//! Pops from the first non-empty of several keys: `LMPOP`, `BLMPOP`, `ZMPOP`, `BZMPOP`.
//!
//! The reply names the key and lists what was popped; the pop is propagated as `LPOP`/`RPOP`/
//! `ZPOPMIN`/`ZPOPMAX key count`, as Redis does, so the stream never blocks. The blocking forms
//! wait through [`crate::ctx::Ctx::block`] like BLPOP, taking their turn in each key's line.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::blocking::wait_for;
use super::lists::parse_timeout;
use crate::ctx::{Ctx, argv, int_arg};
use crate::db::Key;
use crate::node::{Handler, row};

/// The family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "lmpop",
            -4,
            [WRITE, MOVABLEKEYS],
            0,
            0,
            0,
            "list",
            "Pops elements from the first non-empty list.",
            Data(|c, a| mpop(c, a, Kind::List, false)),
            keys = vigil_resp::keys::numkeys_pop
        ),
        row!(
            "blmpop",
            -5,
            [WRITE, NOSCRIPT, BLOCKING, MOVABLEKEYS],
            0,
            0,
            0,
            "list",
            "Pops elements from the first non-empty list, blocking.",
            Data(|c, a| mpop(c, a, Kind::List, true)),
            keys = vigil_resp::keys::numkeys_pop_blocking
        ),
        row!(
            "zmpop",
            -4,
            [WRITE, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Pops the lowest- or highest-scored members from the first non-empty sorted set.",
            Data(|c, a| mpop(c, a, Kind::ZSet, false)),
            keys = vigil_resp::keys::numkeys_pop
        ),
        row!(
            "bzmpop",
            -5,
            [WRITE, NOSCRIPT, BLOCKING, MOVABLEKEYS],
            0,
            0,
            0,
            "sorted-set",
            "Pops the lowest- or highest-scored members from the first non-empty sorted set, blocking.",
            Data(|c, a| mpop(c, a, Kind::ZSet, true)),
            keys = vigil_resp::keys::numkeys_pop_blocking
        ),
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    List,
    ZSet,
}

/// `[B]LMPOP [timeout] numkeys key … LEFT|RIGHT [COUNT n]` and the ZMPOP forms (`MIN|MAX`).
fn mpop(ctx: &mut Ctx, args: &mut Args, kind: Kind, blocking: bool) -> Result<Reply, CmdError> {
    let timeout = if blocking {
        Some(parse_timeout(&args.bytes()?)?)
    } else {
        None
    };
    let n = args
        .i64()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| CmdError::msg("ERR numkeys should be greater than 0"))?;
    if n as usize + 1 > args.remaining() {
        return Err(CmdError::Syntax);
    }
    let keys: Vec<Bytes> = (0..n).filter_map(|_| args.next()).collect();
    let first = match (kind, &args.bytes()?.to_ascii_lowercase()[..]) {
        (Kind::List, b"left") | (Kind::ZSet, b"min") => true,
        (Kind::List, b"right") | (Kind::ZSet, b"max") => false,
        _ => return Err(CmdError::Syntax),
    };
    let mut count = None;
    while let Some(opt) = args.next() {
        if count.is_none() && opt.eq_ignore_ascii_case(b"count") && args.remaining() > 0 {
            count = Some(
                args.i64()
                    .ok()
                    .filter(|c| *c >= 1)
                    .ok_or_else(|| CmdError::msg("ERR count should be greater than 0"))?
                    as usize,
            );
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let count = count.unwrap_or(1);
    for key in &keys {
        // A blocked client in line waits its turn (the one ahead wakes it on leaving).
        if blocking && ctx.waiters_ahead(key) > 0 && ctx.is_queued_on(key) {
            continue;
        }
        let popped = match kind {
            Kind::List => pop_list(ctx, key, first, count)?,
            Kind::ZSet => pop_zset(ctx, key, first, count)?,
        };
        if let Some(items) = popped {
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(items),
            ]));
        }
    }
    match timeout {
        Some(t) => Ok(wait_for(ctx, keys, t)),
        None => Ok(Reply::NilArray),
    }
}

fn pop_list(
    ctx: &mut Ctx,
    key: &Bytes,
    left: bool,
    count: usize,
) -> Result<Option<Vec<Reply>>, CmdError> {
    let Some(list) = ctx.get_list(key)? else {
        return Ok(None);
    };
    let take = count.min(list.len());
    if take == 0 {
        return Ok(None);
    }
    let out = super::lists::pop_n(list, left, take);
    ctx.took_from(crate::db::notify::LIST, super::lists::pop_event(left), key);
    ctx.db().touch(key);
    ctx.changed(take as u64);
    let cmd: &[u8] = if left { b"LPOP" } else { b"RPOP" };
    ctx.propagate(vec![
        Bytes::from_static(cmd),
        key.clone(),
        int_arg(take as i64),
    ]);
    Ok(Some(out))
}

fn pop_zset(
    ctx: &mut Ctx,
    key: &Bytes,
    min: bool,
    count: usize,
) -> Result<Option<Vec<Reply>>, CmdError> {
    let Some(z) = ctx.get_zset(key)? else {
        return Ok(None);
    };
    let picked: Vec<_> = if min {
        z.iter()
            .take(count)
            .map(|(s, m)| (s, Key::from(m)))
            .collect()
    } else {
        z.iter()
            .rev()
            .take(count)
            .map(|(s, m)| (s, Key::from(m)))
            .collect()
    };
    if picked.is_empty() {
        return Ok(None);
    }
    for (_, m) in &picked {
        z.remove(m);
    }
    let event = if min { "zpopmin" } else { "zpopmax" };
    ctx.took_from(crate::db::notify::ZSET, event, key);
    ctx.db().touch(key);
    ctx.changed(picked.len() as u64);
    let cmd: &[u8] = if min { b"ZPOPMIN" } else { b"ZPOPMAX" };
    ctx.propagate(argv([cmd, key, &int_arg(picked.len() as i64)]));
    Ok(Some(
        picked
            .into_iter()
            .map(|(s, m)| Reply::Array(vec![Reply::bulk(&m), Reply::Double(s.0)]))
            .collect(),
    ))
}
