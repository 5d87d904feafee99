//! The byte-level primitives of the snapshot format, shared by the snapshot file and the
//! encodings of its value types (streams in `stream_codec`): little-endian integers, byte
//! strings as `len(u32) bytes`, counts as u64, and a bounds-checked reader.

use crate::db::Key;

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                format!(
                    "truncated record at byte {} (wanted {n} more bytes)",
                    self.pos
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short read")?,
        ))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "short read")?,
        ))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }
    pub(crate) fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<Key, String> {
        let n = self.u32()? as usize;
        Ok(Key::from(self.take(n)?))
    }
    /// An element count, sanity-checked against the bytes left so a corrupt count cannot make
    /// us allocate gigabytes.
    pub(crate) fn count(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "element count {n} larger than the rest of the file at byte {}",
                self.pos
            ));
        }
        Ok(n as usize)
    }
}
