//! `cjson.decode`: JSON text to Lua values, token by token as lua-cjson reads it (the input is
//! a C string: a NUL byte ends it).

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{Config, MAXCSTACK, lua_err};
use crate::libs::{LibError, LibResult, Ret, num};

/// `json_decode`: exactly one string argument.
pub(super) fn decode(lua: &Lua, a: &MultiValue, cfg: &Config) -> LibResult {
    if a.len() != 1 {
        return Err(LibError::Arg(1, "expected 1 argument".into()));
    }
    let data = num::check_bytes(a, 1)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(LibError::Msg(
            "JSON parser does not support UTF-16 or UTF-32".into(),
        ));
    }
    let mut p = Parser {
        lua,
        cfg,
        s: &data,
        pos: 0,
        depth: 0,
    };
    let t = p.next_token();
    let v = p.value(t, 1)?;
    let t = p.next_token();
    if !matches!(t.kind, Kind::End) {
        return Err(p.parse_error("the end", &t));
    }
    Ok(Ret::from_iter([v]))
}

enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

struct Token {
    kind: Kind,
    /// 0-based offset, shown 1-based in errors.
    index: usize,
}

struct Parser<'a> {
    lua: &'a Lua,
    cfg: &'a Config,
    s: &'a [u8],
    pos: usize,
    depth: i32,
}

impl Parser<'_> {
    /// The byte at `i`, 0 past the end (the C string's terminator).
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn starts(&self, w: &[u8]) -> bool {
        self.s[self.pos.min(self.s.len())..].starts_with(w)
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            0 => {
                return Token {
                    kind: Kind::End,
                    index,
                };
            }
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b':' => Some(Kind::Colon),
            b',' => Some(Kind::Comma),
            _ => None,
        };
        if let Some(kind) = single {
            self.pos += 1;
            return Token { kind, index };
        }
        let error = |e| Token {
            kind: Kind::Error(e),
            index,
        };
        if !matches!(
            c,
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-' | b'0'..=b'9'
        ) {
            return error("invalid token");
        }
        if c == b'"' {
            return self.string_token();
        }
        if c == b'-' || c.is_ascii_digit() {
            if self.cfg.decode_invalid_numbers == 0 && self.invalid_number() {
                return error("invalid number");
            }
            return self.number_token();
        }
        for (w, kind) in [
            (&b"true"[..], Kind::Boolean(true)),
            (b"false", Kind::Boolean(false)),
            (b"null", Kind::Null),
        ] {
            if self.starts(w) {
                self.pos += w.len();
                return Token { kind, index };
            }
        }
        if self.cfg.decode_invalid_numbers != 0 && self.invalid_number() {
            return self.number_token();
        }
        error("invalid token")
    }

    /// `json_is_invalid_number`: what strict JSON rejects but `strtod` reads.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let w: Vec<u8> = (0..3)
            .map(|i| self.at(p + i).to_ascii_lowercase())
            .collect();
        w == b"inf" || w == b"nan"
    }

    fn number_token(&mut self) -> Token {
        let index = self.pos;
        let end = self.s[self.pos..]
            .iter()
            .position(|&b| b == 0)
            .map_or(self.s.len(), |n| self.pos + n);
        match num::strtod(&self.s[self.pos..end]) {
            Some((n, used)) if used > 0 => {
                self.pos += used;
                Token {
                    kind: Kind::Number(n),
                    index,
                }
            }
            _ => Token {
                kind: Kind::Error("invalid number"),
                index,
            },
        }
    }

    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            let err = |p: &Self, e| Token {
                kind: Kind::Error(e),
                index: p.pos,
            };
            if c == 0 {
                return err(self, "unexpected end of string");
            }
            if c == b'\\' {
                let t = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        if self.unicode_escape(&mut out) {
                            continue;
                        }
                        return err(self, "invalid unicode escape code");
                    }
                    _ => return err(self, "invalid escape code"),
                };
                out.push(t);
                self.pos += 2;
                continue;
            }
            out.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        Token {
            kind: Kind::Str(out),
            index,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |a, i| {
            Some(a * 16 + (self.at(at + i) as char).to_digit(16)?)
        })
    }

    /// `json_append_unicode_escape` at `\u`: a code unit or a surrogate pair, as UTF-8.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut buf = [0u8; 4];
        // Every value here is below 0x110000 and not a lone surrogate... except a low
        // surrogate alone, which C encodes as 3 bytes all the same.
        match char::from_u32(cp) {
            Some(ch) => out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes()),
            None => out.extend([
                0xE0 | (cp >> 12) as u8,
                0x80 | ((cp >> 6) & 0x3F) as u8,
                0x80 | (cp & 0x3F) as u8,
            ]),
        }
        self.pos += len;
        true
    }

    fn parse_error(&self, expected: &str, t: &Token) -> LibError {
        let found = match &t.kind {
            Kind::Error(e) => e,
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str(_) => "T_STRING",
            Kind::Number(_) => "T_NUMBER",
            Kind::Boolean(_) => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
        };
        LibError::Msg(format!(
            "Expected {expected} but found {found} at character {}",
            t.index + 1
        ))
    }

    /// `json_decode_descend`: one level deeper, within the depth limit and the Lua stack.
    fn descend(&mut self, top: usize, slots: usize) -> Result<(), LibError> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && top + slots <= MAXCSTACK {
            return Ok(());
        }
        Err(LibError::Msg(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.pos
        )))
    }

    /// `json_process_value` and the object/array contexts, iteratively: open containers live
    /// on a heap stack, so no input can overflow the thread's stack. `top` tracks the C code's
    /// Lua stack height (for its `lua_checkstack`).
    fn value(&mut self, first: Token, mut top: usize) -> Result<Value, LibError> {
        let mut stack: Vec<Open> = Vec::new();
        // The open tables, by depth: in a Lua table rather than in `mlua` handles, which run
        // out near 8000.
        let tabs = self.table()?;
        let mut t = first;
        'outer: loop {
            // Parse one value from token `t`, or open a container.
            let mut v = match t.kind {
                Kind::Str(s) => self
                    .lua
                    .create_string(&s)
                    .map(Value::String)
                    .map_err(lua_err)?,
                Kind::Number(n) => Value::Number(n),
                Kind::Boolean(b) => Value::Boolean(b),
                Kind::Null => Value::LightUserData(LightUserData(std::ptr::null_mut())),
                Kind::ObjBegin | Kind::ArrBegin => {
                    let obj = matches!(t.kind, Kind::ObjBegin);
                    self.descend(top, if obj { 3 } else { 2 })?;
                    let tbl = self.table()?;
                    let close = self.next_token();
                    let empty = matches!(
                        (&close.kind, obj),
                        (Kind::ObjEnd, true) | (Kind::ArrEnd, false)
                    );
                    if empty {
                        self.depth -= 1;
                        Value::Table(tbl)
                    } else if obj {
                        let key = self.object_key(close)?;
                        tabs.raw_set(stack.len() + 1, tbl).map_err(lua_err)?;
                        stack.push(Open::Obj { key, top });
                        top += 2;
                        t = self.next_token();
                        continue;
                    } else {
                        tabs.raw_set(stack.len() + 1, tbl).map_err(lua_err)?;
                        stack.push(Open::Arr { i: 0, top });
                        top += 1;
                        t = close;
                        continue;
                    }
                }
                _ => return Err(self.parse_error("value", &t)),
            };
            // Hand finished values to their containers, closing those that end.
            loop {
                let depth = stack.len();
                let Some(open) = stack.last_mut() else {
                    return Ok(v);
                };
                let tbl: Table = tabs.raw_get(depth).map_err(lua_err)?;
                match open {
                    Open::Arr { i, .. } => {
                        *i += 1;
                        tbl.raw_set(*i, v).map_err(lua_err)?;
                        let e = self.next_token();
                        match e.kind {
                            Kind::ArrEnd => {}
                            Kind::Comma => {
                                t = self.next_token();
                                continue 'outer;
                            }
                            _ => return Err(self.parse_error("comma or array end", &e)),
                        }
                    }
                    Open::Obj { key, .. } => {
                        let k = self.lua.create_string(&*key).map_err(lua_err)?;
                        tbl.raw_set(k, v).map_err(lua_err)?;
                        let e = self.next_token();
                        match e.kind {
                            Kind::ObjEnd => {}
                            Kind::Comma => {
                                let kt = self.next_token();
                                *key = self.object_key(kt)?;
                                t = self.next_token();
                                continue 'outer;
                            }
                            _ => return Err(self.parse_error("comma or object end", &e)),
                        }
                    }
                }
                // The innermost container ended: it is the next finished value.
                let (Some(Open::Arr { top: ptop, .. }) | Some(Open::Obj { top: ptop, .. })) =
                    stack.pop()
                else {
                    unreachable!("a container was open");
                };
                tabs.raw_set(depth, Value::Nil).map_err(lua_err)?;
                top = ptop;
                self.depth -= 1;
                v = Value::Table(tbl);
            }
        }
    }

    /// An object's key (a string token) and its colon; the key stays Rust bytes while its
    /// value is parsed, so nesting costs no `mlua` handle per level.
    fn object_key(&mut self, t: Token) -> Result<Vec<u8>, LibError> {
        let Kind::Str(key) = t.kind else {
            return Err(self.parse_error("object key string", &t));
        };
        let c = self.next_token();
        if !matches!(c.kind, Kind::Colon) {
            return Err(self.parse_error("colon", &c));
        }
        Ok(key)
    }

    fn table(&self) -> Result<Table, LibError> {
        self.lua.create_table().map_err(lua_err)
    }
}

/// A container being filled, with the Lua stack height it was opened at.
enum Open {
    Arr { i: usize, top: usize },
    Obj { key: Vec<u8>, top: usize },
}
