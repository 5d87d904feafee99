//! [`Nodes`]: [`NodeAdmin`] over gRPC (`vigil node`, `vigil agent`), with one lazily connected
//! channel per node's admin address, every call carrying the nodes' token and a short
//! deadline, and one kept connection per node's data address for the `PING` probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigil_proto::auth::Bearer;
use vigil_proto::node::node_admin_client::NodeAdminClient;
use vigil_proto::node::{
    ClusterView, FenceRequest, GetStatusRequest, KillClientsRequest, NodeStatus, PromoteRequest,
    RenewLeaseRequest, ReplicateFromRequest,
};
use vigil_resp::tls::{ReadHalf, WriteHalf};

use super::{CALL_TIMEOUT, NodeAdmin};

/// A kept probe connection.
type ProbeLink = (ReadHalf, WriteHalf);

/// How long a probe connection may go unused before it is closed (probes come at least every
/// 100 ms).
const PROBE_IDLE: Duration = Duration::from_secs(10);

/// A NodeAdmin client.
pub type AdminClient = NodeAdminClient<InterceptedService<Channel, Bearer>>;

/// The NodeAdmin clients of every node this sentinel talks to ([`NodeAdmin`] over gRPC).
pub struct Nodes {
    token: String,
    channels: Mutex<HashMap<String, Channel>>,
    /// With `tls_replication`: the PING probe's TLS client configuration.
    resp_tls: Option<Arc<vigil_resp::tls::ServerTls>>,
    /// The probes' connections by data address, kept from one probe to the next as Redis
    /// Sentinel keeps its link to an instance: a connection opened and closed ten times a
    /// second by every sentinel costs the node (and the sentinel) far more than the `PING`.
    /// With when each was last used: one unused for [`PROBE_IDLE`] is a node no longer probed
    /// (removed from its group), and is closed.
    probes: Mutex<HashMap<String, (ProbeLink, Instant)>>,
}

impl Nodes {
    /// Clients presenting `token`; probes over TLS with `resp_tls`.
    pub fn new(token: String, resp_tls: Option<Arc<vigil_resp::tls::ServerTls>>) -> Nodes {
        Nodes {
            token,
            channels: Mutex::new(HashMap::new()),
            resp_tls,
            probes: Mutex::default(),
        }
    }

    /// A new probe connection to the data address `data` (over TLS with `resp_tls`).
    async fn probe_link(&self, data: &str) -> Option<ProbeLink> {
        let tcp = tokio::net::TcpStream::connect(data).await.ok()?;
        Some(match &self.resp_tls {
            Some(tls) => {
                let host = data.rsplit_once(':').map_or(data, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let s = vigil_resp::tls::connect(tls.client_config(), host, tcp)
                    .await
                    .ok()?;
                vigil_resp::tls::split_tls(s)
            }
            None => vigil_resp::tls::split_tcp(tcp),
        })
    }

    /// A client for the node whose admin address is `addr` (`host:port`).
    pub fn client(&self, addr: &str) -> Result<AdminClient, Status> {
        let channel = {
            let mut chans = self.channels.lock();
            match chans.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let c = vigil_proto::channel::lazy(addr, CALL_TIMEOUT).map_err(|e| {
                        Status::invalid_argument(format!("bad admin address {addr:?}: {e}"))
                    })?;
                    chans.insert(addr.to_string(), c.clone());
                    c
                }
            }
        };
        let bearer = Bearer::new(&self.token)
            .ok_or_else(|| Status::invalid_argument("node_token must be printable ASCII"))?;
        Ok(NodeAdminClient::with_interceptor(channel, bearer))
    }
}

#[tonic::async_trait]
impl NodeAdmin for Nodes {
    async fn status(&self, admin: &str, timeout: Duration) -> Result<NodeStatus, Status> {
        self.status_seeing(admin, timeout, 0).await
    }

    async fn status_seeing(
        &self,
        admin: &str,
        timeout: Duration,
        master_offset: u64,
    ) -> Result<NodeStatus, Status> {
        let mut c = self.client(admin)?;
        let req = GetStatusRequest { master_offset };
        match tokio::time::timeout(timeout, c.get_status(req)).await {
            Ok(r) => r.map(|r| r.into_inner()),
            Err(_) => Err(Status::deadline_exceeded("node status timed out")),
        }
    }

    async fn ping(&self, data: &str, timeout: Duration) -> bool {
        let kept = self.probes.lock().remove(data).map(|(link, _)| link);
        let attempt = async {
            // A kept connection the node closed (its idle `timeout`, CLIENT KILL, a restart)
            // says nothing of the node; a new one does.
            if let Some(mut link) = kept
                && let Some(alive) = pong(&mut link).await
            {
                return Some((alive, link));
            }
            let mut link = self.probe_link(data).await?;
            let alive = pong(&mut link).await?;
            Some((alive, link))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Some((true, link))) => {
                let mut probes = self.probes.lock();
                probes.retain(|_, (_, used)| used.elapsed() < PROBE_IDLE);
                probes.insert(data.to_string(), (link, Instant::now()));
                true
            }
            // A late reply must not answer the next probe: the connection goes.
            _ => false,
        }
    }

    async fn promote(&self, admin: &str, req: PromoteRequest) -> Result<NodeStatus, Status> {
        Ok(self.client(admin)?.promote(req).await?.into_inner())
    }

    async fn replicate_from(
        &self,
        admin: &str,
        req: ReplicateFromRequest,
    ) -> Result<NodeStatus, Status> {
        Ok(self.client(admin)?.replicate_from(req).await?.into_inner())
    }

    async fn fence(&self, admin: &str, req: FenceRequest) -> Result<NodeStatus, Status> {
        Ok(self.client(admin)?.fence(req).await?.into_inner())
    }

    async fn renew_lease(&self, admin: &str, req: RenewLeaseRequest) -> Result<(), Status> {
        self.client(admin)?.renew_lease(req).await.map(|_| ())
    }

    async fn kill_clients(&self, admin: &str, req: KillClientsRequest) -> Result<(), Status> {
        self.client(admin)?.kill_clients(req).await.map(|_| ())
    }

    async fn set_cluster_view(&self, admin: &str, view: ClusterView) -> Result<String, Status> {
        Ok(self
            .client(admin)?
            .set_cluster_view(view)
            .await?
            .into_inner()
            .digest)
    }

    async fn migration_status(
        &self,
        admin: &str,
        id: u64,
    ) -> Result<vigil_proto::node::MigrationStatusReply, Status> {
        let req = vigil_proto::node::MigrationStatusRequest { id };
        Ok(self
            .client(admin)?
            .migration_status(req)
            .await?
            .into_inner())
    }

    async fn drop_slots(
        &self,
        admin: &str,
        ranges: &[(u16, u16)],
        epoch: u64,
    ) -> Result<u64, Status> {
        let req = vigil_proto::node::DropSlotsRequest {
            epoch,
            slots: ranges
                .iter()
                .map(|&(a, b)| vigil_proto::node::SlotRange {
                    start: a as u32,
                    end: b as u32,
                })
                .collect(),
        };
        Ok(self
            .client(admin)?
            .drop_slots(req)
            .await?
            .into_inner()
            .deleted)
    }
}

/// Sends `PING` on `link` and reads the reply line: whether the node is alive (`+PONG`, or
/// `-NOAUTH` from a node that requires AUTH: alive, which is all the probe asks); `None` if the
/// connection failed or the line is too long to be either.
async fn pong((rd, wr): &mut ProbeLink) -> Option<bool> {
    wr.write_all(b"*1\r\n$4\r\nPING\r\n").await.ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while !buf[..n].ends_with(b"\r\n") {
        if n == buf.len() {
            return None;
        }
        match rd.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return None,
            Ok(m) => n += m,
        }
    }
    Some(buf.starts_with(b"+PONG") || buf.starts_with(b"-NOAUTH"))
}
