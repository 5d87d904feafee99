//! The sentinels' gRPC API as the suites use it: token-carrying clients, the leader they agree
//! on, a sentinel's config file, a placeholder `Monitor` request.

use std::path::Path;
use std::time::{Duration, Instant};

/// A `SentinelService` client carrying a token.
pub type SentinelClient = vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        vigil_proto::auth::Bearer,
    >,
>;

/// A client of the sentinel on `port`, sending `token` (connects on first use).
pub fn sentinel_client(port: u16, token: &str) -> SentinelClient {
    sentinel_client_at(&format!("127.0.0.1:{port}"), token, Duration::from_secs(60))
}

/// A client of the sentinel at `addr` (`host:port`) whose calls give up after `timeout`.
pub fn sentinel_client_at(addr: &str, token: &str, timeout: Duration) -> SentinelClient {
    // The shared builder, with the suites' shorter connect timeout (2 s).
    let channel = vigil_proto::channel::endpoint(addr, timeout)
        .unwrap_or_else(|e| panic!("{e}"))
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .connect_lazy();
    let bearer = vigil_proto::auth::Bearer::new(token).expect("an ASCII token");
    vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient::with_interceptor(
        channel, bearer,
    )
}

/// The leader that every sentinel in `alive` (id, gRPC port) reports, once they agree on one of
/// themselves; `None` if they do not within `within`.
pub async fn agreed_leader(alive: &[(u64, u16)], token: &str, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for &(_, port) in alive {
            let req = vigil_proto::sentinel::ClusterStatusRequest {};
            if let Ok(s) = sentinel_client(port, token).cluster_status(req).await {
                seen.push(s.into_inner().leader);
            }
        }
        if seen.len() == alive.len()
            && alive.iter().any(|(id, _)| *id == seen[0])
            && seen.iter().all(|l| *l == seen[0])
        {
            return Some(seen[0]);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The config of sentinel `id` (1-based) in a group whose gRPC ports are `ports`, all on
/// loopback with data under `dir`; `extra` is appended (more keys, `[raft]`, `[[groups]]`).
pub fn sentinel_config(id: u64, ports: &[u16], dir: &Path, token: &str, extra: &str) -> String {
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ id = {}, address = \"127.0.0.1:{p}\" }}", i + 1))
        .collect();
    format!(
        "id = {id}\ngrpc = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:0\"\ndir = \"{}\"\ntoken = \"{token}\"\npeers = [{}]\n{extra}",
        ports[id as usize - 1],
        dir.join(format!("s{id}")).display(),
        peers.join(", ")
    )
}

/// A `Monitor` request for group `name` with one placeholder node (for tests of the sentinels'
/// own state, where no node needs to exist).
pub fn monitor_request(name: &str) -> vigil_proto::sentinel::MonitorRequest {
    vigil_proto::sentinel::MonitorRequest {
        name: name.into(),
        nodes: vec![vigil_proto::sentinel::Node {
            name: "n1".into(),
            data: "127.0.0.1:6379".into(),
            admin: "127.0.0.1:16379".into(),
            priority: 100,
            ..Default::default()
        }],
        settings: None,
        ..Default::default()
    }
}

/// Adds the bearer token (if any) to each call.
pub type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;

/// A NodeAdmin client (of a node or an agent).
pub type AdminClient = vigil_proto::node::node_admin_client::NodeAdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AddToken>,
>;

/// A NodeAdmin client of the admin port `port`, sending `token` (none: no header at all).
pub async fn admin_client(port: u16, token: Option<&str>) -> AdminClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("an address")
        .connect()
        .await
        .expect("admin connect");
    let header: Option<tonic::metadata::MetadataValue<_>> =
        token.map(|t| format!("Bearer {t}").parse().expect("an ASCII token"));
    let f: AddToken = Box::new(move |mut req: tonic::Request<()>| {
        if let Some(h) = &header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    });
    vigil_proto::node::node_admin_client::NodeAdminClient::with_interceptor(channel, f)
}
