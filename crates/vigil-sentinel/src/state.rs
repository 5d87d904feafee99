//! The replicated cluster state: the monitored groups, their nodes, epoch, master and failover
//! in flight, and a history of changes. Every sentinel holds the same copy, changed only by
//! applying committed Raft entries in order, so every sentinel answers the same way.
//!
//! Applying is deterministic: no clock, no randomness; the time and the proposer travel in the
//! entry. A command that does not fit the current state (a compare-and-swap whose expected
//! epoch has passed, an unknown group) is *rejected*, which is itself a deterministic outcome,
//! returned to the proposer; the state does not change.

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
    /// NodeAdmin address, `host:port`.
    pub admin: String,
    /// Failover preference: lower first, 0 never.
    pub priority: u32,
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

/// A group as `Monitor` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Group name (the Sentinel "master name").
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Its tunables.
    pub settings: Settings,
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
}

/// Why a command was not applied.
pub type Rejected = String;

/// Whether `s` is `host:port` with a non-empty host and a port in 1..=65535.
pub fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn validate(spec: &GroupSpec) -> Result<(), Rejected> {
    if spec.name.is_empty() || spec.name.len() > 200 || spec.name.contains(char::is_whitespace) {
        return Err("group name must be 1-200 characters without spaces".into());
    }
    if spec.nodes.is_empty() {
        return Err(format!("group {} has no nodes", spec.name));
    }
    let mut names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("group {} names a node twice", spec.name));
    }
    for n in &spec.nodes {
        for (what, addr) in [("data", &n.data), ("admin", &n.admin)] {
            if !is_host_port(addr) {
                return Err(format!(
                    "node {}: {what} address {addr:?} is not host:port",
                    n.name
                ));
            }
        }
    }
    let s = &spec.settings;
    if s.quorum == 0 {
        return Err("quorum must be at least 1".into());
    }
    if s.down_after_ms == 0 || s.failover_timeout_ms == 0 || s.parallel_syncs == 0 {
        return Err("down_after, failover_timeout and parallel_syncs must be positive".into());
    }
    Ok(())
}

impl ClusterState {
    /// Applies the committed entry `index`. `Err` is a deterministic rejection: the state did
    /// not change (beyond `applied`).
    pub fn apply(&mut self, index: u64, p: &Proposal) -> Result<(), Rejected> {
        self.applied = index;
        let (group, what) = self.apply_cmd(p)?;
        let epoch = self.groups.get(&group).map_or(0, |g| g.epoch);
        self.history.push_back(Change {
            index,
            at_ms: p.at_ms,
            by: p.by,
            group,
            epoch,
            what,
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        Ok(())
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut Group, Rejected> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| format!("no such group {name:?}"))
    }

    fn apply_cmd(&mut self, p: &Proposal) -> Result<(String, String), Rejected> {
        match &p.cmd {
            Command::SetSentinel { id, address } => {
                if *id == 0 || !is_host_port(address) {
                    return Err(format!(
                        "sentinel {id}: address {address:?} is not host:port (ids start at 1)"
                    ));
                }
                self.sentinels.insert(*id, address.clone());
                Ok((String::new(), format!("sentinel {id} at {address}")))
            }
            Command::SetSentinelResp { id, address } => {
                if *id == 0 || !is_host_port(address) {
                    return Err(format!(
                        "sentinel {id}: RESP address {address:?} is not host:port (ids start at 1)"
                    ));
                }
                self.sentinel_resp.insert(*id, address.clone());
                Ok((
                    String::new(),
                    format!("sentinel {id} serves RESP at {address}"),
                ))
            }
            Command::ForgetSentinel { id } => {
                self.sentinels.remove(id);
                self.sentinel_resp.remove(id);
                Ok((String::new(), format!("sentinel {id} forgotten")))
            }
            Command::Monitor(spec) => {
                validate(spec)?;
                if self.groups.contains_key(&spec.name) {
                    return Err(format!("group {} is already monitored", spec.name));
                }
                self.removed.remove(&spec.name);
                self.groups.insert(
                    spec.name.clone(),
                    Group {
                        spec: spec.clone(),
                        epoch: 0,
                        master: None,
                        failover: None,
                        last_failover_ms: 0,
                        deposed: None,
                        lease_ms: 0,
                    },
                );
                Ok((spec.name.clone(), "monitor".into()))
            }
            Command::Update(spec) => {
                validate(spec)?;
                let g = self.group_mut(&spec.name)?;
                if let Some(m) = &g.master
                    && !spec.nodes.iter().any(|n| &n.name == m)
                {
                    return Err(format!("the update removes the current master {m}"));
                }
                if let Some(f) = &g.failover
                    && !spec.nodes.iter().any(|n| n.name == f.candidate)
                {
                    return Err("the update removes the failover candidate".into());
                }
                g.spec = spec.clone();
                Ok((spec.name.clone(), "update".into()))
            }
            Command::Remove { group } => {
                self.groups
                    .remove(group)
                    .ok_or_else(|| format!("no such group {group:?}"))?;
                self.removed.insert(group.clone());
                Ok((group.clone(), "remove".into()))
            }
            Command::SetOption { group, key, value } => {
                let g = self.group_mut(group)?;
                let mut s = g.spec.settings.clone();
                let num = || {
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("{key} needs a non-negative integer, got {value:?}"))
                };
                match key.as_str() {
                    "quorum" => s.quorum = u32::try_from(num()?).map_err(|_| "quorum too large")?,
                    "down-after-milliseconds" => s.down_after_ms = num()?,
                    "failover-timeout" => s.failover_timeout_ms = num()?,
                    "parallel-syncs" => {
                        s.parallel_syncs =
                            u32::try_from(num()?).map_err(|_| "parallel-syncs too large")?
                    }
                    "max-lag-on-failover" => s.max_lag_on_failover = num()?,
                    "sync-replicas" => {
                        s.sync_replicas =
                            u32::try_from(num()?).map_err(|_| "sync-replicas too large")?
                    }
                    "min-failover-interval" => s.min_failover_interval_ms = num()?,
                    _ => return Err(format!("unknown option {key:?}")),
                }
                let mut spec = g.spec.clone();
                spec.settings = s;
                validate(&spec)?;
                g.spec = spec;
                Ok((group.clone(), format!("set {key} {value}")))
            }
            Command::SetLease { group, lease_ms } => {
                if *lease_ms == 0 {
                    return Err("a lease must be positive".into());
                }
                let g = self.group_mut(group)?;
                g.lease_ms = *lease_ms;
                Ok((group.clone(), format!("lease {lease_ms} ms")))
            }
            Command::AssignMaster {
                group,
                expected_epoch,
                node,
            } => {
                let g = self.group_mut(group)?;
                if g.epoch != *expected_epoch || g.master.is_some() || g.failover.is_some() {
                    return Err(format!(
                        "group {group} moved on (epoch {}, master {:?})",
                        g.epoch, g.master
                    ));
                }
                if !g.has_node(node) {
                    return Err(format!("{node} is not a node of {group}"));
                }
                g.epoch += 1;
                g.master = Some(node.clone());
                Ok((group.clone(), format!("assign master {node}")))
            }
            Command::BeginFailover {
                group,
                expected_epoch,
                new_epoch,
                old,
                candidate,
                min_offset,
                manual,
            } => {
                let g = self.group_mut(group)?;
                if g.epoch != *expected_epoch {
                    return Err(format!(
                        "group {group} is at epoch {}, not {expected_epoch}",
                        g.epoch
                    ));
                }
                if g.failover.is_some() {
                    return Err(format!("a failover of {group} is already in flight"));
                }
                if *new_epoch <= g.epoch {
                    return Err("the new epoch must be greater".into());
                }
                if !g.has_node(candidate) || old.as_ref() == Some(candidate) {
                    return Err(format!("{candidate} cannot be the candidate"));
                }
                g.epoch = *new_epoch;
                g.failover = Some(Failover {
                    epoch: *new_epoch,
                    old: old.clone(),
                    candidate: candidate.clone(),
                    min_offset: *min_offset,
                    started_ms: p.at_ms,
                    step: Step::Begun,
                    manual: *manual,
                });
                Ok((
                    group.clone(),
                    format!("begin failover to {candidate} (min offset {min_offset})"),
                ))
            }
            Command::Promoted { group, epoch } => {
                let g = self.group_mut(group)?;
                let f = g
                    .failover
                    .as_mut()
                    .filter(|f| f.epoch == *epoch)
                    .ok_or_else(|| format!("no failover of {group} at epoch {epoch}"))?;
                f.step = Step::Promoted;
                let c = f.candidate.clone();
                g.deposed = f.old.clone();
                g.master = Some(c.clone());
                Ok((group.clone(), format!("promoted {c}")))
            }
            Command::CompleteFailover { group, epoch } => {
                let g = self.group_mut(group)?;
                let f = g
                    .failover
                    .take_if(|f| f.epoch == *epoch && f.step == Step::Promoted)
                    .ok_or_else(|| format!("no promoted failover of {group} at epoch {epoch}"))?;
                g.last_failover_ms = p.at_ms;
                Ok((
                    group.clone(),
                    format!("failover to {} complete", f.candidate),
                ))
            }
            Command::AbortFailover {
                group,
                epoch,
                reason,
                ..
            } => {
                let g = self.group_mut(group)?;
                let f = g
                    .failover
                    .take_if(|f| f.epoch == *epoch)
                    .ok_or_else(|| format!("no failover of {group} at epoch {epoch}"))?;
                if f.step == Step::Promoted {
                    // The candidate is master already: keep it, the failover just ends.
                    g.last_failover_ms = p.at_ms;
                }
                Ok((group.clone(), format!("abort failover: {reason}")))
            }
        }
    }

    /// The snapshot bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From snapshot bytes (empty: the initial state).
    pub fn from_bytes(b: &[u8]) -> Result<ClusterState, String> {
        if b.is_empty() {
            return Ok(ClusterState::default());
        }
        serde_json::from_slice(b).map_err(|e| format!("bad state snapshot: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, nodes: &[&str]) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| NodeSpec {
                    name: n.to_string(),
                    data: format!("127.0.0.1:{}", 6379 + i),
                    admin: format!("127.0.0.1:{}", 16379 + i),
                    priority: 100,
                })
                .collect(),
            settings: Settings::default(),
        }
    }

    fn run(s: &mut ClusterState, index: u64, cmd: Command) -> Result<(), Rejected> {
        let p = Proposal {
            id: index,
            by: 1,
            at_ms: index * 10,
            cmd,
        };
        // Through the entry encoding, as the driver does.
        s.apply(index, &Proposal::decode(&p.encode()).unwrap())
    }

    #[test]
    fn failover_is_a_compare_and_swap_on_the_epoch() {
        let mut s = ClusterState::default();
        run(&mut s, 1, Command::Monitor(spec("g", &["a", "b", "c"]))).unwrap();
        assert!(run(&mut s, 2, Command::Monitor(spec("g", &["a"]))).is_err());
        let assign = |e| Command::AssignMaster {
            group: "g".into(),
            expected_epoch: e,
            node: "a".into(),
        };
        run(&mut s, 3, assign(0)).unwrap();
        assert!(run(&mut s, 4, assign(0)).is_err(), "only once");
        let begin = |expected, new, cand: &str| Command::BeginFailover {
            group: "g".into(),
            expected_epoch: expected,
            new_epoch: new,
            old: Some("a".into()),
            candidate: cand.into(),
            min_offset: 10,
            manual: false,
        };
        assert!(
            run(&mut s, 5, begin(0, 2, "b")).is_err(),
            "stale expected epoch"
        );
        assert!(run(&mut s, 6, begin(1, 1, "b")).is_err(), "epoch must rise");
        assert!(
            run(&mut s, 7, begin(1, 2, "a")).is_err(),
            "old master is no candidate"
        );
        assert!(run(&mut s, 8, begin(1, 2, "zz")).is_err(), "unknown node");
        run(&mut s, 9, begin(1, 2, "b")).unwrap();
        // Two leaders racing: the second CAS fails.
        assert!(run(&mut s, 10, begin(1, 2, "c")).is_err());
        assert!(run(&mut s, 11, begin(2, 3, "c")).is_err(), "one in flight");
        let g = &s.groups["g"];
        assert_eq!((g.epoch, g.master.as_deref()), (2, Some("a")));
        assert!(
            run(
                &mut s,
                12,
                Command::CompleteFailover {
                    group: "g".into(),
                    epoch: 2
                }
            )
            .is_err(),
            "not promoted yet"
        );
        run(
            &mut s,
            13,
            Command::Promoted {
                group: "g".into(),
                epoch: 2,
            },
        )
        .unwrap();
        assert_eq!(s.groups["g"].master.as_deref(), Some("b"));
        run(
            &mut s,
            14,
            Command::CompleteFailover {
                group: "g".into(),
                epoch: 2,
            },
        )
        .unwrap();
        let g = &s.groups["g"];
        assert_eq!((g.failover.clone(), g.last_failover_ms), (None, 140));
        assert_eq!(s.applied, 14);
        assert_eq!(s.history.len(), 5, "{:#?}", s.history);
        // The snapshot round-trips exactly.
        assert_eq!(ClusterState::from_bytes(&s.to_bytes()).unwrap(), s);
    }

    #[test]
    fn abort_keeps_the_epoch_and_frees_the_group() {
        let mut s = ClusterState::default();
        run(&mut s, 1, Command::Monitor(spec("g", &["a", "b"]))).unwrap();
        run(
            &mut s,
            2,
            Command::BeginFailover {
                group: "g".into(),
                expected_epoch: 0,
                new_epoch: 5,
                old: None,
                candidate: "b".into(),
                min_offset: 0,
                manual: false,
            },
        )
        .unwrap();
        run(
            &mut s,
            3,
            Command::AbortFailover {
                group: "g".into(),
                epoch: 5,
                reason: "candidate unreachable".into(),
                why: AbortReason::Timeout,
            },
        )
        .unwrap();
        let g = &s.groups["g"];
        assert_eq!(
            (g.epoch, g.failover.is_none(), g.master.clone()),
            (5, true, None)
        );
    }

    #[test]
    fn bad_specs_and_options_are_rejected_without_change() {
        let mut s = ClusterState::default();
        let mut bad = spec("g", &["a", "a"]);
        assert!(run(&mut s, 1, Command::Monitor(bad.clone())).is_err());
        bad = spec("g", &["a"]);
        bad.nodes[0].data = "nohost".into();
        assert!(run(&mut s, 2, Command::Monitor(bad)).is_err());
        assert!(run(&mut s, 3, Command::Monitor(spec("", &["a"]))).is_err());
        run(&mut s, 4, Command::Monitor(spec("g", &["a", "b"]))).unwrap();
        let set = |k: &str, v: &str| Command::SetOption {
            group: "g".into(),
            key: k.into(),
            value: v.into(),
        };
        assert!(run(&mut s, 5, set("quorum", "0")).is_err());
        assert!(run(&mut s, 6, set("quorum", "x")).is_err());
        assert!(run(&mut s, 7, set("nonsense", "1")).is_err());
        run(&mut s, 8, set("down-after-milliseconds", "250")).unwrap();
        assert_eq!(s.groups["g"].spec.settings.down_after_ms, 250);
        assert_eq!(s.groups["g"].spec.settings.quorum, 2);
        run(
            &mut s,
            9,
            Command::AssignMaster {
                group: "g".into(),
                expected_epoch: 0,
                node: "a".into(),
            },
        )
        .unwrap();
        assert!(
            run(&mut s, 10, Command::Update(spec("g", &["b", "c"]))).is_err(),
            "cannot drop the master"
        );
        run(&mut s, 11, Command::Update(spec("g", &["a", "c"]))).unwrap();
        run(&mut s, 12, Command::Remove { group: "g".into() }).unwrap();
        assert!(s.groups.is_empty());
        assert!(s.removed.contains("g"), "a removal is remembered");
        run(&mut s, 13, Command::Monitor(spec("g", &["a"]))).unwrap();
        assert!(s.removed.is_empty(), "monitoring the name again clears it");
        assert!(Proposal::decode(b"garbage").is_err());
    }
}
