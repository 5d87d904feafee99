//! The gRPC Raft transport against a real gRPC peer on a real port: messages travel on one
//! long-lived stream carrying the cluster token, snapshots by a call of their own, a peer that
//! restarts gets a new stream, one that goes silent without closing its connection (behind a
//! proxy that swallows the bytes) is found by keepalive and gets a new stream, and a peer from
//! before streams (answering `UNIMPLEMENTED`) gets every message by `Send`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::raft_peer_server::{RaftPeer, RaftPeerServer};
use vigil_sentinel::driver::Transport;
use vigil_sentinel::transport::GrpcTransport;

/// A message received: the method it came by, its term, the call's authorization header.
type Received = (&'static str, u64, String);

/// A peer that records what reached it and by which method.
#[derive(Clone, Default)]
struct Peer {
    got: Arc<Mutex<Vec<Received>>>,
    /// `Stream` calls opened.
    streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Answer `Stream` with UNIMPLEMENTED, as a sentinel from before it does.
    old: bool,
    /// Stops the server and ends its streams.
    stop: CancellationToken,
}

impl Peer {
    fn record(&self, method: &'static str, req_auth: String, batch: pb::RaftBatch) {
        for b in batch.messages {
            let m = Message::parse_from_bytes(&b).expect("a raft message");
            self.got.lock().push((method, m.term, req_auth.clone()));
        }
    }

    fn terms(&self, method: &str) -> Vec<u64> {
        let got = self.got.lock();
        got.iter()
            .filter(|(m, _, _)| *m == method)
            .map(|(_, t, _)| *t)
            .collect()
    }
}

fn auth<T>(r: &Request<T>) -> String {
    r.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tonic::async_trait]
impl RaftPeer for Peer {
    async fn send(&self, req: Request<pb::RaftBatch>) -> Result<Response<pb::RaftAck>, Status> {
        let a = auth(&req);
        self.record("send", a, req.into_inner());
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn stream(
        &self,
        req: Request<Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::RaftAck>, Status> {
        if self.old {
            return Err(Status::unimplemented("Stream"));
        }
        self.streams
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let a = auth(&req);
        let mut s = req.into_inner();
        loop {
            let b = tokio::select! {
                b = s.message() => b?,
                _ = self.stop.cancelled() => None,
            };
            let Some(b) = b else { break };
            self.record("stream", a.clone(), b);
        }
        Ok(Response::new(pb::RaftAck {}))
    }

    async fn opinion(
        &self,
        _: Request<pb::OpinionRequest>,
    ) -> Result<Response<pb::OpinionReply>, Status> {
        Err(Status::unimplemented("opinion"))
    }
}

/// A listener on a free port below the ephemeral range, so that no outgoing connection of a
/// parallel test takes the port while a restarted peer is away from it.
fn listen() -> std::net::TcpListener {
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l;
        }
    }
    panic!("no free port in 20000-32000");
}

/// Serves `peer` on a port of its own; the port.
fn start(peer: &Peer) -> u16 {
    let listener = listen();
    let port = listener.local_addr().unwrap().port();
    serve(peer.clone(), listener);
    port
}

/// Serves `peer` on `listener` until its `stop` is cancelled.
fn serve(peer: Peer, listener: std::net::TcpListener) {
    let stop = peer.stop.clone();
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RaftPeerServer::new(peer))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stop.cancelled_owned(),
            )
            .await
            .unwrap();
    });
}

fn message(term: u64, t: MessageType) -> Message {
    let mut m = Message::default();
    m.set_msg_type(t);
    m.to = 2;
    m.from = 1;
    m.term = term;
    m
}

/// Sends heartbeats with terms `from..` (every 10 ms) until `peer` got `term` by `method`.
async fn until_received(t: &Arc<GrpcTransport>, peer: &Peer, method: &str, from: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut term = from;
    loop {
        t.send(vec![message(term, MessageType::MsgHeartbeat)]);
        term += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let got = peer.terms(method);
        if got.iter().any(|&x| x >= from) {
            return got;
        }
        assert!(Instant::now() < deadline, "nothing arrived by {method}");
    }
}

/// Waits up to 10 s for `arrived`.
async fn eventually(what: &str, arrived: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !arrived() {
        assert!(Instant::now() < deadline, "{what} did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn transport(port: u16) -> Arc<GrpcTransport> {
    GrpcTransport::new(
        1,
        "cluster-token".into(),
        HashMap::from([(2, format!("127.0.0.1:{port}"))]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_travel_on_one_stream_and_snapshots_by_call() {
    let peer = Peer::default();
    let port = start(&peer);
    let t = transport(port);
    until_received(&t, &peer, "stream", 1).await;
    // A burst arrives whole and in order on the stream.
    t.send(
        (100..200)
            .map(|i| message(i, MessageType::MsgAppend))
            .collect(),
    );
    eventually("the burst", || {
        (100..200).all(|i| peer.terms("stream").contains(&i))
    })
    .await;
    let burst: Vec<u64> = peer
        .terms("stream")
        .into_iter()
        .filter(|t| (100..200).contains(t))
        .collect();
    assert_eq!(burst, (100..200).collect::<Vec<_>>());
    assert!(peer.terms("send").is_empty(), "only the stream was used");
    assert_eq!(peer.streams.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A snapshot goes by a call of its own.
    t.send(vec![message(500, MessageType::MsgSnapshot)]);
    eventually("the snapshot", || peer.terms("send").contains(&500)).await;
    // Every message carried the cluster token.
    assert!(
        peer.got
            .lock()
            .iter()
            .all(|(_, _, a)| a == "Bearer cluster-token"),
        "a message without the token"
    );
    peer.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_gets_a_new_stream() {
    let first = Peer::default();
    let port = start(&first);
    let t = transport(port);
    until_received(&t, &first, "stream", 1).await;
    // The peer goes away (its connections closed) and comes back on the same port.
    first.stop.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let second = Peer::default();
    serve(second.clone(), listener);
    until_received(&t, &second, "stream", 1000).await;
    second.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_streams_gets_every_message_by_call() {
    let peer = Peer {
        old: true,
        ..Peer::default()
    };
    let port = start(&peer);
    let t = transport(port);
    let got = until_received(&t, &peer, "send", 1).await;
    // From then on, nothing is lost to the refused stream.
    let last = *got.iter().max().unwrap();
    let later = until_received(&t, &peer, "send", last + 1).await;
    let next: Vec<u64> = later.into_iter().filter(|&x| x > last).collect();
    assert_eq!(next.first(), Some(&(last + 1)), "{next:?}");
    peer.stop.cancel();
}

/// A TCP proxy to `port`: forwards both ways until `silence` is cancelled, then swallows
/// every byte of the connections it had (left open, as a partition leaves them), while new
/// connections are forwarded again.
async fn proxy(port: u16, silence: CancellationToken) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (client, _) = l.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let silence = if silence.is_cancelled() {
                CancellationToken::new()
            } else {
                silence.clone()
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, silence.clone()));
            tokio::spawn(pipe(sr, cw, silence));
        }
    });
    me
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silence: CancellationToken,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !silence.is_cancelled() && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gone_silent_is_found_by_keepalive_and_gets_a_new_stream() {
    let peer = Peer::default();
    let port = start(&peer);
    let silence = CancellationToken::new();
    let t = transport(proxy(port, silence.clone()).await);
    until_received(&t, &peer, "stream", 1).await;
    // The connection stays open but nothing gets through either way: only the keepalive
    // pings' missing answers tell. A new stream (on a new connection) gets messages again.
    silence.cancel();
    until_received(&t, &peer, "stream", 1000).await;
    assert_eq!(peer.streams.load(std::sync::atomic::Ordering::SeqCst), 2);
    peer.stop.cancel();
}
