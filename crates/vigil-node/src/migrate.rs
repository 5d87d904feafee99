//! MIGRATE's side of the wire: connections to target servers, cached per `host:port` as
//! Redis caches them (closed after 10 s unused, at most 64), and one exchange with a target —
//! optional AUTH, SELECT when the cached connection sits on another database, then the
//! RESTOREs in one pipelined write, each reply read back as one bounded line.
//!
//! The invariant: nothing here touches the store. The command ([`crate::cmd::migrate`]) dumps
//! the keys before and deletes the acknowledged ones after, each under the store lock, so the
//! node keeps serving while the target is slow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The reply to MIGRATE inside MULTI/EXEC: EXEC runs under the store lock and cannot wait for
/// a target (Redis can only because it blocks the whole server meanwhile).
pub(crate) const IN_MULTI: &str =
    "ERR MIGRATE cannot run inside a transaction on this server; run it on its own";

/// Unused this long, a cached connection is closed (Redis' `MIGRATE_SOCKET_CACHE_TTL`).
const IDLE: Duration = Duration::from_secs(10);
/// At most this many cached connections (Redis' `MIGRATE_SOCKET_CACHE_ITEMS`).
const MAX_CACHED: usize = 64;
/// The longest reply line kept, as Redis reads replies into a 1 KiB buffer.
const MAX_LINE: usize = 1024;
/// Writes go out in pieces of this size, each under the timeout, as Redis writes them.
const CHUNK: usize = 64 * 1024;

/// One connection to a target.
pub(crate) struct Target {
    stream: TcpStream,
    /// The database the target has selected on this connection as far as we know; -1 (unknown)
    /// at first and after an error. Kept as Redis keeps it, so that `MIGRATE … -1 …` sends no
    /// SELECT on such a connection, exactly as Redis does.
    db: i64,
    last_use: Instant,
    /// Read but not yet consumed.
    buf: Vec<u8>,
}

/// The cached connections, by `host:port`.
#[derive(Default)]
pub(crate) struct Sockets {
    map: Mutex<HashMap<String, Target>>,
}

/// Why an exchange failed on the socket; `Display` is Redis' reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IoFail {
    /// No connection within the timeout.
    #[error("IOERR error or timeout connecting to the client")]
    Connect,
    /// Writing the request failed or timed out.
    #[error("IOERR error or timeout writing to target instance")]
    Write,
    /// Reading a reply failed or timed out ("to" is Redis' wording, kept byte for byte).
    #[error("IOERR error or timeout reading to target instance")]
    Read,
}

/// What one migration sends.
pub(crate) struct Request {
    /// `AUTH [user] password`.
    pub auth: Option<(Option<Bytes>, Bytes)>,
    /// The target database.
    pub db: i64,
    /// Key, milliseconds to live (0: none), DUMP payload.
    pub keys: Vec<(Bytes, i64, Bytes)>,
    /// Add `REPLACE` to each RESTORE.
    pub replace: bool,
}

/// How an exchange went.
pub(crate) struct Exchange {
    /// How many leading keys the target acknowledged (`+…`).
    pub acked: Vec<bool>,
    /// The target's first error line, without its `-`.
    pub error: Option<String>,
    /// A socket failure after the target had answered (some replies missing).
    pub io: Option<IoFail>,
}

impl Sockets {
    /// How many connections are cached (INFO's `migrate_cached_sockets`).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Closes the connections unused for longer than 10 s (called every second).
    pub(crate) fn close_idle(&self) {
        self.map.lock().retain(|_, t| t.last_use.elapsed() <= IDLE);
    }

    /// Runs one migration against `host:port`, as Redis does: on a socket error before the
    /// target answered anything (other than a timeout) it reconnects and tries once more.
    pub(crate) async fn migrate(
        &self,
        host: &str,
        port: u16,
        req: &Request,
        timeout: Duration,
    ) -> Result<Exchange, IoFail> {
        let name = format!("{host}:{port}");
        let mut retried = false;
        loop {
            let mut target = match self.take(&name) {
                Some(t) => t,
                None => connect(host, port, timeout).await?,
            };
            target.last_use = Instant::now();
            match exchange(&mut target, req, timeout).await {
                Ok(ex) => {
                    // A connection that failed mid-way is dropped; one that stays keeps the
                    // database only when the exchange succeeded.
                    if ex.io.is_none() {
                        target.db = if ex.error.is_none() { req.db } else { -1 };
                        self.put(name, target);
                    }
                    return Ok(ex);
                }
                Err(Failed { fail, timed_out }) => {
                    if timed_out || retried {
                        return Err(fail);
                    }
                    retried = true;
                }
            }
        }
    }

    fn take(&self, name: &str) -> Option<Target> {
        self.map.lock().remove(name)
    }

    fn put(&self, name: String, target: Target) {
        let mut map = self.map.lock();
        if map.len() >= MAX_CACHED
            && !map.contains_key(&name)
            && let Some(k) = map.keys().next().cloned()
        {
            map.remove(&k);
        }
        map.insert(name, target);
    }
}

/// A socket failure, and whether it was the timeout (Redis retries only other errors).
struct Failed {
    fail: IoFail,
    timed_out: bool,
}

/// Connects as Redis does, down to its error words: a name that does not resolve, or no answer
/// within the timeout, is a failure to connect; a refused connection shows only when Redis
/// writes to it (its connect does not wait for the outcome), so it reads "writing".
async fn connect(host: &str, port: u16, timeout: Duration) -> Result<Target, IoFail> {
    let addr = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| IoFail::Connect)?
        .map_err(|_| IoFail::Connect)?
        .next()
        .ok_or(IoFail::Connect)?;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(IoFail::Connect),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(IoFail::Write);
        }
        Ok(Err(_)) => return Err(IoFail::Connect),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    Ok(Target {
        stream,
        db: -1,
        last_use: Instant::now(),
        buf: Vec::new(),
    })
}

/// Appends one request in RESP.
fn command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

/// Builds the pipeline: AUTH, SELECT if needed, the RESTOREs.
fn pipeline(req: &Request, select: bool) -> Vec<u8> {
    let mut out = Vec::new();
    match &req.auth {
        Some((Some(user), pass)) => command(&mut out, &[b"AUTH", user, pass]),
        Some((None, pass)) => command(&mut out, &[b"AUTH", pass]),
        None => {}
    }
    if select {
        command(&mut out, &[b"SELECT", req.db.to_string().as_bytes()]);
    }
    for (key, ttl, payload) in &req.keys {
        let ttl = ttl.to_string();
        let mut parts: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
        if req.replace {
            parts.push(b"REPLACE");
        }
        command(&mut out, &parts);
    }
    out
}

async fn exchange(t: &mut Target, req: &Request, timeout: Duration) -> Result<Exchange, Failed> {
    let select = t.db != req.db;
    let out = pipeline(req, select);
    let failed = |fail, timed_out| Failed { fail, timed_out };
    for chunk in out.chunks(CHUNK) {
        match tokio::time::timeout(timeout, t.stream.write_all(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(failed(IoFail::Write, false)),
            Err(_) => return Err(failed(IoFail::Write, true)),
        }
    }
    let mut prefix_error = None;
    if req.auth.is_some() {
        let l = t
            .line(timeout)
            .await
            .map_err(|to| failed(IoFail::Read, to))?;
        prefix_error = l.strip_prefix(b"-").map(lossy);
    }
    if select {
        let l = t
            .line(timeout)
            .await
            .map_err(|to| failed(IoFail::Read, to))?;
        prefix_error = prefix_error.or_else(|| l.strip_prefix(b"-").map(lossy));
    }
    let mut ex = Exchange {
        acked: Vec::with_capacity(req.keys.len()),
        error: None,
        io: None,
    };
    for i in 0..req.keys.len() {
        let line = match t.line(timeout).await {
            Ok(l) => l,
            // Nothing answered yet: the caller may retry on a fresh connection.
            Err(to) if i == 0 && ex.error.is_none() && prefix_error.is_none() => {
                return Err(failed(IoFail::Read, to));
            }
            Err(_) => {
                ex.io = Some(IoFail::Read);
                break;
            }
        };
        let err = prefix_error
            .clone()
            .or_else(|| line.strip_prefix(b"-").map(lossy));
        match err {
            Some(e) => {
                ex.error.get_or_insert(e);
                ex.acked.push(false);
            }
            None => ex.acked.push(true),
        }
    }
    Ok(ex)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Target {
    /// One reply line without its CRLF, at most [`MAX_LINE`] bytes kept (the rest of a longer
    /// line is read and dropped), within `timeout` for the whole line (a target trickling bytes
    /// cannot hold the command forever). `Err(true)`: the timeout passed; `Err(false)`: an error
    /// or the connection closed.
    async fn line(&mut self, timeout: Duration) -> Result<Vec<u8>, bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut line = Vec::new();
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let take = i.min(MAX_LINE.saturating_sub(line.len()));
                line.extend_from_slice(&self.buf[..take]);
                self.buf.drain(..=i);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            let room = MAX_LINE.saturating_sub(line.len()).min(self.buf.len());
            line.extend_from_slice(&self.buf[..room]);
            self.buf.clear();
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(true),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(false),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_is_auth_select_restores() {
        let req = Request {
            auth: Some((Some(Bytes::from_static(b"u")), Bytes::from_static(b"p"))),
            db: 9,
            keys: vec![(Bytes::from_static(b"k"), 5, Bytes::from_static(b"x"))],
            replace: true,
        };
        assert_eq!(
            pipeline(&req, true),
            b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n9\r\n\
              *5\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n5\r\n$1\r\nx\r\n$7\r\nREPLACE\r\n"
                .to_vec()
        );
        let req = Request {
            auth: None,
            replace: false,
            ..req
        };
        assert_eq!(
            pipeline(&req, false),
            b"*4\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n5\r\n$1\r\nx\r\n".to_vec()
        );
    }

    /// Lines are cut at 1 KiB, CRLF removed, the rest of a long line dropped.
    #[tokio::test]
    async fn lines_are_bounded() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut long = vec![b'a'; 5000];
            long.extend_from_slice(b"\r\n+OK\r\n");
            s.write_all(&long).await.unwrap();
            s
        });
        let mut t = connect("127.0.0.1", port, Duration::from_secs(2))
            .await
            .unwrap();
        let _s = server.await.unwrap();
        let first = t.line(Duration::from_secs(2)).await.unwrap();
        assert_eq!(first.len(), MAX_LINE);
        assert_eq!(t.line(Duration::from_secs(2)).await.unwrap(), b"+OK");
        assert_eq!(t.line(Duration::from_millis(50)).await, Err(true));
    }
}
