//! The leader's steady-state duties for every group, each round: give a group without a master
//! its first one (an `AssignMaster` compare-and-swap, then `Promote` with a lease and
//! `ReplicateFrom` for the others); keep the committed master's write lease renewed, but only
//! after a ReadIndex confirmed that this sentinel still leads; and point any replica that
//! drifted (wrong master, older epoch, unassigned after a restart) back at the committed master.
//!
//! Failover (a dead master) is not handled here; a group with a failover in flight is left to
//! it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_proto::node::{
    GetStatusRequest, NodeStatus, PromoteRequest, RenewLeaseRequest, ReplicateFromRequest,
    Role as NodeRole,
};

use crate::driver::Handle;
use crate::nodes::Nodes;
use crate::state::{Command, Group, NodeSpec};

/// How often the leader tends the groups.
pub const ROUND: Duration = Duration::from_millis(200);
/// The write lease granted to a master, counted from a reading of the master's own clock.
pub const LEASE: Duration = Duration::from_secs(2);

/// Runs until `shutdown`.
pub async fn run(raft: Handle, nodes: Arc<Nodes>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if !raft.status.read().is_leader {
            continue;
        }
        let groups: Vec<Group> = raft.state.read().groups.values().cloned().collect();
        // Node clocks are read *before* leadership is confirmed: a lease counted from such a
        // reading ends before (reading + ttl), and the reading precedes the confirming
        // heartbeat, which precedes any later leader's election. A new leader that waits one
        // lease after its election therefore knows every lease granted before it has expired.
        let mut observed = Vec::new();
        for g in groups {
            if g.failover.is_some() {
                continue;
            }
            let o = observe(&nodes, &g).await;
            observed.push((g, o));
        }
        // A lease is granted only by a sentinel that provably still leads: a deposed leader
        // that has not noticed yet fails this and renews nothing.
        if raft.read_index(ROUND * 2).await.is_err() {
            continue;
        }
        for (g, o) in observed {
            match g.master.clone() {
                None => assign_first_master(&raft, &g, &o).await,
                Some(m) => tend(&nodes, &g, &m, o).await,
            }
        }
    }
}

async fn status(nodes: &Nodes, n: &NodeSpec) -> Option<NodeStatus> {
    let mut c = nodes.client(&n.admin).ok()?;
    match c.get_status(GetStatusRequest {}).await {
        Ok(r) => Some(r.into_inner()),
        Err(e) => {
            tracing::debug!(node = %n.name, error = %e, "node status unavailable");
            None
        }
    }
}

fn split(addr: &str) -> Option<(String, u32)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

/// Every node's status (in the group's node order), read before leadership is confirmed.
async fn observe(nodes: &Nodes, g: &Group) -> Vec<Option<NodeStatus>> {
    let mut out = Vec::with_capacity(g.spec.nodes.len());
    for n in &g.spec.nodes {
        out.push(status(nodes, n).await);
    }
    out
}

/// Picks the most up-to-date reachable node (priority 0 never) and commits it as master; the
/// next round promotes it and points the others at it.
async fn assign_first_master(raft: &Handle, g: &Group, observed: &[Option<NodeStatus>]) {
    let mut best: Option<(&NodeSpec, &NodeStatus)> = None;
    for (n, st) in g.spec.nodes.iter().zip(observed) {
        if n.priority == 0 {
            continue;
        }
        let Some(st) = st else {
            continue;
        };
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
    // The next round (from the committed state) promotes it and points the others at it.
}

/// Keeps the committed master promoted and leased, and its replicas following it.
async fn tend(nodes: &Nodes, g: &Group, master: &str, observed: Vec<Option<NodeStatus>>) {
    let Some(m) = g.spec.nodes.iter().find(|n| n.name == master) else {
        return;
    };
    let mut master_status = None;
    let mut replicas: Vec<&NodeSpec> = Vec::new();
    let mut statuses = Vec::new();
    for (n, st) in g.spec.nodes.iter().zip(observed) {
        if n.name == master {
            master_status = st;
        } else {
            replicas.push(n);
            statuses.push(st);
        }
    }
    if let Some(st) = master_status {
        let Ok(mut c) = nodes.client(&m.admin) else {
            return;
        };
        let is_master = st.role == NodeRole::Master as i32 && st.epoch >= g.epoch && !st.fenced;
        if !is_master {
            // Never promote a node that has less than a replica has: a master restarted empty
            // stays read-only (failover replaces it) rather than wiping its replicas.
            let highest = statuses
                .iter()
                .flatten()
                .map(|s| s.offset)
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
            match c.promote(req).await {
                Ok(_) => {
                    tracing::info!(group = %g.spec.name, master, epoch = g.epoch, "master promoted")
                }
                Err(e) => {
                    tracing::warn!(group = %g.spec.name, master, error = %e, "promotion refused")
                }
            }
        } else {
            let req = RenewLeaseRequest {
                epoch: g.epoch,
                ttl_ms: LEASE.as_millis() as u64,
                since_node_ms: st.node_clock_ms,
            };
            if let Err(e) = c.renew_lease(req).await {
                tracing::warn!(group = %g.spec.name, master, error = %e, "lease renewal refused");
            }
        }
    }
    let Some((host, port)) = split(&m.data) else {
        return;
    };
    for (r, st) in replicas.iter().zip(statuses) {
        let Some(st) = st else { continue };
        let follows = st.role == NodeRole::Replica as i32
            && st.master_host == host
            && st.master_port == port
            && st.epoch >= g.epoch;
        if follows {
            continue;
        }
        let Ok(mut c) = nodes.client(&r.admin) else {
            continue;
        };
        let req = ReplicateFromRequest {
            epoch: g.epoch,
            host: host.clone(),
            port,
        };
        match c.replicate_from(req).await {
            Ok(_) => {
                tracing::info!(group = %g.spec.name, replica = %r.name, master, "replica pointed at the master")
            }
            Err(e) => {
                tracing::warn!(group = %g.spec.name, replica = %r.name, error = %e, "replica not repointed")
            }
        }
    }
}
