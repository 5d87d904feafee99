//! Counter commands: INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT — integer and float arithmetic on
//! string values, with Redis' overflow and "not an integer" errors.

use bytes::Bytes;
use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::{Ctx, argv};
use crate::db::{Value, boxed};
use crate::ldouble::IncrError;
use crate::node::{Handler, row};

/// The counter family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "incr",
            2,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Increments an integer value by one.",
            Data(incr)
        ),
        row!(
            "decr",
            2,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Decrements an integer value by one.",
            Data(decr)
        ),
        row!(
            "incrby",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Increments an integer value.",
            Data(incrby)
        ),
        row!(
            "decrby",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Decrements an integer value.",
            Data(decrby)
        ),
        row!(
            "incrbyfloat",
            3,
            [WRITE, DENYOOM, FAST],
            1,
            1,
            1,
            "string",
            "Increments a float value.",
            Data(incrbyfloat)
        ),
    ]
}

fn incr_generic(ctx: &mut Ctx, key: &[u8], by: i64) -> Result<Reply, CmdError> {
    let cur = match ctx.get_str(key)? {
        None => 0,
        Some(s) => parse_int(s)?,
    };
    let n = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    let db = ctx.db();
    db.set(
        key,
        Value::Str(boxed(itoa::Buffer::new().format(n).as_bytes())),
        true,
    );
    db.touch(key);
    ctx.changed(1);
    ctx.notify(crate::db::notify::STRING, "incrby", key);
    Ok(Reply::Int(n))
}

fn incr(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    incr_generic(ctx, &key, 1)
}

fn decr(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    incr_generic(ctx, &key, -1)
}

fn incrby(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let by = args.i64()?;
    incr_generic(ctx, &key, by)
}

fn decrby(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let by = args.i64()?;
    if by == i64::MIN {
        return Err(CmdError::msg("ERR decrement would overflow"));
    }
    incr_generic(ctx, &key, -by)
}

fn incrbyfloat(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let by = args.bytes()?;
    let cur = ctx.get_str(&key)?;
    let text = crate::ldouble::add(cur, &by, false).map_err(|e| match e {
        IncrError::NonFiniteSum | IncrError::NonFiniteIncrement => {
            CmdError::msg("ERR increment would produce NaN or Infinity")
        }
        _ => CmdError::NotFloat,
    })?;
    let db = ctx.db();
    db.set(&key, Value::Str(boxed(text.as_bytes())), true);
    db.touch(&key);
    ctx.changed(1);
    ctx.notify(crate::db::notify::STRING, "incrbyfloat", &key);
    // Float formatting must not differ between master and log replay: propagate the result.
    ctx.propagate(argv([b"SET", &key, text.as_bytes(), b"KEEPTTL"]));
    Ok(Reply::Bulk(Bytes::from(text)))
}
