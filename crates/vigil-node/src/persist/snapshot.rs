//! The snapshot file: the whole dataset in a checksummed, versioned binary format.
//!
//! Layout: `VIGILSNP`, format version (u32), generation (u64), creation time (i64 unix ms),
//! replication id (bytes) and offset (u64) of the data (version 2; version 1 files have none),
//! then per non-empty database `0xFE db(u32) count(u64)` and its entries, then `0xFF` and a
//! CRC-32 of everything before it. An entry is `type(u8) flags(u8) [expire(i64)] key payload`;
//! byte strings are `len(u32) bytes`. All integers little-endian. Version 3 adds streams
//! (type 5, see `stream_codec.rs`). Version 4 adds, before `0xFF`, the function libraries if
//! there are any: `0xFD count(u64)` then each library's code (bytes).
//!
//! Flags: bit 0, an expiry follows. Bit 1, the hash or set was in its compact form (a listpack,
//! an intset), so loading keeps it so as Redis keeps a loaded listpack or intset; an intset's
//! width is bits 2-3 (1: 2 bytes, 2: 4, 3: 8). Readers that know only bit 0 load the same
//! data.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_base::fs;

use super::codec::{Reader, put_bytes, put_len};
use crate::db::encoding::Thresholds;
use crate::db::{Hash, Key, Set, Store, Value, ZSet, hash};

const MAGIC: &[u8; 8] = b"VIGILSNP";
/// Current format version; older readers refuse newer files with a clear error.
pub const VERSION: u32 = 4;
const DB_MARK: u8 = 0xFE;
const END_MARK: u8 = 0xFF;
const FUNCTIONS_MARK: u8 = 0xFD;

const T_STR: u8 = 0;
const T_LIST: u8 = 1;
const T_HASH: u8 = 2;
const T_SET: u8 = 3;
const T_ZSET: u8 = 4;
const T_STREAM: u8 = 5;

const F_EXPIRE: u8 = 1;
const F_COMPACT: u8 = 2;
const WIDTH_SHIFT: u8 = 2;

/// The flags of an entry: whether it has an expiry, whether it is compact (and an intset's
/// width).
fn flags(v: &Value, expires: bool) -> u8 {
    let compact = match v {
        Value::Hash(h) if h.is_packed() => F_COMPACT,
        Value::Set(s) => s.intset_parts().map_or(0, |(w, _)| {
            F_COMPACT | ((w.trailing_zeros() as u8) << WIDTH_SHIFT)
        }),
        _ => 0,
    };
    compact | if expires { F_EXPIRE } else { 0 }
}

/// Serialises the store. Runs under the store lock, so it must be fast: one pass, no
/// allocation per entry beyond the growing output buffer.
pub fn encode(store: &Store, h: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + store.total_keys() * 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&h.generation.to_le_bytes());
    out.extend_from_slice(&h.created_ms.to_le_bytes());
    put_bytes(&mut out, h.replid.as_bytes());
    out.extend_from_slice(&h.offset.to_le_bytes());
    for (i, db) in store.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        out.push(DB_MARK);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        put_len(&mut out, db.len());
        for (k, v) in db.keys.iter() {
            let expire = db.expire_of(k);
            let t = match v {
                Value::Str(_) => T_STR,
                Value::List(_) => T_LIST,
                Value::Hash(_) => T_HASH,
                Value::Set(_) => T_SET,
                Value::ZSet(_) => T_ZSET,
                Value::Stream(_) => T_STREAM,
            };
            out.push(t);
            out.push(flags(v, expire.is_some()));
            if let Some(e) = expire {
                out.extend_from_slice(&e.to_le_bytes());
            }
            put_bytes(&mut out, k);
            match v {
                Value::Str(s) => put_bytes(&mut out, s),
                Value::List(l) => {
                    put_len(&mut out, l.len());
                    l.iter().for_each(|e| put_bytes(&mut out, e));
                }
                Value::Hash(h) => {
                    put_len(&mut out, h.len());
                    for (f, v) in h.iter() {
                        put_bytes(&mut out, f);
                        put_bytes(&mut out, v);
                    }
                }
                Value::Set(s) => {
                    put_len(&mut out, s.len());
                    s.iter().for_each(|m| put_bytes(&mut out, &m));
                }
                Value::ZSet(z) => {
                    put_len(&mut out, z.len());
                    for (s, m) in z.iter() {
                        put_bytes(&mut out, m);
                        out.extend_from_slice(&s.0.to_le_bytes());
                    }
                }
                Value::Stream(s) => super::stream_codec::encode(&mut out, s),
            }
        }
    }
    if !store.functions.libs.is_empty() {
        out.push(FUNCTIONS_MARK);
        put_len(&mut out, store.functions.libs.len());
        for lib in store.functions.libs.values() {
            put_bytes(&mut out, &lib.code);
        }
    }
    out.push(END_MARK);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Size of the pieces a snapshot is streamed in: the parent never holds a whole snapshot.
pub const CHUNK: usize = 1 << 20;

/// Snapshot bytes, encoded in place or by a forked child.
pub enum Pending {
    /// Already encoded.
    Ready(Vec<u8>),
    /// Being encoded by a child process.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    Forked(super::fork::Forked),
}

/// The last fork's duration (µs) and the number of forks: this process's, as Redis counts its
/// own (`INFO stats`: `latest_fork_usec`, `total_forks`).
static LATEST_FORK_USEC: AtomicU64 = AtomicU64::new(0);
static TOTAL_FORKS: AtomicU64 = AtomicU64::new(0);

/// `(latest_fork_usec, total_forks)`.
pub fn fork_stats() -> (u64, u64) {
    (
        LATEST_FORK_USEC.load(Ordering::Relaxed),
        TOTAL_FORKS.load(Ordering::Relaxed),
    )
}

/// `CONFIG RESETSTAT`.
pub fn reset_fork_stats() {
    LATEST_FORK_USEC.store(0, Ordering::Relaxed);
    TOTAL_FORKS.store(0, Ordering::Relaxed);
}

impl Pending {
    /// Encodes `store` in a forked child, or in place if the fork fails (e.g. no memory for
    /// the page tables): a slower pause, never a failed save. Call under the store lock.
    /// Where the allocator is not known to be fork-safe (see `persist/fork.rs`), always in
    /// place. The fork's duration goes to [`fork_stats`] and, from the caller, to the latency
    /// monitor ([`Pending::fork_ms`]).
    pub fn start(store: &Store, h: &Header) -> Pending {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        match super::fork::fork_with(|| encode(store, h)) {
            Ok(f) => {
                LATEST_FORK_USEC.store(f.took.as_micros() as u64, Ordering::Relaxed);
                TOTAL_FORKS.fetch_add(1, Ordering::Relaxed);
                return Pending::Forked(f);
            }
            Err(e) => {
                tracing::warn!(error = %e, "fork failed; encoding the snapshot under the store lock");
            }
        }
        Pending::Ready(encode(store, h))
    }

    /// How long the fork took (ms), for a forked snapshot: Redis' latency event `fork`.
    pub fn fork_ms(&self) -> Option<u64> {
        match self {
            Pending::Ready(_) => None,
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            Pending::Forked(f) => Some(f.took.as_millis() as u64),
        }
    }

    /// Streams the bytes: `on_len` with the size, then `on_chunk` with each piece. Blocking
    /// for a forked child: call off the async runtime.
    pub fn stream(
        self,
        on_len: impl FnOnce(u64) -> std::io::Result<()>,
        on_chunk: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match self {
            Pending::Ready(b) => {
                on_len(b.len() as u64)?;
                b.chunks(CHUNK).try_for_each(on_chunk)
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            Pending::Forked(f) => f.stream(on_len, on_chunk),
        }
    }

    /// Writes the snapshot to `path` crash-safely (temp file, fsync, rename, fsync the
    /// directory), piece by piece; returns its size.
    pub fn write_to(self, path: &Path) -> std::io::Result<u64> {
        let mut f = std::fs::File::create(fs::temp_path(path))?;
        let mut size = 0;
        self.stream(
            |_| Ok(()),
            |chunk| {
                size += chunk.len() as u64;
                f.write_all(chunk)
            },
        )?;
        f.sync_all()?;
        fs::commit_temp(path)?;
        Ok(size)
    }

    /// All the bytes in memory (tests).
    pub fn bytes(self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.stream(
            |_| Ok(()),
            |c| {
                out.extend_from_slice(c);
                Ok(())
            },
        )?;
        Ok(out)
    }
}

/// What a snapshot holds besides the data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Generation: append logs of this generation and later follow it.
    pub generation: u64,
    /// When it was taken (unix ms).
    pub created_ms: i64,
    /// Replication id of the history the data belongs to (empty: unknown).
    pub replid: String,
    /// Replication offset the data corresponds to.
    pub offset: u64,
}

/// Byte range of the generation field.
const GENERATION_AT: std::ops::Range<usize> = 12..20;

/// Rewrites the generation of an encoded snapshot (a replica stores the master's snapshot
/// under its own generation) and fixes the checksum.
pub fn set_generation(bytes: &mut [u8], generation: u64) -> Result<(), String> {
    if bytes.len() < GENERATION_AT.end + 4 || &bytes[..8] != MAGIC {
        return Err("not a vigil snapshot".into());
    }
    bytes[GENERATION_AT].copy_from_slice(&generation.to_le_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Parses and verifies a snapshot. `databases` is the configured count; a snapshot naming a
/// database beyond it is refused. Values take the encodings `thresholds` give them.
pub fn decode(
    b: &[u8],
    databases: usize,
    thresholds: &Thresholds,
) -> Result<(Header, Store), String> {
    if b.len() < MAGIC.len() + 4 + 8 + 8 + 1 + 4 {
        return Err(format!("file too short ({} bytes)", b.len()));
    }
    if &b[..8] != MAGIC {
        return Err("not a vigil snapshot (bad magic)".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let want = u32::from_le_bytes(crc.try_into().map_err(|_| "short checksum")?);
    let got = crc32fast::hash(body);
    if want != got {
        return Err(format!(
            "checksum mismatch (stored {want:08x}, computed {got:08x})"
        ));
    }
    let mut r = Reader { b: body, pos: 8 };
    let version = r.u32()?;
    if !(1..=VERSION).contains(&version) {
        return Err(format!(
            "format version {version} is not supported (this build reads 1 to {VERSION})"
        ));
    }
    let mut header = Header {
        generation: r.u64()?,
        created_ms: r.i64()?,
        ..Header::default()
    };
    if version >= 2 {
        let id = r.bytes()?;
        header.replid =
            String::from_utf8(id.into_vec()).map_err(|_| "replication id is not text")?;
        header.offset = r.u64()?;
    }
    let mut store = Store::new(databases);
    store.thresholds = thresholds.clone();
    loop {
        match r.u8()? {
            END_MARK => break,
            FUNCTIONS_MARK if version >= 4 => {
                let n = r.count()?;
                for _ in 0..n {
                    let code = r.bytes()?;
                    let lib = crate::db::functions::compile_library(&code)
                        .map_err(|e| format!("function library does not load: {e}"))?;
                    store.functions.add(lib, false)?;
                }
            }
            DB_MARK => {
                let dbi = r.u32()? as usize;
                if dbi >= databases {
                    return Err(format!(
                        "database {dbi} exceeds the configured `databases` ({databases})"
                    ));
                }
                let n = r.count()?;
                let db = &mut store.dbs[dbi];
                for _ in 0..n {
                    let t = r.u8()?;
                    let flags = r.u8()?;
                    let expire = if flags & F_EXPIRE != 0 {
                        Some(r.i64()?)
                    } else {
                        None
                    };
                    let compact = flags & F_COMPACT != 0;
                    let key = r.bytes()?;
                    let value = match t {
                        T_STR => Value::Str(r.bytes()?),
                        T_LIST => {
                            let n = r.count()?;
                            let mut l = crate::db::List::with_capacity(n);
                            for _ in 0..n {
                                l.push_back(r.bytes()?);
                            }
                            Value::List(Box::new(l))
                        }
                        T_HASH => {
                            let n = r.count()?;
                            let mut pairs = Vec::with_capacity(n.min(1 << 16));
                            for _ in 0..n {
                                let f = r.bytes()?;
                                pairs.push((f, r.bytes()?));
                            }
                            // A listpack stays one whatever its lengths, as in Redis.
                            let limits = match compact {
                                true => hash::Limits {
                                    value: usize::MAX,
                                    ..thresholds.hash()
                                },
                                false => thresholds.hash(),
                            };
                            let h = Hash::build(pairs, limits).ok_or_else(|| {
                                format!("repeated hash field before byte {}", r.pos)
                            })?;
                            Value::Hash(h)
                        }
                        T_SET => {
                            let n = r.count()?;
                            let mut members: Vec<Key> = Vec::with_capacity(n.min(1 << 16));
                            for _ in 0..n {
                                members.push(r.bytes()?);
                            }
                            let s = if compact {
                                let width = 1usize << ((flags >> WIDTH_SHIFT) & 3);
                                let ints: Option<Vec<i64>> = members
                                    .iter()
                                    .map(|m| crate::db::encoding::string_int(m))
                                    .collect();
                                ints.and_then(|v| Set::from_ints(&v, width, thresholds.set_max()))
                            } else {
                                Set::build(members, thresholds.set_max())
                            };
                            let s = s.ok_or_else(|| {
                                format!("bad or repeated set members before byte {}", r.pos)
                            })?;
                            Value::Set(s)
                        }
                        T_ZSET => {
                            let n = r.count()?;
                            let mut items = Vec::with_capacity(n.min(1 << 16));
                            for _ in 0..n {
                                let m = r.bytes()?;
                                let s = r.f64()?;
                                if s.is_nan() {
                                    return Err(format!("NaN score at byte {}", r.pos));
                                }
                                items.push((m, s));
                            }
                            let z = ZSet::build(items, thresholds.zset()).ok_or_else(|| {
                                format!("repeated sorted set member before byte {}", r.pos)
                            })?;
                            Value::ZSet(z)
                        }
                        T_STREAM if version >= 3 => {
                            Value::Stream(Box::new(super::stream_codec::decode(&mut r)?))
                        }
                        other => {
                            return Err(format!("unknown value type {other} at byte {}", r.pos));
                        }
                    };
                    if let Some(e) = expire {
                        db.expires.insert(key.clone(), e);
                    }
                    db.keys.insert(key, value);
                }
            }
            other => {
                return Err(format!(
                    "unexpected marker {other:#x} at byte {}",
                    r.pos - 1
                ));
            }
        }
    }
    if r.pos != body.len() {
        return Err(format!(
            "{} trailing bytes after the end marker",
            body.len() - r.pos
        ));
    }
    Ok((header, store))
}

/// The first half of a durable write in two steps (a replica receiving a full sync writes the
/// file first, empties its dataset, then commits with `vigil_base::fs::commit_temp`): writes
/// and fsyncs `path`'s temp file.
pub fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(fs::temp_path(path))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::boxed;

    fn sample() -> Store {
        let mut s = Store::new(16);
        s.dbs[0].set(b"s", Value::Str(boxed(b"v")), false);
        s.dbs[0].set_expire(b"s", 1_900_000_000_000);
        let mut l = crate::db::List::new();
        l.push_back(boxed(b"a"));
        s.dbs[3].set(b"l", Value::List(Box::new(l)), false);
        let mut z = ZSet::default();
        z.insert(b"m", 1.5, Thresholds::default().zset());
        s.dbs[15].set(b"z", Value::ZSet(z), false);
        let lib = crate::db::functions::compile_library(
            b"#!lua name=lib\nredis.register_function('f', function() return 1 end)",
        )
        .unwrap();
        s.functions.add(lib, false).unwrap();
        let mut st = crate::db::Stream::new();
        let id = |ms, seq| crate::db::stream::StreamId { ms, seq };
        st.append(
            id(1, 1),
            &[b"f".as_ref(), b"v"],
            crate::db::stream::NodeLimits::default(),
        );
        st.append(
            id(1, 2),
            &[b"g".as_ref(), b"w"],
            crate::db::stream::NodeLimits::default(),
        );
        let mut g = crate::db::stream::Group::new(id(1, 1), 1);
        g.create_consumer(b"c", 5);
        g.assign(id(1, 1), b"c", 7, Some(2));
        st.groups.insert(boxed(b"grp"), g);
        s.dbs[1].set(b"x", Value::Stream(Box::new(st)), false);
        s
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let header = Header {
            generation: 7,
            created_ms: 123,
            replid: "a".repeat(40),
            offset: 99,
        };
        let mut bytes = encode(&s, &header);
        let (h, back) = decode(&bytes, 16, &Thresholds::default()).unwrap();
        assert_eq!(h, header);
        set_generation(&mut bytes, 9).unwrap();
        assert_eq!(
            decode(&bytes, 16, &Thresholds::default())
                .unwrap()
                .0
                .generation,
            9
        );
        for i in 0..16 {
            assert_eq!(*s.dbs[i].keys, *back.dbs[i].keys, "db {i}");
            assert_eq!(s.dbs[i].expires, back.dbs[i].expires, "db {i}");
        }
        let code =
            |s: &Store| -> Vec<_> { s.functions.libs.values().map(|l| l.code.clone()).collect() };
        assert_eq!(code(&s), code(&back), "libraries");
        assert!(back.functions.function("f").is_some());
    }

    #[test]
    fn every_single_byte_flip_and_truncation_is_detected() {
        let bytes = encode(&sample(), &Header::default());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                decode(&b, 16, &Thresholds::default()).is_err(),
                "flip at {i} not detected"
            );
            assert!(
                decode(&bytes[..i], 16, &Thresholds::default()).is_err(),
                "truncation at {i} not detected"
            );
        }
    }

    /// A file whose checksum was recomputed after a flip (a bug, not bit rot) still never
    /// panics the decoder or makes it trust a length: it fails or decodes something coherent.
    #[test]
    fn flips_behind_a_valid_checksum_never_panic() {
        let bytes = encode(&sample(), &Header::default());
        for i in 8..bytes.len() - 4 {
            for bit in [0x01, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let body = b.len() - 4;
                let crc = crc32fast::hash(&b[..body]);
                b[body..].copy_from_slice(&crc.to_le_bytes());
                let _ = decode(&b, 16, &Thresholds::default());
            }
        }
    }

    #[test]
    fn forked_encoding_matches_in_place_encoding() {
        let mut s = Store::new(16);
        s.dbs[0].set(b"s", Value::Str(boxed(b"v")), false);
        s.dbs[3].set(b"k", Value::Str(boxed(b"w")), false);
        let h = Header {
            generation: 3,
            created_ms: 5,
            replid: "b".repeat(40),
            offset: 7,
        };
        let forked = Pending::start(&s, &h).bytes().unwrap();
        assert_eq!(forked, encode(&s, &h));
    }
}
