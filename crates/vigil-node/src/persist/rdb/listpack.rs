//! Redis' listpack: `total-bytes(u32 LE) count(u16 LE) entries… 0xFF`, each entry an encoding
//! byte (small integers and strings of three size classes, 16/24/32/64-bit integers), its data
//! and its length written backwards. Strings that are canonical integers are stored as
//! integers, as Redis does, so an encoded listpack is byte for byte Redis' own.

use super::writer::canonical_int;
use super::{RdbError, Result};

const HEADER: usize = 6;
const EOF: u8 = 0xff;
/// The count field when the listpack holds 65535 elements or more.
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One element: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A string.
    Str(Vec<u8>),
    /// An integer.
    Int(i64),
}

impl Item {
    /// The element as bytes (integers in decimal).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Item::Str(s) => s,
            Item::Int(v) => super::reader::int_bytes(v),
        }
    }

    /// The element as an integer, if it is one (or a string that is a canonical integer).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Item::Int(v) => Some(*v),
            Item::Str(s) => canonical_int(s),
        }
    }
}

fn bad(what: &str, base: u64, at: usize) -> RdbError {
    RdbError::corrupt(format!("listpack: {what}"), base + at as u64)
}

/// Decodes a listpack; `base` is its offset in the input, for error messages.
pub fn decode(lp: &[u8], base: u64) -> Result<Vec<Item>> {
    if lp.len() < HEADER + 1 {
        return Err(bad("shorter than its header", base, 0));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(bad("total size differs from its length", base, 0));
    }
    let count = u16::from_le_bytes([lp[4], lp[5]]);
    let mut items = Vec::new();
    let mut p = HEADER;
    loop {
        let b = *lp
            .get(p)
            .ok_or_else(|| bad("missing terminator", base, p))?;
        if b == EOF {
            if p + 1 != lp.len() {
                return Err(bad("bytes after the terminator", base, p));
            }
            break;
        }
        let start = p;
        let (item, size) = entry(lp, p).ok_or_else(|| bad("entry out of bounds", base, p))?;
        p += size;
        // The back length is fully determined by the entry size: compare its bytes.
        let mut want = Vec::with_capacity(5);
        put_backlen(&mut want, size as u64);
        if lp.get(p..p + want.len()) != Some(&want[..]) {
            return Err(bad("back length differs from the entry", base, start));
        }
        p += want.len();
        items.push(item);
    }
    if count != COUNT_UNKNOWN && usize::from(count) != items.len() {
        return Err(bad("element count differs from the header", base, 4));
    }
    Ok(items)
}

/// The entry at `p` and the size of its encoding and data.
fn entry(lp: &[u8], p: usize) -> Option<(Item, usize)> {
    let b = *lp.get(p)?;
    let int = |n: usize| -> Option<i64> {
        let d = lp.get(p + 1..p + 1 + n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(d);
        // Sign-extend from n bytes.
        let shift = 64 - 8 * n as u32;
        Some((i64::from_le_bytes(buf) << shift) >> shift)
    };
    let string = |hdr: usize, n: usize| -> Option<(Item, usize)> {
        let end = (p + hdr).checked_add(n)?;
        Some((Item::Str(lp.get(p + hdr..end)?.to_vec()), hdr + n))
    };
    if b & 0x80 == 0 {
        Some((Item::Int(i64::from(b & 0x7f)), 1))
    } else if b & 0xc0 == 0x80 {
        string(1, usize::from(b & 0x3f))
    } else if b & 0xe0 == 0xc0 {
        let v = (i64::from(b & 0x1f) << 8) | i64::from(*lp.get(p + 1)?);
        Some((Item::Int(if v >= 1 << 12 { v - (1 << 13) } else { v }), 2))
    } else if b & 0xf0 == 0xe0 {
        string(
            2,
            (usize::from(b & 0x0f) << 8) | usize::from(*lp.get(p + 1)?),
        )
    } else {
        match b {
            0xf0 => {
                let n = u32::from_le_bytes(lp.get(p + 1..p + 5)?.try_into().ok()?);
                string(5, n as usize)
            }
            0xf1 => Some((Item::Int(int(2)?), 3)),
            0xf2 => Some((Item::Int(int(3)?), 4)),
            0xf3 => Some((Item::Int(int(4)?), 5)),
            0xf4 => Some((Item::Int(int(8)?), 9)),
            _ => None,
        }
    }
}

fn put_backlen(out: &mut Vec<u8>, l: u64) {
    let n = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    };
    for i in (0..n).rev() {
        let b = ((l >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { b } else { b | 128 });
    }
}

/// Builds a listpack.
#[derive(Debug, Default)]
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Builder {
    /// An empty listpack.
    pub fn new() -> Builder {
        Builder {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// Appends a string (as an integer when it is a canonical one).
    pub fn push(&mut self, s: &[u8]) {
        match canonical_int(s) {
            Some(v) => self.push_int(v),
            None => {
                let at = self.buf.len();
                let n = s.len();
                if n < 64 {
                    self.buf.push(0x80 | n as u8);
                } else if n < 4096 {
                    self.buf.push(0xe0 | (n >> 8) as u8);
                    self.buf.push(n as u8);
                } else {
                    self.buf.push(0xf0);
                    self.buf.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(s);
                self.end_entry(at);
            }
        }
    }

    /// Appends an integer in its smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let at = self.buf.len();
        match v {
            0..=127 => self.buf.push(v as u8),
            -4096..=4095 => {
                let u = if v < 0 { (1 << 13) + v } else { v } as u16;
                self.buf.push(0xc0 | (u >> 8) as u8);
                self.buf.push(u as u8);
            }
            -32768..=32767 => {
                self.buf.push(0xf1);
                self.buf.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8388608..=8388607 => {
                self.buf.push(0xf2);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            -2147483648..=2147483647 => {
                self.buf.push(0xf3);
                self.buf.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                self.buf.push(0xf4);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.end_entry(at);
    }

    fn end_entry(&mut self, at: usize) {
        let l = (self.buf.len() - at) as u64;
        put_backlen(&mut self.buf, l);
        self.count += 1;
    }

    /// The finished listpack bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < usize::from(COUNT_UNKNOWN) {
            self.count as u16
        } else {
            COUNT_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }

    /// Bytes so far, with the terminator.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Elements so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no element was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_encoding() {
        let big = vec![b'z'; 5000];
        let mid = vec![b'y'; 300];
        let ints = [
            0i64,
            127,
            128,
            -1,
            -4096,
            4095,
            -32768,
            32767,
            -8388608,
            8388607,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ];
        let mut b = Builder::new();
        for v in ints {
            b.push_int(v);
        }
        b.push(b"hello");
        b.push(&mid);
        b.push(&big);
        b.push(b"-0");
        let lp = b.finish();
        let items = decode(&lp, 0).unwrap();
        for (i, v) in ints.iter().enumerate() {
            assert_eq!(items[i], Item::Int(*v), "#{i}");
        }
        assert_eq!(items[14], Item::Str(b"hello".to_vec()));
        assert_eq!(items[15], Item::Str(mid));
        assert_eq!(items[16], Item::Str(big));
        assert_eq!(items[17], Item::Str(b"-0".to_vec()));
    }

    #[test]
    fn corrupt_listpacks_are_errors() {
        let mut b = Builder::new();
        b.push(b"abc");
        b.push_int(1000);
        let lp = b.finish();
        for cut in 0..lp.len() {
            assert!(decode(&lp[..cut], 0).is_err(), "cut at {cut}");
        }
        for i in 0..lp.len() {
            for x in [0u8, 0x7f, 0xff, 0xf5] {
                let mut c = lp.clone();
                c[i] = x;
                let _ = decode(&c, 0); // never panics
            }
        }
        let mut c = lp.clone();
        c[4] = 3;
        assert!(decode(&c, 0).is_err());
    }
}
