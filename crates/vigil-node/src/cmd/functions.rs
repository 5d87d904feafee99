//! FUNCTION: LOAD, DELETE, FLUSH, RESTORE (data commands on the store, [`function_write`],
//! propagated as themselves so the log and the replicas hold the same libraries), LIST, DUMP,
//! STATS, KILL. FCALL sits with the scripts (`super::scripting`).

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply};

use super::scripting::{arity, help};
use crate::ctx::{Ctx, DataFn};
use crate::db::functions::{Libraries, compile, dump, undump};
use crate::execute::Clock;
use crate::node::{Handler, Node, row};
use crate::script::Kind;
use crate::session::ConnState;

/// The FUNCTION row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "function",
        -2,
        [STALE],
        0,
        0,
        0,
        "scripting",
        "Manages function libraries.",
        Node(function)
    )]
}

/// The data command that replays a logged or replicated `FUNCTION` change.
pub fn logged(name: &str) -> Option<DataFn> {
    (name == "function").then_some(function_write as DataFn)
}

/// The write gate's view of a library change: a write.
const FUNCTION_WRITE: CommandMeta = CommandMeta {
    name: "function",
    arity: -2,
    flags: vigil_resp::Flags(vigil_resp::Flags::WRITE.0 | vigil_resp::Flags::DENYOOM.0),
    first_key: 0,
    last_key: 0,
    step: 0,
    find_keys: None,
    group: "scripting",
    summary: "",
    index: vigil_resp::CommandMeta::UNLISTED,
};

fn function(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let all = args.all().to_vec();
    let sub = String::from_utf8_lossy(&all[1]).to_lowercase();
    let n = all.len();
    let r = match sub.as_str() {
        // LOAD and RESTORE may grow the dataset: past `maxmemory`, -OOM (Redis' `denyoom`
        // on those subcommands; the container's row cannot say it).
        "load" | "restore" if node.maxmemory.refuses(&FUNCTION_WRITE, false, || false) => {
            Reply::error(crate::maxmemory::OOM)
        }
        "load" | "delete" | "flush" | "restore" => {
            let mut store = node.store.lock();
            let mut clock = Clock::now();
            match node.gate_at(&FUNCTION_WRITE, clock.mono) {
                Err(r) => r,
                Ok(hide) => {
                    let f: DataFn = function_write;
                    node.run_data(
                        &mut store,
                        conn,
                        &FUNCTION_WRITE,
                        f,
                        args,
                        false,
                        &mut clock,
                        hide,
                    )
                    .0
                }
            }
        }
        "list" => function_list(node, &all[2..]),
        "dump" if n == 2 => Reply::Bulk(Bytes::from(dump(&node.store.lock().functions))),
        "stats" if n == 2 => function_stats(node, Some(&node.store.lock().functions)),
        "kill" if n == 2 => node.scripts.busy.kill(Kind::Function),
        "help" if n == 2 => help(&[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ]),
        "dump" | "stats" | "kill" | "help" => arity("function", &sub),
        _ => vigil_resp::command::bad_subcommand(
            "function",
            &all[1],
            &[
                "load", "delete", "flush", "restore", "list", "dump", "stats", "kill", "help",
            ],
        ),
    };
    crate::dispatch::push_reply(conn, r);
}

/// FUNCTION LOAD / DELETE / FLUSH / RESTORE on the store; propagated as received.
pub fn function_write(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let sub = String::from_utf8_lossy(&all[1]).to_lowercase();
    let n = all.len();
    let libs = &mut ctx.store.functions;
    let reply = match sub.as_str() {
        "load" => {
            if n < 3 {
                return Err(CmdError::msg(
                    "ERR wrong number of arguments for 'function|load' command",
                ));
            }
            // Every argument before the last is an option, as Redis reads them.
            let mut replace = false;
            for opt in &all[2..n - 1] {
                if !opt.eq_ignore_ascii_case(b"replace") {
                    return Err(CmdError::msg(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(opt)
                    )));
                }
                replace = true;
            }
            let code = &all[n - 1];
            // The name is checked before compiling, as Redis does.
            let (name, _) = vigil_lua::parse_metadata(code).map_err(CmdError::msg)?;
            if libs.libs.contains_key(&name) && !replace {
                return Err(CmdError::msg(format!(
                    "ERR Library '{name}' already exists"
                )));
            }
            let lib = compile(code).map_err(CmdError::msg)?;
            libs.add(lib, replace).map_err(CmdError::msg)?;
            Reply::Bulk(Bytes::from(name))
        }
        "delete" if n == 3 => {
            if !libs.delete(&String::from_utf8_lossy(&all[2])) {
                return Err(CmdError::msg("ERR Library not found"));
            }
            Reply::ok()
        }
        "flush" if n <= 3 => {
            if n == 3
                && !all[2].eq_ignore_ascii_case(b"async")
                && !all[2].eq_ignore_ascii_case(b"sync")
            {
                return Err(CmdError::msg(
                    "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
                ));
            }
            libs.clear();
            Reply::ok()
        }
        "restore" if n == 3 || n == 4 => {
            let policy = all.get(3).map(|p| p.to_ascii_lowercase());
            let policy = match policy.as_deref() {
                None | Some(b"append") => Policy::Append,
                Some(b"replace") => Policy::Replace,
                Some(b"flush") => Policy::Flush,
                Some(_) => {
                    return Err(CmdError::msg(
                        "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                    ));
                }
            };
            let codes = undump(&all[2]).map_err(CmdError::msg)?;
            let mut restored = Vec::with_capacity(codes.len());
            for c in codes {
                restored.push(compile(&c).map_err(CmdError::msg)?);
            }
            let mut next = match policy {
                Policy::Flush => Libraries::default(),
                _ => libs.clone(),
            };
            for lib in restored {
                if policy == Policy::Append && next.libs.contains_key(&lib.name) {
                    return Err(CmdError::msg(format!(
                        "ERR Library {} already exists",
                        lib.name
                    )));
                }
                next.add(lib, true).map_err(CmdError::msg)?;
            }
            *libs = next;
            libs.touch();
            Reply::ok()
        }
        // Within the subcommand's arity but more than it reads: Redis' subcommand error.
        "restore" | "flush" if n > 3 => {
            return Err(CmdError::msg(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(&all[1])
            )));
        }
        _ => {
            return Err(CmdError::msg(format!(
                "ERR wrong number of arguments for 'function|{sub}' command"
            )));
        }
    };
    ctx.changed(1);
    Ok(reply)
}

#[derive(PartialEq, Clone, Copy)]
enum Policy {
    Append,
    Replace,
    Flush,
}

/// FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern].
fn function_list(node: &Node, opts: &[Bytes]) -> Reply {
    let mut with_code = false;
    let mut pattern: Option<&Bytes> = None;
    let mut i = 0;
    while i < opts.len() {
        let o = &opts[i];
        if o.eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
        } else if o.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            let Some(p) = opts.get(i + 1) else {
                return Reply::error("ERR library name argument was not given");
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Reply::Error(
                format!("ERR Unknown argument {}", String::from_utf8_lossy(o)).into(),
            );
        }
        i += 1;
    }
    let store = node.store.lock();
    let mut out = Vec::new();
    for lib in store.functions.libs.values() {
        if let Some(p) = pattern
            && !vigil_resp::glob::matches(p, lib.name.as_bytes())
        {
            continue;
        }
        let functions = lib
            .functions
            .iter()
            .map(|f| {
                Reply::Map(vec![
                    (
                        Reply::Bulk(Bytes::from_static(b"name")),
                        Reply::Bulk(Bytes::from(f.name.clone())),
                    ),
                    (
                        Reply::Bulk(Bytes::from_static(b"description")),
                        f.description
                            .clone()
                            .map_or(Reply::Nil, |d| Reply::Bulk(Bytes::from(d))),
                    ),
                    (
                        Reply::Bulk(Bytes::from_static(b"flags")),
                        Reply::Set(f.flags.names().into_iter().map(Reply::simple).collect()),
                    ),
                ])
            })
            .collect();
        let mut m = vec![
            (
                Reply::Bulk(Bytes::from_static(b"library_name")),
                Reply::Bulk(Bytes::from(lib.name.clone())),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"engine")),
                Reply::Bulk(Bytes::from_static(b"LUA")),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"functions")),
                Reply::Array(functions),
            ),
        ];
        if with_code {
            m.push((
                Reply::Bulk(Bytes::from_static(b"library_code")),
                Reply::Bulk(lib.code.clone()),
            ));
        }
        out.push(Reply::Map(m));
    }
    Reply::Array(out)
}

/// FUNCTION STATS: the running function, and the engine's counts (`libs`: `None` while a
/// script holds the store, when only what is running is told).
pub(crate) fn function_stats(node: &Node, libs: Option<&Libraries>) -> Reply {
    let shown = node.scripts.busy.shown.lock().clone();
    let running = match node.scripts.busy.running_function() {
        Some((name, ms)) => Reply::Map(vec![
            (
                Reply::Bulk(Bytes::from_static(b"name")),
                Reply::Bulk(Bytes::from(name)),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"command")),
                Reply::bulks(shown.as_ref().map_or(vec![], |s| s.0.clone())),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"duration_ms")),
                Reply::Int(ms as i64),
            ),
        ]),
        None => Reply::Nil,
    };
    // Without the store (a function holds it), the counts from when it started.
    let (libraries, functions) = match (libs, &shown) {
        (Some(l), _) => (l.libs.len(), l.function_count()),
        (None, Some(s)) => (s.1, s.2),
        (None, None) => (0, 0),
    };
    Reply::Map(vec![
        (Reply::Bulk(Bytes::from_static(b"running_script")), running),
        (
            Reply::Bulk(Bytes::from_static(b"engines")),
            Reply::Map(vec![(
                Reply::Bulk(Bytes::from_static(b"LUA")),
                Reply::Map(vec![
                    (
                        Reply::Bulk(Bytes::from_static(b"libraries_count")),
                        Reply::Int(libraries as i64),
                    ),
                    (
                        Reply::Bulk(Bytes::from_static(b"functions_count")),
                        Reply::Int(functions as i64),
                    ),
                ]),
            )]),
        ),
    ])
}
