//! Talking to the storage nodes: the [`NodeAdmin`] trait (what the monitor and the controller
//! ask of a node — its status, a data-port ping, promote, follow, fence, renew its lease,
//! disconnect its clients, hand the master role over) and its drivers: [`Nodes`] (gRPC, for
//! `vigil node` and `vigil agent`), [`RespNodes`] (stock `redis-server` / Valkey over RESP,
//! for `driver = "resp"` groups), and [`Drivers`], which sends each call to the driver of the
//! group the address belongs to in the committed state.
//!
//! The controller's failover steps are written against the trait alone, so tests drive a
//! whole failover with in-process fake nodes and injected faults.

mod grpc;
mod resp;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tonic::Status;
use vigil_proto::node::{
    ClusterView, FenceRequest, KillClientsRequest, MigrationStatusReply, NodeStatus,
    PromoteRequest, RenewLeaseRequest, ReplicateFromRequest,
};

pub use grpc::{AdminClient, Nodes};
pub use resp::RespNodes;

use crate::state::ClusterState;

/// How long one NodeAdmin call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// A switchover the master itself carries out (Redis' `FAILOVER`): it pauses writes, waits
/// until `host:port` (one of its replicas) has all of them, then the two swap roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOver {
    /// The failover's epoch.
    pub epoch: u64,
    /// The replica taking over, as the master knows it.
    pub host: String,
    /// Its port.
    pub port: u32,
    /// Its TLS address, where it has one apart from `host:port` (`tls_data`).
    pub tls: Option<(String, u32)>,
    /// How long the master may wait for it (writes are paused meanwhile).
    pub timeout: Duration,
}

/// What the sentinel asks of a storage node, by its addresses (`admin` for the admin calls,
/// `data` for the RESP ping). Errors are gRPC statuses: the controller reads
/// `FAILED_PRECONDITION` from `promote` as "below `min_offset`".
#[tonic::async_trait]
pub trait NodeAdmin: Send + Sync + 'static {
    /// The node's status, within `timeout`.
    async fn status(&self, admin: &str, timeout: Duration) -> Result<NodeStatus, Status>;
    /// [`NodeAdmin::status`], telling the node its group's master's offset as last read
    /// (`/replica?lag=<bytes>` on a replica; servers that cannot keep it ignore it).
    async fn status_seeing(
        &self,
        admin: &str,
        timeout: Duration,
        master_offset: u64,
    ) -> Result<NodeStatus, Status> {
        let _ = master_offset;
        self.status(admin, timeout).await
    }
    /// Whether the node answers a RESP `PING` on its data address within `timeout`.
    async fn ping(&self, data: &str, timeout: Duration) -> bool;
    /// Makes the node master at `req.epoch` with a lease (refused below `req.min_offset`).
    async fn promote(&self, admin: &str, req: PromoteRequest) -> Result<NodeStatus, Status>;
    /// Points the node at a master.
    async fn replicate_from(
        &self,
        admin: &str,
        req: ReplicateFromRequest,
    ) -> Result<NodeStatus, Status>;
    /// Fences the node at `req.epoch`: it stops acknowledging writes; its status after.
    async fn fence(&self, admin: &str, req: FenceRequest) -> Result<NodeStatus, Status>;
    /// Renews a master's write lease.
    async fn renew_lease(&self, admin: &str, req: RenewLeaseRequest) -> Result<(), Status>;
    /// Disconnects the node's clients of one type (so they re-resolve the master).
    async fn kill_clients(&self, admin: &str, req: KillClientsRequest) -> Result<(), Status>;
    /// Has the master at `admin` hand its role to one of its replicas itself, losing no write
    /// (a switchover). `Ok(true)`: done, the replica is master and the old one follows it;
    /// `Ok(false)`: this node cannot, use fence and promote instead (the default); an error:
    /// a hand-over is under way or its outcome is unknown, ask again.
    async fn hand_over(&self, admin: &str, req: HandOver) -> Result<bool, Status> {
        let _ = (admin, req);
        Ok(false)
    }
    /// Tells a shard's node the cluster's slot map and masters; the digest of the view it
    /// now serves. Servers that cannot shard answer `UNIMPLEMENTED` (the default).
    async fn set_cluster_view(&self, admin: &str, view: ClusterView) -> Result<String, Status> {
        let _ = (admin, view);
        Err(Status::unimplemented("this server cannot be a shard"))
    }
    /// A shard node's part in slot migration `id` (its export, import and pause).
    async fn migration_status(&self, admin: &str, id: u64) -> Result<MigrationStatusReply, Status> {
        let _ = (admin, id);
        Err(Status::unimplemented("this server cannot be a shard"))
    }
    /// Deletes (some of) the keys of `ranges` on a shard's master, which does not own them;
    /// how many. Call again until it answers 0.
    async fn drop_slots(
        &self,
        admin: &str,
        ranges: &[(u16, u16)],
        epoch: u64,
    ) -> Result<u64, Status> {
        let _ = (admin, ranges, epoch);
        Err(Status::unimplemented("this server cannot be a shard"))
    }
}

/// The sentinel's [`NodeAdmin`]: each call goes to the driver of the group whose node has
/// that address in the committed state (`resp` groups to [`RespNodes`], everything else to
/// [`Nodes`]).
pub struct Drivers {
    grpc: Nodes,
    resp: RespNodes,
}

impl Drivers {
    /// gRPC calls present `token`; RESP groups are looked up in `state`; `resp_tls`
    /// (`tls_replication`) puts the probes and calls to the nodes' RESP ports on TLS.
    pub fn new(
        token: String,
        state: Arc<RwLock<ClusterState>>,
        resp_tls: Option<Arc<vigil_resp::tls::ServerTls>>,
    ) -> Drivers {
        Drivers {
            grpc: Nodes::new(token, resp_tls.clone()),
            resp: RespNodes::new(state, resp_tls),
        }
    }
}

#[tonic::async_trait]
impl NodeAdmin for Drivers {
    async fn status(&self, admin: &str, timeout: Duration) -> Result<NodeStatus, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.status(&c, timeout).await,
            None => self.grpc.status(admin, timeout).await,
        }
    }

    async fn status_seeing(
        &self,
        admin: &str,
        timeout: Duration,
        master_offset: u64,
    ) -> Result<NodeStatus, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.status(&c, timeout).await,
            None => self.grpc.status_seeing(admin, timeout, master_offset).await,
        }
    }

    async fn ping(&self, data: &str, timeout: Duration) -> bool {
        match self.resp.context(data) {
            Some(c) => self.resp.ping(&c, timeout).await,
            None => self.grpc.ping(data, timeout).await,
        }
    }

    async fn promote(&self, admin: &str, req: PromoteRequest) -> Result<NodeStatus, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.promote(&c, req).await,
            None => self.grpc.promote(admin, req).await,
        }
    }

    async fn replicate_from(
        &self,
        admin: &str,
        req: ReplicateFromRequest,
    ) -> Result<NodeStatus, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.replicate_from(&c, req).await,
            None => self.grpc.replicate_from(admin, req).await,
        }
    }

    async fn fence(&self, admin: &str, req: FenceRequest) -> Result<NodeStatus, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.fence(&c, req).await,
            None => self.grpc.fence(admin, req).await,
        }
    }

    async fn renew_lease(&self, admin: &str, req: RenewLeaseRequest) -> Result<(), Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.renew_lease(&c).await,
            None => self.grpc.renew_lease(admin, req).await,
        }
    }

    async fn kill_clients(&self, admin: &str, req: KillClientsRequest) -> Result<(), Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.kill_clients(&c, req).await,
            None => self.grpc.kill_clients(admin, req).await,
        }
    }

    async fn hand_over(&self, admin: &str, req: HandOver) -> Result<bool, Status> {
        match self.resp.context(admin) {
            Some(c) => self.resp.hand_over(&c, req).await,
            None => self.grpc.hand_over(admin, req).await,
        }
    }

    async fn set_cluster_view(&self, admin: &str, view: ClusterView) -> Result<String, Status> {
        match self.resp.context(admin) {
            Some(_) => Err(Status::unimplemented(
                "a stock server group cannot be a shard",
            )),
            None => self.grpc.set_cluster_view(admin, view).await,
        }
    }

    async fn migration_status(&self, admin: &str, id: u64) -> Result<MigrationStatusReply, Status> {
        self.grpc.migration_status(admin, id).await
    }

    async fn drop_slots(
        &self,
        admin: &str,
        ranges: &[(u16, u16)],
        epoch: u64,
    ) -> Result<u64, Status> {
        self.grpc.drop_slots(admin, ranges, epoch).await
    }
}
