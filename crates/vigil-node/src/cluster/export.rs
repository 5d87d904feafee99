//! Slot migration, the source's half: slot by slot, the keys of the slot as they are at one
//! instant (a `RESTORE … REPLACE ABSTTL` each), then every write to that slot after that
//! instant, all as one ordered stream (NodeAdmin `ExportSlots`, read by the target's master).
//! The snapshot goes a few thousand keys per hold of the store lock ([`Exporter::step`], from
//! a task of its own), found through the keyspace's slot index, so a large migration never
//! stops the node for long; it waits while the target is far behind.
//!
//! The invariant: a slot's snapshot and the start of its writes' stream happen under one hold
//! of the store lock, and every write is propagated under that lock too ([`Node::propagate`]),
//! so each write to a slot is either in its snapshot or in the stream, never both nor
//! neither. Commands of a cluster touch one slot, so the target applies each to the state the
//! source had. The stream's byte count ([`Exporter::status`]) is read under the same lock,
//! which, once the node holds writes to the slots (`View::holds`), makes it final.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use vigil_proto::node::ExportChunk;
use vigil_resp::slot::{SLOTS, key_slot};

use crate::ctx::Prop;
use crate::db::Store;

/// Bytes an export may have queued for a target that reads too slowly: past this it ends, and
/// the sentinels start the migration over.
const MAX_QUEUED: usize = 256 << 20;
/// The snapshot waits while this many bytes are queued (live writes go on meanwhile).
pub const AHEAD: usize = 16 << 20;
/// A snapshot step copies whole slots until it has this many keys or [`STEP_BYTES`].
const STEP_KEYS: usize = 2000;
/// See [`STEP_KEYS`].
const STEP_BYTES: usize = 4 << 20;
/// Snapshot commands go out in pieces of about this size.
const PIECE: usize = 64 << 10;
/// Pieces are sent together up to about this many bytes a message.
const CHUNK: usize = 1 << 20;

/// What the stream carries.
#[derive(Debug)]
pub enum Piece {
    /// RESP-encoded writes.
    Data(Bytes),
    /// RESP-encoded `RESTORE`s of the snapshot.
    Copy(Bytes),
    /// The snapshot is complete: live writes follow.
    SnapshotDone,
}

/// The export in progress, at most one.
pub(super) struct Export {
    id: u64,
    generation: u64,
    /// The migrating slots.
    slots: Vec<bool>,
    /// The slots whose snapshot is out: their writes stream.
    sent: Vec<bool>,
    /// The slots still to copy, the next last.
    pending: Vec<u16>,
    /// Keys copied so far.
    keys: usize,
    tx: mpsc::UnboundedSender<Piece>,
    queued: Queued,
    offset: u64,
}

/// Bytes queued and not yet read: writes, and the snapshot's (which waits for the target
/// rather than counting against [`MAX_QUEUED`]).
#[derive(Clone, Default)]
pub struct Queued {
    writes: Arc<AtomicUsize>,
    copy: Arc<AtomicUsize>,
}

impl Queued {
    fn total(&self) -> usize {
        self.writes.load(Ordering::Relaxed) + self.copy.load(Ordering::Relaxed)
    }
}

impl Export {
    /// Queues writes; false once the target is gone or too far behind.
    fn send(&mut self, bytes: Vec<u8>) -> bool {
        self.offset += bytes.len() as u64;
        let total = self.queued.writes.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
        self.tx.send(Piece::Data(Bytes::from(bytes))).is_ok() && total <= MAX_QUEUED
    }

    /// Queues a piece of the snapshot.
    fn send_copy(&mut self, bytes: Vec<u8>) {
        self.offset += bytes.len() as u64;
        self.queued.copy.fetch_add(bytes.len(), Ordering::Relaxed);
        let _ = self.tx.send(Piece::Copy(Bytes::from(bytes)));
    }
}

/// What a snapshot step left.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More slots to copy.
    More,
    /// The snapshot is out.
    Done,
    /// The export ended (replaced, the target gone).
    Ended,
}

/// The receiving end of an export: its pieces and the bytes they hold (the reader lowers it).
pub struct Stream {
    /// Which export it is (random, never 0).
    pub generation: u64,
    /// The pieces, in order.
    pub rx: mpsc::UnboundedReceiver<Piece>,
    /// Bytes queued and not yet read.
    pub queued: Queued,
}

/// Why an export was not started.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The view does not list the migration as one from this node's shard.
    #[error(
        "migration {0} is not one this node's shard is giving slots to (not in its view, or committed)"
    )]
    NotListed(u64),
    /// This node is not a master that may write.
    #[error("this node is not its shard's writable master")]
    NotMaster,
}

/// The node's export slot.
#[derive(Default)]
pub struct Exporter {
    on: AtomicBool,
    current: Mutex<Option<Export>>,
}

impl Exporter {
    /// Forwards the effects among `props` that touch the exported slots (database 0; a flush
    /// goes as it is: the target drops the slots it imports). Call under the store lock, in
    /// the order the effects are propagated.
    pub fn feed<H>(&self, table: &vigil_resp::command::CommandTable<H>, props: &[Prop]) {
        if !self.on.load(Ordering::Acquire) {
            return;
        }
        let mut cur = self.current.lock();
        let Some(x) = cur.as_mut() else { return };
        let mut alive = !x.tx.is_closed();
        for (db, cmd) in props.iter().filter(|(db, _)| *db == 0) {
            let _ = db;
            let Some((meta, _)) = table.get(&cmd[0]) else {
                continue;
            };
            let ours = match meta.name {
                "flushall" | "flushdb" => true,
                _ => meta
                    .keys(cmd)
                    .is_ok_and(|ks| ks.iter().any(|k| x.sent[key_slot(&cmd[k.pos]) as usize])),
            };
            if ours && alive {
                let mut bytes = Vec::new();
                crate::stream::encode_command(&mut bytes, cmd);
                alive = x.send(bytes);
            }
        }
        if !alive {
            tracing::info!(
                migration = x.id,
                "slot export ended: the target closed it or fell too far behind"
            );
            *cur = None;
            self.on.store(false, Ordering::Release);
        }
    }

    /// Migration `id`'s export: whether it runs, and its byte count. Call under the store
    /// lock for a count no write can change meanwhile.
    pub fn status(&self, id: u64) -> (bool, u64, u64) {
        match self.current.lock().as_ref() {
            Some(x) if x.id == id && !x.tx.is_closed() => (true, x.offset, x.generation),
            _ => (false, 0, 0),
        }
    }

    /// Starts exporting migration `id`'s `slots` (each `true` is exported), replacing any
    /// export; [`Exporter::step`] copies them. Call under the store lock.
    pub fn start(&self, store: &mut Store, id: u64, slots: Vec<bool>) -> Stream {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Queued::default();
        let generation = rand::random::<u64>().max(1);
        let keys = &mut store.dbs[0].keys;
        keys.index_slots();
        let pending: Vec<u16> = (0..SLOTS).rev().filter(|&s| slots[s as usize]).collect();
        let n: usize = pending.iter().map(|&s| keys.count_in_slot(s)).sum();
        tracing::info!(
            migration = id,
            slots = pending.len(),
            keys = n,
            "slot export started"
        );
        let x = Export {
            id,
            generation,
            slots,
            sent: vec![false; SLOTS as usize],
            pending,
            keys: 0,
            tx,
            queued: queued.clone(),
            offset: 0,
        };
        *self.current.lock() = Some(x);
        self.on.store(true, Ordering::Release);
        Stream {
            generation,
            rx,
            queued,
        }
    }

    /// Bytes export `generation` has queued for its target, while it runs.
    pub fn queued(&self, generation: u64) -> Option<usize> {
        self.current
            .lock()
            .as_ref()
            .filter(|x| x.generation == generation && !x.tx.is_closed())
            .map(|x| x.queued.total())
    }

    /// One step of export `generation`'s snapshot: the next few slots (at least
    /// [`STEP_KEYS`] keys, whole slots). Call under the store lock.
    pub fn step(&self, store: &mut Store, generation: u64) -> Step {
        let mut cur = self.current.lock();
        let Some(x) = cur.as_mut().filter(|x| x.generation == generation) else {
            return Step::Ended;
        };
        if x.pending.is_empty() {
            return Step::Done;
        }
        // A database replaced (a full resync, `SWAPDB`) comes without the index.
        store.dbs[0].keys.index_slots();
        let alive = copy_slots(store, x);
        if !alive {
            tracing::info!(migration = x.id, "slot export ended: the target went away");
            *cur = None;
            self.on.store(false, Ordering::Release);
            return Step::Ended;
        }
        if !x.pending.is_empty() {
            return Step::More;
        }
        let _ = x.tx.send(Piece::SnapshotDone);
        tracing::info!(
            migration = x.id,
            keys = x.keys,
            bytes = x.offset,
            "slot export: snapshot sent, writes stream"
        );
        Step::Done
    }

    /// Ends the export if it covers a slot of `ranges`. Call under the store lock.
    pub fn end_overlapping(&self, ranges: &[(u16, u16)]) {
        let mut cur = self.current.lock();
        let overlaps = cur.as_ref().is_some_and(|x| {
            ranges
                .iter()
                .any(|&(a, b)| (a..=b).any(|s| x.slots[s as usize]))
        });
        if overlaps {
            *cur = None;
            self.on.store(false, Ordering::Release);
        }
    }

    /// Ends the export unless it is migration `keep`'s.
    pub fn retain(&self, keep: Option<u64>) {
        let mut cur = self.current.lock();
        if cur.as_ref().is_some_and(|x| Some(x.id) != keep) {
            *cur = None;
            self.on.store(false, Ordering::Release);
        }
    }
}

/// Queues a `RESTORE key ttl payload REPLACE ABSTTL` for every live key of the next pending
/// slots of database 0 (at least [`STEP_KEYS`] keys, whole slots) and marks them sent; false
/// once the target is gone.
fn copy_slots(store: &Store, x: &mut Export) -> bool {
    let now = vigil_base::clock::unix_ms();
    let db = &store.dbs[0];
    let mut piece = Vec::with_capacity(PIECE);
    let (mut n, start) = (0, x.offset);
    while n < STEP_KEYS
        && x.offset - start < STEP_BYTES as u64
        && let Some(slot) = x.pending.pop()
    {
        for (key, value) in db.keys.in_slot(slot) {
            let expire = db.expire_of(key);
            if expire.is_some_and(|t| t <= now) {
                continue;
            }
            let payload = crate::persist::rdb::dump(value, &store.thresholds);
            let args = [
                Bytes::from_static(b"RESTORE"),
                Bytes::copy_from_slice(key),
                Bytes::from(expire.unwrap_or(0).to_string()),
                Bytes::from(payload),
                Bytes::from_static(b"REPLACE"),
                Bytes::from_static(b"ABSTTL"),
            ];
            crate::stream::encode_command(&mut piece, &args);
            n += 1;
            if piece.len() >= PIECE {
                x.send_copy(std::mem::replace(&mut piece, Vec::with_capacity(PIECE)));
            }
        }
        x.sent[slot as usize] = true;
    }
    if !piece.is_empty() {
        x.send_copy(piece);
    }
    x.keys += n;
    !x.tx.is_closed()
}

/// The gRPC response of `ExportSlots`.
pub type ChunkStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ExportChunk, tonic::Status>> + Send>>;

/// An export as gRPC messages: pieces batched up to [`CHUNK`] bytes, each message carrying the
/// stream's byte count after it. When the target goes away the export ends with it.
pub fn chunks(s: Stream) -> ChunkStream {
    let Stream {
        generation,
        mut rx,
        queued,
    } = s;
    let (tx, out) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut offset = 0u64;
        while let Some(first) = rx.recv().await {
            let mut chunk = ExportChunk::default();
            let mut next = Some(first);
            while let Some(p) = next.take() {
                let (b, counter) = match p {
                    Piece::Data(b) => (b, &queued.writes),
                    Piece::Copy(b) => (b, &queued.copy),
                    Piece::SnapshotDone => {
                        chunk.snapshot_done = true;
                        continue;
                    }
                };
                counter.fetch_sub(b.len(), Ordering::Relaxed);
                offset += b.len() as u64;
                chunk.commands.extend_from_slice(&b);
                if chunk.commands.len() < CHUNK {
                    next = rx.try_recv().ok();
                }
            }
            chunk.offset = offset;
            chunk.generation = generation;
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))
}
