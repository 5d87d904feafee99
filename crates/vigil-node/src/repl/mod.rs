//! Replication master → replica.
//!
//! - [`feed`]: the stream of changes, its offset and backlog, and each replica's buffer.
//! - [`master`]: serving replicas (`REPLCONF`, `PSYNC`), acknowledgements and `WAIT` (the
//!   write gate waits on them for synchronous writes).
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
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use feed::Feed;
use feed::LinkState;

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
    /// Replication bytes read from our master (`total_net_repl_input_bytes`): full syncs'
    /// payloads and the stream.
    pub net_in: AtomicU64,
    /// Replication bytes sent to our replicas (`total_net_repl_output_bytes`).
    pub net_out: AtomicU64,
    /// The link to our master, while we are a replica.
    pub upstream: Mutex<Option<Upstream>>,
    /// The master's offset as the sentinels last told it (`GetStatus`), and when: a replica's
    /// lag in bytes, which it cannot see itself.
    pub master_seen: Mutex<Option<(u64, std::time::Instant)>>,
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
            net_in: AtomicU64::new(0),
            net_out: AtomicU64::new(0),
            upstream: Mutex::new(None),
            master_seen: Mutex::new(None),
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

impl Repl {
    /// How many online replicas have acknowledged `offset`.
    pub fn replicas_acked(&self, offset: u64) -> usize {
        self.feed
            .lock()
            .links
            .iter()
            .filter(|l| l.state() == LinkState::Online && l.ack.load(Ordering::Relaxed) >= offset)
            .count()
    }

    /// The highest offset that at least `n` online replicas have acknowledged (0 if fewer
    /// than `n` are online).
    pub fn acked_by(&self, n: usize) -> u64 {
        let mut acks: Vec<u64> = self
            .feed
            .lock()
            .links
            .iter()
            .filter(|l| l.state() == LinkState::Online)
            .map(|l| l.ack.load(Ordering::Relaxed))
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        if n == 0 {
            return self.feed.lock().offset;
        }
        acks.get(n - 1).copied().unwrap_or(0)
    }

    /// Online replicas whose last acknowledgement is at most `max_lag` old
    /// (`min_replicas_to_write`).
    /// `now` is the node clock (ms).
    pub fn good_replicas(&self, max_lag: Duration, now: u64) -> usize {
        let lag = max_lag.as_millis() as u64;
        self.feed
            .lock()
            .links
            .iter()
            .filter(|l| {
                l.state() == LinkState::Online
                    && now.saturating_sub(l.last_ack_ms.load(Ordering::Relaxed)) <= lag
            })
            .count()
    }

    /// Waits until `n` replicas acknowledged `offset` or `deadline` passes; returns how many
    /// did.
    pub async fn wait_acks(&self, offset: u64, n: usize, deadline: Option<Instant>) -> usize {
        let mut rx = self.acks.subscribe();
        loop {
            rx.borrow_and_update();
            let got = self.replicas_acked(offset);
            if got >= n {
                return got;
            }
            let changed = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), rx.changed()).await,
                None => Ok(rx.changed().await),
            };
            if !matches!(changed, Ok(Ok(()))) {
                return self.replicas_acked(offset);
            }
        }
    }
}
