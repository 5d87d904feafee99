//! Running data commands under the store lock: one command ([`execute_in`], with its
//! statistics, slow-log entry and client-side-caching reads), or a MULTI/EXEC queue atomically
//! ([`Node::exec`]) with its writes propagated as one MULTI/EXEC block.

use std::time::Instant;

use bytes::Bytes;
use vigil_resp::{Args, CommandMeta, Conn, Flags, Protocol, Reply};

use crate::cluster::check::Misrouted;
use crate::ctx::{Ctx, DataFn, Prop};
use crate::db::Store;
use crate::node::{Handler, Node};
use crate::session::ConnState;
use vigil_base::clock::unix_ms;

/// The clock a data command runs by: the wall-clock milliseconds its data sees (expiry,
/// timestamps) and the monotonic reading it starts at, taken under the store lock (its lease
/// check and its duration run from it, one reading for both, where a clock reading costs as
/// much as a small command's lookup). [`execute_in`] moves `mono` to the command's end.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    /// Wall-clock milliseconds since the epoch.
    pub unix_ms: i64,
    /// The monotonic "now".
    pub mono: Instant,
}

impl Clock {
    /// Both clocks read now.
    pub fn now() -> Clock {
        Clock {
            unix_ms: unix_ms(),
            mono: Instant::now(),
        }
    }
}

impl Node {
    /// Forgets every WATCH of the connection.
    pub fn unwatch_all(&self, conn: &mut Conn<ConnState>) {
        if conn.state.watched.is_empty() {
            return;
        }
        let mut store = self.store.lock();
        for w in conn.state.watched.drain(..) {
            store.dbs[w.db].unwatch(&w.key, &w.flags);
        }
    }

    /// EXEC: runs the queue atomically under one store lock.
    pub(crate) fn exec(&self, conn: &mut Conn<ConnState>) {
        let Some(queue) = conn.state.multi.take() else {
            conn.reply(Reply::error("ERR EXEC without MULTI"));
            return;
        };
        conn.info.end_multi();
        if std::mem::take(&mut conn.state.multi_failed) {
            self.unwatch_all(conn);
            conn.reply(Reply::error(
                "EXECABORT Transaction discarded because of previous errors.",
            ));
            return;
        }
        let mut store = self.store.lock();
        // The role may have changed since the commands were queued (checked under the lock,
        // which role changes take).
        let mut hide = false;
        for args in &queue {
            let Some((meta, handler)) = self.table.get(&args[0]) else {
                continue;
            };
            // Commands outside the data path (PING, ...) are refused only by a stale replica,
            // as Redis refuses EXEC when any queued command lacks `stale`.
            let stale_only = !matches!(handler, Handler::Data(_));
            if stale_only && meta.flags.has(Flags::STALE) {
                continue;
            }
            {
                let checked = self.gate(meta);
                let checked = match checked {
                    Err(Reply::Error(e)) if stale_only && !e.starts_with("MASTERDOWN") => Ok(hide),
                    other => other,
                };
                match checked {
                    Ok(h) => hide = h,
                    Err(r) => {
                        // Refused as a whole, in Redis' words for a rejected EXEC.
                        drop(store);
                        self.unwatch_all(conn);
                        let why = match &r {
                            Reply::Error(e) => e.to_string(),
                            _ => String::new(),
                        };
                        conn.reply(Reply::Error(
                            format!("EXECABORT Transaction discarded because of: {why}").into(),
                        ));
                        return;
                    }
                }
            }
        }
        let mut clock = Clock::now();
        let touched = conn.state.watched.iter().any(|w| {
            let db = &store.dbs[w.db];
            w.flags.is_dirty() || (!w.flags.was_expired() && db.is_expired(&w.key, clock.unix_ms))
        });
        for w in conn.state.watched.drain(..) {
            store.dbs[w.db].unwatch(&w.key, &w.flags);
        }
        if touched {
            drop(store);
            conn.reply(Reply::NilArray);
            return;
        }
        let mut guard = Some(store);
        let mut props: Vec<Prop> = Vec::new();
        let start = conn.out.len();
        conn.out
            .extend_from_slice(format!("*{}\r\n", queue.len()).as_bytes());
        for args in queue {
            let Some(&(meta, handler)) = self.table.get(&args[0]) else {
                continue;
            };
            // Checked again: the rules may have changed since the command was queued.
            if let Err((d, _)) = vigil_resp::acl::session::acl_check(
                conn,
                &meta,
                &args,
                vigil_resp::acl::log::Context::Multi,
            ) {
                conn.reply(Reply::error(format!(
                    "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
                    d.exec_reason()
                )));
                continue;
            }
            // Monitors see what runs, not what was refused (as Redis' `call`).
            if self.monitors.active() {
                self.feed_monitors(conn, &meta, &args);
            }
            // A data command is counted as it runs (`execute_in`); the others here, as Redis
            // counts every command of a transaction.
            let counted = (!matches!(handler, Handler::Data(_)))
                .then(|| self.cmdstats.stat(&meta, args.get(1).map(|a| &a[..])))
                .flatten()
                .map(|(_, s)| (s, Instant::now(), conn.out.len()));
            // So is a slow one logged (data commands where they run), as Redis logs the
            // commands a transaction ran rather than EXEC.
            let watched = (!matches!(handler, Handler::Data(_)) && self.slowlog.watching())
                .then(|| (args.clone(), Instant::now()));
            match handler {
                Handler::Data(f) => {
                    if guard.is_none() {
                        guard = Some(self.store.lock());
                        clock.mono = Instant::now();
                        // A node command before it let go of the lock: the role, the fence or
                        // the lease may have changed since EXEC was admitted.
                        match self.gate_at(&meta, clock.mono) {
                            Ok(h) => hide = h,
                            Err(r) => {
                                // Let go again, so that each later command is checked too.
                                guard = None;
                                conn.reply(r);
                                continue;
                            }
                        }
                    }
                    let Some(store) = guard.as_mut() else {
                        continue;
                    };
                    let (reply, _) = execute_in(
                        self,
                        store,
                        conn,
                        &meta,
                        f,
                        Args::new(args),
                        false,
                        &mut clock,
                        hide,
                        &mut props,
                    );
                    conn.reply(reply);
                }
                Handler::Conn(f) => f(conn, Args::new(args)),
                // SELECT only switches the client's database: the writes around it stay one
                // transaction for the replicas and the log, each under its own database.
                Handler::Node(f) if meta.name == "select" => f(self, conn, Args::new(args)),
                Handler::Node(f) => {
                    // Node commands take the lock themselves; what ran so far goes to the log
                    // first, so a snapshot (BGSAVE) inside the transaction cuts the log at the
                    // right place.
                    self.flush_props(conn, &mut props);
                    guard = None;
                    f(self, conn, Args::new(args));
                }
                // MIGRATE needs to wait for its target, which EXEC cannot under the store lock.
                Handler::Async(_) if meta.name == "migrate" => {
                    conn.reply(Reply::error(crate::migrate::IN_MULTI))
                }
                // Otherwise only WAIT can be queued (PSYNC and SYNC are `no-multi`); inside a
                // transaction it answers at once, as in Redis.
                Handler::Async(_) => crate::repl::master::wait_now(self, conn, Args::new(args)),
            }
            if let Some((stat, started, mark)) = counted {
                let error = conn.out.get(mark..).filter(|o| o.first() == Some(&b'-'));
                stat.finished(started.elapsed().as_micros() as u64, error.map(|e| &e[1..]));
            }
            if let Some((args, started)) = watched {
                self.record(conn, &args, started.elapsed().as_micros() as u64);
            }
        }
        let _store = guard.get_or_insert_with(|| self.store.lock());
        self.flush_props(conn, &mut props);
        conn.state.ack.reply_at(start);
    }

    /// Appends a transaction's propagated commands so far (see [`Node::propagate_atomically`]).
    fn flush_props(&self, conn: &mut Conn<ConnState>, props: &mut Vec<Prop>) {
        if !props.is_empty() {
            self.propagate_atomically(conn, std::mem::take(props));
        }
    }

    /// Propagates the writes of one transaction or script: as they are when one command,
    /// wrapped in MULTI/EXEC when several, so a replica or a replay applies all or nothing.
    pub(crate) fn propagate_atomically(&self, conn: &mut Conn<ConnState>, mut all: Vec<Prop>) {
        if all.len() > 1 {
            let db = all[0].0;
            all.insert(0, (db, vec![Bytes::from_static(b"MULTI")]));
            let last_db = all[all.len() - 1].0;
            all.push((last_db, vec![Bytes::from_static(b"EXEC")]));
        }
        self.note_propagated(conn, &all);
    }
}

/// Whether a command looks keys up for reading (a keyspace hit or miss; a miss is a `keymiss`
/// event): the read-only commands, and the writes Redis serves with a read lookup.
pub(crate) fn reads_keys(meta: &CommandMeta) -> bool {
    meta.flags.has(Flags::READONLY)
        || matches!(
            meta.name,
            "getdel"
                | "getex"
                | "getset"
                | "copy"
                | "sort"
                | "sinterstore"
                | "sunionstore"
                | "sdiffstore"
                | "zunionstore"
                | "zinterstore"
                | "zdiffstore"
                | "zrangestore"
                | "bitop"
                | "pfmerge"
                | "georadius"
                | "georadiusbymember"
                | "geosearchstore"
                | "xreadgroup"
                | "xack"
                | "xclaim"
                | "xautoclaim"
                | "migrate"
        )
}

/// Runs a data command on a locked store, collecting what it propagates into `props`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute_in(
    node: &Node,
    store: &mut Store,
    conn: &Conn<ConnState>,
    meta: &CommandMeta,
    f: DataFn,
    mut args: Args,
    may_block: bool,
    clock: &mut Clock,
    hide_expired: bool,
    props: &mut Vec<Prop>,
) -> (Reply, Option<crate::ctx::Block>) {
    // The view may have changed since the command was routed (a migration's pause or commit):
    // checked again under the store lock, which a view change takes too.
    if let Some(m) = node.misrouted_write(conn.tls, meta, args.all()) {
        let r = match m {
            Misrouted::Held => Reply::error(crate::cluster::check::TRYAGAIN),
            Misrouted::Elsewhere(r) => r,
        };
        // The next command of the batch starts from this reading, as from any command's end.
        clock.mono = Instant::now();
        return (r, None);
    }
    store.tracking().set_current(conn.info.id);
    let mut ctx = Ctx::new(store, conn.db, clock.unix_ms, props);
    ctx.may_block = may_block;
    ctx.hide_expired = hide_expired;
    ctx.resp3 = conn.proto == Protocol::Resp3;
    ctx.no_touch = conn.state.no_touch;
    ctx.waiter = conn.state.waiter.clone();
    if meta.name.starts_with("sort") {
        ctx.partial_keys = !vigil_resp::acl::session::reads_every_key(conn, meta, args.all());
    }
    // A blocked client served on wake-up is not a new lookup (Redis counts none then).
    ctx.reads = reads_keys(meta) && conn.state.waiter.is_none();
    let started = clock.mono;
    let reply = Reply::from(f(&mut ctx, &mut args));
    ctx.finish(&args);
    if ctx.store.notify.has_pending() || ctx.store.notify.wants(crate::db::notify::NEW) {
        ctx.store.publish_events(&node.shared.hub);
    }
    clock.mono = Instant::now();
    // A blocking command that found nothing has not run yet: it is timed when it does.
    if ctx.block.is_none() {
        let micros = clock.mono.saturating_duration_since(started).as_micros() as u64;
        let error = match &reply {
            Reply::Error(e) => Some(&e[..]),
            _ => None,
        };
        // The next command of a batch starts from this reading (`run_plain_prefix`), unless
        // what follows took a lock, which may have waited.
        if node.ran(conn, meta, args.all(), micros, error) {
            clock.mono = Instant::now();
        }
    }
    if meta.flags.has(Flags::READONLY) && conn.state.tracks_reads() {
        let all = args.all();
        let keys = meta.keys(all).unwrap_or_default();
        ctx.store
            .tracking()
            .remember(conn.info.id, keys.iter().filter_map(|k| all.get(k.pos)));
        clock.mono = Instant::now();
    }
    (reply, ctx.block.take())
}
