//! The drill's write workload: writers that find the master as Redis Sentinel clients do
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME` on the sentinels' RESP ports, in turn), write unique
//! keys, read their previous key back, and record every acknowledgement with its time, so a
//! round can tell when writes stopped, when the new master took the first one, and which
//! acknowledged writes are missing afterwards.
//!
//! Besides, each round pins a reader to the old master ([`pin`]), as an application that keeps
//! its connection to a deposed master: every read it gets answered with stale data counts.
//!
//! In sync mode, a writer connected to a stock server (its `INFO server` has no
//! `vigil_version`) follows each `SET` with `WAIT 1 1000` and counts the write as acknowledged
//! only once a replica confirmed it: a stock master replies before its replicas have a write
//! (`min-replicas-to-write` only refuses writes while replicas are missing), so a plain reply
//! promises nothing across a SIGKILL, and `WAIT` is what a Redis application that needs the
//! write on a replica uses. A `vigil node` in sync mode replies only once its replica has the
//! write, so its writes are plain `SET`s.
//!
//! Like a client that follows the sentinels' announcements (ioredis' `failoverDetector`,
//! node-redis), a writer whose request hangs on a master that discovery no longer names gives
//! up on it at once: the failover time then measures the cluster, not a client's timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vigil_base::HostPort;

/// How long one request may take before the writer gives up on its master.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
/// How often discovery is asked for the master.
const DISCOVERY_POLL: Duration = Duration::from_millis(10);
/// Pause between a writer's writes: keeps the key count modest while still timing a failover
/// to the millisecond.
const PACE: Duration = Duration::from_millis(1);
/// `WAIT`'s timeout, in milliseconds (below [`REQUEST_TIMEOUT`]).
const WAIT_MS: &str = "1000";
/// Pause between a pinned reader's reads.
const PIN_PACE: Duration = Duration::from_millis(5);
/// The most elements of one reply array the drill reads (a slot map has at most 16,384).
const MAX_ARRAY: usize = 20_000;
/// The longest bulk string the drill reads (its own values and keys are short).
const MAX_BULK: usize = 1 << 20;
/// The longest reply line (a status, an error, a length).
const MAX_LINE: u64 = 64 * 1024;
/// The deepest nesting of arrays the drill reads (a slot map has three levels).
const MAX_DEPTH: usize = 8;

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The key written.
    pub key: String,
    /// When the acknowledgement arrived.
    pub at: Instant,
    /// The master that acknowledged it (`host:port`).
    pub master: String,
}

/// What the writers share with the drill.
#[derive(Default)]
pub struct Record {
    /// Every acknowledged write, in arrival order.
    pub acks: Mutex<Vec<Ack>>,
    /// Stale reads: a writer's read that missed its own previous acknowledged write, or a
    /// pinned reader's read that the old master, answering as master, served without a key
    /// acknowledged (by any master) before the read was sent.
    pub stale_reads: AtomicU64,
    /// Some write was confirmed with `WAIT` (a stock master in sync mode).
    pub waited: AtomicBool,
    /// Follow writes to stock masters with `WAIT` (sync mode).
    sync: bool,
    stop: AtomicBool,
    /// The master discovery names now.
    master: Mutex<Option<String>>,
}

impl Record {
    /// Stops the writers (they finish their request first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts `n` writers finding the master of `group` through the sentinels at `sentinels`
/// (their RESP addresses); `sync`: writes to stock masters are confirmed with `WAIT`.
pub fn start(n: usize, sentinels: Vec<String>, group: &str, sync: bool) -> Arc<Record> {
    let record = Arc::new(Record {
        sync,
        ..Record::default()
    });
    let r = record.clone();
    let mut resolver = Resolver {
        conns: sentinels.into_iter().map(|a| (a, None)).collect(),
        group: group.to_string(),
    };
    tokio::spawn(async move {
        while !r.stop.load(Ordering::Relaxed) {
            let m = resolver.master().await;
            *r.master.lock() = m;
            tokio::time::sleep(DISCOVERY_POLL).await;
        }
    });
    for w in 0..n {
        tokio::spawn(writer(w, record.clone()));
    }
    record
}

/// Waits up to 10 s for the writers' first acknowledged write (`acked()`).
pub async fn first_ack(acked: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !acked() {
        if Instant::now() > deadline {
            anyhow::bail!("the writers got no write acknowledged within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs `fut` unless discovery stops naming `master` first.
async fn unless_replaced<T>(
    record: &Record,
    master: &str,
    fut: impl Future<Output = Option<T>>,
) -> Option<T> {
    let replaced = async {
        loop {
            tokio::time::sleep(DISCOVERY_POLL).await;
            if record.master.lock().as_deref().is_some_and(|m| m != master) {
                return;
            }
        }
    };
    tokio::select! {
        r = fut => r,
        _ = replaced => None,
    }
}

/// Whether writes to the master behind `c` must be confirmed with `WAIT` (sync mode and a
/// stock server); `None` when it did not answer.
async fn needs_wait(record: &Record, c: &mut Conn) -> Option<bool> {
    if !record.sync {
        return Some(false);
    }
    match c.call(&["INFO", "server"]).await? {
        Reply::Bulk(info) => Some(!info.windows(14).any(|w| w == b"vigil_version:")),
        _ => None,
    }
}

/// Whether the write just acknowledged by the master behind `c` is on a replica (`WAIT`
/// counted at least one); `None` when the master was replaced or the connection failed.
async fn confirmed(record: &Record, master: &str, c: &mut Conn) -> Option<bool> {
    record.waited.store(true, Ordering::Relaxed);
    match unless_replaced(record, master, c.call(&["WAIT", "1", WAIT_MS])).await? {
        Reply::Other(n) => Some(n.strip_prefix(':')?.parse::<u64>().ok()? >= 1),
        _ => None,
    }
}

async fn writer(w: usize, record: Arc<Record>) {
    // The master's address, the connection, and whether its writes need `WAIT`.
    let mut conn: Option<(String, Conn, bool)> = None;
    let mut seq = 0u64;
    let mut last_acked: Option<String> = None;
    while !record.stop.load(Ordering::Relaxed) {
        let (master, c, wait) = match conn.as_mut() {
            Some(c) => (c.0.clone(), &mut c.1, c.2),
            None => {
                let Some(addr) = record.master.lock().clone() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if let Ok(Ok(mut c)) =
                    tokio::time::timeout(REQUEST_TIMEOUT, Conn::connect(&addr)).await
                    && let Some(wait) = needs_wait(&record, &mut c).await
                {
                    conn = Some((addr, c, wait));
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                continue;
            }
        };
        seq += 1;
        let key = format!("drill:{w}:{seq}");
        let mut reply =
            unless_replaced(&record, &master, c.call(&["SET", &key, &seq.to_string()])).await;
        if wait && reply == Some(Reply::Ok) && confirmed(&record, &master, c).await != Some(true) {
            // Not on a replica within the timeout (or no answer): not acknowledged.
            reply = None;
        }
        match reply {
            Some(Reply::Ok) => {
                record.acks.lock().push(Ack {
                    key: key.clone(),
                    at: Instant::now(),
                    master: master.clone(),
                });
                // Read-your-writes: the previous acknowledged key must be there.
                if let Some(prev) = last_acked.replace(key) {
                    match unless_replaced(&record, &master, c.call(&["GET", &prev])).await {
                        Some(Reply::Nil) => {
                            record.stale_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(_) => {}
                        // Its reply may still come: the connection cannot be reused.
                        None => conn = None,
                    }
                }
                tokio::time::sleep(PACE).await;
            }
            // -READONLY, -NOREPLICAS, a dead or hung master, a write no replica confirmed:
            // ask discovery again.
            _ => {
                conn = None;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

/// A reader pinned to one node, stopped by [`Pin::stop`] (or, without waiting, when dropped).
pub struct Pin {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Pin {
    /// Stops the reader once its current read is over, so its counts belong to this round.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts a reader pinned to the node at `addr` (the round's old master), as an application
/// that holds a connection to it whatever the sentinels say: it reconnects to the same address
/// whenever the connection drops, and reads the key most recently acknowledged by any master.
/// A read the node answers as master (`ROLE`, asked right after, says so: a node never goes
/// back from replica to master that fast) with no such key is a stale read. Reads answered as
/// a replica are not judged: replicas serve possibly stale data, as Redis' do.
pub fn pin(record: Arc<Record>, addr: String) -> Pin {
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(pinned_reader(record, addr, stop.clone()));
    Pin {
        stop,
        task: Some(task),
    }
}

async fn pinned_reader(record: Arc<Record>, addr: String, stop: Arc<AtomicBool>) {
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) && !record.stop.load(Ordering::Relaxed) {
        let Some(key) = record.acks.lock().last().map(|a| a.key.clone()) else {
            tokio::time::sleep(PIN_PACE).await;
            continue;
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match tokio::time::timeout(REQUEST_TIMEOUT, Conn::connect(&addr)).await {
                Ok(Ok(c)) => conn.insert(c),
                _ => {
                    tokio::time::sleep(PIN_PACE).await;
                    continue;
                }
            },
        };
        let got = c.call(&["GET", &key]).await;
        let role = match got {
            Some(_) => c.call(&["ROLE"]).await,
            None => None,
        };
        match (got, role) {
            (Some(Reply::Nil), Some(Reply::Array(r)))
                if r.first() == Some(&Reply::Bulk(b"master".to_vec())) =>
            {
                record.stale_reads.fetch_add(1, Ordering::Relaxed);
            }
            (Some(_), Some(_)) => {}
            // Cut off, or a reply that may still come: a new connection.
            _ => conn = None,
        }
        tokio::time::sleep(PIN_PACE).await;
    }
}

/// Asks the sentinels for the master, the first that answers wins (as client libraries do).
struct Resolver {
    conns: Vec<(String, Option<Conn>)>,
    group: String,
}

impl Resolver {
    async fn master(&mut self) -> Option<String> {
        for (addr, conn) in &mut self.conns {
            if conn.is_none() {
                *conn = tokio::time::timeout(REQUEST_TIMEOUT, Conn::connect(addr))
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(c) = conn.as_mut() else { continue };
            let ask = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.group.as_str()];
            match c.call(&ask).await {
                Some(Reply::Array(a)) => {
                    // The reply's ip and port joined the way addresses are written
                    // everywhere (IPv6 in brackets), so it compares equal to `GetMaster`'s.
                    if let [Reply::Bulk(ip), Reply::Bulk(port)] = &a[..]
                        && let Some(port) = std::str::from_utf8(port)
                            .ok()
                            .and_then(|p| p.parse::<u16>().ok())
                        && let Ok(a) = HostPort::new(&String::from_utf8_lossy(ip), port)
                    {
                        return Some(a.to_string());
                    }
                }
                // No master named here (cut off from the majority): ask the next one.
                Some(Reply::Nil) => {}
                _ => *conn = None,
            }
        }
        None
    }
}

/// The replies the workload reads.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// `+OK` (or any status).
    Ok,
    /// A bulk string.
    Bulk(Vec<u8>),
    /// A null (bulk or array).
    Nil,
    /// An array.
    Array(Vec<Reply>),
    /// An error, or anything else.
    Other(String),
}

/// A minimal RESP2 connection: commands out, one reply in.
pub struct Conn {
    rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (rd, wr) = s.into_split();
        Ok(Conn {
            rd: BufReader::new(rd),
            wr,
        })
    }

    /// Sends a command and reads its reply; `None` on a connection error or timeout.
    pub async fn call(&mut self, args: &[&str]) -> Option<Reply> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.wr.write_all(req.as_bytes()).await.ok()?;
            self.read().await
        })
        .await
        .ok()
        .flatten()
    }

    /// Sends a request already encoded (a pipeline) without reading its replies.
    pub async fn send(&mut self, req: &[u8]) -> std::io::Result<()> {
        self.wr.write_all(req).await
    }

    /// Reads one reply; `None` on a connection error or timeout.
    pub async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.read())
            .await
            .ok()
            .flatten()
    }

    async fn read(&mut self) -> Option<Reply> {
        self.read_nested(0).await
    }

    async fn read_nested(&mut self, depth: usize) -> Option<Reply> {
        let mut line = String::new();
        // A bounded line: a peer that never sends a newline cannot grow it without end.
        let mut limited = tokio::io::AsyncReadExt::take(&mut self.rd, MAX_LINE);
        if limited.read_line(&mut line).await.ok()? == 0 || !line.ends_with('\n') {
            return None;
        }
        let line = line.trim_end();
        match line.as_bytes().first()? {
            b'+' => Some(Reply::Ok),
            b'$' | b'*' if line[1..] == *"-1" => Some(Reply::Nil),
            b'*' => {
                // A bounded element count (an address, a slot map, a page of SCAN).
                let n: usize = line[1..].parse().ok().filter(|n| *n <= MAX_ARRAY)?;
                if depth >= MAX_DEPTH {
                    return None;
                }
                let mut items = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    items.push(Box::pin(self.read_nested(depth + 1)).await?);
                }
                Some(Reply::Array(items))
            }
            b'_' => Some(Reply::Nil),
            b'$' => {
                let n: usize = line[1..].parse().ok().filter(|n| *n <= MAX_BULK)?;
                let mut buf = vec![0u8; n + 2];
                tokio::io::AsyncReadExt::read_exact(&mut self.rd, &mut buf)
                    .await
                    .ok()?;
                buf.truncate(n);
                Some(Reply::Bulk(buf))
            }
            _ => Some(Reply::Other(line.to_string())),
        }
    }
}

/// The keys among `keys` that the master at `addr` does not hold.
pub async fn missing(addr: &str, keys: &[String]) -> anyhow::Result<u64> {
    let held = exists(addr, keys).await?;
    Ok(held.iter().filter(|h| !**h).count() as u64)
}

/// Whether the node at `addr` holds each of `keys` (asked in pipelined batches of `EXISTS`).
pub async fn exists(addr: &str, keys: &[String]) -> anyhow::Result<Vec<bool>> {
    let mut c = Conn::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the master at {addr}: {e}"))?;
    let mut held = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let mut req = String::new();
        for k in chunk {
            req.push_str(&format!("*2\r\n$6\r\nEXISTS\r\n${}\r\n{k}\r\n", k.len()));
        }
        c.wr.write_all(req.as_bytes()).await?;
        for k in chunk {
            match c.reply().await {
                Some(Reply::Other(r)) if r == ":1" => held.push(true),
                Some(Reply::Other(r)) if r == ":0" => held.push(false),
                other => anyhow::bail!("reading {k} back from {addr} failed: {other:?}"),
            }
        }
    }
    Ok(held)
}
