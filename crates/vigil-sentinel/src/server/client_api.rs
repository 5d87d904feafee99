//! The client API (`SentinelService`): lookups answered after a linearizable read point,
//! the topology event stream, cluster status, and the operator's calls — monitor, remove,
//! set an option and switch over through the shared operations ([`crate::ops`]), membership
//! through [`super::membership`].

use std::pin::Pin;

use tokio::sync::broadcast;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::sentinel_service_server::SentinelService;

use super::convert::{MonitorSpec, NewSentinel, op_status};
use super::{CALL_TIMEOUT, Sentinel};
use crate::ops::OpError;
use crate::state::Step;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TopologyEvent, Status>> + Send>>;

impl Sentinel {
    /// Each node of `g` as it last answered this sentinel (its probes, or its controller).
    fn health_of(&self, g: &crate::state::Group) -> Vec<pb::NodeHealth> {
        use vigil_proto::node::{LinkStatus, Role};
        let group = &g.spec.name;
        let master_offset = g
            .master
            .as_ref()
            .and_then(|m| self.health.status(group, m))
            .map(|s| s.offset);
        g.spec
            .nodes
            .iter()
            .map(|n| {
                let st = self.health.status(group, &n.name);
                let role = st.as_ref().map_or("unknown", |s| match s.role() {
                    Role::Master => "master",
                    Role::Replica => "replica",
                    Role::Unassigned => "unassigned",
                    Role::Unspecified => "unknown",
                });
                let offset = st.as_ref().map_or(0, |s| s.offset);
                pb::NodeHealth {
                    name: n.name.clone(),
                    role: role.into(),
                    epoch: st.as_ref().map_or(0, |s| s.epoch),
                    offset,
                    lag: master_offset.map_or(0, |m| m.saturating_sub(offset)),
                    link: match (role, st.as_ref().map(|s| s.link())) {
                        ("replica", Some(LinkStatus::Up)) => "up".into(),
                        ("replica", Some(_)) => "down".into(),
                        _ => String::new(),
                    },
                    sdown: self.health.is_sdown(group, &n.name),
                    since_ok_ms: self.health.down_for(group, &n.name).as_millis() as u64,
                    writable: st.as_ref().is_some_and(|s| s.writable),
                    keys: st.as_ref().map_or(0, |s| s.keys),
                }
            })
            .collect()
    }

    /// Waits for a ReadIndex confirmation within the call's budget.
    async fn linearizable(&self) -> Result<(), Status> {
        match self.raft.linearizable(CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.op_error(OpError::NoQuorum(e))),
        }
    }

    fn op_error(&self, e: OpError) -> Status {
        op_status(e, || self.leader_hint())
    }

    /// An operation's outcome as an acknowledgement with the applied index.
    fn ack(&self, r: Result<u64, OpError>) -> Result<Response<pb::Ack>, Status> {
        r.map(|index| Response::new(pb::Ack { index }))
            .map_err(|e| self.op_error(e))
    }
}

#[tonic::async_trait]
impl SentinelService for Sentinel {
    async fn get_master(
        &self,
        req: Request<pb::GetMasterRequest>,
    ) -> Result<Response<pb::MasterInfo>, Status> {
        let group = req.into_inner().group;
        self.linearizable().await?;
        let st = self.raft.state.read();
        let g = st
            .groups
            .get(&group)
            .ok_or_else(|| Status::not_found(format!("no such group {group:?}")))?;
        let node = g
            .master
            .as_ref()
            .and_then(|m| g.spec.nodes.iter().find(|n| &n.name == m));
        let status = if g.failover.as_ref().is_some_and(|f| f.step == Step::Begun) {
            "failover"
        } else if node.is_some() {
            "ok"
        } else {
            "no-master"
        };
        Ok(Response::new(pb::MasterInfo {
            address: node.map(|n| n.data.clone()).unwrap_or_default(),
            epoch: g.epoch,
            status: status.into(),
            node: node.map(|n| n.name.clone()).unwrap_or_default(),
            tls_address: node.map(|n| n.tls_data.clone()).unwrap_or_default(),
        }))
    }

    type WatchTopologyStream = EventStream;

    async fn watch_topology(
        &self,
        _req: Request<pb::WatchRequest>,
    ) -> Result<Response<EventStream>, Status> {
        // Forwarded by a task that ends at shutdown, so an open stream never holds up the
        // server's graceful stop.
        let mut events = self.raft.events.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let stop = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                    r = events.recv() => match r {
                        Ok(ev) => ev,
                        // A watcher too slow for the bus misses events rather than stalling it.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                let msg = pb::TopologyEvent::from(ev);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = tx.send(Ok(msg)) => if r.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_groups(
        &self,
        _req: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::GroupList>, Status> {
        self.linearizable().await?;
        let st = self.raft.state.read();
        let groups = st
            .groups
            .values()
            .map(|g| pb::Group {
                name: g.spec.name.clone(),
                nodes: g.spec.nodes.iter().map(pb::Node::from).collect(),
                settings: Some(pb::Settings::from(&g.spec.settings)),
                epoch: g.epoch,
                master: g.master.clone().unwrap_or_default(),
                failover_step: g
                    .failover
                    .as_ref()
                    .map(|f| format!("{:?}", f.step).to_lowercase())
                    .unwrap_or_default(),
                failover_candidate: g
                    .failover
                    .as_ref()
                    .map(|f| f.candidate.clone())
                    .unwrap_or_default(),
                status: self
                    .conditions
                    .read()
                    .get(&g.spec.name)
                    .cloned()
                    .unwrap_or_default(),
                health: self.health_of(g),
                driver: g.spec.driver.to_string(),
            })
            .collect();
        Ok(Response::new(pb::GroupList { groups }))
    }

    async fn cluster_status(
        &self,
        _req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterInfo>, Status> {
        let s = self.raft.status.read().clone();
        let resp = self.raft.state.read().sentinel_resp.clone();
        let mut members: Vec<pb::Member> = Vec::new();
        for (ids, voter) in [(&s.voters, true), (&s.learners, false)] {
            for &id in ids {
                let p = s.progress.iter().find(|p| p.0 == id);
                members.push(pb::Member {
                    id,
                    address: if id == self.id {
                        self.address.clone()
                    } else {
                        self.transport.address(id).unwrap_or_default()
                    },
                    voter,
                    reachable: id == s.id
                        || p.is_some_and(|p| p.2)
                        || (id == s.leader && s.leader != 0),
                    matched: p.map_or(0, |p| p.1),
                    resp: resp.get(&id).cloned().unwrap_or_default(),
                });
            }
        }
        Ok(Response::new(pb::ClusterInfo {
            id: s.id,
            leader: s.leader,
            term: s.term,
            commit: s.commit,
            applied: s.applied,
            members,
            snapshot_index: s.snapshot_index,
        }))
    }

    async fn monitor(&self, req: Request<pb::MonitorRequest>) -> Result<Response<pb::Ack>, Status> {
        let MonitorSpec(spec) = req.into_inner().try_into()?;
        self.ack(self.ops.monitor(spec).await)
    }

    async fn remove(&self, req: Request<pb::RemoveRequest>) -> Result<Response<pb::Ack>, Status> {
        self.ack(self.ops.remove(&req.into_inner().group).await)
    }

    async fn set_option(
        &self,
        req: Request<pb::SetOptionRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        self.ack(self.ops.set_options(&r.group, &[(r.key, r.value)]).await)
    }

    async fn add_sentinel(
        &self,
        req: Request<pb::AddSentinelRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let new: NewSentinel = req.into_inner().try_into()?;
        Sentinel::add_sentinel(self, new).await
    }

    async fn remove_sentinel(
        &self,
        req: Request<pb::RemoveSentinelRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        Sentinel::remove_sentinel(self, req.into_inner().id).await
    }

    async fn failover(
        &self,
        req: Request<pb::FailoverRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let target = (!r.target.is_empty()).then_some(r.target.as_str());
        self.ack(self.ops.failover(&r.group, target).await)
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        Sentinel::transfer_leader(self, req.into_inner().to).await
    }

    async fn create_cluster(
        &self,
        req: Request<pb::CreateClusterRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        self.ack(self.ops.create_cluster(&r.name, r.groups).await)
    }

    async fn list_clusters(
        &self,
        _req: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ClusterList>, Status> {
        self.linearizable().await?;
        let st = self.raft.state.read();
        let clusters = st.clusters.values().map(pb::ShardedCluster::from).collect();
        Ok(Response::new(pb::ClusterList { clusters }))
    }

    async fn migrate_slots(
        &self,
        req: Request<pb::MigrateSlotsRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let mut moves = Vec::new();
        for m in r.moves {
            let mut ranges = Vec::new();
            for s in m.slots {
                if s.start > s.end || s.end >= crate::state::SLOTS {
                    return Err(Status::invalid_argument(format!(
                        "bad slot range {}-{}: slots are 0-16383",
                        s.start, s.end
                    )));
                }
                ranges.push((s.start as u16, s.end as u16));
            }
            moves.push(crate::state::migration::Move {
                from: m.from,
                to: m.to,
                ranges,
            });
        }
        let weights = r.weights.into_iter().collect();
        self.ack(self.ops.migrate_slots(&r.cluster, moves, weights).await)
    }

    async fn change_cluster_groups(
        &self,
        req: Request<pb::ChangeClusterGroupsRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        self.ack(
            self.ops
                .change_cluster_groups(&r.cluster, &r.group, r.add)
                .await,
        )
    }
}
