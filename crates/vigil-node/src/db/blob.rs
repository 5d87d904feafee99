//! Counted buffers of length-prefixed byte strings: the one layout behind the compact forms of
//! small hashes and sorted sets (Redis' listpacks). A buffer is a little-endian `u32` count of
//! entries followed by the entries; a byte string is its length as a LEB128 varint, then its
//! bytes. An empty value holds no buffer at all.

/// Bytes of the count before the first entry.
pub const HEADER: usize = 4;

/// The count of entries in a buffer (0 for an empty one).
pub fn count(buf: &[u8]) -> usize {
    match buf.get(..HEADER) {
        Some(h) => u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
        None => 0,
    }
}

/// Where the first entry starts.
pub fn first(buf: &[u8]) -> usize {
    HEADER.min(buf.len())
}

/// Appends a length-prefixed byte string.
pub fn put(out: &mut Vec<u8>, b: &[u8]) {
    let mut n = b.len();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(b);
}

/// Reads the length-prefixed byte string at `pos`; returns it and where the next one starts.
pub fn read(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let (mut len, mut shift, mut at) = (0usize, 0, pos);
    loop {
        let b = *buf.get(at)?;
        at += 1;
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 || shift > 35 {
            break;
        }
    }
    let end = at.checked_add(len)?;
    Some((buf.get(at..end)?, end))
}

/// A new buffer of `count` entries: `buf`'s entries with the bytes `start..end` replaced by
/// `with` (an insertion when `start == end`, a removal when `with` is empty).
pub fn splice(buf: &[u8], count: usize, start: usize, end: usize, with: &[u8]) -> Box<[u8]> {
    if count == 0 {
        return Box::default();
    }
    let start = start.max(HEADER);
    let end = end.max(start);
    let rest = buf.get(end..).unwrap_or_default();
    let mut out = Vec::with_capacity(start + with.len() + rest.len());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(buf.get(HEADER..start).unwrap_or_default());
    out.extend_from_slice(with);
    out.extend_from_slice(rest);
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_splices_keep_the_rest() {
        let mut e = Vec::new();
        for s in [&b""[..], b"a", &[b'x'; 200], &[b'y'; 20_000]] {
            e.clear();
            put(&mut e, s);
            assert_eq!(read(&e, 0), Some((s, e.len())));
            assert!(
                read(&e[..e.len() - 1], 0).is_none(),
                "a cut string is not read"
            );
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        put(&mut a, b"one");
        put(&mut b, b"two");
        let buf = splice(&[], 1, 0, 0, &a);
        let end = buf.len();
        let buf = splice(&buf, 2, end, end, &b);
        assert_eq!(count(&buf), 2);
        let (s, next) = read(&buf, first(&buf)).unwrap();
        assert_eq!((s, read(&buf, next).unwrap().0), (&b"one"[..], &b"two"[..]));
        let buf = splice(&buf, 1, first(&buf), next, &[]);
        assert_eq!(read(&buf, first(&buf)).unwrap().0, b"two");
        assert!(splice(&buf, 0, first(&buf), buf.len(), &[]).is_empty());
    }
}
