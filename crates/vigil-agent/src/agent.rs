//! The agent's shared state and its two duties towards the server: [`Agent::observe`] (what an
//! `INFO` says about a restart or a drifted role) and [`Agent::enforce`] (pause or unpause the
//! server's writes so that it takes them exactly when [`Authority::open`] allows). Both the
//! keeper loop and the NodeAdmin calls go through them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::authority::{Assigned, Authority};
use crate::config::AgentConfig;
use crate::stock::{Info, Server, StockError};

/// How long one `CLIENT PAUSE` lasts: the agent re-asserts it every [`REASSERT`] while
/// writes must stay paused, so a hung agent attached to a server (no `exec`) leaves it paused
/// this long at most, and an operator's `CLIENT UNPAUSE` is undone within a second.
pub const PAUSE_SPAN: Duration = Duration::from_secs(30);
/// Where an unassigned server is pointed: a master that cannot exist (port 0), so it is a
/// replica with its link down (see [`Agent::reconcile`]).
pub const HOLD: (&str, u16) = ("127.0.0.1", 0);
/// How often a pause in force is re-asserted.
pub const REASSERT: Duration = Duration::from_secs(1);

/// What the agent last saw of its server.
#[derive(Debug, Default)]
pub struct Seen {
    /// The server's run id (changes when it restarts).
    pub run_id: String,
    /// Whether it runs as a master.
    pub master: bool,
    /// Its master, when a replica.
    pub following: Option<(String, u16)>,
    /// Whether it answered the last check (`redis_up` on the metrics endpoint).
    pub up: bool,
}

/// Whether the server's writes are paused, as far as the agent knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Unknown,
    /// Paused; last asserted then.
    Paused(Instant),
    Open,
}

/// The agent.
pub struct Agent {
    /// Its configuration.
    pub config: AgentConfig,
    /// Its clock's zero (NodeAdmin's `node_clock_ms`).
    pub started: Instant,
    /// What the sentinels told it.
    pub authority: Mutex<Authority>,
    /// What it last saw of the server.
    pub seen: Mutex<Seen>,
    /// The connection for status and admin actions.
    pub query: Server,
    /// The connection that pauses and unpauses writes (never queued behind a slow query).
    pub control: Server,
    /// One role change at a time: the NodeAdmin calls and the keeper's [`Agent::reconcile`]
    /// hold it, so the keeper never acts on a role a call is replacing.
    pub serial: tokio::sync::Mutex<()>,
    /// Wakes the keeper when the authority changed.
    pub changed: Notify,
    /// Stops everything.
    pub shutdown: CancellationToken,
    /// The agent's span (server address, epoch).
    pub span: tracing::Span,
    pause: tokio::sync::Mutex<Pause>,
    forget_pause: AtomicBool,
    /// The pid of the server this agent owns (`exec`; 0 while none runs).
    owned_pid: Option<Arc<AtomicI32>>,
}

/// What an observation asks of the agent.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    /// Nothing new.
    Steady,
    /// A server not seen before (first contact or a restart): set it up.
    New {
        /// Whether a run id was known before (a restart, not the first contact).
        restarted: bool,
    },
}

impl Agent {
    /// An agent for `config` at `epoch`, reaching the server through `query` and `control`,
    /// logging in `span`.
    pub fn new(
        config: AgentConfig,
        epoch: u64,
        query: Server,
        control: Server,
        span: tracing::Span,
        owned_pid: Option<Arc<AtomicI32>>,
    ) -> Agent {
        Agent {
            config,
            started: Instant::now(),
            authority: Mutex::new(Authority::new(epoch)),
            seen: Mutex::new(Seen::default()),
            query,
            control,
            serial: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            shutdown: CancellationToken::new(),
            span,
            pause: tokio::sync::Mutex::new(Pause::Unknown),
            forget_pause: AtomicBool::new(false),
            owned_pid,
        }
    }

    /// Milliseconds on the agent's monotonic clock.
    pub fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records what `info` says. A new run id means the server restarted: one that was master
    /// loses its role and lease (it may have come back empty; only the sentinels may promote
    /// it again), and writes are paused until the role is restored.
    pub fn observe(&self, info: &Info) -> Observed {
        let mut seen = self.seen.lock();
        let new = seen.run_id != info.run_id;
        let restarted = new && !seen.run_id.is_empty();
        seen.run_id = info.run_id.clone();
        seen.master = info.master;
        seen.following = (!info.master).then(|| (info.master_host.clone(), info.master_port));
        drop(seen);
        if restarted {
            let mut a = self.authority.lock();
            if a.role == Assigned::Master {
                a.unassign();
                tracing::warn!(
                    run_id = %info.run_id,
                    "the server restarted: writes paused until the sentinels give it a role again"
                );
            } else {
                tracing::warn!(run_id = %info.run_id, "the server restarted");
            }
        }
        if new {
            // A new server process holds no pause of ours.
            self.forget_pause.store(true, Ordering::SeqCst);
            Observed::New { restarted }
        } else {
            Observed::Steady
        }
    }

    /// Sets up a server seen for the first time: replicas refuse writes, and in synchronous
    /// mode the master refuses writes without enough replicas.
    pub async fn set_up(&self) -> Result<(), StockError> {
        self.query
            .call(&["CONFIG", "SET", "replica-read-only", "yes"])
            .await?;
        if self.config.sync_replicas > 0 {
            let n = self.config.sync_replicas.to_string();
            let lag = self.config.min_replicas_max_lag.as_secs().to_string();
            self.query
                .call(&["CONFIG", "SET", "min-replicas-to-write", &n])
                .await?;
            self.query
                .call(&["CONFIG", "SET", "min-replicas-max-lag", &lag])
                .await?;
        }
        Ok(())
    }

    /// Whether the server may take writes now (by the authority and the server's role).
    pub fn open(&self, now: Instant) -> bool {
        let master = self.seen.lock().master;
        self.authority.lock().open(now, master)
    }

    /// Pauses or unpauses the server's writes as [`Agent::open`] says, re-asserting a pause
    /// older than [`REASSERT`]. `Ok(true)` when writes are open.
    pub async fn enforce(&self) -> Result<bool, StockError> {
        let mut pause = self.pause.lock().await;
        if self.forget_pause.swap(false, Ordering::SeqCst) {
            *pause = Pause::Unknown;
        }
        let now = Instant::now();
        let open = self.open(now);
        let result = match (*pause, open) {
            (Pause::Open, true) => Ok(()),
            (Pause::Paused(at), false) if now < at + REASSERT => Ok(()),
            (_, false) => {
                let ms = PAUSE_SPAN.as_millis().to_string();
                let r = self.control.call(&["CLIENT", "PAUSE", &ms, "WRITE"]).await;
                if r.is_ok() && !matches!(*pause, Pause::Paused(_)) {
                    tracing::info!("server writes paused");
                }
                r.map(|_| *pause = Pause::Paused(now))
            }
            (_, true) => {
                let r = self.control.call(&["CLIENT", "UNPAUSE"]).await;
                if r.is_ok() && *pause != Pause::Open {
                    tracing::info!("server writes open");
                }
                r.map(|_| *pause = Pause::Open)
            }
        };
        if result.is_err() {
            *pause = Pause::Unknown;
        }
        result.map(|()| open)
    }

    /// Whether the server confirmed the pause its state needs (writes paused, confirmed).
    pub fn pause_confirmed(&self) -> bool {
        self.pause
            .try_lock()
            .is_ok_and(|p| matches!(*p, Pause::Paused(_)))
            && !self.forget_pause.load(Ordering::SeqCst)
    }

    /// Whether the agent owns its server process (`exec`).
    pub fn owns_server(&self) -> bool {
        self.owned_pid.is_some()
    }

    /// Kills the owned server: it did not confirm its write pause before its lease ended (it
    /// is stopped, or stuck), so it must never take a write again as this master. Its owner
    /// restarts it, held until the sentinels give it a role.
    pub fn stonith(&self) {
        let pid = self
            .owned_pid
            .as_ref()
            .map_or(0, |p| p.load(Ordering::SeqCst));
        if pid > 0 {
            tracing::error!(
                pid,
                "the server did not confirm its write pause before its lease ended: killing it"
            );
            // SAFETY: signals the server this agent started and has not reaped (the owner
            // clears the pid when it reaps it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Whether writes are open on the server right now, as far as the agent knows.
    pub async fn writes_open(&self) -> bool {
        *self.pause.lock().await == Pause::Open
    }

    /// Points the server where its role says if it drifted (restarted, or an operator ran
    /// `REPLICAOF`): a replica at its master; an unassigned server at [`HOLD`], where it keeps
    /// its data, refuses writes, and serves no replica (a replica without a master link answers
    /// `-NOMASTERLINK` to `PSYNC`), so a server restarted empty never wipes the replicas that
    /// reconnect to it. `true` if it sent `REPLICAOF`.
    pub async fn reconcile(&self) -> Result<bool, StockError> {
        let _serial = self.serial.lock().await;
        let (host, port) = match self.authority.lock().role.clone() {
            Assigned::Replica { host, port } => (host, port),
            Assigned::Unassigned => (HOLD.0.to_string(), HOLD.1),
            Assigned::Master => return Ok(false),
        };
        let following = self.seen.lock().following.clone();
        if following.as_ref() == Some(&(host.clone(), port)) {
            return Ok(false);
        }
        self.query
            .call(&["REPLICAOF", &host, &port.to_string()])
            .await?;
        if port == HOLD.1 {
            tracing::info!(
                "server held as a replica of nothing until the sentinels give it a role"
            );
        } else {
            tracing::info!(%host, port, "server pointed back at its master");
        }
        let mut seen = self.seen.lock();
        seen.master = false;
        seen.following = Some((host, port));
        Ok(true)
    }
}
