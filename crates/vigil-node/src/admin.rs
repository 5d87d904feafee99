//! The NodeAdmin gRPC service (`proto/node_admin.proto`): how the sentinels read a node's
//! state and change its role, epoch, fence and lease, and push the cluster view.
//!
//! Every call passes the token check ([`vigil_proto::auth::TokenCheck`]) first (bearer token, constant-time comparison). Calls are
//! serialised, so an epoch is persisted and acted on before the next call looks at it. A call
//! with a lower epoch than the node's is refused and changes nothing; a higher one is made
//! durable (fsync) before anything else happens.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use vigil_proto::admin::{self, Epoch, Target};
use vigil_proto::node::node_admin_server::{NodeAdmin, NodeAdminServer};
use vigil_proto::node::{
    ClusterView, ClusterViewReply, DropSlotsReply, DropSlotsRequest, ExportSlotsRequest,
    FenceRequest, GetStatusRequest, KillClientsReply, KillClientsRequest, LeaseReply, LinkStatus,
    MigrationStatusReply, MigrationStatusRequest, NodeStatus, PromoteRequest, RenewLeaseRequest,
    ReplicaInfo, ReplicateFromRequest, Role as PbRole,
};

use crate::gate::{EpochRefused, Role};
use crate::node::Node;
use crate::repl::Phase;

/// How long one `DropSlots` call deletes keys before it answers (the caller calls again).
const DROP_CALL: Duration = Duration::from_millis(50);

/// Serves NodeAdmin on `listener` until the node shuts down, over TLS with `tls`.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: String,
    tls: Option<Arc<vigil_resp::tls::ServerTls>>,
) -> Result<(), tonic::transport::Error> {
    let shutdown = node.shared.shutdown.clone();
    let node_span = node.span.clone();
    let service = AdminService {
        node,
        serial: tokio::sync::Mutex::new(()),
    };
    let check = vigil_proto::auth::TokenCheck::new(
        &token,
        "missing or wrong admin token: send `authorization: Bearer <token>` with the node's [admin] token",
    );
    let svc = NodeAdminServer::with_interceptor(service, check);
    let span = node_span;
    let router = tonic::transport::Server::builder().add_service(svc);
    tracing::Instrument::instrument(
        vigil_proto::tls::serve(router, listener, tls, shutdown.cancelled_owned()),
        span,
    )
    .await
}

struct AdminService {
    node: Arc<Node>,
    /// One call at a time: epoch checks and the actions they guard do not interleave.
    serial: tokio::sync::Mutex<()>,
}

impl AdminService {
    /// Refuses a stale epoch; persists a newer one before the call acts on it. `true` if the
    /// epoch advanced.
    fn accept_epoch(&self, Epoch(epoch): Epoch) -> Result<bool, Status> {
        let dir = self.node.config.read().dir.clone();
        match self.node.gate.accept_epoch(epoch, &dir) {
            Ok(advanced) => {
                if advanced {
                    self.node.span.record("epoch", epoch);
                    tracing::info!(epoch, "epoch advanced");
                }
                Ok(advanced)
            }
            Err(e @ EpochRefused::Stale { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e @ EpochRefused::Persist(_)) => Err(Status::internal(e.to_string())),
        }
    }

    /// The serial lock of the calls that change the role or the view, taken once no script
    /// runs: those changes take the store lock, which a script holds for its whole run. The
    /// script is waited for off the worker, first without the serial lock, so that lease
    /// renewals are not queued behind the wait, then again under it, as one may have
    /// started meanwhile.
    async fn serial_after_script(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.node.script_done().await;
        let serial = self.serial.lock().await;
        self.node.script_done().await;
        serial
    }

    /// The lease end for `ttl_ms` counted from the node clock reading `since_ms` (0: now).
    fn lease_end(&self, ttl_ms: u64, since_ms: u64) -> Result<Instant, Status> {
        let end = admin::lease_end_ms(ttl_ms, since_ms, self.node.clock_ms())?;
        Ok(self.node.started + Duration::from_millis(end))
    }
}

#[tonic::async_trait]
impl NodeAdmin for AdminService {
    async fn get_status(
        &self,
        req: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let seen = req.into_inner().master_offset;
        if seen > 0 {
            *self.node.repl.master_seen.lock() = Some((seen, std::time::Instant::now()));
        }
        Ok(Response::new(status(&self.node)))
    }

    async fn promote(&self, req: Request<PromoteRequest>) -> Result<Response<NodeStatus>, Status> {
        let r = req.into_inner();
        let _serial = self.serial_after_script().await;
        let epoch = Epoch::try_from(r.epoch)?;
        let lease = (r.lease_ttl_ms > 0)
            .then(|| self.lease_end(r.lease_ttl_ms, r.lease_since_node_ms))
            .transpose()?;
        let offset = self.node.offset();
        if offset < r.min_offset {
            return Err(Status::failed_precondition(format!(
                "offset {offset} is below min_offset {}: promoting this node would lose acknowledged writes",
                r.min_offset
            )));
        }
        self.accept_epoch(epoch)?;
        self.node.become_master();
        self.node.gate.lift_fence(lease);
        self.node.check_lease();
        tracing::info!(epoch = r.epoch, offset, "promoted by the sentinels");
        Ok(Response::new(status(&self.node)))
    }

    async fn replicate_from(
        &self,
        req: Request<ReplicateFromRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let t = Target::try_from(req.into_inner())?;
        let _serial = self.serial_after_script().await;
        let advanced = self.accept_epoch(t.epoch)?;
        let (host, port) = t.address(self.node.config.read().tls_replication);
        let role = Role::Replica {
            host: host.clone(),
            port,
        };
        // Same master at the same epoch: nothing to do. A new epoch reconnects, so the
        // handshake checks the master against it.
        if self.node.gate.role() != role || advanced {
            self.node.become_replica(host, port);
        }
        Ok(Response::new(status(&self.node)))
    }

    async fn fence(&self, req: Request<FenceRequest>) -> Result<Response<NodeStatus>, Status> {
        let r = req.into_inner();
        let _serial = self.serial_after_script().await;
        self.accept_epoch(Epoch::try_from(r.epoch)?)?;
        {
            // Under the store lock, as every role change: nothing that passed the role check
            // before the fence (a command, a PING) lands after it, so the offset this call
            // reports is final.
            // A running script is waited for (its writes passed the check), off the worker.
            let _store = self.node.store_when_free().await;
            self.node.gate.fence();
        }
        self.node.wake_blocked();
        self.node.check_lease();
        tracing::info!(epoch = r.epoch, "fenced: no more write acknowledgements");
        Ok(Response::new(status(&self.node)))
    }

    async fn renew_lease(
        &self,
        req: Request<RenewLeaseRequest>,
    ) -> Result<Response<LeaseReply>, Status> {
        let r = req.into_inner();
        let _serial = self.serial.lock().await;
        let end = self.lease_end(r.ttl_ms, r.since_node_ms)?;
        self.accept_epoch(Epoch::try_from(r.epoch)?)?;
        let granted = self
            .node
            .gate
            .renew_lease(end, Instant::now())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let reply = LeaseReply {
            epoch: granted.epoch,
            lease_remaining_ms: granted.remaining.as_millis() as u64,
            node_clock_ms: self.node.clock_ms(),
        };
        self.node.check_lease();
        Ok(Response::new(reply))
    }

    async fn set_cluster_view(
        &self,
        req: Request<ClusterView>,
    ) -> Result<Response<ClusterViewReply>, Status> {
        use crate::cluster::ViewError;
        use crate::cluster::check::AdoptError;
        let v = req.into_inner();
        let _serial = self.serial_after_script().await;
        match self.node.set_cluster_view(&v) {
            Ok(digest) => Ok(Response::new(ClusterViewReply { digest })),
            Err(AdoptError::Refused(e @ ViewError::Older(_))) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(AdoptError::Refused(e)) => Err(Status::invalid_argument(e.to_string())),
            Err(AdoptError::Persist(e)) => Err(Status::internal(e.to_string())),
        }
    }

    async fn publish(
        &self,
        req: Request<vigil_proto::node::PublishRequest>,
    ) -> Result<Response<vigil_proto::node::PublishReply>, Status> {
        // Not serialised with the role changes: delivering a message changes nothing.
        let hub = self.node.shared.hub_for(false);
        let receivers = req
            .into_inner()
            .messages
            .into_iter()
            .map(|m| {
                let (channel, message) = (m.channel.into(), m.message.into());
                let n = if m.shard {
                    hub.spublish(&channel, &message)
                } else {
                    hub.publish(&channel, &message)
                };
                n as u64
            })
            .sum();
        Ok(Response::new(vigil_proto::node::PublishReply { receivers }))
    }

    type ExportSlotsStream = crate::cluster::export::ChunkStream;

    async fn export_slots(
        &self,
        req: Request<ExportSlotsRequest>,
    ) -> Result<Response<Self::ExportSlotsStream>, Status> {
        let id = req.into_inner().id;
        self.node.script_done().await;
        let stream = self
            .node
            .export_slots(id)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(crate::cluster::export::chunks(stream)))
    }

    async fn migration_status(
        &self,
        req: Request<MigrationStatusRequest>,
    ) -> Result<Response<MigrationStatusReply>, Status> {
        let id = req.into_inner().id;
        let node = &self.node;
        // Both under the store lock, which a view change takes too: a count read with the
        // pause in force is final, since no write to the slots can run after it.
        let (paused, (exporting, export_offset, export_generation)) = {
            let _store = node.store_when_free().await;
            let paused = node.cluster_view().is_some_and(|v| {
                v.migration
                    .as_ref()
                    .is_some_and(|m| m.id == id && v.holds_any())
            });
            (paused, node.export.status(id))
        };
        let i = node.import.status(id);
        Ok(Response::new(MigrationStatusReply {
            exporting,
            export_offset,
            paused,
            importing: i.importing,
            snapshot_done: i.snapshot_done,
            import_offset: i.offset,
            error: i.error,
            export_generation,
            import_generation: i.generation,
        }))
    }

    async fn drop_slots(
        &self,
        req: Request<DropSlotsRequest>,
    ) -> Result<Response<DropSlotsReply>, Status> {
        let r = req.into_inner();
        let mut ranges = Vec::new();
        for r in r.slots.iter() {
            if r.start > r.end || r.end >= vigil_resp::slot::SLOTS as u32 {
                return Err(Status::invalid_argument(format!(
                    "slot range {}-{} is not within 0-16383",
                    r.start, r.end
                )));
            }
            ranges.push((r.start as u16, r.end as u16));
        }
        // Short holds of the store lock, clients' commands in between, for up to DROP_CALL; the
        // caller calls again until a call deletes nothing.
        let started = Instant::now();
        let mut deleted = 0;
        loop {
            self.node.script_done().await;
            let n = match self.node.drop_slots(&ranges, r.epoch) {
                Ok(n) => n,
                Err(e) if deleted == 0 => return Err(Status::failed_precondition(e.to_string())),
                Err(e) => {
                    tracing::info!(error = %e, "dropping keys stopped");
                    break;
                }
            };
            deleted += n;
            if n == 0 || started.elapsed() >= DROP_CALL {
                break;
            }
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            tracing::info!(
                keys = deleted,
                "dropped the keys of slots this shard does not own"
            );
        }
        Ok(Response::new(DropSlotsReply { deleted }))
    }

    async fn kill_clients(
        &self,
        req: Request<KillClientsRequest>,
    ) -> Result<Response<KillClientsReply>, Status> {
        let kind = admin::client_type(req.into_inner().r#type)?;
        let killed = self.node.shared.clients.kill_where(|c| c.is_type(kind));
        tracing::info!(kind, killed, "clients disconnected by the admin API");
        Ok(Response::new(KillClientsReply {
            killed: killed as u64,
        }))
    }
}

/// The node's status as NodeAdmin reports it.
pub fn status(node: &Node) -> NodeStatus {
    let now = Instant::now();
    let clock = node.clock_ms();
    let crate::gate::GateView {
        role,
        managed,
        epoch,
        fenced,
        lease_remaining: lease,
        writable,
        ..
    } = node.gate.view(now);
    let (sync_replicas, priority) = {
        let c = node.config.read();
        (c.replication.sync_replicas, c.replication.priority)
    };
    let acked_offset = node.repl.acked_by(sync_replicas);
    // A running script holds the store for its whole run: report the count from before it
    // rather than park a runtime worker on the lock, which (on a node with one worker) would
    // stop -BUSY replies, SCRIPT KILL and the lease renewals until the script ended.
    let store = if node.scripts.busy.running() {
        None
    } else {
        node.store.try_lock_for(Duration::from_millis(10))
    };
    let keys = match store {
        Some(s) => {
            let keys = s.total_keys() as u64;
            node.status_keys.store(keys, Ordering::Relaxed);
            keys
        }
        None => node.status_keys.load(Ordering::Relaxed),
    };
    let feed = node.repl.feed.lock();
    let replicas = feed
        .links
        .iter()
        .map(|l| ReplicaInfo {
            ip: l.ip.clone(),
            port: l.port.load(Ordering::Relaxed),
            ack_offset: l.ack.load(Ordering::Relaxed),
            lag_ms: clock.saturating_sub(l.last_ack_ms.load(Ordering::Relaxed)),
            state: l.state().as_str().into(),
        })
        .collect();
    let mut s = NodeStatus {
        role: match role {
            Role::Master => PbRole::Master,
            Role::Replica { .. } => PbRole::Replica,
            Role::Unassigned => PbRole::Unassigned,
        } as i32,
        epoch,
        run_id: node.run_id.clone(),
        replid: feed.replid.clone(),
        replid2: feed.replid2.clone(),
        second_offset: feed.second_offset,
        offset: feed.offset,
        data_offset: Some(feed.data_offset),
        replicas,
        acked_offset,
        link: LinkStatus::None as i32,
        managed,
        fenced,
        writable,
        lease_remaining_ms: lease.as_millis() as u64,
        node_clock_ms: clock,
        priority,
        keys,
        sync_replicas: sync_replicas as u32,
        data_port: node.port() as u32,
        cluster_digest: node
            .cluster_view()
            .map(|v| v.digest.clone())
            .unwrap_or_default(),
        ..NodeStatus::default()
    };
    drop(feed);
    if let Role::Replica { host, port } = role {
        s.master_host = host;
        s.master_port = port as u32;
        if let Some(u) = node.repl.upstream.lock().as_ref() {
            s.link = match u.status.phase() {
                Phase::Connect => LinkStatus::Down,
                Phase::Connecting => LinkStatus::Connecting,
                Phase::Sync => LinkStatus::Syncing,
                Phase::Connected => LinkStatus::Up,
            } as i32;
            let since = u.status.down_since_ms.load(Ordering::Relaxed);
            if since > 0 {
                s.link_down_ms = clock.saturating_sub(since);
            }
        }
    }
    s
}
