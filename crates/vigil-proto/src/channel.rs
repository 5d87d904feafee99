//! The one way Vigil opens a gRPC channel: `http://host:port`, connect and call timeouts,
//! `TCP_NODELAY` (calls are small and latency-bound). Callers cache the channel per peer;
//! tonic reconnects it after a failure.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// Why a channel could not be described.
#[derive(Debug, thiserror::Error)]
#[error("{address:?} is not a host:port address to call over gRPC: {reason}")]
pub struct ChannelError {
    /// The address given.
    pub address: String,
    /// What tonic objected to.
    pub reason: String,
}

/// The endpoint for `address` (`host:port`): connect timeout `timeout` capped at 3 s, each
/// call bounded by `timeout`.
/// Over TLS (`https://`) once [`crate::tls::set_client`] was called.
pub fn endpoint(address: &str, timeout: Duration) -> Result<Endpoint, ChannelError> {
    Ok(base(address, timeout)?.timeout(timeout))
}

/// A channel to `address` that connects on first use and again after a failure.
pub fn lazy(address: &str, timeout: Duration) -> Result<Channel, ChannelError> {
    Ok(endpoint(address, timeout)?.connect_lazy())
}

/// A channel for long-lived streaming calls to `address`: no bound on a call (a stream lasts
/// as long as its connection), but HTTP/2 keepalive pings every second, so a peer that stops
/// answering (killed, partitioned) ends the connection and its streams within `timeout`.
pub fn streaming(address: &str, timeout: Duration) -> Result<Channel, ChannelError> {
    Ok(base(address, timeout)?
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// `address` as an endpoint with the connect (and TLS handshake) timeout, `TCP_NODELAY` and
/// TLS if set.
fn base(address: &str, timeout: Duration) -> Result<Endpoint, ChannelError> {
    let err = |e: tonic::transport::Error| ChannelError {
        address: address.to_string(),
        reason: e.to_string(),
    };
    let tls = crate::tls::client();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut e = Endpoint::from_shared(format!("{scheme}://{address}"))
        .map_err(err)?
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .tcp_nodelay(true);
    if let Some(t) = tls {
        // The handshake is bounded as the connect is: a peer stopped mid-handshake would
        // otherwise hold a lazily connecting channel (and every call on it) indefinitely.
        e = e
            .tls_config(t.timeout(timeout.min(Duration::from_secs(3))))
            .map_err(err)?;
    }
    Ok(e)
}
