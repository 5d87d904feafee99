//! Sharded clusters at run time: the leader tells every node of every shard the committed slot
//! map and each group's current master and serving replicas ([`view`]), so that each node
//! answers `CLUSTER SLOTS` and redirects with `MOVED` from the same committed state.
//!
//! The leader also drives slot migrations ([`migrate`]).
//!
//! A node reports the digest of the view it serves with every status probe; the leader pushes
//! again whenever that differs from the view it builds now (a failover, a replica that went
//! down or came back, a node restarted or a push lost). Nodes refuse an older view, so a
//! deposed leader's late push cannot roll a node back.

pub mod migrate;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vigil_proto::node::{ClusterView, LinkStatus, Role};

use crate::driver::Handle;
use crate::monitor::Health;
use crate::nodes::NodeAdmin;
use crate::state::{Group, NodeSpec};

/// How often the leader compares the nodes' views with its own.
const EVERY: Duration = Duration::from_millis(50);
/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a pushed view is trusted before the node's own report is believed again (its
/// probes may still show the view it had before the push).
const TRUST_PUSH: Duration = Duration::from_secs(1);

/// Whether `n` serves reads for `g` now, as its last answers to this sentinel show it: a
/// replica of the group's current epoch, linked to its master, holding data, not down.
fn serving(health: &Health, g: &Group, n: &NodeSpec) -> bool {
    if health.is_sdown(&g.spec.name, &n.name) {
        return false;
    }
    health.status(&g.spec.name, &n.name).is_some_and(|s| {
        s.role == Role::Replica as i32
            && s.link == LinkStatus::Up as i32
            && s.epoch == g.epoch
            && s.offset > 0
    })
}

/// Runs on every sentinel until `shutdown`; acts only while this sentinel leads.
pub async fn run(
    raft: Handle,
    nodes: Arc<dyn NodeAdmin>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    // Per (group, node): the digest last pushed and when.
    let mut pushed: HashMap<(String, String), (String, Instant)> = HashMap::new();
    let mut migrations = migrate::Migrations::default();
    let mut changes = raft.events.subscribe();
    let mut leading = raft.leading.clone();
    let (mut open, mut leading_open) = (true, true);
    let mut was_leading = false;
    loop {
        // A follower has nothing to do until it leads.
        let leads = *leading.borrow_and_update();
        if leads && !was_leading {
            // Unread while following: start from now, not from a backlog of old changes.
            changes = changes.resubscribe();
        }
        was_leading = leads;
        tokio::select! {
            _ = tokio::time::sleep(EVERY), if leads => {}
            // A committed change (a migration's step, a failover's) goes out at once rather
            // than at the next round: a source's write pause ends when the commit reaches it.
            r = changes.recv(), if leads && open => {
                open = !matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed));
            }
            r = leading.changed(), if !leads && leading_open => leading_open = r.is_ok(),
            _ = shutdown.cancelled() => {
                migrations.stop();
                return;
            }
        }
        if !raft.status.read().is_leader {
            pushed.clear();
            migrations.stop();
            continue;
        }
        migrations.tick(&raft, &nodes);
        let mut due = Vec::new();
        {
            let st = raft.state.read();
            // A node still in cluster mode whose group is in no cluster (it was removed from
            // one) is told to leave it: an empty view.
            for g in st
                .groups
                .values()
                .filter(|g| st.cluster_of(&g.spec.name).is_none())
            {
                for n in &g.spec.nodes {
                    let in_one = health
                        .status(&g.spec.name, &n.name)
                        .is_some_and(|s| !s.cluster_digest.is_empty());
                    let key = (g.spec.name.clone(), n.name.clone());
                    let fresh = pushed
                        .get(&key)
                        .is_some_and(|(p, at)| p.is_empty() && at.elapsed() < TRUST_PUSH);
                    if in_one && !fresh && !health.is_sdown(&g.spec.name, &n.name) {
                        due.push((key, n.admin.clone(), ClusterView::default(), String::new()));
                    }
                }
            }
            for c in st.clusters.values() {
                let shards = view::shards(&st, c, |g, n| serving(&health, g, n));
                for g in c.groups.iter().filter_map(|g| st.groups.get(g)) {
                    for n in &g.spec.nodes {
                        let v = view::view_for(c, &shards, &g.spec.name, &n.name);
                        let d = view::digest(&v);
                        let key = (g.spec.name.clone(), n.name.clone());
                        let reported = health
                            .status(&g.spec.name, &n.name)
                            .map(|s| s.cluster_digest);
                        let fresh = pushed
                            .get(&key)
                            .is_some_and(|(p, at)| *p == d && at.elapsed() < TRUST_PUSH);
                        // A node held down is not waited for: its push would hold up the
                        // round by the whole timeout; it is pushed again when it answers.
                        let down = health.is_sdown(&g.spec.name, &n.name);
                        if reported.as_deref() != Some(d.as_str()) && !fresh && !down {
                            due.push((key, n.admin.clone(), v, d));
                        }
                    }
                }
            }
        }
        let mut calls = tokio::task::JoinSet::new();
        for (key, admin, v, d) in due {
            let nodes = nodes.clone();
            calls.spawn(async move {
                let r = tokio::time::timeout(PUSH_TIMEOUT, nodes.set_cluster_view(&admin, v)).await;
                (key, d, r)
            });
        }
        while let Some(done) = calls.join_next().await {
            let Ok((key, d, r)) = done else { continue };
            match r {
                Ok(Ok(served)) if served == d => {
                    tracing::debug!(group = %key.0, node = %key.1, "cluster view pushed");
                    pushed.insert(key, (d, Instant::now()));
                }
                Ok(Ok(served)) => tracing::warn!(
                    group = %key.0, node = %key.1, %served, want = %d,
                    "node serves another cluster view than the one pushed"
                ),
                Ok(Err(e)) => {
                    tracing::debug!(group = %key.0, node = %key.1, error = %e, "cluster view not pushed")
                }
                Err(_) => {
                    tracing::debug!(group = %key.0, node = %key.1, "cluster view push timed out")
                }
            }
        }
    }
}
