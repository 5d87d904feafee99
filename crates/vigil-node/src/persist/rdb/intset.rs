//! Redis' intset: `encoding(u32 LE: 2, 4 or 8) length(u32 LE)` then the integers in ascending
//! order, little-endian, each of the encoding's width.

use super::{RdbError, Result};

/// Decodes an intset; `base` is its offset in the input, for error messages.
pub fn decode(b: &[u8], base: u64) -> Result<Vec<i64>> {
    let bad = |what: &str| RdbError::corrupt(format!("intset: {what}"), base);
    if b.len() < 8 {
        return Err(bad("shorter than its header"));
    }
    let width = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(bad("bad encoding"));
    }
    if n.checked_mul(width).and_then(|s| s.checked_add(8)) != Some(b.len()) {
        return Err(bad("size differs from its length"));
    }
    let mut out: Vec<i64> = Vec::with_capacity(n);
    for c in b[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        };
        if out.last().is_some_and(|&p| p >= v) {
            return Err(bad("integers out of order"));
        }
        out.push(v);
    }
    if n == 0 {
        return Err(bad("empty"));
    }
    Ok(out)
}

/// Encodes integers (any order, no duplicates) in the narrowest width that holds them all.
pub fn encode(values: &mut [i64]) -> Vec<u8> {
    values.sort_unstable();
    let fits = |lo: i64, hi: i64| values.iter().all(|v| (lo..=hi).contains(v));
    let width: usize = if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + values.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_each_width() {
        for (i, vals) in [
            vec![3i64, -2, 1],
            vec![70000, 1],
            vec![i64::MIN, 0, i64::MAX],
        ]
        .into_iter()
        .enumerate()
        {
            let mut v = vals.clone();
            let b = encode(&mut v);
            assert_eq!(decode(&b, 0).unwrap(), v, "#{i}");
        }
        assert_eq!(encode(&mut [5]), [2, 0, 0, 0, 1, 0, 0, 0, 5, 0]);
    }

    #[test]
    fn corrupt_intsets_are_errors() {
        let good = encode(&mut [1, 2, 3]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], 0).is_err(), "cut {cut}");
        }
        let mut swapped = good.clone();
        swapped.swap(8, 10);
        assert!(decode(&swapped, 0).is_err());
        let mut badw = good.clone();
        badw[0] = 3;
        assert!(decode(&badw, 0).is_err());
    }
}
