//! The Raft transport over gRPC: one task per peer; messages are batched and go on one
//! long-lived `RaftPeer.Stream` call (a message costs a frame, not a call: heartbeats and
//! ReadIndex rounds come many times a second), snapshots by `RaftPeer.Send` so that their
//! delivery is known. Both carry the cluster token. When the stream ends or a call fails the
//! peer is reported unreachable to Raft (and a snapshot as failed) while the task backs off and
//! reconnects; a peer that does not know `Stream` (an older sentinel) gets every batch by
//! `Send`. Sending never blocks the driver: a full queue drops messages, which Raft
//! retransmits. (Opinion calls have their own channels, in `peers.rs`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use vigil_proto::auth::Bearer;
use vigil_proto::sentinel::RaftBatch;
use vigil_proto::sentinel::raft_peer_client::RaftPeerClient;

use crate::driver::{Handle, Transport};

/// Longest a peer call may take before the peer counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// gRPC Raft transport.
pub struct GrpcTransport {
    me: u64,
    token: String,
    /// Addresses of the other sentinels (config founders plus those added later).
    addresses: RwLock<HashMap<u64, String>>,
    queues: RwLock<HashMap<u64, mpsc::Sender<Message>>>,
    handle: OnceLock<Handle>,
}

impl GrpcTransport {
    /// A transport for sentinel `me`, knowing `peers` (id → `host:port`).
    pub fn new(me: u64, token: String, peers: HashMap<u64, String>) -> Arc<GrpcTransport> {
        Arc::new(GrpcTransport {
            me,
            token,
            addresses: RwLock::new(peers),
            queues: RwLock::new(HashMap::new()),
            handle: OnceLock::new(),
        })
    }

    /// Connects the transport to its driver (for unreachable and snapshot reports).
    pub fn attach(&self, h: Handle) {
        let _ = self.handle.set(h);
    }

    /// Learns (or updates) a peer's address.
    pub fn set_address(&self, id: u64, address: String) {
        if id == self.me {
            return;
        }
        let changed = self.addresses.write().insert(id, address.clone()) != Some(address);
        if changed {
            // The old task (if any) dies with its queue; the next send starts a new one.
            self.queues.write().remove(&id);
        }
    }

    /// The ids of the other sentinels this one knows an address for.
    pub fn peers(&self) -> Vec<u64> {
        self.addresses.read().keys().copied().collect()
    }

    /// The known address of a peer.
    pub fn address(&self, id: u64) -> Option<String> {
        self.addresses.read().get(&id).cloned()
    }

    /// A message to `to` was dropped: Raft resends any, but a snapshot it must be told of,
    /// or it waits for that one forever.
    fn dropped(&self, to: u64, snapshot: bool) {
        if snapshot && let Some(h) = self.handle.get() {
            h.snapshot_status(to, false);
        }
    }

    fn queue(self: &Arc<Self>, to: u64) -> Option<mpsc::Sender<Message>> {
        if let Some(q) = self.queues.read().get(&to) {
            return Some(q.clone());
        }
        let address = self.addresses.read().get(&to).cloned()?;
        let (tx, rx) = mpsc::channel(1024);
        self.queues.write().insert(to, tx.clone());
        tokio::spawn(peer_task(self.clone(), to, address, rx));
        Some(tx)
    }
}

impl Transport for Arc<GrpcTransport> {
    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let sent = match self.queue(to) {
                Some(q) => q.try_send(m).is_ok(),
                None => false,
            };
            if !sent {
                tracing::debug!(peer = to, "peer queue full or no address, message dropped");
                self.dropped(to, snapshot);
            }
        }
    }
}

/// What is known of a peer's `RaftPeer.Stream`.
struct Stream {
    /// Batches for the open stream (`None`: none open).
    tx: Option<mpsc::Sender<RaftBatch>>,
    /// When it was opened.
    opened: std::time::Instant,
    /// The peer answered `UNIMPLEMENTED` (a sentinel from before streams, during a rolling
    /// upgrade): batches go by `Send`, and the stream is tried again after [`RETRY_STREAM`].
    unsupported: Arc<AtomicBool>,
    /// When this task first saw `unsupported`.
    unsupported_since: Option<std::time::Instant>,
}

/// How long batches go by `Send` to a peer that refused the stream before it is tried again
/// (the peer may have been upgraded meanwhile).
const RETRY_STREAM: Duration = Duration::from_secs(60);

/// A stream open this long survived its connect and at least one keepalive round: the peer
/// is there, and the next failure starts backing off afresh.
const STREAM_PROVEN: Duration = Duration::from_secs(5);

/// The most bytes of messages one batch carries (the gRPC decoder takes up to 4 MiB).
const BATCH_BYTES: usize = 1 << 20;

async fn peer_task(
    t: Arc<GrpcTransport>,
    to: u64,
    address: String,
    mut rx: mpsc::Receiver<Message>,
) {
    let (unary, streaming) = match (
        vigil_proto::channel::lazy(&address, CALL_TIMEOUT),
        vigil_proto::channel::streaming(&address, CALL_TIMEOUT),
    ) {
        (Ok(u), Ok(s)) => (RaftPeerClient::new(u), RaftPeerClient::new(s)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(peer = to, %address, error = %e, "bad peer address");
            return;
        }
    };
    let mut backoff = BACKOFF;
    let auth = Bearer::new(&t.token);
    let mut stream = Stream {
        tx: None,
        opened: std::time::Instant::now(),
        unsupported: Arc::new(AtomicBool::new(false)),
        unsupported_since: None,
    };
    while let Some(first) = rx.recv().await {
        let mut bytes = first.compute_size() as usize;
        let mut batch = vec![first];
        while batch.len() < 256
            && bytes < BATCH_BYTES
            && let Ok(m) = rx.try_recv()
        {
            bytes += m.compute_size() as usize;
            batch.push(m);
        }
        let unary_only = stream.unsupported.load(Ordering::Relaxed);
        if unary_only
            && stream
                .unsupported_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                >= RETRY_STREAM
        {
            stream.unsupported.store(false, Ordering::Relaxed);
            stream.unsupported_since = None;
            stream.tx = None;
        }
        let (snapshots, rest): (Vec<Message>, Vec<Message>) = batch
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let mut ok = true;
        if !rest.is_empty() {
            ok = if unary_only {
                call(&t, &unary, &auth, to, &rest).await
            } else {
                feed(&t, &streaming, &auth, &mut stream, rest)
            };
        }
        if ok && !snapshots.is_empty() {
            // By `Send`, so that the snapshot's delivery is known and reported.
            let delivered = call(&t, &unary, &auth, to, &snapshots).await;
            if let Some(h) = t.handle.get() {
                h.snapshot_status(to, delivered);
            }
            ok = delivered;
        } else if !snapshots.is_empty() {
            t.dropped(to, true);
        }
        if ok {
            if stream.opened.elapsed() >= STREAM_PROVEN || unary_only {
                backoff = BACKOFF;
            }
            continue;
        }
        tracing::debug!(peer = to, "peer unreachable");
        if let Some(h) = t.handle.get() {
            h.unreachable(to);
        }
        // Drop what queued meanwhile (Raft resends) and back off.
        tokio::time::sleep(backoff).await;
        while let Ok(m) = rx.try_recv() {
            t.dropped(to, m.get_msg_type() == MessageType::MsgSnapshot);
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// The first wait before a peer that failed is tried again.
const BACKOFF: Duration = Duration::from_millis(50);

/// `msgs` as one batch, in the encoding `RaftPeer` takes.
fn encode(me: u64, msgs: &[Message]) -> RaftBatch {
    RaftBatch {
        from: me,
        messages: msgs
            .iter()
            .map(|m| m.write_to_bytes().unwrap_or_default())
            .collect(),
    }
}

/// Sends `msgs` by `RaftPeer.Send`; whether the peer took them.
async fn call(
    t: &GrpcTransport,
    c: &RaftPeerClient<Channel>,
    auth: &Option<Bearer>,
    to: u64,
    msgs: &[Message],
) -> bool {
    let mut req = tonic::Request::new(encode(t.me, msgs));
    if let Some(a) = auth {
        req.metadata_mut()
            .insert("authorization", a.value().clone());
    }
    match c.clone().send(req).await {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(peer = to, error = %e, "peer call failed");
            false
        }
    }
}

/// Puts `msgs` on the peer's open stream, opening one if there is none; false if the stream
/// ended (the peer is unreachable or restarted; the next batch opens a new one). A full
/// stream drops the batch, as a full queue does.
fn feed(
    t: &GrpcTransport,
    c: &RaftPeerClient<Channel>,
    auth: &Option<Bearer>,
    s: &mut Stream,
    msgs: Vec<Message>,
) -> bool {
    let tx = s.tx.get_or_insert_with(|| {
        let (tx, rx) = mpsc::channel(STREAM_BATCHES);
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        if let Some(a) = auth {
            req.metadata_mut()
                .insert("authorization", a.value().clone());
        }
        let mut c = c.clone();
        let unsupported = s.unsupported.clone();
        tokio::spawn(async move {
            // Returns only when the stream ends: the connection failed, or the peer refused.
            if let Err(e) = c.stream(req).await {
                if e.code() == tonic::Code::Unimplemented {
                    unsupported.store(true, Ordering::Relaxed);
                }
                tracing::debug!(error = %e, "raft stream ended");
            }
        });
        s.opened = std::time::Instant::now();
        tx
    });
    match tx.try_send(encode(t.me, &msgs)) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::debug!("raft stream full, batch dropped");
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            s.tx = None;
            false
        }
    }
}

/// Batches a stream holds before the peer takes them (beyond them, batches are dropped).
const STREAM_BATCHES: usize = 64;
