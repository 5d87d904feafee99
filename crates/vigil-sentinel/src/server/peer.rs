//! The peer service (`RaftPeer`), called only by other sentinels: Raft messages in, and this
//! sentinel's opinion of a node out (how long its probes have seen it down, the highest offset
//! it saw acknowledged by the group's sync replicas). A message that does not decode is refused
//! with `INVALID_ARGUMENT`, never stepped.

use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::raft_peer_server::RaftPeer;

use super::Sentinel;

impl Sentinel {
    /// Steps every message of `batch`, refusing the batch at the first that does not decode.
    fn step_all(&self, batch: pb::RaftBatch) -> Result<(), Status> {
        for b in batch.messages {
            let m = Message::parse_from_bytes(&b)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            self.raft.step(m);
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RaftPeer for Sentinel {
    async fn send(&self, req: Request<pb::RaftBatch>) -> Result<Response<pb::RaftAck>, Status> {
        self.step_all(req.into_inner())?;
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn stream(
        &self,
        req: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        let mut batches = req.into_inner();
        // Ends with the connection, or when this sentinel stops (the server's graceful
        // shutdown waits for open calls, and a peer's stream would never end by itself).
        loop {
            let batch = tokio::select! {
                b = batches.message() => b?,
                _ = self.shutdown.cancelled() => None,
            };
            let Some(batch) = batch else { break };
            self.step_all(batch)?;
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
