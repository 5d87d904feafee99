//! What the drill reads of the cluster: the master as the Raft state has it, every sentinel's
//! events, and whether the cluster is whole (a master, every replica following, no failover
//! in flight, every sentinel in reach); and the settings it gives a local cluster's groups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use parking_lot::Mutex;
use vigil_proto::sentinel as pb;

use super::args::{DrillArgs, Mode};
use crate::ctl::client::{Client, follow_events};

/// How long a cluster may take to become healthy (between rounds, after healing).
pub(super) const SETTLE: Duration = Duration::from_secs(60);

/// The drill's own view of the master: the sentinels' linearizable `GetMaster`, asked in
/// turn. (The writers find the master as client libraries do, see [`super::workload`].)
pub struct Sentinels {
    pub(super) clients: Vec<Client>,
    pub(super) group: String,
}

impl Sentinels {
    /// The master, if some sentinel names one that is not being failed over.
    pub(super) async fn master_info(&self) -> Option<pb::MasterInfo> {
        for c in &self.clients {
            let req = pb::GetMasterRequest {
                group: self.group.clone(),
            };
            if let Ok(m) = c.clone().get_master(req).await
                && m.get_ref().status == "ok"
            {
                return Some(m.into_inner());
            }
        }
        None
    }
}

/// Events from every sentinel, with the local time each arrived (the leader's own actions,
/// such as `+odown`, are published only on its stream).
pub(super) type EventLog = Arc<Mutex<Vec<(Instant, pb::TopologyEvent)>>>;

pub(super) fn watch_events(clients: &[Client], group: &str, log: EventLog) {
    let mut events = follow_events(clients);
    let group = group.to_string();
    tokio::spawn(async move {
        while let Some((_, ev)) = events.recv().await {
            if ev.group == group {
                log.lock().push((Instant::now(), ev));
            }
        }
    });
}

/// The cluster's shape when it is healthy.
pub(super) struct Healthy {
    pub(super) master: String,
    pub(super) address: String,
    pub(super) epoch: u64,
    pub(super) leader: u64,
    /// Each sentinel's id and gRPC address.
    pub(super) members: Vec<pb::Member>,
    /// A client of the leader.
    pub(super) leader_client: Client,
    /// Each node's name, data and admin address.
    pub(super) nodes: Vec<pb::Node>,
    pub(super) min_failover_interval: Duration,
}

/// Waits until a master is assigned, every other node follows it with its link up, no
/// failover is in flight, and every sentinel is reachable from the leader and has announced
/// its RESP address.
pub(super) async fn healthy(
    clients: &[Client],
    group: &str,
    within: Duration,
) -> anyhow::Result<Healthy> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no sentinel answered");
    while Instant::now() < deadline {
        match check_healthy(clients, group).await {
            Ok(h) => return Ok(h),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the cluster did not become healthy within {within:?}: {last}")
}

async fn check_healthy(clients: &[Client], group: &str) -> Result<Healthy, String> {
    for c in clients {
        let Ok(info) = c.clone().cluster_status(pb::ClusterStatusRequest {}).await else {
            continue;
        };
        let info = info.into_inner();
        if info.leader == 0 || info.leader != info.id {
            continue;
        }
        // This one leads: it knows what it reaches and what it is doing.
        if let Some(m) = info.members.iter().find(|m| !m.reachable) {
            return Err(format!(
                "sentinel {} is not reachable from the leader",
                m.id
            ));
        }
        // Clients (the writers) find the master through these.
        if let Some(m) = info.members.iter().find(|m| m.resp.is_empty()) {
            return Err(format!(
                "sentinel {} has not announced its Redis Sentinel protocol address yet",
                m.id
            ));
        }
        let groups = c
            .clone()
            .list_groups(pb::ListGroupsRequest {})
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let g = groups
            .groups
            .into_iter()
            .find(|g| g.name == group)
            .ok_or_else(|| format!("no group {group:?} is monitored"))?;
        if g.master.is_empty() {
            return Err("no master is assigned".into());
        }
        if !g.failover_step.is_empty() {
            return Err(format!("a failover is in flight ({})", g.failover_step));
        }
        for h in &g.health {
            let fine = if h.name == g.master {
                h.role == "master" && h.writable
            } else {
                h.role == "replica" && h.link == "up"
            };
            if !fine || h.sdown {
                return Err(format!(
                    "{} is {} (link {:?}, down {})",
                    h.name, h.role, h.link, h.sdown
                ));
            }
        }
        let address = g
            .nodes
            .iter()
            .find(|n| n.name == g.master)
            .map(|n| n.data.clone())
            .unwrap_or_default();
        let s = g.settings.unwrap_or_default();
        return Ok(Healthy {
            leader_client: c.clone(),
            master: g.master,
            address,
            epoch: g.epoch,
            leader: info.leader,
            members: info.members,
            nodes: g.nodes,
            min_failover_interval: Duration::from_millis(s.min_failover_interval_ms),
        });
    }
    Err("no sentinel leads".into())
}

/// The port of a `host:port` address the sentinels reported (a node's, a sentinel's).
pub(super) fn port_of(address: &str) -> anyhow::Result<u16> {
    address
        .parse::<vigil_base::HostPort>()
        .map(|a| a.port())
        .map_err(|e| anyhow!("{e}"))
}

/// Sets the drill's `down_after`, mode and failover interval on `group` of a local cluster:
/// they hold even when its Raft state comes from an earlier run with other settings
/// (`--cluster` keeps its directory), and rounds need not wait the default five seconds
/// between failovers.
pub(super) async fn configure(
    leader: &Client,
    group: &str,
    args: &DrillArgs,
) -> anyhow::Result<()> {
    let down_after = args.down_after.as_millis() as u64;
    let sync = match args.mode {
        Mode::Sync => 1,
        Mode::Async => 0,
    };
    for (key, value) in [
        ("down-after-milliseconds", down_after),
        ("sync-replicas", sync),
        ("min-failover-interval", down_after.max(1000)),
    ] {
        let req = pb::SetOptionRequest {
            group: group.into(),
            key: key.into(),
            value: value.to_string(),
        };
        // A proposal in flight when the sentinels' leadership changes is lost and its call
        // times out; setting an option again is harmless, so a lost one is tried again.
        let mut attempt = 1;
        loop {
            match leader.clone().set_option(req.clone()).await {
                Ok(_) => break,
                Err(e)
                    if attempt < 3
                        && matches!(
                            e.code(),
                            tonic::Code::Cancelled
                                | tonic::Code::DeadlineExceeded
                                | tonic::Code::Unavailable
                        ) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => bail!("cannot set {key} on {group}: {}", e.message()),
            }
        }
    }
    Ok(())
}

/// The `down_after` of `group`, in milliseconds (0 when no sentinel says).
pub(super) async fn down_after_of(c: &Client, group: &str) -> u64 {
    let Ok(groups) = c.clone().list_groups(pb::ListGroupsRequest {}).await else {
        return 0;
    };
    groups
        .into_inner()
        .groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.settings)
        .map_or(0, |s| s.down_after_ms)
}
