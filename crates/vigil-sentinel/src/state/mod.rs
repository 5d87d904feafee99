//! The replicated cluster state: the monitored groups, their nodes, epoch, master and failover
//! in flight, and a history of changes. Every sentinel holds the same copy, changed only by
//! applying committed Raft entries in order, so every sentinel answers the same way.
//!
//! Applying is deterministic: no clock, no randomness; the time and the proposer travel in the
//! entry. A command that does not fit the current state (a compare-and-swap whose expected
//! epoch has passed, an unknown group) is *rejected*, which is itself a deterministic outcome,
//! returned to the proposer; the state does not change.
//!
//! This module holds the types; `apply` the rule of each command; `shards` the sharded
//! clusters (slot maps); `tests` their tests.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

/// How many changes the history keeps.
pub const HISTORY: usize = 1000;

/// One storage node of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Unique name within the group.
    pub name: String,
    /// Data (RESP) address, `host:port`.
    pub data: String,
    /// Where the sentinels manage the node, `host:port`: its NodeAdmin address (driver
    /// `grpc`), or its data address again (driver `resp`, where `validate` requires
    /// `admin == data`).
    pub admin: String,
    /// Failover preference: lower first, 0 never.
    pub priority: u32,
    /// The node's TLS data address, `host:port` (empty: none): what clients of a sentinel's
    /// TLS port are handed out instead of `data`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_data: String,
}

impl NodeSpec {
    /// The address a client should use: the TLS one for a TLS client, when the node has one.
    pub fn client_addr(&self, tls: bool) -> &str {
        if tls && !self.tls_data.is_empty() {
            &self.tls_data
        } else {
            &self.data
        }
    }
}

/// A group's tunables (`SENTINEL SET` / `SetOption` change them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Sentinels (leader included) that must see the master down for ODOWN.
    pub quorum: u32,
    /// Silence after which a node is subjectively down.
    pub down_after_ms: u64,
    /// Longest a failover may take before it is aborted and retried.
    pub failover_timeout_ms: u64,
    /// Replicas repointed at a time after a promotion.
    pub parallel_syncs: u32,
    /// Replicas further behind than this (bytes) are not promoted (async mode).
    pub max_lag_on_failover: u64,
    /// The nodes' synchronous mode (0: async).
    pub sync_replicas: u32,
    /// Shortest time between two failovers of the group.
    pub min_failover_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 10_000,
            parallel_syncs: 1,
            max_lag_on_failover: 1024 * 1024,
            sync_replicas: 0,
            min_failover_interval_ms: 5000,
        }
    }
}

/// The options `SetOption` / `SENTINEL SET` know (Redis Sentinel's names), and whether each
/// must be positive (the others may be 0).
pub const OPTIONS: &[(&str, bool)] = &[
    ("quorum", true),
    ("down-after-milliseconds", true),
    ("failover-timeout", true),
    ("parallel-syncs", true),
    ("max-lag-on-failover", false),
    ("sync-replicas", false),
    ("min-failover-interval", false),
];

/// How the sentinels reach and manage a group's nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// `vigil node` or `vigil agent`: the NodeAdmin gRPC API at each node's `admin` address
    /// (write lease, fencing, epochs).
    #[default]
    Grpc,
    /// Stock `redis-server` / Valkey managed over RESP at each node's `data` address, as Redis
    /// Sentinel does (no lease); `admin` equals `data`.
    Resp,
}

impl Driver {
    /// The names a config or request may give, in the order errors list them.
    pub const NAMES: &'static [&'static str] = &["grpc", "resp"];

    /// Its config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Grpc => "grpc",
            Driver::Resp => "resp",
        }
    }
}

impl std::str::FromStr for Driver {
    type Err = Rejected;

    /// `"grpc"` or `"resp"` (exactly; an unknown name is refused naming the allowed ones).
    fn from_str(s: &str) -> Result<Driver, Rejected> {
        match s {
            "grpc" => Ok(Driver::Grpc),
            "resp" => Ok(Driver::Resp),
            _ => Err(Rejected::Invalid(format!(
                "driver must be \"grpc\" or \"resp\", got {s:?}"
            ))),
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group as `Monitor` declares it.
///
/// Fields added after the first release carry `#[serde(default)]`: log entries and snapshots
/// written before them decode to the defaults (a gRPC-driven group without credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Group name (the Sentinel "master name").
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Its tunables.
    pub settings: Settings,
    /// How the sentinels manage the nodes.
    #[serde(default)]
    pub driver: Driver,
    /// The ACL user the sentinels authenticate as on the nodes' data port (`resp` only; empty:
    /// `AUTH <auth_pass>` alone, or none).
    #[serde(default)]
    pub auth_user: String,
    /// The password the sentinels authenticate with on the nodes' data port (`resp` only;
    /// empty: no `AUTH`).
    #[serde(default)]
    pub auth_pass: String,
    /// Commands the servers know by another name (Redis' `rename-command`), by upper-case
    /// command name: the sentinels send `rename_commands["CONFIG"]` instead of `CONFIG`
    /// (`resp` only).
    #[serde(default)]
    pub rename_commands: BTreeMap<String, String>,
}

impl GroupSpec {
    /// The name the group's servers know `command` by (itself unless renamed).
    pub fn command_name<'a>(&'a self, command: &'a str) -> &'a str {
        self.rename_commands
            .get(&command.to_ascii_uppercase())
            .map_or(command, String::as_str)
    }
}

/// Where a failover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Committed: the new epoch exists; fencing the old master, waiting out its lease.
    Begun,
    /// The candidate is master: lookups answer it.
    Promoted,
}

/// A failover in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failover {
    /// The epoch it was begun at.
    pub epoch: u64,
    /// The master being replaced, if there was one.
    pub old: Option<String>,
    /// The node being promoted.
    pub candidate: String,
    /// The candidate must have at least this offset.
    pub min_offset: u64,
    /// When it began (proposer's wall clock, ms; for display and timeouts measured from it).
    pub started_ms: u64,
    /// Where it is.
    pub step: Step,
    /// An operator's switchover (the candidate waits to catch up instead of being refused).
    #[serde(default)]
    pub manual: bool,
}

/// A monitored group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Declared nodes and settings.
    pub spec: GroupSpec,
    /// The configuration epoch: raised by every failover.
    pub epoch: u64,
    /// The current master (none until the leader assigns one).
    pub master: Option<String>,
    /// A failover in flight.
    pub failover: Option<Failover>,
    /// When the last failover completed (ms; 0: never).
    pub last_failover_ms: u64,
    /// The master the last promotion replaced: when it is seen again it is demoted, and its
    /// writes that never reached the new master are counted.
    #[serde(default)]
    pub deposed: Option<String>,
    /// The longest write lease (ms) a leader may grant the group's master; 0: none committed
    /// yet (then half of `down_after`, what leaders granted before this was kept). A new leader
    /// waits this long before promoting over a master it could not fence, so a leader commits
    /// a longer lease here *before* granting it.
    #[serde(default)]
    pub lease_ms: u64,
}

impl Group {
    /// The longest lease any leader may have granted (see `lease_ms`).
    pub fn lease_bound_ms(&self) -> u64 {
        if self.lease_ms > 0 {
            self.lease_ms
        } else {
            self.spec.settings.down_after_ms / 2
        }
    }

    /// Whether `name` is one of the group's nodes.
    pub fn has_node(&self, name: &str) -> bool {
        self.spec.nodes.iter().any(|n| n.name == name)
    }
}

/// A change to the cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Starts monitoring a group (its name must be new).
    Monitor(GroupSpec),
    /// Replaces a group's nodes and settings, keeping its epoch and master (which must remain
    /// one of its nodes).
    Update(GroupSpec),
    /// Stops monitoring a group.
    Remove {
        /// The group.
        group: String,
    },
    /// Sets one tunable (`SENTINEL SET`).
    SetOption {
        /// The group.
        group: String,
        /// The option's name (`quorum`, `down-after-milliseconds`, ...).
        key: String,
        /// Its value.
        value: String,
    },
    /// Records the gRPC address of a sentinel (before it joins as a learner).
    SetSentinel {
        /// Its Raft id.
        id: u64,
        /// Its gRPC address, `host:port`.
        address: String,
    },
    /// Records the Redis Sentinel protocol address of a sentinel (each announces its own), so
    /// `SENTINEL SENTINELS` can tell clients where the others listen.
    SetSentinelResp {
        /// Its Raft id.
        id: u64,
        /// Its RESP address, `host:port`.
        address: String,
    },
    /// Forgets a removed sentinel's address.
    ForgetSentinel {
        /// Its Raft id.
        id: u64,
    },
    /// Gives a group without a master its first one (compare-and-swap on the epoch).
    AssignMaster {
        /// The group.
        group: String,
        /// The epoch the proposer saw.
        expected_epoch: u64,
        /// The node.
        node: String,
    },
    /// Begins a failover (compare-and-swap): applies only if the group is still at
    /// `expected_epoch` with no failover in flight.
    BeginFailover {
        /// The group.
        group: String,
        /// The epoch the proposer saw.
        expected_epoch: u64,
        /// The new epoch (greater).
        new_epoch: u64,
        /// The master being replaced.
        old: Option<String>,
        /// The node to promote.
        candidate: String,
        /// The candidate's offset must reach this.
        min_offset: u64,
        /// A switchover asked for by an operator: the candidate catches up with the fenced
        /// old master before it is promoted.
        #[serde(default)]
        manual: bool,
    },
    /// Records that the candidate of the failover at `epoch` is now master.
    Promoted {
        /// The group.
        group: String,
        /// The failover's epoch.
        epoch: u64,
    },
    /// Ends the failover at `epoch`.
    CompleteFailover {
        /// The group.
        group: String,
        /// The failover's epoch.
        epoch: u64,
    },
    /// Sets the longest write lease a leader may grant the group's master (`Group::lease_ms`).
    SetLease {
        /// The group.
        group: String,
        /// The lease, ms (positive).
        lease_ms: u64,
    },
    /// Creates a sharded cluster over monitored groups, the slots spread evenly among them
    /// (map epoch 1).
    CreateCluster {
        /// Its name (new).
        name: String,
        /// Its groups, in order.
        groups: Vec<String>,
    },
    /// Queues slot migrations in a cluster whose map epoch is `expected_epoch` (nothing else
    /// queued).
    QueueMigrations {
        /// The cluster.
        cluster: String,
        /// Compare-and-swap on the map's epoch.
        expected_epoch: u64,
        /// The moves, in order.
        moves: Vec<migration::Move>,
    },
    /// A step of the migration at the head of a cluster's queue.
    MigrationStep {
        /// The cluster.
        cluster: String,
        /// The migration's id.
        id: u64,
        /// The step.
        step: migration::Step,
    },
    /// A monitored group joins a cluster, owning no slots.
    AddClusterGroup {
        /// The cluster.
        cluster: String,
        /// The group.
        group: String,
    },
    /// A group that owns no slots leaves a cluster.
    RemoveClusterGroup {
        /// The cluster.
        cluster: String,
        /// The group.
        group: String,
    },
    /// Gives up the failover at `epoch` (the epoch stays raised; the next attempt uses a
    /// higher one).
    AbortFailover {
        /// The group.
        group: String,
        /// The failover's epoch.
        epoch: u64,
        /// Why, in words.
        reason: String,
        /// Why, for the event it raises.
        #[serde(default)]
        why: AbortReason,
    },
}

/// Why a failover was given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// It did not finish within `failover_timeout`.
    #[default]
    Timeout,
    /// The candidate refused the promotion (below `min_offset`).
    CandidateRefused,
}

/// A command as proposed: who, when, and an id that matches it to its entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Unique per proposer run; the driver answers the waiting caller when its entry applies.
    pub id: u64,
    /// The proposing sentinel.
    pub by: u64,
    /// Proposer's wall clock (ms), for history and display.
    pub at_ms: u64,
    /// The change.
    pub cmd: Command,
}

impl Proposal {
    /// Entry data.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From entry data.
    pub fn decode(b: &[u8]) -> Result<Proposal, String> {
        serde_json::from_slice(b).map_err(|e| format!("bad proposal: {e}"))
    }
}

/// One line of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Raft index of the entry.
    pub index: u64,
    /// When (proposer's wall clock, ms).
    pub at_ms: u64,
    /// Who proposed it.
    pub by: u64,
    /// The group.
    pub group: String,
    /// The group's epoch after it.
    pub epoch: u64,
    /// What happened.
    pub what: String,
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
    /// Recent changes, oldest first.
    pub history: VecDeque<Change>,
    /// Raft index of the last applied entry.
    pub applied: u64,
    /// gRPC addresses of sentinels added after the group formed (the founders come from each
    /// sentinel's config).
    #[serde(default)]
    pub sentinels: BTreeMap<u64, String>,
    /// Every sentinel's Redis Sentinel protocol (RESP) address, as each announced it.
    #[serde(default)]
    pub sentinel_resp: BTreeMap<u64, String>,
    /// Groups an operator removed: the groups in a sentinel's config are added only while
    /// absent from here, so a removal sticks (as Redis Sentinel rewrites its config on
    /// `SENTINEL REMOVE`). Monitoring the name again clears it.
    #[serde(default)]
    pub removed: BTreeSet<String>,
    /// Sharded clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, Cluster>,
}

/// Why a command was not applied: a deterministic outcome every sentinel reaches alike. The
/// variant says what kind of refusal it is (the gRPC code follows from it); the message is
/// what operators read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The command names a group that is not monitored.
    #[error("no such group {0:?}")]
    NoGroup(String),
    /// `Monitor` of a name already monitored.
    #[error("group {0} is already monitored")]
    AlreadyMonitored(String),
    /// The command is malformed: a bad spec, option, address or value.
    #[error("{0}")]
    Invalid(String),
    /// The command does not fit the current state: a compare-and-swap whose expected epoch has
    /// passed, a failover in flight or none at that epoch, a node the group lacks.
    #[error("{0}")]
    Conflict(String),
}

/// Whether `s` is `host:port` (a hostname, an IPv4 address or a bracketed IPv6 address) with
/// a port in 1..=65535.
pub fn is_host_port(s: &str) -> bool {
    s.parse::<vigil_base::HostPort>()
        .is_ok_and(|a| a.port() > 0)
}

mod apply;
pub mod migration;
mod shards;

pub use apply::validate;
pub use shards::{Cluster, SLOTS, SlotRange, spread};

#[cfg(test)]
mod tests;
