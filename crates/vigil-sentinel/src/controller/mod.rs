//! The leader's duties for every group:
//!
//! - **First master**: a group without one gets the most up-to-date reachable node (priority 0
//!   never), committed with an `AssignMaster` compare-and-swap, then promoted with a lease.
//! - **Steady state**: the committed master's write lease is renewed, but only after a ReadIndex
//!   confirmed that this sentinel still leads; replicas that drifted (wrong master, older
//!   epoch, unassigned after a restart) are pointed back at it. A returning old master is
//!   demoted the same way, and the bytes of history it had that the new master never got (its
//!   divergent writes, async mode only) are counted in its `+convert-to-slave` event.
//! - **Failover**: when the master has been down for `down_after` here and for at least
//!   `quorum` sentinels (their fresh opinions), the best replica is chosen and a
//!   `BeginFailover` compare-and-swap commits the new epoch *before* anything is done. Then,
//!   idempotently from the committed state (so a new leader resumes it): fence the old master
//!   (best effort), wait until every lease it could hold has surely expired, `Promote` the
//!   candidate (refused below `min_offset`), commit `Promoted` (clients now get the new master),
//!   repoint the other nodes `parallel_syncs` at a time, commit `CompleteFailover`. A failover
//!   that does not finish within `failover_timeout` is aborted; the next attempt (at a higher
//!   epoch) skips the candidate that failed.
//!
//! Pace: the leader looks every [`WATCH`] for work that is due — a master down, a failover in
//!   flight, a lease to renew (every eighth of the lease, at least every 100 ms, up to one
//!   [`WATCH`] early to join the other groups' round) — and goes on at once
//!   after a step that committed, so a failover takes a few milliseconds after ODOWN.
//!
//! - **Switchover**: an operator's failover first asks the old master to hand over itself
//!   ([`NodeAdmin::hand_over`]: Redis' `FAILOVER` on a stock server, zero loss); a node that
//!   cannot takes the fence-and-promote path above, where the candidate is promoted only at
//!   the fenced master's final offset.
//! - **Agentless groups** (`driver = "resp"`, stock servers without a lease): the same steps;
//!   there is no lease to wait out, so a failover promotes as soon as it begins.
//!
//! - **A master that restarted behind its replicas** (it lost the tail of its log, so promoting
//!   it again would wipe writes its replicas hold) is a failed master: the leader fails over at
//!   once, with the same candidate rules and epoch discipline, without waiting for `down_after`
//!   or a quorum (the node itself reports that it is no longer the master it was).
//!
//! Lease arithmetic: the lease is `down_after` less one probe interval and a clock margin, so
//! by the time a master is seen down (`down_after` after its last good probe, which comes at
//! most a probe interval before the last status a lease was granted from) every lease it was
//! granted has ended and promotion need not wait; and it is long enough to outlast a Raft
//! election, so the death of the sentinel leader does not pause writes while its successor is
//! elected (it renews as soon as it leads). Node clocks are read *before* leadership is
//! confirmed, and a lease runs from such a reading, so it ends before (time the reading arrived
//! here + ttl). A leader that granted nothing itself (it is new) waits the group's committed
//! lease (`Group::lease_ms`) after it became leader: every grant of an earlier leader was
//! confirmed by a heartbeat acknowledged before this leader's election, and no leader grants
//! more than the committed lease (a longer one is committed first).
//!
//! Layout: [`decide`] holds the pure decisions (no IO; table-driven tests); `steady` the
//! steady-state duties and the first master; `failover` ODOWN and the failover steps (a
//! switchover's too); `switchover` begins an operator's switchover; this module the loop and
//! what the leader keeps per group. Nodes are reached only through [`NodeAdmin`] and the
//! other sentinels' opinions only through [`Opinions`], so the whole controller runs against
//! fakes in process (`tests/failover_cluster.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;
use vigil_proto::node::{FenceRequest, NodeStatus, RenewLeaseRequest};

use crate::driver::Handle;
use crate::events::{Event, Events};
use crate::monitor::Health;
use crate::nodes::NodeAdmin;
use crate::peers::Opinions;
use crate::state::{Driver, Group};

pub mod decide;
mod failover;
mod steady;
mod switchover;

pub use switchover::{SwitchoverError, switchover};

use crate::monitor::probe_interval;
pub use decide::{Observed, choose_candidate, lease, renew_every};
use decide::{serves, status_timeout};
pub use steady::observe;
use steady::{assign_first_master, settled};

/// The longest time between two rounds of a healthy group (first-master attempts, drift fixes).
pub const ROUND: Duration = Duration::from_millis(100);
/// How often the leader looks for work that is due.
const WATCH: Duration = Duration::from_millis(10);
/// How long the first observation of a round waits for the others (each group's nodes are
/// asked at once, so they usually arrive within a millisecond): one ReadIndex then confirms
/// them all, where each is a heartbeat round trip to every other sentinel. A group whose node
/// is slow to answer does not hold the others' renewals longer than this.
const JOIN: Duration = Duration::from_millis(2);
/// How long a proposal may take before the step is retried.
const PROPOSE: Duration = Duration::from_secs(2);

/// Per group, what the leader is doing or waiting for, in words (`ListGroups.status`).
pub type Conditions = Arc<parking_lot::RwLock<HashMap<String, String>>>;

/// What the controller keeps about one group (never replicated; a new leader starts afresh).
#[derive(Default)]
struct Local {
    /// When the group was last tended.
    last_round: Option<Instant>,
    /// Every lease this leader granted in the group ends before this.
    lease_bound: Option<Instant>,
    /// The highest offset the master reported as acknowledged by its sync replicas.
    acked: u64,
    /// The master `+odown` was announced for (the current outage).
    odown: Option<String>,
    /// "No eligible replica" was announced for the current outage.
    no_good: bool,
    /// Candidates that failed during the current outage (skipped by the next attempt).
    excluded: HashSet<String>,
    /// The failover in flight (epoch) and when this leader first saw it.
    failover_seen: Option<(u64, Instant)>,
    /// Nodes sent `ReplicateFrom` during the failover in flight, not yet seen in sync.
    reconf: HashSet<String>,
    /// The group's last failover (its `last_failover_ms` marker) and when this sentinel saw it
    /// committed: `min_failover_interval` runs from then, on this sentinel's monotonic clock.
    last_failover: Option<(u64, Instant)>,
    /// Per lease length (ms) this leader granted, when the last such grant ends: a shorter
    /// committed lease may replace a longer one only once every longer grant has ended.
    grants: std::collections::BTreeMap<u64, Instant>,
    /// The master announced as restarted behind its replicas (logged once per occurrence).
    behind: Option<String>,
    /// Since when a sync-mode failover from a master (at an epoch) has waited for a
    /// replica's offset (see `Controller::awaited_replica`); cleared when the master serves
    /// or is not seen down.
    unseen_since: Option<((String, u64), Instant)>,
    /// When the statuses of the group's last round were asked for.
    round_asked: Option<Instant>,
}

/// Where the controller counts what it sends (the metrics endpoint's counters), kept as a trait
/// so the controller does not depend on the metrics module.
pub trait LeaseCounters: Send + Sync {
    /// A lease renewal sent to `group`'s master, granted or not.
    fn renewal(&self, group: &str, ok: bool);
    /// A fence sent for `group`'s failover, answered fenced or not.
    fn fence(&self, group: &str, ok: bool);
    /// A master of `group` found with its lease run out.
    fn lease_expired(&self, group: &str);
}

/// Counts nothing (no metrics endpoint).
struct NoCounters;

impl LeaseCounters for NoCounters {
    fn renewal(&self, _: &str, _: bool) {}
    fn fence(&self, _: &str, _: bool) {}
    fn lease_expired(&self, _: &str) {}
}

/// The leader's controller.
pub struct Controller {
    raft: Handle,
    nodes: Arc<dyn NodeAdmin>,
    health: Arc<Health>,
    peers: Arc<dyn Opinions>,
    events: Events,
    conditions: Conditions,
    /// Renewals, fences and expiries, counted for the metrics endpoint.
    counters: Arc<dyn LeaseCounters>,
    /// When this sentinel became leader (`None` while it does not lead).
    leader_since: Option<Instant>,
    local: HashMap<String, Local>,
}

impl Controller {
    /// A controller for this sentinel.
    pub fn new(
        raft: Handle,
        nodes: Arc<dyn NodeAdmin>,
        health: Arc<Health>,
        peers: Arc<dyn Opinions>,
        conditions: Conditions,
    ) -> Controller {
        let events = raft.events.clone();
        Controller {
            raft,
            nodes,
            health,
            peers,
            events,
            conditions,
            counters: Arc::new(NoCounters),
            leader_since: None,
            local: HashMap::new(),
        }
    }

    /// Counts renewals, fences and lease expiries in `counters` (those of the metrics
    /// endpoint) rather than in counters of its own.
    pub fn with_counters(mut self, counters: Arc<dyn LeaseCounters>) -> Controller {
        self.counters = counters;
        self
    }

    /// Renews the lease of `g`'s master (`st`: its status this round), counting the renewal
    /// and a lease found run out. The one place renewals are sent from.
    async fn renew(
        &self,
        g: &Group,
        admin: &str,
        st: &NodeStatus,
        req: RenewLeaseRequest,
    ) -> Result<(), Status> {
        let name = &g.spec.name;
        // Stock servers over RESP hold no lease: their "renewals" are not counted.
        let leased = g.spec.driver != Driver::Resp;
        if leased && st.lease_remaining_ms == 0 {
            self.counters.lease_expired(name);
        }
        let r = self.nodes.renew_lease(admin, req).await;
        if leased {
            self.counters.renewal(name, r.is_ok());
        }
        r
    }

    /// Fences the node at `admin` at `epoch` for `group`'s failover, within the status
    /// timeout, counting the fence (ok when it answered fenced at `epoch` or later). The one
    /// place fences are sent from.
    async fn fence(
        &self,
        g: &Group,
        admin: &str,
        epoch: u64,
    ) -> Result<Result<NodeStatus, Status>, tokio::time::error::Elapsed> {
        let r = tokio::time::timeout(
            status_timeout(&g.spec.settings),
            self.nodes.fence(admin, FenceRequest { epoch }),
        )
        .await;
        let ok = matches!(&r, Ok(Ok(st)) if st.fenced && st.epoch >= epoch);
        self.counters.fence(&g.spec.name, ok);
        r
    }

    fn local(&mut self, group: &str) -> &mut Local {
        self.local.entry(group.to_string()).or_default()
    }

    /// Notes, on every sentinel, when each group's last failover was committed.
    fn note_failovers(&mut self, groups: &[Group]) {
        for g in groups {
            let l = self.local(&g.spec.name);
            if g.last_failover_ms > 0 && l.last_failover.map(|x| x.0) != Some(g.last_failover_ms) {
                l.last_failover = Some((g.last_failover_ms, Instant::now()));
            }
        }
        let names: HashSet<&str> = groups.iter().map(|g| g.spec.name.as_str()).collect();
        self.local.retain(|k, _| names.contains(k.as_str()));
    }

    /// Records what the leader is doing about `group`.
    fn say(&self, group: &str, text: impl Into<String>) {
        self.conditions
            .write()
            .insert(group.to_string(), text.into());
    }

    /// Forgets what only a leader may rely on.
    fn step_down(&mut self) {
        self.leader_since = None;
        self.conditions.write().clear();
        for l in self.local.values_mut() {
            let last_failover = l.last_failover;
            *l = Local {
                last_failover,
                ..Local::default()
            };
        }
    }

    /// Whether `g` needs the leader's attention now.
    fn due(&mut self, g: &Group) -> bool {
        let s = &g.spec.settings;
        let down_after = Duration::from_millis(s.down_after_ms);
        let master_down = g.master.as_ref().is_some_and(|m| {
            self.health
                .sdown(&g.spec.name, m, down_after, g.epoch, &self.events)
        });
        let every = if g.master.is_none() {
            ROUND
        } else {
            renew_every(s)
        };
        let l = self.local(&g.spec.name);
        if let Some(m) = l
            .odown
            .take_if(|m| !master_down || g.master.as_ref() != Some(m))
        {
            l.no_good = false;
            l.excluded.clear();
            self.events.emit(Event::local(
                "-odown",
                &g.spec.name,
                &m,
                g.epoch,
                String::new(),
            ));
            return true;
        }
        g.failover.is_some() || master_down || l.last_round.is_none_or(|t| t.elapsed() >= every)
    }

    /// Whether steady `g`, not due yet, would be due before the next look: it joins a round
    /// that is starting anyway, a renewal at most one [`WATCH`] early, so the groups keep one
    /// pace and share one confirmation instead of each taking its own.
    fn nearly_due(&mut self, g: &Group) -> bool {
        if g.failover.is_some() || g.master.is_none() {
            return false;
        }
        let every = renew_every(&g.spec.settings);
        self.local(&g.spec.name)
            .last_round
            .is_some_and(|t| t.elapsed() + WATCH >= every)
    }
}

/// Runs until `shutdown`.
pub async fn run(mut c: Controller, shutdown: CancellationToken) {
    let mut again = false;
    let mut leading = c.raft.leading.clone();
    let mut changes = c.raft.events.subscribe();
    let (mut leading_open, mut changes_open) = (true, true);
    let mut was_leading = false;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let leads = *leading.borrow_and_update();
        if was_leading && !leads {
            // Unread while leading: start from now, not from a backlog of old changes.
            changes = changes.resubscribe();
        }
        was_leading = leads;
        if !again || !leads {
            // The leader looks for due work every WATCH. A follower has none: it wakes when it
            // becomes leader (at once, as the masters' leases wait for its first renewal) and
            // when the committed state changes (to note failovers, `note_failovers`), or at
            // least every ROUND.
            tokio::select! {
                _ = tokio::time::sleep(if leads { WATCH } else { ROUND }) => {}
                r = leading.changed(), if !leads && leading_open => leading_open = r.is_ok(),
                r = changes.recv(), if !leads && changes_open => {
                    changes_open =
                        !matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed));
                }
                _ = shutdown.cancelled() => return,
            }
        }
        again = false;
        let groups: Vec<Group> = c.raft.state.read().groups.values().cloned().collect();
        c.note_failovers(&groups);
        let (is_leader, me) = {
            let s = c.raft.status.read();
            (s.is_leader, s.id)
        };
        if !is_leader {
            // Whatever this sentinel granted stays bounded by the next leader's wait.
            c.step_down();
            continue;
        }
        let since = *c.leader_since.get_or_insert_with(Instant::now);
        let (mut due, rest): (Vec<Group>, Vec<Group>) = groups.into_iter().partition(|g| c.due(g));
        if due.is_empty() {
            continue;
        }
        due.extend(rest.into_iter().filter(|g| c.nearly_due(g)));
        // Every group at once: a slow node of one group (cut off, not yet held down) must not
        // delay the lease renewals of the others (a sharded cluster's shards).
        let mut set = tokio::task::JoinSet::new();
        for g in due {
            // A node this sentinel holds down is not asked: a paused or cut-off one would hold
            // every step of a failover for the whole timeout (the probes notice its return).
            let (health, nodes) = (c.health.clone(), c.nodes.clone());
            set.spawn(async move {
                let name = g.spec.name.clone();
                let timeout = status_timeout(&g.spec.settings);
                let seen = g
                    .master
                    .as_ref()
                    .map_or(0, |m| health.master_offset(&name, m));
                let skip = |n: &str| health.is_sdown(&name, n);
                let down_after = Duration::from_millis(g.spec.settings.down_after_ms);
                // The probes bring a replica's status every other interval: three intervals
                // cover that with room for a slow answer.
                let known = settled(&health, &g, 3 * probe_interval(down_after));
                let h = Some(&health);
                let mut asked = Instant::now();
                let mut o = observe(&nodes, &g, timeout, skip, seen, h, &known).await;
                let mi = g
                    .spec
                    .nodes
                    .iter()
                    .position(|n| g.master.as_ref() == Some(&n.name));
                let serving = mi
                    .and_then(|i| o[i].as_ref())
                    .is_some_and(|(s, _)| serves(&g, s));
                if known.iter().any(Option::is_some) && !serving {
                    // The master stopped serving (or did not answer): what to do about it
                    // needs every replica's offset of this moment.
                    asked = Instant::now();
                    o = observe(&nodes, &g, timeout, skip, seen, h, &Vec::new()).await;
                }
                (g, o, asked)
            });
        }
        // Each steady group is tended as soon as its batch is observed (groups in a failover
        // last, as their steps are slow). Leadership is confirmed after each batch of
        // observations arrived (those within JOIN of its first), so a lease renewed from one
        // starts before the confirmation, which a next leader's wait covers.
        let mut failing = Vec::new();
        let mut confirmed = true;
        while let Some(first) = set.join_next().await {
            let mut batch = vec![first];
            let joined = tokio::time::Instant::now() + JOIN;
            while let Ok(Some(more)) = tokio::time::timeout_at(joined, set.join_next()).await {
                batch.push(more);
            }
            if c.raft.read_index(ROUND * 3).await.is_err() {
                confirmed = false;
                break;
            }
            for done in batch {
                match done {
                    Ok((g, o, asked)) if g.failover.is_some() => failing.push((g, o, asked)),
                    Ok((g, o, asked)) => again |= c.tend(me, &g, &o, asked, since).await,
                    Err(e) => tracing::error!("observing a group failed: {e}"),
                }
            }
        }
        if confirmed {
            for (g, o, asked) in failing {
                again |= c.tend(me, &g, &o, asked, since).await;
            }
        }
    }
}

impl Controller {
    /// [`Controller::tend_group`] in the group's span, noting the round.
    async fn tend(
        &mut self,
        me: u64,
        g: &Group,
        o: &Observed,
        asked: Instant,
        since: Instant,
    ) -> bool {
        let l = self.local(&g.spec.name);
        l.last_round = Some(Instant::now());
        l.round_asked = Some(asked);
        let span =
            tracing::info_span!("group", sentinel = me, group = %g.spec.name, epoch = g.epoch);
        self.tend_group(g, o, since).instrument(span).await
    }

    /// One round for one group; returns whether a step committed (go on at once).
    async fn tend_group(&mut self, g: &Group, o: &Observed, since: Instant) -> bool {
        match (&g.failover, g.master.clone()) {
            (Some(f), _) => self.drive_failover(g, f, o, since).await,
            (None, None) => {
                self.say(&g.spec.name, "no master yet: assigning the first one");
                assign_first_master(&self.raft, g, o).await
            }
            (None, Some(m)) => {
                if let Some(began) = self.maybe_begin_failover(g, &m, o).await {
                    return began;
                }
                if let Some(began) = self.replace_if_restarted_behind(g, &m, o).await {
                    return began;
                }
                self.keep_master(g, &m, o, since).await;
                false
            }
        }
    }
}
