//! The peer service (`RaftPeer`), called only by other sentinels: Raft messages in, and this
//! sentinel's opinion of a node out (how long its probes have seen it down, the highest offset
//! it saw acknowledged by the group's sync replicas). A message that does not decode is refused
//! with `INVALID_ARGUMENT`, never stepped.

use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::{Request, Response, Status};
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::raft_peer_server::RaftPeer;

use super::Sentinel;

#[tonic::async_trait]
impl RaftPeer for Sentinel {
    async fn send(&self, req: Request<pb::RaftBatch>) -> Result<Response<pb::RaftAck>, Status> {
        let batch = req.into_inner();
        for b in batch.messages {
            let m = Message::parse_from_bytes(&b)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            self.raft.step(m);
        }
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn opinion(
        &self,
        req: Request<pb::OpinionRequest>,
    ) -> Result<Response<pb::OpinionReply>, Status> {
        let r = req.into_inner();
        // How long the node has left this sentinel's probes unanswered; the leader compares
        // it with `down_after`.
        let down_ms = self.health.unanswered_for(&r.group, &r.node).as_millis() as u64;
        let acked_offset = self.health.acked(&r.group);
        Ok(Response::new(pb::OpinionReply {
            down_ms,
            acked_offset,
        }))
    }
}
