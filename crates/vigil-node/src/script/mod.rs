//! Scripts and functions on the node: the host their
//! `redis.call` reaches ([`ScriptHost`]: the command table on the locked store), and one run
//! from start to end ([`Node::run_script`]): the gate checks the script once, the store stays
//! locked throughout, and the effects are propagated at the end — as one MULTI/EXEC when there
//! are several — never the script itself.

mod busy;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use vigil_lua::{Engine, Host, ScriptFlags};
use vigil_resp::{Args, CommandMeta, Conn, Flags, Reply};

use crate::ctx::{Ctx, Prop};
use crate::db::Store;
use crate::node::{Handler, Node};
use crate::session::ConnState;
use vigil_base::clock::unix_ms;

pub use crate::engines::{Busy, Kind, Scripting};

/// What `redis.call` reaches: the command table on the locked store, in the script's own
/// database, collecting what the commands propagate.
pub struct ScriptHost<'a> {
    node: &'a Node,
    store: &'a mut Store,
    db: usize,
    now: i64,
    hide_expired: bool,
    read_only: bool,
    /// A script without a shebang is admitted as a read and checked as a write at its first
    /// write command, as Redis 7.0 runs such scripts on a read-only replica until they write.
    /// The store stays locked, so this is the same one check a write gets.
    gate_at_first_write: bool,
    props: Vec<Prop>,
    databases: usize,
    /// The caller is on TLS (for the address of a redirect).
    tls: bool,
    /// The script ran a read-only command: a tracking caller remembers its declared keys.
    read_called: bool,
    /// The last command's error, not yet counted in the error statistics: if it ends the
    /// script (`redis.call` raising it), the script's reply counts it, once, as in Redis.
    pending_error: Option<String>,
    /// The caller's ACL user, when it is restricted (each redis.call is checked), with its
    /// name and client line for ACL LOG.
    acl_user: Option<(std::sync::Arc<vigil_resp::acl::User>, Bytes, String)>,
    /// In a cluster, the slot of the script's keys so far (its declared ones first).
    slot: Option<u16>,
    /// Its calls may touch several slots (`allow-cross-slot-keys`, or no shebang in `EVAL`).
    cross_slot: bool,
}

impl ScriptHost<'_> {
    /// Counts the pending command error, unless `reply` (the script's) carries it on.
    fn settle_error(&mut self, reply: Option<&Reply>) {
        if let Some(e) = self.pending_error.take() {
            let carried = matches!(reply, Some(Reply::Error(r)) if r.starts_with(e.as_str()));
            if !carried {
                self.node.shared.stats.errors.count(&e);
            }
        }
    }
}

impl ScriptHost<'_> {
    /// The caller's ACL check for one redis.call, logged (context `lua`) when refused.
    fn acl_refusal(&self, meta: &CommandMeta, args: &[Bytes]) -> Option<Reply> {
        let (user, name, client_info) = self.acl_user.as_ref()?;
        let who = vigil_resp::acl::session::Who {
            name,
            client_info: &|| client_info.clone(),
        };
        let context = vigil_resp::acl::log::Context::Lua;
        let (d, _) = vigil_resp::acl::session::check_logged(
            &self.node.shared.acl,
            Some(user),
            meta,
            args,
            context,
            who,
        )
        .err()?;
        Some(Reply::error(format!("ERR {}", d.script_message())))
    }
}

impl Host for ScriptHost<'_> {
    fn call(&mut self, args: Vec<Bytes>, resp3: bool) -> Reply {
        // The previous command's error was handled by the script (`redis.pcall`): it counts.
        self.settle_error(None);
        let Some(&(meta, handler)) = self.node.table.get(&args[0]) else {
            return Reply::error("ERR Unknown Redis command called from script");
        };
        if !meta.arity_ok(args.len()) {
            return Reply::error("ERR Wrong number of args calling Redis command from script");
        }
        if let Some(r) = self.acl_refusal(&meta, &args) {
            return r;
        }
        match meta.name {
            // The script's own database: SELECT inside it never changes the caller's.
            "select" => {
                return match vigil_resp::args::parse_int(&args[1]) {
                    Err(_) => Reply::error("ERR value is not an integer or out of range"),
                    Ok(n) if n < 0 || n as usize >= self.databases => {
                        Reply::error("ERR DB index is out of range")
                    }
                    Ok(n) if n != 0 && self.node.shared.cluster_mode.load(Ordering::Acquire) => {
                        Reply::error("ERR SELECT is not allowed in cluster mode")
                    }
                    Ok(n) => {
                        self.db = n as usize;
                        Reply::ok()
                    }
                };
            }
            "ping" if args.len() == 1 => return Reply::simple("PONG"),
            "ping" | "echo" => return Reply::Bulk(args[args.len() - 1].clone()),
            _ => {}
        }
        // Blocking commands are `noscript` in Redis 7.0, as are the commands that need the
        // connection or the node (MULTI, SUBSCRIBE, EVAL, SCRIPT...).
        let Handler::Data(f) = handler else {
            return Reply::error("ERR This Redis command is not allowed from script");
        };
        if meta.flags.has(Flags::NOSCRIPT) {
            return Reply::error("ERR This Redis command is not allowed from script");
        }
        if meta.flags.has(Flags::WRITE) && self.read_only {
            return Reply::error("ERR Write commands are not allowed from read-only scripts.");
        }
        // In a cluster, a call on a key this shard does not serve now (not declared, or the
        // slot moved or is held since the script was routed) or in another slot than the
        // script's is refused, as Redis refuses it.
        if let Some(r) =
            self.node
                .script_refusal(self.tls, &meta, &args, &mut self.slot, self.cross_slot)
        {
            return r;
        }
        if meta.flags.has(Flags::WRITE) && self.gate_at_first_write {
            if let Err(r) = self.node.gate(&gate_meta(false, ScriptFlags::default())) {
                return r;
            }
            self.gate_at_first_write = false;
        }
        self.read_called |= meta.flags.has(Flags::READONLY);
        self.node.monitors.feed(&meta, self.db, "lua", &args);
        // SORT's BY and GET read keys no key position names: only a caller who may read
        // every key gets them, inside a script as outside (execute.rs).
        let partial_keys = meta.name.starts_with("sort")
            && self.acl_user.as_ref().is_some_and(|(u, _, _)| {
                !vigil_resp::acl::session::user_reads_every_key(
                    &self.node.shared.acl,
                    u,
                    &meta,
                    &args,
                )
            });
        let mut args = Args::new(args);
        let mut ctx = Ctx::new(self.store, self.db, self.now, &mut self.props);
        ctx.partial_keys = partial_keys;
        ctx.hide_expired = self.hide_expired;
        ctx.resp3 = resp3;
        ctx.in_script = true;
        ctx.reads = crate::execute::reads_keys(&meta);
        let started = std::time::Instant::now();
        let reply = Reply::from(f(&mut ctx, &mut args));
        if ctx.dirty() > 0 {
            self.node.scripts.busy.wrote();
        }
        ctx.finish(&args);
        ctx.store.publish_events(&self.node.shared.hub);
        // A script's commands count in the statistics as a client's do, as in Redis.
        let all = args.all();
        if let Some((_, stat)) = self.node.cmdstats.stat(&meta, all.get(1).map(|a| &a[..])) {
            let micros = started.elapsed().as_micros() as u64;
            let error = match &reply {
                Reply::Error(e) => Some(e.as_bytes()),
                _ => None,
            };
            stat.finished(micros, error);
        }
        if let Reply::Error(e) = &reply {
            self.pending_error = Some(e.to_string());
        }
        reply
    }

    fn acl_check(&self, args: &[Bytes]) -> Option<bool> {
        let &(meta, _) = self.node.table.get(&args[0])?;
        let acl = self.node.shared.acl.read();
        if !acl.universe.knows(&meta, args) {
            return None;
        }
        // Redis asks without logging a refusal; an unrestricted caller may run anything.
        Some(match &self.acl_user {
            Some((user, _, _)) => vigil_resp::acl::check(&acl.universe, user, &meta, args).is_ok(),
            None => true,
        })
    }
}

/// The gate's view of a script: one write, or one read (`*_RO`, `no-writes`).
fn gate_meta(read_only: bool, flags: ScriptFlags) -> CommandMeta {
    let mut f = if read_only {
        Flags::READONLY
    } else {
        Flags(Flags::WRITE.0 | Flags::DENYOOM.0)
    };
    if flags.allow_stale {
        f = Flags(f.0 | Flags::STALE.0);
    }
    CommandMeta {
        name: "eval",
        arity: -3,
        flags: f,
        first_key: 0,
        last_key: 0,
        step: 0,
        find_keys: None,
        group: "scripting",
        summary: "",
        index: vigil_resp::CommandMeta::UNLISTED,
    }
}

/// A script to run: which, with what.
pub struct Call<'a> {
    /// Script or function.
    pub kind: Kind,
    /// The script's SHA1 or the function's name.
    pub name: &'a str,
    /// `KEYS`.
    pub keys: &'a [Bytes],
    /// `ARGV`.
    pub argv: &'a [Bytes],
    /// `EVAL_RO`, `EVALSHA_RO`, `FCALL_RO`.
    pub read_only: bool,
    /// EVAL's body, compiled and cached if not already.
    pub body: Option<&'a [u8]>,
}

impl Node {
    /// Runs a script or function for `conn` under the store lock, from start to end, and
    /// propagates its effects; returns the reply.
    pub(crate) fn run_script(&self, conn: &mut Conn<ConnState>, call: Call<'_>) -> Reply {
        let mut store = self.store.lock();
        let store = &mut *store;
        // The engine is taken out of its slot while it runs: nothing else can reach it then,
        // since the store lock is held, and a panic cannot leave it half-borrowed.
        let slot = match call.kind {
            Kind::Script => self.scripts.eval.lock().take(),
            Kind::Function => {
                let mut f = self.scripts.functions.lock();
                match f.take() {
                    Some((v, e)) if v == store.functions.version => Some(e),
                    _ => None,
                }
            }
        };
        let mut engine = match slot {
            Some(e) => e,
            None => match self.build_engine(call.kind, store) {
                Ok(e) => e,
                Err(r) => return Reply::Error(r.into()),
            },
        };
        let version = store.functions.version;
        let prepared = self.prepare(&mut engine, &call, store);
        let (name, flags) = match prepared {
            Ok(p) => p,
            Err(r) => {
                self.put_engine(call.kind, engine, version);
                return r;
            }
        };
        if call.read_only && !flags.is_none_or(|f| f.no_writes) {
            self.put_engine(call.kind, engine, version);
            return Reply::error(
                "ERR Can not execute a script with write flag using *_ro command.",
            );
        }
        // A script that declared its flags and may write is refused whole past `maxmemory`
        // (unless `allow-oom`), as Redis refuses it before running.
        if flags.is_some_and(|f| !f.no_writes && !f.allow_oom) && self.maxmemory.exceeded() {
            self.put_engine(call.kind, engine, version);
            return Reply::error(crate::maxmemory::OOM);
        }
        let gate_at_first_write = flags.is_none() && !call.read_only;
        // Redis lets only an `EVAL` without a shebang touch several slots unless it says so.
        let cross_slot = flags.map_or(call.kind == Kind::Script, |f| f.allow_cross_slot);
        let flags = flags.unwrap_or_default();
        let read_only = call.read_only || flags.no_writes;
        let hide = match self.gate(&gate_meta(read_only || gate_at_first_write, flags)) {
            Ok(h) => h,
            Err(r) => {
                self.put_engine(call.kind, engine, version);
                return r;
            }
        };
        let mut host = ScriptHost {
            node: self,
            store,
            db: conn.db,
            now: unix_ms(),
            hide_expired: hide,
            read_only,
            gate_at_first_write,
            props: Vec::new(),
            databases: conn.shared.databases,
            tls: conn.tls,
            read_called: false,
            pending_error: None,
            acl_user: vigil_resp::acl::session::current_user(conn)
                .filter(|u| !u.unrestricted())
                .map(|u| (u, conn.user.name.clone(), conn.info.list_line())),
            slot: crate::cluster::route::keys_slot(call.keys.iter().map(|k| &k[..]))
                .ok()
                .flatten(),
            cross_slot,
        };
        host.store.tracking().set_current(conn.info.id);
        if call.kind == Kind::Function {
            let verb = if call.read_only { "fcall_ro" } else { "fcall" };
            let mut command = vec![
                Bytes::from_static(verb.as_bytes()),
                Bytes::copy_from_slice(call.name.as_bytes()),
                Bytes::from(call.keys.len().to_string()),
            ];
            command.extend(call.keys.iter().chain(call.argv).cloned());
            let f = &host.store.functions;
            *self.scripts.busy.shown.lock() = Some((command, f.libs.len(), f.function_count()));
        }
        let running = self.scripts.busy.start(&name, call.kind);
        // A script that runs long hands this worker's other tasks over at its first tick
        // (`engines::Busy::tick`), not here: the hand-off costs more than a short script.
        let reply = match call.kind {
            Kind::Script => engine.run_script(&name, call.keys, call.argv, &mut host),
            Kind::Function => engine.run_function(&name, call.keys, call.argv, &mut host),
        };
        host.settle_error(reply.as_ref());
        let props = std::mem::take(&mut host.props);
        let version = host.store.functions.version;
        // As Redis: a tracking client that ran a script which read anything caches the keys
        // the script declared.
        if host.read_called && conn.state.tracks_reads() {
            host.store
                .tracking()
                .remember(conn.info.id, call.keys.iter());
        }
        drop(host);
        self.put_engine(call.kind, engine, version);
        let reply =
            reply.unwrap_or_else(|| Reply::error("NOSCRIPT No matching script. Please use EVAL."));
        self.propagate_atomically(conn, props);
        drop(running);
        reply
    }

    /// Compiles an EVAL body, or finds the script or function: its name and declared flags
    /// (`None`: a script without a shebang).
    fn prepare(
        &self,
        engine: &mut Engine,
        call: &Call<'_>,
        store: &Store,
    ) -> Result<(String, Option<ScriptFlags>), Reply> {
        match call.kind {
            Kind::Script => {
                let sha = match call.body {
                    Some(body) => engine
                        .load_script(body)
                        .map_err(|e| Reply::Error(e.into()))?,
                    None => call.name.to_ascii_lowercase(),
                };
                if !engine.has_script(&sha) {
                    return Err(Reply::error(
                        "NOSCRIPT No matching script. Please use EVAL.",
                    ));
                }
                let flags = engine.script_flags(&sha);
                Ok((sha, flags))
            }
            Kind::Function => match store.functions.function(call.name) {
                Some((_, f)) => Ok((f.name.clone(), Some(f.flags))),
                None => Err(Reply::error("ERR Function not found")),
            },
        }
    }

    fn build_engine(&self, kind: Kind, store: &Store) -> Result<Engine, String> {
        let mut e = self.scripts.engine()?;
        if kind == Kind::Function {
            for lib in store.functions.libs.values() {
                if let Err(err) = e.load_library(&lib.code) {
                    tracing::error!(library = %lib.name, error = %err, "library failed to load");
                }
            }
        }
        Ok(e)
    }

    fn put_engine(&self, kind: Kind, e: Engine, version: u64) {
        match kind {
            Kind::Script => *self.scripts.eval.lock() = Some(e),
            Kind::Function => *self.scripts.functions.lock() = Some((version, e)),
        }
    }
}
