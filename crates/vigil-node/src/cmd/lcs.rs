//! LCS: the longest common subsequence of two strings, its length, or the matching ranges.
//!
//! The table is `(len(a) + 1) × (len(b) + 1)` 32-bit cells, as in Redis, and bounded the same
//! way: over `proto-max-bulk-len` bytes (512 MiB, Redis' default) the command is refused
//! before anything is allocated, and a failed allocation is an error, not an abort.

use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::Value;
use crate::node::{Handler, row};

/// The largest table LCS may allocate, in bytes (Redis' default `proto-max-bulk-len`).
pub const MAX_TABLE_BYTES: u64 = 512 * 1024 * 1024;

/// The LCS row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "lcs",
        -3,
        [READONLY],
        1,
        2,
        1,
        "string",
        "Finds the longest common subsequence of two strings.",
        Data(lcs)
    )]
}

fn string_of(ctx: &mut Ctx, key: &[u8]) -> Result<Vec<u8>, ()> {
    match ctx.lookup(key) {
        None => Ok(Vec::new()),
        Some(Value::Str(s)) => Ok(s.to_vec()),
        Some(_) => Err(()),
    }
}

fn lcs(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let (ka, kb) = (args.bytes()?, args.bytes()?);
    let (a, b) = (string_of(ctx, &ka), string_of(ctx, &kb));
    let (Ok(a), Ok(b)) = (a, b) else {
        return Err(CmdError::msg(
            "ERR The specified keys must contain string values",
        ));
    };
    let (mut getlen, mut getidx, mut withlen, mut minlen) = (false, false, false, 0i64);
    while let Some(opt) = args.next() {
        match &opt.to_ascii_uppercase()[..] {
            b"IDX" => getidx = true,
            b"LEN" => getlen = true,
            b"WITHMATCHLEN" => withlen = true,
            b"MINMATCHLEN" if !args.is_empty() => minlen = parse_int(&args.bytes()?)?.max(0),
            _ => return Err(CmdError::Syntax),
        }
    }
    if getlen && getidx {
        return Err(CmdError::msg(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() as u64 >= u64::from(u32::MAX) - 1 || b.len() as u64 >= u64::from(u32::MAX) - 1 {
        return Err(CmdError::msg("ERR String too long for LCS"));
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells * 4 > MAX_TABLE_BYTES {
        return Err(CmdError::msg(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut t: Vec<u32> = Vec::new();
    if t.try_reserve_exact(cells as usize).is_err() {
        return Err(CmdError::msg(
            "ERR Insufficient memory, failed allocating transient memory for LCS",
        ));
    }
    let w = b.len() + 1;
    t.resize(cells as usize, 0);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[a.len() * w + b.len()];
    if getlen {
        return Ok(Reply::Int(i64::from(total)));
    }
    // Walk back from the end, collecting the subsequence and the ranges of matches.
    let mut out = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let none = a.len();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (none, 0, 0, 0);
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            out[idx - 1] = a[i - 1];
            if a_start == none {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != none {
                emit = true;
            }
        }
        let len = a_end.wrapping_sub(a_start).wrapping_add(1);
        if emit {
            if getidx && (minlen == 0 || len as i64 >= minlen) {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if withlen {
                    m.push(Reply::Int(len as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = none;
        }
    }
    if getidx {
        return Ok(Reply::Map(vec![
            (Reply::bulk_static("matches"), Reply::Array(matches)),
            (Reply::bulk_static("len"), Reply::Int(i64::from(total))),
        ]));
    }
    Ok(Reply::bulk(&out))
}
