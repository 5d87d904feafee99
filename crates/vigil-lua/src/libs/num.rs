//! Argument checks and number conversions as Lua 5.1's C API does them (`lua_tonumber`,
//! `luaL_checknumber`, `luaL_typename`, `%.14g`), shared by the libraries.

use mlua::{MultiValue, Value};

use super::LibError;

/// `luaL_typename`: the type of argument `i` (1-based), `no value` past the end.
pub(crate) fn typename(args: &MultiValue, i: usize) -> &'static str {
    match args.get(i - 1) {
        None => "no value",
        Some(v) => value_typename(v),
    }
}

/// Lua's name for a value's type (light userdata is plain `userdata`).
pub(crate) fn value_typename(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// `luaL_typerror`: `bad argument #i to 'f' (<expected> expected, got <type>)`.
pub(crate) fn type_error(args: &MultiValue, i: usize, expected: &str) -> LibError {
    LibError::Arg(
        i as i32,
        format!("{expected} expected, got {}", typename(args, i)),
    )
}

/// `lua_tonumber` on argument `i`: numbers, and strings Lua would convert.
pub(crate) fn arg_number(args: &MultiValue, i: usize) -> Option<f64> {
    args.get(i - 1).and_then(to_number)
}

/// `lua_tonumber` on a value.
pub(crate) fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => str2d(&s.as_bytes()),
        _ => None,
    }
}

/// `luaL_checknumber`.
pub(crate) fn check_number(args: &MultiValue, i: usize) -> Result<f64, LibError> {
    arg_number(args, i).ok_or_else(|| type_error(args, i, "number"))
}

/// `luaL_checkinteger`: the number truncated as the C cast on x86-64 does.
pub(crate) fn check_integer(args: &MultiValue, i: usize) -> Result<i64, LibError> {
    check_number(args, i).map(d2i)
}

/// `luaL_optinteger`.
pub(crate) fn opt_integer(args: &MultiValue, i: usize, def: i64) -> Result<i64, LibError> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => Ok(def),
        Some(_) => check_integer(args, i),
    }
}

/// `luaL_checklstring`: strings, and numbers formatted as Lua formats them.
pub(crate) fn check_bytes(args: &MultiValue, i: usize) -> Result<Vec<u8>, LibError> {
    match args.get(i - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(n)) => Ok(fmt_g(*n as f64, 14).into_bytes()),
        Some(Value::Number(n)) => Ok(fmt_g(*n, 14).into_bytes()),
        _ => Err(type_error(args, i, "string")),
    }
}

/// A double to `lua_Integer` as `cvttsd2si` does: out of range (and NaN) gives `i64::MIN`.
pub(crate) fn d2i(d: f64) -> i64 {
    if d.is_nan() || !(-9223372036854775808.0..9223372036854775808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// A double to C `int` as `cvttsd2si` (32-bit) does: out of range (and NaN) gives `i32::MIN`.
pub(crate) fn d2int(d: f64) -> i32 {
    if d.is_nan() || d >= 2147483648.0 || d <= -2147483649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// `luaO_str2d`: `strtod` (decimal, hex, inf, nan) up to the first NUL, then only spaces.
pub(crate) fn str2d(s: &[u8]) -> Option<f64> {
    let s = match s.iter().position(|&b| b == 0) {
        Some(n) => &s[..n],
        None => s,
    };
    let (n, used) = strtod(s)?;
    if s[used..].iter().all(|b| is_space(*b)) {
        Some(n)
    } else {
        None
    }
}

/// C `isspace` in the C locale.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// glibc `strtod`: the number at the start of `s` (after spaces) and the bytes it used.
pub(crate) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let start = i;
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let lower: Vec<u8> = rest
        .iter()
        .take(8)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if lower.starts_with(b"infinity") {
        return Some((sign * f64::INFINITY, i + 8));
    }
    if lower.starts_with(b"inf") {
        return Some((sign * f64::INFINITY, i + 3));
    }
    if lower.starts_with(b"nan") {
        let mut j = i + 3;
        if s.get(j) == Some(&b'(') {
            let mut k = j + 1;
            while k < s.len() && (s[k].is_ascii_alphanumeric() || s[k] == b'_') {
                k += 1;
            }
            if s.get(k) == Some(&b')') {
                j = k + 1;
            }
        }
        return Some((sign * f64::NAN, j));
    }
    if lower.starts_with(b"0x") {
        if let Some((v, used)) = hex_float(&rest[2..]) {
            return Some((sign * v, i + 2 + used));
        }
        // "0x" with no hex digits: strtod reads just the "0".
        return Some((sign * 0.0, i + 1));
    }
    let mut j = i;
    let digits = |j: &mut usize| {
        let b = *j;
        while *j < s.len() && s[*j].is_ascii_digit() {
            *j += 1;
        }
        *j - b
    };
    let mut nd = digits(&mut j);
    if s.get(j) == Some(&b'.') {
        j += 1;
        nd += digits(&mut j);
    }
    if nd == 0 {
        return None;
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if digits(&mut k) > 0 {
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).ok()?;
    // Rust's parser wants a digit before '.' or the exponent; both forms are equivalent.
    let v: f64 = text.parse().or_else(|_| fix_float(text).parse()).ok()?;
    Some((v, j))
}

/// Makes `.5`/`5.`/`-.5e3` acceptable to Rust's parser without changing the value.
fn fix_float(t: &str) -> String {
    let t = t.replace("-.", "-0.").replace("+.", "+0.");
    let t = if t.starts_with('.') {
        format!("0{t}")
    } else {
        t
    };
    t.replace(".e", ".0e").replace(".E", ".0E")
}

/// The hexadecimal mantissa (and `p` exponent) after `0x`; `None` without a hex digit.
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut v = 0.0f64;
    let mut i = 0;
    let mut any = false;
    let mut scale = 0i32;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        v = v * 16.0 + (s[i] as char).to_digit(16)? as f64;
        any = true;
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        let mut j = i + 1;
        while j < s.len() && s[j].is_ascii_hexdigit() {
            v = v * 16.0 + (s[j] as char).to_digit(16)? as f64;
            scale -= 4;
            any = true;
            j += 1;
        }
        if any {
            i = j;
        }
    }
    if !any {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut k = i + 1;
        let neg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        let b = k;
        let mut e = 0i32;
        while k < s.len() && s[k].is_ascii_digit() {
            e = e.saturating_mul(10).saturating_add((s[k] - b'0') as i32);
            k += 1;
        }
        if k > b {
            scale = scale.saturating_add(if neg { -e } else { e });
            i = k;
        }
    }
    Some((v * 2f64.powi(scale), i))
}

/// C's `%.<prec>g`, as Lua's `tostring` (`%.14g`) and cjson print numbers.
pub(crate) fn fmt_g(n: f64, prec: usize) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    let p = prec.max(1);
    let e_form = format!("{:.*e}", p - 1, n);
    let (mant, exp) = e_form.split_once('e').unwrap_or((&e_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, n)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_printf_g() {
        let cases: &[(f64, usize, &str)] = &[
            (0.1, 14, "0.1"),
            (1e15, 14, "1e+15"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (100000000000000.0, 14, "1e+14"),
            (0.0001, 14, "0.0001"),
            (0.00001, 14, "1e-05"),
            (-0.0, 14, "-0"),
            (2.345, 3, "2.35"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (2f64.powi(53), 14, "9.007199254741e+15"),
            (1e300, 14, "1e+300"),
            (5e-324, 14, "4.9406564584125e-324"),
        ];
        for (i, (n, p, want)) in cases.iter().enumerate() {
            assert_eq!(fmt_g(*n, *p), *want, "#{i}");
        }
    }

    #[test]
    fn converts_strings_like_lua() {
        let cases: &[(&str, Option<f64>)] = &[
            ("12", Some(12.0)),
            (" 12 ", Some(12.0)),
            ("0x10", Some(16.0)),
            ("1e3", Some(1000.0)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("-.5", Some(-0.5)),
            ("inf", Some(f64::INFINITY)),
            ("12a", None),
            ("", None),
            ("  ", None),
            ("1e", None),
            ("12\0zz", Some(12.0)),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(str2d(s.as_bytes()), *want, "#{i}");
        }
    }
}
