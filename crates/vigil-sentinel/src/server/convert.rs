//! Proto ↔ domain: requests become domain values through `TryFrom`, failing with
//! `INVALID_ARGUMENT` (an absent optional field takes its default, never a panic); domain
//! values become replies; and errors become gRPC statuses by their variant — never by the
//! text of a message.

use tonic::Status;
use vigil_proto::sentinel as pb;

use crate::controller::SwitchoverError;
use crate::driver::DriverError;
use crate::events::Event;
use crate::ops::OpError;
use crate::state::{GroupSpec, NodeSpec, Rejected, Settings};

impl From<pb::Settings> for Settings {
    /// Zero (proto's absent) takes the default, except `sync_replicas`, where 0 is async mode.
    fn from(s: pb::Settings) -> Settings {
        let d = Settings::default();
        let or = |v: u64, d: u64| if v == 0 { d } else { v };
        let or32 = |v: u32, d: u32| if v == 0 { d } else { v };
        Settings {
            quorum: or32(s.quorum, d.quorum),
            down_after_ms: or(s.down_after_ms, d.down_after_ms),
            failover_timeout_ms: or(s.failover_timeout_ms, d.failover_timeout_ms),
            parallel_syncs: or32(s.parallel_syncs, d.parallel_syncs),
            max_lag_on_failover: or(s.max_lag_on_failover, d.max_lag_on_failover),
            sync_replicas: s.sync_replicas,
            min_failover_interval_ms: or(s.min_failover_interval_ms, d.min_failover_interval_ms),
        }
    }
}

impl From<&Settings> for pb::Settings {
    fn from(s: &Settings) -> pb::Settings {
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
}

impl From<pb::Node> for NodeSpec {
    fn from(n: pb::Node) -> NodeSpec {
        NodeSpec {
            name: n.name,
            data: n.data,
            admin: n.admin,
            priority: n.priority,
        }
    }
}

impl From<&NodeSpec> for pb::Node {
    fn from(n: &NodeSpec) -> pb::Node {
        pb::Node {
            name: n.name.clone(),
            data: n.data.clone(),
            admin: n.admin.clone(),
            priority: n.priority,
        }
    }
}

/// A `Monitor` request as the group it declares; absent settings are the defaults.
pub(super) struct MonitorSpec(pub GroupSpec);

impl TryFrom<pb::MonitorRequest> for MonitorSpec {
    type Error = Status;

    fn try_from(r: pb::MonitorRequest) -> Result<MonitorSpec, Status> {
        let spec = GroupSpec {
            name: r.name,
            nodes: r.nodes.into_iter().map(NodeSpec::from).collect(),
            settings: r.settings.map(Settings::from).unwrap_or_default(),
        };
        crate::state::validate(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(MonitorSpec(spec))
    }
}

/// An `AddSentinel` request: an id of at least 1 and a `host:port` address.
pub(super) struct NewSentinel {
    pub id: u64,
    pub address: String,
}

impl TryFrom<pb::AddSentinelRequest> for NewSentinel {
    type Error = Status;

    fn try_from(r: pb::AddSentinelRequest) -> Result<NewSentinel, Status> {
        if r.id == 0 || !crate::state::is_host_port(&r.address) {
            return Err(Status::invalid_argument(
                "id must be at least 1 and address host:port",
            ));
        }
        Ok(NewSentinel {
            id: r.id,
            address: r.address,
        })
    }
}

impl From<Event> for pb::TopologyEvent {
    fn from(ev: Event) -> pb::TopologyEvent {
        pb::TopologyEvent {
            index: ev.index,
            at_ms: ev.at_ms,
            group: ev.group,
            epoch: ev.epoch,
            kind: ev.kind.to_string(),
            node: ev.node,
            detail: ev.detail,
        }
    }
}

/// A driver error as a status; `leader_hint` words where the leader is, for the unavailable
/// ones (clients retry elsewhere).
pub(super) fn driver_status(e: DriverError, leader_hint: impl FnOnce() -> String) -> Status {
    match e {
        DriverError::NoLeader | DriverError::Timeout(_) | DriverError::Stopped(_) => {
            Status::unavailable(format!("{e} ({})", leader_hint()))
        }
        DriverError::Rejected(r) => rejected_status(r),
        DriverError::Membership(m) => Status::failed_precondition(m),
    }
}

/// A state-machine rejection as a status.
pub(super) fn rejected_status(r: Rejected) -> Status {
    match r {
        Rejected::NoGroup(_) => Status::not_found(r.to_string()),
        Rejected::AlreadyMonitored(_) => Status::already_exists(r.to_string()),
        Rejected::Invalid(_) | Rejected::Conflict(_) => Status::failed_precondition(r.to_string()),
    }
}

/// An operation's error as a status.
pub(super) fn op_status(e: OpError, leader_hint: impl FnOnce() -> String) -> Status {
    use SwitchoverError as S;
    match e {
        OpError::Invalid(r) => Status::invalid_argument(r.to_string()),
        // A read point is never rejected by the state machine: that would be a bug here.
        OpError::NoQuorum(DriverError::Rejected(r)) => Status::internal(r.to_string()),
        OpError::NoQuorum(e) | OpError::Raft(e) | OpError::Switchover(S::Raft(e)) => {
            driver_status(e, leader_hint)
        }
        OpError::Switchover(e @ S::NoGroup(_)) => Status::not_found(e.to_string()),
        OpError::Switchover(e @ S::BadTarget(_)) => Status::invalid_argument(e.to_string()),
        OpError::Switchover(e @ (S::InProgress(_) | S::NoMaster(_) | S::NoGoodReplica(_))) => {
            Status::failed_precondition(e.to_string())
        }
    }
}
