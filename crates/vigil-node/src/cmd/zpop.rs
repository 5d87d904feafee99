//! Sorted-set commands that take members out or sample them: ZPOPMIN, ZPOPMAX, ZRANDMEMBER,
//! ZSCAN.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::hashes::{rand_args, random_indices};
use super::zsets::pairs_reply;
use crate::ctx::{Ctx, ScanOpts, scan_cursor, scan_reply};
use crate::db::scan_indices;
use crate::db::zset::Entry;
use crate::node::{Handler, row};

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "zpopmin",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Removes and returns the lowest-scored members.",
            Data(|c, a| pop_generic(c, a, false))
        ),
        row!(
            "zpopmax",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "sorted-set",
            "Removes and returns the highest-scored members.",
            Data(|c, a| pop_generic(c, a, true))
        ),
        row!(
            "zrandmember",
            -2,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Returns random members.",
            Data(zrandmember)
        ),
        row!(
            "zscan",
            -3,
            [READONLY],
            1,
            1,
            1,
            "sorted-set",
            "Iterates over members and scores.",
            Data(zscan)
        ),
    ]
}

fn pop_generic(ctx: &mut Ctx, args: &mut Args, max: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let count = crate::ctx::pop_count(args)?;
    args.finish()?;
    let resp3 = ctx.resp3;
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Array(vec![]));
    };
    let n = count.unwrap_or(1).min(z.len());
    let mut popped = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(first) = z.pop(max) else { break };
        popped.push(first);
    }
    if !popped.is_empty() {
        let event = if max { "zpopmax" } else { "zpopmin" };
        ctx.took_from(crate::db::notify::ZSET, event, &key);
        ctx.db().touch(&key);
        ctx.changed(popped.len() as u64);
    }
    let refs: Vec<Entry> = popped.iter().map(|(s, m)| (*s, &m[..])).collect();
    // RESP3 nests pairs only when a count was given; a single pop is a flat pair.
    Ok(pairs_reply(&refs, true, resp3 && count.is_some()))
}

fn zrandmember(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let (count, withscores) = rand_args(args, Some("withscores"))?;
    let resp3 = ctx.resp3;
    let z = ctx.get_zset(&key)?;
    let Some(count) = count else {
        return Ok(match z {
            Some(z) if !z.is_empty() => z
                .get_index(rand::random_range(0..z.len()))
                .map_or(Reply::Nil, |(_, m)| Reply::bulk(m)),
            _ => Reply::Nil,
        });
    };
    let Some(z) = z else {
        return Ok(Reply::Array(vec![]));
    };
    let picked: Vec<Entry> = random_indices(z.len(), count)
        .into_iter()
        .filter_map(|i| z.get_index(i))
        .collect();
    Ok(pairs_reply(&picked, withscores, resp3))
}

fn zscan(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    // Cursor, then key, then options, as Redis checks them.
    if let Some(c) = args.peek() {
        scan_cursor(c)?;
    }
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(scan_reply(0, vec![]));
    };
    let o = ScanOpts::parse(args, false)?;
    // A compact set answers whole, in rank order, with cursor 0, as Redis scans a listpack.
    let (next, entries): (u64, Vec<Entry>) = if z.is_packed() {
        (0, z.iter().collect())
    } else {
        let (next, range) = scan_indices(z.len(), o.cursor, o.count);
        (next, range.rev().filter_map(|i| z.get_index(i)).collect())
    };
    let mut items = Vec::new();
    for (s, m) in entries {
        if o.matches(m) {
            items.push(Reply::bulk(m));
            items.push(Reply::Bulk(Bytes::from(vigil_resp::reply::format_double(
                s.0,
            ))));
        }
    }
    Ok(scan_reply(next, items))
}
