//! String commands.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::{Ctx, argv, int_arg};
use crate::db::notify::{GENERIC, STRING};
use crate::db::{Value, boxed};
use crate::node::{Handler, row};

/// The string family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "get",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "string",
            "Returns the string value of a key.",
            Data(get)
        ),
        row!(
            "set",
            -3,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "string",
            "Sets the string value of a key, optionally with an expiry.",
            Data(set)
        ),
        row!(
            "setnx",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Sets a key only if it does not exist.",
            Data(setnx)
        ),
        row!(
            "setex",
            4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "string",
            "Sets a key with an expiry in seconds.",
            Data(|c, a| setex_generic(c, a, false, "setex"))
        ),
        row!(
            "psetex",
            4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "string",
            "Sets a key with an expiry in milliseconds.",
            Data(|c, a| setex_generic(c, a, true, "psetex"))
        ),
        row!(
            "getset",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Sets a key and returns its old value.",
            Data(getset)
        ),
        row!(
            "getdel",
            2,
            [WRITE, FAST],
            1,
            1,
            1,
            "string",
            "Returns a key's value and deletes it.",
            Data(getdel)
        ),
        row!(
            "getex",
            -2,
            [WRITE, FAST],
            1,
            1,
            1,
            "string",
            "Returns a key's value and changes its expiry.",
            Data(getex)
        ),
        row!(
            "mget",
            -2,
            [READONLY, FAST],
            1,
            -1,
            1,
            "string",
            "Returns the values of several keys.",
            Data(mget)
        ),
        row!(
            "mset",
            -3,
            [WRITE, DENYOOM],
            1,
            -1,
            2,
            "string",
            "Sets several keys.",
            Data(mset)
        ),
        row!(
            "msetnx",
            -3,
            [WRITE, DENYOOM],
            1,
            -1,
            2,
            "string",
            "Sets several keys only if none exists.",
            Data(msetnx)
        ),
        row!(
            "append",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Appends to a string.",
            Data(append)
        ),
        row!(
            "strlen",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "string",
            "Returns the length of a string.",
            Data(strlen)
        ),
        row!(
            "getrange",
            4,
            [READONLY],
            1,
            1,
            1,
            "string",
            "Returns a substring.",
            Data(getrange)
        ),
        row!(
            "substr",
            4,
            [READONLY],
            1,
            1,
            1,
            "string",
            "Returns a substring (deprecated alias).",
            Data(getrange)
        ),
        row!(
            "setrange",
            4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "string",
            "Overwrites part of a string.",
            Data(setrange)
        ),
    ]
}

/// Largest string SETRANGE/APPEND may build (Redis' default proto-max-bulk-len).
const MAX_STRING: usize = 512 * 1024 * 1024;

fn get(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.slice()?;
    Ok(ctx.get_str(key)?.map_or(Reply::Nil, Reply::bulk))
}

/// An expiry option as given: which unit, relative or absolute.
#[derive(Clone, Copy)]
pub(crate) enum Expiry {
    Ex(i64),
    Px(i64),
    ExAt(i64),
    PxAt(i64),
}

impl Expiry {
    /// The constructor for an `EX|PX|EXAT|PXAT` option word (upper-case), if it is one.
    pub(crate) fn option(word: &[u8]) -> Option<fn(i64) -> Expiry> {
        match word {
            b"EX" => Some(Expiry::Ex),
            b"PX" => Some(Expiry::Px),
            b"EXAT" => Some(Expiry::ExAt),
            b"PXAT" => Some(Expiry::PxAt),
            _ => None,
        }
    }

    /// The absolute unix time in ms, or `None` on overflow or a non-positive value.
    pub(crate) fn absolute(self, now: i64) -> Option<i64> {
        let (v, ms) = match self {
            Expiry::Ex(v) | Expiry::ExAt(v) => (v, v.checked_mul(1000)?),
            Expiry::Px(v) | Expiry::PxAt(v) => (v, v),
        };
        if v <= 0 {
            return None;
        }
        match self {
            Expiry::Ex(_) | Expiry::Px(_) => now.checked_add(ms),
            _ => Some(ms),
        }
    }
}

pub(crate) fn expire_error(cmd: &str) -> CmdError {
    CmdError::msg(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Stores a string, applying an absolute expiry (a past one deletes the key, like Redis).
fn store_string(ctx: &mut Ctx, key: &Bytes, value: &Bytes, expire: Option<i64>, keep_ttl: bool) {
    if let Some(at) = expire
        && at <= ctx.now
        && !ctx.loading
    {
        ctx.delete(key);
        ctx.changed(1);
        ctx.propagate(argv([b"DEL", key]));
        // Redis stores the key and lets it expire; announced as it would be at once.
        ctx.notify(STRING, "set", key);
        ctx.notify(GENERIC, "expire", key);
        return;
    }
    let db = ctx.db();
    db.set(key, Value::Str(boxed(value)), keep_ttl);
    if let Some(at) = expire {
        db.set_expire(key, at);
    }
    db.touch(key);
    ctx.changed(1);
    ctx.notify(STRING, "set", key);
    if expire.is_some() {
        ctx.notify(GENERIC, "expire", key);
    }
    // Without an expiry the command as received is deterministic; with one, relative times
    // become absolute so a replay later sets the same deadline.
    if let Some(at) = expire {
        ctx.propagate(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            value.clone(),
            Bytes::from_static(b"PXAT"),
            int_arg(at),
        ]);
    }
}

fn set(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let value = args.bytes()?;
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expiry: Option<Expiry> = None;
    while let Some(opt) = args.next() {
        let o = opt.to_ascii_uppercase();
        match &o[..] {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"KEEPTTL" if expiry.is_none() => keep_ttl = true,
            w if expiry.is_none() && !keep_ttl && Expiry::option(w).is_some() => {
                expiry = Expiry::option(w)
                    .map(|make| args.i64().map(make))
                    .transpose()?;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    let expire = match expiry {
        Some(e) => Some(e.absolute(ctx.now).ok_or_else(|| expire_error("set"))?),
        None => None,
    };
    let old = if get {
        // Read as GET reads it (a missing key is a `keymiss` event).
        let reads = std::mem::replace(&mut ctx.reads, true);
        let old = ctx.get_str(&key).map(|v| v.map(Bytes::copy_from_slice));
        ctx.reads = reads;
        old?
    } else {
        None
    };
    // Redis looks the key up for the write after GET's read: two uses with GET.
    let exists = ctx.exists_write(&key);
    if (nx && exists) || (xx && !exists) {
        return Ok(if get {
            old.map_or(Reply::Nil, Reply::Bulk)
        } else {
            Reply::Nil
        });
    }
    store_string(ctx, &key, &value, expire, keep_ttl);
    Ok(if get {
        old.map_or(Reply::Nil, Reply::Bulk)
    } else {
        Reply::ok()
    })
}

fn setnx(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let value = args.bytes()?;
    if ctx.exists_write(&key) {
        return Ok(Reply::Int(0));
    }
    store_string(ctx, &key, &value, None, false);
    Ok(Reply::Int(1))
}

fn setex_generic(ctx: &mut Ctx, args: &mut Args, ms: bool, name: &str) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let t = args.i64()?;
    let value = args.bytes()?;
    let e = if ms { Expiry::Px(t) } else { Expiry::Ex(t) };
    let at = e.absolute(ctx.now).ok_or_else(|| expire_error(name))?;
    ctx.exists_write(&key);
    store_string(ctx, &key, &value, Some(at), false);
    Ok(Reply::ok())
}

fn getset(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let value = args.bytes()?;
    let old = ctx.get_str(&key)?.map(Bytes::copy_from_slice);
    ctx.exists_write(&key);
    store_string(ctx, &key, &value, None, false);
    Ok(old.map_or(Reply::Nil, Reply::Bulk))
}

fn getdel(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let Some(old) = ctx.get_str(&key)?.map(Bytes::copy_from_slice) else {
        return Ok(Reply::Nil);
    };
    ctx.delete(&key);
    ctx.notify(GENERIC, "del", &key);
    // Replicas and the log get a plain DEL, as Redis propagates it.
    ctx.propagate(argv([b"DEL", &key]));
    Ok(Reply::Bulk(old))
}

fn getex(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let mut expiry = None;
    let mut persist = false;
    while let Some(opt) = args.next() {
        let o = opt.to_ascii_uppercase();
        match &o[..] {
            b"PERSIST" if expiry.is_none() && !persist => persist = true,
            w if expiry.is_none() && !persist && Expiry::option(w).is_some() => {
                expiry = Expiry::option(w)
                    .map(|make| args.i64().map(make))
                    .transpose()?;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    let at = match expiry {
        Some(e) => Some(e.absolute(ctx.now).ok_or_else(|| expire_error("getex"))?),
        None => None,
    };
    let Some(v) = ctx.get_str(&key)?.map(Bytes::copy_from_slice) else {
        return Ok(Reply::Nil);
    };
    if let Some(at) = at {
        ctx.expire_at(&key, at);
    } else if persist && ctx.db().persist(&key) {
        ctx.db().touch(&key);
        ctx.changed(1);
        ctx.propagate(argv([b"PERSIST", &key]));
        ctx.notify(GENERIC, "persist", &key);
    }
    Ok(Reply::Bulk(v))
}

fn mget(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let mut out = Vec::with_capacity(args.remaining());
    while let Some(k) = args.next() {
        out.push(match ctx.lookup(&k) {
            Some(Value::Str(s)) => Reply::bulk(s),
            _ => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

fn mset_pairs(args: &mut Args, name: &str) -> Result<Vec<(Bytes, Bytes)>, CmdError> {
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::Arity(name.into()));
    }
    let mut pairs = Vec::with_capacity(args.remaining() / 2);
    while let Some(k) = args.next() {
        pairs.push((k, args.bytes()?));
    }
    Ok(pairs)
}

fn mset(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    for (k, v) in mset_pairs(args, "mset")? {
        ctx.exists_write(&k);
        let db = ctx.db();
        db.set(&k, Value::Str(boxed(&v)), false);
        db.touch(&k);
        ctx.changed(1);
        ctx.notify(STRING, "set", &k);
    }
    Ok(Reply::ok())
}

fn msetnx(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let pairs = mset_pairs(args, "msetnx")?;
    if pairs.iter().any(|(k, _)| ctx.exists_write(k)) {
        return Ok(Reply::Int(0));
    }
    for (k, v) in pairs {
        let db = ctx.db();
        db.set(&k, Value::Str(boxed(&v)), false);
        db.touch(&k);
        ctx.changed(1);
        ctx.notify(STRING, "set", &k);
    }
    Ok(Reply::Int(1))
}

fn append(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let tail = args.bytes()?;
    let cur = ctx.get_str(&key)?.map(|s| s.len()).unwrap_or(0);
    if cur + tail.len() > MAX_STRING {
        return Err(CmdError::msg(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let db = ctx.db();
    let new_len = match db.keys.get_mut(&key[..]) {
        Some(Value::Str(s)) => {
            let mut v = std::mem::take(s).into_vec();
            v.extend_from_slice(&tail);
            let len = v.len();
            *s = v.into_boxed_slice();
            db.mark_edited(&key);
            len
        }
        _ => {
            db.set(&key, Value::Str(boxed(&tail)), false);
            tail.len()
        }
    };
    db.touch(&key);
    ctx.changed(1);
    ctx.notify(STRING, "append", &key);
    Ok(Reply::Int(new_len as i64))
}

fn strlen(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(ctx.get_str(&key)?.map_or(0, |s| s.len() as i64)))
}

fn getrange(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let start = args.i64()?;
    let end = args.i64()?;
    let Some(s) = ctx.get_str(&key)? else {
        return Ok(Reply::bulk(b""));
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(b""));
    }
    let mut start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let mut end = if end < 0 { (len + end).max(0) } else { end };
    end = end.min(len - 1);
    if len == 0 || start > end {
        return Ok(Reply::bulk(b""));
    }
    start = start.max(0);
    Ok(Reply::bulk(&s[start as usize..=end as usize]))
}

fn setrange(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let offset = args.i64()?;
    let value = args.bytes()?;
    if offset < 0 {
        return Err(CmdError::msg("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let cur_len = ctx.get_str(&key)?.map(|s| s.len());
    if value.is_empty() {
        return Ok(Reply::Int(cur_len.unwrap_or(0) as i64));
    }
    if offset
        .checked_add(value.len())
        .is_none_or(|n| n > MAX_STRING)
    {
        return Err(CmdError::msg(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let db = ctx.db();
    let mut v = match db.keys.get_mut(&key[..]) {
        Some(Value::Str(s)) => std::mem::take(s).into_vec(),
        _ => Vec::new(),
    };
    if v.len() < offset + value.len() {
        v.resize(offset + value.len(), 0);
    }
    v[offset..offset + value.len()].copy_from_slice(&value);
    let len = v.len();
    if cur_len.is_some() {
        if let Some(Value::Str(s)) = db.keys.get_mut(&key[..]) {
            *s = v.into_boxed_slice();
        }
    } else {
        db.set(&key, Value::Str(v.into_boxed_slice()), false);
    }
    db.mark_edited(&key);
    db.touch(&key);
    ctx.changed(1);
    ctx.notify(STRING, "setrange", &key);
    Ok(Reply::Int(len as i64))
}
