//! The leader's steady-state duties for a group with a committed master and no failover in
//! flight: grant and renew the master's lease (never more than the committed lease), point
//! drifted replicas back at it, assign a group's first master, and fail over at once from a
//! master that restarted behind its replicas. Every node call goes through [`NodeAdmin`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_proto::node::{
    ClientType, KillClientsRequest, LinkStatus, NodeStatus, PromoteRequest, RenewLeaseRequest,
    ReplicateFromRequest, Role as NodeRole,
};

use super::decide::{
    Observed, divergent, drift, first_master, holds_less, lease, restarted_behind, serves, split,
};
use super::{Controller, PROPOSE};
use crate::driver::Handle;
use crate::events::Event;
use crate::monitor::Health;
use crate::nodes::NodeAdmin;
use crate::state::{Command, Driver, Group, NodeSpec};

impl Controller {
    /// The lease to grant the group's master now: [`lease`], once committed as the group's
    /// lease (a longer one is committed before it is granted; until then the committed one is
    /// granted). A shorter one is committed once every longer grant has surely ended.
    pub(super) async fn lease_to_grant(&mut self, g: &Group, leader_since: Instant) -> Duration {
        let want = lease(&g.spec.settings);
        let have = Duration::from_millis(g.lease_bound_ms());
        let want_ms = want.as_millis() as u64;
        let now = Instant::now();
        let margin = drift(have.max(want));
        let commit = if g.lease_ms == 0 || want > have {
            true
        } else if want < have {
            let l = self.local(&g.spec.name);
            l.grants.retain(|_, end| *end + margin > now);
            now > leader_since + have + margin && l.grants.range(want_ms + 1..).next().is_none()
        } else {
            false
        };
        if commit {
            let cmd = Command::SetLease {
                group: g.spec.name.clone(),
                lease_ms: want_ms,
            };
            match self.raft.propose(cmd, PROPOSE).await {
                Ok(()) => {
                    tracing::info!(lease_ms = want_ms, "group lease committed");
                    return want;
                }
                Err(e) => tracing::info!(error = %e, "group lease not committed this round"),
            }
        }
        want.min(have)
    }

    /// Fails over at once from a committed master that came back (restarted) behind its
    /// replicas: it lost acknowledged history, so it must not be promoted again, and leaving
    /// it in place would keep the group unwritable. `None` when the master is not in that state.
    pub(super) async fn replace_if_restarted_behind(
        &mut self,
        g: &Group,
        master: &str,
        observed: &Observed,
    ) -> Option<bool> {
        let name = g.spec.name.clone();
        let behind = restarted_behind(g, master, observed);
        let l = self.local(&name);
        let Some((offset, highest)) = behind else {
            if l.behind.take().is_some() {
                tracing::info!(master, "master no longer behind its replicas");
            }
            return None;
        };
        if l.behind.as_deref() != Some(master) {
            l.behind = Some(master.to_string());
            tracing::warn!(
                master,
                offset,
                highest,
                "master restarted behind its replicas (it lost acknowledged history): failing over"
            );
        }
        let why = format!(
            "{master} restarted behind its replicas (offset {offset} < {highest}): failing over"
        );
        self.say(&name, why);
        let acked = if g.spec.settings.sync_replicas > 0 {
            self.local(&name).acked.max(self.health.acked(&name))
        } else {
            0
        };
        Some(self.begin_failover(g, master, observed, acked, 0).await)
    }
}

/// One node's status, or `None` if it does not answer within `timeout`; the node is told
/// `master_offset` (see [`NodeAdmin::status_seeing`]).
async fn status(
    nodes: &dyn NodeAdmin,
    n: &NodeSpec,
    timeout: Duration,
    master_offset: u64,
) -> Option<(NodeStatus, Instant)> {
    match nodes.status_seeing(&n.admin, timeout, master_offset).await {
        Ok(st) => Some((st, Instant::now())),
        Err(e) => {
            tracing::debug!(node = %n.name, error = %e, "node status unavailable");
            None
        }
    }
}

/// Every node's status (in the group's node order), asked all at once, read before leadership
/// is confirmed. Nodes for which `skip` holds are not asked (`None`); nor are those `known`
/// has a status for (see [`settled`]), which is taken as theirs. The nodes other than the
/// committed master are told `master_offset`, its offset as last read (0: unknown). With
/// `health` (the leader's steady rounds), each answer is noted there as it arrives
/// ([`Health::controller_saw`]), so this sentinel's probes need not ask the same.
pub async fn observe(
    nodes: &Arc<dyn NodeAdmin>,
    g: &Group,
    timeout: Duration,
    skip: impl Fn(&str) -> bool,
    master_offset: u64,
    health: Option<&Arc<Health>>,
    known: &Observed,
) -> Observed {
    let mut set = tokio::task::JoinSet::new();
    let mut out = vec![None; g.spec.nodes.len()];
    for (i, n) in g.spec.nodes.iter().enumerate() {
        if skip(&n.name) {
            continue;
        }
        if let Some(k) = known.get(i).cloned().flatten() {
            out[i] = Some(k);
            continue;
        }
        let seen = if g.master.as_ref() == Some(&n.name) {
            0
        } else {
            master_offset
        };
        let (nodes, n, group) = (nodes.clone(), n.clone(), g.spec.name.clone());
        let health = health.cloned();
        set.spawn(async move {
            let asked = Instant::now();
            let st = status(nodes.as_ref(), &n, timeout, seen).await;
            if let (Some(h), Some((st, at))) = (&health, &st) {
                h.controller_saw(&group, &n.name, st, asked, *at);
            }
            (i, st)
        });
    }
    while let Some(r) = set.join_next().await {
        if let Ok((i, st)) = r {
            out[i] = st;
        }
    }
    out
}

/// The replicas' statuses a steady round of `g` need not ask for: those this sentinel had
/// (from its probes, or an earlier round) within `within` that leave nothing to do — a
/// replica linked to the committed master at the group's epoch — while that master's own last
/// status showed it serving. The leader's probes ask every replica every other probe interval
/// anyway; asking again at each lease renewal multiplied the replicas' status calls for
/// nothing new.
/// A round whose master turns out not to serve asks every node afresh (see `controller::run`):
/// putting a master back needs every replica's offset of that moment.
pub(super) fn settled(health: &Health, g: &Group, within: Duration) -> Observed {
    let none = vec![None; g.spec.nodes.len()];
    let name = &g.spec.name;
    let (Some(m), None) = (g.master.as_ref(), g.failover.as_ref()) else {
        return none;
    };
    let Some(master) = g.spec.nodes.iter().find(|n| &n.name == m) else {
        return none;
    };
    if !health.status(name, m).is_some_and(|s| serves(g, &s)) || health.is_sdown(name, m) {
        return none;
    }
    g.spec
        .nodes
        .iter()
        .map(|n| {
            let (st, at) = health.status_at(name, &n.name)?;
            let quiet = &n.name != m
                && at.elapsed() < within
                && follows(g, master, &st)
                && st.link == LinkStatus::Up as i32;
            quiet.then_some((st, at))
        })
        .collect()
}

/// Whether `st` is of a replica of `master` (at its plain or TLS address) at `g`'s epoch.
fn follows(g: &Group, master: &NodeSpec, st: &NodeStatus) -> bool {
    let at =
        |addr: &str| split(addr).is_some_and(|(h, p)| st.master_host == h && st.master_port == p);
    st.role == NodeRole::Replica as i32
        && (at(&master.data) || at(&master.tls_data))
        && st.epoch >= g.epoch
}

/// Picks the most up-to-date reachable node (priority 0 never) and commits it as master; the
/// next round promotes it and points the others at it. Returns whether it committed.
pub(super) async fn assign_first_master(raft: &Handle, g: &Group, observed: &Observed) -> bool {
    let Some(node) = first_master(g, observed) else {
        tracing::warn!("no reachable node can be the first master yet");
        return false;
    };
    let cmd = Command::AssignMaster {
        group: g.spec.name.clone(),
        expected_epoch: g.epoch,
        node: node.name.clone(),
    };
    match raft.propose(cmd, PROPOSE).await {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(error = %e, "first master not assigned this round");
            false
        }
    }
}

/// How `repoint` announces a node it points at the master.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repoint {
    /// Steady state: fixing a node that drifted.
    Fix,
    /// After a promotion: at most `parallel_syncs` syncing at once.
    Failover,
}

impl Controller {
    /// Points every reachable node but the master (index `mi`) at it, at the group's epoch,
    /// unless it already follows. Returns whether every reachable node follows it in sync.
    pub(super) async fn repoint(
        &mut self,
        g: &Group,
        mi: usize,
        observed: &Observed,
        why: Repoint,
    ) -> bool {
        let master = &g.spec.nodes[mi];
        let Some((host, port)) = split(&master.data) else {
            return false;
        };
        // Replicas with `tls_replication` follow the master's TLS address, where it has one.
        let tls = split(&master.tls_data);
        let mst = observed[mi].as_ref().map(|(s, _)| s.clone());
        let name = g.spec.name.clone();
        let mut syncing = 0usize;
        let mut todo = Vec::new();
        for (i, (n, st)) in g.spec.nodes.iter().zip(observed).enumerate() {
            let Some((st, _)) = st else { continue };
            if i == mi {
                continue;
            }
            if !follows(g, master, st) {
                todo.push((n, st));
            } else if st.link == LinkStatus::Up as i32 {
                if self.local(&name).reconf.remove(&n.name) {
                    self.events.emit(Event::local(
                        "+slave-reconf-done",
                        &name,
                        &n.name,
                        g.epoch,
                        String::new(),
                    ));
                }
            } else {
                syncing += 1;
            }
        }
        let in_sync = todo.is_empty() && syncing == 0;
        let room = match why {
            Repoint::Fix => usize::MAX,
            Repoint::Failover => (g.spec.settings.parallel_syncs as usize).saturating_sub(syncing),
        };
        for (n, st) in todo.into_iter().take(room) {
            let (tls_host, tls_port) = tls.clone().unwrap_or_default();
            let req = ReplicateFromRequest {
                epoch: g.epoch,
                host: host.clone(),
                port,
                tls_host,
                tls_port,
            };
            if let Err(e) = self.nodes.replicate_from(&n.admin, req).await {
                tracing::warn!(replica = %n.name, error = %e, "node not repointed");
                continue;
            }
            let lost = mst.as_ref().and_then(|m| divergent(st, m));
            let was_master = st.role == NodeRole::Master as i32
                || st.fenced
                || g.deposed.as_ref() == Some(&n.name);
            // A cluster's clients follow MOVED and keep their connections, as with Redis
            // Cluster; a dropped one surfaces to the application as an I/O error.
            let sharded = self.raft.state.read().cluster_of(&name).is_some();
            if was_master && !sharded {
                // Its clients re-resolve only when their connection drops (ioredis, redis-rs,
                // Jedis), as after Redis Sentinel's CLIENT KILL TYPE normal / pubsub.
                for t in [ClientType::Normal, ClientType::Pubsub] {
                    let req = KillClientsRequest { r#type: t as i32 };
                    if let Err(e) = self.nodes.kill_clients(&n.admin, req).await {
                        tracing::warn!(node = %n.name, error = %e, "old master's clients not disconnected");
                    }
                }
            }
            let (kind, detail) = if was_master || lost.is_some_and(|b| b > 0) {
                if let Some(bytes) = lost.filter(|b| *b > 0) {
                    tracing::warn!(node = %n.name, bytes, "old master demoted: it had writes the new master never got; they are discarded");
                }
                let detail = lost.map_or_else(
                    || "divergent_bytes unknown".to_string(),
                    |b| format!("divergent_bytes {b}"),
                );
                ("+convert-to-slave", detail)
            } else if why == Repoint::Failover {
                self.local(&name).reconf.insert(n.name.clone());
                ("+slave-reconf-sent", String::new())
            } else {
                ("+fix-slave-config", String::new())
            };
            self.events
                .emit(Event::local(kind, &name, &n.name, g.epoch, detail));
        }
        in_sync
    }

    /// Keeps the committed master promoted and leased, and its replicas following it.
    pub(super) async fn keep_master(
        &mut self,
        g: &Group,
        master: &str,
        observed: &Observed,
        leader_since: Instant,
    ) {
        let Some(mi) = g.spec.nodes.iter().position(|n| n.name == master) else {
            return;
        };
        let m = &g.spec.nodes[mi];
        let ttl = self.lease_to_grant(g, leader_since).await;
        if let Some((st, arrived)) = &observed[mi] {
            if g.spec.settings.sync_replicas > 0 {
                let l = self.local(&g.spec.name);
                l.acked = l.acked.max(st.acked_offset);
            }
            let is_master = serves(g, st);
            if is_master {
                // The outage, if there was one, is over: a next one waits afresh.
                self.local(&g.spec.name).unseen_since = None;
            }
            let granted = if !is_master {
                // Never promote a node that has less than a replica has (the caller failed
                // over from it instead): a master restarted empty never wipes its replicas.
                // That needs every replica's offset: one that did not answer this round (a
                // slow status, not a node seen down) may hold more, so wait for it.
                let unseen = g.spec.nodes.iter().enumerate().find(|(i, n)| {
                    *i != mi
                        && observed[*i].is_none()
                        && !self.health.is_sdown(&g.spec.name, &n.name)
                });
                if let Some((_, n)) = unseen {
                    let why = format!(
                        "{master} not promoted again yet: no offset from {} this round",
                        n.name
                    );
                    self.say(&g.spec.name, why);
                    return;
                }
                if holds_less(mi, st, observed).is_some() {
                    return;
                }
                let highest = observed
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != mi)
                    .filter_map(|(_, s)| s.as_ref().map(|(s, _)| s.offset))
                    .max()
                    .unwrap_or(0);
                let req = PromoteRequest {
                    epoch: g.epoch,
                    min_offset: highest,
                    lease_ttl_ms: ttl.as_millis() as u64,
                    lease_since_node_ms: st.node_clock_ms,
                };
                self.nodes.promote(&m.admin, req).await.map(|_| ())
            } else {
                let req = RenewLeaseRequest {
                    epoch: g.epoch,
                    ttl_ms: ttl.as_millis() as u64,
                    since_node_ms: st.node_clock_ms,
                };
                self.renew(g, &m.admin, st, req).await
            };
            match granted {
                Ok(()) => {
                    // A stock server managed over RESP has no lease to take.
                    let leased = if g.spec.driver == Driver::Resp {
                        ""
                    } else {
                        ", leased"
                    };
                    self.say(&g.spec.name, format!("ok: {master} is master{leased}"));
                    let bound = *arrived + ttl;
                    let l = self.local(&g.spec.name);
                    l.lease_bound = Some(l.lease_bound.map_or(bound, |b| b.max(bound)));
                    l.grants.insert(ttl.as_millis() as u64, bound);
                }
                Err(e) => {
                    let why = format!("{master} did not take its lease: {}", e.message());
                    self.say(&g.spec.name, why);
                    tracing::warn!(master, error = %e, "lease not granted")
                }
            }
        }
        self.repoint(g, mi, observed, Repoint::Fix).await;
    }
}
