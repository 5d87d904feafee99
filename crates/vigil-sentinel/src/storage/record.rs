//! The log's record format: `len(u32) crc32(u32) type(u8) payload`, little-endian, the
//! checksum over the type and the payload; an entries record's payload is a sequence of
//! `len(u32) entry` (protobuf). Reading tells a torn tail (damage with nothing valid after it)
//! from corruption (damage with valid records after it).

use protobuf::Message as _;
use raft::eraftpb::Entry;

pub(super) const T_ENTRIES: u8 = 1;
pub(super) const T_HARD: u8 = 2;
pub(super) const T_CONF: u8 = 3;
pub(super) const T_SNAP: u8 = 4;
pub(super) const HEADER: usize = 9;
/// Largest record accepted when reading: a bigger length is damage, not data.
pub(super) const MAX_RECORD: usize = 256 * 1024 * 1024;

/// Appends one record.
pub(super) fn put_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

pub(super) fn entries_payload(ents: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in ents {
        // Encoding a message built in memory cannot fail.
        let b = e.write_to_bytes().unwrap_or_default();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// One record read back: its offset, type and payload.
pub(super) type Record<'a> = (u64, u8, &'a [u8]);

/// Why reading stopped before the end of a file.
pub(super) enum Stop {
    /// Incomplete or damaged, with nothing valid after it: a torn tail at this offset.
    Torn(u64),
    /// Damaged with valid records after it.
    Corrupt(u64, String),
}

/// Reads every valid record; says where and why reading stopped early.
pub(super) fn read_records(b: &[u8]) -> (Vec<Record<'_>>, Option<Stop>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() {
        match record_at(b, pos) {
            Ok((kind, payload, next)) => {
                out.push((pos as u64, kind, payload));
                pos = next;
            }
            Err(reason) => {
                // A torn write damages only the tail; a valid record further on means the
                // damage is in the middle.
                let later = (pos + 1..b.len()).any(|p| {
                    record_at(b, p).is_ok_and(|r| r.2 == b.len() || record_at(b, r.2).is_ok())
                });
                let stop = if later {
                    Stop::Corrupt(pos as u64, reason)
                } else {
                    Stop::Torn(pos as u64)
                };
                return (out, Some(stop));
            }
        }
    }
    (out, None)
}

/// The record at `pos`: type, payload, offset of the next.
pub(super) fn record_at(b: &[u8], pos: usize) -> Result<(u8, &[u8], usize), String> {
    let head = b
        .get(pos..pos + HEADER)
        .ok_or_else(|| "incomplete record header".to_string())?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let kind = head[8];
    if len > MAX_RECORD {
        return Err(format!("record length {len} is implausible"));
    }
    let payload = b
        .get(pos + HEADER..pos + HEADER + len)
        .ok_or_else(|| "incomplete record".to_string())?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    if h.finalize() != crc {
        return Err("checksum mismatch".into());
    }
    if !(T_ENTRIES..=T_SNAP).contains(&kind) {
        return Err(format!("unknown record type {kind}"));
    }
    Ok((kind, payload, pos + HEADER + len))
}

pub(super) fn decode_entries(payload: &[u8]) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let len = payload
            .get(pos..pos + 4)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .ok_or("truncated entry length")?;
        let bytes = payload
            .get(pos + 4..pos + 4 + len)
            .ok_or("truncated entry")?;
        out.push(Entry::parse_from_bytes(bytes).map_err(|e| format!("bad entry: {e}"))?);
        pos += 4 + len;
    }
    Ok(out)
}
