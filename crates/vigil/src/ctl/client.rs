//! The client library of the sentinels' gRPC API (`SentinelService`) that `vigil ctl`, the
//! drill and `vigil up` share: clients carrying the cluster token, the Raft leader found
//! through any sentinel, calls whose failures become advice, and an event feed from every
//! sentinel that survives their restarts.
//!
//! Every failure is a sentence that says what to do: an unreachable sentinel, a refused
//! token, an unknown group, a failover in flight. Channels come from
//! [`vigil_proto::channel`], the one tonic channel builder.

use std::time::Duration;

use anyhow::{anyhow, bail};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vigil_proto::auth::Bearer;
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient;

/// A `SentinelService` client sending the cluster token.
pub type Client = SentinelServiceClient<InterceptedService<Channel, Bearer>>;

/// A watch stream lives as long as its reader: no per-call deadline (a year).
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A connection to one sentinel, with its address for messages.
#[derive(Clone)]
pub struct Sentinel {
    /// The gRPC address it was reached at.
    pub address: String,
    /// Its client.
    pub client: Client,
}

fn bearer(token: &str) -> anyhow::Result<Bearer> {
    Bearer::new(token).ok_or_else(|| anyhow!("the cluster token must be printable ASCII"))
}

/// A client of the sentinel at `address` that connects on first use (and again after a
/// failure): for callers that outlive a sentinel's restart.
pub fn lazy_client(address: &str, token: &str, timeout: Duration) -> anyhow::Result<Client> {
    let channel = vigil_proto::channel::lazy(address, timeout)?;
    Ok(SentinelServiceClient::with_interceptor(
        channel,
        bearer(token)?,
    ))
}

impl Sentinel {
    /// Connects to the sentinel at `address` now, so that an unreachable one is reported as
    /// such rather than as a failed call.
    pub async fn connect(
        address: &str,
        token: &str,
        timeout: Duration,
    ) -> anyhow::Result<Sentinel> {
        let bearer = bearer(token)?;
        let channel = vigil_proto::channel::endpoint(address, timeout)?
            .connect()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach the sentinel at {address} ({}): is it running, and is this its \
                     gRPC address (`grpc` in its config; --sentinel or VIGIL_SENTINEL)?",
                    source_text(&e)
                )
            })?;
        Ok(Sentinel {
            address: address.to_string(),
            client: SentinelServiceClient::with_interceptor(channel, bearer),
        })
    }

    /// Awaits a call made with [`Sentinel::client`], turning its status into advice.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> anyhow::Result<T> {
        fut.await
            .map(|r| r.into_inner())
            .map_err(|st| explain(&self.address, &st))
    }

    /// This sentinel's view of the Raft group.
    pub async fn cluster_status(&self) -> anyhow::Result<pb::ClusterInfo> {
        self.call(
            self.client
                .clone()
                .cluster_status(pb::ClusterStatusRequest {}),
        )
        .await
    }

    /// The Raft leader, as this sentinel knows it (itself if it leads or knows no address).
    pub async fn leader(&self, token: &str, timeout: Duration) -> anyhow::Result<Sentinel> {
        let info = self.cluster_status().await?;
        if info.leader == 0 {
            bail!(
                "the sentinel at {} knows no Raft leader: a majority of sentinels must be up and \
                 in touch",
                self.address
            );
        }
        let addr = info
            .members
            .iter()
            .find(|m| m.id == info.leader)
            .map(|m| m.address.clone())
            .filter(|a| !a.is_empty());
        match addr {
            Some(a) if info.leader != info.id => Sentinel::connect(&a, token, timeout).await,
            _ => Ok(self.clone()),
        }
    }

    /// This sentinel's event stream (`WatchTopology`), open until the sentinel ends it.
    pub async fn watch(&self) -> anyhow::Result<tonic::Streaming<pb::TopologyEvent>> {
        let mut req = tonic::Request::new(pb::WatchRequest {});
        req.set_timeout(STREAM_TIMEOUT);
        self.call(self.client.clone().watch_topology(req)).await
    }
}

/// The innermost cause, which says what actually failed (connection refused, ...).
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// A sentinel's refusal as advice for the operator, by status code.
pub fn explain(address: &str, st: &tonic::Status) -> anyhow::Error {
    let msg = st.message();
    match st.code() {
        Code::Unauthenticated => anyhow!(
            "the sentinel at {address} refused the token: pass the cluster token (`token` in \
             the sentinels' config) with --token, VIGIL_TOKEN or --token-file"
        ),
        Code::NotFound => anyhow!("{msg}; `vigil ctl status` lists the groups and sentinels"),
        Code::FailedPrecondition | Code::AlreadyExists => anyhow!("refused: {msg}"),
        Code::InvalidArgument => anyhow!("invalid request: {msg}"),
        Code::Unavailable if msg.contains("leader") => {
            anyhow!("the sentinels cannot act now: {msg}; a majority must be up")
        }
        Code::Unavailable => anyhow!("lost the sentinel at {address}: {msg}"),
        Code::DeadlineExceeded | Code::Cancelled => anyhow!(
            "the sentinel at {address} did not answer in time ({msg}); try --timeout, or check \
             that a majority of sentinels is up"
        ),
        _ => anyhow!("the sentinel at {address} failed: {msg}"),
    }
}

/// Streams every sentinel's events (`WatchTopology`), each with the index of the client it
/// came from, watching a sentinel again whenever its stream ends (it was killed and is back).
/// The leader's own actions, such as `+odown`, are published only on its stream. The watchers
/// stop when the receiver is dropped.
pub fn follow_events(
    clients: &[Client],
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, pb::TopologyEvent)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, c) in clients.iter().enumerate() {
        let (mut c, tx) = (c.clone(), tx.clone());
        tokio::spawn(async move {
            while !tx.is_closed() {
                let mut req = tonic::Request::new(pb::WatchRequest {});
                req.set_timeout(STREAM_TIMEOUT);
                if let Ok(stream) = c.watch_topology(req).await {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(ev)) = stream.message().await {
                        if tx.send((i, ev)).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each status code gets its own advice; the token advice names the flags.
    #[test]
    fn refusals_become_advice() {
        for (i, (code, msg, want)) in [
            (Code::Unauthenticated, "", "--token"),
            (Code::NotFound, "no such group \"x\"", "`vigil ctl status`"),
            (Code::FailedPrecondition, "in flight", "refused: in flight"),
            (Code::InvalidArgument, "bad", "invalid request: bad"),
            (Code::Unavailable, "no leader", "a majority must be up"),
            (Code::Unavailable, "reset", "lost the sentinel at a:1"),
            (Code::DeadlineExceeded, "slow", "try --timeout"),
            (Code::Internal, "boom", "failed: boom"),
        ]
        .into_iter()
        .enumerate()
        {
            let e = explain("a:1", &tonic::Status::new(code, msg)).to_string();
            assert!(e.contains(want), "#{i}: {e}");
        }
    }

    #[test]
    fn a_token_must_be_printable_ascii() {
        assert!(bearer("ok-token").is_ok());
        let e = bearer("bad\ntoken").unwrap_err();
        assert!(e.to_string().contains("printable ASCII"), "{e}");
    }
}
