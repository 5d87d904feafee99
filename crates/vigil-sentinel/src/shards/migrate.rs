//! Slot migration at run time: the leader drives the migration at the head of each cluster's
//! queue through its phases (see [`crate::state::migration`]), one task per migration and
//! phase, reading only the committed state and the nodes; a new leader starts where the
//! committed phase says.
//!
//! - **Copying**: wait until the target's master has applied the snapshot and is close behind
//!   the source's export, then commit `Pause`.
//! - **Paused**: wait until the source's master holds the writes (it serves the paused view)
//!   and read its final export count; wait until the target has applied that much; commit
//!   `Commit`. The pause lasts from the `Pause` commit to here: milliseconds normally, at most
//!   [`PAUSE_MAX`] before the attempt starts over.
//! - **Cleanup**: wait until the target's replicas hold what it imported, have the source's
//!   master delete its copies, commit `Finish`.
//!
//! Anything unexpected before the commit (a failover, a broken export, no progress) commits
//! `Retry` after a growing wait, which starts the copy over under a new id; after
//! [`MAX_ATTEMPTS`], `Abort`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::Instrument;
use vigil_proto::node::MigrationStatusReply;

use crate::driver::{DriverError, Handle};
use crate::nodes::{CALL_TIMEOUT, NodeAdmin};
use crate::state::migration::{Migration, Phase, Step};
use crate::state::{ClusterState, Command, Rejected};

/// The target is close enough to pause the source when it is this few bytes behind.
const CATCH_UP: u64 = 256 << 10;
/// The longest the source holds writes before the attempt starts over.
pub const PAUSE_MAX: Duration = Duration::from_secs(5);
/// A copy that makes no progress for this long starts over.
const STALL: Duration = Duration::from_secs(30);
/// How long the target's replicas get to catch up before the source deletes anyway.
const REPLICAS_MAX: Duration = Duration::from_secs(60);
/// Attempts before a migration is given up.
const MAX_ATTEMPTS: u32 = 8;
/// The longest wait before the next attempt.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a commit may take.
const PROPOSE: Duration = Duration::from_secs(2);

/// The leader's migration tasks, by cluster: the migration and phase each drives.
#[derive(Default)]
pub struct Migrations {
    running: HashMap<String, (u64, Phase, JoinHandle<()>)>,
}

impl Migrations {
    /// One round: a task for each cluster's migration in flight, in its committed phase.
    pub fn tick(&mut self, raft: &Handle, nodes: &Arc<dyn NodeAdmin>) {
        let heads: Vec<(String, Migration)> = raft
            .state
            .read()
            .clusters
            .values()
            .filter_map(|c| c.migrations.front().map(|m| (c.name.clone(), m.clone())))
            .collect();
        self.running.retain(|cluster, (id, phase, task)| {
            let current = heads
                .iter()
                .any(|(c, m)| c == cluster && m.id == *id && m.phase == *phase);
            if !current {
                task.abort();
            }
            current && !task.is_finished()
        });
        for (cluster, m) in heads {
            if self.running.contains_key(&cluster) {
                continue;
            }
            let (id, phase) = (m.id, m.phase);
            let span = tracing::info_span!(
                "migration", cluster = %cluster, id, from = %m.slots.from, to = %m.slots.to
            );
            let run = drive(raft.clone(), nodes.clone(), cluster.clone(), m);
            let task = tokio::spawn(run.instrument(span));
            self.running.insert(cluster, (id, phase, task));
        }
    }

    /// Stops every task (this sentinel no longer leads).
    pub fn stop(&mut self) {
        for (_, (_, _, task)) in self.running.drain() {
            task.abort();
        }
    }
}

/// Why a phase did not complete.
struct Again(String);

/// The admin addresses of the source's and the target's masters, while neither group is
/// failing over.
fn masters(st: &ClusterState, m: &Migration) -> Option<(String, String)> {
    let admin = |group: &str| {
        let g = st.groups.get(group)?;
        if g.failover.is_some() {
            return None;
        }
        let master = g.master.as_deref()?;
        g.spec
            .nodes
            .iter()
            .find(|n| n.name == master)
            .map(|n| n.admin.clone())
    };
    Some((admin(&m.slots.from)?, admin(&m.slots.to)?))
}

async fn status(nodes: &Arc<dyn NodeAdmin>, admin: &str, id: u64) -> Option<MigrationStatusReply> {
    match tokio::time::timeout(CALL_TIMEOUT, nodes.migration_status(admin, id)).await {
        Ok(Ok(s)) => Some(s),
        _ => None,
    }
}

async fn drive(raft: Handle, nodes: Arc<dyn NodeAdmin>, cluster: String, m: Migration) {
    let done = match m.phase {
        Phase::Copying => copy(&raft, &nodes, &m).await,
        Phase::Paused => pause(&raft, &nodes, &m).await,
        Phase::Cleanup => cleanup(&raft, &nodes, &m).await,
    };
    let step = match done {
        Ok(step) => step,
        Err(Again(why)) if m.attempts + 1 >= MAX_ATTEMPTS => Step::Abort(format!(
            "{why} (attempt {} of {MAX_ATTEMPTS})",
            m.attempts + 1
        )),
        Err(Again(why)) => {
            // What failed (a failover, a node restarting) usually takes a moment to settle:
            // the next attempt waits longer each time.
            let backoff = Duration::from_millis(250 << m.attempts.min(5)).min(RETRY_MAX);
            tracing::info!(id = m.id, %why, ?backoff, "migration attempt failed: starting over");
            tokio::time::sleep(backoff).await;
            Step::Retry(why)
        }
    };
    let mut result = commit(&raft, &cluster, m.id, step.clone()).await;
    // A commit refused because a group failed over during the pause: start over.
    if step == Step::Commit && matches!(result, Err(DriverError::Rejected(Rejected::Conflict(_)))) {
        let why = result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        result = commit(&raft, &cluster, m.id, Step::Retry(why)).await;
    }
    match result {
        Ok(()) => tracing::info!(cluster = %cluster, id = m.id, ?step, "migration step committed"),
        Err(e) => {
            tracing::warn!(cluster = %cluster, id = m.id, ?step, error = %e, "migration step not committed")
        }
    }
    // The target keeps nothing of an attempt given up (a retried copy clears its slots first).
    if let Step::Abort(_) = step {
        let target = raft.state.read().groups.get(&m.slots.to).and_then(|g| {
            let master = g.master.as_deref()?;
            g.spec
                .nodes
                .iter()
                .find(|n| n.name == master)
                .map(|n| n.admin.clone())
        });
        if let Some(admin) = target {
            drop_all(&nodes, &admin, &m.slots.ranges).await;
        }
    }
}

async fn commit(raft: &Handle, cluster: &str, id: u64, step: Step) -> Result<(), DriverError> {
    let cmd = Command::MigrationStep {
        cluster: cluster.to_string(),
        id,
        step,
    };
    raft.propose(cmd, PROPOSE).await
}

/// Copying: until the target has the snapshot and is within [`CATCH_UP`] of the export.
async fn copy(raft: &Handle, nodes: &Arc<dyn NodeAdmin>, m: &Migration) -> Result<Step, Again> {
    let mut best = 0;
    let mut progress = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pair = masters(&raft.state.read(), m);
        if let Some((src, dst)) = pair
            && let (Some(s), Some(t)) = (
                status(nodes, &src, m.id).await,
                status(nodes, &dst, m.id).await,
            )
        {
            if !t.error.is_empty() {
                return Err(Again(format!("the target's import failed: {}", t.error)));
            }
            if t.importing
                && t.snapshot_done
                && s.exporting
                && s.export_offset.saturating_sub(t.import_offset) <= CATCH_UP
            {
                return Ok(Step::Pause);
            }
            if t.import_offset > best {
                best = t.import_offset;
                progress = Instant::now();
            }
        }
        if progress.elapsed() > STALL {
            return Err(Again(format!("no progress for {}s", STALL.as_secs())));
        }
    }
}

/// Paused: the source's final count, then the target at it.
async fn pause(raft: &Handle, nodes: &Arc<dyn NodeAdmin>, m: &Migration) -> Result<Step, Again> {
    let started = Instant::now();
    let deadline = started + PAUSE_MAX;
    let timed_out = |what: &str| {
        Again(format!(
            "{what} within {}s of the pause",
            PAUSE_MAX.as_secs()
        ))
    };
    let end = loop {
        if Instant::now() > deadline {
            return Err(timed_out("the source did not hold the writes"));
        }
        let pair = masters(&raft.state.read(), m);
        if let Some((src, _)) = pair
            && let Some(s) = status(nodes, &src, m.id).await
        {
            if !s.exporting {
                return Err(Again("the source's export ended".into()));
            }
            if s.paused {
                break s.export_offset;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    loop {
        if Instant::now() > deadline {
            return Err(timed_out("the target did not catch up"));
        }
        let pair = masters(&raft.state.read(), m);
        if let Some((_, dst)) = pair
            && let Some(t) = status(nodes, &dst, m.id).await
        {
            if !t.error.is_empty() {
                return Err(Again(format!("the target's import failed: {}", t.error)));
            }
            if t.import_offset >= end {
                tracing::info!(
                    id = m.id,
                    bytes = end,
                    held_ms = started.elapsed().as_millis() as u64,
                    "target caught up with the paused source: committing the new owner"
                );
                return Ok(Step::Commit);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Cleanup: the target's replicas first, then the source forgets the slots.
async fn cleanup(raft: &Handle, nodes: &Arc<dyn NodeAdmin>, m: &Migration) -> Result<Step, Again> {
    let admin = |group: &str| {
        let st = raft.state.read();
        let g = st.groups.get(group)?;
        let master = g.master.as_deref()?;
        g.spec
            .nodes
            .iter()
            .find(|n| n.name == master)
            .map(|n| n.admin.clone())
    };
    // Every replica the target's master streams to holds what it had now.
    let since = Instant::now();
    let mut want = None;
    loop {
        if let Some(dst) = admin(&m.slots.to)
            && let Ok(Ok(st)) =
                tokio::time::timeout(CALL_TIMEOUT, nodes.status(&dst, CALL_TIMEOUT)).await
        {
            let target = *want.get_or_insert(st.offset);
            if st.replicas.iter().all(|r| r.ack_offset >= target) {
                break;
            }
        }
        if since.elapsed() > REPLICAS_MAX {
            tracing::warn!(
                id = m.id,
                "the target's replicas did not all catch up within {}s: deleting the source's copies anyway",
                REPLICAS_MAX.as_secs()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        if let Some(src) = admin(&m.slots.from)
            && drop_all(nodes, &src, &m.slots.ranges).await
        {
            return Ok(Step::Finish);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes every key of `ranges` on the master at `admin`, a batch a call; whether it is done.
async fn drop_all(nodes: &Arc<dyn NodeAdmin>, admin: &str, ranges: &[(u16, u16)]) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), nodes.drop_slots(admin, ranges)).await {
            Ok(Ok(0)) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::info!(error = %e, "slots not dropped yet");
                return false;
            }
            Err(_) => return false,
        }
    }
}
