//! The replication stream: one ordered byte stream of every change, shared by the append log,
//! the backlog and the replicas.
//!
//! The master encodes propagated commands once (RESP, with `SELECT` when the database
//! changes); the same bytes go to the append log, to the backlog (for partial resync) and to
//! each replica's output buffer. A replica feeds the bytes it receives, unchanged, into its own
//! feed, so its log, offset and backlog match its master's and it can serve as master later
//! (PSYNC2: a promoted replica keeps the old id as `replid2`).
//!
//! Offsets count stream bytes, as Redis' `master_repl_offset` does. The feed also knows where
//! the last *data* ends (`data_offset`): everything but a master's keepalive `PING`s, which
//! are stream bytes no client wrote. A master cut off from its replicas may send a PING they
//! never get; the sentinels count divergent history only up to the data's end, so that
//! "divergent bytes" means writes. The append log also holds
//! `REPLMARK replid offset db` records (not part of the stream) at the start of every file and
//! wherever the id changes, so replaying a log recovers the exact position of the data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ctx::Prop;
use crate::stream::{Mark, encode_command};

/// A replication id: 40 random hex digits.
pub fn random_id() -> String {
    (0..40)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

/// The stream position and recent history of this node's data.
pub struct Feed {
    /// Id of the history the data belongs to.
    pub replid: String,
    /// The id this history continued from (after a promotion or restart).
    pub replid2: String,
    /// First offset (next byte, Redis' `second_repl_offset`) not shared with `replid2`; -1: none.
    pub second_offset: i64,
    /// Stream bytes so far.
    pub offset: u64,
    /// The offset just after the last data byte: `offset` less any keepalive PINGs at the end.
    pub data_offset: u64,
    /// Database of the last command in the stream (`None`: the next command needs a SELECT).
    db: Option<usize>,
    backlog: Ring,
    /// Connected replicas (on a master).
    pub links: Vec<Arc<Link>>,
    /// Reused encoding buffer (no allocation per write).
    pub scratch: Vec<u8>,
}

impl Feed {
    /// A feed at `offset` of history `replid`.
    pub fn new(replid: String, offset: u64, db: Option<usize>, backlog_size: usize) -> Feed {
        Feed {
            replid,
            replid2: "0".repeat(40),
            second_offset: -1,
            offset,
            data_offset: offset,
            db,
            backlog: Ring::new(backlog_size),
            links: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Encodes propagated commands as stream bytes.
    pub fn encode(&mut self, props: &[Prop], out: &mut Vec<u8>) {
        for (d, args) in props {
            if self.db != Some(*d) {
                let mut n = itoa::Buffer::new();
                let select = [
                    Bytes::from_static(b"SELECT"),
                    Bytes::copy_from_slice(n.format(*d).as_bytes()),
                ];
                encode_command(out, &select);
                self.db = Some(*d);
            }
            encode_command(out, args);
        }
    }

    /// Appends stream bytes of data: the offset grows, the backlog keeps them, replicas get
    /// them.
    pub fn push(&mut self, bytes: &[u8]) {
        self.push_with_data(bytes, bytes.len());
    }

    /// Appends a master's keepalive PING: stream bytes, but no data.
    pub fn push_ping(&mut self, bytes: &[u8]) {
        self.push_with_data(bytes, 0);
    }

    /// Appends stream bytes whose first `data_len` bytes end with data and whose rest are
    /// keepalive PINGs (a replica passes its master's stream on in such units).
    pub fn push_with_data(&mut self, bytes: &[u8], data_len: usize) {
        if bytes.is_empty() {
            return;
        }
        if data_len > 0 {
            self.data_offset = self.offset + data_len.min(bytes.len()) as u64;
        }
        self.offset += bytes.len() as u64;
        self.backlog.push(bytes);
        for l in &self.links {
            l.send(bytes);
        }
    }

    /// The database the stream is in (`None`: the next command starts with a SELECT).
    pub fn db(&self) -> Option<usize> {
        self.db
    }

    /// Makes the next command start with a SELECT (a full sync starts a replica's stream
    /// here, and the replica does not know the database yet).
    pub fn force_select(&mut self) {
        self.db = None;
    }

    /// The database a replica's stream is in after a `SELECT` it applied.
    pub fn set_db(&mut self, db: usize) {
        self.db = Some(db);
    }

    /// The current position: replication id, offset and selected database.
    pub fn position(&self) -> Mark {
        Mark {
            replid: self.replid.clone(),
            offset: self.offset,
            db: self.db,
        }
    }

    /// The log record stating the current position.
    pub fn marker(&self) -> Vec<u8> {
        self.position().encode()
    }

    /// Starts a new history at the current offset, remembering the old one so replicas that
    /// followed it can continue (promotion, restart of a master).
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, random_id());
        self.second_offset = self.offset as i64 + 1;
    }

    /// Adopts the id of a master that changed its own (a `+CONTINUE` with a new id).
    pub fn adopt_replid(&mut self, id: String) {
        if id != self.replid {
            self.replid2 = std::mem::replace(&mut self.replid, id);
            self.second_offset = self.offset as i64 + 1;
        }
    }

    /// Restarts at another history (after a full sync).
    pub fn reset(&mut self, replid: String, offset: u64) {
        self.replid = replid;
        self.replid2 = "0".repeat(40);
        self.second_offset = -1;
        self.offset = offset;
        self.data_offset = offset;
        self.db = None;
        self.backlog.clear();
    }

    /// Offset of the first byte the backlog holds (Redis' `repl_backlog_first_byte_offset`).
    pub fn backlog_first_byte(&self) -> u64 {
        self.offset + 1 - self.backlog.len() as u64
    }

    /// Bytes held in the backlog.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// For `PSYNC replid psync_offset` (the next byte the replica wants): the bytes to send
    /// after `+CONTINUE`, or `None` when a full sync is needed.
    pub fn continue_from(&self, replid: &str, psync_offset: u64) -> Option<Vec<u8>> {
        let same_history = replid == self.replid
            || (replid == self.replid2 && psync_offset as i64 <= self.second_offset);
        if !same_history
            || psync_offset < self.backlog_first_byte()
            || psync_offset > self.offset + 1
        {
            return None;
        }
        let skip = (psync_offset - self.backlog_first_byte()) as usize;
        Some(self.backlog.tail(self.backlog.len() - skip))
    }
}

/// The backlog: the last `cap` bytes of the stream in a fixed buffer (allocated as it fills),
/// appended with at most two copies.
struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Where the next byte goes once the buffer is full.
    head: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            cap: cap.max(1),
            head: 0,
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    fn push(&mut self, mut bytes: &[u8]) {
        if bytes.len() >= self.cap {
            bytes = &bytes[bytes.len() - self.cap..];
            self.buf.clear();
            self.buf.extend_from_slice(bytes);
            self.head = 0;
            return;
        }
        let room = self.cap - self.buf.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        while !bytes.is_empty() {
            let n = (self.cap - self.head).min(bytes.len());
            self.buf[self.head..self.head + n].copy_from_slice(&bytes[..n]);
            self.head = (self.head + n) % self.cap;
            bytes = &bytes[n..];
        }
    }

    /// The last `n` bytes, oldest first.
    fn tail(&self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len());
        let mut out = Vec::with_capacity(n);
        if self.buf.len() < self.cap {
            out.extend_from_slice(&self.buf[self.buf.len() - n..]);
        } else {
            // Oldest byte at `head`; the newest `n` end just before it.
            let start = (self.head + self.cap - n) % self.cap;
            if start + n <= self.cap {
                out.extend_from_slice(&self.buf[start..start + n]);
            } else {
                out.extend_from_slice(&self.buf[start..]);
                out.extend_from_slice(&self.buf[..self.head]);
            }
        }
        out
    }
}

/// The state of one replica on its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Waiting for its snapshot.
    WaitBgsave = 0,
    /// Receiving its snapshot.
    SendBulk = 1,
    /// Receiving the live stream.
    Online = 2,
}

impl LinkState {
    /// The word `INFO replication` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::WaitBgsave => "wait_bgsave",
            LinkState::SendBulk => "send_bulk",
            LinkState::Online => "online",
        }
    }
}

/// A replica connected to this master: its output buffer and what it acknowledged.
pub struct Link {
    /// Client id of the replica's connection.
    pub client_id: u64,
    /// Its IP address.
    pub ip: String,
    /// The port it announced (`REPLCONF listening-port`).
    pub port: AtomicU32,
    out: Mutex<Vec<u8>>,
    /// Woken when there is output.
    pub wake: Notify,
    /// The offset it last acknowledged.
    pub ack: AtomicU64,
    /// Node clock (ms) of its last acknowledgement.
    pub last_ack_ms: AtomicU64,
    state: AtomicU8,
    /// Cancelled to drop the replica (output limit, role change).
    pub kill: CancellationToken,
    limit: usize,
}

impl Link {
    /// A new link in the `wait_bgsave` state.
    pub fn new(
        client_id: u64,
        ip: String,
        port: u32,
        limit: usize,
        now_ms: u64,
        kill: CancellationToken,
    ) -> Link {
        Link {
            client_id,
            ip,
            port: AtomicU32::new(port),
            out: Mutex::new(Vec::new()),
            wake: Notify::new(),
            ack: AtomicU64::new(0),
            last_ack_ms: AtomicU64::new(now_ms),
            state: AtomicU8::new(LinkState::WaitBgsave as u8),
            kill,
            limit,
        }
    }

    /// Queues stream bytes; a replica whose queue passes the limit is dropped (it will
    /// resynchronise) rather than let the master's memory grow without bound.
    pub fn send(&self, bytes: &[u8]) {
        let mut out = self.out.lock();
        if out.len() + bytes.len() > self.limit {
            drop(out);
            tracing::warn!(replica = %self.ip, limit = self.limit, "replica output buffer limit reached, dropping the replica");
            self.kill.cancel();
            return;
        }
        out.extend_from_slice(bytes);
        drop(out);
        self.wake.notify_one();
    }

    /// Moves the queued bytes into `buf` (cleared first), whose allocation the link keeps for
    /// the next ones (unless a burst made it large).
    pub fn take_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.shrink_to(1 << 20);
        std::mem::swap(buf, &mut *self.out.lock());
    }

    /// Current state.
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Relaxed) {
            0 => LinkState::WaitBgsave,
            1 => LinkState::SendBulk,
            _ => LinkState::Online,
        }
    }

    /// Moves to `s`.
    pub fn set_state(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_bytes() {
        let mut r = Ring::new(5);
        let mut all = Vec::new();
        for (i, chunk) in [&b"ab"[..], b"cde", b"f", b"ghijklm", b"", b"no"]
            .iter()
            .enumerate()
        {
            r.push(chunk);
            all.extend_from_slice(chunk);
            let keep = all.len().min(5);
            assert_eq!(r.len(), keep, "#{i}");
            for n in 0..=keep {
                assert_eq!(r.tail(n), all[all.len() - n..], "#{i} tail {n}");
            }
        }
    }

    #[test]
    fn pings_are_no_data() {
        let mut f = Feed::new("a".repeat(40), 100, None, 1024);
        assert_eq!((f.offset, f.data_offset), (100, 100));
        f.push(b"data");
        f.push_ping(b"ping");
        assert_eq!((f.offset, f.data_offset), (108, 104));
        // A replica's unit: data, then a PING.
        f.push_with_data(b"datping", 3);
        assert_eq!((f.offset, f.data_offset), (115, 111));
        f.push_with_data(b"ping", 0);
        assert_eq!((f.offset, f.data_offset), (119, 111));
        f.reset("b".repeat(40), 7);
        assert_eq!((f.offset, f.data_offset), (7, 7));
    }

    #[test]
    fn partial_resync_window() {
        let mut f = Feed::new("a".repeat(40), 0, None, 10);
        f.push(b"0123456789abcdef");
        assert_eq!(f.offset, 16);
        assert_eq!(f.backlog_first_byte(), 7);
        // The replica processed 12 bytes: it wants byte 13 onwards ("cdef").
        assert_eq!(f.continue_from(&"a".repeat(40), 13).unwrap(), b"cdef");
        assert_eq!(f.continue_from(&"a".repeat(40), 17).unwrap(), b"");
        assert!(
            f.continue_from(&"a".repeat(40), 6).is_none(),
            "before the backlog"
        );
        assert!(
            f.continue_from(&"a".repeat(40), 18).is_none(),
            "beyond the stream"
        );
        assert!(
            f.continue_from(&"b".repeat(40), 13).is_none(),
            "other history"
        );
        let old = f.replid.clone();
        f.shift_replid();
        f.push(b"xy");
        // The old history is shared up to offset 16 only.
        assert_eq!(f.continue_from(&old, 17).unwrap(), b"xy");
        assert!(f.continue_from(&old, 18).is_none());
    }
}
