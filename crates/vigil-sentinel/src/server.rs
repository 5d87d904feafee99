//! The sentinel process: opens the Raft log, starts the driver with the gRPC transport, and
//! serves `RaftPeer` and `SentinelService` (token-checked) on one port until shutdown.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Message};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::raft_peer_server::{RaftPeer, RaftPeerServer};
use vigil_proto::sentinel::sentinel_service_server::{SentinelService, SentinelServiceServer};

use crate::config::SentinelConfig;
use crate::driver::{self, DriverError, Handle, Options};
use crate::state::{Command, GroupSpec, NodeSpec, Settings, Step};
use crate::storage::DiskStorage;
use crate::transport::GrpcTransport;

/// How long an API call waits for the Raft majority.
const CALL_TIMEOUT: Duration = crate::driver::CALL_BUDGET;

/// A running sentinel's shared parts.
#[derive(Clone)]
pub struct Sentinel {
    /// The Raft driver.
    pub raft: Handle,
    transport: Arc<GrpcTransport>,
    id: u64,
    /// This sentinel's own gRPC address, as its peers know it.
    address: String,
    /// Membership changes one at a time (Raft also refuses a second pending one).
    membership: Arc<tokio::sync::Mutex<()>>,
    /// This sentinel's probes of the nodes.
    health: Arc<crate::monitor::Health>,
    /// NodeAdmin clients.
    nodes: Arc<dyn crate::nodes::NodeAdmin>,
    /// What the controller is doing about each group (while this sentinel leads).
    conditions: crate::controller::Conditions,
    /// Cancelled when the sentinel stops.
    shutdown: CancellationToken,
}

/// Starts a sentinel from `config`, serving gRPC on `listener` and the Redis Sentinel
/// protocol on `resp` until `shutdown`.
pub async fn run(
    config: SentinelConfig,
    listener: TcpListener,
    resp: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let token = config.token().unwrap_or_default();
    let peers: HashMap<u64, String> = config
        .peers
        .iter()
        .filter(|p| p.id != config.id)
        .map(|p| (p.id, p.address.clone()))
        .collect();
    let storage = DiskStorage::open(&config.dir.join("raft"))?;
    let transport = GrpcTransport::new(config.id, token.clone(), peers);
    // A joining sentinel starts empty and learns the membership from the leader.
    let founders: Vec<u64> = if config.join {
        Vec::new()
    } else {
        config.peers.iter().map(|p| p.id).collect()
    };
    // The master's lease must outlast a Raft election, or the death of the sentinel leader
    // pauses writes until its successor renews it.
    let election = config.raft.tick * (2 * config.raft.election_ticks) as u32;
    for g in &config.groups {
        let lease = crate::controller::lease(&g.spec().settings);
        if election > lease {
            tracing::warn!(
                group = %g.name,
                election_ms = election.as_millis() as u64,
                lease_ms = lease.as_millis() as u64,
                "a Raft election may take longer than the master's write lease: if the sentinel \
                 leader dies, writes may pause for the difference; lower `raft.tick` (or \
                 `raft.election_ticks`) so that 2 x election_ticks x tick stays below the lease \
                 (down_after less a probe interval)"
            );
        }
    }
    let opts = Options {
        tick: config.raft.tick,
        election_ticks: config.raft.election_ticks,
        heartbeat_ticks: config.raft.heartbeat_ticks,
        compact_every: config.raft.compact_every,
    };
    let raft = driver::start(
        config.id,
        storage,
        &founders,
        opts,
        Arc::new(transport.clone()),
    )?;
    transport.attach(raft.clone());
    // As the peers list names it; a joining sentinel may not be in its own list.
    let address = config
        .peers
        .iter()
        .find(|p| p.id == config.id)
        .map(|p| p.address.clone())
        .or_else(|| listener.local_addr().ok().map(|a| a.to_string()))
        .unwrap_or_default();
    let s = Sentinel {
        raft,
        transport,
        id: config.id,
        address,
        shutdown: shutdown.clone(),
        membership: Arc::default(),
        health: crate::monitor::Health::new(),
        nodes: Arc::new(crate::nodes::Nodes::new(config.node_token.clone())),
        conditions: Arc::default(),
    };
    let resp_addr = resp.local_addr()?;
    tokio::spawn(background(
        s.clone(),
        config.clone(),
        resp_addr,
        shutdown.clone(),
    ));
    serve_resp(&s, &config, resp, &shutdown);
    let nodes = s.nodes.clone();
    tokio::spawn(crate::monitor::run(
        s.raft.clone(),
        nodes.clone(),
        s.health.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::controller::run(
        crate::controller::Controller::new(
            s.raft.clone(),
            nodes,
            s.health.clone(),
            Arc::new(crate::peers::GrpcOpinions::new(
                token.clone(),
                s.transport.clone(),
            )),
            s.conditions.clone(),
        ),
        shutdown.clone(),
    ));
    let check = vigil_proto::auth::TokenCheck::new(
        &token,
        "missing or wrong cluster token: send `authorization: Bearer <token>` with the sentinels' token",
    );
    tonic::transport::Server::builder()
        .add_service(RaftPeerServer::with_interceptor(s.clone(), check.clone()))
        .add_service(SentinelServiceServer::with_interceptor(s, check))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The Redis Sentinel protocol endpoint and the publisher of its events.
fn serve_resp(
    s: &Sentinel,
    config: &SentinelConfig,
    resp: TcpListener,
    shutdown: &CancellationToken,
) {
    let Ok(addr) = resp.local_addr() else { return };
    let shared = Arc::new(vigil_resp::Shared::new(
        vigil_resp::conn::Ident {
            server: "redis",
            version: crate::discovery::REDIS_VERSION,
            mode: "sentinel",
        },
        vigil_resp::Limits::default(),
        (!config.password.is_empty()).then(|| config.password.clone().into()),
        16,
        32 * 1024 * 1024,
    ));
    *shared.role.write() = "sentinel";
    let service = Arc::new(crate::discovery::Discovery::new(
        s.raft.clone(),
        s.health.clone(),
        s.nodes.clone(),
        s.conditions.clone(),
        addr,
    ));
    tokio::spawn(crate::discovery::publish::run(
        s.raft.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    let stop = shared.shutdown.clone();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        sd.cancelled().await;
        stop.cancel();
    });
    tokio::spawn(vigil_resp::conn::serve(resp, service, shared));
}

/// Keeps the transport's addresses in step with the state, announces this sentinel's RESP
/// address, and (on the leader) adds the configured groups the state lacks and no operator
/// removed.
async fn background(
    s: Sentinel,
    config: SentinelConfig,
    resp: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let (sentinels, missing): (Vec<(u64, String)>, Vec<GroupSpec>) = {
            let st = s.raft.state.read();
            (
                st.sentinels.iter().map(|(k, v)| (*k, v.clone())).collect(),
                config
                    .groups
                    .iter()
                    .filter(|g| !st.groups.contains_key(&g.name) && !st.removed.contains(&g.name))
                    .map(|g| g.spec())
                    .collect(),
            )
        };
        for (id, addr) in sentinels {
            s.transport.set_address(id, addr);
        }
        // Announce where this sentinel serves the Redis Sentinel protocol (SENTINEL SENTINELS).
        let announced = s.raft.state.read().sentinel_resp.get(&config.id).cloned();
        let me = resp.to_string();
        if announced.as_deref() != Some(me.as_str()) && s.raft.status.read().leader != 0 {
            let cmd = Command::SetSentinelResp {
                id: config.id,
                address: me,
            };
            if let Err(e) = s.raft.propose(cmd, CALL_TIMEOUT).await {
                tracing::debug!(error = %e, "RESP address not announced yet");
            }
        }
        if s.raft.status.read().is_leader {
            for spec in missing {
                let name = spec.name.clone();
                match s.raft.propose(Command::Monitor(spec), CALL_TIMEOUT).await {
                    Ok(()) => tracing::info!(group = %name, "monitoring the configured group"),
                    Err(e) => {
                        tracing::warn!(group = %name, error = %e, "cannot add the configured group yet")
                    }
                }
            }
        }
    }
}

impl Sentinel {
    fn leader_hint(&self) -> String {
        let leader = self.raft.status.read().leader;
        match leader {
            0 => "no leader is known".into(),
            l if l == self.id => format!("this sentinel ({l}) leads"),
            l => format!(
                "the leader is sentinel {l} at {}",
                self.transport
                    .address(l)
                    .unwrap_or_else(|| "an unknown address".into())
            ),
        }
    }

    /// Each node of `g` as this sentinel's probes last saw it.
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
                }
            })
            .collect()
    }

    fn status_of(&self, e: DriverError) -> Status {
        match e {
            DriverError::NoLeader | DriverError::Timeout(_) | DriverError::Stopped(_) => {
                Status::unavailable(format!("{e} ({})", self.leader_hint()))
            }
            DriverError::Rejected(m) if m.starts_with("no such group") => Status::not_found(m),
            DriverError::Rejected(m) if m.contains("already monitored") => {
                Status::already_exists(m)
            }
            DriverError::Rejected(m) => Status::failed_precondition(m),
        }
    }

    async fn propose(&self, cmd: Command) -> Result<Response<pb::Ack>, Status> {
        self.raft
            .propose(cmd, CALL_TIMEOUT)
            .await
            .map_err(|e| self.status_of(e))?;
        Ok(Response::new(pb::Ack {
            index: self.raft.state.read().applied,
        }))
    }

    /// Waits for a ReadIndex confirmation within the call's budget.
    async fn linearizable(&self) -> Result<(), Status> {
        match self.raft.linearizable(CALL_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(DriverError::Rejected(m)) => Err(Status::internal(m)),
            Err(e) => Err(self.status_of(e)),
        }
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.raft.status.read().is_leader {
            Ok(())
        } else {
            Err(Status::unavailable(format!(
                "membership changes run on the leader; {}",
                self.leader_hint()
            )))
        }
    }

    async fn conf_change(&self, id: u64, kind: ConfChangeType) -> Result<(), Status> {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = id;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        self.raft
            .conf_change(cc, CALL_TIMEOUT)
            .await
            .map_err(|e| self.status_of(e))
    }
}

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
        // Time since the node's last good answer; the leader compares it with `down_after`.
        let down_ms = self.health.down_for(&r.group, &r.node).as_millis() as u64;
        let acked_offset = self.health.acked(&r.group);
        Ok(Response::new(pb::OpinionReply {
            down_ms,
            acked_offset,
        }))
    }
}

fn settings_from(s: Option<pb::Settings>) -> Settings {
    let d = Settings::default();
    let Some(s) = s else { return d };
    let or = |v: u64, d: u64| if v == 0 { d } else { v };
    Settings {
        quorum: if s.quorum == 0 { d.quorum } else { s.quorum },
        down_after_ms: or(s.down_after_ms, d.down_after_ms),
        failover_timeout_ms: or(s.failover_timeout_ms, d.failover_timeout_ms),
        parallel_syncs: if s.parallel_syncs == 0 {
            d.parallel_syncs
        } else {
            s.parallel_syncs
        },
        max_lag_on_failover: or(s.max_lag_on_failover, d.max_lag_on_failover),
        sync_replicas: s.sync_replicas,
        min_failover_interval_ms: or(s.min_failover_interval_ms, d.min_failover_interval_ms),
    }
}

fn settings_to(s: &Settings) -> pb::Settings {
    pb::Settings {
        quorum: s.quorum,
        down_after_ms: s.down_after_ms,
        failover_timeout_ms: s.failover_timeout_ms,
        parallel_syncs: s.parallel_syncs,
        max_lag_on_failover: s.max_lag_on_failover,
        sync_replicas: s.sync_replicas,
        min_failover_interval_ms: s.min_failover_interval_ms,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::TopologyEvent, Status>> + Send>>;

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
                let msg = pb::TopologyEvent {
                    index: ev.index,
                    at_ms: ev.at_ms,
                    group: ev.group,
                    epoch: ev.epoch,
                    kind: ev.kind.to_string(),
                    node: ev.node,
                    detail: ev.detail,
                };
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
                nodes: g
                    .spec
                    .nodes
                    .iter()
                    .map(|n| pb::Node {
                        name: n.name.clone(),
                        data: n.data.clone(),
                        admin: n.admin.clone(),
                        priority: n.priority,
                    })
                    .collect(),
                settings: Some(settings_to(&g.spec.settings)),
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
        let r = req.into_inner();
        let spec = GroupSpec {
            name: r.name,
            nodes: r
                .nodes
                .into_iter()
                .map(|n| NodeSpec {
                    name: n.name,
                    data: n.data,
                    admin: n.admin,
                    priority: n.priority,
                })
                .collect(),
            settings: settings_from(r.settings),
        };
        // Validation happens in the state machine too; refusing here gives INVALID_ARGUMENT
        // without a round through the log.
        let mut probe = crate::state::ClusterState::default();
        probe
            .apply(
                1,
                &crate::state::Proposal {
                    id: 0,
                    by: 0,
                    at_ms: 0,
                    cmd: Command::Monitor(spec.clone()),
                },
            )
            .map_err(Status::invalid_argument)?;
        self.propose(Command::Monitor(spec)).await
    }

    async fn remove(&self, req: Request<pb::RemoveRequest>) -> Result<Response<pb::Ack>, Status> {
        self.propose(Command::Remove {
            group: req.into_inner().group,
        })
        .await
    }

    async fn set_option(
        &self,
        req: Request<pb::SetOptionRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        self.propose(Command::SetOption {
            group: r.group,
            key: r.key,
            value: r.value,
        })
        .await
    }

    async fn add_sentinel(
        &self,
        req: Request<pb::AddSentinelRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        if r.id == 0 || !crate::state::is_host_port(&r.address) {
            return Err(Status::invalid_argument(
                "id must be at least 1 and address host:port",
            ));
        }
        let _one = self.membership.lock().await;
        self.require_leader()?;
        if self.raft.status.read().voters.contains(&r.id) {
            return Err(Status::already_exists(format!(
                "sentinel {} is already a voter",
                r.id
            )));
        }
        self.propose(Command::SetSentinel {
            id: r.id,
            address: r.address.clone(),
        })
        .await?;
        self.transport.set_address(r.id, r.address);
        self.conf_change(r.id, ConfChangeType::AddLearnerNode)
            .await?;
        // Catch up as a learner first, so the new voter does not weaken the quorum.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.raft.status.read().clone();
            if s.progress.iter().any(|p| p.0 == r.id && p.1 >= s.commit) {
                break;
            }
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded(format!(
                    "sentinel {} did not catch up within 60 s; it stays a learner (check that it runs and can reach the leader)",
                    r.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.conf_change(r.id, ConfChangeType::AddNode).await?;
        Ok(Response::new(pb::Ack {
            index: self.raft.state.read().applied,
        }))
    }

    async fn remove_sentinel(
        &self,
        req: Request<pb::RemoveSentinelRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let id = req.into_inner().id;
        let _one = self.membership.lock().await;
        self.require_leader()?;
        let s = self.raft.status.read().clone();
        if !s.voters.contains(&id) && !s.learners.contains(&id) {
            return Err(Status::not_found(format!("sentinel {id} is not a member")));
        }
        if id == self.id {
            // Leadership moves first; the new leader then removes us.
            // The most caught-up other voter, preferring one heard from recently.
            let to = s
                .progress
                .iter()
                .filter(|p| p.0 != id && s.voters.contains(&p.0))
                .max_by_key(|p| (p.2, p.1))
                .map(|p| p.0)
                .ok_or_else(|| Status::failed_precondition("no other voter to take over"))?;
            self.raft.transfer_leader(to);
            return Err(Status::unavailable(format!(
                "sentinel {id} leads: leadership is moving to sentinel {to}; call RemoveSentinel there"
            )));
        }
        self.conf_change(id, ConfChangeType::RemoveNode).await?;
        self.propose(Command::ForgetSentinel { id }).await
    }

    async fn failover(
        &self,
        req: Request<pb::FailoverRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        use crate::controller::SwitchoverError as E;
        let r = req.into_inner();
        self.linearizable().await?;
        let target = (!r.target.is_empty()).then_some(r.target.as_str());
        match crate::controller::switchover(&self.raft, &self.nodes, &r.group, target).await {
            Ok(()) => Ok(Response::new(pb::Ack {
                index: self.raft.state.read().applied,
            })),
            Err(e @ E::NoGroup(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ E::BadTarget(_)) => Err(Status::invalid_argument(e.to_string())),
            Err(e @ (E::InProgress(_) | E::NoMaster(_) | E::NoGoodReplica(_))) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(E::Raft(e)) => Err(self.status_of(e)),
        }
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let to = req.into_inner().to;
        self.require_leader()?;
        if !self.raft.status.read().voters.contains(&to) {
            return Err(Status::invalid_argument(format!(
                "sentinel {to} is not a voter"
            )));
        }
        self.raft.transfer_leader(to);
        let deadline = Instant::now() + CALL_TIMEOUT;
        while self.raft.status.read().leader != to {
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded(format!(
                    "sentinel {to} did not take over within {CALL_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Response::new(pb::Ack { index: 0 }))
    }
}
