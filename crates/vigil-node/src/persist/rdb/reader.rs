//! A reader of RDB primitives over any byte source: lengths (with their special encodings),
//! strings (plain, integer-encoded, LZF), doubles and times. It counts the offset for error
//! messages, keeps the CRC-64 of what it consumed, and refuses any length larger than the
//! bytes left before allocating for it.

use std::io::Read;

use super::{RdbError, Result, crc64, lzf};

const ENC_INT8: u64 = 0;
const ENC_INT16: u64 = 1;
const ENC_INT32: u64 = 2;
const ENC_LZF: u64 = 3;

/// A length, or the special string encoding that stood in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// A plain length.
    Plain(u64),
    /// An encoded string follows (`ENC_INT8/16/32`, `ENC_LZF`).
    Encoded(u64),
}

/// The RDB reader.
pub struct Reader<R> {
    src: R,
    pos: u64,
    left: u64,
    crc: u64,
}

impl<'a> Reader<&'a [u8]> {
    /// A reader over a buffer (a `DUMP` payload).
    pub fn from_slice(b: &'a [u8]) -> Self {
        Reader::new(b, b.len() as u64)
    }
}

impl<R: Read> Reader<R> {
    /// A reader over `src`, which holds `size` bytes.
    pub fn new(src: R, size: u64) -> Self {
        Reader {
            src,
            pos: 0,
            left: size,
            crc: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// CRC-64 of the bytes consumed so far.
    pub fn crc(&self) -> u64 {
        self.crc
    }

    /// An error about the structure at `offset`.
    pub fn corrupt<T>(&self, what: impl Into<String>, offset: u64) -> Result<T> {
        Err(RdbError::corrupt(what, offset))
    }

    /// Fills `buf` exactly.
    pub fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        if buf.len() as u64 > self.left {
            return Err(RdbError::Truncated {
                what,
                offset: self.pos,
            });
        }
        self.src.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                RdbError::Truncated {
                    what,
                    offset: self.pos,
                }
            } else {
                RdbError::Io(e)
            }
        })?;
        self.crc = crc64::update(self.crc, buf);
        self.pos += buf.len() as u64;
        self.left -= buf.len() as u64;
        Ok(())
    }

    /// `n` bytes, after checking that many are left.
    pub fn bytes(&mut self, n: u64, what: &'static str) -> Result<Vec<u8>> {
        if n > self.left {
            return Err(RdbError::Truncated {
                what,
                offset: self.pos,
            });
        }
        let mut v = vec![0u8; n as usize];
        self.fill(&mut v, what)?;
        Ok(v)
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    /// A length or string-encoding marker.
    pub fn len_or_enc(&mut self) -> Result<Len> {
        let at = self.pos;
        let b = self.u8("length")?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.u8("length")?)),
            3 => Len::Encoded(u64::from(b & 0x3f)),
            _ => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array("length")?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array("length")?)),
                _ => return self.corrupt(format!("length prefix 0x{b:02x}"), at),
            },
        })
    }

    /// A plain length.
    pub fn length(&mut self) -> Result<u64> {
        let at = self.pos;
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => self.corrupt("encoded string where a length belongs", at),
        }
    }

    /// A count of items each taking at least `min_bytes`, bounded by the bytes left.
    pub fn count(&mut self, min_bytes: u64, what: &'static str) -> Result<u64> {
        let at = self.pos;
        let n = self.length()?;
        if n.saturating_mul(min_bytes.max(1)) > self.left {
            return self.corrupt(format!("{what} count {n} larger than the input"), at);
        }
        Ok(n)
    }

    /// A string in any of its encodings.
    pub fn string(&mut self) -> Result<Vec<u8>> {
        let at = self.pos;
        match self.len_or_enc()? {
            Len::Plain(n) => self.bytes(n, "string"),
            Len::Encoded(ENC_INT8) => Ok(int_bytes(i64::from(self.u8("int")? as i8))),
            Len::Encoded(ENC_INT16) => {
                Ok(int_bytes(i64::from(i16::from_le_bytes(self.array("int")?))))
            }
            Len::Encoded(ENC_INT32) => {
                Ok(int_bytes(i64::from(i32::from_le_bytes(self.array("int")?))))
            }
            Len::Encoded(ENC_LZF) => {
                let clen = self.length()?;
                let len = self.length()?;
                let z = self.bytes(clen, "compressed string")?;
                if len > usize::MAX as u64 {
                    return self.corrupt("compressed string length", at);
                }
                lzf::decompress(&z, len as usize)
                    .or_else(|e| self.corrupt(format!("LZF string ({})", e.0), at))
            }
            Len::Encoded(e) => self.corrupt(format!("string encoding {e}"), at),
        }
    }

    /// A double in the old text form (`ZSET` type): length byte, or 253/254/255 for
    /// NaN/+inf/-inf.
    pub fn text_double(&mut self) -> Result<f64> {
        let at = self.pos;
        let n = self.u8("double")?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.bytes(u64::from(n), "double")?;
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map_or_else(|| self.corrupt("double", at), Ok)
            }
        }
    }

    /// A binary double (little-endian IEEE 754).
    pub fn binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array("double")?))
    }

    /// A millisecond time (8 bytes little-endian).
    pub fn millis(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array("time")?))
    }

    /// Reads and discards `n` bytes.
    pub fn skip(&mut self, n: u64, what: &'static str) -> Result<()> {
        let mut buf = [0u8; 4096];
        let mut rest = n;
        while rest > 0 {
            let k = rest.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..k], what)?;
            rest -= k as u64;
        }
        Ok(())
    }
}

/// The decimal text of an integer.
pub fn int_bytes(v: i64) -> Vec<u8> {
    itoa::Buffer::new().format(v).as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_strings() {
        let b = [
            0x05, 0x41, 0x02, 0x80, 0, 0, 1, 0, 0xc0, 0xfe, 0xc1, 0x39, 0x30,
        ];
        let mut r = Reader::from_slice(&b);
        assert_eq!(r.length().unwrap(), 5);
        assert_eq!(r.length().unwrap(), 0x102);
        assert_eq!(r.length().unwrap(), 256);
        assert_eq!(r.string().unwrap(), b"-2");
        assert_eq!(r.string().unwrap(), b"12345");
        assert!(matches!(
            r.u8("x"),
            Err(RdbError::Truncated { offset: 13, .. })
        ));
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let b = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(Reader::from_slice(&b).string().is_err());
        let b = [0x81, 0, 0, 0, 0, 0, 0, 0, 0xff];
        assert!(Reader::from_slice(&b).count(1, "x").is_err());
        let b = [0xc3, 0x01, 0x81, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert!(Reader::from_slice(&b).string().is_err());
        assert!(Reader::from_slice(&[0xc7]).string().is_err());
        assert!(Reader::from_slice(&[0xbf]).length().is_err());
    }
}
