//! One round of a sharded drill: hit a shard's master or move slots (or both), wait for the
//! outcome, heal, wait for every shard to be whole and no migration in flight, and measure
//! each shard's timings and where the keys are.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use vigil_proto::sentinel as pb;

use super::layout::{Layout, idle, whole};
use super::report::{MigrationRun, ShardRound, ShardTiming};
use super::workload::{self, Record};
use crate::ctl::client::Client;
use crate::drill::args::Mode;
use crate::drill::cluster::{Healthy, Sentinels};
use crate::drill::faults::{Processes, Scenario};
use crate::drill::progress::Progress;
use crate::drill::round::{Hit, Injected, hit, longest_gap, ms};

/// What every round works with.
pub(super) struct Ctx<'a> {
    pub(super) scenario: Scenario,
    pub(super) mode: Mode,
    pub(super) clients: &'a [Client],
    pub(super) cluster: &'a str,
    pub(super) record: &'a Arc<Record>,
    pub(super) progress: &'a Progress,
    pub(super) move_slots: u32,
}

/// How long a migration may take, failovers included.
const MIGRATION_LIMIT: Duration = Duration::from_secs(180);

/// One round; `known_lost`: the acknowledged keys found lost in earlier rounds (this round's
/// are added), so each loss is reported once, by the round that caused it.
pub(super) async fn round(
    cx: &Ctx<'_>,
    n: usize,
    procs: &mut Processes,
    before: &[Healthy],
    layout: &Layout,
    down_after: Duration,
    known_lost: &mut HashSet<usize>,
) -> anyhow::Result<ShardRound> {
    let (scenario, progress, record) = (cx.scenario, cx.progress, cx.record);
    let k = (n - 1) % layout.groups.len();
    let source = layout.groups[k].clone();
    let target = layout.groups[(k + 1) % layout.groups.len()].clone();
    // The group whose master is hit: the migration's target in odd rounds, its source in even.
    let victim = match scenario {
        Scenario::MigrateUnderLoad => None,
        Scenario::KillDuringMigration if n % 2 == 1 => Some(target.clone()),
        _ => Some(source.clone()),
    };
    let victim_at = victim
        .as_ref()
        .map(|v| layout.groups.iter().position(|g| g == v));
    let victim_before = victim_at.flatten().map(|i| &before[i]);
    let moved: Vec<u16> = match scenario {
        Scenario::MigrateUnderLoad | Scenario::KillDuringMigration => (0..layout.owner.len())
            .filter(|s| layout.owner[*s] == source)
            .take(cx.move_slots as usize)
            .map(|s| s as u16)
            .collect(),
        _ => Vec::new(),
    };
    let ack_mark = record.acks.lock().len();
    let mut problems = Vec::new();
    let t0 = Instant::now();
    let mut fault = Vec::new();
    // When the master was hit: its failover is timed from then (a migration from `t0`).
    let mut t_fault = t0;
    if !moved.is_empty() {
        let req = pb::MigrateSlotsRequest {
            cluster: cx.cluster.to_string(),
            moves: vec![pb::SlotMove {
                from: source.clone(),
                to: target.clone(),
                slots: ranges(&moved),
            }],
            weights: Default::default(),
        };
        before[0]
            .leader_client
            .clone()
            .migrate_slots(req)
            .await
            .map_err(|e| anyhow!("the migration was refused: {}", e.message()))?;
        fault.push(format!("move {} slots {source} -> {target}", moved.len()));
    }
    let injected = match victim_before {
        Some(h) => {
            let node = h
                .nodes
                .iter()
                .find(|x| x.name == h.master)
                .ok_or_else(|| anyhow!("the master {} is not among the nodes", h.master))?;
            let how = match scenario {
                Scenario::PauseMaster => Hit::Pause,
                Scenario::PartitionMaster => Hit::Cut,
                _ => Hit::Kill,
            };
            progress.show(n, &format!("{} of {}", scenario.name(), h.master));
            let verb = match how {
                Hit::Kill => "SIGKILL",
                Hit::Pause => "SIGSTOP",
                Hit::Cut => "partition",
            };
            fault.push(format!(
                "{verb} {} ({} master)",
                h.master,
                victim.as_deref().unwrap_or("")
            ));
            t_fault = Instant::now();
            hit(procs, how, node)?
        }
        None => Injected::Nothing,
    };
    // A hit master: its group fails over and its new master acknowledges a write.
    let limit = down_after * 3 + Duration::from_secs(15);
    let (mut failover_ms, mut new_master) = (None, String::new());
    if let (Some(g), Some(h)) = (&victim, victim_before) {
        progress.show(
            n,
            &format!("waiting for {g}'s new master's first acknowledged write"),
        );
        let s = Sentinels {
            clients: cx.clients.to_vec(),
            group: g.clone(),
        };
        let mut promoted = None;
        while t_fault.elapsed() < limit && promoted.is_none() {
            promoted = s.master_info().await.filter(|m| m.epoch > h.epoch);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match promoted {
            None => problems.push(format!("{g} did not fail over within {limit:?}")),
            Some(m) => {
                new_master = m.node;
                while t_fault.elapsed() < limit && failover_ms.is_none() {
                    failover_ms = record.acks.lock()[ack_mark..]
                        .iter()
                        .find(|a| {
                            a.at > t_fault
                                && a.node == m.address
                                && layout.owner[a.slot as usize] == *g
                        })
                        .map(|a| ms(a.at - t_fault));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if failover_ms.is_none() {
                    problems.push(format!(
                        "{g}'s new master {new_master} acknowledged no write"
                    ));
                }
            }
        }
    }
    progress.show(n, "healing");
    injected.heal(procs)?;
    let mut migration = None;
    if !moved.is_empty() {
        progress.show(n, "waiting for the migration to end");
        let done = idle(cx.clients, cx.cluster, MIGRATION_LIMIT).await?;
        let took = ms(t0.elapsed());
        let with = |g: &str| moved.iter().all(|s| done.owner[*s as usize] == g);
        let outcome = if with(&target) {
            "completed"
        } else if with(&source) {
            "rolled back"
        } else {
            problems.push("the moved slots ended split between the two groups".into());
            "split"
        };
        if scenario == Scenario::MigrateUnderLoad && outcome != "completed" {
            problems.push(format!("the migration {outcome} although nothing failed"));
        }
        migration = Some(MigrationRun {
            from: source.clone(),
            to: target.clone(),
            slots: moved.len() as u32,
            duration_ms: took,
            // Measured below, once writes to the moved slots had time to resume.
            write_pause_ms: 0.0,
            outcome: outcome.into(),
        });
    }
    progress.show(n, "waiting for every shard to be whole");
    let (after, now) = whole(cx.clients, cx.cluster).await?;
    // Let the writers of a shard that just came back show it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acks: Vec<workload::Ack> = record.acks.lock()[ack_mark..].to_vec();
    // A silence still going on counts up to now.
    let end = Instant::now();
    if let Some(m) = migration.as_mut() {
        let times = acks
            .iter()
            .filter(|a| moved.binary_search(&a.slot).is_ok())
            .map(|a| a.at)
            .collect();
        m.write_pause_ms = ms(longest_gap(times, t0, Some(end)));
    }
    let shards = layout
        .groups
        .iter()
        .map(|g| {
            let mine: Vec<Instant> = acks
                .iter()
                .filter(|a| layout.owner[a.slot as usize] == *g)
                .map(|a| a.at)
                .collect();
            ShardTiming {
                group: g.clone(),
                writes_acked: mine.len() as u64,
                unavailable_ms: ms(longest_gap(mine, t0, Some(end))),
            }
        })
        .collect();
    progress.show(n, "checking where every key is");
    // On a loaded machine a master's lease can lapse for a moment (a renewal late), and it
    // then refuses reads: the check is asked again, of the masters the sentinels name then.
    let (mut after, mut now, mut tries) = (after, now, 0);
    let placed = loop {
        let masters: Vec<(String, String)> = now
            .groups
            .iter()
            .zip(&after)
            .map(|(g, h)| (g.clone(), h.address.clone()))
            .collect();
        match workload::placement(record, &masters, &now.owner).await {
            Ok(p) => break p,
            Err(e) if tries < 5 => {
                tries += 1;
                progress.show(n, &format!("checking again ({e:#})"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                (after, now) = whole(cx.clients, cx.cluster).await?;
            }
            Err(e) => return Err(e),
        }
    };
    // Losses found for the first time are this round's.
    let lost: Vec<u16> = placed
        .lost
        .iter()
        .filter(|(i, _)| known_lost.insert(*i))
        .map(|(_, slot)| *slot)
        .collect();
    if !lost.is_empty() {
        match cx.mode {
            Mode::Sync => problems.push(format!(
                "{} acknowledged writes lost in sync mode",
                lost.len()
            )),
            // Asynchronous replication may discard the last writes of a master that failed,
            // on the shards the round hit only.
            Mode::Async => {
                let hit = |g: &str| {
                    victim.as_deref() == Some(g)
                        || (!moved.is_empty() && (g == source || g == target))
                };
                let elsewhere = lost
                    .iter()
                    .filter(|s| !hit(&layout.owner[**s as usize]))
                    .count();
                if elsewhere > 0 {
                    problems.push(format!(
                        "{elsewhere} acknowledged writes lost on shards the round did not hit"
                    ));
                }
            }
        }
    }
    if placed.duplicated > 0 {
        problems.push(format!("{} keys are in two shards", placed.duplicated));
    }
    if placed.misplaced > 0 {
        problems.push(format!(
            "{} keys are on a shard that does not own their slot",
            placed.misplaced
        ));
    }
    let old_master = victim_before.map(|h| h.master.clone()).unwrap_or_default();
    Ok(ShardRound {
        round: n,
        fault: fault.join(", "),
        group: victim.unwrap_or_default(),
        old_master,
        new_master,
        failover_ms,
        migration,
        shards,
        writes_acked: acks.len() as u64,
        acked_lost: lost.len() as u64,
        duplicated: placed.duplicated,
        misplaced: placed.misplaced,
        ok: problems.is_empty(),
        problems,
    })
}

/// Ascending slots as the migration request's ranges.
fn ranges(slots: &[u16]) -> Vec<pb::ShardSlots> {
    let mut out: Vec<pb::ShardSlots> = Vec::new();
    for &s in slots {
        match out.last_mut() {
            Some(r) if r.end + 1 == u32::from(s) => r.end = u32::from(s),
            _ => out.push(pb::ShardSlots {
                start: s.into(),
                end: s.into(),
                group: String::new(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn slots_become_ranges() {
        let r = super::ranges(&[0, 1, 2, 5, 7, 8]);
        let got: Vec<(u32, u32)> = r.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(got, vec![(0, 2), (5, 5), (7, 8)]);
    }
}
