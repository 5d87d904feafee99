//! `bit`: LuaBitOp 1.0.2 — 32-bit bit operations on Lua's doubles.
//!
//! Every argument is normalised as LuaBitOp does: add 2^52+2^51 and keep the low 32 bits of
//! the double's representation, which wraps any number (rounding to nearest, ties to even)
//! into 32 bits. Results come back as signed 32-bit numbers.

use mlua::{Lua, MultiValue, Table, Value};

use super::{ALL, LibError, LibResult, Ret, num, set_fns};

/// Builds the `bit` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    set_fns(
        lua,
        &t,
        &[
            ("tobit", 1, |_, a| unary(&a, |b| b)),
            ("bnot", 1, |_, a| unary(&a, |b| !b)),
            ("bswap", 1, |_, a| unary(&a, u32::swap_bytes)),
            ("band", ALL, |_, a| fold(&a, |x, y| x & y)),
            ("bor", ALL, |_, a| fold(&a, |x, y| x | y)),
            ("bxor", ALL, |_, a| fold(&a, |x, y| x ^ y)),
            ("lshift", 2, |_, a| shift(&a, |b, n| b << n)),
            ("rshift", 2, |_, a| shift(&a, |b, n| b >> n)),
            ("arshift", 2, |_, a| {
                shift(&a, |b, n| ((b as i32) >> n) as u32)
            }),
            ("rol", 2, |_, a| shift(&a, u32::rotate_left)),
            ("ror", 2, |_, a| shift(&a, u32::rotate_right)),
            ("tohex", 2, tohex),
        ],
    )?;
    Ok(t)
}

/// LuaBitOp's `barg`: argument `i` wrapped into 32 bits.
fn barg(args: &MultiValue, i: usize) -> Result<u32, LibError> {
    let b = wrap(num::arg_number(args, i).unwrap_or(0.0));
    // Like the C code, a non-number is only noticed when it would wrap to zero, which is always.
    if b == 0 && num::arg_number(args, i).is_none() {
        return Err(num::type_error(args, i, "number"));
    }
    Ok(b)
}

/// A double into 32 bits the LuaBitOp way: its low word after adding 2^52+2^51.
fn wrap(n: f64) -> u32 {
    (n + 6755399441055744.0).to_bits() as u32
}

fn ret(b: u32) -> LibResult {
    Ok(Ret::from_iter([Value::Number(b as i32 as f64)]))
}

fn unary(args: &MultiValue, op: fn(u32) -> u32) -> LibResult {
    ret(op(barg(args, 1)?))
}

/// `band`/`bor`/`bxor`: the first argument, then the others from the last down, as C does
/// (which decides the argument an error names).
fn fold(args: &MultiValue, op: fn(u32, u32) -> u32) -> LibResult {
    let mut b = barg(args, 1)?;
    for i in (2..=args.len()).rev() {
        b = op(b, barg(args, i)?);
    }
    ret(b)
}

fn shift(args: &MultiValue, op: fn(u32, u32) -> u32) -> LibResult {
    let b = barg(args, 1)?;
    let n = barg(args, 2)? & 31;
    ret(op(b, n))
}

/// `tohex(x [, n])`: `n` digits (default 8, at most 8), upper case when `n` is negative.
fn tohex(lua: &Lua, args: MultiValue) -> LibResult {
    let mut b = barg(&args, 1)?;
    let mut n = if args.len() >= 2 {
        barg(&args, 2)? as i32
    } else {
        8
    };
    // Redis' build turns -2^31 into 8 lower-case digits (the C negation overflows there).
    if n == i32::MIN {
        n = 8;
    }
    let digits: &[u8; 16] = if n < 0 {
        n = -n;
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let n = n.min(8) as usize;
    let mut buf = vec![0u8; n];
    for c in buf.iter_mut().rev() {
        *c = digits[(b & 15) as usize];
        b >>= 4;
    }
    let s = lua
        .create_string(&buf)
        .map_err(|e| LibError::Msg(e.to_string()))?;
    Ok(Ret::from_iter([Value::String(s)]))
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_doubles_as_luabitop() {
        // Expected values captured from redis-server 7.0.15 (`bit.tobit`).
        let cases: &[(f64, i32)] = &[
            (1.0, 1),
            (-1.0, -1),
            (2f64.powi(31), i32::MIN),
            (2f64.powi(32) + 1.0, 1),
            (1.5, 2),
            (2.5, 2),
            (-1.5, -2),
            (1e300, -2013235812),
            (f64::INFINITY, 0),
        ];
        for (i, (n, want)) in cases.iter().enumerate() {
            assert_eq!(wrap(*n) as i32, *want, "#{i}");
        }
    }
}
