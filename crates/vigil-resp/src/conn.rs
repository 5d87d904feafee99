//! The connection: the only code that touches client sockets.
//!
//! [`serve`] accepts clients up to `maxclients` and runs one task per connection. A connection
//! reads, parses requests under [`ParseLimits`], hands each to the [`Service`], and writes the
//! batch of replies once per read, so pipelined requests cost one write. Protocol errors get a
//! RESP error and close the connection; command errors are ordinary replies.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::clients::{ClientInfo, Registry};
use crate::pubsub::{self, Hub, Inbox, Message, Subscriber};
pub use crate::reply::Protocol;
use crate::reply::Reply;
use crate::request::{ParseLimits, RequestParser};
use crate::tls::{ReadHalf, ServerTls, WriteHalf};
use input::process_input;

/// Connection limits, adjustable at run time (`CONFIG SET`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request parsing limits.
    pub parse: ParseLimits,
    /// Most simultaneous clients.
    pub maxclients: usize,
    /// Close clients idle this long (`timeout`; `None`: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            parse: ParseLimits::default(),
            maxclients: 10_000,
            idle_timeout: None,
        }
    }
}

/// Who the server says it is in `HELLO`.
#[derive(Debug, Clone)]
pub struct Ident {
    /// `server` field: `redis`, as clients expect.
    pub server: &'static str,
    /// `version` field.
    pub version: &'static str,
    /// `mode` field: `standalone` or `sentinel`.
    pub mode: &'static str,
}

/// Counters kept by the connection layer, for `INFO stats`.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Accepted connections.
    pub connections_received: AtomicU64,
    /// Connections refused at `maxclients`.
    pub rejected_connections: AtomicU64,
    /// Commands handed to the service.
    pub commands_processed: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Reads from clients that returned data (`total_reads_processed`).
    pub reads_processed: AtomicU64,
    /// Writes of replies to clients (`total_writes_processed`).
    pub writes_processed: AtomicU64,
    /// Error replies, by code.
    pub errors: crate::errorstats::ErrorStats,
}

/// State shared by all connections of one server.
#[derive(Debug)]
pub struct Shared {
    /// Connected clients.
    pub clients: Registry,
    /// Pub/sub subscriptions.
    pub hub: Hub,
    /// The TLS listener's own subscriptions, where its messages differ from the plain one's
    /// (a sentinel's events name the nodes' TLS addresses); `None`: `hub` serves both.
    pub tls_hub: Option<Hub>,
    /// Limits.
    pub limits: RwLock<Limits>,
    /// The ACL users; `requirepass` is the `default` user's password.
    pub acl: RwLock<crate::acl::Acl>,
    /// The ACL's change counter (the same as `acl`'s), read without its lock.
    pub acl_generation: Arc<AtomicU64>,
    /// Identity for `HELLO`.
    pub ident: Ident,
    /// Current role for `HELLO` (`master` / `replica` / `sentinel`).
    pub role: RwLock<&'static str>,
    /// The server serves a Redis Cluster slot map: `HELLO` says `mode: cluster`.
    pub cluster_mode: AtomicBool,
    /// Number of databases `SELECT` accepts.
    pub databases: usize,
    /// Counters.
    pub stats: ConnStats,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Bytes currently held in connection output buffers.
    pub output_bytes: AtomicUsize,
}

impl Shared {
    /// Shared state with the given identity and limits.
    pub fn new(
        ident: Ident,
        limits: Limits,
        requirepass: Option<Bytes>,
        databases: usize,
        pubsub_limit: usize,
    ) -> Self {
        let mut acl = crate::acl::Acl::default();
        acl.set_requirepass(requirepass.as_deref());
        Shared {
            acl_generation: acl.generation.clone(),
            clients: Registry::new(),
            hub: Hub::new(pubsub_limit),
            tls_hub: None,
            limits: RwLock::new(limits),
            acl: RwLock::new(acl),
            ident,
            role: RwLock::new("master"),
            cluster_mode: AtomicBool::new(false),
            databases,
            stats: ConnStats::default(),
            shutdown: CancellationToken::new(),
            output_bytes: AtomicUsize::new(0),
        }
    }

    /// The hub of a plain or a `tls` connection.
    pub fn hub_for(&self, tls: bool) -> &Hub {
        match &self.tls_hub {
            Some(h) if tls => h,
            _ => &self.hub,
        }
    }
}

/// What a server does with requests; the connection does everything else.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state of the service (e.g. a MULTI queue).
    type State: Default + Send;

    /// Executes one request (`args[0]` is the command name), writing replies with
    /// [`Conn::reply`].
    fn call(
        &self,
        conn: &mut Conn<Self::State>,
        args: Vec<Bytes>,
    ) -> impl Future<Output = ()> + Send;

    /// Executes the requests parsed from one read, in order; servers override this to share
    /// work (such as a lock) across a pipeline. Stops early once the connection must close.
    fn call_batch(
        &self,
        conn: &mut Conn<Self::State>,
        batch: Vec<Vec<Bytes>>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            for args in batch {
                self.call(conn, args).await;
                if conn.close {
                    break;
                }
            }
        }
    }

    /// Runs before a batch of replies is written (e.g. waits for the log to be synced).
    fn before_reply(&self, _conn: &mut Conn<Self::State>) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs once when the connection ends.
    fn disconnected(&self, _conn: &mut Conn<Self::State>) {}
}

/// One client connection.
pub struct Conn<S> {
    /// Registry entry.
    pub info: Arc<ClientInfo>,
    /// Server-wide state.
    pub shared: Arc<Shared>,
    /// Protocol in use.
    pub proto: Protocol,
    /// Whether `AUTH` succeeded (or no password is set).
    pub authenticated: bool,
    /// The ACL user it runs as.
    pub user: crate::acl::Session,
    /// Selected database.
    pub db: usize,
    /// Subscribed channels.
    pub channels: HashSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: HashSet<Bytes>,
    /// Subscribed shard channels.
    pub shard_channels: HashSet<Bytes>,
    /// Replies not yet written.
    pub out: BytesMut,
    /// Set to close the connection after the pending replies.
    pub close: bool,
    /// The service's state.
    pub state: S,
    /// Whether the client came through the TLS port.
    pub tls: bool,
    sub: Option<(Subscriber, Inbox)>,
    rd: ReadHalf,
    wr: WriteHalf,
    inbuf: BytesMut,
    parser: RequestParser,
}

impl<S> Conn<S> {
    /// Appends a reply.
    pub fn reply(&mut self, r: impl Into<Reply>) {
        let r = r.into();
        if let Reply::Error(e) = &r {
            self.shared.stats.errors.count(e);
        }
        r.encode(self.proto, &mut self.out);
    }

    /// Writes pending replies now (before a blocking wait).
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let n = self.out.len();
        // Usually the socket takes everything at once; only a client that stops reading gets
        // the slower path, which must stay killable (CLIENT KILL, output limits).
        let written = match self.wr.try_write(&self.out) {
            Ok(w) => w,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        if written < n {
            tokio::select! {
                r = write_flush(&mut self.wr, &self.out[written..]) => r?,
                _ = self.info.kill.cancelled() => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client killed"));
                }
            }
        }
        let stats = &self.shared.stats;
        stats
            .net_output_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        stats.writes_processed.fetch_add(1, Ordering::Relaxed);
        self.out.clear();
        if self.out.capacity() > 1024 * 1024 {
            self.out = BytesMut::with_capacity(16 * 1024);
        }
        Ok(())
    }

    /// The socket halves and the unread input, for a connection that stops being a
    /// request/reply client (a replica's link on its master). Pending replies must be
    /// flushed first.
    pub fn io(&mut self) -> (&mut ReadHalf, &mut WriteHalf, &mut BytesMut) {
        (&mut self.rd, &mut self.wr, &mut self.inbuf)
    }

    /// Waits for `fut` while watching the socket: returns `None` if the client disconnects or is
    /// killed first. Input that arrives meanwhile is kept for later.
    pub async fn wait_or_disconnect<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                v = &mut fut => return Some(v),
                _ = self.info.kill.cancelled() => return None,
                r = self.rd.read_buf(&mut self.inbuf) => match r {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {
                        if self.inbuf.len() > self.shared.limits.read().parse.max_query_buffer {
                            return None;
                        }
                    }
                },
            }
        }
    }
}

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;
/// Below this much free space the read buffer grows before the next read.
const READ_MIN: usize = 1024;

/// Listen backlog: Redis' default `tcp-backlog`. The standard library's 128 makes bursts of
/// connections stall for a SYN retransmit (1 s) once the accept queue is full.
pub const BACKLOG: u32 = 511;

/// Binds a listening socket with Redis' backlog.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Writes all of `buf`, and flushes what a TLS session buffered.
pub async fn write_flush(wr: &mut WriteHalf, buf: &[u8]) -> std::io::Result<()> {
    wr.write_all(buf).await?;
    if wr.is_tls() {
        wr.flush().await?;
    }
    Ok(())
}

/// Accepts clients on `listener` until `shared.shutdown` is cancelled.
pub async fn serve<Svc: Service>(listener: TcpListener, service: Arc<Svc>, shared: Arc<Shared>) {
    serve_tls(listener, service, shared, None).await
}

/// [`serve`], with a TLS handshake first on every connection when `tls` is set.
pub async fn serve_tls<Svc: Service>(
    listener: TcpListener,
    service: Arc<Svc>,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerTls>>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared
            .stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        let maxclients = shared.limits.read().maxclients;
        if shared.clients.len() >= maxclients {
            shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let service = service.clone();
        let shared = shared.clone();
        // Each connection logs inside the server's span (which names the node); without one
        // there is nothing to enter on every poll.
        let span = tracing::Span::current();
        let tls = tls.clone();
        let conn = async move { handle(stream, addr, service, shared, tls).await };
        if span.is_none() {
            tokio::spawn(conn);
        } else {
            tokio::spawn(tracing::Instrument::instrument(conn, span));
        }
    }
    for c in shared.clients.all() {
        c.kill.cancel();
    }
}

async fn handle<Svc: Service>(
    stream: TcpStream,
    addr: SocketAddr,
    service: Arc<Svc>,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerTls>>,
) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let is_tls = tls.is_some();
    let (rd, wr) = match tls {
        None => crate::tls::split_tcp(stream),
        // Plain text, a bad certificate or a stalled client ends here, with a log line.
        Some(tls) => match tls.accept(stream).await {
            Ok(s) => crate::tls::split_tls(s),
            Err(e) => {
                crate::tls::log_refused(addr, &e);
                return;
            }
        },
    };
    let info = shared.clients.register(addr, laddr, fd);
    let authenticated = shared.acl.read().default_open();
    let mut conn = Conn {
        info: info.clone(),
        shared: shared.clone(),
        proto: Protocol::Resp2,
        authenticated,
        user: crate::acl::Session::default(),
        db: 0,
        channels: HashSet::new(),
        patterns: HashSet::new(),
        shard_channels: HashSet::new(),
        out: BytesMut::with_capacity(1024),
        close: false,
        state: Svc::State::default(),
        tls: is_tls,
        sub: None,
        rd,
        wr,
        inbuf: BytesMut::with_capacity(1024),
        parser: RequestParser::new(),
    };
    // Leaves the registry when this task ends, even by a panic in a handler: a leaked entry
    // would hold a `maxclients` slot for the life of the process. Declared after `conn`, so
    // it drops first: the entry is gone before the socket closes, and a client that saw its
    // connection end (after CLIENT KILL, say) never finds it in CLIENT LIST.
    let _registered = Registered {
        shared: shared.clone(),
        id: info.id,
    };
    run(&mut conn, &*service).await;
    service.disconnected(&mut conn);
    pubsub::commands::unsubscribe_everything(&mut conn);
}

/// A connection's registry entry, removed on drop.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.clients.remove(self.id);
    }
}

async fn run<Svc: Service>(conn: &mut Conn<Svc::State>, service: &Svc) {
    // One kill future for the connection's life: creating one per loop would register and
    // deregister a waker (two mutex operations) for every request.
    let kill = conn.info.kill.clone();
    let killed = kill.cancelled();
    tokio::pin!(killed);
    loop {
        // Requests in the buffer (just read, or read during a blocking wait) run first; their
        // replies go out in one write.
        if !conn.close && !conn.inbuf.is_empty() {
            process_input(conn, service).await;
        }
        if conn.close {
            // Gone from the registry before its last reply leaves (QUIT, protocol error), as
            // Redis frees such a client right after writing: whoever sees that reply no longer
            // finds it (CLIENT LIST, tracking redirection).
            conn.shared.clients.remove(conn.info.id);
        }
        if !conn.out.is_empty() {
            service.before_reply(conn).await;
            if conn.flush().await.is_err() {
                break;
            }
        }
        if conn.close {
            break;
        }
        // Pub/sub clients are exempt from the idle timeout, as in Redis.
        let idle = conn
            .shared
            .limits
            .read()
            .idle_timeout
            .filter(|_| conn.subscription_count() == 0);
        let idle_sleep = async move {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        // Read in large chunks, as Redis does (16 KiB): a nearly full buffer would make
        // `read_buf` read a few bytes at a time, cutting pipelines into many small batches.
        if conn.inbuf.capacity() - conn.inbuf.len() < READ_MIN {
            conn.inbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            _ = &mut killed => break,
            _ = idle_sleep => break,
            m = recv(&mut conn.sub) => match m {
                Some(pubsub::Message::SUnsubscribed(ch)) => {
                    pubsub::commands::shard_channel_ended(conn, ch);
                }
                m => {
                    let subscribed = conn.subscription_count() > 0;
                    if let Some(r) = m.and_then(|m| pubsub::push_reply(m, conn.proto, subscribed)) {
                        conn.reply(r);
                    }
                }
            },
            r = conn.rd.read_buf(&mut conn.inbuf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let stats = &conn.shared.stats;
                    stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    stats.reads_processed.fetch_add(1, Ordering::Relaxed);
                    conn.info.touch();
                }
            },
        }
    }
}

async fn recv(sub: &mut Option<(Subscriber, Inbox)>) -> Option<Message> {
    match sub {
        Some((_, inbox)) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

mod input;
mod subs;
#[cfg(test)]
mod tests;
