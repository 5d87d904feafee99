//! Whole RDB files as redis-server writes them (`REDIS0010` … `0xFF` CRC-64): all databases,
//! expiries, aux fields, LRU/LFU hints and function libraries, read in one streaming pass
//! (the file is never held in memory; each value is decoded as it is read).

use std::io::{BufReader, Read};
use std::path::Path;

use super::reader::Reader;
use super::{RDB_VERSION, RdbError, Result, opcodes, value};
use crate::db::{Store, boxed};

/// What an import loaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Keys loaded.
    pub keys: u64,
    /// Keys skipped because their expiry had passed.
    pub expired: u64,
    /// Function libraries loaded.
    pub functions: u64,
}

/// Loads the RDB file at `path` into `store` (keys go to the databases the file names); keys
/// already expired at `now_ms` are skipped, as redis-server skips them when it loads as a
/// master.
pub fn load_file(path: &Path, store: &mut Store, now_ms: i64) -> Result<Loaded> {
    let f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    load(
        BufReader::with_capacity(1 << 16, f),
        size,
        store,
        Some(now_ms),
    )
}

/// Loads an RDB of `size` bytes from `src` into `store`, skipping keys expired at `now_ms`
/// when given (a replica keeps them: its master's DEL will come).
pub fn load<R: Read>(src: R, size: u64, store: &mut Store, now_ms: Option<i64>) -> Result<Loaded> {
    let mut r = Reader::new(src, size);
    let magic = r.array::<9>("header")?;
    if &magic[..5] != b"REDIS" {
        return r.corrupt("header: not an RDB file", 0);
    }
    let version: u16 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| RdbError::corrupt("header: version", 5))?;
    if !(1..=RDB_VERSION).contains(&version) {
        return Err(RdbError::Unsupported {
            what: format!("RDB format version {version} (this node reads up to {RDB_VERSION})"),
            offset: 5,
        });
    }
    let mut loaded = Loaded::default();
    let mut db = 0usize;
    let mut expire: Option<i64> = None;
    let (mut idle, mut freq): (Option<u64>, Option<u8>) = (None, None);
    loop {
        let at = r.offset();
        let op = r.u8("opcode")?;
        match op {
            opcodes::EOF => break,
            opcodes::SELECTDB => {
                let n = r.length()?;
                if n >= store.dbs.len() as u64 {
                    return r.corrupt(
                        format!("database {n} (the node has {})", store.dbs.len()),
                        at,
                    );
                }
                db = n as usize;
            }
            opcodes::RESIZEDB => {
                r.length()?;
                r.length()?;
            }
            opcodes::AUX => {
                r.string()?;
                r.string()?;
            }
            opcodes::EXPIRETIME_MS => expire = Some(r.millis()?),
            opcodes::EXPIRETIME => {
                expire = Some(i64::from(i32::from_le_bytes(r.array("expire")?)) * 1000);
            }
            // Access hints for the next key (Redis writes the one its policy keeps).
            opcodes::IDLE => idle = Some(r.length()?),
            opcodes::FREQ => freq = Some(r.u8("frequency")?),
            opcodes::FUNCTION2 => {
                let code = r.string()?;
                let lib = crate::db::functions::compile_library(&code)
                    .map_err(|e| RdbError::corrupt(format!("function library: {e}"), at))?;
                store
                    .functions
                    .add(lib, false)
                    .map_err(|e| RdbError::corrupt(format!("function library: {e}"), at))?;
                loaded.functions += 1;
            }
            opcodes::FUNCTION => {
                return Err(RdbError::Unsupported {
                    what: "function library of a Redis 7.0 release candidate".into(),
                    offset: at,
                });
            }
            opcodes::MODULE_AUX => {
                return Err(RdbError::Unsupported {
                    what: "module data".into(),
                    offset: at,
                });
            }
            ty => {
                let key = r.string()?;
                let in_key = |e: RdbError| RdbError::InKey {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    db,
                    source: Box::new(e),
                };
                let v = value::decode(ty, &mut r, &store.thresholds).map_err(in_key)?;
                let exp = expire.take();
                let (idle, freq) = (idle.take(), freq.take());
                if v.is_empty_aggregate() {
                    continue;
                }
                if exp.is_some_and(|t| now_ms.is_some_and(|now| t < now)) {
                    loaded.expired += 1;
                    continue;
                }
                let d = &mut store.dbs[db];
                if d.keys.contains_key(&key[..]) {
                    return Err(in_key(RdbError::corrupt("duplicate key", at)));
                }
                d.keys.insert(boxed(&key), v);
                d.keys.set_hint(&key, idle, freq);
                if let Some(t) = exp {
                    d.set_expire(&key, t);
                }
                loaded.keys += 1;
            }
        }
    }
    if version >= 5 {
        let computed = r.crc();
        let at = r.offset();
        let stored = u64::from_le_bytes(r.array("checksum")?);
        // Zero means the writer had `rdbchecksum no`.
        if stored != 0 && stored != computed {
            return r.corrupt("checksum (the file is damaged)", at);
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::super::crc64::crc64;
    use super::super::writer::{put_len, put_millis, put_string};
    use super::*;
    use crate::db::Value;

    /// A small RDB as redis-server lays it out: aux fields, two databases, an expiry (one
    /// past), LRU/LFU hints, the checksum.
    fn sample() -> Vec<u8> {
        let mut b = b"REDIS0010".to_vec();
        b.push(opcodes::AUX);
        put_string(&mut b, b"redis-ver");
        put_string(&mut b, b"7.0.15");
        b.push(opcodes::SELECTDB);
        put_len(&mut b, 0);
        b.push(opcodes::RESIZEDB);
        put_len(&mut b, 3);
        put_len(&mut b, 1);
        b.push(opcodes::EXPIRETIME_MS);
        put_millis(&mut b, 5_000);
        b.push(0);
        put_string(&mut b, b"ttl");
        put_string(&mut b, b"v");
        b.push(opcodes::EXPIRETIME_MS);
        put_millis(&mut b, 500);
        b.push(0);
        put_string(&mut b, b"old");
        put_string(&mut b, b"v");
        b.push(opcodes::FREQ);
        b.push(5);
        b.push(0);
        put_string(&mut b, b"plain");
        put_string(&mut b, b"12");
        b.push(opcodes::SELECTDB);
        put_len(&mut b, 2);
        b.push(opcodes::IDLE);
        put_len(&mut b, 100);
        let ty = value::encode(
            &Value::List(Box::new([b"a".as_slice().into()].into())),
            &Default::default(),
            &mut Vec::new(),
        );
        b.push(ty);
        put_string(&mut b, b"list");
        value::encode(
            &Value::List(Box::new([b"a".as_slice().into()].into())),
            &Default::default(),
            &mut b,
        );
        b.push(opcodes::EOF);
        let crc = crc64(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn loads_databases_expiries_and_skips_expired_keys() {
        let b = sample();
        let mut store = Store::new(16);
        let got = load(&b[..], b.len() as u64, &mut store, Some(1_000)).unwrap();
        assert_eq!(got.keys, 3);
        assert_eq!(got.expired, 1);
        assert_eq!(store.dbs[0].expire_of(b"ttl"), Some(5_000));
        assert!(!store.dbs[0].keys.contains_key(&b"old"[..]));
        assert!(store.dbs[2].keys.contains_key(&b"list"[..]));
        let mut replica = Store::new(16);
        load(&b[..], b.len() as u64, &mut replica, None).unwrap();
        assert!(replica.dbs[0].keys.contains_key(&b"old"[..]));
    }

    #[test]
    fn damaged_files_are_refused_with_offsets() {
        let b = sample();
        let n = b.len();
        let mut bad = b.clone();
        bad[n - 1] ^= 1;
        let e = load(&bad[..], n as u64, &mut Store::new(16), None).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        for cut in 0..n {
            let r = load(&b[..cut], cut as u64, &mut Store::new(16), None);
            assert!(r.is_err(), "cut at {cut}");
        }
        let e = load(&b[..], n as u64, &mut Store::new(2), None).unwrap_err();
        assert!(e.to_string().contains("database 2"), "{e}");
        // A list whose node count is absurd: the error names the key.
        let at = b.windows(4).position(|w| w == b"list").unwrap() + 4;
        let mut bad = b.clone();
        bad[at] = 0x3f;
        let e = load(&bad[..], n as u64, &mut Store::new(16), None).unwrap_err();
        assert!(e.to_string().contains("\"list\""), "{e}");
        assert!(e.to_string().contains("offset"), "{e}");
        // Every single-byte corruption is an error or a load, never a panic.
        for i in 0..n {
            let mut c = b.clone();
            c[i] ^= 0xa5;
            let _ = load(&c[..], n as u64, &mut Store::new(16), None);
        }
    }
}
