//! The leader's duties for every group, each round:
//!
//! - **First master**: a group without one gets the most up-to-date reachable node (priority 0
//!   never), committed with an `AssignMaster` compare-and-swap, then promoted with a lease.
//! - **Steady state**: the committed master's write lease is renewed, but only after a ReadIndex
//!   confirmed that this sentinel still leads; replicas that drifted (wrong master, older
//!   epoch, unassigned after a restart) are pointed back at it.
//! - **Failover**: when the master has been down for `down_after` here and for at least
//!   `quorum` sentinels (their fresh opinions), the best replica is chosen and a
//!   `BeginFailover` compare-and-swap commits the new epoch *before* anything is done. Then,
//!   idempotently from the committed state (so a new leader resumes it): fence the old master
//!   (best effort), wait until every lease it could hold has surely expired, `Promote` the
//!   candidate (refused below `min_offset`), commit `Promoted` (clients now get the new master),
//!   repoint the other nodes, commit `CompleteFailover`. A failover that does not finish within
//!   `failover_timeout` is aborted; the next round starts another at a higher epoch.
//!
//! Lease arithmetic: node clocks are read *before* leadership is confirmed, and a lease runs
//! from such a reading, so it ends before (time the reading arrived here + ttl). A leader that
//! granted nothing itself (it is new) waits one lease after it became leader: every grant of an
//! earlier leader was confirmed by a heartbeat acknowledged before this leader's election.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use vigil_proto::node::{
    FenceRequest, GetStatusRequest, NodeStatus, PromoteRequest, RenewLeaseRequest,
    ReplicateFromRequest, Role as NodeRole,
};

use crate::driver::Handle;
use crate::monitor::Health;
use crate::nodes::Nodes;
use crate::state::{Command, Failover, Group, NodeSpec, Step};
use crate::transport::GrpcTransport;

/// How often the leader tends the groups.
pub const ROUND: Duration = Duration::from_millis(100);
/// The write lease granted to a master, counted from a reading of the master's own clock.
pub const LEASE: Duration = Duration::from_secs(1);
/// Margin on lease waits for clock-rate differences between machines.
const DRIFT: Duration = Duration::from_millis(100);

/// A node's status and when it arrived (monotonic).
type Observed = Vec<Option<(NodeStatus, Instant)>>;

/// The leader's controller.
pub struct Controller {
    raft: Handle,
    nodes: Arc<Nodes>,
    health: Arc<Health>,
    peers: Arc<GrpcTransport>,
    /// When this sentinel became leader (`None` while it does not lead).
    leader_since: Option<Instant>,
    /// Per group: every lease this leader granted ends before this.
    lease_bound: HashMap<String, Instant>,
    /// Per group: the highest offset the master reported as acknowledged by its sync replicas.
    acked: HashMap<String, u64>,
    /// Per (group, epoch): when this leader first saw the failover.
    failover_seen: HashMap<(String, u64), Instant>,
}

impl Controller {
    /// A controller for this sentinel.
    pub fn new(
        raft: Handle,
        nodes: Arc<Nodes>,
        health: Arc<Health>,
        peers: Arc<GrpcTransport>,
    ) -> Controller {
        Controller {
            raft,
            nodes,
            health,
            peers,
            leader_since: None,
            lease_bound: HashMap::new(),
            acked: HashMap::new(),
            failover_seen: HashMap::new(),
        }
    }
}

/// Runs until `shutdown`.
pub async fn run(mut c: Controller, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if !c.raft.status.read().is_leader {
            // Whatever this sentinel granted before stays bounded by the next leader's wait.
            c.leader_since = None;
            c.lease_bound.clear();
            c.failover_seen.clear();
            continue;
        }
        let since = *c.leader_since.get_or_insert_with(Instant::now);
        let groups: Vec<Group> = c.raft.state.read().groups.values().cloned().collect();
        let mut observed = Vec::new();
        for g in groups {
            let o = observe(&c.nodes, &g).await;
            observed.push((g, o));
        }
        if c.raft.read_index(ROUND * 3).await.is_err() {
            continue;
        }
        for (g, o) in observed {
            match (&g.failover, g.master.clone()) {
                (Some(f), _) => c.drive_failover(&g, f, &o, since).await,
                (None, None) => assign_first_master(&c.raft, &g, &o).await,
                (None, Some(m)) => {
                    if !c.maybe_begin_failover(&g, &m, &o).await {
                        c.tend(&g, &m, &o).await;
                    }
                }
            }
        }
    }
}

async fn status(nodes: &Nodes, n: &NodeSpec) -> Option<(NodeStatus, Instant)> {
    let mut c = nodes.client(&n.admin).ok()?;
    match c.get_status(GetStatusRequest {}).await {
        Ok(r) => Some((r.into_inner(), Instant::now())),
        Err(e) => {
            tracing::debug!(node = %n.name, error = %e, "node status unavailable");
            None
        }
    }
}

/// Every node's status (in the group's node order), read before leadership is confirmed.
async fn observe(nodes: &Nodes, g: &Group) -> Observed {
    let mut out = Vec::with_capacity(g.spec.nodes.len());
    for n in &g.spec.nodes {
        out.push(status(nodes, n).await);
    }
    out
}

fn split(addr: &str) -> Option<(String, u32)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Picks the most up-to-date reachable node (priority 0 never) and commits it as master; the
/// next round promotes it and points the others at it.
async fn assign_first_master(raft: &Handle, g: &Group, observed: &Observed) {
    let mut best: Option<(&NodeSpec, &NodeStatus)> = None;
    for (n, st) in g.spec.nodes.iter().zip(observed) {
        let Some((st, _)) = st else { continue };
        if n.priority == 0 {
            continue;
        }
        let better = best.as_ref().is_none_or(|(b, bs)| {
            (
                st.offset,
                std::cmp::Reverse(n.priority),
                std::cmp::Reverse(&n.name),
            ) > (
                bs.offset,
                std::cmp::Reverse(b.priority),
                std::cmp::Reverse(&b.name),
            )
        });
        if better {
            best = Some((n, st));
        }
    }
    let Some((node, _)) = best else {
        tracing::warn!(group = %g.spec.name, "no reachable node can be the first master yet");
        return;
    };
    let cmd = Command::AssignMaster {
        group: g.spec.name.clone(),
        expected_epoch: g.epoch,
        node: node.name.clone(),
    };
    match raft.propose(cmd, Duration::from_secs(2)).await {
        Ok(()) => {
            tracing::info!(group = %g.spec.name, master = %node.name, epoch = g.epoch + 1, "first master assigned")
        }
        Err(e) => {
            tracing::info!(group = %g.spec.name, error = %e, "first master not assigned this round")
        }
    }
}

impl Controller {
    /// Points every node but `master` at it (at the group's epoch) unless it already follows.
    async fn repoint(&self, g: &Group, master: &NodeSpec, observed: &Observed) {
        let Some((host, port)) = split(&master.data) else {
            return;
        };
        for (n, st) in g.spec.nodes.iter().zip(observed) {
            if n.name == master.name {
                continue;
            }
            let Some((st, _)) = st else { continue };
            let follows = st.role == NodeRole::Replica as i32
                && st.master_host == host
                && st.master_port == port
                && st.epoch >= g.epoch;
            if follows {
                continue;
            }
            let Ok(mut c) = self.nodes.client(&n.admin) else {
                continue;
            };
            let req = ReplicateFromRequest {
                epoch: g.epoch,
                host: host.clone(),
                port,
            };
            match c.replicate_from(req).await {
                Ok(_) => {
                    tracing::info!(group = %g.spec.name, replica = %n.name, master = %master.name, epoch = g.epoch, "replica pointed at the master")
                }
                Err(e) => {
                    tracing::warn!(group = %g.spec.name, replica = %n.name, error = %e, "replica not repointed")
                }
            }
        }
    }

    /// Keeps the committed master promoted and leased, and its replicas following it.
    async fn tend(&mut self, g: &Group, master: &str, observed: &Observed) {
        let Some(mi) = g.spec.nodes.iter().position(|n| n.name == master) else {
            return;
        };
        let m = &g.spec.nodes[mi];
        if let Some((st, arrived)) = &observed[mi] {
            if g.spec.settings.sync_replicas > 0 {
                let a = self.acked.entry(g.spec.name.clone()).or_default();
                *a = (*a).max(st.acked_offset);
            }
            let Ok(mut c) = self.nodes.client(&m.admin) else {
                return;
            };
            let is_master = st.role == NodeRole::Master as i32 && st.epoch >= g.epoch && !st.fenced;
            let granted = if !is_master {
                // Never promote a node that has less than a replica has: a master restarted
                // empty stays read-only rather than wiping its replicas.
                let highest = observed
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != mi)
                    .filter_map(|(_, s)| s.as_ref().map(|(s, _)| s.offset))
                    .max()
                    .unwrap_or(0);
                if st.offset < highest {
                    tracing::warn!(group = %g.spec.name, master, offset = st.offset, highest, "committed master is behind its replicas; not promoting it");
                    return;
                }
                let req = PromoteRequest {
                    epoch: g.epoch,
                    min_offset: highest,
                    lease_ttl_ms: LEASE.as_millis() as u64,
                    lease_since_node_ms: st.node_clock_ms,
                };
                c.promote(req).await.map(|_| ())
            } else {
                let req = RenewLeaseRequest {
                    epoch: g.epoch,
                    ttl_ms: LEASE.as_millis() as u64,
                    since_node_ms: st.node_clock_ms,
                };
                c.renew_lease(req).await.map(|_| ())
            };
            match granted {
                Ok(()) => {
                    let bound = *arrived + LEASE;
                    let b = self.lease_bound.entry(g.spec.name.clone()).or_insert(bound);
                    *b = (*b).max(bound);
                }
                Err(e) => {
                    tracing::warn!(group = %g.spec.name, master, error = %e, "lease not granted")
                }
            }
        }
        self.repoint(g, m, observed).await;
    }

    /// Starts a failover if the master is objectively down; returns whether one was begun.
    async fn maybe_begin_failover(&mut self, g: &Group, master: &str, observed: &Observed) -> bool {
        let s = &g.spec.settings;
        let down_after = Duration::from_millis(s.down_after_ms);
        if self.health.down_for(&g.spec.name, master) < down_after {
            return false;
        }
        if g.last_failover_ms > 0
            && wall_ms().saturating_sub(g.last_failover_ms) < s.min_failover_interval_ms
        {
            return false;
        }
        // Fresh opinions: ODOWN when `quorum` sentinels, this one included, see it down.
        let mut votes = 1;
        for id in self.peers.peers() {
            if let Some(ms) = self.peers.opinion(id, &g.spec.name, master).await
                && ms >= s.down_after_ms
            {
                votes += 1;
            }
        }
        if votes < s.quorum {
            tracing::info!(group = %g.spec.name, master, votes, quorum = s.quorum, "master down here, but no quorum agrees yet");
            return false;
        }
        // Candidate: reachable replicas with priority > 0, not lagging; then lowest priority,
        // highest offset, smallest run id.
        let highest = observed
            .iter()
            .flatten()
            .map(|(s, _)| s.offset)
            .max()
            .unwrap_or(0);
        let min_offset = if s.sync_replicas > 0 {
            self.acked.get(&g.spec.name).copied().unwrap_or(0)
        } else {
            0
        };
        let candidate = g
            .spec
            .nodes
            .iter()
            .zip(observed)
            .filter(|(n, _)| n.name != master && n.priority > 0)
            .filter_map(|(n, st)| st.as_ref().map(|(st, _)| (n, st)))
            .filter(|(_, st)| st.offset >= min_offset)
            .filter(|(_, st)| s.sync_replicas > 0 || highest - st.offset <= s.max_lag_on_failover)
            .min_by(|(a, sa), (b, sb)| {
                (a.priority, std::cmp::Reverse(sa.offset), &sa.run_id).cmp(&(
                    b.priority,
                    std::cmp::Reverse(sb.offset),
                    &sb.run_id,
                ))
            });
        let Some((cand, cst)) = candidate else {
            tracing::error!(group = %g.spec.name, master, min_offset, "master is down and no replica is eligible: staying unavailable rather than promote a stale node");
            return true;
        };
        let cmd = Command::BeginFailover {
            group: g.spec.name.clone(),
            expected_epoch: g.epoch,
            new_epoch: g.epoch + 1,
            old: Some(master.to_string()),
            candidate: cand.name.clone(),
            min_offset,
            manual: false,
        };
        match self.raft.propose(cmd, Duration::from_secs(2)).await {
            Ok(()) => {
                tracing::warn!(group = %g.spec.name, old = master, candidate = %cand.name, offset = cst.offset, epoch = g.epoch + 1, votes, "failover begun")
            }
            Err(e) => {
                tracing::warn!(group = %g.spec.name, error = %e, "failover not begun this round")
            }
        }
        true
    }

    /// Drives a committed failover one step, idempotently.
    async fn drive_failover(
        &mut self,
        g: &Group,
        f: &Failover,
        observed: &Observed,
        leader_since: Instant,
    ) {
        let key = (g.spec.name.clone(), f.epoch);
        let seen = *self.failover_seen.entry(key).or_insert_with(Instant::now);
        let timeout = Duration::from_millis(g.spec.settings.failover_timeout_ms);
        if seen.elapsed() > timeout {
            let cmd = Command::AbortFailover {
                group: g.spec.name.clone(),
                epoch: f.epoch,
                reason: format!("not finished within {timeout:?}"),
            };
            let _ = self.raft.propose(cmd, Duration::from_secs(2)).await;
            tracing::error!(group = %g.spec.name, epoch = f.epoch, "failover aborted (timeout)");
            return;
        }
        let Some(ci) = g.spec.nodes.iter().position(|n| n.name == f.candidate) else {
            return;
        };
        let cand = &g.spec.nodes[ci];
        match f.step {
            Step::Begun => {
                // A reachable old master is fenced at the new epoch: it stops acknowledging
                // at once (checked when each reply leaves), so its lease need not be waited
                // out, and its offset is final.
                let mut final_offset = None;
                let mut acked = 0;
                if let Some(old) = &f.old
                    && let Some(o) = g.spec.nodes.iter().find(|n| &n.name == old)
                    && let Ok(mut c) = self.nodes.client(&o.admin)
                    && let Ok(st) = c.fence(FenceRequest { epoch: f.epoch }).await
                {
                    let st = st.into_inner();
                    if st.fenced && st.epoch >= f.epoch {
                        final_offset = Some(st.offset);
                        acked = st.acked_offset;
                    }
                }
                if final_offset.is_none() {
                    let mut wait_until = leader_since + LEASE + DRIFT;
                    if let Some(b) = self.lease_bound.get(&g.spec.name) {
                        wait_until = wait_until.max(*b + DRIFT);
                    }
                    if Instant::now() < wait_until {
                        return;
                    }
                }
                // A switchover promotes only once the candidate has everything the old master
                // had: zero loss in async mode too.
                let min_offset = if f.manual {
                    f.min_offset.max(final_offset.unwrap_or(0))
                } else if g.spec.settings.sync_replicas > 0 {
                    // The fenced master's last word on what its sync replicas acknowledged.
                    f.min_offset.max(acked)
                } else {
                    f.min_offset
                };
                let Some((st, arrived)) = &observed[ci] else {
                    return;
                };
                let Ok(mut c) = self.nodes.client(&cand.admin) else {
                    return;
                };
                let req = PromoteRequest {
                    epoch: f.epoch,
                    min_offset,
                    lease_ttl_ms: LEASE.as_millis() as u64,
                    lease_since_node_ms: st.node_clock_ms,
                };
                match c.promote(req).await {
                    Ok(_) => {
                        self.lease_bound
                            .insert(g.spec.name.clone(), *arrived + LEASE);
                        let cmd = Command::Promoted {
                            group: g.spec.name.clone(),
                            epoch: f.epoch,
                        };
                        if self.raft.propose(cmd, Duration::from_secs(2)).await.is_ok() {
                            tracing::warn!(group = %g.spec.name, master = %cand.name, epoch = f.epoch, "candidate promoted");
                        }
                    }
                    Err(e) if e.code() == tonic::Code::FailedPrecondition && f.manual => {
                        tracing::info!(group = %g.spec.name, candidate = %cand.name, min_offset, "switchover: candidate still catching up");
                    }
                    Err(e) if e.code() == tonic::Code::FailedPrecondition => {
                        let cmd = Command::AbortFailover {
                            group: g.spec.name.clone(),
                            epoch: f.epoch,
                            reason: format!("candidate refused: {}", e.message()),
                        };
                        let _ = self.raft.propose(cmd, Duration::from_secs(2)).await;
                    }
                    Err(e) => {
                        tracing::warn!(group = %g.spec.name, error = %e, "promotion not done this round")
                    }
                }
            }
            Step::Promoted => {
                self.repoint(g, cand, observed).await;
                let cmd = Command::CompleteFailover {
                    group: g.spec.name.clone(),
                    epoch: f.epoch,
                };
                if self.raft.propose(cmd, Duration::from_secs(2)).await.is_ok() {
                    tracing::warn!(group = %g.spec.name, master = %cand.name, epoch = f.epoch, "failover complete");
                }
            }
        }
    }
}
