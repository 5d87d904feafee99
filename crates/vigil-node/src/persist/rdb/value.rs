//! Every RDB value type ↔ [`Value`]: decoding all the types Redis 7.0 reads (and the set
//! listpack of 7.2), encoding each value as Redis 7.0 writes it for the same size.

use std::io::Read;

use super::listpack::{self, Item};
use super::reader::Reader;
use super::writer::{put_binary_double, put_len, put_string};
use super::{RdbError, Result, intset, stream, types, ziplist};
use crate::db::encoding::Thresholds;
use crate::db::zset::Limits;
use crate::db::{Hash, Key, List, Set, Value, ZSet, hash};

/// Quicklist node containers.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;
/// Redis' estimate of the bytes an element adds to a list node beyond its own length.
const NODE_OVERHEAD: usize = 8;

/// Reads a value of RDB type `ty`, in the encoding Redis' rdbLoadObject gives it under `t`. An
/// empty aggregate is returned as such: `RESTORE` refuses it, a file load skips the key (as
/// Redis does).
pub fn decode<R: Read>(ty: u8, r: &mut Reader<R>, t: &Thresholds) -> Result<Value> {
    let at = r.offset();
    let limits = t.zset();
    Ok(match ty {
        types::STRING => Value::Str(r.string()?.into()),
        types::LIST => {
            let n = r.count(1, "list")?;
            let mut l = List::with_capacity(n as usize);
            for _ in 0..n {
                l.push_back(r.string()?.into());
            }
            Value::List(Box::new(l))
        }
        types::SET => {
            let n = r.count(1, "set")?;
            let mut members: Vec<Key> = Vec::with_capacity((n as usize).min(1 << 16));
            for _ in 0..n {
                members.push(r.string()?.into());
            }
            match Set::build(members, t.set_max()) {
                Some(s) => Value::Set(s),
                None => return r.corrupt("duplicate set member", at),
            }
        }
        types::ZSET | types::ZSET_2 => {
            let n = r.count(2, "sorted set")?;
            let mut items = Vec::with_capacity((n as usize).min(1 << 16));
            for _ in 0..n {
                let m = r.string()?;
                let score = if ty == types::ZSET_2 {
                    r.binary_double()?
                } else {
                    r.text_double()?
                };
                if score.is_nan() {
                    return r.corrupt("NaN score in sorted set", at);
                }
                items.push((m.into(), score));
            }
            match ZSet::build(items, limits) {
                Some(z) => Value::ZSet(z),
                None => return r.corrupt("duplicate sorted set member", at),
            }
        }
        types::HASH => {
            let n = r.count(2, "hash")?;
            let mut pairs: Vec<(Key, Key)> = Vec::with_capacity((n as usize).min(1 << 16));
            for _ in 0..n {
                let f = r.string()?;
                pairs.push((f.into(), r.string()?.into()));
            }
            match Hash::build(pairs, t.hash()) {
                Some(h) => Value::Hash(h),
                None => return r.corrupt("duplicate hash field", at),
            }
        }
        types::HASH_ZIPMAP => {
            let b = r.string()?;
            hash_from_pairs(ziplist::decode_zipmap(&b, at)?, at, t.hash())?
        }
        types::LIST_ZIPLIST => {
            let b = r.string()?;
            let items = ziplist::decode(&b, at)?;
            Value::List(Box::new(
                items.into_iter().map(|i| i.into_bytes().into()).collect(),
            ))
        }
        types::SET_INTSET => {
            let b = r.string()?;
            let values = intset::decode(&b, at)?;
            // The width is kept, as Redis keeps a loaded intset's.
            let width = b.first().map_or(2, |w| usize::from(*w));
            match Set::from_ints(&values, width, t.set_max()) {
                Some(s) => Value::Set(s),
                None => return r.corrupt("intset", at),
            }
        }
        types::SET_LISTPACK => {
            let b = r.string()?;
            let members = listpack::decode(&b, at)?
                .into_iter()
                .map(|i| i.into_bytes().into())
                .collect();
            match Set::build(members, t.set_max()) {
                Some(s) => Value::Set(s),
                None => return r.corrupt("duplicate set member", at),
            }
        }
        types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            let b = r.string()?;
            let items = if ty == types::ZSET_ZIPLIST {
                ziplist::decode(&b, at)?
            } else {
                listpack::decode(&b, at)?
            };
            zset_from_items(items, at, limits)?
        }
        types::HASH_ZIPLIST | types::HASH_LISTPACK => {
            let b = r.string()?;
            let items = if ty == types::HASH_ZIPLIST {
                ziplist::decode(&b, at)?
            } else {
                listpack::decode(&b, at)?
            };
            // Redis keeps a loaded listpack whatever its lengths: only the count converts it.
            let limits = hash::Limits {
                value: usize::MAX,
                ..t.hash()
            };
            hash_from_pairs(pairs(items, at)?, at, limits)?
        }
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let nodes = r.count(2, "list node")?;
            let mut l = List::new();
            for _ in 0..nodes {
                let container = if ty == types::LIST_QUICKLIST_2 {
                    r.length()?
                } else {
                    CONTAINER_PACKED
                };
                let node_at = r.offset();
                let b = r.string()?;
                if b.is_empty() {
                    return r.corrupt("empty list node", node_at);
                }
                match container {
                    CONTAINER_PLAIN => l.push_back(b.into()),
                    CONTAINER_PACKED => {
                        let items = if ty == types::LIST_QUICKLIST {
                            ziplist::decode(&b, node_at)?
                        } else {
                            listpack::decode(&b, node_at)?
                        };
                        if items.is_empty() {
                            return r.corrupt("empty list node", node_at);
                        }
                        l.extend(items.into_iter().map(|i| i.into_bytes().into()));
                    }
                    c => return r.corrupt(format!("list node container {c}"), node_at),
                }
            }
            Value::List(Box::new(l))
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(stream::decode(ty, r)?))
        }
        types::MODULE | types::MODULE_2 => {
            return Err(RdbError::Unsupported {
                what: "module value".into(),
                offset: at,
            });
        }
        t => {
            return Err(RdbError::Unsupported {
                what: format!("value type {t}"),
                offset: at,
            });
        }
    })
}

/// Splits a flat item list into pairs.
fn pairs(items: Vec<Item>, at: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::corrupt(
            "odd number of elements in a pair list",
            at,
        ));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a.into_bytes(), b.into_bytes()));
    }
    Ok(out)
}

fn hash_from_pairs(p: Vec<(Vec<u8>, Vec<u8>)>, at: u64, limits: hash::Limits) -> Result<Value> {
    let pairs = p.into_iter().map(|(f, v)| (f.into(), v.into())).collect();
    let h =
        Hash::build(pairs, limits).ok_or_else(|| RdbError::corrupt("duplicate hash field", at))?;
    Ok(Value::Hash(h))
}

/// A sorted set from a listpack's items; it stays compact unless too many (Redis keeps a loaded
/// listpack whatever its members' lengths).
fn zset_from_items(items: Vec<Item>, at: u64, limits: Limits) -> Result<Value> {
    let limits = Limits {
        value: usize::MAX,
        ..limits
    };
    let mut pairs = Vec::with_capacity(items.len() / 2);
    if !items.len().is_multiple_of(2) {
        return Err(RdbError::corrupt(
            "odd number of elements in a sorted set",
            at,
        ));
    }
    let mut it = items.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let score = match s {
            Item::Int(v) => v as f64,
            Item::Str(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|d| !d.is_nan())
                .ok_or_else(|| RdbError::corrupt("sorted set score", at))?,
        };
        pairs.push((m.into_bytes().into(), score));
    }
    let z = ZSet::build(pairs, limits)
        .ok_or_else(|| RdbError::corrupt("duplicate sorted set member", at))?;
    Ok(Value::ZSet(z))
}

/// A score as Redis writes it into a listpack (`d2string`): integral values within ±2^62 as
/// integers, others like `%.17g`.
pub fn score_text(d: f64) -> String {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if d.is_finite() && d != 0.0 && (-LIMIT..=LIMIT).contains(&d) && (d as i64) as f64 == d {
        return itoa::Buffer::new().format(d as i64).to_string();
    }
    vigil_resp::reply::format_double(d)
}

/// Writes a value as Redis 7.0 would for the same size; returns its RDB type.
pub fn encode(v: &Value, t: &Thresholds, out: &mut Vec<u8>) -> u8 {
    match v {
        Value::Str(s) => {
            put_string(out, s);
            types::STRING
        }
        Value::List(l) => {
            encode_list(l, t, out);
            types::LIST_QUICKLIST_2
        }
        Value::Set(s) => match s.intset_parts() {
            Some((width, body)) => {
                let mut b = Vec::with_capacity(8 + body.len());
                b.extend_from_slice(&(width as u32).to_le_bytes());
                b.extend_from_slice(&(s.len() as u32).to_le_bytes());
                b.extend_from_slice(body);
                put_string(out, &b);
                types::SET_INTSET
            }
            None => {
                put_len(out, s.len() as u64);
                for m in s.iter() {
                    put_string(out, &m);
                }
                types::SET
            }
        },
        Value::Hash(h) if h.is_packed() => {
            let mut lp = listpack::Builder::new();
            for (f, v) in h.iter() {
                lp.push(f);
                lp.push(v);
            }
            put_string(out, &lp.finish());
            types::HASH_LISTPACK
        }
        Value::Hash(h) => {
            put_len(out, h.len() as u64);
            for (f, v) in h.iter() {
                put_string(out, f);
                put_string(out, v);
            }
            types::HASH
        }
        Value::ZSet(z) if z.is_packed() => {
            let mut lp = listpack::Builder::new();
            for (s, m) in z.iter() {
                lp.push(m);
                lp.push(score_text(s.0).as_bytes());
            }
            put_string(out, &lp.finish());
            types::ZSET_LISTPACK
        }
        Value::ZSet(z) => {
            put_len(out, z.len() as u64);
            // Greatest first, as Redis walks its skiplist from the tail.
            for (s, m) in z.iter().rev() {
                put_string(out, m);
                put_binary_double(out, s.0);
            }
            types::ZSET_2
        }
        Value::Stream(s) => {
            stream::encode(s, out);
            types::STREAM_LISTPACKS_2
        }
    }
}

/// A list as a quicklist of listpacks, nodes filled as `RPUSH` fills them.
fn encode_list(l: &List, t: &Thresholds, out: &mut Vec<u8>) {
    let bytes = t.list_node_bytes();
    let count = usize::try_from(t.list_max_listpack_size.max(1)).unwrap_or(1);
    let mut nodes: Vec<listpack::Builder> = Vec::new();
    for e in l {
        let fits = nodes.last().is_some_and(|n| {
            let new_size = n.bytes() + e.len() + NODE_OVERHEAD;
            match bytes {
                Some(limit) => new_size <= limit,
                None => new_size <= 8192 && n.len() < count,
            }
        });
        if !fits {
            nodes.push(listpack::Builder::new());
        }
        if let Some(n) = nodes.last_mut() {
            n.push(e);
        }
    }
    put_len(out, nodes.len() as u64);
    for n in nodes {
        put_len(out, CONTAINER_PACKED);
        put_string(out, &n.finish());
    }
}

#[cfg(test)]
mod tests;
