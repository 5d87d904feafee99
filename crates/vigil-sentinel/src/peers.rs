//! Other sentinels' opinions of a node: the [`Opinions`] trait the controller asks before a
//! failover (how long each peer has seen the master down, and the highest offset it saw
//! acknowledged by sync replicas), and [`GrpcOpinions`], its implementation over gRPC
//! (`RaftPeer.Opinion`) on channels of its own, kept apart from the Raft stream so that a
//! backed-up batch never delays a failover decision. A peer that cannot answer in time has no
//! say.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tonic::transport::Channel;
use vigil_proto::auth::Bearer;
use vigil_proto::sentinel::raft_peer_client::RaftPeerClient;

use crate::transport::GrpcTransport;

/// Longest an opinion call may take: a sentinel that cannot answer in time has no say.
const OPINION_TIMEOUT: Duration = Duration::from_millis(300);

/// One sentinel's fresh opinion of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Opinion {
    /// How long it has gone without a good answer from the node (ms).
    pub down_ms: u64,
    /// The highest offset it saw the group's master report as acknowledged by its sync
    /// replicas.
    pub acked_offset: u64,
}

/// Asking the other sentinels.
#[tonic::async_trait]
pub trait Opinions: Send + Sync + 'static {
    /// The ids of the other sentinels that can be asked.
    fn peers(&self) -> Vec<u64>;
    /// Sentinel `id`'s opinion of `node` of `group`; `None` if it cannot be asked.
    async fn opinion(&self, id: u64, group: &str, node: &str) -> Option<Opinion>;
}

/// [`Opinions`] over gRPC, at the addresses the Raft transport knows.
pub struct GrpcOpinions {
    token: String,
    transport: Arc<GrpcTransport>,
    /// Channels by address.
    channels: RwLock<HashMap<String, Channel>>,
}

impl GrpcOpinions {
    /// Opinions asked with the cluster `token` of the peers `transport` knows.
    pub fn new(token: String, transport: Arc<GrpcTransport>) -> GrpcOpinions {
        GrpcOpinions {
            token,
            transport,
            channels: RwLock::default(),
        }
    }
}

#[tonic::async_trait]
impl Opinions for GrpcOpinions {
    fn peers(&self) -> Vec<u64> {
        self.transport.peers()
    }

    async fn opinion(&self, id: u64, group: &str, node: &str) -> Option<Opinion> {
        let address = self.transport.address(id)?;
        let cached = self.channels.read().get(&address).cloned();
        let channel = match cached {
            Some(c) => c,
            None => {
                let c = vigil_proto::channel::lazy(&address, OPINION_TIMEOUT).ok()?;
                self.channels.write().insert(address, c.clone());
                c
            }
        };
        let mut c = RaftPeerClient::new(channel);
        let mut req = tonic::Request::new(vigil_proto::sentinel::OpinionRequest {
            group: group.to_string(),
            node: node.to_string(),
        });
        if let Some(b) = Bearer::new(&self.token) {
            req.metadata_mut()
                .insert("authorization", b.value().clone());
        }
        let r = c.opinion(req).await.ok()?.into_inner();
        Some(Opinion {
            down_ms: r.down_ms,
            acked_offset: r.acked_offset,
        })
    }
}
