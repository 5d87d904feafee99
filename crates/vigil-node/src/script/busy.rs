//! Waiting out a running script: `-BUSY` past the threshold, and what may run meanwhile (see
//! [`crate::engines::Busy`]).

use bytes::Bytes;
use vigil_resp::Reply;

use super::Kind;
use crate::node::Node;

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

    /// Waits, without holding a worker thread, until no script runs: for a runtime task about
    /// to run code that takes the store lock itself. A script holds the store for its whole
    /// run, and a worker parked on the lock meanwhile (with one worker, at once) would stop
    /// `-BUSY`, `SCRIPT KILL` and the sentinels' calls. A script can still start between
    /// this and a lock taken after it (on another worker, or on the thread a long script
    /// handed its worker from, which yields once it ends): then one worker waits for it.
    pub(crate) async fn script_done(&self) {
        let busy = &self.scripts.busy;
        // The usual case, on hot paths (a replica's stream): no waiter registered.
        if !busy.running() {
            return;
        }
        loop {
            let notified = busy.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !busy.running() {
                return;
            }
            notified.await;
        }
    }

    /// The store lock for a runtime task that must have it (a replica's sync, a fence, a
    /// migration's status), taken once no script runs ([`Node::script_done`]).
    pub(crate) async fn store_when_free(&self) -> parking_lot::MutexGuard<'_, crate::db::Store> {
        loop {
            self.script_done().await;
            // Other holders keep it for one command (or one batch): a short wait.
            if let Some(g) = self
                .store
                .try_lock_for(std::time::Duration::from_millis(10))
            {
                return g;
            }
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
            return crate::cmd::functions::function_stats(self, None);
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
        self.busy_reply()
    }
}
