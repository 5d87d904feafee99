//! SORT and SORT_RO: sort a list, set or sorted set, numerically or ALPHA, by the elements
//! themselves or by keys a pattern names (`BY weight_*`, `BY h_*->field`), returning the
//! elements or values fetched through `GET` patterns, or storing them as a list.
//!
//! Redis 7.0's rules: `BY` with a constant pattern skips sorting (`nosort`), keeping a list's
//! or a sorted set's own order; a set is sorted ALPHA anyway when the result is stored or a
//! script asks, so replicas and replays get the same list. The sort is stable, as glibc's
//! `qsort` (a merge sort) is for these element sizes, so ties keep the input order. STORE is
//! propagated as received (the result is deterministic).

use std::cmp::Ordering;

use bytes::Bytes;
use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::ctx::Ctx;
use crate::db::{List, Value, boxed};
use crate::node::{Handler, row};

/// The SORT family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "sort",
            -2,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "generic",
            "Sorts a list, set or sorted set; may store the result.",
            Data(|c, a| sort(c, a, false)),
            keys = vigil_resp::keys::sort
        ),
        row!(
            "sort_ro",
            -2,
            // Movable as in Redis 7.0: BY and GET patterns name keys too.
            [READONLY, MOVABLEKEYS],
            1,
            1,
            1,
            "generic",
            "Sorts a list, set or sorted set.",
            Data(|c, a| sort(c, a, true)),
            keys = vigil_resp::keys::sort_ro
        ),
    ]
}

/// The parsed options.
#[derive(Default)]
struct Opts {
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    store: Option<Bytes>,
    by: Option<Bytes>,
    dontsort: bool,
    get: Vec<Bytes>,
}

fn parse(args: &mut Args, readonly: bool, partial_keys: bool) -> Result<Opts, CmdError> {
    let mut o = Opts {
        limit: (0, -1),
        ..Opts::default()
    };
    let a = args.rest();
    let mut j = 0;
    while j < a.len() {
        let left = a.len() - j - 1;
        match &a[j].to_ascii_lowercase()[..] {
            b"asc" => o.desc = false,
            b"desc" => o.desc = true,
            b"alpha" => o.alpha = true,
            b"limit" if left >= 2 => {
                o.limit = (parse_int(&a[j + 1])?, parse_int(&a[j + 2])?);
                j += 2;
            }
            b"store" if !readonly && left >= 1 => {
                o.store = Some(a[j + 1].clone());
                j += 1;
            }
            b"by" if left >= 1 => {
                // A pattern without `*` names no key per element: nothing to sort by.
                o.dontsort = !c_str(&a[j + 1]).contains(&b'*');
                if !o.dontsort && partial_keys {
                    return Err(CmdError::msg(
                        "ERR BY option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                o.by = Some(a[j + 1].clone());
                j += 1;
            }
            b"get" if left >= 1 => {
                if partial_keys {
                    return Err(CmdError::msg(
                        "ERR GET option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                o.get.push(a[j + 1].clone());
                j += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    Ok(o)
}

/// The bytes up to the first NUL, as C string functions see them.
fn c_str(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// The value a pattern names for element `subst`: `#` is the element itself, `*` is
/// replaced by it, `->field` reads a hash field; a string key otherwise.
fn by_pattern(ctx: &mut Ctx, pattern: &[u8], subst: &[u8]) -> Option<Bytes> {
    if c_str(pattern) == b"#" {
        return Some(Bytes::copy_from_slice(subst));
    }
    let star = c_str(pattern).iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let field = c_str(after)
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| after.get(f + 2).is_some_and(|&c| c != 0))
        .map(|f| &after[f + 2..]);
    let post_len = after.len() - field.map_or(0, |f| f.len() + 2);
    let mut key = Vec::with_capacity(star + subst.len() + post_len);
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&after[..post_len]);
    match (ctx.lookup(&key)?, field) {
        (Value::Hash(h), Some(f)) => h.get(f).map(Bytes::copy_from_slice),
        (Value::Str(s), None) => Some(Bytes::copy_from_slice(s)),
        _ => None,
    }
}

/// One element to sort: itself, its numeric weight, its ALPHA weight from a BY pattern.
struct Elem {
    obj: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

fn sort(ctx: &mut Ctx, args: &mut Args, readonly: bool) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let mut o = parse(args, readonly, ctx.partial_keys)?;
    let (kind, len) = match ctx.lookup(&key) {
        None => (0, 0),
        Some(Value::List(l)) => (1, l.len()),
        Some(Value::Set(s)) => (2, s.len()),
        Some(Value::ZSet(z)) => (3, z.len()),
        Some(_) => return Err(CmdError::WrongType),
    };
    if o.dontsort && kind == 2 && (o.store.is_some() || ctx.in_script) {
        // A set's own order is not reproducible: sort it so the result is.
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let vlen = len as i64;
    let start = o.limit.0.max(0).min(vlen);
    let count = o.limit.1.max(-1).min(vlen);
    let mut end = if count < 0 {
        vlen - 1
    } else {
        start + count - 1
    };
    let mut start = start;
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    if end >= vlen {
        end = vlen - 1;
    }
    let ranged = o.dontsort && (kind == 1 || kind == 3);
    // Looked up once above as Redis does (a miss announced once).
    let reads = std::mem::replace(&mut ctx.reads, false);
    let items: Vec<Bytes> = match ctx.lookup(&key) {
        Some(Value::List(l)) if ranged => {
            let v = range_of(l.iter().map(|m| &m[..]), len, start, end, o.desc);
            (end, start) = ((end - start).max(-1), 0);
            v
        }
        Some(Value::ZSet(z)) if ranged => {
            let v = range_of(z.iter().map(|(_, m)| m), len, start, end, o.desc);
            (end, start) = ((end - start).max(-1), 0);
            v
        }
        Some(Value::List(l)) => l.iter().map(|m| Bytes::copy_from_slice(m)).collect(),
        Some(Value::Set(s)) => s.iter().map(|m| Bytes::copy_from_slice(&m)).collect(),
        Some(Value::ZSet(z)) => z.iter().map(|(_, m)| Bytes::copy_from_slice(m)).collect(),
        _ => Vec::new(),
    };
    ctx.reads = reads;
    let mut v: Vec<Elem> = items
        .into_iter()
        .map(|obj| Elem {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();
    if !o.dontsort {
        let mut bad = false;
        for e in &mut v {
            let w = match &o.by {
                Some(p) => match by_pattern(ctx, p, &e.obj) {
                    Some(w) => w,
                    None => continue,
                },
                None => e.obj.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    e.cmp = Some(w);
                }
            } else {
                match strtod(&w) {
                    Some(s) => e.score = s,
                    None => bad = true,
                }
            }
        }
        if bad {
            return Err(CmdError::msg(
                "ERR One or more scores can't be converted into double",
            ));
        }
        let (alpha, by, store, desc) = (o.alpha, o.by.is_some(), o.store.is_some(), o.desc);
        let cmp = |a: &Elem, b: &Elem| {
            let c = compare(a, b, alpha, by, store);
            if desc { c.reverse() } else { c }
        };
        if by && (start != 0 || end != vlen - 1) && end >= start {
            // Redis sorts only the LIMIT window here, with its own partial quicksort, whose
            // order of equal weights is its own: follow it.
            pqsort(&mut v, &cmp, start as usize, end as usize);
        } else {
            v.sort_by(cmp);
        }
    }
    let picked = if end >= start {
        &v[start as usize..=end as usize]
    } else {
        &v[..0]
    };
    let Some(dst) = o.store.clone() else {
        let mut out = Vec::new();
        for e in picked {
            if o.get.is_empty() {
                out.push(Reply::Bulk(e.obj.clone()));
            }
            for g in &o.get {
                out.push(by_pattern(ctx, g, &e.obj).map_or(Reply::Nil, Reply::Bulk));
            }
        }
        return Ok(Reply::Array(out));
    };
    let mut list = List::new();
    for e in picked {
        if o.get.is_empty() {
            list.push_back(boxed(&e.obj));
        }
        for g in &o.get {
            list.push_back(boxed(&by_pattern(ctx, g, &e.obj).unwrap_or_default()));
        }
    }
    let n = list.len();
    if n == 0 {
        if ctx.delete(&dst) {
            ctx.notify(crate::db::notify::GENERIC, "del", &dst);
        }
    } else {
        ctx.exists_write(&dst);
        let db = ctx.db();
        db.set(&dst, Value::List(Box::new(list)), false);
        db.touch(&dst);
        ctx.changed(n as u64);
        ctx.notify(crate::db::notify::LIST, "sortstore", &dst);
    }
    Ok(Reply::Int(n as i64))
}

/// Redis' partial quicksort (`pqsort.c`, after NetBSD's qsort): sorts enough of `v` that
/// positions `l..=r` hold what a full sort would put there. Ties come out in its own order,
/// which Redis' replies show, so the algorithm is followed step for step.
pub(crate) fn pqsort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, l: usize, r: usize) {
    let mut a = 0usize;
    let mut n = v.len();
    let le = |i: usize, j: usize, v: &[T]| cmp(&v[i], &v[j]);
    let vecswap = |v: &mut [T], i: usize, j: usize, k: usize| {
        for x in 0..k {
            v.swap(i + x, j + x);
        }
    };
    let outside = |s: usize, cnt: usize| (l < s && r < s) || (l >= s + cnt && r >= s + cnt);
    loop {
        if n < 7 {
            for pm in a + 1..a + n {
                let mut pl = pm;
                while pl > a && le(pl - 1, pl, v).is_gt() {
                    v.swap(pl, pl - 1);
                    pl -= 1;
                }
            }
            return;
        }
        let med3 = |v: &[T], x: usize, y: usize, z: usize| {
            if le(x, y, v).is_lt() {
                if le(y, z, v).is_lt() {
                    y
                } else if le(x, z, v).is_lt() {
                    z
                } else {
                    x
                }
            } else if le(y, z, v).is_gt() {
                y
            } else if le(x, z, v).is_lt() {
                x
            } else {
                z
            }
        };
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d);
                pm = med3(v, pm - d, pm, pm + d);
                pn = med3(v, pn - 2 * d, pn - d, pn);
            }
            pm = med3(v, pl, pm, pn);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        // `pc`, `pd` can step just below `a + 1`: signed to follow the C pointers.
        let (mut pc, mut pd) = ((a + n - 1) as isize, (a + n - 1) as isize);
        loop {
            while pb as isize <= pc {
                let c = le(pb, a, v);
                if c.is_gt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb as isize <= pc {
                let c = le(pc as usize, a, v);
                if c.is_lt() {
                    break;
                }
                if c.is_eq() {
                    v.swap(pc as usize, pd as usize);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb as isize > pc {
                break;
            }
            v.swap(pb, pc as usize);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let k = (pa - a).min(pb - pa);
        vecswap(v, a, pb - k, k);
        let k = ((pd - pc) as usize).min(pn - pd as usize - 1);
        vecswap(v, pb, pn - k, k);
        let k = pb - pa;
        if k > 1 && !outside(a, k) {
            pqsort_at(v, cmp, l, r, a, k);
        }
        let k = (pd - pc) as usize;
        if k <= 1 {
            return;
        }
        a = pn - k;
        n = k;
        if outside(a, n) {
            return;
        }
    }
}

/// [`pqsort`] on `v[a..a + n]`, the window still given in positions of the whole `v`.
fn pqsort_at<T>(
    v: &mut [T],
    cmp: &impl Fn(&T, &T) -> Ordering,
    l: usize,
    r: usize,
    a: usize,
    n: usize,
) {
    let sub = &mut v[a..a + n];
    pqsort(sub, cmp, l.saturating_sub(a), r.saturating_sub(a));
}

/// Elements `start..=end` of an ordered collection of `len`, walked backwards for DESC.
fn range_of<'a, I>(it: I, len: usize, start: i64, end: i64, desc: bool) -> Vec<Bytes>
where
    I: DoubleEndedIterator<Item = &'a [u8]>,
{
    if end < start || len == 0 {
        return Vec::new();
    }
    let take = (end - start + 1) as usize;
    let map = Bytes::copy_from_slice;
    if desc {
        it.rev().skip(start as usize).take(take).map(map).collect()
    } else {
        it.skip(start as usize).take(take).map(map).collect()
    }
}

/// Redis' `sortCompare`, before DESC reverses it.
fn compare(a: &Elem, b: &Elem, alpha: bool, by: bool, store: bool) -> Ordering {
    // Stored results compare binary-safe; replies use strcoll (byte order up to a NUL in
    // the C and C.UTF-8 locales).
    let text = |x: &[u8], y: &[u8]| {
        if store {
            x.cmp(y)
        } else {
            c_str(x).cmp(c_str(y))
        }
    };
    if !alpha {
        return a
            .score
            .partial_cmp(&b.score)
            .filter(|o| o.is_ne())
            .unwrap_or_else(|| a.obj.cmp(&b.obj));
    }
    if by {
        return match (&a.cmp, &b.cmp) {
            (Some(x), Some(y)) => text(x, y),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
        };
    }
    text(&a.obj, &b.obj)
}

/// C's `strtod` over the whole argument, as SORT uses it: leading spaces, decimal or hex,
/// `inf`/`infinity`; `None` for trailing garbage, NaN or a result out of range. An empty
/// string is 0, as strtod leaves it.
pub(crate) fn strtod(b: &[u8]) -> Option<f64> {
    let b = c_str(b);
    if b.is_empty() {
        return Some(0.0);
    }
    let body = b.trim_ascii_start();
    let s = std::str::from_utf8(body).ok()?;
    let (neg, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = unsigned.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if let Some(hex) = lower.strip_prefix("0x") {
        hex_float(hex)?
    } else {
        if !unsigned
            .bytes()
            .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
        {
            return None;
        }
        let v: f64 = unsigned.parse().ok()?;
        let mantissa = unsigned.split(['e', 'E']).next().unwrap_or("");
        let nonzero = mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c));
        if v.is_infinite() || (nonzero && (v == 0.0 || v < f64::MIN_POSITIVE)) {
            return None;
        }
        v
    };
    Some(if neg { -v } else { v })
}

/// A hexadecimal float after its `0x`: digits, an optional fraction, an optional `p` exponent.
fn hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0.0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window `l..=r` holds what a full sort puts there, for every window and length.
    #[test]
    fn pqsort_sorts_the_window() {
        let mut x = 0x1234_5678u64;
        for len in 0..60usize {
            for (l, r) in [(0, 0), (0, len / 2), (len / 3, len / 2), (len / 2, len)] {
                if len == 0 || r >= len || l > r {
                    continue;
                }
                let mut v: Vec<u64> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x % 20
                    })
                    .collect();
                let mut want = v.clone();
                want.sort();
                pqsort(&mut v, &|a: &u64, b: &u64| a.cmp(b), l, r);
                assert_eq!(v[l..=r], want[l..=r], "len {len} window {l}..={r}");
            }
        }
    }

    #[test]
    fn strtod_as_c() {
        let cases: &[(&str, Option<f64>)] = &[
            ("", Some(0.0)),
            ("  3", Some(3.0)),
            ("3 ", None),
            ("1.5e3", Some(1500.0)),
            (".5", Some(0.5)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("nan", None),
            ("1e400", None),
            ("0x10", Some(16.0)),
            ("abc", None),
            ("   ", None),
            ("1e", None),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(strtod(s.as_bytes()), *want, "#{i} {s:?}");
        }
    }
}
