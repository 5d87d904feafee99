//! The registry of connected clients, behind `CLIENT LIST`, `CLIENT KILL` and `INFO clients`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// What the registry and other connections may see of one client.
#[derive(Debug)]
pub struct ClientInfo {
    /// Unique, increasing id (`CLIENT ID`).
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local address.
    pub laddr: SocketAddr,
    /// The socket's file descriptor (`fd`; -1 for a client with none).
    pub fd: i32,
    /// When it connected (monotonic).
    pub created: Instant,
    /// Cancelled to disconnect the client (`CLIENT KILL`, shutdown, output limits).
    pub kill: CancellationToken,
    /// Mutable details.
    pub details: Mutex<ClientDetails>,
    /// Selected database.
    pub db: AtomicUsize,
    /// Channel + pattern subscriptions.
    pub subscriptions: AtomicUsize,
    /// Protocol version (2 or 3).
    pub resp: AtomicU8,
    /// Inside MULTI.
    pub in_multi: AtomicBool,
    /// Commands queued in the open MULTI (`multi`; -1 shown outside one).
    pub queued: AtomicUsize,
    /// Blocked in a blocking command.
    pub blocked: AtomicBool,
    /// A replica's link to this master (`flags=S`; `CLIENT KILL TYPE normal` spares it).
    pub replica: AtomicBool,
    /// Wakes the client out of a blocking command (`CLIENT UNBLOCK`); `unblock_mode` says how
    /// it answers: 1 as on its timeout, 2 with an `-UNBLOCKED` error.
    pub unblock: tokio::sync::Notify,
    /// See `unblock`.
    pub unblock_mode: AtomicU8,
    /// The connection's inbox once it has one (pub/sub, client-side caching): where other
    /// connections' tracking invalidations are redirected to.
    pub inbox: Mutex<Option<crate::pubsub::Subscriber>>,
    /// Millisecond offset of the last command from `created`.
    last_interaction_ms: AtomicU64,
    /// `qbuf`: the bytes in the query buffer as Redis counts them. While a batch of requests
    /// runs, every byte read for it (Redis trims what it processed only after the batch, so
    /// `CLIENT INFO` alone shows its own 26 bytes); between batches, a partial request's.
    pub qbuf: AtomicUsize,
    /// `qbuf-free`: the query buffer's spare capacity at the same moments.
    pub qbuf_free: AtomicUsize,
}

/// The mutable, rarely changed details of a client.
#[derive(Debug, Default)]
pub struct ClientDetails {
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Bytes>,
    /// The last command's name.
    pub last_cmd: &'static str,
    /// Channel subscriptions.
    pub sub: usize,
    /// Pattern subscriptions.
    pub psub: usize,
    /// Shard channel subscriptions.
    pub ssub: usize,
    /// The ACL user's name (empty: `default`).
    pub user: Bytes,
}

impl ClientDetails {
    /// The ACL user's name.
    pub fn user(&self) -> &[u8] {
        if self.user.is_empty() {
            b"default"
        } else {
            &self.user
        }
    }
}

impl ClientInfo {
    /// The client opened a MULTI (`flags=x`, `multi=0`).
    pub fn begin_multi(&self) {
        self.queued.store(0, Ordering::Relaxed);
        self.in_multi.store(true, Ordering::Relaxed);
    }

    /// The client's open MULTI holds `n` commands.
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n, Ordering::Relaxed);
    }

    /// The client's MULTI ended (EXEC, DISCARD, an abort): no flag, `multi=-1`.
    pub fn end_multi(&self) {
        self.in_multi.store(false, Ordering::Relaxed);
        self.queued.store(0, Ordering::Relaxed);
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_interaction_ms.store(ms, Ordering::Relaxed);
    }

    /// Seconds since the last command.
    pub fn idle_secs(&self) -> u64 {
        let now = self.created.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_interaction_ms.load(Ordering::Relaxed)) / 1000
    }

    /// Whether the client is in pub/sub mode (for `CLIENT KILL TYPE pubsub`).
    pub fn is_pubsub(&self) -> bool {
        self.subscriptions.load(Ordering::Relaxed) > 0
    }

    /// Whether the client is a replica's link.
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    /// Whether the client is of a `CLIENT LIST/KILL TYPE` (`normal`, `pubsub`, `replica` or
    /// `slave`, `master`).
    pub fn is_type(&self, kind: &str) -> bool {
        match kind {
            "pubsub" => self.is_pubsub(),
            "replica" | "slave" => self.is_replica(),
            "normal" => !self.is_pubsub() && !self.is_replica(),
            _ => false,
        }
    }

    /// One `CLIENT LIST` line, fields in Redis' order.
    pub fn list_line(&self) -> String {
        let d = self.details.lock();
        let lossy = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let mut flags = String::new();
        if self.is_replica() {
            flags.push('S');
        }
        if self.is_pubsub() {
            flags.push('P');
        }
        if self.in_multi.load(Ordering::Relaxed) {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            lossy(&d.name),
            self.created.elapsed().as_secs(),
            self.idle_secs(),
            flags,
            self.db.load(Ordering::Relaxed),
            d.sub,
            d.psub,
            d.ssub,
            if self.in_multi.load(Ordering::Relaxed) {
                self.queued.load(Ordering::Relaxed) as i64
            } else {
                -1
            },
            self.qbuf.load(Ordering::Relaxed),
            self.qbuf_free.load(Ordering::Relaxed),
            if d.last_cmd.is_empty() {
                "NULL"
            } else {
                d.last_cmd
            },
            String::from_utf8_lossy(d.user()),
            // Redis 7.0 shows no lib-name / lib-ver (CLIENT SETINFO's, from 7.2).
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// All connected clients.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            next_id: AtomicU64::new(1),
            clients: Mutex::default(),
        }
    }

    /// Registers a new client.
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            kill: CancellationToken::new(),
            details: Mutex::default(),
            db: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            in_multi: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            blocked: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            unblock: tokio::sync::Notify::new(),
            unblock_mode: AtomicU8::new(0),
            inbox: Mutex::new(None),
            last_interaction_ms: AtomicU64::new(0),
            qbuf: AtomicUsize::new(0),
            qbuf_free: AtomicUsize::new(0),
        });
        self.clients.lock().insert(id, info.clone());
        info
    }

    /// Forgets a disconnected client.
    pub fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One connected client.
    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// A snapshot of all clients, by id.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }

    /// Disconnects every client matching `pred`; returns how many.
    pub fn kill_where(&self, pred: impl Fn(&ClientInfo) -> bool) -> usize {
        let victims: Vec<_> = self.all().into_iter().filter(|c| pred(c)).collect();
        // Gone from the registry at once, as Redis frees a killed client: CLIENT LIST right
        // after CLIENT KILL no longer shows it while its task winds down.
        let mut clients = self.clients.lock();
        for c in &victims {
            c.kill.cancel();
            clients.remove(&c.id);
        }
        victims.len()
    }

    /// Number of blocked and pub/sub clients, for `INFO clients`.
    pub fn counts(&self) -> (usize, usize) {
        let all = self.all();
        let blocked = all
            .iter()
            .filter(|c| c.blocked.load(Ordering::Relaxed))
            .count();
        let pubsub = all.iter().filter(|c| c.is_pubsub()).count();
        (blocked, pubsub)
    }
}
