//! `CLIENT PAUSE` / `CLIENT UNPAUSE`: holding clients' commands for a while, all of them or only
//! those that may write (Redis' `WRITE` mode, used to switch masters without losing writes).
//!
//! The invariant: a held command has not started: it waits before the store is touched and runs
//! when the pause ends, so its reply reflects the state after the pause. While writes are held,
//! nothing else writes either: keys past their expiry are hidden, not deleted (no DEL is
//! propagated), as in Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use vigil_resp::{CommandMeta, Flags};

/// The node's pause.
#[derive(Debug, Default)]
pub struct Pause {
    /// A pause was set and not lifted: without one, every check is one atomic load.
    set: AtomicBool,
    /// Until when, and whether every command waits (`ALL`) or only writes (`WRITE`).
    state: Mutex<Option<(Instant, bool)>>,
    /// Woken when the pause is lifted or changed.
    changed: Notify,
}

/// Commands that replicate without the `write` flag: held by a `WRITE` pause too.
const MAY_REPLICATE: &[&str] = &[
    "eval", "evalsha", "fcall", "publish", "pfcount", "script", "function",
];

impl Pause {
    /// Pauses for `d`; a pause already in force only grows (longer, or from WRITE to ALL).
    pub fn pause(&self, d: Duration, all: bool) {
        let until = Instant::now() + d;
        let mut s = self.state.lock();
        *s = Some(match *s {
            Some((u, a)) if u > Instant::now() => (u.max(until), a || all),
            _ => (until, all),
        });
        self.set.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Lifts the pause.
    pub fn unpause(&self) {
        let mut s = self.state.lock();
        *s = None;
        // Under the lock, so a concurrent pause cannot be left unseen.
        self.set.store(false, Ordering::Release);
        drop(s);
        self.changed.notify_waiters();
    }

    /// The pause in force, if one is set, and whether reading it waited for its lock (the
    /// batch's clock must then be read again).
    fn current(&self) -> (Option<(Instant, bool)>, bool) {
        if !self.set.load(Ordering::Acquire) {
            return (None, false);
        }
        match self.state.try_lock() {
            Some(s) => (*s, false),
            None => (*self.state.lock(), true),
        }
    }

    /// Whether writes are held now.
    pub fn writes_paused(&self) -> bool {
        self.writes_paused_waited().0
    }

    /// [`Pause::writes_paused`], and whether it waited for the pause's lock.
    pub fn writes_paused_waited(&self) -> (bool, bool) {
        let (state, waited) = self.current();
        (
            state.is_some_and(|(until, _)| until > Instant::now()),
            waited,
        )
    }

    /// Until when a command of `meta` (with `writes`: it or its transaction writes) must wait.
    pub fn holds(&self, meta: &CommandMeta, writes: bool) -> Option<Instant> {
        self.holds_waited(meta, writes).0
    }

    /// [`Pause::holds`], and whether it waited for the pause's lock.
    pub fn holds_waited(&self, meta: &CommandMeta, writes: bool) -> (Option<Instant>, bool) {
        let (state, waited) = self.current();
        let held = state.and_then(|(until, all)| {
            let held =
                all || writes || meta.flags.has(Flags::WRITE) || MAY_REPLICATE.contains(&meta.name);
            (held && until > Instant::now()).then_some(until)
        });
        (held, waited)
    }

    /// Waits until the pause that holds a command may have ended (its deadline, or a change).
    pub async fn wait(&self, until: Instant) {
        let changed = self.changed.notified();
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}
