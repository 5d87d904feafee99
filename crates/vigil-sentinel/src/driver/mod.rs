//! The Raft driver: one task owns `RawNode`; ticks, proposals, peer messages and reads reach it
//! through one mailbox, and it handles each Ready in the documented order (send messages,
//! apply a snapshot, apply committed entries, persist entries and hard state with one fsync,
//! send persisted messages, answer reads, advance; then the light ready).
//!
//! Proposals carry an id; the caller waiting for it is answered when *its* entry applies (never
//! matched first-in-first-out, which breaks across leader changes). Proposals, reads and conf
//! changes can be dropped silently by Raft (no leader, a conf change pending): callers always
//! wait with a timeout and may retry.
//!
//! This module holds the driver's interface (the [`Handle`], its errors, options and status,
//! [`start`]); the task itself is in `ready`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use raft::eraftpb::{ConfChangeV2, Message};
use raft::{Config, RawNode, ReadOnlyOption};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::state::{ClusterState, Command, Rejected};
use crate::storage::{DiskStorage, StoreError};

/// What can go wrong for a caller of the driver.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// No leader is known (an election is running, or this sentinel is cut off): retry.
    #[error(
        "no Raft leader is known right now (election in progress or this sentinel is cut off from the majority); retry shortly"
    )]
    NoLeader,
    /// The request did not complete in time (lost in a leader change, or no majority).
    #[error(
        "timed out after {0:?} waiting for the Raft majority; the sentinel may be cut off from it"
    )]
    Timeout(Duration),
    /// The command was applied and rejected by the state machine.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// Raft refused or could not apply a membership change.
    #[error("{0}")]
    Membership(String),
    /// The driver stopped (shutdown or a storage failure).
    #[error("the Raft driver has stopped: {0}")]
    Stopped(String),
}

/// How long a client's read waits for the Raft majority before it is refused: clients that
/// asked a sentinel cut off from the majority go on to the next one.
pub const CALL_BUDGET: Duration = Duration::from_secs(3);

/// How long an operator's change (a proposal) waits to commit before it is refused. Longer
/// than a read's: a change that commits after its caller gave up is reported as a failure
/// that did not happen (and a retry's compare-and-swap then fails), and a loaded machine can
/// hold a commit for seconds (a disk flush, a starved sentinel).
pub const PROPOSAL_BUDGET: Duration = Duration::from_secs(10);

/// Where messages to other sentinels go.
pub trait Transport: Send + Sync + 'static {
    /// Sends messages (best effort; Raft retransmits).
    fn send(&self, msgs: Vec<Message>);
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// One tick.
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Snapshot the state and compact the log every this many applied entries.
    pub compact_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tick: Duration::from_millis(50),
            // A candidate stands 400–600 ms after the leader's last heartbeat: well inside what
            // a 1 s `down_after`'s lease has left when the leader dies (about 775 ms), so that
            // death normally pauses no write.
            election_ticks: 6,
            heartbeat_ticks: 2,
            compact_every: 10_000,
        }
    }
}

impl Options {
    /// An upper bound on how long a follower waits after the leader's last heartbeat before it
    /// stands for election: its randomised timeout is below [`max_election_tick`] ticks, and
    /// the tick it heard the heartbeat in adds at most one (so this has a tick to spare). A
    /// clean election takes this plus a few round trips and syncs.
    pub fn longest_election_wait(&self) -> Duration {
        self.tick * max_election_tick(self.election_ticks) as u32
    }
}

/// Raft's randomised election timeout stays below this many ticks.
fn max_election_tick(election_ticks: usize) -> usize {
    (2 * election_ticks).max(election_ticks + 3)
}

mod ready;

use ready::Driver;

enum Msg {
    Raft(Message),
    Propose(Command, oneshot::Sender<Result<(), DriverError>>),
    Read(oneshot::Sender<Result<u64, DriverError>>),
    ConfChange(ConfChangeV2, oneshot::Sender<Result<(), DriverError>>),
    Unreachable(u64),
    SnapshotStatus(u64, bool),
    TransferLeader(u64),
}

/// What the driver publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    /// This sentinel.
    pub id: u64,
    /// The leader it knows (0: none).
    pub leader: u64,
    /// Current term.
    pub term: u64,
    /// Whether it leads.
    pub is_leader: bool,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Voters and learners.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// Index of the latest snapshot (the log starts after it).
    pub snapshot_index: u64,
    /// On the leader: each member's matched index and whether it was heard from within the
    /// longest election timeout (on this driver's monotonic clock, not raft-rs'
    /// `recent_active`, which check_quorum clears every election timeout until the next
    /// heartbeat reply, so a reader caught in that gap saw a healthy majority as inactive).
    pub progress: Vec<(u64, u64, bool)>,
}

/// A handle to the driver: cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Msg>,
    /// The transport's reports (unreachable peers, snapshot outcomes), apart from `tx` so that
    /// a full queue of peer messages never drops one: Raft waits on a snapshot's outcome until
    /// told, and there is at most one report per failed send or snapshot.
    reports: mpsc::UnboundedSender<Msg>,
    /// The applied state (read it after [`Handle::read_index`] for a linearizable answer).
    pub state: Arc<RwLock<ClusterState>>,
    /// The driver's status.
    pub status: Arc<RwLock<RaftStatus>>,
    /// This sentinel's event bus: committed changes enter it as they are applied.
    pub events: crate::events::Events,
    /// Bumped after every change to `state` or `status`, so that readers can cache what they
    /// derive from them (the discovery lookups) and still never answer from an older state.
    pub version: Arc<AtomicU64>,
    /// Whether this sentinel leads, changed as soon as Raft says so: what waits for
    /// leadership waits on this rather than polling `status`.
    pub leading: tokio::sync::watch::Receiver<bool>,
}

impl Handle {
    /// Hands a message from a peer to Raft.
    pub fn step(&self, m: Message) {
        let _ = self.tx.try_send(Msg::Raft(m));
    }

    /// Reports a peer the transport cannot reach.
    pub fn unreachable(&self, id: u64) {
        let _ = self.reports.send(Msg::Unreachable(id));
    }

    /// Reports whether a snapshot reached `id`.
    pub fn snapshot_status(&self, id: u64, delivered: bool) {
        let _ = self.reports.send(Msg::SnapshotStatus(id, delivered));
    }

    /// Asks the leader to hand leadership to `to` (takes effect within an election timeout).
    pub fn transfer_leader(&self, to: u64) {
        let _ = self.tx.try_send(Msg::TransferLeader(to));
    }

    /// Proposes a command; resolves once it is applied (or rejected by the state machine).
    pub async fn propose(&self, cmd: Command, timeout: Duration) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.call(Msg::Propose(cmd, tx), rx, timeout).await?
    }

    /// A linearizable read point (Raft ReadIndex, safe mode): once this returns, the local
    /// state is at least as new as anything committed before the call.
    pub async fn read_index(&self, timeout: Duration) -> Result<u64, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.call(Msg::Read(tx), rx, timeout).await?
    }

    /// A linearizable read point within `budget`, retried: Raft drops a read silently when
    /// there is no leader (or one just changed), so one lost attempt must not fail an
    /// operator's call while an election settles.
    pub async fn linearizable(&self, budget: Duration) -> Result<u64, DriverError> {
        let deadline = Instant::now() + budget;
        loop {
            let attempt =
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
            match self.read_index(attempt).await {
                Ok(i) => return Ok(i),
                Err(
                    e @ (DriverError::Rejected(_)
                    | DriverError::Membership(_)
                    | DriverError::Stopped(_)),
                ) => return Err(e),
                Err(e) if Instant::now() + Duration::from_millis(20) >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Proposes a membership change; resolves once it is applied.
    pub async fn conf_change(
        &self,
        cc: ConfChangeV2,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.call(Msg::ConfChange(cc, tx), rx, timeout).await?
    }

    async fn call<T>(
        &self,
        msg: Msg,
        rx: oneshot::Receiver<T>,
        timeout: Duration,
    ) -> Result<T, DriverError> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| DriverError::Stopped("mailbox closed".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(DriverError::Stopped("request dropped".into())),
            Err(_) => Err(DriverError::Timeout(timeout)),
        }
    }
}

/// Forwards raft-rs' slog records to tracing.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, r: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match r.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}", r.msg())
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}", r.msg()),
            slog::Level::Info => tracing::info!(target: "raft", "{}", r.msg()),
            _ => tracing::trace!(target: "raft", "{}", r.msg()),
        }
        Ok(())
    }
}

/// Starts the driver for sentinel `id` on `storage`. With `bootstrap` voters and an empty
/// storage, the group forms from them (all founding members must be given the same list);
/// a storage with history ignores it.
pub fn start(
    id: u64,
    storage: DiskStorage,
    bootstrap: &[u64],
    opts: Options,
    transport: Arc<dyn Transport>,
) -> Result<Handle, StoreError> {
    if !storage.is_initialized() && !bootstrap.is_empty() {
        let mut cs = raft::eraftpb::ConfState::default();
        cs.set_voters(bootstrap.to_vec());
        storage.set_conf_state(&cs);
        storage.sync()?;
    }
    let snap = storage.latest_snapshot();
    // A snapshot that does not decode is damage: starting empty would forget every group.
    let mut state =
        ClusterState::from_bytes(snap.get_data()).map_err(|e| StoreError::Corrupt {
            path: storage.snapshot_path(),
            offset: 0,
            reason: format!(
                "{e}; restore the directory from a backup, or remove this sentinel from the cluster and re-add it with an empty directory"
            ),
        })?;
    state.applied = snap.get_metadata().index;
    let config = Config {
        id,
        election_tick: opts.election_ticks,
        // A follower ignores (pre-)votes until `election_tick` ticks after the leader's last
        // heartbeat (check_quorum's lease). Its ticks are out of phase with the first
        // candidate's, so a candidate firing at exactly `election_tick` was often ignored and
        // the election took a second timeout: start two ticks later.
        min_election_tick: opts.election_ticks + 2,
        max_election_tick: max_election_tick(opts.election_ticks),
        heartbeat_tick: opts.heartbeat_ticks,
        // The state machine is rebuilt from the snapshot; Raft replays what follows it.
        applied: snap.get_metadata().index,
        pre_vote: true,
        check_quorum: true,
        read_only_option: ReadOnlyOption::Safe,
        max_size_per_msg: 1024 * 1024,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Fuse(TracingDrain), slog::o!("sentinel" => id));
    let raw = RawNode::new(&config, storage.clone(), &logger).map_err(|e| StoreError::Corrupt {
        path: Default::default(),
        offset: 0,
        reason: format!("raft refused the stored state: {e}"),
    })?;
    let (tx, rx) = mpsc::channel(4096);
    let (reports, reports_rx) = mpsc::unbounded_channel();
    let (leading_tx, leading) = tokio::sync::watch::channel(false);
    let handle = Handle {
        tx,
        reports,
        state: Arc::new(RwLock::new(state)),
        status: Arc::new(RwLock::new(RaftStatus {
            id,
            ..Default::default()
        })),
        events: crate::events::Events::default(),
        version: Arc::default(),
        leading,
    };
    let driver = Driver {
        leading: leading_tx,
        raw,
        storage,
        transport,
        handle: handle.clone(),
        proposals: HashMap::new(),
        reads: HashMap::new(),
        conf_changes: HashMap::new(),
        next_id: 1,
        id,
        compact_every: opts.compact_every,
        heard: HashMap::new(),
        recent: opts.tick * config.max_election_tick as u32,
    };
    // Its own thread: the log's fsync then never stalls the client-facing endpoints (the
    // sentinel's runtime has a single worker by default).
    let io = |source| StoreError::Io {
        action: "cannot start the Raft driver thread for",
        path: std::path::PathBuf::from(format!("sentinel {id}")),
        source,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(format!("raft-{id}"))
        .spawn(move || {
            let _entered = span.enter();
            rt.block_on(driver.run(rx, reports_rx, opts.tick))
        })
        .map_err(io)?;
    Ok(handle)
}

#[cfg(test)]
mod tests;
