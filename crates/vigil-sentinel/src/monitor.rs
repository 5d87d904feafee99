//! Every sentinel probes every node of every group: a RESP `PING` on the data port (as clients
//! see the node) and `NodeAdmin.GetStatus`. A node answers well when both succeed in time; it is
//! subjectively down (SDOWN) for this sentinel after `down_after` without a good answer. The
//! leader asks the others for their opinion before a failover; opinions are not logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use vigil_proto::node::GetStatusRequest;

use crate::driver::Handle;
use crate::nodes::Nodes;

/// How often every node is probed.
pub const PROBE: Duration = Duration::from_millis(100);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// This sentinel's view of the nodes' health.
pub struct Health {
    started: Instant,
    last_ok: Mutex<HashMap<(String, String), Instant>>,
}

impl Health {
    /// No node seen yet.
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            started: Instant::now(),
            last_ok: Mutex::new(HashMap::new()),
        })
    }

    /// How long `node` of `group` has gone without a good answer (since this sentinel started,
    /// if it never answered).
    pub fn down_for(&self, group: &str, node: &str) -> Duration {
        let since = self
            .last_ok
            .lock()
            .get(&(group.to_string(), node.to_string()))
            .copied()
            .unwrap_or(self.started);
        since.elapsed()
    }

    fn ok(&self, group: &str, node: &str) {
        self.last_ok
            .lock()
            .insert((group.to_string(), node.to_string()), Instant::now());
    }
}

/// RESP `PING` → `+PONG` on `addr` within the probe timeout.
async fn ping(addr: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        // A node that requires AUTH answers -NOAUTH: alive, which is what the probe asks.
        Some(buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

/// Probes every node every [`PROBE`] until `shutdown`.
pub async fn run(
    raft: Handle,
    nodes: Arc<Nodes>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PROBE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let targets: Vec<(String, String, String, String)> = raft
            .state
            .read()
            .groups
            .values()
            .flat_map(|g| {
                g.spec.nodes.iter().map(|n| {
                    (
                        g.spec.name.clone(),
                        n.name.clone(),
                        n.data.clone(),
                        n.admin.clone(),
                    )
                })
            })
            .collect();
        let mut probes = Vec::new();
        for (group, node, data, admin) in targets {
            let (nodes, health) = (nodes.clone(), health.clone());
            probes.push(tokio::spawn(async move {
                let status = async {
                    let mut c = nodes.client(&admin).ok()?;
                    tokio::time::timeout(PROBE_TIMEOUT, c.get_status(GetStatusRequest {}))
                        .await
                        .ok()?
                        .ok()
                };
                let (pinged, st) = tokio::join!(ping(&data), status);
                if pinged && st.is_some() {
                    health.ok(&group, &node);
                }
            }));
        }
        for p in probes {
            let _ = p.await;
        }
    }
}
