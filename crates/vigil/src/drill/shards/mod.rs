//! `vigil drill --shards N`: drills of a sharded cluster. Writers route every key by its
//! hash slot as cluster clients do; each round hits the next shard (its master killed,
//! paused or cut off) or moves slots from it to the next shard (under writes, or with a
//! master killed as the migration starts), then checks that no acknowledged write is lost
//! and every key is in exactly one shard, the one that owns its slot.
//!
//! - [`layout`]: the sharded cluster as the sentinels have it, and the waits for it.
//! - [`workload`]: the slot-routed writers and the placement check.
//! - [`round`]: one round and its measurements.
//! - [`report`]: the report and its renderings.
//!
//! This module runs the rounds; its children import each other, never this module.

mod layout;
pub mod report;
mod round;
mod workload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::args::{DrillArgs, Mode};
use super::cluster::{configure, down_after_of};
use super::faults::{Processes, Scenario};
use super::progress::Progress;
use super::workload::first_ack;
use crate::ctl::client::Client;
use layout::{Layout, cluster_name, whole};
pub use report::ShardReport;
use report::ShardSummary;
use round::{Ctx, round};

/// Stops the writers however the drill ends.
struct Writers(Arc<workload::Record>);

impl Drop for Writers {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Each group's slots, in the cluster's order of groups.
fn shard_slots(l: &Layout) -> Vec<Vec<u16>> {
    l.groups
        .iter()
        .map(|g| {
            (0..l.owner.len())
                .filter(|s| l.owner[*s] == *g)
                .map(|s| s as u16)
                .collect()
        })
        .collect()
}

/// Runs the rounds on the sharded cluster `wanted` (or the sentinels' only one).
pub(super) async fn drill(
    args: &DrillArgs,
    procs: &mut Processes,
    clients: &[Client],
    wanted: &str,
    progress: &Progress,
) -> anyhow::Result<ShardReport> {
    let cluster = &cluster_name(clients, wanted).await?;
    progress.show(1, "waiting for every shard to be healthy");
    let (first, start) = whole(clients, cluster).await?;
    if start.groups.is_empty() {
        bail!("the sharded cluster {cluster:?} has no groups");
    }
    if args.scenario.sharded() == Some(true) && start.groups.len() < 2 {
        bail!(
            "--scenario {} moves slots between shards: {cluster:?} has one group",
            args.scenario.name()
        );
    }
    if let Processes::Local(_) = procs {
        for g in &start.groups {
            configure(&first[0].leader_client, g, args).await?;
        }
    }
    let seeds: Vec<String> = first
        .iter()
        .flat_map(|h| h.nodes.iter().map(|n| n.data.clone()))
        .collect();
    let slots = shard_slots(&start);
    let per_shard = args.writers.div_ceil(start.groups.len()).max(1);
    let record = workload::start(seeds, &slots, per_shard).await?;
    let _writers = Writers(record.clone());
    first_ack(|| !record.acks.lock().is_empty()).await?;
    let cx = Ctx {
        scenario: args.scenario,
        mode: args.mode,
        clients,
        cluster,
        record: &record,
        progress,
        move_slots: args.move_slots,
    };
    let mut rounds = Vec::new();
    let mut down_after = 0;
    let mut last_failover: HashMap<String, Instant> = HashMap::new();
    let mut known_lost = HashSet::new();
    for n in 1..=args.rounds {
        progress.show(n, "waiting for every shard to be healthy");
        let (before, layout) = whole(clients, cluster).await?;
        record.assign(&shard_slots(&layout));
        down_after = down_after_of(&before[0].leader_client, &layout.groups[0]).await;
        // A group fails over again only after its `min_failover_interval`.
        for (g, h) in layout.groups.iter().zip(&before) {
            if let Some(t) = last_failover.get(g) {
                let wait = (*t + h.min_failover_interval + Duration::from_millis(200))
                    .saturating_duration_since(Instant::now());
                tokio::time::sleep(wait).await;
            }
        }
        // Let the writers run a moment on the healthy cluster.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = round(
            &cx,
            n,
            procs,
            &before,
            &layout,
            Duration::from_millis(down_after),
            &mut known_lost,
        )
        .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                record.stop();
                return Err(e.context(format!("round {n}")));
            }
        };
        if r.failover_ms.is_some() {
            last_failover.insert(r.group.clone(), Instant::now());
        }
        rounds.push(r);
    }
    record.stop();
    let retried: BTreeMap<String, u64> = record.retried.lock().clone().into_iter().collect();
    let summary = ShardSummary::of(&rounds, retried);
    let passed = rounds.iter().all(|r| r.ok);
    Ok(ShardReport {
        scenario: args.scenario.name().into(),
        cluster: cluster.to_string(),
        groups: start.groups,
        mode: match args.mode {
            Mode::Sync => "sync".into(),
            Mode::Async => "async".into(),
        },
        down_after_ms: down_after,
        writers: per_shard * slots.len(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        rounds,
        summary,
        passed,
    })
}

/// Whether the scenario may run on a cluster with or without shards.
pub(super) fn check(scenario: Scenario, sharded: bool) -> anyhow::Result<()> {
    match scenario.sharded() {
        Some(true) if !sharded => bail!(
            "--scenario {} moves slots between shards: it needs --shards N",
            scenario.name()
        ),
        Some(false) if sharded => bail!(
            "--scenario {} is not a sharded drill (kill-master, pause-master, partition-master, migrate-under-load, kill-during-migration are)",
            scenario.name()
        ),
        _ => Ok(()),
    }
}
