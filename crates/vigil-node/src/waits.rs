//! How a client waits: a blocking command (BLPOP, XREAD BLOCK …) queued on its keys until a
//! write, its timeout, `CLIENT UNBLOCK`, a role change or its slot moving to another shard; a
//! command held by `CLIENT PAUSE`.
//!
//! The invariant: a waiting client holds no lock; it re-runs its command from the start under
//! the store lock (and the write gate) each time it is woken, keeping its place in line.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use vigil_resp::{Args, CommandMeta, Conn, Flags, Reply, Service};

use crate::cluster::check::Refusal;
use crate::ctx::DataFn;
use crate::db::{Store, boxed};
use crate::dispatch::{UNBLOCKED, push_reply};
use crate::execute::Clock;
use crate::node::Node;
use crate::session::ConnState;

impl Node {
    /// Runs a blocking command: try; if nothing is there, join the key's queue of blocked
    /// clients and wait for a write to one of its keys (or the timeout, or the client leaving),
    /// then try again, keeping its place in the queue.
    pub(crate) async fn run_blocking(
        &self,
        conn: &mut Conn<ConnState>,
        meta: &CommandMeta,
        f: DataFn,
        mut args: Vec<Bytes>,
    ) {
        let notify = Arc::new(Notify::new());
        let mut deadline: Option<Option<Instant>> = None;
        let mut waiting_on: Vec<Bytes> = Vec::new();
        let mut last_timeout: Option<Reply> = None;
        let result = loop {
            // Taken before the view is looked at, so a view that lands between the look and
            // the wait still wakes us.
            let view_change = self.view_changed.notified();
            tokio::pin!(view_change);
            let on_timeout = {
                let mut store = self.store_when_free().await;
                // In a cluster, the slot may have moved to another shard, or this node lost its
                // lease or its master role, while we waited: the client is sent on (`MOVED`)
                // or told the cluster is down (`CLUSTERDOWN`), as Redis Cluster redirects
                // blocked clients. (Checked first: cluster clients retry these.)
                let mut held = false;
                if !waiting_on.is_empty() {
                    match self.cluster_check(conn, meta, &args) {
                        Err(Refusal::Reply(r)) => {
                            Self::leave_queues(&mut store, conn.db, &waiting_on, &notify);
                            waiting_on.clear();
                            break Some(r);
                        }
                        // Being handed over: wait on for the view that ends the hold.
                        Err(Refusal::Hold) => held = true,
                        Ok(()) => {}
                    }
                }
                // Checked under the store lock on every attempt: the node may have become a
                // replica (or lost its lease) while we waited, and a blocked client must not
                // write then (Redis answers -UNBLOCKED).
                if let Err(r) = self.gate(meta) {
                    let first = waiting_on.is_empty();
                    Self::leave_queues(&mut store, conn.db, &waiting_on, &notify);
                    waiting_on.clear();
                    break Some(if first { r } else { Reply::error(UNBLOCKED) });
                }
                if held && let Some(t) = last_timeout.as_ref() {
                    t.clone()
                } else {
                    let (reply, block) = self.run_data(
                        &mut store,
                        conn,
                        meta,
                        f,
                        Args::new(args.clone()),
                        true,
                        &mut Clock::now(),
                        false,
                    );
                    match block {
                        None => {
                            // Woken by a key now of another type (replaced meanwhile): Redis serves a
                            // blocked client only from a key of the type it waits for, so it waits on.
                            let wrongtype = matches!(&reply, Reply::Error(e) if e.starts_with("WRONGTYPE"))
                                && !holds_wanted(&store.dbs[conn.db], meta.name, &waiting_on);
                            if let (true, Some(t)) = (wrongtype, last_timeout.as_ref()) {
                                if deadline.flatten().is_some_and(|d| Instant::now() >= d) {
                                    break Some(t.clone());
                                }
                                t.clone()
                            } else {
                                // Leave the line in the same critical section as the pop, so clients
                                // behind count positions without us.
                                Self::leave_queues(&mut store, conn.db, &waiting_on, &notify);
                                waiting_on.clear();
                                break Some(reply);
                            }
                        }
                        Some(mut block) => {
                            let dl = *deadline.get_or_insert_with(|| {
                                (block.timeout > 0.0).then(|| {
                                    Instant::now() + Duration::from_secs_f64(block.timeout.min(1e9))
                                })
                            });
                            if dl.is_some_and(|d| Instant::now() >= d) {
                                break Some(block.on_timeout);
                            }
                            if let Some(retry) = block.retry.take() {
                                args = retry;
                            }
                            if waiting_on.is_empty() {
                                let db = &mut store.dbs[conn.db];
                                for k in &block.keys {
                                    db.blocked.entry(boxed(k)).or_default().push(notify.clone());
                                }
                                waiting_on = block.keys;
                                conn.state.waiter = Some(notify.clone());
                            }
                            last_timeout = Some(block.on_timeout.clone());
                            block.on_timeout
                        }
                    }
                }
            };
            // Replies to earlier pipelined commands go out before we wait (unless the
            // acknowledgement check closes the connection).
            self.before_reply(conn).await;
            if conn.flush().await.is_err() || conn.close {
                break None;
            }
            // Cleared only before the first wait: a CLIENT UNBLOCK that arrives while a wake
            // looks again must still count.
            if !conn.info.blocked.swap(true, Ordering::Relaxed) {
                conn.info.unblock_mode.store(0, Ordering::Relaxed);
            }
            let dl = deadline.flatten();
            let info = conn.info.clone();
            let woke = conn
                .wait_or_disconnect(async {
                    let woken = async {
                        tokio::select! {
                            _ = notify.notified() => {}
                            _ = info.unblock.notified() => {}
                            _ = &mut view_change => {}
                        }
                    };
                    match dl {
                        Some(d) => tokio::time::timeout_at(d.into(), woken).await.is_ok(),
                        None => {
                            woken.await;
                            true
                        }
                    }
                })
                .await;
            // Still shown blocked (CLIENT LIST) while it looks again: a wake that finds
            // nothing (an expired key) leaves it blocked, as in Redis.
            // CLIENT UNBLOCK: answered as on timeout, or with an error.
            let unblocked = conn.info.unblock_mode.swap(0, Ordering::Relaxed);
            match woke {
                None => break None,
                Some(_) if unblocked == 2 => {
                    break Some(Reply::error(
                        "UNBLOCKED client unblocked via CLIENT UNBLOCK",
                    ));
                }
                Some(false) => break Some(on_timeout),
                Some(_) if unblocked == 1 => break Some(on_timeout),
                Some(true) => continue,
            }
        };
        conn.info.blocked.store(false, Ordering::Relaxed);
        conn.state.waiter = None;
        if !waiting_on.is_empty() {
            self.script_done().await;
        }
        self.unblock(conn.db, &waiting_on, &notify);
        match result {
            Some(reply) => push_reply(conn, reply),
            None => conn.close = true,
        }
    }

    /// Leaves the blocked queues (a no-op if already left).
    fn unblock(&self, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        if !keys.is_empty() {
            Self::leave_queues(&mut self.store.lock(), db, keys, notify);
        }
    }

    /// Removes a client from the queues of `keys`; clients behind it whose key holds data are
    /// woken, as they may now be first in line.
    pub(crate) fn leave_queues(store: &mut Store, db: usize, keys: &[Bytes], notify: &Arc<Notify>) {
        let db = &mut store.dbs[db];
        for k in keys {
            let Some(v) = db.blocked.get_mut(&k[..]) else {
                continue;
            };
            v.retain(|n| !Arc::ptr_eq(n, notify));
            if v.is_empty() {
                db.blocked.remove(&k[..]);
            } else if db.keys.contains_key(&k[..]) {
                for w in v.iter() {
                    w.notify_one();
                }
            }
        }
    }

    /// Wakes every blocked client so it re-checks whether it may still write (after a role
    /// change or a fence).
    pub(crate) fn wake_blocked(&self) {
        let store = self.store.lock();
        for db in &store.dbs {
            for w in db.blocked.values().flatten() {
                w.notify_one();
            }
        }
    }

    /// Holds a command while `CLIENT PAUSE` holds it (replicas' links are never held; EXEC is
    /// held when its transaction writes); false if the client left meanwhile.
    pub(crate) async fn wait_for_pause(
        &self,
        conn: &mut Conn<ConnState>,
        meta: &CommandMeta,
    ) -> bool {
        if conn.info.is_replica() {
            return true;
        }
        loop {
            let writes = meta.name == "exec"
                && conn.state.multi.as_ref().is_some_and(|q| {
                    q.iter().any(|a| {
                        self.table
                            .get(&a[0])
                            .is_some_and(|(m, _)| m.flags.has(Flags::WRITE))
                    })
                });
            let Some(until) = self.pause.holds(meta, writes) else {
                return true;
            };
            // Earlier pipelined replies leave first, through the acknowledgement check.
            self.before_reply(conn).await;
            if conn.close || conn.flush().await.is_err() {
                conn.close = true;
                return false;
            }
            conn.info.blocked.store(true, Ordering::Relaxed);
            let waited = conn.wait_or_disconnect(self.pause.wait(until)).await;
            conn.info.blocked.store(false, Ordering::Relaxed);
            if waited.is_none() {
                conn.close = true;
                return false;
            }
        }
    }
}

/// Whether one of the keys a blocked client waits on holds the type its command takes from
/// (a list for BLPOP, a sorted set for BZPOPMIN, a stream for XREAD): only then does Redis
/// serve it; a key of another type leaves it waiting.
fn holds_wanted(db: &crate::db::Db, command: &str, keys: &[Bytes]) -> bool {
    let wanted = if command.starts_with("bz") {
        "zset"
    } else if command.starts_with('x') {
        "stream"
    } else {
        "list"
    };
    keys.iter()
        .any(|k| db.keys.get(&k[..]).is_some_and(|v| v.type_name() == wanted))
}
