//! Conversions between Lua values and Redis replies, both directions, as Redis 7.0 makes them
//! (`luaReplyToRedisReply` and the RESP-to-Lua parser of `script_lua.c`).

use bytes::Bytes;
use mlua::{Lua, Table, Value};
use vigil_resp::Reply;

/// How deep a returned table may nest before it is cut with Redis' error. Redis cuts where
/// the Lua stack ends (about 8,000 levels); the conversion, the reply writer and the drop
/// all recurse here, so the cut comes earlier, where a worker thread's stack surely holds
/// (a self-referencing table must never crash the node).
const MAX_DEPTH: usize = 200;

/// Lua's number to a Redis integer as C's `(long long)` cast does on x86-64: truncation, and
/// the "integer indefinite" value for NaN and out-of-range numbers.
pub fn number_to_int(n: f64) -> i64 {
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Error and status texts go on one line, as Redis' reply writer makes them.
fn one_line(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace(['\r', '\n'], " ")
}

/// Converts what a script returned into the reply. `resp3` is the script's `redis.setresp`.
pub fn to_reply(v: &Value, resp3: bool) -> Reply {
    to_reply_at(v, resp3, 0)
}

fn to_reply_at(v: &Value, resp3: bool, depth: usize) -> Reply {
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Reply::Bool(*b),
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(number_to_int(*n)),
        Value::Table(t) if depth < MAX_DEPTH => table_to_reply(t, resp3, depth),
        Value::Table(_) => Reply::error("ERR reached lua stack limit"),
        _ => Reply::Nil,
    }
}

fn field(t: &Table, name: &str) -> Value {
    t.raw_get(name).unwrap_or(Value::Nil)
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    if let Value::String(e) = field(t, "err") {
        return Reply::Error(one_line(&e.as_bytes()).into());
    }
    if let Value::String(s) = field(t, "ok") {
        return Reply::Simple(one_line(&s.as_bytes()).into());
    }
    match field(t, "double") {
        Value::Number(n) => return Reply::Double(n),
        Value::Integer(n) => return Reply::Double(n as f64),
        _ => {}
    }
    if let Value::String(s) = field(t, "big_number") {
        return big_number(&s.as_bytes());
    }
    if let Value::Table(m) = field(t, "map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                to_reply_at(&k, resp3, depth + 1),
                to_reply_at(&v, resp3, depth + 1),
            ));
        }
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field(t, "set") {
        let items = s
            .pairs::<Value, Value>()
            .flatten()
            .map(|(k, _)| to_reply_at(&k, resp3, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    if let Value::Table(v) = field(t, "verbatim_string")
        && let (Value::String(f), Value::String(s)) = (field(&v, "format"), field(&v, "string"))
        && f.as_bytes().len() == 3
    {
        // Vigil's verbatim replies are always `txt`, the only format commands produce.
        return Reply::Verbatim(Bytes::copy_from_slice(&s.as_bytes()));
    }
    // An array: elements 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply_at(&v, resp3, depth + 1)),
        }
    }
    Reply::Array(items)
}

/// A big number travels as its text: `(` in RESP3, a bulk string in RESP2.
fn big_number(s: &[u8]) -> Reply {
    Reply::BigNumber(Bytes::from(one_line(s).into_bytes()))
}

/// Converts a command's reply into the Lua value `redis.call` returns. `resp3`: the script
/// asked for RESP3 (`redis.setresp(3)`), so maps, sets, doubles, booleans and nulls keep their
/// types. An error reply becomes `{err = "..."}`.
pub fn from_reply(lua: &Lua, r: Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match r {
        Reply::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s.as_bytes())?)?;
            Value::Table(t)
        }
        Reply::Error(e) => error_table(lua, &e)?,
        Reply::Int(i) => Value::Integer(i),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Array(items) | Reply::Push(items) => seq(lua, items, resp3)?,
        Reply::Set(items) if resp3 => {
            let s = lua.create_table()?;
            for it in items {
                s.raw_set(from_reply(lua, it, resp3)?, true)?;
            }
            wrap(lua, "set", Value::Table(s))?
        }
        Reply::Set(items) => seq(lua, items, resp3)?,
        Reply::Map(pairs) if resp3 => {
            let m = lua.create_table()?;
            for (k, v) in pairs {
                m.raw_set(from_reply(lua, k, resp3)?, from_reply(lua, v, resp3)?)?;
            }
            wrap(lua, "map", Value::Table(m))?
        }
        Reply::Map(pairs) => {
            let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            seq(lua, flat, resp3)?
        }
        Reply::Double(d) if resp3 => wrap(lua, "double", Value::Number(d))?,
        Reply::Double(d) => Value::String(lua.create_string(vigil_resp::reply::format_double(d))?),
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Integer(b as i64),
        Reply::Verbatim(b) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(&b)?)?;
            wrap(lua, "verbatim_string", Value::Table(v))?
        }
        Reply::Verbatim(b) => Value::String(lua.create_string(&b)?),
        Reply::BigNumber(t) if resp3 => {
            wrap(lua, "big_number", Value::String(lua.create_string(&t)?))?
        }
        Reply::BigNumber(t) => Value::String(lua.create_string(&t)?),
        Reply::Encoded(_) => Value::Boolean(false),
    })
}

/// `{err = msg}`; `msg` carries its error code (`ERR`, `WRONGTYPE`...).
pub fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(
        "err",
        lua.create_string(msg.trim_end_matches(['\r', '\n']))?,
    )?;
    Ok(Value::Table(t))
}

fn wrap(lua: &Lua, name: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(name, v)?;
    Ok(Value::Table(t))
}

fn seq(lua: &Lua, items: Vec<Reply>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, it) in items.into_iter().enumerate() {
        t.raw_set(i + 1, from_reply(lua, it, resp3)?)?;
    }
    Ok(Value::Table(t))
}
