//! How one request runs: the table check, MULTI queueing, the store lock for data commands,
//! blocking waits, and holding replies until the append log covers them.
//!
//! The invariant: every data command passes the write gate ([`crate::gate::Gate::admit`])
//! under the same store lock it runs under, and every batch of replies passes the gate's
//! acknowledgement check ([`crate::gate::Gate::settle`], in [`Node::ack_check`]) after the
//! log covers it and before it leaves. Data commands and EXEC run in [`crate::execute`]; log
//! and stream application is [`crate::replay`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vigil_resp::builtin::precheck;
use vigil_resp::{Args, CommandMeta, Conn, Flags, Reply, Service};

use crate::cluster::check::Refusal;
use crate::ctx::{DataFn, Prop};
use crate::db::Store;
use crate::execute::{Clock, execute_in};
use crate::hold::LeaseWait;
use crate::node::Handler;
use crate::node::Node;
use crate::session::{ConnState, Replies, note_command};

/// The longest a write waits for a slot migration's pause to end (see `Node::routed`).
const HOLD_MAX: Duration = Duration::from_secs(10);

/// What a blocked client gets when the node stops taking writes under it (Redis' wording).
pub(crate) const UNBLOCKED: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

impl Service for Node {
    type State = ConnState;

    async fn call(&self, conn: &mut Conn<ConnState>, args: Vec<Bytes>) {
        let shown = self.monitors.active().then(|| args.clone());
        // (Un)subscription confirmations are pushes, which CLIENT REPLY OFF / SKIP never
        // silence in Redis.
        let pushes = is_subscription(&args[0]);
        let (mark, replies) = (conn.out.len(), conn.state.replies);
        self.call_one(conn, args).await;
        conn.state.command_done();
        // CLIENT REPLY OFF / SKIP: the reply is dropped (not CLIENT REPLY ON's).
        match (replies, conn.state.replies) {
            (Replies::On, _) | (_, Replies::On) => {}
            (Replies::Off, _) if !pushes => conn.out.truncate(mark),
            (Replies::Off, _) => {}
            (Replies::SkipNext, now) => {
                if !pushes {
                    conn.out.truncate(mark);
                }
                if now == Replies::SkipNext {
                    conn.state.replies = Replies::On;
                }
            }
        }
        if let Some(args) = shown
            && let Some((meta, _)) = self.table.get(&args[0])
            && meta.arity_ok(args.len())
            && (conn.state.multi.is_none() || meta.name == "multi")
        {
            self.feed_monitors(conn, meta, &args);
        }
    }

    async fn call_batch(&self, conn: &mut Conn<ConnState>, batch: Vec<Vec<Bytes>>) {
        let mut queue: VecDeque<Vec<Bytes>> = batch.into();
        loop {
            self.run_plain_prefix(conn, &mut queue);
            let Some(args) = queue.pop_front() else { break };
            self.call(conn, args).await;
            if conn.close {
                break;
            }
        }
        // Broadcast-mode invalidations go out once per batch, as Redis sends them once per
        // event-loop iteration: a transaction's or a pipeline's keys arrive in one message.
        self.tracking.flush();
    }

    async fn before_reply(&self, conn: &mut Conn<ConnState>) {
        if let (Some(seq), Some(aof)) = (conn.state.log_seq.take(), &self.persist.aof) {
            aof.wait(seq).await;
        }
        self.ack_check(conn).await;
    }

    fn disconnected(&self, conn: &mut Conn<ConnState>) {
        self.monitors.remove(conn.info.id);
        if conn.state.tracking.take().is_some() {
            // The tracking table has its own lock: no need for the store's.
            self.tracking.disable(conn.info.id);
        }
        // A running script holds the store for its whole run: the client's WATCHes are
        // removed by the background tick once it ends, not by a worker parked on the lock.
        if self.scripts.busy.running() {
            self.leftovers.lock().append(&mut conn.state.watched);
            return;
        }
        self.unwatch_all(conn);
    }
}

/// SUBSCRIBE and its kin, whose replies are pushes.
fn is_subscription(name: &[u8]) -> bool {
    const NAMES: [&str; 6] = [
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
    ];
    NAMES
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

impl Node {
    /// One request, from the table check to its reply.
    async fn call_one(&self, conn: &mut Conn<ConnState>, args: Vec<Bytes>) {
        let entry = self.table.get(&args[0]);
        let stat =
            entry.and_then(|(meta, _)| self.cmdstats.stat(meta, args.get(1).map(|a| &a[..])));
        // Refused before running: counted as `rejected_calls`, not as calls.
        let reject = |conn: &mut Conn<ConnState>, r: Reply| {
            if let Some((_, s)) = stat {
                s.reject();
            }
            conn.reply(r);
        };
        if let Err(r) = precheck(conn, entry.map(|e| &e.0), &args) {
            if conn.state.multi.is_some() {
                conn.state.multi_failed = true;
            }
            reject(conn, r);
            return;
        }
        let Some(&(meta, handler)) = entry else {
            return;
        };
        // Cluster mode: keys another node serves are redirected before anything else, in
        // MULTI too (the transaction then fails; a redirected EXEC discards it), as Redis.
        if let Err(r) = self.routed(conn, &meta, &args).await {
            if meta.name == "exec" {
                self.discard_multi(conn);
            } else if conn.state.multi.is_some() {
                conn.state.multi_failed = true;
            }
            reject(conn, r);
            return;
        }
        // CLIENT LIST shows a container's subcommand (`client|list`), as Redis.
        let _ = note_command(conn, stat.map_or(meta.name, |(name, _)| name));
        // While a script runs, wait for it without holding a thread; past its busy threshold,
        // -BUSY (see engines::Busy and script::busy).
        // MULTI may start meanwhile, as in Redis (`allow-busy`): it touches no data, and
        // refusing it would let the rest of a pipelined transaction run as plain commands.
        if self.scripts.busy.running()
            && meta.name != "multi"
            && let Some(r) = self.wait_for_script(&args).await
        {
            if let Some((_, s)) = stat {
                s.reject();
            }
            self.refuse(conn, meta.name, r);
            return;
        }
        let queued_denyoom = || {
            conn.state.multi.iter().flatten().any(|a| {
                self.table
                    .get(&a[0])
                    .is_some_and(|(m, _)| m.flags.has(Flags::DENYOOM))
            })
        };
        if self
            .maxmemory
            .refuses(&meta, conn.state.multi.is_some(), queued_denyoom)
        {
            if let Some((_, s)) = stat {
                s.reject();
            }
            self.refuse(conn, meta.name, Reply::error(crate::maxmemory::OOM));
            return;
        }
        if conn.state.multi.is_some() && meta.flags.has(Flags::NO_MULTI) {
            // Redis' `no-multi`: refused, and the transaction with it (SHUTDOWN or SAVE must
            // neither run now nor at EXEC).
            conn.state.multi_failed = true;
            reject(
                conn,
                Reply::error("ERR Command not allowed inside a transaction"),
            );
            return;
        }
        // Held before queueing too, as Redis holds commands in a transaction.
        // A pause that began while the command waited for the lease holds it too, and a script
        // that started meanwhile is waited for (or `-BUSY`) as above: the command must not
        // take the store lock on a worker while the script holds it.
        loop {
            if !self.wait_for_pause(conn, &meta).await {
                return;
            }
            let data = matches!(handler, Handler::Data(_));
            match self.wait_for_lease(conn, &meta, data).await {
                LeaseWait::Go => {}
                LeaseWait::Renewed => continue,
                LeaseWait::Left => return,
                LeaseWait::Refused(r) => {
                    if conn.state.multi.is_some() {
                        conn.state.multi_failed = true;
                    }
                    reject(conn, r);
                    return;
                }
            }
            if !self.scripts.busy.running() || meta.name == "multi" {
                break;
            }
            if let Some(r) = self.wait_for_script(&args).await {
                if let Some((_, s)) = stat {
                    s.reject();
                }
                self.refuse(conn, meta.name, r);
                return;
            }
        }
        if conn.state.multi.is_some() && !meta.flags.has(Flags::UNQUEUED) {
            // Refused at queueing time, as Redis does (EXEC then aborts); EXEC checks again.
            if let Handler::Data(_) = handler
                && let Err(r) = self.gate(&meta)
            {
                conn.state.multi_failed = true;
                reject(conn, r);
                return;
            }
            if let Some(q) = conn.state.multi.as_mut() {
                q.push(args);
                conn.info.set_queued(q.len());
            }
            conn.reply(Reply::simple("QUEUED"));
            return;
        }
        // Kept for the slow log only while it (or the latency monitor) is on. EXEC is not
        // logged: the commands it runs are, one by one.
        // Data commands are timed where they run (`execute_in`), without this copy.
        let watched = (!matches!(handler, Handler::Data(_))
            && self.slowlog.watching()
            && meta.name != "exec")
            .then(|| args.clone());
        let stat = stat.filter(|_| !matches!(handler, Handler::Data(_)));
        let started = (stat.is_some() || watched.is_some()).then(Instant::now);
        let mark = conn.out.len();
        match handler {
            Handler::Conn(f) => f(conn, Args::new(args)),
            Handler::Node(f) => {
                f(self, conn, Args::new(args));
                // A script that ran long gave this worker's other tasks to another thread
                // (`engines::hand_off_worker`) and this task still runs on the script's: a
                // pipelined second script would start here, ahead of a task on the worker
                // that waits for the store (and then holds it for a whole script). Back to
                // the scheduler first.
                if self.scripts.busy.take_detached() {
                    tokio::task::yield_now().await;
                }
            }
            Handler::Async(f) => f(self, conn, Args::new(args)).await,
            Handler::Data(f) if meta.flags.has(Flags::BLOCKING) => {
                self.run_blocking(conn, &meta, f, args).await
            }
            Handler::Data(f) => {
                // Checked under the store lock: role changes take it, so the role cannot
                // change between the check and the command.
                let mut store = match self.lock_store() {
                    Ok(s) => s,
                    Err(busy) => {
                        reject(conn, busy);
                        return;
                    }
                };
                let mut clock = Clock::now();
                let reply = match self.gate_at(&meta, clock.mono) {
                    Ok(hide) => {
                        self.run_data(
                            &mut store,
                            conn,
                            &meta,
                            f,
                            Args::new(args),
                            false,
                            &mut clock,
                            hide,
                        )
                        .0
                    }
                    Err(r) => {
                        drop(store);
                        reject(conn, r);
                        return;
                    }
                };
                drop(store);
                push_reply(conn, reply);
            }
        }
        let micros = started.map_or(0, |t| t.elapsed().as_micros() as u64);
        if let Some((_, s)) = stat {
            // Failed: its (first) reply is an error, as EXEC's is only when it aborts.
            let error = conn.out.get(mark..).filter(|o| o.first() == Some(&b'-'));
            s.finished(micros, error.map(|e| &e[1..]));
        }
        if let Some(args) = watched {
            self.record(conn, &args, micros);
        }
    }

    /// [`Node::cluster_check`], waiting while the request writes to a slot a migration holds
    /// (its last step, normally milliseconds) and checking again with the view that ends it:
    /// by then the slot has moved (`MOVED`) or stayed. A hold that outlasts [`HOLD_MAX`] is
    /// answered `TRYAGAIN`, which cluster clients retry.
    async fn routed(
        &self,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<(), Reply> {
        let deadline = Instant::now() + HOLD_MAX;
        loop {
            let changed = self.view_changed.notified();
            match self.cluster_check(conn, meta, args) {
                Ok(()) => return Ok(()),
                Err(Refusal::Reply(r)) => return Err(r),
                Err(Refusal::Hold) => {
                    if tokio::time::timeout_at(deadline.into(), changed)
                        .await
                        .is_err()
                    {
                        return Err(Reply::error(crate::cluster::check::TRYAGAIN));
                    }
                }
            }
        }
    }

    /// Runs the leading plain data commands of a pipeline (valid, non-blocking, outside MULTI)
    /// under one acquisition of the store lock; stops at the first command that needs more.
    fn run_plain_prefix(&self, conn: &mut Conn<ConnState>, queue: &mut VecDeque<Vec<Bytes>>) {
        let mut guard = None;
        // Read once the store lock is held; each command then starts from the reading that
        // ended the one before (`execute_in`), read again after anything since that took a
        // lock others hold (propagating a write, the slow log, tracking, MONITOR, refreshing
        // the ACL user, the connection's details, a set pause, the error counts): a lock may
        // wait, and a lease judged on a reading from before the wait may have run out since.
        // A read's reply is not checked again. Commands of one batch see the same wall-clock
        // "now", as commands of one event-loop iteration do in Redis. One clock reading per
        // command, not two: a reading costs as much as a small command's lookup.
        let mut clock: Option<Clock> = None;
        let cluster = self.cluster_view();
        while let Some(args) = queue.front() {
            // With a `maxmemory` every command takes the full path, where `-OOM` is decided.
            if conn.state.multi.is_some()
                || self.scripts.busy.running()
                || conn.state.replies != Replies::On
                || self.maxmemory.get() != 0
            {
                return;
            }
            let Some(&(meta, Handler::Data(f))) = self.table.get(&args[0]) else {
                return;
            };
            // The ACL check waits for the rules' lock when it refreshes the user after the
            // rules changed: the previous command's end is then no longer "now".
            let seen = conn.user.generation;
            if meta.flags.has(Flags::BLOCKING)
                || !vigil_resp::acl::session::acl_open(conn)
                || precheck(conn, Some(&meta), args).is_err()
            {
                return;
            }
            let (held, pause_waited) = self.pause.holds_waited(&meta, false);
            if held.is_some() {
                return;
            }
            // Before the clock is read: it may wait for the connection's details lock.
            let noted = note_command(conn, meta.name);
            // Under the store lock, like every role check that precedes a command.
            let store = guard.get_or_insert_with(|| self.store.lock());
            let waits = conn.user.generation != seen || noted || pause_waited;
            let clock = match &mut clock {
                Some(c) => {
                    if waits {
                        c.mono = Instant::now();
                    }
                    c
                }
                None => clock.insert(Clock::now()),
            };
            // A redirect is answered on the full path. Routed here as the shard's master, the
            // gate's check says whether it is the master now too, in the same state read.
            let as_master = match &cluster {
                Some(view) => match self.route_here(view, conn, &meta, args) {
                    Err(_) => return,
                    Ok(Some(m)) if m.pubsub => {
                        if self.serves_as_master(view, &m, clock.mono).is_err() {
                            return;
                        }
                        false
                    }
                    Ok(m) => m.is_some(),
                },
                None => false,
            };
            let Ok(hide) = self.gate_as(&meta, clock.mono, as_master) else {
                return;
            };
            let Some(args) = queue.pop_front() else {
                return;
            };
            let shown = self.monitors.active().then(|| args.clone());
            let (reply, _) =
                self.run_data(store, conn, &meta, f, Args::new(args), false, clock, hide);
            // Counting an error reply takes the error statistics' lock.
            let counted = reply.is_error();
            push_reply(conn, reply);
            if counted {
                clock.mono = Instant::now();
            }
            conn.state.command_done();
            if let Some(args) = shown {
                self.feed_monitors(conn, &meta, &args);
                clock.mono = Instant::now();
            }
        }
    }

    /// Whether this command may run now ([`crate::gate::Gate::admit`]); `Ok` says whether
    /// lookups must hide expired keys. Call under the store lock.
    pub(crate) fn gate(&self, meta: &CommandMeta) -> Result<bool, Reply> {
        self.gate_at(meta, Instant::now())
    }

    /// [`Node::gate`] at `now`.
    pub(crate) fn gate_at(&self, meta: &CommandMeta, now: Instant) -> Result<bool, Reply> {
        self.gate_as(meta, now, false)
    }

    /// [`Node::gate_at`], and with `master` only as the master ([`Gate::admit_as`]).
    ///
    /// [`Gate::admit_as`]: crate::gate::Gate::admit_as
    fn gate_as(&self, meta: &CommandMeta, now: Instant, master: bool) -> Result<bool, Reply> {
        // While writes are held nothing may write, lazy expiry included. If the pause's lock
        // made us wait, the lease is judged after it.
        let (paused, waited) = self.pause.writes_paused_waited();
        let now = if waited { Instant::now() } else { now };
        self.gate
            .admit_as(
                meta.flags,
                now,
                master,
                |lag| self.repl.good_replicas(lag, self.clock_ms()),
                || {
                    self.config.read().replication.serve_stale_data
                        || self
                            .repl
                            .upstream
                            .lock()
                            .as_ref()
                            .is_some_and(|u| u.status.is_up())
                },
            )
            .map(|hide| hide || paused)
    }

    /// Runs before write replies leave: the gate's acknowledgement check
    /// ([`crate::gate::Gate::settle`]). If it fails, the output is cut at the batch's first
    /// write reply and the connection closed: the outcome is unknown to the client.
    pub async fn ack_check(&self, conn: &mut Conn<ConnState>) {
        let sync = || {
            let c = self.config.read();
            (c.replication.sync_replicas, c.replication.sync_timeout)
        };
        let settled = self
            .gate
            .settle(&mut conn.state.ack, sync, |offset, n, deadline| {
                self.repl.wait_acks(offset, n, Some(deadline))
            })
            .await;
        if let Err(u) = settled {
            conn.out.truncate(u.cut.min(conn.out.len()));
            conn.close = true;
            tracing::warn!(
                offset = u.offset,
                client = conn.info.id,
                "write outcome unknown ({}): closing the connection without its reply",
                u.why
            );
        }
    }

    /// Runs a data command under the held store lock and propagates its effects. Returns the
    /// reply and the block request of a blocking command that found nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_data(
        &self,
        store: &mut Store,
        conn: &mut Conn<ConnState>,
        meta: &CommandMeta,
        f: DataFn,
        args: Args,
        may_block: bool,
        clock: &mut Clock,
        hide_expired: bool,
    ) -> (Reply, Option<crate::ctx::Block>) {
        let mut props: Vec<Prop> = Vec::new();
        let result = execute_in(
            self,
            store,
            conn,
            meta,
            f,
            args,
            may_block,
            clock,
            hide_expired,
            &mut props,
        );
        self.note_propagated(conn, &props);
        // Propagating took the replication feed's and the append log's locks, which others
        // hold too: the next command of the batch starts from a reading after them.
        if !props.is_empty() {
            clock.mono = Instant::now();
        }
        result
    }

    /// Propagates a command's (or transaction's) effects and records what its reply must wait
    /// for.
    pub(crate) fn note_propagated(&self, conn: &mut Conn<ConnState>, props: &[Prop]) {
        if props.is_empty() {
            return;
        }
        let p = self.propagate(props);
        if let Some(seq) = p.log_seq {
            conn.state.log_seq = Some(seq);
        }
        conn.state.woff = p.offset;
        // Only where replies are checked before they leave is it worth tracking them.
        if self.gate.ack_checks() {
            conn.state.ack.wrote(p.offset);
        }
    }

    /// Ends the open transaction without running it, forgetting the WATCHed keys (DISCARD,
    /// RESET, a redirected EXEC).
    pub(crate) fn discard_multi(&self, conn: &mut Conn<ConnState>) {
        conn.state.multi = None;
        conn.state.multi_failed = false;
        conn.info.end_multi();
        self.unwatch_all(conn);
    }

    /// A command refused (a busy script, `maxmemory`): like any refusal it fails the open
    /// transaction, and a refused EXEC ends it with `-EXECABORT` naming the reason (Redis'
    /// `rejectCommand`). The WATCHed keys stay watched until the next EXEC, DISCARD or UNWATCH:
    /// forgetting them needs the store a busy script holds.
    fn refuse(&self, conn: &mut Conn<ConnState>, name: &str, r: Reply) {
        let Reply::Error(e) = &r else {
            conn.reply(r);
            return;
        };
        if name == "exec" {
            conn.state.multi = None;
            conn.state.multi_failed = false;
            conn.info.end_multi();
            let why = e.strip_prefix('-').unwrap_or(e);
            conn.reply(Reply::Error(
                format!("EXECABORT Transaction discarded because of: {why}").into(),
            ));
            return;
        }
        if conn.state.multi.is_some() {
            conn.state.multi_failed = true;
        }
        conn.reply(r);
    }

    /// Shows a command a client ran to the MONITOR clients.
    pub(crate) fn feed_monitors(&self, conn: &Conn<ConnState>, meta: &CommandMeta, args: &[Bytes]) {
        self.monitors
            .feed(meta, conn.db, &conn.info.addr.to_string(), args);
    }
}

/// Appends a data command's reply, remembering where a write's reply sits.
pub(crate) fn push_reply(conn: &mut Conn<ConnState>, reply: Reply) {
    let start = conn.out.len();
    conn.reply(reply);
    conn.state.ack.reply_at(start);
}
