//! Generic key commands: deletion, existence, type, iteration, renaming, expiry.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::strings::expire_error;
use crate::ctx::{Ctx, ScanOpts, scan_reply};
use crate::db::notify::GENERIC;
use crate::db::scan_indices;
use crate::node::{Handler, row};

/// The generic family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "del",
            -2,
            [WRITE],
            1,
            -1,
            1,
            "generic",
            "Deletes keys.",
            Data(del)
        ),
        row!(
            "unlink",
            -2,
            [WRITE, FAST],
            1,
            -1,
            1,
            "generic",
            "Deletes keys.",
            Data(del)
        ),
        row!(
            "exists",
            -2,
            [READONLY, FAST],
            1,
            -1,
            1,
            "generic",
            "Counts existing keys.",
            Data(exists)
        ),
        row!(
            "touch",
            -2,
            [READONLY, FAST],
            1,
            -1,
            1,
            "generic",
            "Counts existing keys (and marks them accessed).",
            Data(touch)
        ),
        row!(
            "type",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "generic",
            "Returns the type of a key's value.",
            Data(type_cmd)
        ),
        row!(
            "keys",
            2,
            [READONLY],
            0,
            0,
            0,
            "generic",
            "Returns all keys matching a pattern.",
            Data(keys)
        ),
        row!(
            "scan",
            -2,
            [READONLY],
            0,
            0,
            0,
            "generic",
            "Iterates over the keys.",
            Data(scan)
        ),
        row!(
            "randomkey",
            1,
            [READONLY],
            0,
            0,
            0,
            "generic",
            "Returns a random key.",
            Data(randomkey)
        ),
        row!(
            "rename",
            3,
            [WRITE],
            1,
            2,
            1,
            "generic",
            "Renames a key, overwriting the destination.",
            Data(|c, a| rename_generic(c, a, false))
        ),
        row!(
            "renamenx",
            3,
            [WRITE, FAST],
            1,
            2,
            1,
            "generic",
            "Renames a key if the destination does not exist.",
            Data(|c, a| rename_generic(c, a, true))
        ),
        row!(
            "expire",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Sets a key's expiry in seconds.",
            Data(|c, a| expire_generic(c, a, 1000, false, "expire"))
        ),
        row!(
            "pexpire",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Sets a key's expiry in milliseconds.",
            Data(|c, a| expire_generic(c, a, 1, false, "pexpire"))
        ),
        row!(
            "expireat",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Sets a key's expiry as a unix time in seconds.",
            Data(|c, a| expire_generic(c, a, 1000, true, "expireat"))
        ),
        row!(
            "pexpireat",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Sets a key's expiry as a unix time in milliseconds.",
            Data(|c, a| expire_generic(c, a, 1, true, "pexpireat"))
        ),
        row!(
            "ttl",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "generic",
            "Returns a key's time to live in seconds.",
            Data(|c, a| ttl_generic(c, a, false))
        ),
        row!(
            "pttl",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "generic",
            "Returns a key's time to live in milliseconds.",
            Data(|c, a| ttl_generic(c, a, true))
        ),
        row!(
            "expiretime",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "generic",
            "Returns a key's expiry as a unix time in seconds.",
            Data(|c, a| expiretime_generic(c, a, false))
        ),
        row!(
            "pexpiretime",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "generic",
            "Returns a key's expiry as a unix time in milliseconds.",
            Data(|c, a| expiretime_generic(c, a, true))
        ),
        row!(
            "persist",
            2,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Removes a key's expiry.",
            Data(persist)
        ),
        row!(
            "dbsize",
            1,
            [READONLY, FAST],
            0,
            0,
            0,
            "server",
            "Returns the number of keys in the database.",
            Data(dbsize)
        ),
        row!(
            "flushdb",
            -1,
            [WRITE],
            0,
            0,
            0,
            "server",
            "Removes all keys of the selected database.",
            Data(flushdb)
        ),
        row!(
            "flushall",
            -1,
            [WRITE],
            0,
            0,
            0,
            "server",
            "Removes all keys of all databases.",
            Data(flushall)
        ),
    ]
}

fn del(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut n = 0;
    while let Some(k) = args.next() {
        if ctx.delete(&k) {
            ctx.notify(GENERIC, "del", &k);
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn exists(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut n = 0;
    while let Some(k) = args.next() {
        if ctx.exists_read(&k) {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// `TOUCH`: uses keys, even for a client in `CLIENT NO-TOUCH` mode.
fn touch(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let no_touch = std::mem::replace(&mut ctx.no_touch, false);
    let mut n = 0;
    while let Some(k) = args.next() {
        if ctx.lookup(&k).is_some() {
            n += 1;
        }
    }
    ctx.no_touch = no_touch;
    Ok(Reply::Int(n))
}

fn type_cmd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::simple(
        ctx.peek(&key).map_or("none", |v| v.type_name()),
    ))
}

fn keys(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let pattern = args.bytes()?;
    let now = ctx.now;
    let all = &pattern[..] == b"*";
    let db = ctx.db();
    let out = db
        .keys
        .keys()
        .filter(|k| all || vigil_resp::glob::matches(&pattern, k))
        .filter(|k| !db.is_expired(k, now))
        .map(|k| Reply::bulk(k))
        .collect();
    Ok(Reply::Array(out))
}

fn scan(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let o = ScanOpts::parse(args, true)?;
    let db = ctx.db();
    let (next, range) = scan_indices(db.keys.len(), o.cursor, o.count);
    let mut seen = Vec::new();
    for i in range.rev() {
        let Some((k, v)) = db.keys.get_index(i) else {
            continue;
        };
        if !o.matches(k) || o.kind.as_deref().is_some_and(|t| t != v.type_name()) {
            continue;
        }
        seen.push(Bytes::copy_from_slice(k));
    }
    // Expired keys met on the way are deleted (and the DEL propagated), as Redis' SCAN does;
    // the cursor is unaffected: a deletion only moves an already visited key.
    let mut items = Vec::new();
    for k in seen {
        if !ctx.expire_if_needed(&k) {
            items.push(Reply::Bulk(k));
        }
    }
    Ok(scan_reply(next, items))
}

fn randomkey(ctx: &mut Ctx, _args: &mut Args) -> Result<Reply, CmdError> {
    // An expired key drawn is deleted (lazy expiry, as Redis) and another drawn, with a bound
    // so a database of expired keys cannot spin.
    for _ in 0..100 {
        let db = ctx.db();
        if db.keys.is_empty() {
            return Ok(Reply::Nil);
        }
        let i = rand::random_range(0..db.keys.len());
        let Some((k, _)) = db.keys.get_index(i) else {
            break;
        };
        let k = Bytes::copy_from_slice(k);
        if !ctx.expire_if_needed(&k) {
            return Ok(Reply::Bulk(k));
        }
    }
    Ok(Reply::Nil)
}

fn rename_generic(ctx: &mut Ctx, args: &mut Args, nx: bool) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    // Both looked up for the write, as Redis does: each counts as used.
    if !ctx.exists_write(&src) {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::ok() });
    }
    if ctx.exists_write(&dst) && nx {
        return Ok(Reply::Int(0));
    }
    let db = ctx.db();
    let ttl = db.expire_of(&src);
    let stamp = db.keys.stamp(&src);
    let Some(v) = db.remove(&src) else {
        return Err(CmdError::NoSuchKey);
    };
    // Replaced as Redis does: the old value goes, and the moved one keeps its access data.
    db.remove(&dst);
    db.set(&dst, v, false);
    if let Some(s) = stamp {
        db.keys.set_stamp(&dst, s);
    }
    if let Some(t) = ttl {
        db.set_expire(&dst, t);
    }
    db.touch(&src);
    db.touch(&dst);
    ctx.changed(1);
    ctx.notify(GENERIC, "rename_from", &src);
    ctx.notify(GENERIC, "rename_to", &dst);
    Ok(if nx { Reply::Int(1) } else { Reply::ok() })
}

/// EXPIRE and friends: `unit_ms` is 1000 for seconds; `absolute` for the *AT forms.
fn expire_generic(
    ctx: &mut Ctx,
    args: &mut Args,
    unit_ms: i64,
    absolute: bool,
    name: &str,
) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let t = args.i64()?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    while let Some(opt) = args.next() {
        match &opt.to_ascii_uppercase()[..] {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(CmdError::msg(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&opt)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let mut at = t.checked_mul(unit_ms).ok_or_else(|| expire_error(name))?;
    if !absolute {
        at = at.checked_add(ctx.now).ok_or_else(|| expire_error(name))?;
    }
    // A write lookup, as Redis' EXPIRE family does: the key counts as used.
    if !ctx.exists_write(&key) {
        return Ok(Reply::Int(0));
    }
    let cur = ctx.db().expire_of(&key);
    let ok = match cur {
        Some(c) => !nx && (!gt || at > c) && (!lt || at < c),
        None => !xx && !gt,
    };
    if !ok {
        return Ok(Reply::Int(0));
    }
    ctx.expire_at(&key, at);
    Ok(Reply::Int(1))
}

fn ttl_generic(ctx: &mut Ctx, args: &mut Args, ms: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if !ctx.exists_read(&key) {
        return Ok(Reply::Int(-2));
    }
    let now = ctx.now;
    Ok(Reply::Int(match ctx.db().expire_of(&key) {
        None => -1,
        Some(at) => {
            let left = (at - now).max(0);
            if ms { left } else { (left + 500) / 1000 }
        }
    }))
}

fn expiretime_generic(ctx: &mut Ctx, args: &mut Args, ms: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if !ctx.exists_read(&key) {
        return Ok(Reply::Int(-2));
    }
    Ok(Reply::Int(match ctx.db().expire_of(&key) {
        None => -1,
        Some(at) => {
            if ms {
                at
            } else {
                at / 1000
            }
        }
    }))
}

fn persist(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if !ctx.exists_write(&key) {
        return Ok(Reply::Int(0));
    }
    if ctx.db().persist(&key) {
        ctx.db().touch(&key);
        ctx.changed(1);
        ctx.notify(GENERIC, "persist", &key);
        Ok(Reply::Int(1))
    } else {
        Ok(Reply::Int(0))
    }
}

fn dbsize(ctx: &mut Ctx, _args: &mut Args) -> Result<Reply, CmdError> {
    Ok(Reply::Int(ctx.db().len() as i64))
}

fn flush_mode(args: &mut Args) -> Result<(), CmdError> {
    if let Some(m) = args.next()
        && !(m.eq_ignore_ascii_case(b"async") || m.eq_ignore_ascii_case(b"sync"))
    {
        return Err(CmdError::Syntax);
    }
    args.finish()
}

fn flushdb(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    flush_mode(args)?;
    let n = ctx.db().len() as u64;
    ctx.db().clear();
    ctx.changed(n.max(1));
    Ok(Reply::ok())
}

fn flushall(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    flush_mode(args)?;
    let n = ctx.store.total_keys() as u64;
    for db in &mut ctx.store.dbs {
        db.clear();
    }
    ctx.changed(n.max(1));
    Ok(Reply::ok())
}
