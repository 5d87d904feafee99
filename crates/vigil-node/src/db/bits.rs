//! Bit-level helpers for bitmap commands: population count, first set/clear bit, and
//! BITFIELD's integers of 1..64 bits at any bit offset with Redis' overflow rules.
//!
//! Bit 0 is the most significant bit of the first byte, as in SETBIT.

/// Set bits in `s`.
pub fn popcount(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        n += w.count_ones() as u64;
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum::<u64>()
}

/// The first bit equal to `bit` in `s`. Looking for a 0 in all-ones bytes finds the bit
/// just past the end (the string is read as zero-padded); looking for a 1 in all-zero bytes
/// gives -1.
pub fn first_bit(s: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0 } else { 0xff };
    match s.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { s[i] } else { !s[i] };
            (i as i64) * 8 + b.leading_zeros() as i64
        }
        None if bit => -1,
        None => s.len() as i64 * 8,
    }
}

/// An overflow policy of BITFIELD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Wrap around (modular arithmetic; signed wraps to the most negative value).
    Wrap,
    /// Saturate at the type's minimum or maximum.
    Sat,
    /// Refuse the operation (the reply is nil and nothing is written).
    Fail,
}

/// The unsigned integer of `bits` bits at bit `offset` (`s` must hold them).
pub fn get_unsigned(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let bit = (s[(o >> 3) as usize] >> (7 - (o & 7))) & 1;
        v = (v << 1) | bit as u64;
    }
    v
}

/// The signed integer of `bits` bits at bit `offset` (two's complement, sign-extended).
pub fn get_signed(s: &[u8], offset: u64, bits: u32) -> i64 {
    let u = get_unsigned(s, offset, bits);
    if bits < 64 && u & (1u64 << (bits - 1)) != 0 {
        (u | (u64::MAX << bits)) as i64
    } else {
        u as i64
    }
}

/// Writes the low `bits` bits of `v` at bit `offset` (`s` must hold them).
pub fn set_bits(s: &mut [u8], offset: u64, bits: u32, v: u64) {
    for j in 0..bits as u64 {
        let bit = ((v >> (bits as u64 - 1 - j)) & 1) as u8;
        let o = offset + j;
        let byte = &mut s[(o >> 3) as usize];
        let shift = 7 - (o & 7);
        *byte = (*byte & !(1 << shift)) | (bit << shift);
    }
}

/// The value at `offset` read from a string that may be shorter (missing bytes are zeros).
pub fn get_padded(s: &[u8], offset: u64, bits: u32, signed: bool) -> i64 {
    let byte = offset >> 3;
    let mut buf = [0u8; 9];
    for (i, b) in buf.iter_mut().enumerate() {
        match byte
            .checked_add(i as u64)
            .and_then(|k| s.get(usize::try_from(k).ok()?))
        {
            Some(&v) => *b = v,
            None => break,
        }
    }
    let off = offset - byte * 8;
    if signed {
        get_signed(&buf, off, bits)
    } else {
        get_unsigned(&buf, off, bits) as i64
    }
}

/// Whether `value + incr` overflows an unsigned field of `bits` bits (< 64): `None` if it
/// fits, else the value the policy leaves (meaningless for [`Overflow::Fail`]).
pub fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || {
        let mask = if bits == 64 { 0 } else { u64::MAX << bits };
        value.wrapping_add(incr as u64) & !mask
    };
    if value > max || (incr > 0 && incr > maxincr) {
        Some(if ow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < minincr {
        Some(if ow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        None
    }
}

/// Whether `value + incr` overflows a signed field of `bits` bits: `None` if it fits, else
/// the value the policy leaves (meaningless for [`Overflow::Fail`]).
pub fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    // Only used once `value` is known to be in range, where they cannot overflow.
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        Some(if ow == Overflow::Wrap { wrap() } else { max })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        Some(if ow == Overflow::Wrap { wrap() } else { min })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bit_cases() {
        assert_eq!(first_bit(&[0, 0, 0], true), -1);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0, 0x10], true), 11);
        assert_eq!(first_bit(&[0xff, 0xf7], false), 12);
        assert_eq!(first_bit(&[], false), 0);
    }

    #[test]
    fn fields_round_trip_at_odd_offsets() {
        let mut s = [0u8; 16];
        set_bits(&mut s, 7, 5, 23);
        assert_eq!(&s[..2], &[0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&s, 7, 5), 23);
        set_bits(&mut s, 3, 64, (-5i64) as u64);
        assert_eq!(get_signed(&s, 3, 64), -5);
        set_bits(&mut s, 70, 8, 200);
        assert_eq!(get_signed(&s, 70, 8), -56);
        assert_eq!(get_padded(&s, 70, 8, false), 200);
        assert_eq!(get_padded(&s, 1 << 40, 8, false), 0);
    }

    #[test]
    fn overflow_rules() {
        use Overflow::*;
        assert_eq!(unsigned_overflow(250, 10, 8, Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -10, 8, Wrap), Some(251));
        assert_eq!(unsigned_overflow(5, 10, 8, Wrap), None);
        assert_eq!(signed_overflow(120, 10, 8, Wrap), Some(-126));
        assert_eq!(signed_overflow(120, 10, 8, Sat), Some(127));
        assert_eq!(signed_overflow(-120, -10, 8, Sat), Some(-128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Sat), Some(i64::MIN));
        assert_eq!(signed_overflow(3, -1, 64, Sat), None);
    }
}
