//! `vigil ctl cluster ...`: sharded clusters — create one over monitored groups, show each
//! cluster's slot ranges with the owning group's master, replicas and key counts, and move
//! slots between groups (explicitly, by rebalancing, or to add or remove a group), waiting
//! until the migrations are done.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_proto::sentinel as pb;

use super::args::{ClusterCommand, CtlArgs};
use super::client::Sentinel;
use super::render::{done, table};

/// Runs one `vigil ctl cluster` subcommand.
pub async fn run(first: &Sentinel, cmd: &ClusterCommand, args: &CtlArgs) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Create { name, groups } => {
            let req = pb::CreateClusterRequest {
                name: name.clone(),
                groups: groups.clone(),
            };
            let ack = first.call(first.client.clone().create_cluster(req)).await?;
            let what = format!(
                "cluster {name:?} created over {}; `vigil ctl cluster status` shows its slots",
                groups.join(",")
            );
            println!("{}", done(args.json, ack.index, &what));
        }
        ClusterCommand::Status { name } => {
            let mut clusters = first
                .call(
                    first
                        .client
                        .clone()
                        .list_clusters(pb::ListClustersRequest {}),
                )
                .await?
                .clusters;
            if let Some(n) = name {
                clusters.retain(|c| &c.name == n);
                if clusters.is_empty() {
                    anyhow::bail!("no cluster named {n:?} (`vigil ctl cluster status` lists them)");
                }
            }
            let groups = first
                .call(first.client.clone().list_groups(pb::ListGroupsRequest {}))
                .await?
                .groups;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status_json(&clusters, &groups))?
                );
            } else {
                print!("{}", status_text(&clusters, &groups));
            }
        }
        ClusterCommand::MoveSlots {
            name,
            from,
            to,
            slots,
            no_wait,
        } => {
            let ranges = parse_slots(slots)?;
            let moves = vec![pb::SlotMove {
                from: from.clone(),
                to: to.clone(),
                slots: ranges
                    .iter()
                    .map(|&(start, end)| pb::ShardSlots {
                        start,
                        end,
                        group: String::new(),
                    })
                    .collect(),
            }];
            let index = migrate(first, name, moves, HashMap::new()).await?;
            let expect = vec![(to.clone(), ranges)];
            finish(first, args, name, index, !no_wait, "slots moved", expect).await?;
        }
        ClusterCommand::Rebalance {
            name,
            weights,
            no_wait,
        } => {
            let weights = parse_weights(weights)?;
            let index = migrate(first, name, Vec::new(), weights).await?;
            let what = "cluster rebalanced";
            finish(first, args, name, index, !no_wait, what, Vec::new()).await?;
        }
        ClusterCommand::AddGroup {
            name,
            group,
            no_rebalance,
        } => {
            let req = pb::ChangeClusterGroupsRequest {
                cluster: name.clone(),
                group: group.clone(),
                add: true,
            };
            let ack = first
                .call(first.client.clone().change_cluster_groups(req))
                .await?;
            if *no_rebalance {
                let what = format!("{group} joined {name} without slots");
                println!("{}", done(args.json, ack.index, &what));
            } else {
                let index = migrate(first, name, Vec::new(), HashMap::new()).await?;
                let what = format!("{group} joined {name} and the slots were rebalanced");
                let index = index.max(ack.index);
                finish(first, args, name, index, true, &what, Vec::new()).await?;
            }
        }
        ClusterCommand::RemoveGroup { name, group } => {
            if !cluster(first, name).await?.groups.contains(group) {
                let what = format!("{group} is not in {name} (already removed)");
                println!("{}", done(args.json, 0, &what));
                return Ok(());
            }
            let weights = HashMap::from([(group.clone(), 0)]);
            migrate(first, name, Vec::new(), weights).await?;
            wait_moved(first, name, args.json, Vec::new()).await?;
            let req = pb::ChangeClusterGroupsRequest {
                cluster: name.clone(),
                group: group.clone(),
                add: false,
            };
            let ack = first
                .call(first.client.clone().change_cluster_groups(req))
                .await?;
            let what = format!("{group} left {name}; its slots went to the other groups");
            println!("{}", done(args.json, ack.index, &what));
        }
    }
    Ok(())
}

/// `0-999`, `5000`: slot ranges, each within 0-16383.
fn parse_slots(items: &[String]) -> anyhow::Result<Vec<(u32, u32)>> {
    items
        .iter()
        .map(|s| {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let parse = |x: &str| x.trim().parse::<u32>().ok().filter(|&n| n < 16384);
            match (parse(a), parse(b)) {
                (Some(a), Some(b)) if a <= b => Ok((a, b)),
                _ => anyhow::bail!(
                    "{s:?} is not a slot or a range of slots within 0-16383 (like 0-999)"
                ),
            }
        })
        .collect()
}

/// `g1=2`: a group's weight.
fn parse_weights(items: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    items
        .iter()
        .map(|w| match w.split_once('=') {
            Some((g, n)) if !g.is_empty() => match n.trim().parse::<u32>() {
                Ok(n) => Ok((g.trim().to_string(), n)),
                Err(_) => anyhow::bail!("weight {n:?} of {g} is not a whole number"),
            },
            _ => anyhow::bail!("{w:?} is not group=weight (like g1=2)"),
        })
        .collect()
}

/// Queues migrations (`moves`, or a rebalance by `weights`); the commit's index, 0 when there
/// was nothing to move.
async fn migrate(
    first: &Sentinel,
    name: &str,
    moves: Vec<pb::SlotMove>,
    weights: HashMap<String, u32>,
) -> anyhow::Result<u64> {
    let req = pb::MigrateSlotsRequest {
        cluster: name.to_string(),
        moves,
        weights,
    };
    Ok(first
        .call(first.client.clone().migrate_slots(req))
        .await?
        .index)
}

/// Waits for the queued migrations unless told not to, then says so once every one of them
/// (and each of `expect`: a group and its slot ranges) left its slots with its target.
async fn finish(
    first: &Sentinel,
    args: &CtlArgs,
    name: &str,
    index: u64,
    wait: bool,
    what: &str,
    expect: Vec<(String, Vec<(u32, u32)>)>,
) -> anyhow::Result<()> {
    if index == 0 {
        println!("{}", done(args.json, 0, "nothing to move"));
        return Ok(());
    }
    if !wait {
        let what =
            format!("migrations queued in {name}; `vigil ctl cluster status {name}` follows them");
        println!("{}", done(args.json, index, &what));
        return Ok(());
    }
    wait_moved(first, name, args.json, expect).await?;
    println!("{}", done(args.json, index, what));
    Ok(())
}

/// Waits until `name` has no migration queued; an error unless each one queued now, and each
/// of `expect`, ended with its slots at its target (a migration given up leaves them).
async fn wait_moved(
    first: &Sentinel,
    name: &str,
    json: bool,
    mut expect: Vec<(String, Vec<(u32, u32)>)>,
) -> anyhow::Result<()> {
    expect.extend(cluster(first, name).await?.migrations.iter().map(|m| {
        let ranges = m.slots.iter().map(|r| (r.start, r.end)).collect();
        (m.to.clone(), ranges)
    }));
    wait_idle(first, name, json).await?;
    for (to, ranges) in &expect {
        if !owns(first, name, to, ranges).await? {
            anyhow::bail!(
                "a move to {to} was given up and its slots stayed where they were: the sentinels' events (`-migration-retry`, `-migration-aborted`) say why"
            );
        }
    }
    Ok(())
}

/// The cluster `name`.
async fn cluster(first: &Sentinel, name: &str) -> anyhow::Result<pb::ShardedCluster> {
    let list = first
        .call(
            first
                .client
                .clone()
                .list_clusters(pb::ListClustersRequest {}),
        )
        .await?;
    list.clusters
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            anyhow::anyhow!("no cluster named {name:?} (`vigil ctl cluster status` lists them)")
        })
}

/// Whether `group` owns every slot of `ranges`.
async fn owns(
    first: &Sentinel,
    name: &str,
    group: &str,
    ranges: &[(u32, u32)],
) -> anyhow::Result<bool> {
    let c = cluster(first, name).await?;
    Ok(ranges.iter().all(|&(a, b)| {
        (a..=b).all(|s| {
            c.slots
                .iter()
                .any(|r| r.start <= s && s <= r.end && r.group == group)
        })
    }))
}

/// Waits until `name` has no migration queued, telling each step on stderr (text mode).
async fn wait_idle(first: &Sentinel, name: &str, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let c = cluster(first, name).await?;
        let Some(m) = c.migrations.first() else {
            return Ok(());
        };
        let now = format!(
            "migration {} {} -> {}: {} ({} queued)",
            m.id,
            m.from,
            m.to,
            m.phase.to_lowercase(),
            c.migrations.len()
        );
        if now != last && !json {
            eprintln!("{now}");
            last = now;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("migrations still in flight after an hour: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A group's master (`name (address)`), its replicas, and the keys its master holds.
fn shard(groups: &[pb::Group], name: &str) -> (String, Vec<String>, u64) {
    let Some(g) = groups.iter().find(|g| g.name == name) else {
        return ("(group not monitored)".into(), Vec::new(), 0);
    };
    let master = g
        .nodes
        .iter()
        .find(|n| n.name == g.master)
        .map_or("none".to_string(), |n| format!("{} ({})", n.name, n.data));
    let replicas = g
        .nodes
        .iter()
        .filter(|n| n.name != g.master)
        .map(|n| n.name.clone())
        .collect();
    let keys = g
        .health
        .iter()
        .find(|h| h.name == g.master)
        .map_or(0, |h| h.keys);
    (master, replicas, keys)
}

/// The text form: per cluster, a table of slot ranges.
pub fn status_text(clusters: &[pb::ShardedCluster], groups: &[pb::Group]) -> String {
    if clusters.is_empty() {
        return "No sharded clusters (`vigil ctl cluster create` makes one).\n".into();
    }
    let mut out = String::new();
    for c in clusters {
        let flight = match c.migrations.first() {
            None => "no migration in flight".to_string(),
            Some(m) => format!(
                "migration {} in flight: {} -> {} slots {} ({}, attempt {}); {} queued after it",
                m.id,
                m.from,
                m.to,
                m.slots
                    .iter()
                    .map(|r| format!("{}-{}", r.start, r.end))
                    .collect::<Vec<_>>()
                    .join(","),
                m.phase.to_lowercase(),
                m.attempts + 1,
                c.migrations.len() - 1
            ),
        };
        out.push_str(&format!(
            "Cluster {} (map epoch {}, groups {}); {flight}\n",
            c.name,
            c.epoch,
            c.groups.join(",")
        ));
        let mut rows = vec![vec![
            "SLOTS".into(),
            "GROUP".into(),
            "MASTER".into(),
            "REPLICAS".into(),
            "KEYS".into(),
        ]];
        for r in &c.slots {
            let (master, replicas, keys) = shard(groups, &r.group);
            rows.push(vec![
                format!("{}-{}", r.start, r.end),
                r.group.clone(),
                master,
                if replicas.is_empty() {
                    "-".into()
                } else {
                    replicas.join(",")
                },
                keys.to_string(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}

/// The JSON form.
pub fn status_json(clusters: &[pb::ShardedCluster], groups: &[pb::Group]) -> serde_json::Value {
    let clusters: Vec<_> = clusters
        .iter()
        .map(|c| {
            let slots: Vec<_> = c
                .slots
                .iter()
                .map(|r| {
                    let (master, replicas, keys) = shard(groups, &r.group);
                    json!({
                        "start": r.start, "end": r.end, "group": r.group,
                        "master": master, "replicas": replicas, "keys": keys,
                    })
                })
                .collect();
            let migrations: Vec<_> = c
                .migrations
                .iter()
                .map(|m| {
                    let slots: Vec<_> = m.slots.iter().map(|r| json!([r.start, r.end])).collect();
                    json!({
                        "id": m.id, "from": m.from, "to": m.to, "slots": slots,
                        "phase": m.phase.to_lowercase(), "attempts": m.attempts,
                    })
                })
                .collect();
            json!({
                "name": c.name, "epoch": c.epoch, "groups": c.groups,
                "slots": slots, "migrations": migrations,
            })
        })
        .collect();
    json!({ "clusters": clusters })
}
