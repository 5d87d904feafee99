//! The sentinel's side of the operations endpoint (`metrics = "host:port"`, served by
//! [`vigil_proto::ops`]): the metrics redis_exporter derives from a Redis Sentinel
//! (`redis_sentinel_*`, same names and labels), Vigil's own (failovers by kind and outcome,
//! their duration and the write outage they caused, divergent bytes, Raft term, commit and
//! applied index, leader changes), and health checks (`/health`, `/liveness`, `/readiness`:
//! in touch with a Raft leader and with applied state; `/leader`: this sentinel leads).
//!
//! Lease renewals, fences and lease expiries are counted by the controller where it makes
//! the calls (only the leader sends them, so only the leader's counters move).
//!
//! Failover counts come from the event bus, so every sentinel counts the committed
//! failovers it applies (from its start: a counter reset on restart, as Prometheus expects).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vigil_proto::ops::{Check, OpsSource, Text, json_str};

use crate::discovery::{Discovery, records};
use crate::driver::Handle;
use crate::events::Event;

/// Bucket bounds (seconds) of the failover duration and write-outage histograms.
const BOUNDS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];

/// A fixed-bucket histogram.
#[derive(Debug, Clone, Default)]
struct Hist {
    counts: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

impl Hist {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BOUNDS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// What the event watcher counted.
#[derive(Debug, Default)]
struct Inner {
    /// `(group, kind, outcome)` → failovers.
    failovers: BTreeMap<(String, &'static str, &'static str), u64>,
    /// group → failover durations (begin to end, completed ones).
    durations: BTreeMap<String, Hist>,
    /// group → write outages (the master first seen down, or the failover begun, to the
    /// switch to the new master).
    outages: BTreeMap<String, Hist>,
    /// group → (began at ms, manual) of the failover in flight.
    begun: HashMap<String, (u64, bool)>,
    /// group → when its master was first seen down (ms), until the switch.
    down_since: HashMap<String, u64>,
    /// group → divergent bytes discarded from demoted masters.
    divergent: BTreeMap<String, u64>,
    /// Leader changes seen, and the last leader.
    leader_changes: u64,
    leader: u64,
    /// `(group, outcome)` → lease renewals this sentinel sent as leader.
    renewals: Outcomes,
    /// `(group, outcome)` → fences this sentinel sent to old masters.
    fences: Outcomes,
    /// group → masters seen with their lease run out when the leader came to renew it.
    expiries: BTreeMap<String, u64>,
}

/// `(group, outcome)` → calls.
type Outcomes = BTreeMap<(String, &'static str), u64>;

/// A call's outcome label.
fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// The sentinel's counters, fed by [`watch`].
#[derive(Debug, Default)]
pub struct Counters(Mutex<Inner>);

impl Counters {
    /// Counts a lease renewal sent to `group`'s master, granted or not.
    pub fn renewal(&self, group: &str, ok: bool) {
        *self
            .0
            .lock()
            .renewals
            .entry((group.to_string(), outcome(ok)))
            .or_default() += 1;
    }

    /// Counts a fence sent to `group`'s old master: `ok` when it answered fenced.
    pub fn fence(&self, group: &str, ok: bool) {
        *self
            .0
            .lock()
            .fences
            .entry((group.to_string(), outcome(ok)))
            .or_default() += 1;
    }

    /// Counts a master of `group` found serving with no lease left.
    pub fn lease_expired(&self, group: &str) {
        *self.0.lock().expiries.entry(group.to_string()).or_default() += 1;
    }

    fn record(&self, ev: &Event, master: Option<&str>) {
        let mut c = self.0.lock();
        let g = ev.group.clone();
        match ev.kind {
            "+try-failover" => {
                c.begun.insert(g.clone(), (ev.at_ms, ev.detail == "manual"));
                c.down_since.entry(g).or_insert(ev.at_ms);
            }
            "+sdown" | "+odown" if master == Some(ev.node.as_str()) => {
                c.down_since.entry(g).or_insert(ev.at_ms);
            }
            "+switch-master" => {
                if let Some(since) = c.down_since.remove(&g) {
                    let secs = ev.at_ms.saturating_sub(since) as f64 / 1000.0;
                    c.outages.entry(g).or_default().observe(secs);
                }
            }
            "+failover-end" | "+failover-end-for-timeout" | "-failover-abort-no-good-slave" => {
                let (began, manual) = c.begun.remove(&g).unwrap_or((ev.at_ms, false));
                let kind = if manual { "manual" } else { "auto" };
                let outcome = if ev.kind == "+failover-end" {
                    let secs = ev.at_ms.saturating_sub(began) as f64 / 1000.0;
                    c.durations.entry(g.clone()).or_default().observe(secs);
                    "completed"
                } else {
                    c.down_since.remove(&g);
                    "aborted"
                };
                *c.failovers.entry((g, kind, outcome)).or_default() += 1;
            }
            "+convert-to-slave" => {
                if let Some(b) = ev
                    .detail
                    .strip_prefix("divergent_bytes ")
                    .and_then(|b| b.parse::<u64>().ok())
                {
                    *c.divergent.entry(g).or_default() += b;
                }
            }
            _ => {}
        }
    }
}

/// Counts failovers, outages, divergent bytes and leader changes until `shutdown`.
pub async fn watch(raft: Handle, counters: Arc<Counters>, shutdown: CancellationToken) {
    let mut rx = raft.events.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    let master = raft.state.read().groups.get(&ev.group).and_then(|g| g.master.clone());
                    counters.record(&ev, master.as_deref());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let leader = raft.status.read().leader;
                let mut c = counters.0.lock();
                if leader != 0 && leader != c.leader {
                    c.leader_changes += 1;
                    c.leader = leader;
                }
            }
        }
    }
}

/// One group's row of the `redis_sentinel_master_*` families.
struct Row {
    name: String,
    address: String,
    status: &'static str,
    slaves: usize,
    ok_slaves: usize,
    epoch: u64,
}

/// The sentinel as an [`OpsSource`].
pub struct SentinelOps {
    /// The Redis Sentinel protocol service (state, probes, records).
    pub discovery: Arc<Discovery>,
    /// What [`watch`] counts.
    pub counters: Arc<Counters>,
}

impl OpsSource for SentinelOps {
    fn metrics(&self) -> String {
        let d = &self.discovery;
        let status = d.raft.status.read().clone();
        let groups: Vec<_> = d.raft.state.read().groups.values().cloned().collect();
        let mut t = Text::new();
        let port = d.address.port().to_string();
        t.instance(&[
            ("redis_version", vigil_base::REDIS_VERSION),
            ("redis_mode", "sentinel"),
            ("role", "sentinel"),
            ("run_id", &d.myid),
            ("tcp_port", &port),
        ]);
        t.gauge(
            "redis_uptime_in_seconds",
            "Seconds since the process started",
            d.started.elapsed().as_secs() as f64,
        );
        t.gauge(
            "redis_sentinel_masters",
            "Groups monitored",
            groups.len() as f64,
        );
        t.gauge(
            "redis_sentinel_tilt",
            "Sentinel TILT mode: 1 after this sentinel stalled, until it judges from fresh probes",
            d.health.tilt().is_some() as u8 as f64,
        );
        t.gauge(
            "redis_sentinel_running_scripts",
            "Scripts running (none in Vigil)",
            0.0,
        );
        let sentinels = status.voters.len() as f64;
        // Sentinels the leader heard from recently; elsewhere, all voters while a leader is
        // known (a follower sees no progress).
        let ok_sentinels = if status.is_leader {
            status
                .progress
                .iter()
                .filter(|(_, _, active)| *active)
                .count() as f64
        } else if status.leader != 0 {
            sentinels
        } else {
            0.0
        };
        let rows: Vec<_> = groups
            .iter()
            .map(|g| {
                let m = d.master_record(g, false);
                let field = |k: &str| records::field(&m, k);
                let status = records::master_status(&m);
                let replicas = d.replica_records(g, false);
                let ok = replicas
                    .iter()
                    .filter(|r| {
                        r.iter().any(|(k, v)| {
                            *k == "flags" && !v.contains("down") && !v.contains("disconnected")
                        }) && r
                            .iter()
                            .any(|(k, v)| *k == "master-link-status" && v == "ok")
                    })
                    .count();
                Row {
                    name: g.spec.name.clone(),
                    address: format!("{}:{}", field("ip"), field("port")),
                    status,
                    slaves: replicas.len(),
                    ok_slaves: ok,
                    epoch: g.epoch,
                }
            })
            .collect();
        let per_group = |t: &mut Text, name: &str, help: &str, f: &dyn Fn(&Row) -> f64| {
            t.family(name, "gauge", help);
            for r in &rows {
                t.sample(
                    name,
                    &[("master_name", &r.name), ("master_address", &r.address)],
                    f(r),
                );
            }
        };
        t.family(
            "redis_sentinel_master_status",
            "gauge",
            "Master status: 1 ok, 0 down (label master_status)",
        );
        for r in &rows {
            t.sample(
                "redis_sentinel_master_status",
                &[
                    ("master_name", &r.name),
                    ("master_address", &r.address),
                    ("master_status", r.status),
                ],
                (r.status == "ok") as u8 as f64,
            );
        }
        per_group(
            &mut t,
            "redis_sentinel_master_slaves",
            "Replicas of the master",
            &|r| r.slaves as f64,
        );
        per_group(
            &mut t,
            "redis_sentinel_master_ok_slaves",
            "Replicas linked to the master and not down",
            &|r| r.ok_slaves as f64,
        );
        per_group(
            &mut t,
            "redis_sentinel_master_sentinels",
            "Sentinels monitoring the master",
            &|_| sentinels,
        );
        per_group(
            &mut t,
            "redis_sentinel_master_ok_sentinels",
            "Sentinels in touch with the Raft leader",
            &|_| ok_sentinels,
        );
        per_group(
            &mut t,
            "redis_sentinel_master_config_epoch",
            "The group's configuration epoch",
            &|r| r.epoch as f64,
        );
        self.vigil_own(&mut t, &status);
        t.finish()
    }

    fn check(&self, path: &str, _query: &str) -> Option<Check> {
        let status = self.discovery.raft.status.read().clone();
        let pass = match path {
            "/health" | "/liveness" => true,
            "/readiness" => status.leader != 0 && status.applied > 0,
            "/leader" => status.is_leader,
            _ => return None,
        };
        Some(Check {
            status: if pass { 200 } else { 503 },
            body: format!(
                "{{\"state\":\"running\",\"role\":\"sentinel\",\"id\":{},\"myid\":{},\"leader\":{},\"is_leader\":{},\"term\":{},\"commit\":{},\"applied\":{}}}",
                status.id,
                json_str(&self.discovery.myid),
                status.leader,
                status.is_leader,
                status.term,
                status.commit,
                status.applied
            ),
        })
    }
}

impl SentinelOps {
    fn vigil_own(&self, t: &mut Text, status: &crate::driver::RaftStatus) {
        t.gauge("vigil_raft_term", "Raft term", status.term as f64);
        t.gauge(
            "vigil_raft_commit_index",
            "Raft commit index",
            status.commit as f64,
        );
        t.gauge(
            "vigil_raft_applied_index",
            "Raft applied index",
            status.applied as f64,
        );
        t.gauge(
            "vigil_raft_is_leader",
            "Whether this sentinel leads",
            status.is_leader as u8 as f64,
        );
        t.gauge(
            "vigil_raft_has_leader",
            "Whether this sentinel knows a leader",
            (status.leader != 0) as u8 as f64,
        );
        t.gauge(
            "vigil_raft_voters",
            "Voting sentinels",
            status.voters.len() as f64,
        );
        let c = self.counters.0.lock();
        t.counter(
            "vigil_raft_leader_changes_total",
            "Leader changes this sentinel saw",
            c.leader_changes as f64,
        );
        t.family(
            "vigil_failovers_total",
            "counter",
            "Failovers by group, kind (auto, manual) and outcome",
        );
        for ((g, kind, outcome), n) in &c.failovers {
            t.sample(
                "vigil_failovers_total",
                &[("group", g), ("kind", kind), ("outcome", outcome)],
                *n as f64,
            );
        }
        let buckets =
            |h: &Hist| -> Vec<(f64, u64)> { BOUNDS.iter().copied().zip(h.counts).collect() };
        t.family(
            "vigil_failover_duration_seconds",
            "histogram",
            "Completed failovers, begin to end",
        );
        for (g, h) in &c.durations {
            t.histogram(
                "vigil_failover_duration_seconds",
                &[("group", g)],
                &buckets(h),
                h.sum,
                h.count,
            );
        }
        t.family(
            "vigil_write_outage_seconds",
            "histogram",
            "Master first seen down (or failover begun) to the switch to the new master",
        );
        for (g, h) in &c.outages {
            t.histogram(
                "vigil_write_outage_seconds",
                &[("group", g)],
                &buckets(h),
                h.sum,
                h.count,
            );
        }
        t.family(
            "vigil_divergent_bytes_total",
            "counter",
            "Bytes of writes discarded from demoted masters (async mode)",
        );
        for (g, n) in &c.divergent {
            t.sample("vigil_divergent_bytes_total", &[("group", g)], *n as f64);
        }
        let by_outcome = |t: &mut Text, name: &str, help: &str, m: &Outcomes| {
            t.family(name, "counter", help);
            for ((g, o), n) in m {
                t.sample(name, &[("group", g), ("outcome", o)], *n as f64);
            }
        };
        by_outcome(
            t,
            "vigil_sentinel_lease_renewals_total",
            "Lease renewals this sentinel sent as leader, by group and outcome (ok, failed)",
            &c.renewals,
        );
        by_outcome(
            t,
            "vigil_sentinel_fences_total",
            "Fences this sentinel sent to old masters, by group and outcome (ok: answered fenced)",
            &c.fences,
        );
        t.family(
            "vigil_sentinel_lease_expiries_total",
            "counter",
            "Masters the leader found serving with their lease run out, by group",
        );
        for (g, n) in &c.expiries {
            t.sample(
                "vigil_sentinel_lease_expiries_total",
                &[("group", g)],
                *n as f64,
            );
        }
    }
}

impl crate::controller::LeaseCounters for Counters {
    fn renewal(&self, group: &str, ok: bool) {
        Counters::renewal(self, group, ok)
    }
    fn fence(&self, group: &str, ok: bool) {
        Counters::fence(self, group, ok)
    }
    fn lease_expired(&self, group: &str) {
        Counters::lease_expired(self, group)
    }
}
