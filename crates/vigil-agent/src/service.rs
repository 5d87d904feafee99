//! The NodeAdmin gRPC service of the agent (`proto/node_admin.proto`), the same contract as
//! `vigil node`'s, translated for a stock server: status from `INFO`, promotion with
//! `REPLICAOF NO ONE`, repointing with `REPLICAOF host port` (then `CLIENT KILL TYPE normal` /
//! `pubsub`, as Redis Sentinel does), the fence and the lease as a write pause. Calls are
//! serialised; an epoch is persisted before the call acts on it; a lower one is refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use vigil_proto::admin::{self, Epoch, Target};
use vigil_proto::node::node_admin_server::NodeAdmin;
use vigil_proto::node::{
    FenceRequest, GetStatusRequest, KillClientsReply, KillClientsRequest, LeaseReply, NodeStatus,
    PromoteRequest, RenewLeaseRequest, ReplicateFromRequest, Role,
};

use crate::agent::Agent;
use crate::authority::{Assigned, EpochRefused};
use crate::stock::{Info, StockError};

/// NodeAdmin over the agent.
pub struct AdminService {
    agent: Arc<Agent>,
}

impl AdminService {
    /// The service for `agent`.
    pub fn new(agent: Arc<Agent>) -> AdminService {
        AdminService { agent }
    }

    fn accept_epoch(&self, Epoch(epoch): Epoch) -> Result<bool, Status> {
        let advanced = self
            .agent
            .authority
            .lock()
            .accept_epoch(epoch, &self.agent.config.dir)
            .map_err(|e| match e {
                EpochRefused::Stale { .. } => Status::failed_precondition(e.to_string()),
                EpochRefused::Persist(_) => Status::internal(e.to_string()),
            })?;
        if advanced {
            self.agent.span.record("epoch", epoch);
            tracing::info!(epoch, "epoch advanced");
        }
        Ok(advanced)
    }

    async fn info(&self) -> Result<Info, Status> {
        let info = self.agent.query.info().await.map_err(unavailable)?;
        if self.agent.observe(&info) != crate::agent::Observed::Steady {
            // A restart seen here first: pause before answering (the keeper sets it up).
            self.agent.changed.notify_one();
            let _ = self.agent.enforce().await;
        }
        Ok(info)
    }

    async fn status(&self) -> Result<NodeStatus, Status> {
        let info = self.info().await?;
        Ok(self.status_of(&info).await)
    }

    async fn status_of(&self, info: &Info) -> NodeStatus {
        let now = Instant::now();
        let writes_open = self.agent.writes_open().await;
        let a = self.agent.authority.lock().clone();
        let mut s = info.status();
        s.role = match (&a.role, info.master) {
            (Assigned::Unassigned, _) | (Assigned::Replica { .. }, true) => Role::Unassigned,
            (_, true) => Role::Master,
            (_, false) => Role::Replica,
        } as i32;
        s.epoch = a.epoch;
        s.managed = true;
        s.fenced = a.fenced;
        s.writable = writes_open && a.open(now, info.master) && a.role == Assigned::Master;
        s.lease_remaining_ms = a.lease_remaining(now).as_millis() as u64;
        s.node_clock_ms = self.agent.clock_ms();
        s.priority = self.agent.config.priority;
        s.sync_replicas = self.agent.config.sync_replicas;
        s.acked_offset = info.acked_by(self.agent.config.sync_replicas as usize);
        s.data_port = self.agent.config.server_port().into();
        s
    }

    /// The lease end for `ttl_ms` counted from the agent clock reading `since_ms` (0: now).
    fn lease_end(&self, ttl_ms: u64, since_ms: u64) -> Result<Instant, Status> {
        let end = admin::lease_end_ms(ttl_ms, since_ms, self.agent.clock_ms())?;
        Ok(self.agent.started + Duration::from_millis(end))
    }
}

fn unavailable(e: StockError) -> Status {
    Status::unavailable(format!("the agent cannot read its server: {e}"))
}

#[tonic::async_trait]
impl NodeAdmin for AdminService {
    async fn get_status(
        &self,
        _req: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        Ok(Response::new(self.status().await?))
    }

    async fn promote(&self, req: Request<PromoteRequest>) -> Result<Response<NodeStatus>, Status> {
        let r = req.into_inner();
        let _serial = self.agent.serial.lock().await;
        let epoch = Epoch::try_from(r.epoch)?;
        let lease = (r.lease_ttl_ms > 0)
            .then(|| self.lease_end(r.lease_ttl_ms, r.lease_since_node_ms))
            .transpose()?;
        let info = self.info().await?;
        if info.offset < r.min_offset {
            return Err(Status::failed_precondition(format!(
                "offset {} is below min_offset {}: promoting this server would lose acknowledged writes",
                info.offset, r.min_offset
            )));
        }
        if info.loading {
            return Err(Status::unavailable(
                "the server is still loading its dataset",
            ));
        }
        self.accept_epoch(epoch)?;
        // The role first: writes open only once the server reports itself master, and the
        // keeper stops pointing it at its old master.
        {
            let mut a = self.agent.authority.lock();
            a.role = Assigned::Master;
            a.fenced = false;
            match lease {
                Some(end) => a.lease(end, Duration::from_millis(r.lease_ttl_ms)),
                None => {
                    a.writes_until = None;
                    a.lease_until = None;
                }
            }
        }
        if !info.master {
            self.agent
                .query
                .call(&["REPLICAOF", "NO", "ONE"])
                .await
                .map_err(unavailable)?;
        }
        let info = self.info().await?;
        if let Err(e) = self.agent.enforce().await {
            tracing::warn!(error = %e, "writes not opened yet");
        }
        self.agent.changed.notify_one();
        tracing::info!(
            epoch = r.epoch,
            offset = info.offset,
            "promoted by the sentinels"
        );
        Ok(Response::new(self.status_of(&info).await))
    }

    async fn replicate_from(
        &self,
        req: Request<ReplicateFromRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let t = Target::try_from(req.into_inner())?;
        let _serial = self.agent.serial.lock().await;
        let advanced = self.accept_epoch(t.epoch)?;
        let want = Assigned::Replica {
            host: t.host.clone(),
            port: t.port,
        };
        let info = self.info().await?;
        let follows = !info.master && info.master_host == t.host && info.master_port == t.port;
        let same = self.agent.authority.lock().role == want;
        if !(follows && same && !advanced) {
            // The role first: from here the server takes no write as a master.
            {
                let mut a = self.agent.authority.lock();
                a.role = want;
                a.writes_until = None;
                a.lease_until = None;
            }
            let port = t.port.to_string();
            self.agent
                .query
                .call(&["REPLICAOF", &t.host, &port])
                .await
                .map_err(unavailable)?;
            if !follows {
                // Its clients re-resolve the master only when their connection drops.
                for kind in ["normal", "pubsub"] {
                    if let Err(e) = self
                        .agent
                        .query
                        .call(&["CLIENT", "KILL", "TYPE", kind])
                        .await
                    {
                        tracing::warn!(kind, error = %e, "clients not disconnected");
                    }
                }
            }
            tracing::info!(epoch = t.epoch.0, host = %t.host, port = t.port, "now a replica");
        }
        let info = self.info().await?;
        if let Err(e) = self.agent.enforce().await {
            tracing::warn!(error = %e, "writes pause not updated");
        }
        self.agent.changed.notify_one();
        Ok(Response::new(self.status_of(&info).await))
    }

    async fn fence(&self, req: Request<FenceRequest>) -> Result<Response<NodeStatus>, Status> {
        let r = req.into_inner();
        let _serial = self.agent.serial.lock().await;
        self.accept_epoch(Epoch::try_from(r.epoch)?)?;
        {
            let mut a = self.agent.authority.lock();
            a.fenced = true;
            a.writes_until = None;
        }
        // Paused before the offset is read, so the offset reported is final.
        self.agent.enforce().await.map_err(unavailable)?;
        self.agent.changed.notify_one();
        tracing::info!(epoch = r.epoch, "fenced: server writes paused");
        Ok(Response::new(self.status().await?))
    }

    async fn renew_lease(
        &self,
        req: Request<RenewLeaseRequest>,
    ) -> Result<Response<LeaseReply>, Status> {
        let r = req.into_inner();
        let _serial = self.agent.serial.lock().await;
        let end = self.lease_end(r.ttl_ms, r.since_node_ms)?;
        self.accept_epoch(Epoch::try_from(r.epoch)?)?;
        let (epoch, remaining) = {
            let mut a = self.agent.authority.lock();
            if a.role != Assigned::Master {
                return Err(Status::failed_precondition(
                    "this server is not a master; promote it first",
                ));
            }
            if a.fenced {
                return Err(Status::failed_precondition(format!(
                    "this server is fenced at epoch {}; only a promotion at a higher epoch lifts that",
                    a.epoch
                )));
            }
            // A renewal never shortens the lease.
            if a.lease_until.is_none_or(|t| t < end) {
                a.lease(end, Duration::from_millis(r.ttl_ms));
            }
            (a.epoch, a.lease_remaining(Instant::now()))
        };
        self.agent.changed.notify_one();
        Ok(Response::new(LeaseReply {
            epoch,
            lease_remaining_ms: remaining.as_millis() as u64,
            node_clock_ms: self.agent.clock_ms(),
        }))
    }

    async fn kill_clients(
        &self,
        req: Request<KillClientsRequest>,
    ) -> Result<Response<KillClientsReply>, Status> {
        let kind = admin::client_type(req.into_inner().r#type)?;
        let killed = match self
            .agent
            .query
            .call(&["CLIENT", "KILL", "TYPE", kind])
            .await
            .map_err(unavailable)?
        {
            redis_protocol::resp2::types::BytesFrame::Integer(n) => n.max(0) as u64,
            _ => 0,
        };
        tracing::info!(kind, killed, "clients disconnected by the admin API");
        Ok(Response::new(KillClientsReply { killed }))
    }

    async fn set_cluster_view(
        &self,
        _req: Request<vigil_proto::node::ClusterView>,
    ) -> Result<Response<vigil_proto::node::ClusterViewReply>, Status> {
        Err(Status::unimplemented(
            "a stock server under `vigil agent` cannot be a shard: sharded clusters need `vigil node` groups",
        ))
    }

    async fn publish(
        &self,
        _req: Request<vigil_proto::node::PublishRequest>,
    ) -> Result<Response<vigil_proto::node::PublishReply>, Status> {
        Err(Status::unimplemented(
            "a stock server under `vigil agent` is never part of a sharded cluster",
        ))
    }

    type ExportSlotsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<vigil_proto::node::ExportChunk, Status>> + Send>,
    >;

    async fn export_slots(
        &self,
        _req: Request<vigil_proto::node::ExportSlotsRequest>,
    ) -> Result<Response<Self::ExportSlotsStream>, Status> {
        Err(Status::unimplemented(NOT_A_SHARD))
    }

    async fn migration_status(
        &self,
        _req: Request<vigil_proto::node::MigrationStatusRequest>,
    ) -> Result<Response<vigil_proto::node::MigrationStatusReply>, Status> {
        Err(Status::unimplemented(NOT_A_SHARD))
    }

    async fn drop_slots(
        &self,
        _req: Request<vigil_proto::node::DropSlotsRequest>,
    ) -> Result<Response<vigil_proto::node::DropSlotsReply>, Status> {
        Err(Status::unimplemented(NOT_A_SHARD))
    }
}

/// What slot migration calls get from a stock server's agent.
const NOT_A_SHARD: &str = "a stock server under `vigil agent` is never part of a sharded cluster";
