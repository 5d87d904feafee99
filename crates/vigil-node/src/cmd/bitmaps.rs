//! Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP (BITFIELD is in [`super::bitfield`]).
//!
//! Bitmaps are plain strings (bit 0 is the top bit of the first byte), so GET, APPEND and the
//! rest see the same bytes Redis would hold. A write grows the string with zero bytes up to
//! the highest bit it touches; offsets are bounded by `proto-max-bulk-len`, so one command can
//! build at most a 512 MB string, as in Redis. Every write propagates as received.

use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::bits;
use crate::db::{Key, Value};
use crate::node::{Handler, row};

/// The bitmap family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "setbit",
            4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "bitmap",
            "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
            Data(setbit)
        ),
        row!(
            "getbit",
            3,
            [READONLY, FAST],
            1,
            1,
            1,
            "bitmap",
            "Returns a bit value by offset.",
            Data(getbit)
        ),
        row!(
            "bitcount",
            -2,
            [READONLY],
            1,
            1,
            1,
            "bitmap",
            "Counts the number of set bits (population counting) in a string.",
            Data(bitcount)
        ),
        row!(
            "bitpos",
            -3,
            [READONLY],
            1,
            1,
            1,
            "bitmap",
            "Finds the first set (1) or clear (0) bit in a string.",
            Data(bitpos)
        ),
        row!(
            "bitop",
            -4,
            [WRITE, DENYOOM],
            2,
            -1,
            1,
            "bitmap",
            "Performs bitwise operations on multiple strings, and stores the result.",
            Data(bitop)
        ),
    ]
}

fn offset_error() -> CmdError {
    CmdError::msg("ERR bit offset is not an integer or out of range")
}

fn bit_error() -> CmdError {
    CmdError::msg("ERR bit is not an integer or out of range")
}

/// A bit offset: non-negative, addressing a byte below `proto-max-bulk-len`. With `hash`
/// (BITFIELD), `#n` means the n-th field of `hash` bits.
pub(crate) fn bit_offset(ctx: &Ctx, arg: &[u8], hash: Option<u32>) -> Result<u64, CmdError> {
    let (digits, mul) = match (arg.first(), hash) {
        (Some(b'#'), Some(bits)) => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    // Redis multiplies without an overflow check; a wrapped product is caught below or not,
    // exactly as there.
    let off = parse_int(digits)
        .map_err(|_| offset_error())?
        .wrapping_mul(mul);
    if off < 0 || (off >> 3) as u64 >= ctx.store.limits.proto_max_bulk_len {
        return Err(offset_error());
    }
    Ok(off as u64)
}

/// The string at `key` grown with zero bytes to hold bit `max_bit`, created if missing;
/// whether it was created or grown.
pub(crate) fn bitmap_for_write<'c>(
    ctx: &'c mut Ctx,
    key: &[u8],
    max_bit: u64,
) -> Result<(&'c mut Key, bool), CmdError> {
    let need = usize::try_from(max_bit >> 3)
        .ok()
        .and_then(|b| b.checked_add(1))
        .ok_or_else(offset_error)?;
    let grown = match ctx.lookup(key) {
        None => {
            ctx.db()
                .set(key, Value::Str(vec![0; need].into_boxed_slice()), false);
            true
        }
        Some(Value::Str(s)) if s.len() < need => {
            let mut v = std::mem::take(s).into_vec();
            v.resize(need, 0);
            *s = v.into_boxed_slice();
            true
        }
        Some(Value::Str(_)) => false,
        Some(_) => return Err(CmdError::WrongType),
    };
    // Redis unshares the value to edit it: `raw` from now on (OBJECT ENCODING).
    let db = ctx.db();
    db.mark_edited(key);
    match db.keys.get_mut(key) {
        Some(Value::Str(s)) => Ok((s, grown)),
        _ => Err(CmdError::WrongType),
    }
}

/// Records a write of `key` (WATCH, blocked clients, propagation).
pub(crate) fn wrote(ctx: &mut Ctx, key: &[u8], changes: u64) {
    ctx.db().touch(key);
    ctx.changed(changes);
}

fn setbit(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let off = bit_offset(ctx, &args.bytes()?, None)?;
    let on = parse_int(&args.bytes()?).map_err(|_| bit_error())?;
    if on & !1 != 0 {
        return Err(bit_error());
    }
    let (s, grown) = bitmap_for_write(ctx, &key, off)?;
    let byte = &mut s[(off >> 3) as usize];
    let shift = 7 - (off & 7);
    let old = (*byte >> shift) & 1;
    let changed = grown || old as i64 != on;
    if changed {
        *byte = (*byte & !(1 << shift)) | ((on as u8) << shift);
        wrote(ctx, &key, 1);
        ctx.notify(crate::db::notify::STRING, "setbit", &key);
    }
    Ok(Reply::Int(old as i64))
}

fn getbit(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let off = bit_offset(ctx, &args.bytes()?, None)?;
    let s = ctx.get_str(&key)?.unwrap_or(b"");
    let bit = usize::try_from(off >> 3)
        .ok()
        .and_then(|b| s.get(b))
        .map_or(0, |b| (b >> (7 - (off & 7))) & 1);
    Ok(Reply::Int(bit as i64))
}

/// `BYTE` or `BIT`: whether the range counts bits.
fn unit(arg: &[u8]) -> Result<bool, CmdError> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// A resolved range: first and last byte, and the masks of bits outside a BIT range in them.
struct Span {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

/// Clamps `start..=end` (negative counts from the end) to a string of `len` bytes, in bits or
/// bytes, and converts a bit range to bytes plus edge masks.
fn resolve(mut start: i64, mut end: i64, len: i64, is_bit: bool) -> Span {
    let total = if is_bit { len << 3 } else { len };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0).min(total - 1);
    let (mut first_mask, mut last_mask) = (0, 0);
    if is_bit && start <= end {
        first_mask = !((1u32 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Span {
        start,
        end,
        first_mask,
        last_mask,
    }
}

fn bitcount(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let Some(s) = ctx.get_str(&key)? else {
        return Ok(Reply::Int(0));
    };
    let span = match args.remaining() {
        0 => Span {
            start: 0,
            end: s.len() as i64 - 1,
            first_mask: 0,
            last_mask: 0,
        },
        2 | 3 => {
            let start = args.i64()?;
            let end = args.i64()?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let is_bit = match args.next() {
                Some(u) => unit(&u)?,
                None => false,
            };
            resolve(start, end, s.len() as i64, is_bit)
        }
        _ => return Err(CmdError::Syntax),
    };
    if span.start > span.end {
        return Ok(Reply::Int(0));
    }
    let (a, b) = (span.start as usize, span.end as usize);
    let mut n = bits::popcount(&s[a..=b]);
    n -= (s[a] & span.first_mask).count_ones() as u64;
    n -= (s[b] & span.last_mask).count_ones() as u64;
    Ok(Reply::Int(n as i64))
}

fn bitpos(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let bit = args.i64()?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::msg("ERR The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    let Some(s) = ctx.get_str(&key)? else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let len = s.len() as i64;
    let rest = args.rest();
    let mut end_given = false;
    let span = match rest.len() {
        0 => resolve(0, len - 1, len, false),
        1..=3 => {
            let start = parse_int(&rest[0])?;
            let is_bit = match rest.get(2) {
                Some(u) => unit(u)?,
                None => false,
            };
            let end = match rest.get(1) {
                Some(e) => {
                    end_given = true;
                    parse_int(e)?
                }
                None if is_bit => (len << 3) + 7,
                None => len - 1,
            };
            resolve(start, end, len, is_bit)
        }
        _ => return Err(CmdError::Syntax),
    };
    if span.start > span.end {
        return Ok(Reply::Int(-1));
    }
    Ok(Reply::Int(search(s, &span, bit, end_given)))
}

/// BITPOS over a resolved range: the edge bytes are searched through their masks.
fn search(s: &[u8], span: &Span, bit: bool, end_given: bool) -> i64 {
    let (mut start, end) = (span.start, span.end);
    let (first, last) = (span.first_mask, span.last_mask);
    let mut bytes = end - start + 1;
    let pos = 'found: {
        if first != 0 {
            let mut t = if bit {
                s[start as usize] & !first
            } else {
                s[start as usize] | first
            };
            if last != 0 && bytes == 1 {
                t = if bit { t & !last } else { t | last };
            }
            let pos = bits::first_bit(&[t], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - i64::from(last != 0);
        if cur > 0 {
            let a = start as usize;
            let pos = bits::first_bit(&s[a..a + cur as usize], bit);
            if bytes == cur || (pos != -1 && pos != cur << 3) {
                break 'found pos;
            }
            start += cur;
            bytes -= cur;
        }
        let e = s[end as usize];
        let t = if bit { e & !last } else { e | last };
        bits::first_bit(&[t], bit)
    };
    if end_given && !bit && pos == bytes << 3 {
        return -1;
    }
    if pos == -1 { -1 } else { pos + (start << 3) }
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let name = args.bytes()?;
    let op = [
        (&b"and"[..], BitOp::And),
        (b"or", BitOp::Or),
        (b"xor", BitOp::Xor),
        (b"not", BitOp::Not),
    ]
    .into_iter()
    .find(|(n, _)| name.eq_ignore_ascii_case(n))
    .map(|(_, o)| o)
    .ok_or(CmdError::Syntax)?;
    if op == BitOp::Not && args.remaining() != 2 {
        return Err(CmdError::msg(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = args.bytes()?;
    let keys = args.rest();
    // First the lookups (expiry, types), then the computation over borrowed values.
    let mut live = Vec::with_capacity(keys.len());
    for k in &keys {
        live.push(match ctx.lookup(k) {
            None => false,
            Some(Value::Str(_)) => true,
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    let db = &ctx.store.dbs[ctx.db];
    let srcs: Vec<&[u8]> = keys
        .iter()
        .zip(&live)
        .map(|(k, &l)| match db.keys.get(&k[..]) {
            Some(Value::Str(s)) if l => &s[..],
            _ => &[][..],
        })
        .collect();
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    if maxlen == 0 {
        if ctx.delete(&dest) {
            ctx.notify(crate::db::notify::GENERIC, "del", &dest);
        }
        return Ok(Reply::Int(0));
    }
    let mut res = vec![0u8; maxlen];
    res[..srcs[0].len()].copy_from_slice(srcs[0]);
    if op == BitOp::Not {
        res.iter_mut().for_each(|b| *b = !*b);
    }
    for src in &srcs[1..] {
        let (head, tail) = res.split_at_mut(src.len());
        for (r, b) in head.iter_mut().zip(src.iter()) {
            match op {
                BitOp::And => *r &= b,
                BitOp::Or => *r |= b,
                _ => *r ^= b,
            }
        }
        if op == BitOp::And {
            tail.fill(0);
        }
    }
    ctx.exists_write(&dest);
    let db = ctx.db();
    db.set(&dest, Value::Str(res.into_boxed_slice()), false);
    // A string Redis builds itself, never shared: `raw`.
    db.mark_edited(&dest);
    wrote(ctx, &dest, 1);
    ctx.notify(crate::db::notify::STRING, "set", &dest);
    Ok(Reply::Int(maxlen as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Store;
    use bytes::Bytes;

    fn argv(items: &[&str]) -> Vec<Bytes> {
        items
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn run(store: &mut Store, items: &[&str]) -> Result<Reply, CmdError> {
        let mut props = Vec::new();
        let mut ctx = Ctx::new(store, 0, 1_000, &mut props);
        let mut a = Args::new(argv(items));
        let name = items[0];
        let r = match name {
            "setbit" => setbit(&mut ctx, &mut a),
            "bitcount" => bitcount(&mut ctx, &mut a),
            "bitpos" => bitpos(&mut ctx, &mut a),
            _ => bitop(&mut ctx, &mut a),
        };
        ctx.finish(&a);
        r
    }

    #[test]
    fn setbit_grows_and_counts() {
        let mut s = Store::new(1);
        assert_eq!(run(&mut s, &["setbit", "k", "17", "1"]), Ok(Reply::Int(0)));
        assert_eq!(run(&mut s, &["setbit", "k", "17", "1"]), Ok(Reply::Int(1)));
        assert_eq!(run(&mut s, &["bitcount", "k"]), Ok(Reply::Int(1)));
        assert_eq!(
            run(&mut s, &["bitpos", "k", "1", "2", "-1", "bit"]),
            Ok(Reply::Int(17))
        );
        assert!(run(&mut s, &["setbit", "k", "4294967296", "1"]).is_err());
    }
}
