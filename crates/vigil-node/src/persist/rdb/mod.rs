//! Redis' RDB serialization (format version 10, as Redis 7.0 writes it): the `DUMP`/`RESTORE`
//! payload of one value and whole RDB files (`vigil node --import`).
//!
//! Pieces, bottom up: [`crc64`] and [`lzf`] (checksum and string compression as Redis uses
//! them), [`reader`] (a bounded, offset-counting reader of the RDB primitives) and [`writer`],
//! the compact containers [`listpack`], [`intset`] and [`ziplist`] (read only; also zipmap),
//! then [`value`] (every RDB value type ↔ [`Value`](crate::db::Value)), [`stream`] (stream
//! values with their groups) and [`file`] (whole files).
//!
//! Every length or count read from input is checked against the bytes left before anything is
//! allocated for it; corrupt input is an [`RdbError`] naming what was wrong and the byte offset,
//! never a panic.

pub mod crc64;
pub mod file;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod reader;
pub mod stream;
pub mod value;
pub mod writer;
pub mod ziplist;

use thiserror::Error;

/// The RDB format version Redis 7.0 writes (and the highest it reads).
pub const RDB_VERSION: u16 = 10;

/// An RDB decoding error.
#[derive(Debug, Error)]
pub enum RdbError {
    /// The input ended early.
    #[error("truncated input at offset {offset}: {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset where the input ended.
        offset: u64,
    },
    /// A structure is malformed.
    #[error("corrupt {what} at offset {offset}")]
    Corrupt {
        /// What is wrong.
        what: String,
        /// Byte offset of the structure.
        offset: u64,
    },
    /// Valid RDB content this node does not take (a module type, a newer version).
    #[error("unsupported {what} at offset {offset}")]
    Unsupported {
        /// What it is.
        what: String,
        /// Byte offset.
        offset: u64,
    },
    /// An error inside one key's value, naming the key.
    #[error("key {key:?} (db {db}): {source}")]
    InKey {
        /// The key, lossily printed.
        key: String,
        /// Its database.
        db: usize,
        /// The error.
        source: Box<RdbError>,
    },
    /// Reading the file failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

impl RdbError {
    /// A corruption error.
    pub fn corrupt(what: impl Into<String>, offset: u64) -> RdbError {
        RdbError::Corrupt {
            what: what.into(),
            offset,
        }
    }
}

/// Result of RDB decoding.
pub type Result<T> = std::result::Result<T, RdbError>;

/// RDB value type bytes.
pub mod types {
    #![allow(missing_docs)]
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// RDB file opcodes.
pub mod opcodes {
    #![allow(missing_docs)]
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// A `DUMP` payload of `v`: the value, the RDB version (2 bytes LE), the CRC-64 (8 bytes LE).
pub fn dump(v: &crate::db::Value, t: &crate::db::encoding::Thresholds) -> Vec<u8> {
    let mut out = vec![0u8];
    out[0] = value::encode(v, t, &mut out);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a `RESTORE` payload was refused.
#[derive(Debug, Error)]
pub enum PayloadError {
    /// Footer: version too new or checksum wrong.
    #[error("DUMP payload version or checksum are wrong")]
    Footer,
    /// The value is malformed (or an empty aggregate).
    #[error("Bad data format")]
    Data(Option<RdbError>),
}

/// Reads a `DUMP` payload: checks the footer, then decodes the whole value (nothing may follow).
pub fn undump(
    p: &[u8],
    t: &crate::db::encoding::Thresholds,
) -> std::result::Result<crate::db::Value, PayloadError> {
    if p.len() < 10 {
        return Err(PayloadError::Footer);
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(PayloadError::Footer);
    }
    let crc = u64::from_le_bytes(footer[2..].try_into().map_err(|_| PayloadError::Footer)?);
    if crc64::crc64(&p[..p.len() - 8]) != crc {
        return Err(PayloadError::Footer);
    }
    // Like Redis, the value is read from the whole payload (a short value runs into the
    // footer rather than failing) and bytes after it are not checked.
    let mut r = reader::Reader::from_slice(p);
    let _ = body;
    let ty = r.u8("type").map_err(|e| PayloadError::Data(Some(e)))?;
    let v = value::decode(ty, &mut r, t).map_err(|e| PayloadError::Data(Some(e)))?;
    if v.is_empty_aggregate() {
        return Err(PayloadError::Data(None));
    }
    Ok(v)
}
