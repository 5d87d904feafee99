//! One stream node: a flat buffer of entries sharing a master id and master field names, sized
//! as Redis sizes its listpacks (see the parent module).

use super::*;

/// One node: a flat buffer of entries sharing a master id and master field names.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub(super) buf: Vec<u8>,
    /// Live entries.
    pub(super) live: u32,
    /// Entries deleted from this node (they still count toward its fill, as in Redis).
    pub(super) deleted: u32,
    /// Emulated size of Redis' listpack for this node.
    pub(super) lp_bytes: u64,
    /// The last id ever added to this node.
    pub(super) last: StreamId,
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked reader over a chunk buffer: malformed bytes give `None`, never a panic.
pub(super) struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    pub(super) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(super) fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// Size of one listpack element holding `b` (integers are stored as integers, as listpack does).
pub(super) fn lp_elem(b: &[u8]) -> u64 {
    let enc = match vigil_resp::args::parse_int(b) {
        Ok(v) if b.len() <= 20 && int_canonical(b, v) => lp_int_enc(v),
        _ => {
            let n = b.len() as u64;
            if n < 64 {
                1 + n
            } else if n < 4096 {
                2 + n
            } else {
                5 + n
            }
        }
    };
    enc + lp_backlen(enc)
}

pub(super) fn int_canonical(b: &[u8], v: i64) -> bool {
    itoa::Buffer::new().format(v).as_bytes() == b
}

pub(super) fn lp_int_enc(v: i64) -> u64 {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    }
}

pub(super) fn lp_int(v: i64) -> u64 {
    let e = lp_int_enc(v);
    e + lp_backlen(e)
}

pub(super) fn lp_backlen(l: u64) -> u64 {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

impl Chunk {
    pub(super) fn new(pairs: &[impl AsRef<[u8]>]) -> Chunk {
        let n = pairs.len() / 2;
        let mut buf = Vec::new();
        put_varint(&mut buf, n as u64);
        let mut lp = 6 + 1 + lp_int(1) + lp_int(0) + lp_int(n as i64) + lp_int(0);
        for f in pairs.iter().step_by(2) {
            put_varint(&mut buf, f.as_ref().len() as u64);
            buf.extend_from_slice(f.as_ref());
            lp += lp_elem(f.as_ref());
        }
        Chunk {
            buf,
            live: 0,
            deleted: 0,
            lp_bytes: lp,
            last: StreamId::MIN,
        }
    }

    /// The master field names and where entries start.
    pub(super) fn master(&self) -> Option<(Vec<&[u8]>, usize)> {
        let mut c = Cur {
            b: &self.buf,
            pos: 0,
        };
        let n = c.varint()?;
        let mut fields = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            fields.push(c.bytes()?);
        }
        Some((fields, c.pos))
    }

    pub(super) fn same_fields(&self, pairs: &[impl AsRef<[u8]>]) -> bool {
        let Some((master, _)) = self.master() else {
            return false;
        };
        master.len() * 2 == pairs.len()
            && master
                .iter()
                .zip(pairs.iter().step_by(2))
                .all(|(m, f)| *m == f.as_ref())
    }

    pub(super) fn push(&mut self, master_id: StreamId, id: StreamId, pairs: &[impl AsRef<[u8]>]) {
        let same = self.same_fields(pairs);
        let n = pairs.len() / 2;
        let ms_diff = id.ms.wrapping_sub(master_id.ms);
        let seq_diff = id.seq.wrapping_sub(master_id.seq);
        put_varint(&mut self.buf, ms_diff);
        put_varint(&mut self.buf, seq_diff);
        put_varint(&mut self.buf, if same { 0 } else { n as u64 });
        let mut lp =
            lp_int(if same { 2 } else { 0 }) + lp_int(ms_diff as i64) + lp_int(seq_diff as i64);
        if !same {
            lp += lp_int(n as i64);
        }
        for (i, p) in pairs.iter().enumerate() {
            if same && i % 2 == 0 {
                continue;
            }
            put_varint(&mut self.buf, p.as_ref().len() as u64);
            self.buf.extend_from_slice(p.as_ref());
            lp += lp_elem(p.as_ref());
        }
        let lp_count = 3 + n as i64 + if same { 0 } else { n as i64 + 1 };
        lp += lp_int(lp_count);
        self.lp_bytes = self.lp_bytes.saturating_add(lp);
        self.live += 1;
        self.last = id;
    }

    /// Every live entry's id and byte range in `buf` (values skipped, not collected); `None`
    /// if the buffer is malformed.
    pub(super) fn ids(
        &self,
        master_id: StreamId,
    ) -> Option<Vec<(StreamId, std::ops::Range<usize>)>> {
        let mut c = Cur {
            b: &self.buf,
            pos: 0,
        };
        let nmaster = c.varint()?;
        for _ in 0..nmaster {
            c.bytes()?;
        }
        // `live` may come from a file: bounded by the buffer, never trusted for an allocation.
        let mut out = Vec::with_capacity((self.live as usize).min(self.buf.len()));
        while !c.done() {
            let at = c.pos;
            let ms = master_id.ms.wrapping_add(c.varint()?);
            let seq = master_id.seq.wrapping_add(c.varint()?);
            let tag = c.varint()?;
            let items = if tag == 0 {
                nmaster
            } else {
                tag.checked_mul(2)?
            };
            for _ in 0..items {
                c.bytes()?;
            }
            out.push((StreamId { ms, seq }, at..c.pos));
        }
        Some(out)
    }

    /// The field/value pairs of the entry at `r` (a range from [`Chunk::ids`]).
    pub(super) fn pairs_at<'a>(
        &'a self,
        master: &[&'a [u8]],
        r: std::ops::Range<usize>,
    ) -> Option<Vec<(&'a [u8], &'a [u8])>> {
        let mut c = Cur {
            b: self.buf.get(..r.end)?,
            pos: r.start,
        };
        c.varint()?;
        c.varint()?;
        let tag = c.varint()?;
        let mut pairs = Vec::new();
        if tag == 0 {
            for f in master {
                pairs.push((*f, c.bytes()?));
            }
        } else {
            for _ in 0..tag {
                let f = c.bytes()?;
                pairs.push((f, c.bytes()?));
            }
        }
        Some(pairs)
    }

    /// Entries of this node within `start..=end`, in order (`rev`: newest first), at most
    /// `want` of them.
    pub(super) fn collect<'a>(
        &'a self,
        master_id: StreamId,
        start: StreamId,
        end: StreamId,
        rev: bool,
        want: usize,
        out: &mut Vec<Entry<'a>>,
    ) {
        let (Some(ids), Some((master, _))) = (self.ids(master_id), self.master()) else {
            return;
        };
        let take = |id: StreamId, r: std::ops::Range<usize>, out: &mut Vec<Entry<'a>>| {
            if let Some(p) = self.pairs_at(&master, r) {
                out.push((id, p));
            }
        };
        let inside = ids.into_iter().filter(|(id, _)| *id >= start && *id <= end);
        if rev {
            for (id, r) in inside.rev() {
                if out.len() >= want {
                    return;
                }
                take(id, r, out);
            }
        } else {
            for (id, r) in inside {
                if out.len() >= want {
                    return;
                }
                take(id, r, out);
            }
        }
    }

    /// Checks a chunk read from a file: every entry decodes, ids increase within the node's
    /// bounds and the live count matches.
    pub fn validate(&self, master_id: StreamId) -> Result<(), String> {
        let entries = self.ids(master_id).ok_or("malformed stream node buffer")?;
        if self.master().is_none() {
            return Err("malformed stream node buffer".into());
        }
        if entries.len() != self.live as usize || self.live == 0 {
            return Err("stream node entry count mismatch".into());
        }
        let mut prev = None;
        for (id, _) in &entries {
            if *id < master_id || *id > self.last || prev.is_some_and(|p| p >= *id) {
                return Err("stream node ids out of order".into());
            }
            prev = Some(*id);
        }
        Ok(())
    }

    /// The master field names and every live entry as (id, whether its fields are the
    /// master's, field/value pairs), for the RDB writer; `None` if the buffer is malformed.
    #[allow(clippy::type_complexity)]
    pub fn export(
        &self,
        master_id: StreamId,
    ) -> Option<(Vec<&[u8]>, Vec<(StreamId, bool, Vec<(&[u8], &[u8])>)>)> {
        let (master, _) = self.master()?;
        let mut out = Vec::new();
        for (id, r) in self.ids(master_id)? {
            let pairs = self.pairs_at(&master, r)?;
            let same =
                master.len() == pairs.len() && master.iter().zip(&pairs).all(|(m, (f, _))| m == f);
            out.push((id, same, pairs));
        }
        Some((master, out))
    }

    /// Builds a node from entries read elsewhere (an RDB listpack): the master fields, the
    /// live entries in id order, and the node's deleted count, listpack size and last id ever
    /// added. The caller validates the result.
    pub fn import(
        master_id: StreamId,
        master_fields: &[Vec<u8>],
        entries: &[(StreamId, Vec<Vec<u8>>)],
        deleted: u32,
        lp_bytes: u64,
        last: StreamId,
    ) -> Chunk {
        let mut c = Chunk::new(&interleave(master_fields));
        for (id, pairs) in entries {
            c.push(master_id, *id, pairs);
        }
        c.deleted = deleted;
        c.lp_bytes = lp_bytes;
        c.last = last;
        c
    }

    /// The raw parts, for the snapshot: buffer, live, deleted, emulated size, last id.
    pub fn parts(&self) -> (&[u8], u32, u32, u64, StreamId) {
        (&self.buf, self.live, self.deleted, self.lp_bytes, self.last)
    }

    /// Rebuilds a chunk from its parts (validate it before use).
    pub fn from_parts(buf: Vec<u8>, live: u32, deleted: u32, lp: u64, last: StreamId) -> Chunk {
        Chunk {
            buf,
            live,
            deleted,
            lp_bytes: lp,
            last,
        }
    }
}

/// Master fields as a pair list with empty values (the shape [`Chunk::new`] takes).
fn interleave(fields: &[Vec<u8>]) -> Vec<&[u8]> {
    fields.iter().flat_map(|f| [&f[..], &[][..]]).collect()
}
