//! The sharded cluster as the sentinels have it (groups, slot owners, migrations in flight),
//! and the waits for it to be whole.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use vigil_proto::sentinel as pb;

use crate::ctl::client::Client;
use crate::drill::cluster::{Healthy, SETTLE, healthy};

/// The sharded cluster as the sentinels have it.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// Its groups, in the cluster's order.
    pub(super) groups: Vec<String>,
    /// The group owning each slot.
    pub(super) owner: Vec<String>,
    /// Migrations queued or in flight.
    pub(super) migrations: usize,
}

/// The sharded cluster `name` as the first sentinel that answers has it.
pub(super) async fn layout(clients: &[Client], name: &str) -> anyhow::Result<Layout> {
    let mut last = anyhow!("no sentinel answered");
    for c in clients {
        let list = match c.clone().list_clusters(pb::ListClustersRequest {}).await {
            Ok(l) => l.into_inner(),
            Err(e) => {
                last = anyhow!("{}", e.message());
                continue;
            }
        };
        let c = list
            .clusters
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| anyhow!("no sharded cluster named {name:?}"))?;
        let mut owner = vec![String::new(); usize::from(vigil_resp::slot::SLOTS)];
        for r in &c.slots {
            for s in r.start..=r.end.min(owner.len() as u32 - 1) {
                owner[s as usize] = r.group.clone();
            }
        }
        return Ok(Layout {
            groups: c.groups,
            owner,
            migrations: c.migrations.len(),
        });
    }
    Err(last)
}

/// The name of the sharded cluster to drill: `wanted` if the sentinels have one by that name,
/// else the only one they have.
pub(super) async fn cluster_name(clients: &[Client], wanted: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        for c in clients {
            let Ok(list) = c.clone().list_clusters(pb::ListClustersRequest {}).await else {
                continue;
            };
            let names: Vec<String> = list
                .into_inner()
                .clusters
                .into_iter()
                .map(|c| c.name)
                .collect();
            if names.iter().any(|n| n == wanted) {
                return Ok(wanted.to_string());
            }
            match &names[..] {
                [only] => return Ok(only.clone()),
                [] => {}
                many => bail!(
                    "the sentinels have several sharded clusters ({}): name one with --group",
                    many.join(", ")
                ),
            }
        }
        if Instant::now() > deadline {
            bail!("the sentinels have no sharded cluster (`vigil ctl cluster create`)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every shard is healthy and no migration is in flight: each group's health (in
/// the cluster's order) and the layout.
pub(super) async fn whole(
    clients: &[Client],
    cluster: &str,
) -> anyhow::Result<(Vec<Healthy>, Layout)> {
    let now = idle(clients, cluster, SETTLE).await?;
    let mut all = Vec::new();
    for g in &now.groups {
        all.push(healthy(clients, g, SETTLE).await?);
    }
    Ok((all, now))
}

/// Waits until the cluster has no migration in flight; its layout then.
pub(super) async fn idle(
    clients: &[Client],
    cluster: &str,
    within: Duration,
) -> anyhow::Result<Layout> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no sentinel answered");
    while Instant::now() < deadline {
        match layout(clients, cluster).await {
            Ok(l) if l.migrations == 0 => return Ok(l),
            Ok(l) => last = format!("{} migrations in flight", l.migrations),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the cluster {cluster:?} still had migrations after {within:?}: {last}")
}
