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
            // Access hints: this node keeps no LRU/LFU data.
            opcodes::IDLE => {
                r.length()?;
            }
            opcodes::FREQ => {
                r.u8("frequency")?;
            }
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
                let v = value::decode(ty, &mut r).map_err(in_key)?;
                let exp = expire.take();
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
