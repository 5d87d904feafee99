//! `cjson.encode`: Lua values to JSON text.

use mlua::{Lua, MultiValue, Table, Value};

use super::{lua_err, Config, MAXCSTACK};
use crate::libs::{num, LibError, LibResult, Ret};

/// Deepest nesting the encoder walks, whatever `encode_max_depth` says (see `data`).
const MAX_DEPTH_HANDLES: i32 = 2000;

/// `json_encode`: exactly one argument.
pub(super) fn encode(lua: &Lua, a: &MultiValue, cfg: &Config) -> LibResult {
    if a.len() != 1 {
        return Err(LibError::Arg(1, "expected one argument".into()));
    }
    let mut e = Encoder { cfg, out: Vec::new() };
    e.data(&a[0], 0, 1)?;
    let s = lua.create_string(&e.out).map_err(lua_err)?;
    Ok(Ret::from_iter([Value::String(s)]))
}

struct Encoder<'a> {
    cfg: &'a Config,
    out: Vec<u8>,
}

fn exception(v: &Value, reason: &str) -> LibError {
    LibError::Msg(format!("Cannot serialise {}: {reason}", num::value_typename(v)))
}

impl Encoder<'_> {
    /// `json_append_data`; `top` is the C code's Lua stack height, for its `lua_checkstack`.
    fn data(&mut self, v: &Value, depth: i32, top: usize) -> Result<(), LibError> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => self.number(v)?,
            Value::Boolean(b) => self.out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                // Past MAX_DEPTH_HANDLES levels the `mlua` handles each level holds (the
                // table being walked, its key and value) would run out.
                if depth > self.cfg.encode_max_depth
                    || top + 3 > MAXCSTACK
                    || depth > MAX_DEPTH_HANDLES
                {
                    return Err(LibError::Msg(format!(
                        "Cannot serialise, excessive nesting ({depth})"
                    )));
                }
                let len = self.array_length(t, v)?;
                if len > 0 {
                    self.out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            self.out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(lua_err)?;
                        self.data(&item, depth, top + 1)?;
                    }
                    self.out.push(b']');
                } else {
                    self.object(t, depth, top)?;
                }
            }
            _ => return Err(exception(v, "type not supported")),
        }
        Ok(())
    }

    fn object(&mut self, t: &Table, depth: i32, top: usize) -> Result<(), LibError> {
        self.out.push(b'{');
        let mut comma = false;
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            if comma {
                self.out.push(b',');
            }
            comma = true;
            match &k {
                Value::Integer(_) | Value::Number(_) => {
                    self.out.push(b'"');
                    self.number(&k)?;
                    self.out.extend_from_slice(b"\":");
                }
                Value::String(s) => {
                    self.string(&s.as_bytes());
                    self.out.push(b':');
                }
                _ => return Err(exception(&k, "table key must be a number or string")),
            }
            self.data(&v, depth, top + 2)?;
        }
        self.out.push(b'}');
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
        if c.sparse_ratio > 0
            && max > items.wrapping_mul(c.sparse_ratio)
            && max > c.sparse_safe
        {
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
                    let s: &[u8] = if n.is_nan() {
                        b"NaN"
                    } else if n < 0.0 {
                        b"-Infinity"
                    } else {
                        b"Infinity"
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
                0..=0x1f | 0x7f => {
                    self.out.extend_from_slice(format!("\\u{c:04x}").as_bytes())
                }
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }
}
