//! Slot migration at run time: the leader drives the migration at the head of each cluster's
//! queue through its phases (see [`crate::state::migration`]), one task per migration and
//! phase, reading only the committed state and the nodes; a new leader starts where the
//! committed phase says.
//!
//! - **Copying**: wait until the target's master has applied the snapshot and is close behind
//!   the source's export, and its replicas close behind it (or [`REPLICAS_WAIT`] has passed
//!   since the master was), then commit `Pause`.
//! - **Paused**: wait until the source's master holds the writes (it serves the paused view)
//!   and read its final export count; wait until the target has applied that much of that
//!   same export and its replicas hold it; commit `Commit`. The pause lasts from the `Pause`
//!   commit to here: milliseconds normally, at most [`PAUSE_MAX`] before the attempt starts
//!   over.
//! - **Cleanup**: have the source's master delete its copies (a node whose view is older
//!   than the commit refuses), commit `Finish`.
//!
//! Anything unexpected before the commit (a failover, a broken export, no progress) commits
//! `Retry` after a growing wait, which starts the copy over under a new id; after
//! [`MAX_ATTEMPTS`], `Abort`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::Instrument;
use vigil_proto::node::{MigrationStatusReply, NodeStatus};

use crate::driver::{DriverError, Handle};
use crate::nodes::{CALL_TIMEOUT, NodeAdmin};
use crate::state::migration::{Migration, Phase, Step};
use crate::state::{ClusterState, Command, Rejected};

/// The target is close enough to pause the source when it is this few bytes behind.
const CATCH_UP: u64 = 256 << 10;
/// How long a copy that caught up waits for the target's replicas before pausing anyway (the
/// pause then waits for them, within [`PAUSE_MAX`]).
const REPLICAS_WAIT: Duration = Duration::from_secs(5);
/// The longest the source holds writes before the attempt starts over.
pub const PAUSE_MAX: Duration = Duration::from_secs(5);
/// A copy that makes no progress for this long starts over.
const STALL: Duration = Duration::from_secs(30);
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

/// The admin address of `group`'s master (`settled`: only while no failover of it is in
/// flight).
fn master_admin(st: &ClusterState, group: &str, settled: bool) -> Option<String> {
    let g = st.groups.get(group)?;
    if settled && g.failover.is_some() {
        return None;
    }
    let master = g.master.as_deref()?;
    g.spec
        .nodes
        .iter()
        .find(|n| n.name == master)
        .map(|n| n.admin.clone())
}

/// The admin addresses of the source's and the target's masters, while neither group is
/// failing over.
fn masters(st: &ClusterState, m: &Migration) -> Option<(String, String)> {
    Some((
        master_admin(st, &m.slots.from, true)?,
        master_admin(st, &m.slots.to, true)?,
    ))
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
        Phase::Cleanup => cleanup(&raft, &nodes, &m, &cluster).await,
    };
    let step = match done {
        Ok(step) => step,
        Err(Again(why)) if m.attempts + 1 >= MAX_ATTEMPTS => Step::Abort(format!(
            "{why} (attempt {} of {MAX_ATTEMPTS})",
            m.attempts + 1
        )),
        Err(Again(why)) => {
            // What failed (a failover, a node restarting) usually takes a moment to settle:
            // the next attempt waits longer each time; but a paused source is released first.
            let backoff = Duration::from_millis(250 << m.attempts.min(5)).min(RETRY_MAX);
            tracing::info!(id = m.id, %why, ?backoff, "migration attempt failed: starting over");
            if m.phase == Phase::Copying {
                tokio::time::sleep(backoff).await;
            }
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
    match &result {
        Ok(()) => tracing::info!(cluster = %cluster, id = m.id, ?step, "migration step committed"),
        Err(e) => {
            tracing::warn!(cluster = %cluster, id = m.id, ?step, error = %e, "migration step not committed")
        }
    }
    // The target keeps nothing of an attempt given up (a retried copy clears its slots
    // first); only once the abort is committed, and only on a node whose view has it.
    if let (Step::Abort(_), Ok(())) = (&step, &result) {
        let (target, epoch) = {
            let st = raft.state.read();
            let epoch = st.clusters.get(&cluster).map_or(0, |c| c.epoch);
            (master_admin(&st, &m.slots.to, false), epoch)
        };
        if let Some(admin) = target {
            drop_all(&nodes, &admin, &m.slots.ranges, epoch).await;
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

/// Copying: until the target has the snapshot and is within [`CATCH_UP`] of the export, and
/// its replicas within [`CATCH_UP`] of it (for at most [`REPLICAS_WAIT`]): the pause then
/// waits only for the last writes to reach them.
async fn copy(raft: &Handle, nodes: &Arc<dyn NodeAdmin>, m: &Migration) -> Result<Step, Again> {
    let mut best = 0;
    let mut progress = Instant::now();
    let mut caught_up: Option<Instant> = None;
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
                && s.export_generation == t.import_generation
                && s.export_offset.saturating_sub(t.import_offset) <= CATCH_UP
            {
                let since = *caught_up.get_or_insert_with(Instant::now);
                let replicas_close = matches!(
                    tokio::time::timeout(CALL_TIMEOUT, nodes.status(&dst, CALL_TIMEOUT)).await,
                    Ok(Ok(st)) if replicas_hold(&st, st.offset.saturating_sub(CATCH_UP))
                );
                if replicas_close || since.elapsed() > REPLICAS_WAIT {
                    return Ok(Step::Pause);
                }
            } else {
                caught_up = None;
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
    let (end, generation) = loop {
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
                break (s.export_offset, s.export_generation);
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
            // The same export (a restarted target reads a new one, counted from 0 again).
            if t.import_generation == generation && t.snapshot_done && t.import_offset >= end {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The target's replicas hold what it imported before it owns the slots: a failover of the
    // target after the commit cannot lose them, and the source may delete its copies then.
    let mut want = None;
    loop {
        if Instant::now() > deadline {
            return Err(timed_out("the target's replicas did not catch up"));
        }
        let dst = masters(&raft.state.read(), m).map(|(_, d)| d);
        if let Some(dst) = dst
            && let Ok(Ok(st)) =
                tokio::time::timeout(CALL_TIMEOUT, nodes.status(&dst, CALL_TIMEOUT)).await
        {
            let target = *want.get_or_insert(st.offset);
            if replicas_hold(&st, target) {
                tracing::info!(
                    id = m.id,
                    bytes = end,
                    held_ms = started.elapsed().as_millis() as u64,
                    "the target and its replicas hold the paused source's writes: committing the new owner"
                );
                return Ok(Step::Commit);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether the replicas of the master whose status is `st` hold its history up to `offset`:
/// its synchronous replicas' acknowledged offset, or every attached replica's.
fn replicas_hold(st: &NodeStatus, offset: u64) -> bool {
    if st.sync_replicas > 0 {
        st.acked_offset >= offset
    } else {
        st.replicas.iter().all(|r| r.ack_offset >= offset)
    }
}

/// Cleanup: the source forgets the slots (the target's replicas held them before the commit).
async fn cleanup(
    raft: &Handle,
    nodes: &Arc<dyn NodeAdmin>,
    m: &Migration,
    cluster: &str,
) -> Result<Step, Again> {
    loop {
        let (src, epoch) = {
            let st = raft.state.read();
            let epoch = st.clusters.get(cluster).map_or(0, |c| c.epoch);
            (master_admin(&st, &m.slots.from, false), epoch)
        };
        if let Some(src) = src
            && drop_all(nodes, &src, &m.slots.ranges, epoch).await
        {
            return Ok(Step::Finish);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes every key of `ranges` on the master at `admin` (refused by a node whose view is
/// older than map `epoch`), a batch a call; whether it is done.
async fn drop_all(
    nodes: &Arc<dyn NodeAdmin>,
    admin: &str,
    ranges: &[(u16, u16)],
    epoch: u64,
) -> bool {
    loop {
        let call = nodes.drop_slots(admin, ranges, epoch);
        match tokio::time::timeout(Duration::from_secs(5), call).await {
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
