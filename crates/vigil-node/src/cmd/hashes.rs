//! Hash commands.

use bytes::Bytes;
use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::{Ctx, ScanOpts, argv, scan_cursor, scan_reply};
use crate::db::notify::HASH;
use crate::db::scan_indices;
use crate::ldouble::IncrError;
use crate::node::{Handler, row};

/// The hash family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "hset",
            -4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hash",
            "Sets fields of a hash.",
            Data(|c, a| set_fields(c, a, "hset").map(Reply::Int))
        ),
        row!(
            "hmset",
            -4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hash",
            "Sets fields of a hash (deprecated form).",
            Data(|c, a| set_fields(c, a, "hmset").map(|_| Reply::ok()))
        ),
        row!(
            "hsetnx",
            4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hash",
            "Sets a field only if it does not exist.",
            Data(hsetnx)
        ),
        row!(
            "hget",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "hash",
            "Returns a field's value.",
            Data(hget)
        ),
        row!(
            "hmget",
            -3,
            [READONLY, FAST],
            1,
            1,
            1,
            "hash",
            "Returns the values of several fields.",
            Data(hmget)
        ),
        row!(
            "hgetall",
            2,
            [READONLY],
            1,
            1,
            1,
            "hash",
            "Returns all fields and values.",
            Data(hgetall)
        ),
        row!(
            "hdel",
            -3,
            [WRITE, FAST],
            1,
            1,
            1,
            "hash",
            "Deletes fields.",
            Data(hdel)
        ),
        row!(
            "hexists",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "hash",
            "Whether a field exists.",
            Data(hexists)
        ),
        row!(
            "hlen",
            2,
            [READONLY, FAST],
            1,
            1,
            1,
            "hash",
            "Returns the number of fields.",
            Data(hlen)
        ),
        row!(
            "hkeys",
            2,
            [READONLY],
            1,
            1,
            1,
            "hash",
            "Returns all field names.",
            Data(hkeys)
        ),
        row!(
            "hvals",
            2,
            [READONLY],
            1,
            1,
            1,
            "hash",
            "Returns all values.",
            Data(hvals)
        ),
        row!(
            "hincrby",
            4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hash",
            "Increments an integer field.",
            Data(hincrby)
        ),
        row!(
            "hincrbyfloat",
            4,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hash",
            "Increments a float field.",
            Data(hincrbyfloat)
        ),
        row!(
            "hstrlen",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "hash",
            "Returns the length of a field's value.",
            Data(hstrlen)
        ),
        row!(
            "hscan",
            -3,
            [READONLY],
            1,
            1,
            1,
            "hash",
            "Iterates over fields and values.",
            Data(hscan)
        ),
        row!(
            "hrandfield",
            -2,
            [READONLY],
            1,
            1,
            1,
            "hash",
            "Returns random fields.",
            Data(hrandfield)
        ),
    ]
}

fn set_fields(ctx: &mut Ctx, args: &mut Args, name: &str) -> Result<i64, CmdError> {
    let key = args.bytes()?;
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::Arity(name.into()));
    }
    let pairs = args.rest();
    let limits = ctx.store.thresholds.hash();
    let h = ctx.hash_or_new(&key)?;
    let mut added = 0;
    for fv in pairs.chunks(2) {
        added += h.insert(&fv[0], &fv[1], limits) as i64;
    }
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(HASH, "hset", &key);
    Ok(added)
}

fn hsetnx(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    let value = args.bytes()?;
    let limits = ctx.store.thresholds.hash();
    let h = ctx.hash_or_new(&key)?;
    if h.contains_key(&field[..]) {
        return Ok(Reply::Int(0));
    }
    h.insert(&field, &value, limits);
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(HASH, "hset", &key);
    Ok(Reply::Int(1))
}

fn hget(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    Ok(ctx
        .get_hash(&key)?
        .and_then(|h| h.get(&field[..]))
        .map_or(Reply::Nil, Reply::bulk))
}

fn hmget(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let fields = args.rest();
    let h = ctx.get_hash(&key)?;
    Ok(Reply::Array(
        fields
            .iter()
            .map(|f| {
                h.as_ref()
                    .and_then(|h| h.get(&f[..]))
                    .map_or(Reply::Nil, Reply::bulk)
            })
            .collect(),
    ))
}

fn hgetall(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let Some(h) = ctx.get_hash(&key)? else {
        return Ok(Reply::Map(vec![]));
    };
    Ok(Reply::Map(
        h.iter()
            .map(|(f, v)| (Reply::bulk(f), Reply::bulk(v)))
            .collect(),
    ))
}

fn hdel(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let fields = args.rest();
    let Some(h) = ctx.get_hash(&key)? else {
        return Ok(Reply::Int(0));
    };
    let n = fields.iter().filter(|f| h.remove(f)).count();
    if n > 0 {
        ctx.took_from(HASH, "hdel", &key);
        ctx.db().touch(&key);
        ctx.changed(n as u64);
    }
    Ok(Reply::Int(n as i64))
}

fn hexists(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_hash(&key)?
            .is_some_and(|h| h.contains_key(&field[..])) as i64,
    ))
}

fn hlen(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_hash(&key)?.map_or(0, |h| h.len() as i64),
    ))
}

fn hkeys(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Array(
        ctx.get_hash(&key)?
            .map_or_else(Vec::new, |h| h.keys().map(Reply::bulk).collect()),
    ))
}

fn hvals(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    Ok(Reply::Array(
        ctx.get_hash(&key)?
            .map_or_else(Vec::new, |h| h.values().map(Reply::bulk).collect()),
    ))
}

fn hincrby(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    let by = args.i64()?;
    let limits = ctx.store.thresholds.hash();
    let h = ctx.hash_or_new(&key)?;
    let cur = match h.get(&field[..]) {
        None => 0,
        Some(v) => parse_int(v).map_err(|_| CmdError::msg("ERR hash value is not an integer"))?,
    };
    let n = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    h.insert(&field, itoa::Buffer::new().format(n).as_bytes(), limits);
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(HASH, "hincrby", &key);
    Ok(Reply::Int(n))
}

fn hincrbyfloat(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    let by = args.bytes()?;
    // The increment is checked before the key, as Redis does.
    if let Err(e) = crate::ldouble::add(None, &by, true) {
        return Err(match e {
            IncrError::NonFiniteIncrement => CmdError::msg("ERR value is NaN or Infinity"),
            _ => CmdError::NotFloat,
        });
    }
    let limits = ctx.store.thresholds.hash();
    let h = ctx.hash_or_new(&key)?;
    let text = crate::ldouble::add(h.get(&field[..]), &by, true).map_err(|e| match e {
        IncrError::BadCurrent => CmdError::msg("ERR hash value is not a float"),
        _ => CmdError::msg("ERR increment would produce NaN or Infinity"),
    })?;
    h.insert(&field, text.as_bytes(), limits);
    ctx.db().touch(&key);
    ctx.changed(1);
    ctx.notify(HASH, "hincrbyfloat", &key);
    ctx.propagate(argv([b"HSET", &key, &field, text.as_bytes()]));
    Ok(Reply::Bulk(Bytes::from(text)))
}

fn hstrlen(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let field = args.bytes()?;
    Ok(Reply::Int(
        ctx.get_hash(&key)?
            .and_then(|h| h.get(&field[..]))
            .map_or(0, |v| v.len() as i64),
    ))
}

fn hscan(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    if let Some(c) = args.peek() {
        scan_cursor(c)?;
    }
    let Some(h) = ctx.get_hash(&key)? else {
        return Ok(scan_reply(0, vec![]));
    };
    let o = ScanOpts::parse(args, false)?;
    let mut items = Vec::new();
    let add = |(f, v): (&[u8], &[u8])| {
        if o.matches(f) {
            items.push(Reply::bulk(f));
            if !o.novalues {
                items.push(Reply::bulk(v));
            }
        }
    };
    // A compact hash is answered whole, in order, as Redis answers a listpack.
    if h.is_packed() {
        h.iter().for_each(add);
        return Ok(scan_reply(0, items));
    }
    let (next, range) = scan_indices(h.len(), o.cursor, o.count);
    range.rev().filter_map(|i| h.get_index(i)).for_each(add);
    Ok(scan_reply(next, items))
}

/// Picks `count` random indices out of `len`: distinct for a positive count, with repeats for a
/// negative one (Redis' HRANDFIELD / SRANDMEMBER / ZRANDMEMBER rules).
pub(crate) fn random_indices(len: usize, count: i64) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    if count < 0 {
        let n = count.unsigned_abs().min(10_000_000) as usize;
        return (0..n).map(|_| rand::random_range(0..len)).collect();
    }
    let n = (count as usize).min(len);
    if n == len {
        return (0..len).collect();
    }
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < n {
        picked.insert(rand::random_range(0..len));
    }
    picked.into_iter().collect()
}

/// Parses the optional `count [WITHVALUES|WITHSCORES]` of the RAND commands; `with: None`
/// (SRANDMEMBER) accepts no such flag.
pub(crate) fn rand_args(
    args: &mut Args,
    with: Option<&str>,
) -> Result<(Option<i64>, bool), CmdError> {
    let Some(c) = args.next() else {
        return Ok((None, false));
    };
    let count = parse_int(&c)?;
    let withv = match args.next() {
        None => false,
        Some(w) if with.is_some_and(|f| w.eq_ignore_ascii_case(f.as_bytes())) => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    args.finish()?;
    if count < -(i64::MAX / 2) {
        return Err(CmdError::msg("ERR value is out of range"));
    }
    Ok((Some(count), withv))
}

fn hrandfield(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let (count, withv) = rand_args(args, Some("withvalues"))?;
    let ctx_resp3 = ctx.resp3;
    let h = ctx.get_hash(&key)?;
    let Some(count) = count else {
        return Ok(match h {
            Some(h) if !h.is_empty() => {
                let i = rand::random_range(0..h.len());
                h.get_index(i).map_or(Reply::Nil, |(f, _)| Reply::bulk(f))
            }
            _ => Reply::Nil,
        });
    };
    let Some(h) = h else {
        return Ok(Reply::Array(vec![]));
    };
    let idx = random_indices(h.len(), count);
    // A compact hash is walked once, not once per pick.
    let packed: Option<Vec<(&[u8], &[u8])>> = h.is_packed().then(|| h.iter().collect());
    let mut out = Vec::new();
    for i in idx {
        let pair = match &packed {
            Some(all) => all.get(i).copied(),
            None => h.get_index(i),
        };
        if let Some((f, v)) = pair {
            if withv && ctx_resp3 {
                out.push(Reply::Array(vec![Reply::bulk(f), Reply::bulk(v)]));
            } else if withv {
                out.push(Reply::bulk(f));
                out.push(Reply::bulk(v));
            } else {
                out.push(Reply::bulk(f));
            }
        }
    }
    Ok(Reply::Array(out))
}
