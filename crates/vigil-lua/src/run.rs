//! What a running script reaches from Lua: the [`Host`] of the run in progress, through the
//! `redis.call` implementation and `redis.acl_check_cmd`'s permission check, both created once
//! with the engine. Creating them per run (as scoped closures borrowing the host) cost about a
//! fifth of a small script's time; instead the run lends its host to a slot for its duration
//! ([`HostGuard`]), and the permanent callbacks find it there.

use std::marker::PhantomData;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use mlua::{Lua, MultiValue, Table, Value};
use vigil_resp::Reply;

use crate::convert::{error_table, from_reply};
use crate::ffi::CALL_KEY;

/// What a script's `redis.call` reaches: the node's command table on the locked dataset.
pub trait Host {
    /// Runs one command; an error comes back as [`Reply::Error`] worded with its code.
    /// `resp3`: the script asked for RESP3 replies (`redis.setresp(3)`).
    fn call(&mut self, args: Vec<Bytes>, resp3: bool) -> Reply;
    /// Whether the script's caller may run `args` (`redis.acl_check_cmd`): `None` when no
    /// such command (or subcommand) exists.
    fn acl_check(&self, args: &[Bytes]) -> Option<bool>;
}

/// The host of the run in progress, its lifetime erased (see [`HostGuard`]).
struct HostPtr(*mut (dyn Host + 'static));

// SAFETY: the pointer is set and cleared by `HostGuard` on the thread that runs the script, and
// dereferenced only by callbacks Lua calls during that run, on the same thread.
unsafe impl Send for HostPtr {}

/// State the Rust side of the API shares with the Lua side during a run.
#[derive(Default)]
pub(crate) struct RunState {
    /// The script asked for RESP3 replies (`redis.setresp(3)`).
    pub resp3: AtomicBool,
    /// The run was stopped by the tick (SCRIPT KILL, FUNCTION KILL).
    pub killed: AtomicBool,
    host: Mutex<Option<HostPtr>>,
}

impl RunState {
    /// Runs `f` on the host of the run in progress (`None` outside a run).
    fn with_host<R>(&self, f: impl FnOnce(&mut dyn Host) -> R) -> Option<R> {
        let ptr = self
            .host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .0;
        // SAFETY: `HostGuard::lend` stored it from a `&mut dyn Host` that outlives the guard,
        // and the guard clears it before that borrow ends. Callbacks run one at a time inside
        // the run, and the host never calls back into Lua, so this is the only reference.
        Some(f(unsafe { &mut *ptr }))
    }
}

/// Lends a host to the run in progress; takes it back when dropped (also on error or panic).
pub(crate) struct HostGuard<'h> {
    state: &'h RunState,
    _host: PhantomData<&'h mut ()>,
}

impl<'h> HostGuard<'h> {
    /// Makes `host` what `redis.call` reaches until the guard drops.
    ///
    /// # Safety
    /// The guard must be dropped (not leaked with `mem::forget` or a cycle): its destructor is
    /// what takes the pointer back before `host`'s borrow ends.
    pub unsafe fn lend(state: &'h RunState, host: &'h mut dyn Host) -> HostGuard<'h> {
        let ptr: *mut (dyn Host + 'h) = host;
        // SAFETY: only the trait object's lifetime bound is erased; the guard, which borrows
        // `host` for 'h, clears the pointer when it drops.
        let ptr: *mut (dyn Host + 'static) = unsafe { std::mem::transmute(ptr) };
        *state.host.lock().unwrap_or_else(|e| e.into_inner()) = Some(HostPtr(ptr));
        HostGuard {
            state,
            _host: PhantomData,
        }
    }
}

impl Drop for HostGuard<'_> {
    fn drop(&mut self) {
        *self.state.host.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Installs the `redis.call` implementation (in the registry, for `ffi::call_c`) and
/// `host.acl_check` for the prelude.
pub(crate) fn install(
    lua: &Lua,
    host: &Table,
    state: &std::sync::Arc<RunState>,
) -> mlua::Result<()> {
    let st = state.clone();
    let call = lua.create_function(move |lua, (mode, args): (Value, MultiValue)| {
        // An integer mode: the arguments come packed in one table (ffi::call_c).
        let args = match (mode, args.front()) {
            (Value::Integer(_), Some(Value::Table(t))) => t
                .sequence_values::<Value>()
                .collect::<mlua::Result<MultiValue>>()?,
            _ => args,
        };
        let args = match command_args(args) {
            Ok(a) => a,
            Err(msg) => return Ok((true, error_table(lua, &msg)?)),
        };
        let resp3 = st.resp3.load(Ordering::Relaxed);
        let reply = st.with_host(|h| h.call(args, resp3)).ok_or_else(|| {
            mlua::Error::runtime("redis.call is available only while a script runs")
        })?;
        match reply {
            Reply::Error(e) => Ok((true, error_table(lua, &e)?)),
            r => Ok((false, from_reply(lua, r, resp3)?)),
        }
    })?;
    lua.set_named_registry_value(CALL_KEY, call)?;
    let st = state.clone();
    // (true|false) or (nil, why): the prelude raises the error, worded as Redis.
    host.set(
        "acl_check",
        lua.create_function(move |_, args: MultiValue| {
            let args = match command_args(args) {
                Ok(a) => a,
                Err(msg) => return Ok((None, Some(msg))),
            };
            match st.with_host(|h| h.acl_check(&args)).flatten() {
                Some(ok) => Ok((Some(ok), None)),
                None => Ok((
                    None,
                    Some("ERR Invalid command passed to redis.acl_check_cmd()".to_string()),
                )),
            }
        })?,
    )
}

/// `redis.call`'s arguments: strings, or numbers as C's `%.17g` writes them (as Redis does:
/// Lua's own `%.14g` would lose digits, 2^53 - 1 becoming `9.007199254741e+15`).
fn command_args(args: MultiValue) -> Result<Vec<Bytes>, String> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call".into());
    }
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        match a {
            Value::String(s) => out.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Integer(i) => out.push(Bytes::from(crate::libs::num::fmt_g(i as f64, 17))),
            Value::Number(n) => out.push(Bytes::from(crate::libs::num::fmt_g(n, 17))),
            _ => return Err(ARGS_ERR.into()),
        }
    }
    Ok(out)
}

const ARGS_ERR: &str = "ERR Lua redis lib command arguments must be strings or integers";
