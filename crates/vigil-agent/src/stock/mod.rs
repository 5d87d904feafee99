//! Talking to a stock `redis-server` / `valkey-server` over RESP: one connection ([`Server`])
//! that logs in with the server's password or ACL user, translates command names through
//! Redis' `rename-command` map, bounds every call by a deadline and every reply by a size, and
//! reconnects on the next call after any error. [`info`] reads `INFO` into the fields NodeAdmin
//! reports. Used by `vigil agent` (over loopback) and by the sentinels' agentless driver.

pub mod info;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use info::Info;

/// Largest reply accepted from a server (an `INFO` is a few kilobytes).
const MAX_REPLY: usize = 16 << 20;

/// Why a call to a stock server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StockError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server at {addr}: {reason}")]
    Unreachable {
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No complete reply within the deadline.
    #[error("the server at {addr} did not answer {command} within {timeout:?}")]
    Timeout {
        /// Its address.
        addr: String,
        /// The command.
        command: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The server answered with an error.
    #[error("the server refused {command}: {message}")]
    Refused {
        /// The command.
        command: String,
        /// Its error reply.
        message: String,
    },
    /// The reply was not RESP, or larger than allowed.
    #[error("the server at {addr} sent a malformed reply: {reason}")]
    Protocol {
        /// Its address.
        addr: String,
        /// What was wrong.
        reason: String,
    },
    /// The command is disabled by the server's `rename-command` (renamed to "").
    #[error(
        "{command} is disabled on this server (rename-command to \"\"); Vigil needs it: rename it instead and list the new name in rename_commands"
    )]
    Disabled {
        /// The command.
        command: String,
    },
}

impl StockError {
    /// Whether the server answered (with an error) rather than failed to answer.
    pub fn answered(&self) -> bool {
        matches!(
            self,
            StockError::Refused { .. } | StockError::Disabled { .. }
        )
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => f.write_str(a),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How to log in to a server and what its commands are called.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// ACL user (empty: `default`).
    pub user: String,
    /// Password (empty: none).
    pub pass: String,
    /// Redis' `rename-command` map: upper-case command name → the name the server knows.
    pub renames: HashMap<String, String>,
    /// TLS to a `host:port` endpoint (a server with `tls-port`); `None`: plain TCP.
    pub tls: Option<TlsClient>,
}

/// Where a TLS client configuration comes from: asked on each connection, so certificates
/// re-read since (SIGHUP) apply to the next one.
#[derive(Clone)]
pub struct TlsClient(
    pub std::sync::Arc<dyn Fn() -> std::sync::Arc<rustls::ClientConfig> + Send + Sync>,
);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

/// A TLS session to `addr` (`host:port`, the host checked against the server's certificate)
/// over `tcp`.
async fn tls_connect(
    tls: &std::sync::Arc<rustls::ClientConfig>,
    addr: &str,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let host = addr
        .parse::<vigil_base::HostPort>()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.host().to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    stream: Box<dyn Stream>,
    buf: BytesMut,
}

/// One connection to one stock server, opened on first use and after every failure. Calls
/// are serialised (one in flight), which keeps replies matched to their commands.
pub struct Server {
    endpoint: Endpoint,
    access: Access,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl Server {
    /// A server at `endpoint`, each call bounded by `timeout`.
    pub fn new(endpoint: Endpoint, access: Access, timeout: Duration) -> Server {
        let renames = access
            .renames
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect();
        Server {
            endpoint,
            access: Access { renames, ..access },
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Where it listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Closes the connection (the next call opens a new one).
    pub async fn disconnect(&self) {
        *self.conn.lock().await = None;
    }

    /// Sends one command (`args[0]` is its name, renamed as configured) and returns the reply;
    /// an error reply is [`StockError::Refused`].
    pub async fn call(&self, args: &[&str]) -> Result<BytesFrame, StockError> {
        let name = args
            .first()
            .copied()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut replies = self.pipeline(&[args], &name).await?;
        match replies.pop() {
            Some(BytesFrame::Error(message)) => Err(StockError::Refused {
                command: name,
                message: message.to_string(),
            }),
            Some(frame) => Ok(frame),
            None => Err(self.protocol(format!("no reply to {name}"))),
        }
    }

    /// Runs `commands` as one `MULTI` … `EXEC` transaction on this connection (names renamed
    /// as configured), written at once so that nothing else interleaves; the reply of each
    /// command, in order (an error reply of one command stays in its place, as `EXEC` reports
    /// it). A command the server refuses to queue aborts the whole transaction
    /// ([`StockError::Refused`] naming it).
    pub async fn transaction(&self, commands: &[&[&str]]) -> Result<Vec<BytesFrame>, StockError> {
        let mut all: Vec<&[&str]> = Vec::with_capacity(commands.len() + 2);
        all.push(&["MULTI"]);
        all.extend_from_slice(commands);
        all.push(&["EXEC"]);
        let mut replies = self.pipeline(&all, "EXEC").await?;
        let exec = replies.pop();
        if let Some((i, BytesFrame::Error(message))) = replies
            .iter()
            .enumerate()
            .find(|(_, r)| matches!(r, BytesFrame::Error(_)))
        {
            let command = all[i].first().copied().unwrap_or_default();
            return Err(StockError::Refused {
                command: command.to_ascii_uppercase(),
                message: message.to_string(),
            });
        }
        match exec {
            Some(BytesFrame::Array(results)) => Ok(results),
            Some(BytesFrame::Error(message)) => Err(StockError::Refused {
                command: "EXEC".into(),
                message: message.to_string(),
            }),
            other => Err(self.protocol(format!("EXEC answered {other:?}"))),
        }
    }

    /// Writes `commands` at once and reads one reply each, within the deadline; reconnects
    /// once when a reused connection turns out closed. Cancel-safe: the connection is out of
    /// its slot while in use, so a dropped call never leaves a half-read reply behind.
    async fn pipeline(
        &self,
        commands: &[&[&str]],
        name: &str,
    ) -> Result<Vec<BytesFrame>, StockError> {
        let mut guard = self.conn.lock().await;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let idle = guard.take();
        let attempt = async {
            let reused = idle.is_some();
            let mut conn = match idle {
                Some(c) => c,
                None => self.connect().await?,
            };
            match self.exchange(&mut conn, commands).await {
                // A connection the server closed while idle (CLIENT KILL, timeout): once more
                // on a new one. What Vigil sends is idempotent.
                Err(StockError::Unreachable { .. }) if reused => {
                    let mut conn = self.connect().await?;
                    let r = self.exchange(&mut conn, commands).await?;
                    Ok((conn, r))
                }
                r => r.map(|r| (conn, r)),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok((conn, replies))) => {
                *guard = Some(conn);
                Ok(replies)
            }
            // The stream may hold half a reply: it was dropped, never reused.
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StockError::Timeout {
                addr: self.endpoint.to_string(),
                command: name.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    fn protocol(&self, reason: String) -> StockError {
        StockError::Protocol {
            addr: self.endpoint.to_string(),
            reason,
        }
    }

    /// `call` for a reply that is text (status or bulk string).
    pub async fn call_text(&self, args: &[&str]) -> Result<String, StockError> {
        match self.call(args).await? {
            BytesFrame::SimpleString(b) | BytesFrame::BulkString(b) => {
                Ok(String::from_utf8_lossy(&b).into_owned())
            }
            other => Err(StockError::Protocol {
                addr: self.endpoint.to_string(),
                reason: format!("expected text from {}, got {other:?}", args[0]),
            }),
        }
    }

    /// `INFO` (all default sections), parsed.
    pub async fn info(&self) -> Result<Info, StockError> {
        Ok(Info::parse(&self.call_text(&["INFO"]).await?))
    }

    async fn connect(&self) -> Result<Conn, StockError> {
        let unreachable = |e: std::io::Error| StockError::Unreachable {
            addr: self.endpoint.to_string(),
            reason: e.to_string(),
        };
        let stream: Box<dyn Stream> = match &self.endpoint {
            Endpoint::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(unreachable)?;
                s.set_nodelay(true).map_err(unreachable)?;
                match &self.access.tls {
                    Some(tls) => {
                        Box::new(tls_connect(&(tls.0)(), a, s).await.map_err(unreachable)?)
                    }
                    None => Box::new(s),
                }
            }
            Endpoint::Unix(p) => Box::new(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?,
            ),
        };
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
        };
        if !self.access.pass.is_empty() {
            let mut auth = vec!["AUTH"];
            if !self.access.user.is_empty() {
                auth.push(&self.access.user);
            }
            auth.push(&self.access.pass);
            let reply = self.exchange(&mut conn, &[&auth]).await?.pop();
            if let Some(BytesFrame::Error(message)) = reply {
                return Err(StockError::Refused {
                    command: "AUTH".into(),
                    message: message.to_string(),
                });
            }
        }
        Ok(conn)
    }

    async fn exchange(
        &self,
        conn: &mut Conn,
        commands: &[&[&str]],
    ) -> Result<Vec<BytesFrame>, StockError> {
        let broken = |e: std::io::Error| StockError::Unreachable {
            addr: self.endpoint.to_string(),
            reason: e.to_string(),
        };
        let mut request = Vec::new();
        for args in commands {
            request.extend_from_slice(&self.encode(args)?);
        }
        conn.stream.write_all(&request).await.map_err(broken)?;
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            match redis_protocol::resp2::decode::decode_bytes_mut(&mut conn.buf) {
                Ok(Some((frame, _, _))) => {
                    replies.push(frame);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(self.protocol(e.to_string())),
            }
            if conn.buf.len() > MAX_REPLY {
                return Err(self.protocol(format!("reply larger than {MAX_REPLY} bytes")));
            }
            conn.buf.reserve(4096);
            if conn.stream.read_buf(&mut conn.buf).await.map_err(broken)? == 0 {
                return Err(broken(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(replies)
    }

    /// The request bytes, the command renamed as configured.
    fn encode(&self, args: &[&str]) -> Result<Bytes, StockError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for (i, a) in args.iter().enumerate() {
            let a = if i == 0 {
                match self.access.renames.get(&a.to_ascii_uppercase()) {
                    Some(n) if n.is_empty() => {
                        return Err(StockError::Disabled {
                            command: a.to_ascii_uppercase(),
                        });
                    }
                    Some(n) => n.as_str(),
                    None => a,
                }
            } else {
                a
            };
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_renamed() {
        let access = Access {
            renames: [
                ("config".to_string(), "XCONFIG".to_string()),
                ("FLUSHALL".into(), String::new()),
            ]
            .into_iter()
            .collect(),
            ..Access::default()
        };
        let s = Server::new(
            Endpoint::Tcp("127.0.0.1:1".into()),
            access,
            Duration::from_secs(1),
        );
        assert_eq!(
            &s.encode(&["config", "SET", "a", "b"]).unwrap()[..],
            b"*4\r\n$7\r\nXCONFIG\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        assert_eq!(&s.encode(&["PING"]).unwrap()[..], b"*1\r\n$4\r\nPING\r\n");
        assert!(matches!(
            s.encode(&["flushall"]),
            Err(StockError::Disabled { .. })
        ));
    }

    /// A fake server on a free port: each command (by name) gets the reply `answer` gives,
    /// after `SLOW` a delay; every connection it accepted is counted.
    async fn fake(
        answer: fn(&str) -> &'static str,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let n = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    loop {
                        while let Ok(Some((frame, _, _))) =
                            redis_protocol::resp2::decode::decode_bytes_mut(&mut buf)
                        {
                            let BytesFrame::Array(args) = frame else {
                                return;
                            };
                            let name = match args.first() {
                                Some(BytesFrame::BulkString(b)) => {
                                    String::from_utf8_lossy(b).to_string()
                                }
                                _ => return,
                            };
                            if name == "SLOW" {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            if s.write_all(answer(&name).as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match s.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    fn server(addr: String) -> Server {
        Server::new(
            Endpoint::Tcp(addr),
            Access::default(),
            Duration::from_secs(2),
        )
    }

    #[tokio::test]
    async fn a_dropped_call_never_leaves_its_reply_to_the_next() {
        let (addr, conns) = fake(|name| match name {
            "SLOW" => "+SLOW\r\n",
            _ => "+PONG\r\n",
        })
        .await;
        let s = server(addr);
        let cut = tokio::time::timeout(Duration::from_millis(50), s.call(&["SLOW"])).await;
        assert!(cut.is_err(), "the call was cut short");
        let r = s.call_text(&["PING"]).await.unwrap();
        assert_eq!(r, "PONG", "the next call reads its own reply");
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(s.call_text(&["PING"]).await.unwrap(), "PONG");
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "a good connection is kept"
        );
    }

    #[tokio::test]
    async fn a_transaction_returns_each_reply_or_names_what_was_refused() {
        let (addr, _) = fake(|name| match name {
            "MULTI" => "+OK\r\n",
            "BAD" => "-ERR unknown command 'BAD'\r\n",
            "EXEC" => "*2\r\n+OK\r\n-ERR The server is running without a config file\r\n",
            _ => "+QUEUED\r\n",
        })
        .await;
        let s = server(addr);
        let r = s
            .transaction(&[&["REPLICAOF", "NO", "ONE"], &["CONFIG", "REWRITE"]])
            .await
            .unwrap();
        assert_eq!(r.len(), 2);
        assert!(matches!(&r[1], BytesFrame::Error(_)));
        let e = s
            .transaction(&[&["REPLICAOF", "NO", "ONE"], &["BAD"]])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StockError::Refused { command, .. } if command == "BAD"),
            "{e}"
        );
    }
}
