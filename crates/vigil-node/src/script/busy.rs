//! A script that runs long: past `busy-reply-threshold` other clients get `-BUSY` at once
//! instead of waiting for the store lock (their tasks wait on [`Busy`]'s notification, never
//! parking a worker thread on the lock), and only `SCRIPT KILL`, `FUNCTION KILL`,
//! `FUNCTION STATS` and `SHUTDOWN NOSAVE` are served. A script that has written cannot be
//! killed: its half-done effects would have to reach the log and the replicas.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use vigil_resp::Reply;

use super::Kind;
use crate::node::Node;

const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The reply to SCRIPT KILL / FUNCTION KILL when nothing runs.
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

/// The running script's state, shared with the engine's instruction hook.
pub struct Busy {
    base: Instant,
    running: AtomicBool,
    busy: AtomicBool,
    kill: AtomicBool,
    wrote: AtomicBool,
    started_ms: AtomicU64,
    /// `busy-reply-threshold` in milliseconds.
    pub threshold_ms: AtomicU64,
    notify: Notify,
    current: Mutex<Option<(String, Kind)>>,
}

impl Busy {
    /// Nothing running.
    pub fn new(threshold_ms: u64) -> Self {
        Busy {
            base: Instant::now(),
            running: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            started_ms: AtomicU64::new(0),
            threshold_ms: AtomicU64::new(threshold_ms),
            notify: Notify::new(),
            current: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// A script starts (under the store lock).
    pub(crate) fn start(&self, name: &str, kind: Kind) {
        *self.current.lock() = Some((name.to_owned(), kind));
        self.started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    /// The script ended (still under the store lock): waiting clients go on.
    pub(crate) fn finish(&self) {
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        *self.current.lock() = None;
        self.notify.notify_waiters();
    }

    /// The script changed the dataset: it can no longer be killed.
    pub(crate) fn wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    /// Called by the engine every few instructions: marks the script busy past the
    /// threshold; `true` when it must be killed.
    pub(crate) fn tick(&self) -> bool {
        if !self.busy.load(Ordering::Relaxed)
            && self.now_ms() - self.started_ms.load(Ordering::Relaxed)
                >= self.threshold_ms.load(Ordering::Relaxed)
        {
            self.busy.store(true, Ordering::Release);
            self.notify.notify_waiters();
        }
        self.kill.load(Ordering::Relaxed)
    }

    /// Whether a script is running now.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether a script has run past the threshold.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// SCRIPT KILL (`kind` Script) or FUNCTION KILL.
    pub(crate) fn kill(&self, kind: Kind) -> Reply {
        if !self.running() {
            return Reply::error(NOTBUSY);
        }
        match &*self.current.lock() {
            Some((_, k)) if *k != kind => {
                return Reply::error(match kind {
                    Kind::Script => "NOTBUSY No scripts in execution right now.",
                    Kind::Function => "NOTBUSY No scripts in execution right now.",
                });
            }
            None => return Reply::error(NOTBUSY),
            _ => {}
        }
        if self.wrote.load(Ordering::Relaxed) {
            return Reply::error(UNKILLABLE);
        }
        self.kill.store(true, Ordering::Relaxed);
        Reply::ok()
    }

    /// The running function's name and how long it has run (FUNCTION STATS).
    pub(crate) fn running_function(&self) -> Option<(String, u64)> {
        match &*self.current.lock() {
            Some((name, Kind::Function)) if self.running() => Some((
                name.clone(),
                self.now_ms() - self.started_ms.load(Ordering::Relaxed),
            )),
            _ => None,
        }
    }
}

fn is(b: &[u8], word: &str) -> bool {
    b.eq_ignore_ascii_case(word.as_bytes())
}

impl Node {
    /// Before a command runs while a script runs: waits (without holding a thread) until the
    /// script ends, or it turns busy; then answers what may run during a busy script and
    /// `-BUSY` to the rest. `None`: go on as usual.
    pub(crate) async fn wait_for_script(&self, args: &[Bytes]) -> Option<Reply> {
        let busy = &self.scripts.busy;
        loop {
            let notified = busy.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !busy.running() {
                return None;
            }
            if busy.is_busy() {
                return Some(self.while_busy(args));
            }
            notified.await;
        }
    }

    /// The store lock for a data command, or `-BUSY` if a script that started meanwhile turns
    /// busy: the wait is bounded, so a worker thread is never parked for a whole script.
    pub(crate) fn lock_store(
        &self,
    ) -> Result<parking_lot::MutexGuard<'_, crate::db::Store>, Reply> {
        loop {
            if let Some(g) = self
                .store
                .try_lock_for(std::time::Duration::from_millis(10))
            {
                return Ok(g);
            }
            if self.scripts.busy.is_busy() {
                return Err(self.busy_reply());
            }
        }
    }

    fn busy_reply(&self) -> Reply {
        let kill = match &*self.scripts.busy.current.lock() {
            Some((_, Kind::Function)) => "FUNCTION KILL",
            _ => "SCRIPT KILL",
        };
        Reply::Error(
            format!(
                "BUSY Redis is busy running a script. You can only call {kill} or SHUTDOWN NOSAVE."
            )
            .into(),
        )
    }

    fn while_busy(&self, args: &[Bytes]) -> Reply {
        let busy = &self.scripts.busy;
        let sub = args.get(1).map(|b| &b[..]).unwrap_or(b"");
        if is(&args[0], "script") && is(sub, "kill") && args.len() == 2 {
            return busy.kill(Kind::Script);
        }
        if is(&args[0], "function") && is(sub, "kill") && args.len() == 2 {
            return busy.kill(Kind::Function);
        }
        if is(&args[0], "function") && is(sub, "stats") && args.len() == 2 {
            return crate::cmd::scripting::function_stats(self, None);
        }
        if is(&args[0], "shutdown") && args[1..].iter().any(|a| is(a, "nosave")) {
            // The script still holds the store: exit without it. Its effects are propagated
            // only when it ends, so the log and the replicas hold none of its writes.
            tracing::warn!("SHUTDOWN NOSAVE during a busy script: exiting now");
            if let Some(aof) = &self.persist.aof {
                aof.close();
            }
            std::process::exit(0);
        }
        let kill = match &*busy.current.lock() {
            Some((_, Kind::Function)) => "FUNCTION KILL",
            _ => "SCRIPT KILL",
        };
        Reply::Error(
            format!(
                "BUSY Redis is busy running a script. You can only call {kill} or SHUTDOWN NOSAVE."
            )
            .into(),
        )
    }
}
