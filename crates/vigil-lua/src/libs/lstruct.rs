//! `struct`: Roberto Ierusalimschy's lua-struct as Redis 7.0 ships it — `pack`, `unpack` and
//! `size` over a format of `>` `<` `!n` (byte order, alignment), `x` (pad), `b B h H l L T`,
//! `iN IN` (integers of N ≤ 32 bytes), `f d`, `s` (zero-terminated) and `cN` (N chars; `c0` is
//! "the whole string" when packing and "the previous number" when unpacking).
//!
//! Sizes are those of x86-64 Linux (short 2, int 4, long and size_t 8, alignment cap 8); the
//! default is little-endian with no alignment.

use mlua::{Lua, MultiValue, Table, Value};

use super::{ALL, LibError, LibResult, MAXCSTACK, Ret, num, set_fns};

/// Widest integer `i`/`I` accept.
const MAXINTSIZE: usize = 32;
/// What `!` alone sets: the alignment of a double.
const MAXALIGN: usize = 8;

/// Builds the `struct` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    set_fns(
        lua,
        &t,
        &[
            ("pack", ALL, pack),
            ("unpack", 3, unpack),
            ("size", 1, size),
        ],
    )?;
    Ok(t)
}

/// The byte order and alignment a format has set so far.
struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header {
            little: true,
            align: 1,
        }
    }
}

/// A cursor over the format string.
struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        // The format is a C string: it ends at the first NUL.
        let c = *self.s.get(self.i).filter(|&&c| c != 0)?;
        self.i += 1;
        Some(c)
    }

    /// `getnum`: the decimal number that follows, or `df`.
    fn num(&mut self, df: usize) -> Result<usize, LibError> {
        if !self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i32;
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(LibError::Msg("integral size overflow".into()));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }
}

/// `optsize`: the size of option `opt`, reading its count.
fn optsize(opt: u8, f: &mut Fmt) -> Result<usize, LibError> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => f.num(1)?,
        b'i' | b'I' => {
            let sz = f.num(4)?;
            if sz > MAXINTSIZE {
                return Err(LibError::Msg(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                )));
            }
            sz
        }
        _ => 0,
    })
}

/// `gettoalign`: padding before an item of `size` at offset `len`.
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

/// `controloptions`: spaces, byte order, alignment; anything else is an invalid option.
fn control(opt: u8, f: &mut Fmt, h: &mut Header) -> Result<(), LibError> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = f.num(MAXALIGN)?;
            if !(a > 0 && a & (a - 1) == 0) {
                return Err(LibError::Msg(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
        }
        _ => {
            return Err(LibError::Arg(
                1,
                format!("invalid format option '{}'", opt as char),
            ));
        }
    }
    Ok(())
}

/// A double to `unsigned long` as gcc's x86-64 code converts it (`(long)n` when negative).
fn to_ulong(n: f64) -> u64 {
    // Negative, below 2^63, or NaN: the signed conversion.
    if n < 9223372036854775808.0 || n.is_nan() {
        num::d2i(n) as u64
    } else {
        (num::d2i(n - 9223372036854775808.0) as u64) ^ (1 << 63)
    }
}

fn pack(lua: &Lua, mut args: MultiValue) -> LibResult {
    let fmt = num::check_bytes(&args, 1)?;
    // The C code pushes a nil after the arguments: a missing one just past them is "nil".
    args.push_back(Value::Nil);
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = optsize(opt, &mut f)?;
        let pad = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let mut v = to_ulong(num::check_number(&args, arg)?);
                arg += 1;
                let mut buf = [0u8; MAXINTSIZE];
                for b in buf[..size].iter_mut() {
                    *b = v as u8;
                    v >>= 8;
                }
                if !h.little {
                    buf[..size].reverse();
                }
                out.extend_from_slice(&buf[..size]);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = num::check_number(&args, arg)? as f32;
                arg += 1;
                out.extend(if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'd' => {
                let v = num::check_number(&args, arg)?;
                arg += 1;
                out.extend(if h.little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = num::check_bytes(&args, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C code names the argument after the string's: keep that.
                    return Err(LibError::Arg(arg as i32, "string too short".into()));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => control(opt, &mut f, &mut h)?,
        }
    }
    let s = lua
        .create_string(&out)
        .map_err(|e| LibError::Msg(e.to_string()))?;
    Ok(Ret::from_iter([Value::String(s)]))
}

/// `getinteger`: `size` bytes as an integer, sign-extended for signed options.
fn getinteger(b: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut push = |c: u8| l = (l << 8) | c as u64;
    if little {
        b.iter().rev().for_each(|&c| push(c));
    } else {
        b.iter().for_each(|&c| push(c));
    }
    if !signed {
        return l as f64;
    }
    // The C shift count is taken mod 64 by the CPU for the 9..32-byte sizes.
    let mask = !0u64 << ((b.len() * 8 - 1) & 63);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: MultiValue) -> LibResult {
    let fmt = num::check_bytes(&args, 1)?;
    let data = num::check_bytes(&args, 2)?;
    let ld = data.len();
    // The offset is a `size_t`: 0 is refused, a negative one wraps and is "too short" later.
    let pos1 = num::opt_integer(&args, 3, 1)? as u64;
    if pos1 == 0 {
        return Err(LibError::Arg(3, "offset must be 1 or greater".into()));
    }
    let mut pos = (pos1 - 1) as usize;
    let too_short = || LibError::Arg(2, "data string too short".into());
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    // Results go straight into a table (see `Ret::Spilled`); `n` counts them.
    let out = lua
        .create_table()
        .map_err(|e| LibError::Msg(e.to_string()))?;
    let mut n = 0usize;
    let push = |n: &mut usize, v: Value| {
        *n += 1;
        out.raw_set(*n, v).map_err(|e| LibError::Msg(e.to_string()))
    };
    let nargs = args.len();
    let string = |b: &[u8]| {
        lua.create_string(b)
            .map(Value::String)
            .map_err(|e| LibError::Msg(e.to_string()))
    };
    while let Some(opt) = f.next() {
        let mut size = optsize(opt, &mut f)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(too_short());
        }
        if nargs + n + 2 > MAXCSTACK {
            return Err(LibError::Msg("stack overflow (too many results)".into()));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                let v = getinteger(&data[pos..pos + size], h.little, signed);
                push(&mut n, Value::Number(v))?;
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().map_err(|_| too_short())?;
                let v = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                push(&mut n, Value::Number(v as f64))?;
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().map_err(|_| too_short())?;
                let v = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                push(&mut n, Value::Number(v))?;
            }
            b'c' => {
                if size == 0 {
                    let last: Value = if n == 0 {
                        Value::Nil
                    } else {
                        out.raw_get(n).map_err(|e| LibError::Msg(e.to_string()))?
                    };
                    let prev = num::to_number(&last)
                        .ok_or_else(|| LibError::Msg("format 'c0' needs a previous size".into()))?;
                    size = to_ulong(prev) as usize;
                    n -= 1;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(too_short());
                    }
                }
                push(&mut n, string(&data[pos..pos + size])?)?;
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(LibError::Msg("unfinished string in data".into()));
                };
                push(&mut n, string(&data[pos..pos + e])?)?;
                size = e + 1;
            }
            _ => control(opt, &mut f, &mut h)?,
        }
        pos += size;
    }
    push(&mut n, Value::Number(pos.wrapping_add(1) as i64 as f64))?;
    Ok(Ret::Spilled(out, n))
}

fn size(_: &Lua, args: MultiValue) -> LibResult {
    let fmt = num::check_bytes(&args, 1)?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = f.next() {
        let size = optsize(opt, &mut f)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(LibError::Arg(1, "option 's' has no fixed size".into()));
        } else if opt == b'c' && size == 0 {
            return Err(LibError::Arg(1, "option 'c0' has no fixed size".into()));
        }
        if !opt.is_ascii_alphanumeric() {
            control(opt, &mut f, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(Ret::from_iter([Value::Number(pos as f64)]))
}

#[cfg(test)]
mod tests {
    use super::{getinteger, to_ulong};

    #[test]
    fn integers_convert_as_the_c_code() {
        assert_eq!(getinteger(&[0xff], true, true), -1.0);
        assert_eq!(getinteger(&[0xff], true, false), 255.0);
        assert_eq!(getinteger(&[1, 2], false, false), 258.0);
        // 16 bytes: the sign mask shift wraps mod 64, as on x86-64.
        assert_eq!(getinteger(&[0xff; 16], true, true), -1.0);
        assert_eq!(to_ulong(-1.0), u64::MAX);
        assert_eq!(to_ulong(2f64.powi(64)), 0);
        assert_eq!(to_ulong(f64::NAN), 1 << 63);
        assert_eq!(
            to_ulong(2f64.powi(63) + 2f64.powi(62)),
            0xc000_0000_0000_0000
        );
    }
}
