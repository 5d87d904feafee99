//! PUBLISH across a sharded cluster: a message published on one node reaches the subscribers
//! of every node of the view, replicas included, as Redis Cluster's bus carries it (cluster
//! clients subscribe on any node: ioredis picks one at random). An SPUBLISH reaches the nodes
//! of the publishing node's shard only.
//!
//! Each other node gets its own queue and task, which sends the queue's messages in order, in
//! batches, with NodeAdmin `Publish` (the admin token, and TLS when the admin port has it).
//! Delivery is at most once, as Redis' pub/sub: a full queue or a call that fails drops the
//! messages with a warning; a node that receives them does not forward them further.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc::{self, error::TrySendError};
use vigil_proto::node::node_admin_client::NodeAdminClient;
use vigil_proto::node::{PubMessage, PublishRequest};

use super::View;

/// Messages waiting for one node; beyond this they are dropped.
const QUEUE: usize = 10_000;
/// Messages sent in one call at most.
const BATCH: usize = 512;
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The queues to the other nodes, by NodeAdmin address.
#[derive(Default)]
pub struct Bus {
    peers: Mutex<HashMap<String, mpsc::Sender<PubMessage>>>,
}

impl Bus {
    /// Queues `channel`/`message` for every node of `view` but this one (`shard`: an SPUBLISH,
    /// for the nodes of this node's shard only), presenting `token`.
    pub fn forward(&self, view: &View, token: &str, channel: &Bytes, message: &Bytes, shard: bool) {
        let mut peers = self.peers.lock();
        let mine = view.my_shard();
        let in_scope = |m: &&super::Member| {
            !shard
                || mine
                    .master
                    .iter()
                    .chain(&mine.replicas)
                    .any(|s| s.id == m.id)
        };
        for m in view
            .others()
            .filter(|m| !m.admin.is_empty())
            .filter(in_scope)
        {
            let msg = PubMessage {
                channel: channel.to_vec(),
                message: message.to_vec(),
                shard,
            };
            let tx = peers
                .entry(m.admin.clone())
                .or_insert_with(|| spawn(m.admin.clone(), token.to_string()));
            match tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => tracing::warn!(
                    peer = %m.admin,
                    "PUBLISH not forwarded: {QUEUE} messages already wait for that node"
                ),
                Err(TrySendError::Closed(msg)) => {
                    let tx = spawn(m.admin.clone(), token.to_string());
                    let _ = tx.try_send(msg);
                    peers.insert(m.admin.clone(), tx);
                }
            }
        }
    }

    /// Forgets the nodes `view` no longer has (their tasks end once their queues drain).
    pub fn retain(&self, view: &View) {
        let keep: Vec<&str> = view.others().map(|m| m.admin.as_str()).collect();
        self.peers.lock().retain(|a, _| keep.contains(&a.as_str()));
    }
}

/// The task that empties one node's queue.
fn spawn(admin: String, token: String) -> mpsc::Sender<PubMessage> {
    let (tx, mut rx) = mpsc::channel::<PubMessage>(QUEUE);
    tokio::spawn(async move {
        let client = vigil_proto::channel::lazy(&admin, TIMEOUT)
            .ok()
            .zip(vigil_proto::auth::Bearer::new(&token))
            .map(|(ch, bearer)| NodeAdminClient::with_interceptor(ch, bearer));
        let Some(client) = client else {
            tracing::warn!(peer = %admin, "cannot forward PUBLISH: bad admin address or token");
            return;
        };
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let req = PublishRequest {
                messages: std::mem::take(&mut batch),
            };
            let n = req.messages.len();
            let mut sent = client.clone().publish(req.clone()).await;
            // Not connected yet (the first call, or the node restarted): nothing was
            // delivered, so one more try cannot duplicate.
            if matches!(&sent, Err(e) if e.code() == tonic::Code::Unavailable) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                sent = client.clone().publish(req).await;
            }
            if let Err(e) = sent {
                tracing::warn!(peer = %admin, messages = n, error = %e, "PUBLISH not forwarded");
            }
        }
    });
    tx
}
