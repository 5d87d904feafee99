//! Every sentinel probes every node of every group: a RESP `PING` on the data port (as clients
//! see the node) and `NodeAdmin.GetStatus`. A node answers well when both succeed in time; it is
//! subjectively down (SDOWN) for this sentinel after `down_after` without a good answer
//! (`+sdown` / `-sdown` events). The leader asks the others for their opinion before a
//! failover; opinions are not logged.
//!
//! Probes start every quarter `down_after` of the quickest group, between 20 and 100 ms, on a
//! fixed cadence (a node whose last probe is still out is skipped, never holding up the
//! others), so a node is seen down within a quarter `down_after` of its last answer.
//!
//! A probe asks for the status only when this sentinel has had none from the node, answered
//! within a probe's timeout, for one and a half probe intervals: every other probe asks, the
//! others send only the PING, which still finds a node that stops answering at the probes'
//! full cadence (an admin port that stalls while the data port answers is seen one interval
//! later). The leader's controller asks each master for its status at each lease renewal
//! (every 100 ms with the default lease), and such a status counts the same, so the leader's
//! probes of a master send only the PING. Replicas the controller asks only when their last
//! status here is older than three probe intervals or shows something to do
//! (`controller::steady::settled`), so the probes keep asking them.
//!
//! TILT, as Redis Sentinel names it: two probe rounds [`TILT_TRIGGER`] or more apart mean this
//! sentinel itself stalled (SIGSTOP, a VM pause, swapping), and the probes that were out
//! across the stall timed out on its clock, not the node's. The sentinel then forgets every
//! unanswered probe and counts each node's silence afresh from probes sent after the stall.
//! It stays in TILT (`+tilt`, `-tilt`, `INFO`'s `sentinel_tilt`) until the longest
//! `down_after` has passed with rounds on time, when every judgement rests on probes sent
//! since; meanwhile (and from the stall until its first round) no node's SDOWN changes and
//! its opinion to the leader is "not down", as Redis Sentinel answers in TILT.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vigil_proto::node::NodeStatus;

use crate::driver::Handle;
use crate::events::Event;
use crate::nodes::NodeAdmin;

/// The longest interval between two probes of a node.
pub const PROBE: Duration = Duration::from_millis(100);
/// The shortest.
const PROBE_MIN: Duration = Duration::from_millis(20);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// A gap this long between two probe rounds is a stall of this sentinel (Redis Sentinel's
/// TILT trigger, 2 s, as there).
pub const TILT_TRIGGER: Duration = Duration::from_secs(2);

/// How often the nodes of a group with this `down_after` are probed (at most; a quicker group
/// on the same sentinel makes it more often).
pub fn probe_interval(down_after: Duration) -> Duration {
    (down_after / 4).clamp(PROBE_MIN, PROBE)
}

/// A node's status, when it arrived, and when it was asked for.
type Seen = (NodeStatus, Instant, Instant);

/// This sentinel's view of the nodes' health.
pub struct Health {
    last_ok: Mutex<HashMap<(String, String), Instant>>,
    /// When the first probe since the last good answer left, less one probe interval: a
    /// node is judged only on probes that were actually sent, so a sentinel starved of CPU
    /// (its probes late) does not take its own silence for the node's.
    asked: Mutex<HashMap<(String, String), Instant>>,
    /// Nodes this sentinel has announced `+sdown` for.
    sdown: Mutex<std::collections::HashSet<(String, String)>>,
    /// Per group, the highest offset a master reported as acknowledged by its sync replicas:
    /// every sentinel keeps it, so a new leader knows what a candidate must have.
    acked: Mutex<HashMap<String, u64>>,
    /// The last status each node reported to this sentinel (its probes, or its controller
    /// while it leads) and when it arrived: for the Sentinel protocol's records (run id,
    /// role, offsets, link). A later arrival replaces an earlier one, never the reverse.
    statuses: Mutex<HashMap<(String, String), Seen>>,
    /// When this sentinel last had each node's status in a probe's time, from its probes or
    /// (it leads) its controller: the next probe need not ask again.
    had: Mutex<HashMap<(String, String), Instant>>,
    tilt: Mutex<Tilt>,
}

/// When the probes last ran, and when the last stall ended if this sentinel is in TILT
/// (what Redis' `sentinel_tilt_since_seconds` counts from).
#[derive(Default)]
struct Tilt {
    last_round: Option<Instant>,
    since: Option<Instant>,
}

impl Health {
    /// No node seen yet.
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            last_ok: Mutex::new(HashMap::new()),
            asked: Mutex::default(),
            sdown: Mutex::default(),
            acked: Mutex::default(),
            statuses: Mutex::default(),
            had: Mutex::default(),
            tilt: Mutex::default(),
        })
    }

    /// How long this sentinel has been in TILT, if it is.
    pub fn tilt(&self) -> Option<Duration> {
        self.tilt.lock().since.map(|t| t.elapsed())
    }

    /// Whether this sentinel is in TILT, or its probes have not run for [`TILT_TRIGGER`] (it
    /// is stalled, or has just resumed and not yet run a round): either way its clocks say
    /// nothing new about the nodes.
    fn tilted(&self) -> bool {
        let t = self.tilt.lock();
        t.since.is_some() || t.last_round.is_some_and(|l| l.elapsed() >= TILT_TRIGGER)
    }

    /// A probe round begins at `now`; `settle` is the longest `down_after`. Returns whether
    /// this sentinel stalled since the last round, forgetting every unanswered probe if so,
    /// and announces entering and leaving TILT.
    fn round(&self, now: Instant, settle: Duration, events: &crate::events::Events) -> bool {
        let mut t = self.tilt.lock();
        let stalled = t
            .last_round
            .is_some_and(|l| now.saturating_duration_since(l) >= TILT_TRIGGER);
        t.last_round = Some(now);
        if stalled {
            self.asked.lock().clear();
            if t.since.is_none() {
                events.emit(Event::local(
                    "+tilt",
                    "",
                    "",
                    0,
                    "#tilt mode entered".into(),
                ));
            }
            t.since = Some(now);
        } else if t
            .since
            .is_some_and(|s| now.saturating_duration_since(s) >= settle)
        {
            t.since = None;
            events.emit(Event::local("-tilt", "", "", 0, "#tilt mode exited".into()));
        }
        stalled
    }

    /// How long `node` of `group` has gone without a good answer: since its last one, or since
    /// this sentinel began probing it if it never answered (zero before that: a node not yet
    /// probed is not known to be down — counting from the sentinel's start instead made a
    /// group monitored a second later fail over its brand-new master at once).
    pub fn down_for(&self, group: &str, node: &str) -> Duration {
        self.last_ok
            .lock()
            .get(&(group.to_string(), node.to_string()))
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// How long `node` of `group` has been silent to probes that were sent: its time without
    /// a good answer ([`Health::down_for`]), but counted at the earliest from one probe
    /// interval before the first probe sent since that answer. On time this is `down_for`;
    /// when this sentinel's probes ran late, the gap before them is not held against the
    /// node. Zero in TILT. What SDOWN, the failover checks and opinions judge by.
    pub fn unanswered_for(&self, group: &str, node: &str) -> Duration {
        if self.tilted() {
            return Duration::ZERO;
        }
        let key = (group.to_string(), node.to_string());
        let Some(asked) = self.asked.lock().get(&key).copied() else {
            return Duration::ZERO;
        };
        self.down_for(group, node).min(asked.elapsed())
    }

    /// A probe of a node is about to leave (`every` apart): starts its clocks if they are not
    /// running.
    fn probing(&self, group: &str, node: &str, every: Duration) {
        let key = (group.to_string(), node.to_string());
        let now = Instant::now();
        self.last_ok.lock().entry(key.clone()).or_insert(now);
        self.asked
            .lock()
            .entry(key)
            .or_insert_with(|| now.checked_sub(every).unwrap_or(now));
    }

    /// The highest acknowledged offset seen from a master of `group`.
    pub fn acked(&self, group: &str) -> u64 {
        self.acked.lock().get(group).copied().unwrap_or(0)
    }

    /// The last status `node` of `group` reported here.
    pub fn status(&self, group: &str, node: &str) -> Option<NodeStatus> {
        self.status_at(group, node).map(|(st, _)| st)
    }

    /// The last status `node` of `group` reported here, and when it arrived.
    pub fn status_at(&self, group: &str, node: &str) -> Option<(NodeStatus, Instant)> {
        self.statuses
            .lock()
            .get(&(group.to_string(), node.to_string()))
            .map(|(st, at, _)| (st.clone(), *at))
    }

    /// The last status `node` of `group` reported here if it was asked for at `since` or
    /// later: what the node held after that moment.
    pub fn status_asked_since(
        &self,
        group: &str,
        node: &str,
        since: Instant,
    ) -> Option<NodeStatus> {
        self.statuses
            .lock()
            .get(&(group.to_string(), node.to_string()))
            .filter(|(_, _, asked)| *asked >= since)
            .map(|(st, _, _)| st.clone())
    }

    /// A status `node` of `group` asked for at `asked` that arrived at `at`: kept for the
    /// records (unless a later one is there already), with a master's acknowledged offset.
    fn saw_status(&self, group: &str, node: &str, st: &NodeStatus, asked: Instant, at: Instant) {
        if st.role == vigil_proto::node::Role::Master as i32 && st.sync_replicas > 0 {
            self.saw_acked(group, st.acked_offset);
        }
        let mut statuses = self.statuses.lock();
        let key = (group.to_string(), node.to_string());
        if statuses.get(&key).is_none_or(|(_, had, _)| *had <= at) {
            statuses.insert(key, (st.clone(), at, asked));
        }
    }

    /// A status `node` of `group` gave this sentinel's controller (it leads): asked at
    /// `asked`, arrived at `at`. Kept as a probe's is; one that came within a probe's timeout
    /// also answers this sentinel's probes as a probe's own does ([`Health::status_due`]). A
    /// slower one does not: the leader's probes must still see a node whose admin port
    /// stalls as down.
    pub fn controller_saw(
        &self,
        group: &str,
        node: &str,
        st: &NodeStatus,
        asked: Instant,
        at: Instant,
    ) {
        self.saw_status(group, node, st, asked, at);
        if at.saturating_duration_since(asked) <= PROBE_TIMEOUT {
            self.had_status(group, node, at);
        }
    }

    /// This sentinel had `node`'s status, in a probe's time, at `at`.
    fn had_status(&self, group: &str, node: &str, at: Instant) {
        let mut had = self.had.lock();
        let e = had
            .entry((group.to_string(), node.to_string()))
            .or_insert(at);
        *e = (*e).max(at);
    }

    /// Whether the next probe of `node` (probes `every` apart) must ask for its status: this
    /// sentinel has had none in a probe's time for one and a half intervals. A probe's own
    /// status so answers the next probe, never two; while a group has a master the leader's
    /// controller asks it at each lease renewal, about as often as it probes.
    fn status_due(&self, group: &str, node: &str, every: Duration) -> bool {
        self.had
            .lock()
            .get(&(group.to_string(), node.to_string()))
            .is_none_or(|at| at.elapsed() >= every * 3 / 2)
    }

    /// Whether this sentinel has announced `node` of `group` as subjectively down.
    pub fn is_sdown(&self, group: &str, node: &str) -> bool {
        self.sdown
            .lock()
            .contains(&(group.to_string(), node.to_string()))
    }

    /// The offset `master` of `group` last reported while serving as master (0: none), which
    /// its replicas are told for their byte-lag check (`/replica?lag=<bytes>`).
    pub fn master_offset(&self, group: &str, master: &str) -> u64 {
        self.statuses
            .lock()
            .get(&(group.to_string(), master.to_string()))
            .filter(|(s, _, _)| s.role == vigil_proto::node::Role::Master as i32)
            .map_or(0, |(s, _, _)| s.offset)
    }

    fn saw_acked(&self, group: &str, offset: u64) {
        let mut a = self.acked.lock();
        let e = a.entry(group.to_string()).or_default();
        *e = (*e).max(offset);
    }

    fn ok(&self, group: &str, node: &str) {
        let key = (group.to_string(), node.to_string());
        self.asked.lock().remove(&key);
        self.last_ok.lock().insert(key, Instant::now());
    }

    /// Whether `node` of `group` (at `epoch`) is subjectively down now; announces `+sdown` /
    /// `-sdown` on `events` when that changed. Every reader of SDOWN goes through here, so the
    /// announcement always precedes what follows from it.
    pub fn sdown(
        &self,
        group: &str,
        node: &str,
        down_after: Duration,
        epoch: u64,
        events: &crate::events::Events,
    ) -> bool {
        let key = (group.to_string(), node.to_string());
        // In TILT a node keeps the state it had: one down before the stall is not announced
        // up because its silence is being counted afresh.
        if self.tilted() {
            return self.sdown.lock().contains(&key);
        }
        let down = self.unanswered_for(group, node) >= down_after;
        let changed = {
            let mut s = self.sdown.lock();
            if down { s.insert(key) } else { s.remove(&key) }
        };
        if changed {
            let kind = if down { "+sdown" } else { "-sdown" };
            events.emit(Event::local(kind, group, node, epoch, String::new()));
        }
        down
    }
}

/// One node to probe.
struct Target {
    group: String,
    node: String,
    /// The address its PING goes to.
    data: String,
    admin: String,
    /// Its group's master, unless it is the node itself.
    master: Option<String>,
}

/// Probes every node until `shutdown`; with `tls` (`tls_replication`) at the address TLS
/// clients are given.
pub async fn run(
    raft: Handle,
    nodes: Arc<dyn NodeAdmin>,
    health: Arc<Health>,
    tls: bool,
    shutdown: CancellationToken,
) {
    let mut every = PROBE;
    // A fixed cadence, not a sleep after each round: a round's own duration (slow answers, a
    // loaded machine) must not stretch the gap between two probes of a node past `every`, or
    // a node would be seen down less than `down_after` after a fault.
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: HashMap<(String, String), tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => {
                in_flight.values().for_each(|p| p.abort());
                return;
            }
        }
        let (targets, quickest, slowest) = {
            let st = raft.state.read();
            let targets: Vec<Target> = st
                .groups
                .values()
                .flat_map(|g| {
                    g.spec.nodes.iter().map(|n| Target {
                        group: g.spec.name.clone(),
                        node: n.name.clone(),
                        data: n.client_addr(tls).to_string(),
                        admin: n.admin.clone(),
                        master: g.master.clone().filter(|m| *m != n.name),
                    })
                })
                .collect();
            let quickest = st
                .groups
                .values()
                .map(|g| g.spec.settings.down_after_ms)
                .min();
            let slowest = st
                .groups
                .values()
                .map(|g| g.spec.settings.down_after_ms)
                .max();
            (targets, quickest, slowest)
        };
        let settle = Duration::from_millis(slowest.unwrap_or(0));
        if health.round(Instant::now(), settle, &raft.events) {
            tracing::warn!(
                "TILT: this sentinel's probes stalled for over {TILT_TRIGGER:?}; judging every node afresh"
            );
            // Their timeouts ran out on this sentinel's clock while it stood still.
            in_flight.drain().for_each(|(_, p)| p.abort());
        }
        let want = quickest.map_or(PROBE, |ms| probe_interval(Duration::from_millis(ms)));
        if want != every {
            every = want;
            ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // A node whose last probe is still out (slow, paused) is not probed again until it
        // ends, and does not hold up the others' probes.
        in_flight.retain(|_, p| !p.is_finished());
        for t in targets {
            let Target {
                group,
                node,
                data,
                admin,
                master,
            } = t;
            let key = (group.clone(), node.clone());
            if in_flight.contains_key(&key) {
                continue;
            }
            health.probing(&group, &node, every);
            // A status this sentinel had lately (the last probe's, or its controller's) answers
            // this probe: only the PING is sent.
            let had_status = !health.status_due(&group, &node, every);
            let master_offset = master
                .map(|m| health.master_offset(&group, &m))
                .unwrap_or(0);
            let (nodes, health) = (nodes.clone(), health.clone());
            let probe = tokio::spawn(async move {
                let status = async {
                    if had_status {
                        return None;
                    }
                    nodes
                        .status_seeing(&admin, PROBE_TIMEOUT, master_offset)
                        .await
                        .ok()
                };
                let sent = Instant::now();
                let (pinged, st) = tokio::join!(nodes.ping(&data, PROBE_TIMEOUT), status);
                if let Some(st) = &st {
                    health.saw_status(&group, &node, st, sent, Instant::now());
                    // Stamped when asked, so that the probe after next asks again however
                    // long this answer took.
                    health.had_status(&group, &node, sent);
                }
                if pinged && (had_status || st.is_some()) {
                    health.ok(&group, &node);
                }
            });
            in_flight.insert(key, probe);
        }
        announce(&raft, &health);
    }
}

/// Announces every node whose SDOWN state changed here.
fn announce(raft: &Handle, health: &Health) {
    let groups: Vec<_> = raft.state.read().groups.values().cloned().collect();
    // A group removed and monitored again under its name starts afresh.
    health
        .acked
        .lock()
        .retain(|name, _| groups.iter().any(|g| &g.spec.name == name));
    let known = |(name, node): &(String, String)| {
        groups
            .iter()
            .any(|g| &g.spec.name == name && g.has_node(node))
    };
    health.statuses.lock().retain(|k, _| known(k));
    health.had.lock().retain(|k, _| known(k));
    health.last_ok.lock().retain(|k, _| known(k));
    health.asked.lock().retain(|k, _| known(k));
    health.sdown.lock().retain(known);
    for g in groups {
        let down_after = Duration::from_millis(g.spec.settings.down_after_ms);
        for n in &g.spec.nodes {
            health.sdown(&g.spec.name, &n.name, down_after, g.epoch, &raft.events);
        }
    }
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
