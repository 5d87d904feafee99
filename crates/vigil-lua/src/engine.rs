//! One Lua state as Redis keeps one: the sandbox ([`Engine::new`]), the EVAL script cache,
//! the libraries of FUNCTION LOAD, and running a script or a function against a [`Host`] that
//! executes the `redis.call`s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState,
};
use vigil_resp::Reply;

use crate::convert::to_reply;
use crate::ffi::{redis_call, redis_pcall, trampoline};
use crate::rand48::Rand48;
use crate::run::{Host, HostGuard, RunState};
pub use crate::shebang::ScriptFlags;
use crate::shebang::{NAME_ERR, parse_metadata, parse_shebang, valid_name};

/// Instructions between two checks of the running script (busy time, kill request).
const TICK_INSTRUCTIONS: u32 = 100_000;

/// How long a library's top level may run at `FUNCTION LOAD` (Redis' `LOAD_TIMEOUT_MS`).
const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Called every [`TICK_INSTRUCTIONS`] while a script runs; `true` kills the script.
pub type Tick = Arc<dyn Fn() -> bool + Send + Sync>;

/// A function a library registered.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its flags.
    pub flags: ScriptFlags,
}

/// A Lua state with Redis' sandbox.
pub struct Engine {
    lua: Lua,
    host: Table,
    run: Function,
    libenv: Table,
    set_loading: Function,
    state: Arc<RunState>,
    scripts: HashMap<String, (Function, Option<ScriptFlags>)>,
    /// Bytes of the cached scripts' bodies and SHA1s (`used_memory_scripts_eval`).
    script_bytes: usize,
    functions: HashMap<String, Function>,
}

/// The SHA1 of a script body, in lowercase hex, as `SCRIPT LOAD` answers.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn version_num() -> i64 {
    let mut n = 0i64;
    for part in vigil_base::REDIS_VERSION.split('.') {
        n = (n << 8) | part.parse::<i64>().unwrap_or(0);
    }
    n
}

impl Engine {
    /// A fresh sandbox: Lua's base, table, string and math libraries, Redis' extra libraries,
    /// `loadfile`/`dofile` and the other globals Redis 7.0 removes gone, the `redis` API,
    /// deterministic `math.random`, protected globals. `rand` is the process' generator.
    pub fn new(rand: Arc<Rand48>) -> mlua::Result<Engine> {
        // SAFETY: the debug library is loaded only to build the error handler; the prelude
        // removes it from the globals before any user code runs.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::default(),
            )
        };
        crate::libs::install(&lua)?;
        let math: Table = lua.globals().get("math")?;
        let r = rand.clone();
        math.set(
            "random",
            lua.create_function(move |_, args: MultiValue| {
                let x = r.unit();
                let int = |v: &Value| -> mlua::Result<f64> {
                    match v {
                        Value::Integer(i) => Ok(*i as i32 as f64),
                        Value::Number(n) => Ok(*n as i32 as f64),
                        _ => Err(mlua::Error::runtime(
                            "bad argument to 'random' (number expected)",
                        )),
                    }
                };
                match args.len() {
                    0 => Ok(x),
                    1 => {
                        let u = int(&args[0])?;
                        if u < 1.0 {
                            return Err(mlua::Error::runtime(
                                "bad argument #1 to 'random' (interval is empty)",
                            ));
                        }
                        Ok((x * u).floor() + 1.0)
                    }
                    2 => {
                        let (l, u) = (int(&args[0])?, int(&args[1])?);
                        if l > u {
                            return Err(mlua::Error::runtime(
                                "bad argument #2 to 'random' (interval is empty)",
                            ));
                        }
                        Ok((x * (u - l + 1.0)).floor() + l)
                    }
                    _ => Err(mlua::Error::runtime("wrong number of arguments")),
                }
            })?,
        )?;
        let r = rand.clone();
        math.set(
            "randomseed",
            lua.create_function(move |_, seed: f64| {
                r.seed(seed as i32);
                Ok(())
            })?,
        )?;
        let state = Arc::new(RunState::default());
        let host = lua.create_table()?;
        host.set(
            "sha1hex",
            lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?,
        )?;
        host.set(
            "log",
            lua.create_function(|_, (level, msg): (i64, String)| {
                let _ = (level, msg);
                Ok(())
            })?,
        )?;
        let st = state.clone();
        host.set(
            "setresp",
            lua.create_function(move |_, v: i64| {
                st.resp3.store(v == 3, Ordering::Relaxed);
                Ok(())
            })?,
        )?;
        // SAFETY: both functions only use the Lua C API on their own stack (see `call_c`).
        unsafe {
            host.set("c_call", lua.create_c_function(redis_call)?)?;
            host.set("c_pcall", lua.create_c_function(redis_pcall)?)?;
        }
        crate::run::install(&lua, &host, &state)?;
        host.set("version", vigil_base::REDIS_VERSION)?;
        host.set("version_num", version_num())?;
        let dbg: Value = lua.globals().get("debug")?;
        let (run, libenv, set_loading, redis): (Function, Table, Function, Table) = lua
            .load(include_str!("prelude.lua"))
            .set_name("=vigil")
            .call((host.clone(), dbg))?;
        // The API functions written in Lua run behind C trampolines, as Redis' own C functions
        // do: `return redis.log(...)` is then no tail call, and an error keeps the user's line.
        let mut lua_fns = Vec::new();
        for pair in redis.pairs::<String, Value>() {
            let (k, v) = pair?;
            if let Value::Function(f) = v
                && f.info().what == "Lua"
            {
                lua_fns.push((k, f));
            }
        }
        for (k, f) in lua_fns {
            // SAFETY: `trampoline` only uses the C API on its own stack.
            let c: Function =
                unsafe { lua.exec_raw(f, |l| mlua::ffi::lua_pushcclosure(l, trampoline, 1))? };
            redis.raw_set(k, c)?;
        }
        Ok(Engine {
            lua,
            host,
            run,
            libenv,
            set_loading,
            state,
            scripts: HashMap::new(),
            script_bytes: 0,
            functions: HashMap::new(),
        })
    }

    /// Checks the script's progress every few instructions (busy time, kill requests).
    pub fn set_tick(&self, tick: Tick) -> mlua::Result<()> {
        let state = self.state.clone();
        self.lua.set_hook(
            HookTriggers::new().every_nth_instruction(TICK_INSTRUCTIONS),
            move |_, _| {
                if tick() {
                    state.killed.store(true, Ordering::Relaxed);
                    return Err(mlua::Error::runtime(
                        "Script killed by user with SCRIPT KILL...",
                    ));
                }
                Ok(VmState::Continue)
            },
        )
    }

    /// Memory the Lua state uses, in bytes (`used_memory_lua`).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// Bytes of the cached scripts' bodies and SHA1s.
    pub fn script_bytes(&self) -> usize {
        self.script_bytes
    }

    /// Whether a script with this SHA1 is cached.
    pub fn has_script(&self, sha: &str) -> bool {
        self.scripts.contains_key(sha)
    }

    /// Cached scripts.
    pub fn script_count(&self) -> usize {
        self.scripts.len()
    }

    /// The flags a cached script's shebang declared (`None`: no shebang, or no such script).
    pub fn script_flags(&self, sha: &str) -> Option<ScriptFlags> {
        self.scripts.get(sha).and_then(|(_, f)| *f)
    }

    /// Compiles and caches an EVAL script; returns its SHA1, or the error (shebang, compile)
    /// as Redis words it.
    pub fn load_script(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, start) = parse_shebang(body)?;
        let f = self
            .lua
            .load(&body[start..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                format!(
                    "ERR Error compiling script (new function): {}",
                    lua_message(&e)
                )
            })?;
        self.script_bytes += body.len() + sha.len();
        self.scripts.insert(sha.clone(), (f, flags));
        Ok(sha)
    }

    /// Runs a cached script with `KEYS` and `ARGV` set; `None` if no such script.
    pub fn run_script(
        &mut self,
        sha: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> Option<Reply> {
        let f = self.scripts.get(sha)?.0.clone();
        let reply = (|| -> mlua::Result<Reply> {
            let g = self.lua.globals();
            g.raw_set("KEYS", self.strings(keys)?)?;
            g.raw_set("ARGV", self.strings(argv)?)?;
            self.call(&f, Value::Nil, Value::Nil, sha, host)
        })();
        Some(reply.unwrap_or_else(|e| Reply::Error(format!("ERR {e}").into())))
    }

    /// Runs a function a library registered, with its keys and arguments.
    pub fn run_function(
        &mut self,
        name: &str,
        keys: &[Bytes],
        argv: &[Bytes],
        host: &mut dyn Host,
    ) -> Option<Reply> {
        let f = self.functions.get(name)?.clone();
        let reply = (|| -> mlua::Result<Reply> {
            let k = Value::Table(self.strings(keys)?);
            let a = Value::Table(self.strings(argv)?);
            self.call(&f, k, a, name, host)
        })();
        Some(reply.unwrap_or_else(|e| Reply::Error(format!("ERR {e}").into())))
    }

    /// A Lua array of strings (KEYS, ARGV), built in one protected call rather than one per
    /// string.
    fn strings(&self, items: &[Bytes]) -> mlua::Result<Table> {
        let n = std::ffi::c_int::try_from(items.len())
            .map_err(|_| mlua::Error::runtime("too many arguments"))?;
        // SAFETY: uses two stack slots (the table and one string) of the three `exec_raw`
        // checks for, and leaves only the table on the stack.
        unsafe {
            self.lua.exec_raw((), |l| {
                use mlua::ffi;
                ffi::lua_createtable(l, n, 0);
                for (i, b) in items.iter().enumerate() {
                    ffi::lua_pushlstring(l, b.as_ptr().cast(), b.len());
                    ffi::lua_rawseti(l, -2, i as ffi::lua_Integer + 1);
                }
            })
        }
    }

    fn call(
        &self,
        f: &Function,
        a: Value,
        b: Value,
        name: &str,
        host: &mut dyn Host,
    ) -> mlua::Result<Reply> {
        self.state.resp3.store(false, Ordering::Relaxed);
        self.state.killed.store(false, Ordering::Relaxed);
        // SAFETY: the guard is a local, dropped below, on `?` and when unwinding.
        let run = unsafe { HostGuard::lend(&self.state, host) };
        let (ok, v): (bool, Value) = self.run.call((f.clone(), a, b))?;
        drop(run);
        let resp3 = self.state.resp3.load(Ordering::Relaxed);
        if ok {
            return Ok(to_reply(&v, resp3));
        }
        Ok(Reply::Error(self.error_text(&v, name).into()))
    }

    /// The reply for a failed run: the error's message, then where it was raised.
    fn error_text(&self, v: &Value, name: &str) -> String {
        let Value::Table(t) = v else {
            return format!("ERR Error running script {name}, execution failure");
        };
        let mut msg = match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.to_string_lossy(),
            _ => "ERR unknown error".to_owned(),
        };
        if self.state.killed.load(Ordering::Relaxed) {
            msg = "ERR Script killed by user with SCRIPT KILL...".to_owned();
        }
        if let (Ok(Value::String(src)), Ok(line)) =
            (t.raw_get::<Value>("source"), t.raw_get::<Value>("line"))
            && let Value::Integer(_) | Value::Number(_) = line
        {
            let line = match line {
                Value::Integer(i) => i,
                Value::Number(n) => n as i64,
                _ => 0,
            };
            msg = format!("{msg} script: {name}, on {}:{line}.", src.to_string_lossy());
        }
        msg.replace(['\r', '\n'], " ")
    }
}

/// A syntax or runtime error's text as Lua gave it.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

impl Engine {
    /// [`Engine::load_library`] within Redis' load timeout: a library whose top level runs
    /// longer is stopped ("FUNCTION LOAD timeout"), so a loop there cannot hold the node. For
    /// an engine without a progress check (`set_tick`): the hook is removed afterwards.
    pub fn load_library_within(
        &mut self,
        code: &[u8],
    ) -> Result<(String, Vec<FunctionInfo>), String> {
        let started = std::time::Instant::now();
        let timed_out = Arc::new(AtomicBool::new(false));
        let flag = timed_out.clone();
        self.lua
            .set_hook(
                HookTriggers::new().every_nth_instruction(TICK_INSTRUCTIONS),
                move |_, _| {
                    if started.elapsed() > LOAD_TIMEOUT {
                        flag.store(true, Ordering::Relaxed);
                        return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
                    }
                    Ok(VmState::Continue)
                },
            )
            .map_err(|e| format!("ERR {e}"))?;
        let r = self.load_library(code);
        self.lua.remove_hook();
        if timed_out.load(Ordering::Relaxed) {
            return Err("ERR Error registering functions: ERR FUNCTION LOAD timeout".into());
        }
        r
    }

    /// Loads a library (`FUNCTION LOAD`): checks its metadata, compiles it, runs it with the
    /// loading API, and keeps the functions it registered. Returns its name and functions, or
    /// the error as Redis words it. Functions already kept by another library are not checked
    /// here (the caller knows the libraries).
    pub fn load_library(&mut self, code: &[u8]) -> Result<(String, Vec<FunctionInfo>), String> {
        let (name, start) = parse_metadata(code)?;
        let chunk = self
            .lua
            .load(&code[start..])
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(self.libenv.clone())
            .into_function()
            .map_err(|e| format!("ERR Error compiling function: {}", lua_message(&e)))?;
        let registered: RefCell<Vec<(FunctionInfo, Function)>> = RefCell::new(Vec::new());
        let outcome = self.lua.scope(|scope| {
            let register = scope.create_function(|_, args: MultiValue| {
                Ok(register(args, &mut registered.borrow_mut()).err())
            })?;
            self.host.raw_set("register", register)?;
            self.set_loading.call::<()>(true)?;
            let r = self
                .run
                .call::<(bool, Value)>((chunk, Value::Nil, Value::Nil));
            self.set_loading.call::<()>(false)?;
            self.host.raw_set("register", Value::Nil)?;
            r
        });
        match outcome {
            Ok((true, _)) => {}
            Ok((false, Value::Table(t))) => {
                let msg = t
                    .raw_get::<String>("err")
                    .unwrap_or_else(|_| "ERR unknown error".into());
                return Err(format!("ERR Error registering functions: {msg}"));
            }
            Ok((false, _)) => {
                return Err("ERR Error registering functions: ERR unknown error".into());
            }
            Err(e) => {
                return Err(format!(
                    "ERR Error registering functions: {}",
                    lua_message(&e)
                ));
            }
        }
        let registered = registered.into_inner();
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        let mut infos = Vec::with_capacity(registered.len());
        for (info, f) in registered {
            self.functions.insert(info.name.clone(), f);
            infos.push(info);
        }
        Ok((name, infos))
    }

    /// Forgets the functions of a library (before loading its replacement).
    pub fn drop_functions(&mut self, names: &[String]) {
        for n in names {
            self.functions.remove(n);
        }
    }
}

/// `redis.register_function`, positional (`name, callback`) or named (`{function_name = ...,
/// callback = ..., flags = {...}, description = ...}`).
fn register(args: MultiValue, out: &mut Vec<(FunctionInfo, Function)>) -> Result<(), String> {
    let err = |m: &str| Err(format!("ERR {m}"));
    let mut name: Option<String> = None;
    let mut callback: Option<Function> = None;
    let mut flags = ScriptFlags::default();
    let mut description = None;
    match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return err(
                    "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
                );
            };
            for pair in t.pairs::<Value, Value>() {
                let Ok((k, v)) = pair else { continue };
                let Value::String(k) = k else {
                    return err(
                        "named argument key given to redis.register_function is not a string",
                    );
                };
                match &k.as_bytes()[..] {
                    b"function_name" => match v {
                        Value::String(s) => name = Some(s.to_string_lossy()),
                        _ => {
                            return err(
                                "function_name argument given to redis.register_function must be a string",
                            );
                        }
                    },
                    b"description" => match v {
                        Value::String(s) => description = Some(s.to_string_lossy()),
                        _ => {
                            return err(
                                "description argument given to redis.register_function must be a string",
                            );
                        }
                    },
                    b"callback" => match v {
                        Value::Function(f) => callback = Some(f),
                        _ => {
                            return err(
                                "callback argument given to redis.register_function must be a function",
                            );
                        }
                    },
                    b"flags" => {
                        let Value::Table(ft) = v else {
                            return err(
                                "flags argument to redis.register_function must be a table representing function flags",
                            );
                        };
                        for i in 1.. {
                            match ft.raw_get::<Value>(i) {
                                Ok(Value::Nil) | Err(_) => break,
                                Ok(Value::String(s)) if flags.set(&s.as_bytes()) => {}
                                Ok(_) => return err("unknown flag given"),
                            }
                        }
                    }
                    _ => return err("unknown argument given to redis.register_function"),
                }
            }
            let Some(_) = name else {
                return err("redis.register_function must get a function name argument");
            };
            if callback.is_none() {
                return err("redis.register_function must get a callback argument");
            }
        }
        2 => {
            let mut it = args.into_iter();
            match it.next() {
                Some(Value::String(s)) => name = Some(s.to_string_lossy()),
                _ => return err("first argument to redis.register_function must be a string"),
            }
            match it.next() {
                Some(Value::Function(f)) => callback = Some(f),
                _ => return err("second argument to redis.register_function must be a function"),
            }
        }
        _ => return err("wrong number of arguments to redis.register_function"),
    }
    let (Some(name), Some(callback)) = (name, callback) else {
        return err("wrong number of arguments to redis.register_function");
    };
    if !valid_name(name.as_bytes()) {
        return Err(NAME_ERR.into());
    }
    if out.iter().any(|(i, _)| i.name == name) {
        return err("Function already exists in the library");
    }
    out.push((
        FunctionInfo {
            name,
            description,
            flags,
        },
        callback,
    ));
    Ok(())
}
