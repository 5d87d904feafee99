//! `cjson.encode`: Lua values to JSON text.

use mlua::{Lua, MultiValue, Table, Value};

use super::{Config, MAXCSTACK, lua_err};
use crate::libs::{LibError, LibResult, Ret, num};

/// `json_encode`: exactly one argument.
pub(super) fn encode(lua: &Lua, a: &MultiValue, cfg: &Config) -> LibResult {
    if a.len() != 1 {
        return Err(LibError::Arg(1, "expected 1 argument".into()));
    }
    let mut e = Encoder {
        lua,
        cfg,
        out: Vec::new(),
    };
    e.data(&a[0], 1)?;
    let s = lua.create_string(&e.out).map_err(lua_err)?;
    Ok(Ret::from_iter([Value::String(s)]))
}

struct Encoder<'a> {
    lua: &'a Lua,
    cfg: &'a Config,
    out: Vec<u8>,
}

fn exception(v: &Value, reason: &str) -> LibError {
    LibError::Msg(format!(
        "Cannot serialise {}: {reason}",
        num::value_typename(v)
    ))
}

impl Encoder<'_> {
    /// `json_append_data`, iteratively: open tables live on a heap stack, so no nesting can
    /// overflow the thread's stack, and in two Lua tables (the open tables and their last
    /// keys, by depth) rather than in `mlua` handles, which run out near 8000. `top` tracks the
    /// C code's Lua stack height, so nesting ends where Redis' `lua_checkstack` ends it.
    fn data(&mut self, root: &Value, mut top: usize) -> Result<(), LibError> {
        let tabs = self.lua.create_table().map_err(lua_err)?;
        let keys = self.lua.create_table().map_err(lua_err)?;
        let mut stack: Vec<Open> = Vec::new();
        let mut pending = Some(root.clone());
        loop {
            if let Some(v) = pending.take() {
                match &v {
                    Value::Table(t) => {
                        let depth = stack.len() as i32 + 1;
                        if depth > self.cfg.encode_max_depth || top + 3 > MAXCSTACK {
                            return Err(LibError::Msg(format!(
                                "Cannot serialise, excessive nesting ({depth})"
                            )));
                        }
                        let len = self.array_length(t, &v)?;
                        tabs.raw_set(depth, t).map_err(lua_err)?;
                        if len > 0 {
                            self.out.push(b'[');
                            stack.push(Open::Arr { len, i: 0, top });
                            top += 1;
                        } else {
                            self.out.push(b'{');
                            stack.push(Open::Obj { top });
                            top += 2;
                        }
                    }
                    _ => self.scalar(&v)?,
                }
            }
            let depth = stack.len();
            let Some(open) = stack.last_mut() else {
                return Ok(());
            };
            let close = match open {
                Open::Arr { len, i, .. } => {
                    if *i < *len {
                        if *i > 0 {
                            self.out.push(b',');
                        }
                        *i += 1;
                        let t: Table = tabs.raw_get(depth).map_err(lua_err)?;
                        pending = Some(t.raw_get(*i).map_err(lua_err)?);
                        continue;
                    }
                    b']'
                }
                Open::Obj { .. } => match table_next(self.lua, &tabs, &keys, depth)? {
                    Some((k, v, first)) => {
                        if !first {
                            self.out.push(b',');
                        }
                        self.key(&k)?;
                        pending = Some(v);
                        continue;
                    }
                    None => b'}',
                },
            };
            self.out.push(close);
            tabs.raw_set(depth, Value::Nil).map_err(lua_err)?;
            keys.raw_set(depth, Value::Nil).map_err(lua_err)?;
            let (Some(Open::Arr { top: t0, .. }) | Some(Open::Obj { top: t0 })) = stack.pop()
            else {
                unreachable!("a table was open");
            };
            top = t0;
        }
    }

    fn scalar(&mut self, v: &Value) -> Result<(), LibError> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => self.number(v)?,
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            _ => return Err(exception(v, "type not supported")),
        }
        Ok(())
    }

    /// An object key: numbers quoted, strings as strings, anything else refused.
    fn key(&mut self, k: &Value) -> Result<(), LibError> {
        match k {
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.number(k)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            _ => return Err(exception(k, "table key must be a number or string")),
        }
        Ok(())
    }

    /// `lua_array_length`: the array length, or 0 or less for "an object".
    fn array_length(&self, t: &Table, tv: &Value) -> Result<i32, LibError> {
        let (mut max, mut items) = (0i32, 0i32);
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, _) = pair.map_err(lua_err)?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(n) => n,
                _ => return Ok(-1),
            };
            if k == 0.0 || k.is_nan() || k.floor() != k || k < 1.0 {
                return Ok(-1);
            }
            if k > max as f64 {
                max = num::d2int(k);
            }
            items = items.wrapping_add(1);
        }
        let c = self.cfg;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if c.sparse_convert == 0 {
                return Err(exception(tv, "excessively sparse array"));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    fn number(&mut self, v: &Value) -> Result<(), LibError> {
        let n = num::to_number(v).unwrap_or(0.0);
        if n.is_nan() || n.is_infinite() {
            match self.cfg.encode_invalid_numbers {
                0 => return Err(exception(v, "must not be NaN or Inf")),
                1 => {
                    // Redis' build prints them as C does, whatever the sign of a NaN.
                    let s: &[u8] = if n.is_nan() {
                        b"nan"
                    } else if n < 0.0 {
                        b"-inf"
                    } else {
                        b"inf"
                    };
                    self.out.extend_from_slice(s);
                }
                _ => self.out.extend_from_slice(b"null"),
            }
            return Ok(());
        }
        let s = num::fmt_g(n, self.cfg.precision as usize);
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &c in s {
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                8 => self.out.extend_from_slice(b"\\b"),
                12 => self.out.extend_from_slice(b"\\f"),
                0..=0x1f | 0x7f => self.out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }
}

/// A table being written (the table itself is in `tabs`, at its depth).
enum Open {
    Arr { len: i32, i: i32, top: usize },
    Obj { top: usize },
}

/// `lua_next` on `tabs[d]` after `keys[d]` (nil: from the start), remembering the new key in
/// `keys[d]`: the pair, and whether it is the first, or `None` at the end.
fn table_next(
    lua: &Lua,
    tabs: &Table,
    keys: &Table,
    d: usize,
) -> Result<Option<(Value, Value, bool)>, LibError> {
    use mlua::ffi;
    // SAFETY: the closure sees [tabs, keys, d] on the stack and leaves [key, value, first] or
    // [nil, nil, nil]; `exec_raw` runs it protected (an invalid key raises a Lua error).
    let (k, v, first): (Value, Value, Value) = unsafe {
        lua.exec_raw((tabs, keys, d), |state| {
            let d = ffi::lua_tointeger(state, 3) as _;
            ffi::lua_rawgeti(state, 1, d);
            ffi::lua_rawgeti(state, 2, d);
            let first = ffi::lua_isnil(state, -1) != 0;
            if ffi::lua_next(state, 4) != 0 {
                // [tabs, keys, d, t, k, v]
                ffi::lua_pushvalue(state, 5);
                ffi::lua_rawseti(state, 2, d);
                ffi::lua_replace(state, 2);
                ffi::lua_replace(state, 1);
                ffi::lua_settop(state, 2);
                ffi::lua_pushboolean(state, first as _);
            } else {
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
                ffi::lua_pushnil(state);
                ffi::lua_pushnil(state);
            }
        })
    }
    .map_err(lua_err)?;
    Ok(match k {
        Value::Nil => None,
        k => Some((k, v, first == Value::Boolean(true))),
    })
}
