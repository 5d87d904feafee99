//! One round of a drill: inject the scenario's fault, wait for the outcome, heal, wait for
//! the cluster to be whole, and measure what the workload saw.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use vigil_proto::sentinel as pb;

use super::args::Mode;
use super::cluster::{EventLog, Healthy, SETTLE, Sentinels, healthy, port_of};
use super::faults::{Partition, Processes, Scenario, Stopped, Target};
use super::progress::Progress;
use super::report::{self, Mark, Round};
use super::workload;
use crate::ctl::client::{Client, lazy_client};

/// A fault in place, undone by [`Injected::heal`].
pub(super) enum Injected {
    Killed(Target),
    Paused(Stopped),
    Cut(Partition),
    Nothing,
}

impl Injected {
    /// Restarts a killed process, continues a paused one, removes a partition.
    pub(super) fn heal(self, procs: &mut Processes) -> anyhow::Result<()> {
        match self {
            Injected::Killed(t) => procs.restart(&t)?,
            Injected::Paused(stopped) => drop(stopped),
            Injected::Cut(p) => drop(p),
            Injected::Nothing => {}
        }
        Ok(())
    }
}

/// What is done to a node.
#[derive(Clone, Copy)]
pub(super) enum Hit {
    /// SIGKILL.
    Kill,
    /// SIGSTOP (SIGCONT when healed).
    Pause,
    /// Every packet to and from its data and admin ports dropped.
    Cut,
}

/// Does `how` to the node `n` (by its name in a local cluster, else by its data port).
pub(super) fn hit(procs: &mut Processes, how: Hit, n: &pb::Node) -> anyhow::Result<Injected> {
    // The packet filter acts on this machine's traffic: the node must run here too.
    let t = procs.find(&n.name, port_of(&n.data)?)?;
    Ok(match how {
        Hit::Kill => {
            procs.kill(&t)?;
            Injected::Killed(t)
        }
        Hit::Pause => Injected::Paused(procs.pause(&t)?),
        Hit::Cut => Injected::Cut(Partition::cut(&[port_of(&n.data)?, port_of(&n.admin)?])?),
    })
}

/// The longest time without an acknowledgement among `times`, counted from the last one at
/// or before the fault `t0` (or from `t0` when there is none) up to the last one, or up to
/// `end` when given (a silence still going on counts).
pub(super) fn longest_gap(mut times: Vec<Instant>, t0: Instant, end: Option<Instant>) -> Duration {
    times.extend(end);
    times.sort();
    let start = times
        .iter()
        .rev()
        .find(|t| **t <= t0)
        .copied()
        .unwrap_or(t0);
    let mut longest = Duration::ZERO;
    let mut prev = start;
    for t in times.iter().filter(|t| **t > start) {
        longest = longest.max(*t - prev);
        prev = *t;
    }
    longest
}

/// What every round works with.
pub(super) struct Ctx<'a> {
    pub(super) scenario: Scenario,
    pub(super) mode: Mode,
    pub(super) clients: &'a [Client],
    pub(super) token: &'a str,
    pub(super) sentinels: &'a Sentinels,
    pub(super) record: &'a Arc<workload::Record>,
    pub(super) events: &'a EventLog,
    pub(super) progress: &'a Progress,
}

pub(super) async fn round(
    cx: &Ctx<'_>,
    n: usize,
    procs: &mut Processes,
    before: &Healthy,
    down_after: Duration,
) -> anyhow::Result<Round> {
    let Ctx {
        scenario,
        mode,
        clients,
        token,
        sentinels,
        record,
        events,
        progress,
    } = *cx;
    let ev_mark = events.lock().len();
    let ack_mark = record.acks.lock().len();
    let stale_mark = record.stale_reads.load(Ordering::Relaxed);
    let master_node = before
        .nodes
        .iter()
        .find(|x| x.name == before.master)
        .cloned()
        .ok_or_else(|| anyhow!("the master {} is not among the nodes", before.master))?;
    // An application still connected to the old master, whatever happens to it.
    let pinned = workload::pin(record.clone(), before.address.clone());
    let mut problems = Vec::new();
    let t0 = Instant::now();
    let injected = match scenario {
        Scenario::KillMaster => hit(procs, Hit::Kill, &master_node)?,
        Scenario::PauseMaster => hit(procs, Hit::Pause, &master_node)?,
        Scenario::PartitionMaster => hit(procs, Hit::Cut, &master_node)?,
        // Sharded scenarios (refused without `--shards`).
        Scenario::MigrateUnderLoad | Scenario::KillDuringMigration => Injected::Nothing,
        Scenario::KillSentinelLeader => {
            let addr = before
                .members
                .iter()
                .find(|m| m.id == before.leader)
                .map(|m| m.address.clone())
                .unwrap_or_default();
            let t = procs.find(&format!("sentinel{}", before.leader), port_of(&addr)?)?;
            procs.kill(&t)?;
            Injected::Killed(t)
        }
        Scenario::Switchover => {
            let req = pb::FailoverRequest {
                group: sentinels.group.clone(),
                target: String::new(),
            };
            before
                .leader_client
                .clone()
                .failover(req)
                .await
                .map_err(|e| anyhow!("switchover refused: {}", e.message()))?;
            Injected::Nothing
        }
    };
    // The outcome: a new master that acknowledged a write, or (sentinel leader killed) a new
    // leader and the same master.
    let limit = down_after * 3 + Duration::from_secs(15);
    let mut new_master = before.master.clone();
    let mut new_address = before.address.clone();
    let mut epoch_after = before.epoch;
    let mut failover_ms = None;
    let mut recovered = false;
    if scenario.fails_over() {
        progress.show(n, "waiting for the new master's first acknowledged write");
        while t0.elapsed() < limit {
            if let Some(m) = sentinels.master_info().await
                && m.epoch > before.epoch
            {
                new_master = m.node;
                new_address = m.address;
                epoch_after = m.epoch;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if epoch_after == before.epoch {
            problems.push(format!("no failover within {limit:?}"));
        } else {
            while t0.elapsed() < limit {
                let first = record
                    .acks
                    .lock()
                    .iter()
                    .skip(ack_mark)
                    .find(|a| a.master == new_address && a.at > t0)
                    .map(|a| a.at);
                if let Some(at) = first {
                    failover_ms = Some(ms(at - t0));
                    recovered = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !recovered {
                problems.push(format!("the new master {new_master} acknowledged no write"));
            }
        }
    } else {
        progress.show(n, "waiting for a new sentinel leader");
        let survivors: Vec<Client> = before
            .members
            .iter()
            .filter(|m| m.id != before.leader)
            .filter_map(|m| lazy_client(&m.address, token, Duration::from_secs(1)).ok())
            .collect();
        let mut elected = false;
        while t0.elapsed() < limit && !elected {
            for c in &survivors {
                if let Ok(s) = c.clone().cluster_status(pb::ClusterStatusRequest {}).await
                    && s.get_ref().leader != 0
                    && s.get_ref().leader != before.leader
                {
                    elected = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Watch the workload a while longer: the master must keep its lease.
        tokio::time::sleep(down_after * 2).await;
        let still = sentinels.master_info().await;
        epoch_after = still.as_ref().map_or(before.epoch, |m| m.epoch);
        if !elected {
            problems.push(format!("no new sentinel leader within {limit:?}"));
        }
        if epoch_after != before.epoch {
            problems.push("the master was failed over although only a sentinel died".into());
            new_master = still.map(|m| m.node).unwrap_or_default();
        }
        recovered = elected && epoch_after == before.epoch;
    }
    let healed_at = Instant::now();
    progress.show(n, "healing");
    injected.heal(procs)?;
    progress.show(n, "waiting for the cluster to heal");
    let after = healthy(clients, &sentinels.group, SETTLE).await;
    pinned.stop().await;
    let after = after?;
    // Acknowledged writes of the round, checked on the master that now serves.
    let (acks, stale) = {
        let all = record.acks.lock();
        (
            all[ack_mark..].to_vec(),
            record.stale_reads.load(Ordering::Relaxed),
        )
    };
    let keys: Vec<String> = acks.iter().map(|a| a.key.clone()).collect();
    // On a loaded machine the master's lease can lapse for a moment (a renewal late), and it
    // then refuses reads: the read-back is asked again, of the master the sentinels name then.
    let mut address = after.address.clone();
    let mut tries = 0;
    let acked_lost = loop {
        match workload::missing(&address, &keys).await {
            Ok(n) => break n,
            Err(e) if tries < 5 => {
                tries += 1;
                progress.show(n, &format!("reading back again ({e})"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                address = healthy(clients, &sentinels.group, SETTLE).await?.address;
            }
            Err(e) => return Err(e),
        }
    };
    // The longest silence, from the last acknowledgement before the fault.
    let unavailable = longest_gap(acks.iter().map(|a| a.at).collect(), t0, None);
    let evs: Vec<(Instant, pb::TopologyEvent)> = events.lock()[ev_mark..].to_vec();
    let first = |kind: &str, node: Option<&str>| {
        evs.iter()
            .filter(|(at, e)| *at >= t0 && e.kind == kind && node.is_none_or(|n| e.node == n))
            .map(|(at, _)| ms(*at - t0))
            .reduce(f64::min)
    };
    let detection_ms = first("+sdown", Some(&before.master));
    let odown_ms = first("+odown", Some(&before.master));
    let promote_ms = first("+promoted-slave", None);
    let switch_ms = first("+switch-master", None);
    // Each demotion is reported once, by the leader that made it.
    let divergent_bytes = evs
        .iter()
        .filter(|(_, e)| e.kind == "+convert-to-slave")
        .filter_map(|(_, e)| {
            e.detail
                .split_whitespace()
                .skip_while(|w| *w != "divergent_bytes")
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    let mut timeline = vec![Mark {
        label: "fault".into(),
        at_ms: 0.0,
    }];
    for (label, at) in [
        ("+sdown", detection_ms),
        ("+odown", odown_ms),
        ("+promoted-slave", promote_ms),
        ("+switch-master", switch_ms),
        ("first write", failover_ms),
        ("healed", Some(ms(healed_at - t0))),
    ] {
        if let Some(at_ms) = at {
            timeline.push(Mark {
                label: label.into(),
                at_ms,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    let events = evs
        .iter()
        .filter(|(_, e)| seen.insert((e.index, e.kind.clone(), e.node.clone(), e.detail.clone())))
        .map(|(at, e)| report::EventMark {
            at_ms: ms(at.saturating_duration_since(t0)),
            kind: e.kind.clone(),
            node: e.node.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    if mode == Mode::Sync && acked_lost > 0 {
        problems.push(format!(
            "{acked_lost} acknowledged writes lost in sync mode"
        ));
    }
    let stale_reads = stale - stale_mark;
    Ok(Round {
        round: n,
        old_master: before.master.clone(),
        new_master,
        epoch_before: before.epoch,
        epoch_after,
        detection_ms,
        odown_ms,
        promote_ms,
        failover_ms,
        unavailable_ms: ms(unavailable),
        writes_acked: acks.len() as u64,
        acked_lost,
        divergent_bytes,
        stale_reads,
        recovered,
        ok: recovered && problems.is_empty(),
        problems,
        timeline,
        events,
    })
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
