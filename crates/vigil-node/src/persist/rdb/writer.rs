//! Writing RDB primitives as Redis 7.0 writes them: lengths, strings (integer-encoded when
//! they are canonical 32-bit integers, LZF-compressed when longer than 20 bytes and it saves
//! at least four), binary doubles and times.

use super::lzf;

/// Appends a length.
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The value of a string that is the canonical decimal form of an integer.
pub fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(v).as_bytes() == s).then_some(v)
}

/// Appends a string as `rdbSaveRawString` does.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = canonical_int(s)
        && put_small_int(out, v)
    {
        return;
    }
    if s.len() > 20
        && let Some(z) = lzf::compress(s)
    {
        out.push(0xc3);
        put_len(out, z.len() as u64);
        put_len(out, s.len() as u64);
        out.extend_from_slice(&z);
        return;
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends an integer in the 8/16/32-bit string encoding if it fits; returns whether it did.
fn put_small_int(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(b) = i8::try_from(v) {
        out.push(0xc0);
        out.push(b as u8);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xc1);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(0xc2);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends a binary double.
pub fn put_binary_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(&d.to_le_bytes());
}

/// Appends a millisecond time.
pub fn put_millis(out: &mut Vec<u8>, t: i64) {
    out.extend_from_slice(&t.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::reader::Reader;
    use super::*;

    #[test]
    fn strings_round_trip_in_every_encoding() {
        let long = "x".repeat(100);
        let cases: [&[u8]; 10] = [
            b"",
            b"0",
            b"-128",
            b"300",
            b"-70000",
            b"2147483648",
            b"007",
            b"abc",
            long.as_bytes(),
            b"12345678901234567890123",
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut out = Vec::new();
            put_string(&mut out, c);
            let mut r = Reader::from_slice(&out);
            assert_eq!(r.string().unwrap(), *c, "#{i}");
            assert_eq!(r.left(), 0, "#{i}");
        }
        let mut out = Vec::new();
        put_string(&mut out, b"-128");
        assert_eq!(out, [0xc0, 0x80]);
        out.clear();
        put_string(&mut out, long.as_bytes());
        assert_eq!(out[0], 0xc3);
    }

    #[test]
    fn lengths_round_trip() {
        for (i, n) in [0u64, 63, 64, 16383, 16384, 1 << 32, u64::MAX]
            .iter()
            .enumerate()
        {
            let mut out = Vec::new();
            put_len(&mut out, *n);
            assert_eq!(Reader::from_slice(&out).length().unwrap(), *n, "#{i}");
        }
    }
}
