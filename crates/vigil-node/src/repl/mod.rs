//! Replication master → replica.
//!
//! - [`feed`]: the stream of changes, its offset and backlog, and each replica's buffer.
//! - [`master`]: serving replicas (`REPLCONF`, `PSYNC`), acknowledgements, `WAIT` and
//!   synchronous writes.
//! - [`replica`]: following a master (handshake, full and partial resync, applying the stream).
//!
//! The protocol is Redis' PSYNC2 over the data port: `PING`, `REPLCONF listening-port`,
//! `REPLCONF capa psync2`, then `PSYNC <replid> <offset+1>` answered by `+CONTINUE <replid>`
//! (the backlog from that offset follows) or `+FULLRESYNC <replid> <offset>` and `$<len>` of
//! snapshot bytes (Vigil's snapshot format, so a Vigil master is required). Replicas send
//! `REPLCONF ACK <offset>` after each applied batch and every second. Managed nodes also send
//! `REPLCONF vigil-epoch <epoch>`, which a master of a lower epoch refuses.

pub mod feed;
pub mod master;
pub mod replica;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use feed::Feed;

use crate::gate::Role;

/// Replication state of the node.
pub struct Repl {
    /// The stream (locked after the store lock, never before it).
    pub feed: Mutex<Feed>,
    /// Bumped on every replica acknowledgement; `WAIT` and synchronous writes watch it.
    pub acks: watch::Sender<u64>,
    /// Full resynchronisations served.
    pub sync_full: AtomicU64,
    /// Partial resynchronisations accepted.
    pub sync_partial_ok: AtomicU64,
    /// Partial resynchronisations refused (a full sync followed).
    pub sync_partial_err: AtomicU64,
    /// The link to our master, while we are a replica.
    pub upstream: Mutex<Option<Upstream>>,
}

impl Repl {
    /// Replication state around `feed`.
    pub fn new(feed: Feed) -> Repl {
        Repl {
            feed: Mutex::new(feed),
            acks: watch::Sender::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            upstream: Mutex::new(None),
        }
    }
}

/// The replica task following a master.
pub struct Upstream {
    /// The master's host.
    pub host: String,
    /// The master's port.
    pub port: u16,
    /// What the link is doing.
    pub status: Arc<LinkStatus>,
    /// Stops the task.
    pub cancel: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The state of a replica's link to its master, shared with `INFO` and `ROLE`.
#[derive(Debug, Default)]
pub struct LinkStatus {
    state: AtomicU8,
    /// Node clock (ms) of the last byte read from the master.
    pub last_io_ms: AtomicU64,
    /// Node clock (ms) when the link went down; 0 while up.
    pub down_since_ms: AtomicU64,
}

/// The phases of a replica's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting to reconnect.
    Connect = 0,
    /// Connecting and handshaking.
    Connecting = 1,
    /// Receiving a full sync.
    Sync = 2,
    /// Streaming.
    Connected = 3,
}

impl Phase {
    /// The word `ROLE` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Connecting => "connecting",
            Phase::Sync => "sync",
            Phase::Connected => "connected",
        }
    }
}

impl LinkStatus {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.state.load(Ordering::Relaxed) {
            1 => Phase::Connecting,
            2 => Phase::Sync,
            3 => Phase::Connected,
            _ => Phase::Connect,
        }
    }

    /// Moves to `p`; leaving `Connected` records when the link went down.
    pub fn set(&self, p: Phase, now_ms: u64) {
        let was = self.state.swap(p as u8, Ordering::Relaxed);
        if p == Phase::Connected {
            self.down_since_ms.store(0, Ordering::Relaxed);
        } else if was == Phase::Connected as u8 || self.down_since_ms.load(Ordering::Relaxed) == 0 {
            self.down_since_ms.store(now_ms.max(1), Ordering::Relaxed);
        }
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.phase() == Phase::Connected
    }
}

impl crate::node::Node {
    /// The replication offset of this node's data.
    pub fn offset(&self) -> u64 {
        self.repl.feed.lock().offset
    }

    /// Becomes a master: stops following (under the store lock, so nothing of the old stream
    /// lands afterwards) and starts a new history that keeps the old one as `replid2`, so the
    /// other replicas of the old master can continue partially from this node.
    pub fn become_master(&self) {
        let store = self.store.lock();
        let upstream = self.repl.upstream.lock().take();
        drop(upstream);
        if self.gate.promote() {
            let mut feed = self.repl.feed.lock();
            feed.shift_replid();
            if let Some(aof) = &self.persist.aof {
                aof.append(&feed.marker());
            }
            tracing::info!(replid = %feed.replid, offset = feed.offset, epoch = self.gate.epoch(), "now a master");
        }
        *self.shared.role.write() = "master";
        drop(store);
    }

    /// Becomes a replica of `host:port`: drops our own replicas and follows the new master,
    /// resynchronising partially when it shares our history.
    pub fn become_replica(&self, host: String, port: u16) {
        let old = self.repl.upstream.lock().take();
        drop(old);
        {
            let _store = self.store.lock();
            self.gate.follow(host.clone(), port);
            *self.shared.role.write() = "replica";
            for l in &self.repl.feed.lock().links {
                l.kill.cancel();
            }
            tracing::info!(master = %format!("{host}:{port}"), epoch = self.gate.epoch(), "now a replica");
        }
        self.wake_blocked();
        // Only a node being dropped has no Arc left; it has nothing to follow any more.
        if let Some(me) = self.arc() {
            let up = replica::start(&me, host, port);
            *self.repl.upstream.lock() = Some(up);
        }
    }

    /// The `# Replication` section of `INFO`, with Redis' field names and order.
    pub fn info_replication(&self) -> String {
        use std::fmt::Write as _;
        let role = self.gate.role();
        let priority = self.config.read().replication.priority;
        let now = self.clock_ms();
        let mut out = String::from("# Replication\r\n");
        let feed = self.repl.feed.lock();
        match &role {
            Role::Replica { host, port } => {
                let up = self.repl.upstream.lock();
                let status = up.as_ref().map(|u| u.status.clone());
                let phase = status.as_ref().map_or(Phase::Connect, |s| s.phase());
                let last_io = status.as_ref().map_or(-1, |s| {
                    (now.saturating_sub(s.last_io_ms.load(Ordering::Relaxed)) / 1000) as i64
                });
                let _ = write!(
                    out,
                    "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n",
                    if phase == Phase::Connected {
                        "up"
                    } else {
                        "down"
                    },
                    if phase == Phase::Connected {
                        last_io
                    } else {
                        -1
                    },
                    (phase == Phase::Sync) as u8,
                );
                if phase != Phase::Connected {
                    let since = status
                        .as_ref()
                        .map_or(0, |s| s.down_since_ms.load(Ordering::Relaxed));
                    let secs = if since == 0 {
                        -1
                    } else {
                        (now.saturating_sub(since) / 1000) as i64
                    };
                    let _ = write!(out, "master_link_down_since_seconds:{secs}\r\n");
                }
                let _ = write!(
                    out,
                    "slave_read_repl_offset:{0}\r\nslave_repl_offset:{0}\r\nslave_priority:{priority}\r\nslave_read_only:1\r\nreplica_announced:1\r\n",
                    feed.offset
                );
            }
            _ => out.push_str("role:master\r\n"),
        }
        let _ = write!(out, "connected_slaves:{}\r\n", feed.links.len());
        for (i, l) in feed.links.iter().enumerate() {
            let _ = write!(
                out,
                "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
                l.ip,
                l.port.load(Ordering::Relaxed),
                l.state().as_str(),
                l.ack.load(Ordering::Relaxed),
                now.saturating_sub(l.last_ack_ms.load(Ordering::Relaxed)) / 1000,
            );
        }
        let hist = feed.backlog_len();
        let _ = write!(
            out,
            "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:1\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{hist}\r\n",
            feed.replid,
            feed.replid2,
            feed.offset,
            feed.second_offset,
            self.config.read().replication.backlog_size,
            feed.backlog_first_byte(),
        );
        out
    }
}
