//! `vigil ctl cluster ...`: sharded clusters — create one over monitored groups, and show each
//! cluster's slot ranges with the owning group's master, replicas and key counts.

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
    }
    Ok(())
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
        out.push_str(&format!(
            "Cluster {} (map epoch {}, groups {}); no migration in flight\n",
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
            json!({
                "name": c.name, "epoch": c.epoch, "groups": c.groups,
                "slots": slots, "migrations": [],
            })
        })
        .collect();
    json!({ "clusters": clusters })
}
