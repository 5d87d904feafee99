//! Read-only decoders of the containers older RDBs hold (Redis 7.0 still reads them): the
//! ziplist (`zlbytes(u32) zltail(u32) zllen(u16)` entries `0xFF`, each entry its previous
//! entry's length, an encoding and data) and the zipmap of very old hashes.

use super::listpack::Item;
use super::{RdbError, Result};

/// Decodes a ziplist; `base` is its offset in the input, for error messages.
pub fn decode(z: &[u8], base: u64) -> Result<Vec<Item>> {
    let bad =
        |what: &str, at: usize| RdbError::corrupt(format!("ziplist: {what}"), base + at as u64);
    if z.len() < 11 {
        return Err(bad("shorter than its header", 0));
    }
    let total = u32::from_le_bytes([z[0], z[1], z[2], z[3]]) as usize;
    let tail = u32::from_le_bytes([z[4], z[5], z[6], z[7]]) as usize;
    let count = u16::from_le_bytes([z[8], z[9]]);
    if total != z.len() {
        return Err(bad("total size differs from its length", 0));
    }
    let mut items = Vec::new();
    let mut p = 10;
    let mut prev_len = 0usize;
    let mut last_start = 10;
    loop {
        let b = *z.get(p).ok_or_else(|| bad("missing terminator", p))?;
        if b == 0xff {
            if p + 1 != z.len() {
                return Err(bad("bytes after the terminator", p));
            }
            break;
        }
        let start = p;
        let (prev, plen) = if b < 254 {
            (usize::from(b), 1)
        } else if b == 254 {
            let s = z
                .get(p + 1..p + 5)
                .ok_or_else(|| bad("entry out of bounds", p))?;
            (u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize, 5)
        } else {
            return Err(bad("bad previous-length", p));
        };
        if prev != prev_len {
            return Err(bad("previous-length differs from the previous entry", p));
        }
        p += plen;
        let (item, size) = entry(z, p).ok_or_else(|| bad("entry out of bounds", p))?;
        p += size;
        prev_len = p - start;
        last_start = start;
        items.push(item);
    }
    if !items.is_empty() && tail != last_start {
        return Err(bad("tail offset differs from the last entry", 4));
    }
    if count != u16::MAX && usize::from(count) != items.len() {
        return Err(bad("element count differs from the header", 8));
    }
    Ok(items)
}

/// The entry (encoding and data) at `p` and its size.
fn entry(z: &[u8], p: usize) -> Option<(Item, usize)> {
    let b = *z.get(p)?;
    let string = |hdr: usize, n: usize| -> Option<(Item, usize)> {
        let end = (p + hdr).checked_add(n)?;
        Some((Item::Str(z.get(p + hdr..end)?.to_vec()), hdr + n))
    };
    let int = |n: usize| -> Option<i64> {
        let d = z.get(p + 1..p + 1 + n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(d);
        let shift = 64 - 8 * n as u32;
        Some((i64::from_le_bytes(buf) << shift) >> shift)
    };
    match b >> 6 {
        0 => string(1, usize::from(b & 0x3f)),
        1 => string(
            2,
            (usize::from(b & 0x3f) << 8) | usize::from(*z.get(p + 1)?),
        ),
        2 => {
            if b != 0x80 {
                return None;
            }
            let s = z.get(p + 1..p + 5)?;
            string(5, u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
        }
        _ => match b {
            0xc0 => Some((Item::Int(int(2)?), 3)),
            0xd0 => Some((Item::Int(int(4)?), 5)),
            0xe0 => Some((Item::Int(int(8)?), 9)),
            0xf0 => Some((Item::Int(int(3)?), 4)),
            0xfe => Some((Item::Int(int(1)?), 2)),
            0xf1..=0xfd => Some((Item::Int(i64::from(b & 0x0f) - 1), 1)),
            _ => None,
        },
    }
}

/// Decodes a zipmap (pre-2.6 hashes) into field/value pairs.
pub fn decode_zipmap(m: &[u8], base: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let bad = |at: usize| RdbError::corrupt("zipmap", base + at as u64);
    let mut p = 1;
    let mut out = Vec::new();
    let len = |p: &mut usize| -> Option<usize> {
        let b = *m.get(*p)?;
        match b {
            0..=253 => {
                *p += 1;
                Some(usize::from(b))
            }
            254 => {
                let s = m.get(*p + 1..*p + 5)?;
                *p += 5;
                Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
            }
            _ => None,
        }
    };
    loop {
        if *m.get(p).ok_or_else(|| bad(p))? == 0xff {
            if p + 1 != m.len() {
                return Err(bad(p));
            }
            return Ok(out);
        }
        let kl = len(&mut p).ok_or_else(|| bad(p))?;
        let k = m
            .get(p..p.checked_add(kl).ok_or_else(|| bad(p))?)
            .ok_or_else(|| bad(p))?;
        p += kl;
        let vl = len(&mut p).ok_or_else(|| bad(p))?;
        let free = usize::from(*m.get(p).ok_or_else(|| bad(p))?);
        p += 1;
        let v = m
            .get(p..p.checked_add(vl).ok_or_else(|| bad(p))?)
            .ok_or_else(|| bad(p))?;
        p += vl + free;
        out.push((k.to_vec(), v.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist written by Redis 6 (`RPUSH l a 1 300 70000 hello`, then DEBUG ZIPLIST).
    fn sample() -> Vec<u8> {
        let mut z = vec![0u8; 10];
        let entries: [&[u8]; 4] = [
            &[0x01, b'a'],
            &[0xf2],
            &[0xc0, 0x2c, 0x01],
            &[0x05, b'h', b'e', b'l', b'l', b'o'],
        ];
        let mut prev = 0u8;
        let mut tail = 10;
        for e in entries {
            tail = z.len();
            z.push(prev);
            z.extend_from_slice(e);
            prev = (e.len() + 1) as u8;
        }
        z.push(0xff);
        let n = z.len() as u32;
        z[..4].copy_from_slice(&n.to_le_bytes());
        z[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
        z[8..10].copy_from_slice(&4u16.to_le_bytes());
        z
    }

    #[test]
    fn decodes_and_refuses_corruption() {
        let z = sample();
        let items = decode(&z, 0).unwrap();
        assert_eq!(
            items,
            [
                Item::Str(b"a".to_vec()),
                Item::Int(1),
                Item::Int(300),
                Item::Str(b"hello".to_vec())
            ]
        );
        for cut in 0..z.len() {
            assert!(decode(&z[..cut], 0).is_err(), "cut {cut}");
        }
        for i in 0..z.len() {
            let mut c = z.clone();
            c[i] ^= 0x5a;
            let _ = decode(&c, 0);
        }
    }

    #[test]
    fn zipmap() {
        let m = [2u8, 1, b'f', 2, 0, b'v', b'1', 0xff];
        assert_eq!(
            decode_zipmap(&m, 0).unwrap(),
            [(b"f".to_vec(), b"v1".to_vec())]
        );
        assert!(decode_zipmap(&m[..5], 0).is_err());
    }
}
