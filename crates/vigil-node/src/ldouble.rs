//! Float increments in C `long double`, as Redis computes INCRBYFLOAT and HINCRBYFLOAT: the
//! digits a client sees (`9223372036854775806` + 1.5 = `9223372036854775807.5`) depend on the
//! 64-bit mantissa, which `f64` does not have. The arithmetic lives in `csrc/ldouble.c`, with
//! C's `%.17g` formatting of doubles (DEBUG DIGEST hashes scores in it).

use std::os::raw::{c_char, c_int, c_long};

unsafe extern "C" {
    fn vigil_ld_add(
        cur: *const c_char,
        cur_len: usize,
        by: *const c_char,
        by_len: usize,
        finite_by: c_int,
        out: *mut c_char,
        cap: usize,
    ) -> c_long;
    fn vigil_fmt_g17(v: f64, out: *mut c_char, cap: usize) -> c_long;
}

/// `v` as C's `"%.17g"` writes it.
pub fn fmt_g17(v: f64) -> String {
    let mut out = [0u8; 64];
    // SAFETY: `out` has `out.len()` bytes and the C side writes at most that many.
    let n = unsafe { vigil_fmt_g17(v, out.as_mut_ptr().cast(), out.len()) };
    String::from_utf8_lossy(&out[..n.max(0) as usize]).into_owned()
}

/// Room for any long double in "%.17Lf" (Redis' `MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// Why an increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The current value is not a number.
    BadCurrent,
    /// The increment is not a number.
    BadIncrement,
    /// The increment is NaN or infinite (HINCRBYFLOAT checks this first).
    NonFiniteIncrement,
    /// The sum is NaN or infinite.
    NonFiniteSum,
}

/// `cur + by` in long double, formatted as Redis formats it ("%.17Lf", trailing zeros cut).
/// `cur` absent counts as zero; `finite_by` refuses an infinite increment up front.
pub fn add(cur: Option<&[u8]>, by: &[u8], finite_by: bool) -> Result<String, IncrError> {
    // Redis refuses texts this long before parsing; so do we (and the C side copies them to a
    // stack buffer of that size).
    if by.len() >= MAX_CHARS {
        return Err(IncrError::BadIncrement);
    }
    if cur.is_some_and(|c| c.len() >= MAX_CHARS) {
        return Err(IncrError::BadCurrent);
    }
    let mut out = vec![0u8; MAX_CHARS];
    let (cp, cl) = cur.map_or((std::ptr::null(), 0), |c| (c.as_ptr().cast(), c.len()));
    // SAFETY: every pointer comes with its length; `out` has `MAX_CHARS` bytes and the C side
    // writes at most `cap` of them.
    let n = unsafe {
        vigil_ld_add(
            cp,
            cl,
            by.as_ptr().cast(),
            by.len(),
            c_int::from(finite_by),
            out.as_mut_ptr().cast(),
            out.len(),
        )
    };
    match n {
        -1 => Err(IncrError::BadCurrent),
        -2 => Err(IncrError::BadIncrement),
        -3 => Err(IncrError::NonFiniteIncrement),
        n if n < 0 => Err(IncrError::NonFiniteSum),
        n => {
            out.truncate(n as usize);
            // The C side writes only ASCII digits, sign and point.
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_double_sums_as_redis() {
        let cases: &[(Option<&str>, &str, Result<&str, IncrError>)] = &[
            (
                Some("9223372036854775806"),
                "1.5",
                Ok("9223372036854775807.5"),
            ),
            (None, "10.5", Ok("10.5")),
            (Some("10.5"), "0.1", Ok("10.6")),
            (Some("5.0e3"), "2.0e2", Ok("5200")),
            (Some("-1"), "1", Ok("0")),
            (Some("1"), "-1.5", Ok("-0.5")),
            (Some("x"), "1", Err(IncrError::BadCurrent)),
            (Some("1"), " 1", Err(IncrError::BadIncrement)),
            (Some("1"), "1 ", Err(IncrError::BadIncrement)),
            (Some("1"), "nan", Err(IncrError::BadIncrement)),
            (Some("1"), "", Err(IncrError::BadIncrement)),
            (Some("1"), "+inf", Err(IncrError::NonFiniteSum)),
            (Some("1e4932"), "1e4932", Err(IncrError::NonFiniteSum)),
        ];
        for (i, (cur, by, want)) in cases.iter().enumerate() {
            let got = add(cur.map(str::as_bytes), by.as_bytes(), false);
            assert_eq!(got.as_deref(), want.as_ref().map(|s| *s), "#{i}");
        }
        assert_eq!(
            add(Some(b"1"), b"inf", true),
            Err(IncrError::NonFiniteIncrement)
        );
        assert!(add(None, &vec![b'1'; 6000], false).is_err());
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_g17(f64::INFINITY), "inf");
    }
}
