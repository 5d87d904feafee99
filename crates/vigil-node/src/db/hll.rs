//! The HyperLogLog codec: Redis 7.0's exact string representation, so `GET` of an HLL key
//! returns the bytes redis-server would hold after the same commands, and counts agree.
//!
//! A value is a 16-byte header (`"HYLL"`, encoding, three reserved bytes, the cached
//! cardinality little-endian with its top bit meaning "stale") followed by either 16384 dense
//! 6-bit registers (12288 bytes) or a sparse run-length stream of opcodes:
//! `00xxxxxx` ZERO (1..64 zero registers), `01xxxxxx yyyyyyyy` XZERO (1..16384 zero
//! registers), `1vvvvvxx` VAL (1..4 registers of value 1..32).
//!
//! Sparse data may come from `SET`/`SETRANGE`, so nothing here trusts it: every walk is
//! bounded by the string, a byte read one past the end reads as zero (as the terminator of a
//! C string would), and inconsistent run lengths are reported as [`Corrupt`].

/// Header bytes before the registers.
pub const HDR: usize = 16;
/// Number of registers (2^14).
pub const REGISTERS: usize = 1 << 14;
/// Total size of a dense value.
pub const DENSE_SIZE: usize = HDR + REGISTERS * 6 / 8;
/// Redis' default `hll-sparse-max-bytes`.
pub const SPARSE_MAX_BYTES: usize = 3000;

const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const P: u32 = 14;
const Q: usize = 64 - P as usize;
const SEED: u64 = 0xadc8_3b19;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The value's registers are inconsistent (`INVALIDOBJ Corrupted HLL object detected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `s` passes Redis' HLL type check: header, magic, known encoding, and the exact
/// length of a dense value. Sparse data is checked only when it is walked.
pub fn is_hll(s: &[u8]) -> bool {
    s.len() >= HDR
        && &s[..4] == b"HYLL"
        && s[4] <= SPARSE
        && (s[4] != DENSE || s.len() == DENSE_SIZE)
}

/// Whether a (checked) value is sparse.
pub fn is_sparse(s: &[u8]) -> bool {
    s[4] == SPARSE
}

/// A new, empty, sparse value: one XZERO opcode covering every register, cache valid at 0.
pub fn new_sparse() -> Vec<u8> {
    let mut s = vec![0u8; HDR + 2];
    s[..4].copy_from_slice(b"HYLL");
    s[4] = SPARSE;
    put_xzero(&mut s[HDR..], REGISTERS);
    s
}

/// The cached cardinality, if it is valid.
pub fn cached(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(b))
}

/// Stores a freshly computed cardinality in the header.
pub fn set_cached(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

/// Marks the cached cardinality stale.
pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// MurmurHash64A as Redis computes it (little-endian word loads on every platform).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element hashes to and the length of its `0…01` pattern (1..=51).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Register `i` of dense registers (the byte after the last reads as zero).
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = regs[byte] as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

/// Sets register `i` of dense registers to `v`.
pub fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = v as u32;
    regs[byte] &= !(63u32 << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(b1) = regs.get_mut(byte + 1) {
        *b1 &= !(63u32 >> (8 - fb)) as u8;
        *b1 |= (v >> (8 - fb)) as u8;
    }
}

/// Raises a dense register to `count`; whether it changed.
fn dense_raise(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

/// One decoded sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Op {
    /// The opcode at `p` of `s` (`p < s.len()`).
    fn at(s: &[u8], p: usize) -> Op {
        let b = s[p];
        if b & 0xc0 == 0 {
            Op::Zero((b & 0x3f) as usize + 1)
        } else if b & 0x80 != 0 {
            Op::Val(((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1)
        } else {
            let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
            Op::XZero(((((b & 0x3f) as usize) << 8) | lo) + 1)
        }
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }

    fn width(self) -> usize {
        if let Op::XZero(_) = self { 2 } else { 1 }
    }
}

fn put_xzero(out: &mut [u8], len: usize) {
    let l = len - 1;
    out[0] = ((l >> 8) as u8) | 0x40;
    out[1] = l as u8;
}

fn val_byte(value: u8, len: usize) -> u8 {
    ((value - 1) << 2 | (len as u8 - 1)) | 0x80
}

/// Walks the sparse opcodes of `s`, calling `f(first_register, op)`; stops early (as Redis'
/// dense conversion and merge do) at a VAL run that would pass the last register. Returns the
/// number of registers covered, which is [`REGISTERS`] for consistent data.
fn walk_sparse(s: &[u8], mut f: impl FnMut(usize, Op)) -> usize {
    let mut p = HDR;
    let mut idx = 0usize;
    while p < s.len() {
        let op = Op::at(s, p);
        if let Op::Val(..) = op
            && idx + op.span() > REGISTERS
        {
            break;
        }
        f(idx, op);
        idx += op.span();
        p += op.width();
    }
    idx
}

/// Converts a sparse value to dense in place (header and cached cardinality kept).
pub fn to_dense(s: &mut Box<[u8]>) -> Result<(), Corrupt> {
    if s[4] == DENSE {
        return Ok(());
    }
    *s = dense_of(s)?.into_boxed_slice();
    Ok(())
}

/// The dense form of a sparse value.
fn dense_of(s: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&s[..HDR]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR..];
    let covered = walk_sparse(s, |first, op| {
        if let Op::Val(v, n) = op {
            for i in first..first + n {
                dense_set(regs, i, v);
            }
        }
    });
    if covered != REGISTERS {
        return Err(Corrupt);
    }
    Ok(dense)
}

/// Raises register `index` to `count` (Redis' `hllDenseSet`/`hllSparseSet`); whether it
/// changed. May promote a sparse value to dense: when `count` is beyond what VAL holds, or the
/// sparse bytes would grow past `max_sparse`. Works on a `Vec` so a batch of updates reuses
/// one buffer (take it from the stored box once per command).
pub fn raise(s: &mut Vec<u8>, index: usize, count: u8, max_sparse: usize) -> Result<bool, Corrupt> {
    if s[4] == DENSE {
        return Ok(dense_raise(&mut s[HDR..], index, count));
    }
    sparse_raise(s, index, count, max_sparse)
}

/// [`raise`] on a sparse value (Redis' `hllSparseSet`).
fn sparse_raise(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_sparse: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: the opcode that covers `index` (the hot loop of sparse updates, kept plain).
    let end = s.len();
    let (mut p, mut first, mut prev) = (HDR, 0usize, None);
    while p < end {
        let b = s[p];
        let (span, width) = if b < 0x40 {
            (b as usize + 1, 1)
        } else if b >= 0x80 {
            ((b & 3) as usize + 1, 1)
        } else {
            let lo = if p + 1 < end { s[p + 1] } else { 0 };
            (((((b & 0x3f) as usize) << 8) | lo as usize) + 1, 2)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += width;
        first += span;
    }
    if p >= end {
        return Err(Corrupt);
    }
    let op = Op::at(s, p);
    // Step 2: the trivial in-place updates, else the replacement sequence.
    let mut seq = [0u8; 5];
    let mut n = 0;
    match op {
        Op::Val(old, _) if old >= count => return Ok(false),
        Op::Val(_, 1) | Op::Zero(1) => {
            s[p] = val_byte(count, 1);
            merge_vals(s, prev.unwrap_or(HDR));
            return Ok(true);
        }
        _ => {}
    }
    let last = first + op.span() - 1;
    let zeros = |seq: &mut [u8; 5], n: &mut usize, len: usize| {
        if len > ZERO_MAX_LEN {
            put_xzero(&mut seq[*n..], len);
            *n += 2;
        } else {
            seq[*n] = (len - 1) as u8;
            *n += 1;
        }
    };
    match op {
        Op::Val(cur, _) => {
            if index != first {
                seq[n] = val_byte(cur, index - first);
                n += 1;
            }
            seq[n] = val_byte(count, 1);
            n += 1;
            if index != last {
                seq[n] = val_byte(cur, last - index);
                n += 1;
            }
        }
        Op::Zero(_) | Op::XZero(_) => {
            if index != first {
                zeros(&mut seq, &mut n, index - first);
            }
            seq[n] = val_byte(count, 1);
            n += 1;
            if index != last {
                zeros(&mut seq, &mut n, last - index);
            }
        }
    }
    // Step 3: splice the sequence in place of the opcode, unless it outgrows the limit.
    let old_width = op.width();
    let new_len = (end + n).saturating_sub(old_width);
    if n > old_width && new_len > max_sparse {
        return promote(s, index, count);
    }
    s.splice(p..(p + old_width).min(end), seq[..n].iter().copied());
    // A two-byte XZERO cut off by the end of a corrupt value: Redis' length arithmetic drops
    // the sequence's last byte, and so does this.
    s.truncate(new_len);
    merge_vals(s, prev.unwrap_or(HDR));
    Ok(true)
}

/// Step 4 of a sparse update: merges adjacent VAL opcodes of equal value around the change
/// (up to five opcodes from `from`), then invalidates the cache.
fn merge_vals(s: &mut Vec<u8>, from: usize) {
    let mut p = from;
    let mut budget = 5;
    while p < s.len() && budget > 0 {
        budget -= 1;
        match Op::at(s, p) {
            Op::XZero(_) => p += 2,
            Op::Zero(_) => p += 1,
            Op::Val(v1, l1) => {
                if p + 1 < s.len()
                    && let Op::Val(v2, l2) = Op::at(s, p + 1)
                    && v1 == v2
                    && l1 + l2 <= VAL_MAX_LEN
                {
                    s[p + 1] = val_byte(v1, l1 + l2);
                    s.remove(p);
                    continue;
                }
                p += 1;
            }
        }
    }
    invalidate(s);
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    *s = dense_of(s)?;
    dense_raise(&mut s[HDR..], index, count);
    Ok(true)
}

/// Adds an element; whether a register changed.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_sparse: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    raise(s, index, count, max_sparse)
}

/// Folds a (checked) value into `max` register by register (`max[i] = max(max[i], r[i])`).
pub fn merge_into(max: &mut [u8; REGISTERS], s: &[u8]) -> Result<(), Corrupt> {
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&s[HDR..], i));
        }
        return Ok(());
    }
    let covered = walk_sparse(s, |first, op| {
        if let Op::Val(v, n) = op {
            for m in &mut max[first..first + n] {
                *m = (*m).max(v);
            }
        }
    });
    if covered == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// The register histogram of a (checked) value; `Corrupt` for sparse runs that do not cover
/// exactly every register.
pub fn histogram(s: &[u8]) -> Result<[u32; 64], Corrupt> {
    let mut h = [0u32; 64];
    if s[4] == DENSE {
        for i in 0..REGISTERS {
            h[dense_get(&s[HDR..], i) as usize] += 1;
        }
        return Ok(h);
    }
    let mut p = HDR;
    let mut idx = 0usize;
    while p < s.len() {
        let op = Op::at(s, p);
        let v = if let Op::Val(v, _) = op {
            v as usize
        } else {
            0
        };
        h[v] = h[v].saturating_add(op.span() as u32);
        idx += op.span();
        p += op.width();
    }
    if idx == REGISTERS {
        Ok(h)
    } else {
        Err(Corrupt)
    }
}

/// The histogram of plain one-byte registers (a merge result).
pub fn raw_histogram(regs: &[u8; REGISTERS]) -> [u32; 64] {
    let mut h = [0u32; 64];
    for &r in regs {
        h[(r & 63) as usize] += 1;
    }
    h
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z || z.is_nan() {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if before == z || z.is_nan() {
            return z / 3.0;
        }
    }
}

/// Redis 7.0's cardinality estimate from a register histogram (Ertl's improved estimator).
pub fn estimate(h: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// `PFDEBUG DECODE`: the sparse opcodes as `z:n`, `Z:n`, `v:value,n`, space-separated.
pub fn decode(s: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR;
    while p < s.len() {
        let op = Op::at(s, p);
        let item = match op {
            Op::Zero(n) => format!("z:{n} "),
            Op::XZero(n) => format!("Z:{n} "),
            Op::Val(v, n) => format!("v:{v},{n} "),
        };
        out.push_str(&item);
        p += op.width();
    }
    out.truncate(out.trim_end_matches(' ').len());
    out
}

/// PFSELFTEST: dense registers read back what was written, and a sparse and a dense HLL fed
/// the same elements agree with each other and stay near the true count.
pub fn self_test() -> Result<(), String> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut shadow = vec![0u8; REGISTERS];
    for _ in 0..4 {
        for (i, r) in shadow.iter_mut().enumerate() {
            *r = (next() & 63) as u8;
            dense_set(&mut regs, i, *r);
        }
        if let Some(i) = (0..REGISTERS).find(|&i| dense_get(&regs, i) != shadow[i]) {
            return Err(format!("register {i} reads back wrong"));
        }
    }
    let mut sparse = new_sparse();
    let mut dense = dense_of(&new_sparse()).map_err(|_| "empty HLL did not convert")?;
    for n in 1..=3_000u64 {
        let ele = next().to_le_bytes();
        let ok = add(&mut sparse, &ele, usize::MAX).and(add(&mut dense, &ele, usize::MAX));
        ok.map_err(|_| format!("add {n} failed"))?;
        if n % 500 == 0 {
            let a = histogram(&sparse).map(|h| estimate(&h));
            let b = histogram(&dense).map(|h| estimate(&h));
            let (Ok(a), Ok(b)) = (a, b) else {
                return Err(format!("histogram failed at {n}"));
            };
            if a != b || (a as f64 - n as f64).abs() > n as f64 * 0.05 {
                return Err(format!("estimates {a} and {b} for {n} elements"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "hll_tests.rs"]
mod tests;
