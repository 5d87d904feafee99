//! The write gate — the product: whether this node may run a command now, and whether a write
//! it ran may be acknowledged. It holds the node's role (master, replica or — managed, before
//! the sentinels speak — unassigned), the highest epoch seen, the fence and the write lease,
//! all private to [`Gate`]; every role transition is one of its methods.
//!
//! The invariant: **a write is acknowledged only if, when its reply leaves, the node is a master
//! that may write** — standalone, or managed, unfenced and inside its lease (checked on the
//! monotonic clock) — **and, in synchronous mode, `sync_replicas` replicas acknowledged it.**
//! It is checked twice, both times here:
//!
//! 1. Before a command runs: [`Gate::admit`] (called under the store lock, which every role
//!    transition also takes, so the role cannot change between the check and the command).
//!    A refusal here means "not run": `-READONLY`, `-NOREPLICAS`, `-MASTERDOWN`.
//! 2. When its reply is about to leave: [`Gate::settle`] waits for the synchronous replicas,
//!    then checks role, fence and lease *again*. A lease that expired or a fence that arrived
//!    while the write waited never becomes a false OK: the caller cuts the output at the first
//!    write's reply ([`PendingAck`] records where it starts) and closes the connection.
//!
//! A new fence condition is a change to `State::write_denied` (private) alone: both checks, the
//! background tasks (expiry, stream PINGs) and `NodeAdmin` status read it.
//!
//! Reads on a managed node that clients may take for the master are served under the same
//! lease as writes (lease reads, as etcd and TiKV serve them): once the lease has lapsed the
//! sentinels may have promoted another node and this one's data may be stale. Replicas serve
//! reads as Redis' do.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use vigil_resp::{Flags, Reply};

mod settle;
pub use settle::{PendingAck, Unacknowledged};

/// `-READONLY`: exactly Redis' wording (clients match it).
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
/// `-NOREPLICAS` (min_replicas_to_write), Redis' wording.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// `-READONLY` for a read on a managed node without a valid lease. Clients act on the prefix,
/// not the text: redis-py's Sentinel connections, for one, take `READONLY` as "the master
/// changed", disconnect and ask the sentinels again, which is what a client of a deposed master
/// must do. The text says why, since Redis' own speaks of writes.
pub const READONLY_READS: &str = "READONLY This node holds no valid master lease (deposed, fenced or not yet assigned a role): reads are refused too. Ask the sentinels for the current master.";
/// `-MASTERDOWN` (serve_stale_data = false), Redis' wording.
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// The longest a command is held for a lapsed lease to be renewed (see [`Gate::held_until`]).
const HOLD_MAX: Duration = Duration::from_secs(5);

/// What the node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Takes writes (subject to fencing and the lease in managed mode).
    Master,
    /// Follows `host:port`.
    Replica {
        /// The master's host.
        host: String,
        /// The master's port.
        port: u16,
    },
    /// Managed, not yet given a role: read-only.
    Unassigned,
}

/// Role, epoch, fence and lease: the gate's private state.
#[derive(Debug)]
struct State {
    role: Role,
    /// Managed by sentinels (epochs, lease, read-only boot).
    managed: bool,
    /// The highest epoch seen (persisted before it is acted on).
    epoch: u64,
    /// Fenced: read-only until promoted at a higher epoch.
    fenced: bool,
    /// The write lease ends here (monotonic clock); managed masters write only before it.
    lease_until: Option<Instant>,
    /// The last lease's length: the hold after a lapse ([`Gate::held_until`]).
    lease_len: Duration,
    /// Managed: reads too need the lease (`lease_reads`), and a lapse closes normal clients.
    lease_reads: bool,
    /// Whether the node served as a leased master when [`State::lapsed`] last looked.
    serving: bool,
}

impl State {
    fn new(
        managed: bool,
        lease_reads: bool,
        epoch: u64,
        replicaof: Option<(String, u16)>,
    ) -> State {
        let role = match (managed, replicaof) {
            (true, _) => Role::Unassigned,
            (false, Some((host, port))) => Role::Replica { host, port },
            (false, None) => Role::Master,
        };
        State {
            role,
            managed,
            epoch,
            fenced: false,
            lease_until: None,
            lease_len: Duration::ZERO,
            lease_reads: managed && lease_reads,
            serving: false,
        }
    }

    fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    /// Why a write may not be acknowledged now, as the error reply; `None` if it may. The one
    /// definition of "may write": every check of the gate comes here.
    fn write_denied(&self, now: Instant) -> Option<&'static str> {
        match self.role {
            Role::Master if !self.managed => None,
            Role::Master if !self.fenced && self.lease_until.is_some_and(|t| now < t) => None,
            _ => Some(READONLY),
        }
    }

    /// Why a read may not be served now; `None` if it may. Refused on a managed node that may
    /// present itself as the master (a master, or an unassigned node, which reports itself as
    /// one) unless it may also acknowledge writes: outside its lease another node may have
    /// been promoted and taken writes this one never saw.
    fn read_denied(&self, now: Instant) -> Option<&'static str> {
        if !self.lease_reads || matches!(self.role, Role::Replica { .. }) {
            return None;
        }
        self.write_denied(now).map(|_| READONLY_READS)
    }

    /// `true` exactly once per lapse (see [`Gate::lapsed`]).
    fn lapsed(&mut self, now: Instant, hold: bool) -> bool {
        // Commands held for a late renewal: still serving, nobody to send away yet.
        let serving = self.lease_reads
            && (self.write_denied(now).is_none() || (hold && self.held_until(now).is_some()));
        std::mem::replace(&mut self.serving, serving) && !serving
    }

    fn lease_remaining(&self, now: Instant) -> Duration {
        self.lease_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Extends the lease to `end`; a lease never shrinks.
    fn extend_lease(&mut self, end: Instant, now: Instant) {
        if self.lease_until.is_none_or(|t| end > t) {
            // Not a stale or repeated grant's: the hold follows the lease.
            self.lease_len = end.saturating_duration_since(now);
        }
        self.lease_until = Some(self.lease_until.map_or(end, |t| t.max(end)));
    }

    fn held_until(&self, now: Instant) -> Option<Instant> {
        let until = self.lease_until? + self.lease_len.min(HOLD_MAX);
        let lapsed = self.lease_reads && self.is_master() && !self.fenced;
        (lapsed && self.write_denied(now).is_some() && now < until).then_some(until)
    }
}

/// What the gate says about the node at one instant (for `NodeAdmin` status, `INFO`, `ROLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateView {
    /// The role.
    pub role: Role,
    /// Managed by sentinels.
    pub managed: bool,
    /// The highest epoch seen.
    pub epoch: u64,
    /// Fenced.
    pub fenced: bool,
    /// Lease time left.
    pub lease_remaining: Duration,
    /// Whether a write could be acknowledged now.
    pub writable: bool,
    /// Whether a read would be served now (`lease_reads`: only under the lease).
    pub readable: bool,
}

/// Why an epoch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EpochRefused {
    /// Lower than the node's: the caller's view of the cluster is stale.
    #[error(
        "stale epoch {epoch}: this node has seen epoch {current}; refresh the cluster state and retry"
    )]
    Stale {
        /// The epoch offered.
        epoch: u64,
        /// The node's.
        current: u64,
    },
    /// The newer epoch could not be made durable, so it is not acted on.
    #[error("cannot persist the epoch: {0}")]
    Persist(#[from] vigil_base::epoch::EpochFileError),
}

/// Why a lease renewal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRefused {
    /// Only a master holds a lease.
    #[error("this node is not a master; promote it first")]
    NotMaster,
    /// A fenced master stays fenced until promoted at a higher epoch.
    #[error("this node is fenced at epoch {epoch}; only a promotion at a higher epoch lifts that")]
    Fenced {
        /// The node's epoch.
        epoch: u64,
    },
}

/// A granted lease renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGranted {
    /// The node's epoch.
    pub epoch: u64,
    /// Lease time left after the renewal.
    pub remaining: Duration,
}

/// The write gate: role transitions and the checks before execution and at acknowledgement.
#[derive(Debug)]
pub struct Gate {
    state: RwLock<State>,
    /// A standalone master: every command may run with no role check (the hot path skips the
    /// lock and the clock). Written only by the transitions below, under the state lock.
    free_writes: AtomicBool,
    /// `min_replicas_to_write` and `min_replicas_max_lag` (milliseconds); `CONFIG SET`
    /// changes them, so they are atomics the hot path reads without a lock.
    min_replicas: (AtomicUsize, AtomicU64),
    /// Write replies need the acknowledgement check (managed mode or `sync_replicas`); fixed
    /// at start, like the settings it comes from.
    ack_checks: bool,
    /// Lease and fence events, for the metrics page: renewals, refusals, lapses, fences.
    events: [AtomicU64; 4],
    /// Woken by every transition and renewal: commands held for the lease look again.
    changed: tokio::sync::Notify,
    /// Woken by transitions only (not renewals): see [`Gate::transitioned`].
    transitions: tokio::sync::Notify,
}

/// Lease and fence events since start (see [`Gate::counters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateCounters {
    /// Lease renewals granted.
    pub renewals: u64,
    /// Lease renewals refused.
    pub refusals: u64,
    /// Times the node stopped serving as a leased master.
    pub lapses: u64,
    /// Fences received.
    pub fences: u64,
}

impl Gate {
    /// The initial gate: standalone nodes are masters (or replicas of `replicaof`), managed
    /// nodes wait for the sentinels.
    pub fn new(
        managed: bool,
        lease_reads: bool,
        epoch: u64,
        replicaof: Option<(String, u16)>,
        min_replicas: (usize, Duration),
        sync_replicas: usize,
    ) -> Gate {
        let state = State::new(managed, lease_reads, epoch, replicaof);
        let free = state.is_master() && !managed;
        Gate {
            state: RwLock::new(state),
            free_writes: AtomicBool::new(free),
            min_replicas: (
                AtomicUsize::new(min_replicas.0),
                AtomicU64::new(min_replicas.1.as_millis() as u64),
            ),
            ack_checks: managed || sync_replicas > 0,
            events: Default::default(),
            changed: tokio::sync::Notify::new(),
            transitions: tokio::sync::Notify::new(),
        }
    }

    /// Follows `CONFIG SET min-replicas-to-write` / `min-replicas-max-lag`.
    pub fn set_min_replicas(&self, n: usize, max_lag: Duration) {
        self.min_replicas.0.store(n, Ordering::Relaxed);
        self.min_replicas
            .1
            .store(max_lag.as_millis() as u64, Ordering::Relaxed);
    }

    // ---- reading the state ----

    /// Lease and fence events since start.
    pub fn counters(&self) -> GateCounters {
        let n = |i: usize| self.events[i].load(Ordering::Relaxed);
        GateCounters {
            renewals: n(0),
            refusals: n(1),
            lapses: n(2),
            fences: n(3),
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.state.read().role.clone()
    }

    /// Whether the node is a master (possibly fenced or without a lease).
    pub fn is_master(&self) -> bool {
        self.state.read().is_master()
    }

    /// Managed by the sentinels.
    pub fn managed(&self) -> bool {
        self.state.read().managed
    }

    /// The highest epoch seen.
    pub fn epoch(&self) -> u64 {
        self.state.read().epoch
    }

    /// Whether a write could be acknowledged at `now`. Background writers (active expiry,
    /// stream PINGs) ask this under the store lock: a fenced master's history must not grow.
    pub fn may_write(&self, now: Instant) -> bool {
        self.state.read().write_denied(now).is_none()
    }

    /// Whether the node leads its shard as far as it knows: a master, not fenced, its lease
    /// current or lapsed. A lapse alone is often a late renewal on a loaded machine, not a
    /// failover: work that outlives one (a slot migration) waits through it instead of ending.
    pub fn leads(&self) -> bool {
        let s = self.state.read();
        s.is_master() && !s.fenced
    }

    /// Whether write replies need [`Gate::settle`] (managed mode or `sync_replicas`).
    pub fn ack_checks(&self) -> bool {
        self.ack_checks
    }

    /// Everything at once, consistently.
    pub fn view(&self, now: Instant) -> GateView {
        let s = self.state.read();
        GateView {
            role: s.role.clone(),
            managed: s.managed,
            epoch: s.epoch,
            fenced: s.fenced,
            lease_remaining: s.lease_remaining(now),
            writable: s.write_denied(now).is_none(),
            readable: s.read_denied(now).is_none(),
        }
    }

    /// Whether this node, routed to as its shard's master, serves a command at `now`: as the
    /// master, a write with the lease to write, a read with the lease to read (or a shard
    /// channel command, `pubsub`, without one). `Err` is the role it has instead (a master
    /// without the lease it needs: `Role::Master`). One read of the state: the routing hot path.
    pub fn serves_as_master(&self, now: Instant, write: bool, pubsub: bool) -> Result<(), Role> {
        let (s, now) = self.state_at(now);
        match s.role {
            Role::Master
                if s.write_denied(now).is_none()
                    || (!write && (pubsub || s.read_denied(now).is_none())) =>
            {
                Ok(())
            }
            ref role => Err(role.clone()),
        }
    }

    /// The state, with `now` read again if taking it waited (a lease renewal or a fence held
    /// it): a lease judged on a reading from before the wait may have run out since.
    fn state_at(&self, now: Instant) -> (parking_lot::RwLockReadGuard<'_, State>, Instant) {
        match self.state.try_read() {
            Some(s) => (s, now),
            None => (self.state.read(), Instant::now()),
        }
    }

    // ---- 1. before a command runs ----

    /// Whether a command with `flags` may run at `now`: writes need a master that may acknowledge
    /// them (and `min_replicas_to_write` replicas no older than the lag, counted by
    /// `good_replicas`); reads on a managed node that is not a replica need the same lease
    /// (`lease_reads`); a replica serves only STALE commands while `master_link_ok` says no.
    /// `Ok` says whether lookups must hide expired keys instead of deleting them (on a node
    /// that takes no writes the master's DEL arrives in the stream). Call under the store lock.
    /// One read of the state per command: this is the hot path, and a master that may write
    /// pays nothing more for reads.
    pub fn admit(
        &self,
        flags: Flags,
        now: Instant,
        good_replicas: impl FnOnce(Duration) -> usize,
        master_link_ok: impl FnOnce() -> bool,
    ) -> Result<bool, Reply> {
        self.admit_as(flags, now, false, good_replicas, master_link_ok)
    }

    /// [`Gate::admit`], and with `master` only as the master (`READONLY` otherwise): a cluster
    /// command routed here as the shard's master, in one read of the state where
    /// [`Gate::serves_as_master`] and `admit` would take two. Said `Ok`, both would have.
    pub fn admit_as(
        &self,
        flags: Flags,
        now: Instant,
        master: bool,
        good_replicas: impl FnOnce(Duration) -> usize,
        master_link_ok: impl FnOnce() -> bool,
    ) -> Result<bool, Reply> {
        let min_replicas = self.min_replicas.0.load(Ordering::Relaxed);
        if min_replicas == 0 && !master && self.free_writes.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let (s, now) = self.state_at(now);
        if master && !matches!(s.role, Role::Master) {
            return Err(Reply::error(READONLY));
        }
        let denied = s.write_denied(now);
        if flags.has(Flags::WRITE) {
            if let Some(e) = denied {
                return Err(Reply::error(e));
            }
            let lag = Duration::from_millis(self.min_replicas.1.load(Ordering::Relaxed));
            if min_replicas > 0 && good_replicas(lag) < min_replicas {
                return Err(Reply::error(NOREPLICAS));
            }
        } else if denied.is_some()
            && let Some(e) = s.read_denied(now)
        {
            return Err(Reply::error(e));
        } else if matches!(s.role, Role::Replica { .. })
            && !flags.has(Flags::STALE)
            && !master_link_ok()
        {
            return Err(Reply::error(MASTERDOWN));
        }
        Ok(denied.is_some())
    }

    // ---- 2. when the reply leaves: [`Gate::settle`], in `settle.rs` ----

    // ---- transitions (callers hold the store lock, so no command straddles one) ----

    /// Becomes a master (fence and lease untouched); `true` if it was not one.
    pub fn promote(&self) -> bool {
        let mut s = self.state.write();
        let changed = !s.is_master();
        s.role = Role::Master;
        self.free_writes.store(!s.managed, Ordering::Relaxed);
        self.transition();
        changed
    }

    /// After a promotion by the sentinels: lifts the fence and extends the lease to `lease`.
    pub fn lift_fence(&self, lease: Option<Instant>) {
        let mut s = self.state.write();
        s.fenced = false;
        if let Some(l) = lease {
            s.extend_lease(l, Instant::now());
        }
        self.transition();
    }

    /// Follows `host:port`: no writes, no lease.
    pub fn follow(&self, host: String, port: u16) {
        let mut s = self.state.write();
        s.role = Role::Replica { host, port };
        s.lease_until = None;
        self.free_writes.store(false, Ordering::Relaxed);
        self.transition();
    }

    /// Fences the node: no write is acknowledged until a promotion lifts it.
    pub fn fence(&self) {
        self.events[3].fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.write();
        s.fenced = true;
        s.lease_until = None;
        self.transition();
    }

    /// Extends a master's lease to `end` (a lease never shrinks).
    pub fn renew_lease(&self, end: Instant, now: Instant) -> Result<LeaseGranted, LeaseRefused> {
        let mut s = self.state.write();
        if !s.is_master() || s.fenced {
            self.events[1].fetch_add(1, Ordering::Relaxed);
        }
        if !s.is_master() {
            return Err(LeaseRefused::NotMaster);
        }
        if s.fenced {
            return Err(LeaseRefused::Fenced { epoch: s.epoch });
        }
        self.events[0].fetch_add(1, Ordering::Relaxed);
        s.extend_lease(end, now);
        self.changed.notify_waiters();
        Ok(LeaseGranted {
            epoch: s.epoch,
            remaining: s.lease_remaining(now),
        })
    }

    /// Until when a command that needs the lease is held rather than refused: on a managed
    /// master with `lease_reads`, unfenced, whose lease ran out less than one lease length ago
    /// (at most [`HOLD_MAX`]). Why and how: [`crate::hold`].
    pub fn held_until(&self, now: Instant) -> Option<Instant> {
        self.state.read().held_until(now)
    }

    /// Resolves at the next change of role or fence (not at a lease renewal, which a master
    /// gets twenty times a second).
    pub fn transitioned(&self) -> tokio::sync::futures::Notified<'_> {
        self.transitions.notified()
    }

    fn transition(&self) {
        self.changed.notify_waiters();
        self.transitions.notify_waiters();
    }

    /// Waits until the lease is back, the node changed role or fence, or `until`.
    pub async fn lease_back(&self, until: Instant) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable(); // before the check: a renewal between is not missed
            if self.held_until(Instant::now()).is_none() {
                return;
            }
            if tokio::time::timeout_at(until.into(), changed)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Accepts `epoch` from the sentinels: refuses a lower one; makes a higher one durable in
    /// `dir` before adopting it. `Ok(true)` if the epoch advanced. Callers serialise calls
    /// (NodeAdmin does), so the check and the adoption do not interleave with another's.
    pub fn accept_epoch(&self, epoch: u64, dir: &Path) -> Result<bool, EpochRefused> {
        let current = self.epoch();
        if epoch < current {
            return Err(EpochRefused::Stale { epoch, current });
        }
        if epoch == current {
            return Ok(false);
        }
        vigil_base::epoch::save(dir, epoch)?;
        let mut s = self.state.write();
        s.epoch = s.epoch.max(epoch);
        Ok(true)
    }

    /// Notes whether the node serves as a leased master now; `true` exactly once per lapse,
    /// when a node that did stops (lease run out and not renewed within the hold of
    /// [`Gate::held_until`], fenced, demoted): the moment to close its
    /// normal clients, so that they ask the sentinels for the master again instead of waiting
    /// on a node that refuses them. Always `false` without `lease_reads`.
    /// `hold`: whether commands are held for a late renewal (not in cluster mode).
    pub fn lapsed(&self, now: Instant, hold: bool) -> bool {
        let lapsed = self.state.write().lapsed(now, hold);
        if lapsed {
            self.events[2].fetch_add(1, Ordering::Relaxed);
        }
        lapsed
    }
}

#[cfg(test)]
mod tests;
