//! DEBUG DIGEST and DIGEST-VALUE: a SHA1-based digest of the dataset, computed as redis-server
//! 7.0 computes it (element digests xor-ed where order does not matter, mixed where it does),
//! so a Vigil node and a redis-server holding the same data answer the same digest.

use sha1_smol::Sha1;

use super::{Db, Store, Value};
use crate::db::stream::StreamId;

/// A 20-byte digest.
pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    Sha1::from(data).digest().bytes()
}

/// `digest ^= SHA1(data)`: order-independent.
fn xor(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))`: order-dependent.
fn mix(digest: &mut Digest, data: &[u8]) {
    xor(digest, data);
    *digest = sha1(digest);
}

/// Redis' type numbers.
fn type_code(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// Mixes a value (and whether its key has an expiry) into `d`.
pub fn value_digest(d: &mut Digest, v: &Value, expires: bool) {
    mix(d, &type_code(v).to_be_bytes());
    match v {
        Value::Str(s) => mix(d, s),
        Value::List(l) => l.iter().for_each(|e| mix(d, e)),
        Value::Set(s) => s.iter().for_each(|e| xor(d, &e)),
        Value::ZSet(z) => {
            for (score, m) in z.iter() {
                let mut e = [0u8; 20];
                mix(&mut e, m);
                mix(&mut e, crate::ldouble::fmt_g17(score.0).as_bytes());
                xor(d, &e);
            }
        }
        Value::Hash(h) => {
            for (f, v) in h.iter() {
                let mut e = [0u8; 20];
                mix(&mut e, f);
                mix(&mut e, v);
                xor(d, &e);
            }
        }
        Value::Stream(s) => {
            for (id, fields) in s.range(StreamId::MIN, StreamId::MAX, false, usize::MAX) {
                mix(d, format!("{}.{}", id.ms, id.seq).as_bytes());
                for (f, v) in fields {
                    mix(d, f);
                    mix(d, v);
                }
            }
        }
    }
    if expires {
        xor(d, b"!!expire!!");
    }
}

/// The digest of one key of `db` (all zeros when it does not exist); expired keys count.
pub fn key_digest(db: &Db, key: &[u8]) -> Digest {
    let mut d = [0u8; 20];
    if let Some(v) = db.keys.get(key) {
        value_digest(&mut d, v, db.expire_of(key).is_some());
    }
    d
}

/// The digest of the whole dataset (all zeros when empty).
pub fn dataset_digest(store: &Store) -> Digest {
    let mut out = [0u8; 20];
    for (i, db) in store.dbs.iter().enumerate() {
        if db.keys.is_empty() {
            continue;
        }
        mix(&mut out, &(i as u32).to_be_bytes());
        for (k, v) in db.keys.iter() {
            let mut d = [0u8; 20];
            mix(&mut d, k);
            value_digest(&mut d, v, db.expire_of(k).is_some());
            xor(&mut out, &d);
        }
    }
    out
}

/// Lower-case hex.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
