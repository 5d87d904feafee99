//! BITFIELD and BITFIELD_RO: integers of 1..64 bits at any bit offset of a string, with
//! Redis' overflow policies (WRAP, SAT, FAIL) applying to the operations that follow them.
//!
//! All operations are parsed (and every argument error reported) before any runs; the
//! string then grows once, to the highest bit a write touches. The command propagates as
//! received when it changed or grew the string.

use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::bitmaps::{bit_offset, bitmap_for_write, wrote};
use crate::ctx::Ctx;
use crate::db::bits::{self, Overflow};
use crate::node::{Handler, row};

/// The BITFIELD rows (the bitmap family's other rows are in [`super::bitmaps`]).
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "bitfield",
            -2,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "bitmap",
            "Performs arbitrary bitfield integer operations on strings.",
            Data(|c, a| bitfield(c, a, false))
        ),
        row!(
            "bitfield_ro",
            -2,
            [READONLY, FAST],
            1,
            1,
            1,
            "bitmap",
            "Performs arbitrary read-only bitfield integer operations on strings.",
            Data(|c, a| bitfield(c, a, true))
        ),
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum FieldKind {
    Get,
    Set,
    Incr,
}

/// One BITFIELD operation, parsed.
#[derive(Clone, Copy)]
struct FieldOp {
    kind: FieldKind,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || {
        CmdError::msg(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let digits = &arg[1..];
    // Redis reads the width as a C string: it ends at the first NUL byte.
    let digits = &digits[..digits.iter().position(|&b| b == 0).unwrap_or(digits.len())];
    match vigil_resp::args::parse_int(digits) {
        Ok(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(err()),
    }
}

fn parse_fields(ctx: &Ctx, args: &mut Args) -> Result<Vec<FieldOp>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    while let Some(sub) = args.next() {
        let rem = args.remaining();
        let kind = if sub.eq_ignore_ascii_case(b"get") && rem >= 2 {
            FieldKind::Get
        } else if sub.eq_ignore_ascii_case(b"set") && rem >= 3 {
            FieldKind::Set
        } else if sub.eq_ignore_ascii_case(b"incrby") && rem >= 3 {
            FieldKind::Incr
        } else if sub.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
            let w = args.bytes()?;
            overflow = [
                (&b"wrap"[..], Overflow::Wrap),
                (b"sat", Overflow::Sat),
                (b"fail", Overflow::Fail),
            ]
            .into_iter()
            .find(|(n, _)| w.eq_ignore_ascii_case(n))
            .map(|(_, o)| o)
            .ok_or_else(|| CmdError::msg("ERR Invalid OVERFLOW type specified"))?;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(&args.bytes()?)?;
        let offset = bit_offset(ctx, &args.bytes()?, Some(bits))?;
        let value = if kind == FieldKind::Get {
            0
        } else {
            args.i64()?
        };
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            value,
            overflow,
        });
    }
    Ok(ops)
}

fn bitfield(ctx: &mut Ctx, args: &mut Args, read_only: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let ops = parse_fields(ctx, args)?;
    let highest = ops
        .iter()
        .filter(|o| o.kind != FieldKind::Get)
        .map(|o| o.offset + o.bits as u64 - 1)
        .max();
    let Some(highest) = highest else {
        // Only GETs: a read lookup, as Redis 7.0 does even for BITFIELD.
        ctx.reads = true;
        let s = ctx.get_str(&key)?.unwrap_or(b"");
        return Ok(Reply::Array(
            ops.iter()
                .map(|o| Reply::Int(bits::get_padded(s, o.offset, o.bits, o.signed)))
                .collect(),
        ));
    };
    if read_only {
        return Err(CmdError::msg(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let (s, grown) = bitmap_for_write(ctx, &key, highest)?;
    let mut changes = 0;
    let replies = ops
        .iter()
        .map(|o| {
            let r = apply_field(s, o);
            if let Some((_, old, new)) = r
                && o.kind != FieldKind::Get
                && (grown || old != new)
            {
                changes += 1;
            }
            r.map_or(Reply::Nil, |(reply, _, _)| Reply::Int(reply))
        })
        .collect();
    // Redis counts only fields that changed; a string grown by operations that all failed
    // is still propagated here, so replicas hold the same padded string.
    if changes > 0 || grown {
        wrote(ctx, &key, changes.max(1));
    }
    if changes > 0 {
        ctx.notify(crate::db::notify::STRING, "setbit", &key);
    }
    Ok(Reply::Array(replies))
}

/// Runs one operation on a string that holds its bits: `(reply, old bits, new bits)`, or
/// `None` when OVERFLOW FAIL refused it.
fn apply_field(s: &mut [u8], o: &FieldOp) -> Option<(i64, u64, u64)> {
    if o.kind == FieldKind::Get {
        let v = bits::get_padded(s, o.offset, o.bits, o.signed);
        return Some((v, 0, 0));
    }
    let (reply, old, new) = if o.signed {
        let old = bits::get_signed(s, o.offset, o.bits);
        let (target, incr, reply_new) = match o.kind {
            FieldKind::Incr => (old, o.value, true),
            _ => (o.value, 0, false),
        };
        let new = match bits::signed_overflow(target, incr, o.bits, o.overflow) {
            Some(_) if o.overflow == Overflow::Fail => return None,
            Some(limit) => limit,
            None => target.wrapping_add(incr),
        };
        (if reply_new { new } else { old }, old as u64, new as u64)
    } else {
        let old = bits::get_unsigned(s, o.offset, o.bits);
        let (target, incr, reply_new) = match o.kind {
            FieldKind::Incr => (old, o.value, true),
            _ => (o.value as u64, 0, false),
        };
        let new = match bits::unsigned_overflow(target, incr, o.bits, o.overflow) {
            Some(_) if o.overflow == Overflow::Fail => return None,
            Some(limit) => limit,
            None => target.wrapping_add(incr as u64),
        };
        (if reply_new { new as i64 } else { old as i64 }, old, new)
    };
    bits::set_bits(s, o.offset, o.bits, new);
    Some((reply, old, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Store;
    use bytes::Bytes;

    #[test]
    fn hash_offsets_grow_and_overflow_policies_apply() {
        let mut store = Store::new(1);
        let mut props = Vec::new();
        let mut run = |items: &[&str]| {
            let mut ctx = Ctx::new(&mut store, 0, 1_000, &mut props);
            let v = items.iter().map(|s| Bytes::copy_from_slice(s.as_bytes()));
            let mut a = Args::new(v.collect());
            let r = bitfield(&mut ctx, &mut a, false);
            ctx.finish(&a);
            r
        };
        let ints = |v: &[i64]| Ok(Reply::Array(v.iter().map(|&n| Reply::Int(n)).collect()));
        assert_eq!(
            run(&["bitfield", "k", "incrby", "u2", "#100", "7"]),
            ints(&[3])
        );
        assert_eq!(
            run(&[
                "bitfield", "k", "overflow", "sat", "incrby", "i8", "0", "200"
            ]),
            ints(&[127])
        );
        assert_eq!(
            run(&[
                "bitfield", "k", "overflow", "fail", "incrby", "i8", "0", "1"
            ]),
            Ok(Reply::Array(vec![Reply::Nil]))
        );
    }
}
