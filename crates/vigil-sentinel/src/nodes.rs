//! NodeAdmin clients: one lazily connected channel per storage node's admin address, every
//! call carrying the nodes' token and a short deadline.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use vigil_proto::auth::Bearer;
use vigil_proto::node::node_admin_client::NodeAdminClient;

/// How long one NodeAdmin call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// A NodeAdmin client.
pub type AdminClient = NodeAdminClient<InterceptedService<Channel, Bearer>>;

/// The NodeAdmin clients of every node this sentinel talks to.
pub struct Nodes {
    token: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Nodes {
    /// Clients presenting `token`.
    pub fn new(token: String) -> Nodes {
        Nodes {
            token,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client for the node whose admin address is `addr` (`host:port`).
    pub fn client(&self, addr: &str) -> Result<AdminClient, tonic::Status> {
        let channel = {
            let mut chans = self.channels.lock();
            match chans.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let c = Endpoint::from_shared(format!("http://{addr}"))
                        .map_err(|e| {
                            tonic::Status::invalid_argument(format!(
                                "bad admin address {addr:?}: {e}"
                            ))
                        })?
                        .connect_timeout(CALL_TIMEOUT)
                        .timeout(CALL_TIMEOUT)
                        .tcp_nodelay(true)
                        .connect_lazy();
                    chans.insert(addr.to_string(), c.clone());
                    c
                }
            }
        };
        let bearer = Bearer::new(&self.token)
            .ok_or_else(|| tonic::Status::invalid_argument("node_token must be printable ASCII"))?;
        Ok(NodeAdminClient::with_interceptor(channel, bearer))
    }
}
