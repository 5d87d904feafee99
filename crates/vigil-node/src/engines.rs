//! The node's Lua engines and the running script's state ([`Scripting`], [`Busy`]): shared
//! state the node holds, below the layer that runs scripts (`crate::script`).
//!
//! A script that runs long: past `busy-reply-threshold` other clients get `-BUSY` at once
//! instead of waiting for the store lock (their tasks wait on [`Busy`]'s notification, never
//! parking a worker thread on the lock), and only `SCRIPT KILL`, `FUNCTION KILL`,
//! `FUNCTION STATS` and `SHUTDOWN NOSAVE` are served. A script that has written cannot be
//! killed: its half-done effects would have to reach the log and the replicas.

use std::sync::Arc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use vigil_lua::{Engine, Rand48};
use vigil_resp::Reply;

const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The reply to SCRIPT KILL / FUNCTION KILL when nothing runs.
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";

/// The running script's state, shared with the engine's instruction hook.
pub struct Busy {
    pub(crate) base: Instant,
    pub(crate) running: AtomicBool,
    pub(crate) busy: AtomicBool,
    pub(crate) kill: AtomicBool,
    pub(crate) wrote: AtomicBool,
    pub(crate) started_ms: AtomicU64,
    /// `busy-reply-threshold` in milliseconds.
    pub threshold_ms: AtomicU64,
    pub(crate) notify: Notify,
    pub(crate) current: Mutex<Option<(String, Kind)>>,
    /// What FUNCTION STATS shows of the running function while the store is held: its
    /// command line and the library and function counts when it started.
    pub(crate) shown: Mutex<Option<(Vec<Bytes>, usize, usize)>>,
    /// This run's worker thread has handed its other tasks to another thread.
    pub(crate) detached: AtomicBool,
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
            shown: Mutex::new(None),
            detached: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// A script starts (under the store lock); it ends when the guard drops, however the
    /// run ends (a panic too: every waiter for the script would otherwise wait for good).
    #[must_use = "the script ends when the guard drops"]
    pub(crate) fn start(&self, name: &str, kind: Kind) -> Running<'_> {
        *self.current.lock() = Some((name.to_owned(), kind));
        self.started_ms.store(self.now_ms(), Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.detached.store(false, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
        Running(self)
    }

    /// Whether the script that ran last handed its worker's other tasks over
    /// ([`hand_off_worker`]); answered once, and never while one runs.
    pub(crate) fn take_detached(&self) -> bool {
        !self.running() && self.detached.swap(false, Ordering::Relaxed)
    }

    /// The script ended (still under the store lock): waiting clients go on.
    fn finish(&self) {
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        *self.current.lock() = None;
        *self.shown.lock() = None;
        self.notify.notify_waiters();
    }

    /// The script changed the dataset: it can no longer be killed.
    pub(crate) fn wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    /// Called by the engine every few instructions: marks the script busy past the
    /// threshold; `true` when it must be killed.
    pub(crate) fn tick(&self) -> bool {
        if !self.detached.swap(true, Ordering::Relaxed) {
            hand_off_worker();
        }
        if !self.busy.load(Ordering::Relaxed)
            && self.now_ms() - self.started_ms.load(Ordering::Relaxed)
                >= self.threshold_ms.load(Ordering::Relaxed)
        {
            self.busy.store(true, Ordering::Release);
            self.notify.notify_waiters();
            // A second chance, should the first hand-off not have been taken up.
            hand_off_worker();
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
        let running = match &*self.current.lock() {
            Some((_, k)) => *k,
            None => return Reply::error(NOTBUSY),
        };
        if self.wrote.load(Ordering::Relaxed) {
            return Reply::error(UNKILLABLE);
        }
        // The other kind's KILL is refused with the BUSY line naming the right one, as Redis.
        if running != kind {
            return Reply::error(match running {
                Kind::Function => {
                    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
                }
                Kind::Script => {
                    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
                }
            });
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

/// The node's Lua engines and the state of the script running now.
pub struct Scripting {
    /// EVAL's engine and script cache (created on first use; SCRIPT FLUSH drops it).
    pub(crate) eval: Mutex<Option<Engine>>,
    /// The engine holding the function libraries, and the library version it was built at.
    pub(crate) functions: Mutex<Option<(u64, Engine)>>,
    /// `math.random`'s sequence, shared by every engine as Redis shares it.
    rand: Arc<Rand48>,
    /// The running script, if any: busy time, kill requests.
    pub(crate) busy: Arc<Busy>,
}

impl Scripting {
    /// No engine yet; `threshold_ms` is `busy-reply-threshold`.
    pub fn new(threshold_ms: u64) -> Self {
        Scripting {
            eval: Mutex::new(None),
            functions: Mutex::new(None),
            rand: Arc::new(Rand48::default()),
            busy: Arc::new(Busy::new(threshold_ms)),
        }
    }

    /// A new engine with the busy check installed.
    pub(crate) fn engine(&self) -> Result<Engine, String> {
        let e = Engine::new(self.rand.clone()).map_err(|e| format!("ERR {e}"))?;
        let busy = self.busy.clone();
        e.set_tick(Arc::new(move || busy.tick()))
            .map_err(|e| format!("ERR {e}"))?;
        Ok(e)
    }
}

/// Which kind of code runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// EVAL / EVALSHA.
    Script,
    /// FCALL.
    Function,
}

/// A running script ([`Busy::start`]); dropping it ends it.
pub(crate) struct Running<'a>(&'a Busy);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// A script still running at its first tick (some 100,000 Lua instructions) gives its tokio
/// worker's other tasks to another thread (`block_in_place`, held 1 ms so that a new worker
/// surely takes over), so the clients answered `-BUSY` meanwhile and `SCRIPT KILL` are not
/// stuck behind it. Short scripts, nearly all, never pay for the hand-off.
fn hand_off_worker() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_millis(1)));
    }
}
