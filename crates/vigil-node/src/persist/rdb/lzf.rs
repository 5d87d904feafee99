//! LZF, as Redis compresses RDB strings: decompression written here with bounds checks,
//! compression by the same algorithm as the liblzf Redis embeds (so the
//! same bytes).

/// Largest expansion of LZF: a 3-byte back reference copies up to 264 bytes.
const MAX_RATIO: usize = 89;

/// Why a decompression failed.
#[derive(Debug, PartialEq, Eq)]
pub struct LzfError(pub &'static str);

/// Decompresses `input` into exactly `len` bytes.
pub fn decompress(input: &[u8], len: usize) -> Result<Vec<u8>, LzfError> {
    if len > input.len().saturating_mul(MAX_RATIO) {
        return Err(LzfError(
            "declared length too large for its compressed size",
        ));
    }
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            // A literal run of ctrl + 1 bytes.
            let n = ctrl + 1;
            let lit = input
                .get(i..i + n)
                .ok_or(LzfError("literal run past input"))?;
            if out.len() + n > len {
                return Err(LzfError("output longer than declared"));
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i).ok_or(LzfError("reference past input"))?);
                i += 1;
            }
            n += 2;
            let lo = usize::from(*input.get(i).ok_or(LzfError("reference past input"))?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + lo + 1;
            if back > out.len() {
                return Err(LzfError("reference before output start"));
            }
            if out.len() + n > len {
                return Err(LzfError("output longer than declared"));
            }
            let start = out.len() - back;
            // Byte by byte: the source may overlap what is being written.
            for k in 0..n {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err(LzfError("output shorter than declared"));
    }
    Ok(out)
}

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 32;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The hash of the three bytes ending in `h`'s low byte (liblzf's, for identical output).
fn slot(h: u32) -> usize {
    ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

thread_local! {
    /// The compressor's hash table, kept per thread and never cleared: a fresh 256 KiB table
    /// for every string (a snapshot or a migration compresses millions) cost more than the
    /// compression, in the allocator's zeroing and page faults. What earlier strings left in
    /// it cannot change the output: a slot is used only for a match its bytes confirm, at an
    /// earlier position of this string, and the first position of any three bytes of the
    /// string is always hashed, so such a slot would hold a position this string put there.
    static TABLE: std::cell::RefCell<Box<[u32]>> =
        std::cell::RefCell::new(vec![0; HSIZE].into_boxed_slice());
}

/// Compresses `data` as Redis does for a string of more than 20 bytes: `None` unless the result
/// fits in `len - 4` bytes. The same algorithm and limits as the liblzf Redis embeds (with
/// `VERY_FAST`), so the output is the same bytes (liblzf, too, leaves its table as the last
/// string left it).
pub fn compress(data: &[u8]) -> Option<Vec<u8>> {
    // Positions are kept in 32 bits; Redis' strings stop at 512 MiB.
    if data.len() <= 4 || data.len() > u32::MAX as usize {
        return None;
    }
    TABLE.with(|t| compress_with(data, &mut t.borrow_mut()))
}

fn compress_with(data: &[u8], table: &mut [u32]) -> Option<Vec<u8>> {
    let n = data.len();
    let cap = n - 4;
    // Position 0 is never a reference (liblzf requires ref > in): a zeroed slot is empty.
    let mut out = vec![0u8; cap + 2];
    let mut op = 1usize;
    let mut lit = 0usize;
    let mut ip = 0usize;
    let first = |p: usize| (u32::from(data[p]) << 8) | u32::from(data[p + 1]);
    let next = |h: u32, p: usize| (h << 8) | u32::from(data[p + 2]);
    let mut h = first(0);
    while ip + 2 < n {
        h = next(h, ip);
        let s = slot(h);
        let r = table[s] as usize;
        table[s] = ip as u32;
        let off = ip.wrapping_sub(r).wrapping_sub(1);
        if r > 0
            && off < MAX_OFF
            && data[r + 2] == data[ip + 2]
            && data[r] == data[ip]
            && data[r + 1] == data[ip + 1]
        {
            let maxlen = (n - ip - 2).min(MAX_REF);
            if op + 4 >= cap && op - usize::from(lit == 0) + 4 >= cap {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            op -= usize::from(lit == 0);
            let mut len = 2usize;
            let mut stopped = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if data[r + len] != data[ip + len] {
                        stopped = true;
                        break;
                    }
                }
            }
            if !stopped {
                loop {
                    len += 1;
                    if !(len < maxlen && data[r + len] == data[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 2;
            lit = 0;
            ip += len + 1;
            if ip + 2 >= n {
                break;
            }
            ip -= 2;
            h = first(ip);
            h = next(h, ip);
            table[slot(h)] = ip as u32;
            ip += 1;
            h = next(h, ip);
            table[slot(h)] = ip as u32;
            ip += 1;
        } else {
            if op >= cap {
                return None;
            }
            lit += 1;
            out[op] = data[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > cap {
        return None;
    }
    while ip < n {
        lit += 1;
        out[op] = data[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let cases: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
            b"hello hello hello hello hello hello hello".to_vec(),
        ];
        for (i, c) in cases.iter().enumerate() {
            let z = compress(c).unwrap_or_else(|| panic!("#{i} did not compress"));
            assert_eq!(decompress(&z, c.len()).unwrap(), *c, "#{i}");
        }
        assert!(compress(b"abcdefghijklmnopqrstuvwxyz0123").is_none());
    }

    /// The table's contents change nothing: each output is what a zeroed table gives, after
    /// other strings and with a table of garbage.
    #[test]
    fn output_depends_only_on_the_input() {
        let mut seed = 7u32;
        let mut rand = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            seed >> 8
        };
        // Inputs of few letters share many three-byte sequences.
        let mut inputs: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                let len = 40 + rand() as usize % 400;
                (0..len).map(|_| b'a' + (rand() % 3) as u8).collect()
            })
            .collect();
        inputs.push(b"abcabcabcXYZabcabcabcXYZ-abcabcabcXYZabcabcabcXYZ".repeat(3));
        let fresh = |d: &[u8]| compress_with(d, &mut vec![0; HSIZE]);
        let mut garbage: Vec<u32> = (0..HSIZE).map(|_| rand() % 500).collect();
        for d in &inputs {
            let want = fresh(d);
            assert_eq!(compress(d), want);
            assert_eq!(compress_with(d, &mut garbage), want);
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(decompress(&[5, b'a'], 6).is_err());
        assert!(decompress(&[0x20, 0x05], 3).is_err());
        assert!(decompress(&[0, b'a'], 2).is_err());
        assert!(decompress(&[0, b'a'], 1_000_000).is_err());
        assert!(decompress(&[0, b'a', 0xe0], 300).is_err());
    }
}
