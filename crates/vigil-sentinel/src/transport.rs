//! The Raft transport over gRPC (`RaftPeer.Send`): one task and one cached channel per peer;
//! messages are batched, sent with the cluster token, and on failure the peer is reported
//! unreachable to Raft (and a snapshot in the batch as failed) while the task backs off and
//! reconnects. Sending never blocks the driver: a full queue drops messages, which Raft
//! retransmits. (Opinion calls have their own channels, in `peers.rs`.)

use std::collections::HashMap;
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
            match self.queue(to) {
                Some(q) => {
                    if q.try_send(m).is_err() {
                        tracing::debug!(peer = to, "peer queue full, message dropped");
                    }
                }
                None => tracing::debug!(peer = to, "no address for peer, message dropped"),
            }
        }
    }
}

async fn peer_task(
    t: Arc<GrpcTransport>,
    to: u64,
    address: String,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut client: Option<RaftPeerClient<Channel>> = None;
    let mut backoff = Duration::from_millis(50);
    let auth = Bearer::new(&t.token);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256
            && let Ok(m) = rx.try_recv()
        {
            batch.push(m);
        }
        let has_snapshot = batch
            .iter()
            .any(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        if client.is_none() {
            match vigil_proto::channel::lazy(&address, CALL_TIMEOUT) {
                Ok(c) => client = Some(RaftPeerClient::new(c)),
                Err(e) => {
                    tracing::error!(peer = to, %address, error = %e, "bad peer address");
                    return;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let mut req = tonic::Request::new(RaftBatch {
            from: t.me,
            messages: batch
                .iter()
                .map(|m| m.write_to_bytes().unwrap_or_default())
                .collect(),
        });
        if let Some(a) = &auth {
            req.metadata_mut()
                .insert("authorization", a.value().clone());
        }
        match c.send(req).await {
            Ok(_) => {
                backoff = Duration::from_millis(50);
                if has_snapshot && let Some(h) = t.handle.get() {
                    h.snapshot_status(to, true);
                }
            }
            Err(e) => {
                tracing::debug!(peer = to, error = %e, "peer unreachable");
                if let Some(h) = t.handle.get() {
                    h.unreachable(to);
                    if has_snapshot {
                        h.snapshot_status(to, false);
                    }
                }
                // Drop what queued meanwhile (Raft resends) and back off.
                tokio::time::sleep(backoff).await;
                while rx.try_recv().is_ok() {}
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
