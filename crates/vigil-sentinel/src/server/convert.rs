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
use crate::state::{Cluster, Driver, GroupSpec, NodeSpec, Rejected, Settings};

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
            tls_data: n.tls_data,
        }
    }
}

impl From<&Cluster> for pb::ShardedCluster {
    fn from(c: &Cluster) -> Self {
        pb::ShardedCluster {
            name: c.name.clone(),
            groups: c.groups.clone(),
            slots: c
                .slots
                .iter()
                .map(|r| pb::ShardSlots {
                    start: r.start as u32,
                    end: r.end as u32,
                    group: r.group.clone(),
                })
                .collect(),
            epoch: c.epoch,
            migrations: c
                .migrations
                .iter()
                .map(|m| pb::ClusterMigration {
                    id: m.id,
                    from: m.slots.from.clone(),
                    to: m.slots.to.clone(),
                    slots: m
                        .slots
                        .ranges
                        .iter()
                        .map(|&(start, end)| pb::ShardSlots {
                            start: start as u32,
                            end: end as u32,
                            group: m.slots.from.clone(),
                        })
                        .collect(),
                    phase: format!("{:?}", m.phase).to_uppercase(),
                    attempts: m.attempts,
                })
                .collect(),
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
            tls_data: n.tls_data.clone(),
        }
    }
}

/// A `Monitor` request as the group it declares; absent settings are the defaults.
pub(super) struct MonitorSpec(pub GroupSpec);

impl TryFrom<pb::MonitorRequest> for MonitorSpec {
    type Error = Status;

    fn try_from(r: pb::MonitorRequest) -> Result<MonitorSpec, Status> {
        let driver = match r.driver.as_str() {
            "" => Driver::Grpc,
            d => d
                .parse()
                .map_err(|e: Rejected| Status::invalid_argument(e.to_string()))?,
        };
        let mut nodes: Vec<NodeSpec> = r.nodes.into_iter().map(NodeSpec::from).collect();
        if driver == Driver::Resp {
            // A stock server is managed at its data port: an absent admin means that one.
            for n in nodes.iter_mut().filter(|n| n.admin.is_empty()) {
                n.admin = n.data.clone();
            }
        }
        let mut rename_commands = std::collections::BTreeMap::new();
        for (from, to) in r.rename_commands {
            if rename_commands
                .insert(from.to_ascii_uppercase(), to)
                .is_some()
            {
                return Err(Status::invalid_argument(format!(
                    "rename_commands names {from:?} twice (names are case-insensitive)"
                )));
            }
        }
        let spec = GroupSpec {
            name: r.name,
            nodes,
            settings: r.settings.map(Settings::from).unwrap_or_default(),
            driver,
            auth_user: r.auth_user,
            auth_pass: r.auth_pass,
            rename_commands,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn errors_map_to_codes_by_variant() {
        let hint = || "the leader is sentinel 2".to_string();
        let cases: Vec<(OpError, Code)> = vec![
            (
                OpError::Invalid(Rejected::Invalid("bad".into())),
                Code::InvalidArgument,
            ),
            (
                OpError::Raft(Rejected::NoGroup("g".into()).into()),
                Code::NotFound,
            ),
            (
                OpError::Raft(Rejected::AlreadyMonitored("g".into()).into()),
                Code::AlreadyExists,
            ),
            (
                OpError::Raft(Rejected::Invalid("x".into()).into()),
                Code::FailedPrecondition,
            ),
            (
                OpError::Raft(Rejected::Conflict("x".into()).into()),
                Code::FailedPrecondition,
            ),
            (OpError::Raft(DriverError::NoLeader), Code::Unavailable),
            (
                OpError::Raft(DriverError::Timeout(std::time::Duration::from_secs(1))),
                Code::Unavailable,
            ),
            (
                OpError::Raft(DriverError::Stopped("x".into())),
                Code::Unavailable,
            ),
            (
                OpError::Raft(DriverError::Membership("x".into())),
                Code::FailedPrecondition,
            ),
            (OpError::NoQuorum(DriverError::NoLeader), Code::Unavailable),
            (
                OpError::NoQuorum(DriverError::Rejected(Rejected::Conflict("x".into()))),
                Code::Internal,
            ),
            (
                OpError::Switchover(SwitchoverError::NoGroup("g".into())),
                Code::NotFound,
            ),
            (
                OpError::Switchover(SwitchoverError::BadTarget("t".into())),
                Code::InvalidArgument,
            ),
            (
                OpError::Switchover(SwitchoverError::InProgress("g".into())),
                Code::FailedPrecondition,
            ),
            (
                OpError::Switchover(SwitchoverError::NoMaster("g".into())),
                Code::FailedPrecondition,
            ),
            (
                OpError::Switchover(SwitchoverError::NoGoodReplica("g".into())),
                Code::FailedPrecondition,
            ),
            (
                OpError::Switchover(SwitchoverError::Raft(DriverError::NoLeader)),
                Code::Unavailable,
            ),
        ];
        for (i, (e, code)) in cases.into_iter().enumerate() {
            let text = e.to_string();
            let s = op_status(e, hint);
            assert_eq!(s.code(), code, "#{i} {text}");
            assert!(
                s.message().starts_with(&text),
                "#{i}: {} vs {text}",
                s.message()
            );
        }
        // The message of a rejection is the state machine's, whatever its code.
        let s = op_status(OpError::Raft(Rejected::NoGroup("g".into()).into()), hint);
        assert_eq!(s.message(), "no such group \"g\"");
        let s = op_status(OpError::Raft(DriverError::NoLeader), hint);
        assert!(
            s.message().ends_with("(the leader is sentinel 2)"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn a_monitor_request_becomes_a_spec_or_invalid_argument() {
        let node = |name: &str, data: &str| pb::Node {
            name: name.into(),
            data: data.into(),
            admin: "127.0.0.1:16379".into(),
            priority: 100,
            tls_data: "127.0.0.1:6380".into(),
        };
        // Absent settings: the defaults.
        let MonitorSpec(spec) = pb::MonitorRequest {
            name: "g".into(),
            nodes: vec![node("a", "127.0.0.1:6379")],
            settings: None,
            ..Default::default()
        }
        .try_into()
        .expect("a valid request");
        assert_eq!(spec.settings, Settings::default());
        assert_eq!(spec.nodes[0].tls_data, "127.0.0.1:6380");
        assert_eq!(pb::Node::from(&spec.nodes[0]).tls_data, "127.0.0.1:6380");
        // Zero fields of given settings: their defaults too, but sync_replicas stays 0.
        let MonitorSpec(spec) = pb::MonitorRequest {
            name: "g".into(),
            nodes: vec![node("a", "[::1]:6379")],
            settings: Some(pb::Settings {
                quorum: 3,
                ..pb::Settings::default()
            }),
            ..Default::default()
        }
        .try_into()
        .expect("a valid request");
        assert_eq!(spec.settings.quorum, 3);
        assert_eq!(
            spec.settings.down_after_ms,
            Settings::default().down_after_ms
        );
        for (i, r) in [
            pb::MonitorRequest {
                name: "".into(),
                nodes: vec![node("a", "127.0.0.1:6379")],
                settings: None,
                ..Default::default()
            },
            pb::MonitorRequest {
                name: "g".into(),
                nodes: vec![],
                settings: None,
                ..Default::default()
            },
            pb::MonitorRequest {
                name: "g".into(),
                nodes: vec![node("a", "no-port")],
                settings: None,
                ..Default::default()
            },
        ]
        .into_iter()
        .enumerate()
        {
            let e = MonitorSpec::try_from(r).err().expect("refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "#{i}");
        }
        // A resp group: admin defaults to data, credentials and renamed commands carried
        // (names upper-cased); a bad driver, or resp with a different admin, is refused.
        let resp = |driver: &str, admin: &str| pb::MonitorRequest {
            name: "g".into(),
            nodes: vec![pb::Node {
                admin: admin.into(),
                ..node("a", "127.0.0.1:6379")
            }],
            driver: driver.into(),
            auth_user: "u".into(),
            auth_pass: "p".into(),
            rename_commands: [("config".to_string(), "XCONFIG".to_string())].into(),
            ..Default::default()
        };
        let MonitorSpec(spec) = resp("resp", "").try_into().expect("a resp group");
        assert_eq!(spec.driver, Driver::Resp);
        assert_eq!(spec.nodes[0].admin, "127.0.0.1:6379");
        assert_eq!(
            (spec.auth_user.as_str(), spec.auth_pass.as_str()),
            ("u", "p")
        );
        assert_eq!(spec.command_name("config"), "XCONFIG");
        for (i, (driver, admin, what)) in [
            ("redis", "", "\"grpc\" or \"resp\""),
            (
                "resp",
                "127.0.0.1:16379",
                "admin must be absent or equal to data",
            ),
            ("grpc", "127.0.0.1:16379", "driver \"resp\" only"),
        ]
        .into_iter()
        .enumerate()
        {
            let e = MonitorSpec::try_from(resp(driver, admin))
                .err()
                .expect("refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "#{i}");
            assert!(e.message().contains(what), "#{i}: {}", e.message());
        }
        for (i, (id, address, ok)) in [
            (1, "10.0.0.1:7000", true),
            (2, "[::1]:7000", true),
            (0, "10.0.0.1:7000", false),
            (3, "10.0.0.1", false),
            (3, "10.0.0.1:0", false),
        ]
        .into_iter()
        .enumerate()
        {
            let r = NewSentinel::try_from(pb::AddSentinelRequest {
                id,
                address: address.into(),
            });
            assert_eq!(r.is_ok(), ok, "#{i}");
        }
    }
}
