//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 ships it — `pack(...)`, `unpack(s)`,
//! `unpack_one(s [, offset])`, `unpack_limit(s, limit [, offset])`.
//!
//! Encoding follows the C code's choices: integral doubles (that fit an int64) as the smallest
//! integer form, other numbers as a float when that loses nothing, else a double; a table is an
//! array when its keys are exactly 1..n (the empty table included), else a map; tables nested
//! 16 deep are packed as nil. Decoding keeps the C code's Lua stack accounting, so inputs too
//! deep or too long fail with the same `stack overflow (…)` errors at the same sizes, and it never
//! allocates ahead of the bytes actually present.

use mlua::{Lua, MultiValue, Table, Value};

use super::{LibError, LibResult, MAXCSTACK, Ret, num, set_fns};

/// Tables nested this deep are packed as nil.
const MAX_NESTING: usize = 16;

/// Builds the `cmsgpack` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    set_fns(
        lua,
        &t,
        &[
            ("pack", MAXCSTACK / 2 + 1, pack),
            ("unpack", 1, |lua, a| unpack_full(lua, &a, 0, 0)),
            ("unpack_one", 2, unpack_one),
            ("unpack_limit", 3, unpack_limit),
        ],
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

fn lua_err(e: mlua::Error) -> LibError {
    LibError::Msg(e.to_string())
}

fn pack(lua: &Lua, args: MultiValue) -> LibResult {
    if args.is_empty() {
        return Err(LibError::Arg(0, "MessagePack pack needs input.".into()));
    }
    // The C code asks the Lua stack for one slot per argument, on top of the arguments.
    if 2 * args.len() > MAXCSTACK {
        return Err(LibError::Arg(
            0,
            "Too many arguments for MessagePack pack.".into(),
        ));
    }
    let mut out = Vec::new();
    for v in &args {
        encode(v, &mut out, 0).map_err(lua_err)?;
    }
    let s = lua.create_string(&out).map_err(lua_err)?;
    Ok(Ret::from_iter([Value::String(s)]))
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(*i as f64, out),
        Value::Number(n) => encode_number(*n, out),
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend([0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend((n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn encode_number(n: f64, out: &mut Vec<u8>) {
    // `(int64_t)n == n`, with the x86-64 conversion (out of range gives INT64_MIN).
    if !n.is_infinite() && num::d2i(n) as f64 == n {
        encode_int(num::d2i(n), out);
    } else if n == (n as f32) as f64 {
        out.push(0xca);
        out.extend((n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend(n.to_be_bytes());
    }
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend([0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend((n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend((n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend((n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend([0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend((n as i16).to_be_bytes());
    } else if n >= -2147483648 {
        out.push(0xd2);
        out.extend((n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend(n.to_be_bytes());
    }
}

/// `table_is_an_array`: every key a positive number equal to its C `int`, and the largest key
/// equal to the number of keys.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max) = (0i64, 0i64);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(false),
        };
        if n <= 0.0 || n.is_infinite() || num::d2int(n) as f64 != n {
            return Ok(false);
        }
        if n > max as f64 {
            max = n as i64;
        }
        count += 1;
    }
    Ok(max == count)
}

fn encode_table(t: &Table, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    if is_array(t)? {
        let n = t.raw_len();
        if n <= 15 {
            out.push(0x90 | n as u8);
        } else if n <= 0xffff {
            out.push(0xdc);
            out.extend((n as u16).to_be_bytes());
        } else {
            out.push(0xdd);
            out.extend((n as u32).to_be_bytes());
        }
        for j in 1..=n {
            encode(&t.raw_get::<Value>(j)?, out, level + 1)?;
        }
    } else {
        // Counted first and encoded on a second walk, as the C code does: holding every pair
        // would take an `mlua` handle each.
        let mut n = 0usize;
        for pair in t.clone().pairs::<Value, Value>() {
            pair?;
            n += 1;
        }
        if n <= 15 {
            out.push(0x80 | n as u8);
        } else if n <= 0xffff {
            out.push(0xde);
            out.extend((n as u16).to_be_bytes());
        } else {
            out.push(0xdf);
            out.extend((n as u32).to_be_bytes());
        }
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(&k, out, level + 1)?;
            encode(&v, out, level + 1)?;
        }
    }
    Ok(())
}

fn unpack_one(lua: &Lua, args: MultiValue) -> LibResult {
    let offset = num::opt_integer(&args, 2, 0)?;
    unpack_full(lua, &args, 1, offset)
}

fn unpack_limit(lua: &Lua, args: MultiValue) -> LibResult {
    let limit = num::check_integer(&args, 2)?;
    let offset = num::opt_integer(&args, 3, 0)?;
    unpack_full(lua, &args, limit, offset)
}

/// `mp_unpack_full`: up to `limit` objects (all when both are 0) from byte `offset`. Both are
/// compared as 64-bit numbers but printed as C `int`s (`%d`), as the C code does.
fn unpack_full(lua: &Lua, args: &MultiValue, limit: i64, offset: i64) -> LibResult {
    let s = num::check_bytes(args, 1)?;
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(LibError::Msg(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32,
            s.len() as i32
        )));
    }
    if offset as u64 > s.len() as u64 {
        return Err(LibError::Msg(format!(
            "Start offset {} greater than input length {}.",
            offset as i32,
            s.len() as i32
        )));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut d = Decoder {
        lua,
        s: &s,
        pos: offset as usize,
        top: 1,
    };
    // Results go straight into a table (see `Ret::Spilled`), after the offset when one is due.
    let out = lua.create_table().map_err(lua_err)?;
    let first = if decode_all { 1 } else { 2 };
    let mut cnt = 0usize;
    while d.pos < s.len() && (cnt as i64) < limit {
        let v = d.value()?;
        d.top += 1;
        out.raw_set(first + cnt, v).map_err(lua_err)?;
        cnt += 1;
    }
    if !decode_all {
        if d.top + 1 > MAXCSTACK {
            return Err(LibError::Msg(
                "stack overflow (in function mp_unpack_full)".into(),
            ));
        }
        let next = if d.pos == s.len() { -1 } else { d.pos as i32 };
        out.raw_set(1, next).map_err(lua_err)?;
    }
    Ok(Ret::Spilled(out, cnt + first - 1))
}

/// A cursor over the input, with the C code's count of Lua stack slots in use (`top`).
struct Decoder<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    pos: usize,
    top: usize,
}

/// The C decoder's complaint when the Lua stack runs out outside an array.
const TOO_MANY: &str = "too many return values at once; use unpack_one or unpack_limit instead.";

fn eof() -> LibError {
    LibError::Msg("Missing bytes in input.".into())
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LibError> {
        if self.s.len() - self.pos < n {
            return Err(eof());
        }
        let b = &self.s[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    fn uint(&mut self, n: usize) -> Result<u64, LibError> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
    }

    fn checkstack(&self, what: &str) -> Result<(), LibError> {
        if self.top + 1 > MAXCSTACK {
            return Err(LibError::Msg(format!("stack overflow ({what})")));
        }
        Ok(())
    }

    /// `mp_decode_to_lua_type`: one object. Iterative, with the open containers on a heap
    /// stack, so no input can overflow the thread's stack; the open tables and pending map
    /// keys sit in two Lua tables (by depth) rather than in `mlua` handles, which run out near
    /// 8000. `top` follows the C code's Lua stack, so nesting ends where Redis' ends.
    fn value(&mut self) -> Result<Value, LibError> {
        let mut stack: Vec<Frame> = Vec::new();
        let tabs = self.lua.create_table().map_err(lua_err)?;
        let keys = self.lua.create_table().map_err(lua_err)?;
        // A finished value for the innermost open container (or the caller).
        let mut done: Option<Value> = None;
        loop {
            if let Some(v) = done.take() {
                let depth = stack.len();
                match stack.last_mut() {
                    None => return Ok(v),
                    Some(Frame::Arr { i, .. }) => {
                        *i += 1;
                        let t: Table = tabs.raw_get(depth).map_err(lua_err)?;
                        t.raw_set(*i, v).map_err(lua_err)?;
                        self.top -= 1;
                    }
                    Some(Frame::Map { i, has_key, .. }) => {
                        if !*has_key {
                            keys.raw_set(depth, v).map_err(lua_err)?;
                            *has_key = true;
                            self.top += 1;
                        } else {
                            let k: Value = keys.raw_get(depth).map_err(lua_err)?;
                            match &k {
                                Value::Nil => {
                                    return Err(LibError::Raw("table index is nil".into()));
                                }
                                Value::Number(f) if f.is_nan() => {
                                    return Err(LibError::Raw("table index is NaN".into()));
                                }
                                _ => {}
                            }
                            let t: Table = tabs.raw_get(depth).map_err(lua_err)?;
                            t.raw_set(k, v).map_err(lua_err)?;
                            keys.raw_set(depth, Value::Nil).map_err(lua_err)?;
                            *has_key = false;
                            *i += 1;
                            self.top -= 1;
                        }
                    }
                }
            }
            let depth = stack.len();
            let complete = match stack.last() {
                None => false,
                Some(Frame::Arr { n, i }) => i == n,
                Some(Frame::Map { n, i, has_key }) => i == n && !has_key,
            };
            if complete {
                stack.pop();
                let t: Table = tabs.raw_get(depth).map_err(lua_err)?;
                tabs.raw_set(depth, Value::Nil).map_err(lua_err)?;
                self.top -= 1;
                done = Some(Value::Table(t));
                continue;
            }
            if let Some(Frame::Arr { .. }) = stack.last() {
                // The element's index goes on the Lua stack first.
                self.checkstack("in function mp_decode_to_lua_array")?;
                self.top += 1;
            }
            self.checkstack(TOO_MANY)?;
            match self.item()? {
                Item::Value(v) => done = Some(v),
                Item::Array(n) => {
                    let t = self.lua.create_table().map_err(lua_err)?;
                    tabs.raw_set(depth + 1, t).map_err(lua_err)?;
                    self.top += 1;
                    stack.push(Frame::Arr { n, i: 0 });
                }
                Item::Map(n) => {
                    let t = self.lua.create_table().map_err(lua_err)?;
                    tabs.raw_set(depth + 1, t).map_err(lua_err)?;
                    self.top += 1;
                    stack.push(Frame::Map {
                        n,
                        i: 0,
                        has_key: false,
                    });
                }
            }
        }
    }

    /// A scalar, or the header of a container.
    fn item(&mut self) -> Result<Item, LibError> {
        let c = self.take(1)?[0];
        let num = |n: f64| Ok(Item::Value(Value::Number(n)));
        match c {
            0xcc => num(self.uint(1)? as f64),
            0xcd => num(self.uint(2)? as f64),
            0xce => num(self.uint(4)? as f64),
            // Pushed as a signed `lua_Integer` by the C code: above 2^63 it turns negative.
            0xcf => num(self.uint(8)? as i64 as f64),
            0xd0 => num(self.uint(1)? as u8 as i8 as f64),
            0xd1 => num(self.uint(2)? as u16 as i16 as f64),
            0xd2 => num(self.uint(4)? as u32 as i32 as f64),
            0xd3 => num(self.uint(8)? as i64 as f64),
            0xc0 => Ok(Item::Value(Value::Nil)),
            0xc3 => Ok(Item::Value(Value::Boolean(true))),
            0xc2 => Ok(Item::Value(Value::Boolean(false))),
            0xca => num(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => num(f64::from_bits(self.uint(8)?)),
            0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(n)
            }
            0xda => {
                let n = self.uint(2)? as usize;
                self.string(n)
            }
            0xdb => {
                let n = self.uint(4)? as usize;
                self.string(n)
            }
            0xdc => Ok(Item::Array(self.uint(2)? as usize)),
            0xdd => Ok(Item::Array(self.uint(4)? as usize)),
            0xde => Ok(Item::Map(self.uint(2)? as usize)),
            0xdf => Ok(Item::Map(self.uint(4)? as usize)),
            0x00..=0x7f => num(c as f64),
            0xe0..=0xff => num(c as i8 as f64),
            0xa0..=0xbf => self.string((c & 0x1f) as usize),
            0x90..=0x9f => Ok(Item::Array((c & 0x0f) as usize)),
            0x80..=0x8f => Ok(Item::Map((c & 0x0f) as usize)),
            _ => Err(LibError::Msg("Bad data format in input.".into())),
        }
    }

    fn string(&mut self, n: usize) -> Result<Item, LibError> {
        let b = self.take(n)?;
        self.lua
            .create_string(b)
            .map(|s| Item::Value(Value::String(s)))
            .map_err(lua_err)
    }
}

/// What one header byte (and its length bytes) announce.
enum Item {
    Value(Value),
    Array(usize),
    Map(usize),
}

/// A container being filled (its table in `tabs`, a map's pending key in `keys`).
enum Frame {
    Arr { n: usize, i: usize },
    Map { n: usize, i: usize, has_key: bool },
}

#[cfg(test)]
mod tests {
    use super::encode_number;

    #[test]
    fn numbers_take_the_c_codes_forms() {
        // Expected bytes captured from redis-server 7.0.15 (`cmsgpack.pack`).
        let cases: &[(f64, &[u8])] = &[
            (1.0, &[0x01]),
            (-32.0, &[0xe0]),
            (-33.0, &[0xd0, 0xdf]),
            (255.0, &[0xcc, 0xff]),
            (65536.0, &[0xce, 0, 1, 0, 0]),
            (-0.0, &[0x00]),
            (1.5, &[0xca, 0x3f, 0xc0, 0, 0]),
            (0.1, &[0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]),
            (2f64.powi(63), &[0xca, 0x5f, 0, 0, 0]),
            (f64::INFINITY, &[0xca, 0x7f, 0x80, 0, 0]),
        ];
        for (i, (n, want)) in cases.iter().enumerate() {
            let mut out = Vec::new();
            encode_number(*n, &mut out);
            assert_eq!(out, *want, "#{i}");
        }
    }
}
