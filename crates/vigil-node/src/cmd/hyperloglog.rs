//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST.
//!
//! An HLL is a string in Redis' exact representation ([`crate::db::hll`]), so the bytes GET
//! returns match redis-server's after the same commands, including the cardinality PFCOUNT
//! caches in the header. Propagation follows Redis: PFADD when a register changed, PFCOUNT
//! when it wrote its cache, PFMERGE always, PFDEBUG when it converted the encoding — each as
//! received, since each is deterministic.

use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::hll::{self, REGISTERS};
use crate::db::{Key, Value};
use crate::node::{Handler, row};

/// The HyperLogLog family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "pfadd",
            -2,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "hyperloglog",
            "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
            Data(pfadd)
        ),
        row!(
            "pfcount",
            -2,
            [READONLY],
            1,
            -1,
            1,
            "hyperloglog",
            "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
            Data(pfcount)
        ),
        row!(
            "pfmerge",
            -2,
            [WRITE, DENYOOM],
            1,
            -1,
            1,
            "hyperloglog",
            "Merges one or more HyperLogLog values into a single key.",
            Data(pfmerge)
        ),
        row!(
            "pfdebug",
            3,
            [WRITE, DENYOOM, ADMIN],
            2,
            2,
            1,
            "hyperloglog",
            "Internal commands for debugging HyperLogLog values.",
            Data(pfdebug)
        ),
        row!(
            "pfselftest",
            1,
            [ADMIN],
            0,
            0,
            0,
            "hyperloglog",
            "An internal command for testing HyperLogLog values.",
            Data(pfselftest)
        ),
    ]
}

fn not_hll() -> CmdError {
    CmdError::msg("WRONGTYPE Key is not a valid HyperLogLog string value.")
}

fn corrupt() -> CmdError {
    CmdError::msg("INVALIDOBJ Corrupted HLL object detected")
}

/// The HLL at `key`: `None` if missing, `WRONGTYPE` (Redis' two wordings) if not an HLL.
fn hll_at<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Key>, CmdError> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(Value::Str(s)) if hll::is_hll(s) => Ok(Some(s)),
        Some(Value::Str(_)) => Err(not_hll()),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The string value of `key` without expiry or statistics (just looked up or created),
/// marked as edited in place: Redis unshares an HLL to work on it, so it is `raw` from then on
/// (OBJECT ENCODING).
fn str_mut<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<&'c mut Key, CmdError> {
    let db = ctx.db();
    db.mark_edited(key);
    match db.keys.get_mut(key) {
        Some(Value::Str(s)) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// Creates an empty sparse HLL at `key`.
fn create(ctx: &mut Ctx, key: &[u8]) {
    let v = hll::new_sparse().into_boxed_slice();
    ctx.db().set(key, Value::Str(v), false);
}

fn pfadd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let max_sparse = ctx.store.limits.hll_sparse_max_bytes;
    let mut updated = 0u64;
    if hll_at(ctx, &key)?.is_none() {
        create(ctx, &key);
        updated += 1;
    }
    let s = str_mut(ctx, &key)?;
    let mut v = std::mem::take(s).into_vec();
    let mut failed = false;
    while let Some(e) = args.next() {
        match hll::add(&mut v, &e, max_sparse) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(hll::Corrupt) => {
                failed = true;
                break;
            }
        }
    }
    if updated > 0 && !failed {
        hll::invalidate(&mut v);
    }
    *s = v.into_boxed_slice();
    // Registers raised before a corrupt run was found stay raised (as in Redis); the command
    // is propagated so replicas raise the same ones.
    if updated > 0 {
        ctx.db().touch(&key);
        ctx.changed(updated);
    }
    if failed {
        return Err(corrupt());
    }
    if updated > 0 {
        ctx.notify(crate::db::notify::STRING, "pfadd", &key);
    }
    Ok(Reply::Int(i64::from(updated > 0)))
}

fn pfcount(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let keys = args.rest();
    if keys.len() == 1 {
        let may_write = !ctx.hide_expired;
        if hll_at(ctx, &keys[0])?.is_none() {
            return Ok(Reply::Int(0));
        }
        let s = str_mut(ctx, &keys[0])?;
        if let Some(card) = hll::cached(s) {
            return Ok(Reply::Int(card as i64));
        }
        let card = hll::estimate(&hll::histogram(s).map_err(|_| corrupt())?);
        // The cache is part of the string: writing it is a write, propagated so replicas hold
        // the same bytes. A node that takes no writes (a replica, a fenced master) answers
        // without caching: its data changes only through its master's stream.
        if may_write {
            hll::set_cached(s, card);
            ctx.db().touch(&keys[0]);
            ctx.changed(1);
        }
        return Ok(Reply::Int(card as i64));
    }
    let mut max = Box::new([0u8; REGISTERS]);
    for k in &keys {
        if let Some(s) = hll_at(ctx, k)? {
            hll::merge_into(&mut max, s).map_err(|_| corrupt())?;
        }
    }
    Ok(Reply::Int(hll::estimate(&hll::raw_histogram(&max)) as i64))
}

fn pfmerge(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let keys = args.rest();
    let dest = &keys[0];
    let max_sparse = ctx.store.limits.hll_sparse_max_bytes;
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    // The destination counts as a source too.
    for k in &keys {
        if let Some(s) = hll_at(ctx, k)? {
            use_dense |= !hll::is_sparse(s);
            hll::merge_into(&mut max, s).map_err(|_| corrupt())?;
        }
    }
    // Looked up again to write: one `keymiss` (above) is what Redis announces.
    let reads = std::mem::replace(&mut ctx.reads, false);
    let missing = hll_at(ctx, dest).map(|h| h.is_none());
    ctx.reads = reads;
    if missing? {
        create(ctx, dest);
    }
    let s = str_mut(ctx, dest)?;
    if use_dense {
        hll::to_dense(s).map_err(|_| corrupt())?;
    }
    let mut v = std::mem::take(s).into_vec();
    for (i, &m) in max.iter().enumerate() {
        if m != 0 {
            // A corrupt destination was refused above, as a source.
            let _ = hll::raise(&mut v, i, m, max_sparse);
        }
    }
    hll::invalidate(&mut v);
    *s = v.into_boxed_slice();
    ctx.db().touch(dest);
    ctx.changed(1);
    ctx.notify(crate::db::notify::STRING, "pfadd", dest);
    Ok(Reply::ok())
}

fn pfdebug(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let sub = args.bytes()?;
    let key = args.bytes()?;
    if hll_at(ctx, &key)?.is_none() {
        return Err(CmdError::msg("ERR The specified key does not exist"));
    }
    let s = str_mut(ctx, &key)?;
    let sparse = hll::is_sparse(s);
    if sub.eq_ignore_ascii_case(b"getreg") || sub.eq_ignore_ascii_case(b"todense") {
        if sparse {
            hll::to_dense(s).map_err(|_| corrupt())?;
        }
        let reply = if sub.eq_ignore_ascii_case(b"getreg") {
            let regs = &s[hll::HDR..];
            Reply::Array(
                (0..REGISTERS)
                    .map(|i| Reply::Int(hll::dense_get(regs, i) as i64))
                    .collect(),
            )
        } else {
            Reply::Int(i64::from(sparse))
        };
        // The encoding changed: propagated, so replicas convert too.
        if sparse {
            ctx.changed(1);
        }
        Ok(reply)
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if !sparse {
            return Err(CmdError::msg("ERR HLL encoding is not sparse"));
        }
        Ok(Reply::bulk(hll::decode(s).as_bytes()))
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        Ok(Reply::simple(if sparse { "sparse" } else { "dense" }))
    } else {
        Err(CmdError::msg(format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(&sub)
        )))
    }
}

fn pfselftest(_ctx: &mut Ctx, _args: &mut Args) -> Result<Reply, CmdError> {
    match hll::self_test() {
        Ok(()) => Ok(Reply::ok()),
        Err(why) => Err(CmdError::msg(format!("ERR TESTFAILED {why}"))),
    }
}
