//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL, FCALL_RO, FUNCTION.
//!
//! Scripts run through [`crate::script`]; the libraries' changes (FUNCTION LOAD, DELETE,
//! FLUSH, RESTORE) are data commands on the store ([`function_write`]), propagated as
//! themselves so the log and the replicas hold the same libraries.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply};

use crate::ctx::{Ctx, DataFn};
use crate::db::functions::{Libraries, Library};
use crate::node::{Handler, Node, row};
use crate::script::{Call, Kind};
use crate::session::ConnState;
use vigil_base::clock::unix_ms;

/// The scripting family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "eval",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Executes a Lua script.",
            Node(eval)
        ),
        row!(
            "evalsha",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Executes a cached Lua script by its SHA1.",
            Node(eval)
        ),
        row!(
            "eval_ro",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Executes a read-only Lua script.",
            Node(eval)
        ),
        row!(
            "evalsha_ro",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Executes a cached read-only Lua script by its SHA1.",
            Node(eval)
        ),
        row!(
            "fcall",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Calls a function.",
            Node(fcall)
        ),
        row!(
            "fcall_ro",
            -3,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Calls a read-only function.",
            Node(fcall)
        ),
        row!(
            "script",
            -2,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Manages the script cache.",
            Node(script)
        ),
        row!(
            "function",
            -2,
            [STALE],
            0,
            0,
            0,
            "scripting",
            "Manages function libraries.",
            Node(function)
        ),
    ]
}

/// The data command that replays a logged or replicated `FUNCTION` change.
pub fn logged(name: &str) -> Option<DataFn> {
    (name == "function").then_some(function_write as DataFn)
}

/// `numkeys key... arg...` into keys and arguments, worded as Redis words the errors.
fn split_keys<'a>(
    all: &'a [Bytes],
    not_int: &'static str,
) -> Result<(&'a [Bytes], &'a [Bytes]), Reply> {
    let n = vigil_resp::args::parse_int(&all[2]).map_err(|_| Reply::error(not_int))?;
    let rest = &all[3..];
    if n < 0 {
        return Err(Reply::error("ERR Number of keys can't be negative"));
    }
    if n as usize > rest.len() {
        return Err(Reply::error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(rest.split_at(n as usize))
}

fn eval(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let all = args.into_vec();
    let name = all[0].to_ascii_lowercase();
    let by_sha = name.starts_with(b"evalsha");
    let read_only = name.ends_with(b"_ro");
    let reply = match split_keys(&all, "ERR value is not an integer or out of range") {
        Err(r) => r,
        Ok((keys, argv)) => {
            let sha = String::from_utf8_lossy(&all[1]).into_owned();
            node.run_script(
                conn,
                Call {
                    kind: Kind::Script,
                    name: &sha,
                    keys,
                    argv,
                    read_only,
                    body: (!by_sha).then_some(&all[1][..]),
                },
            )
        }
    };
    crate::dispatch::push_reply(conn, reply);
}

fn fcall(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let all = args.into_vec();
    let read_only = all[0].eq_ignore_ascii_case(b"fcall_ro");
    let reply = match split_keys(&all, "ERR Bad number of keys provided") {
        Err(r) => r,
        Ok((keys, argv)) => {
            let name = String::from_utf8_lossy(&all[1]).into_owned();
            node.run_script(
                conn,
                Call {
                    kind: Kind::Function,
                    name: &name,
                    keys,
                    argv,
                    read_only,
                    body: None,
                },
            )
        }
    };
    crate::dispatch::push_reply(conn, reply);
}

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}

fn arity(cmd: &str, sub: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{cmd}|{sub}' command").into())
}

fn script(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let all = args.into_vec();
    let sub = String::from_utf8_lossy(&all[1]).to_lowercase();
    let n = all.len();
    let r = match sub.as_str() {
        "load" if n == 3 => {
            let _store = node.store.lock();
            let mut slot = node.scripts.eval.lock();
            let engine = match slot.take() {
                Some(e) => Ok(e),
                None => node.scripts.engine(),
            };
            match engine {
                Err(e) => Reply::Error(e.into()),
                Ok(mut e) => {
                    let r = match e.load_script(&all[2]) {
                        Ok(sha) => Reply::Bulk(Bytes::from(sha)),
                        Err(err) => Reply::Error(err.into()),
                    };
                    *slot = Some(e);
                    r
                }
            }
        }
        "exists" if n >= 3 => {
            let slot = node.scripts.eval.lock();
            Reply::Array(
                all[2..]
                    .iter()
                    .map(|sha| {
                        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                        Reply::Int(slot.as_ref().is_some_and(|e| e.has_script(&sha)) as i64)
                    })
                    .collect(),
            )
        }
        "flush" if n <= 3 => {
            let mode_ok = n == 2
                || all[2].eq_ignore_ascii_case(b"async")
                || all[2].eq_ignore_ascii_case(b"sync");
            if mode_ok {
                let _store = node.store.lock();
                *node.scripts.eval.lock() = None;
                Reply::ok()
            } else {
                Reply::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
            }
        }
        "kill" if n == 2 => node.scripts.busy.kill(Kind::Script),
        // The Lua debugger is not supported: only turning it off is accepted.
        "debug" if n == 3 && all[2].eq_ignore_ascii_case(b"no") => Reply::ok(),
        "debug" if n == 3 => Reply::error("ERR SCRIPT DEBUG is not supported by this server"),
        "help" if n == 2 => help(&[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Prints this help.",
        ]),
        "load" | "exists" | "flush" | "kill" | "help" | "debug" => arity("script", &sub),
        _ => vigil_resp::command::bad_subcommand(
            "script",
            &all[1],
            &["load", "exists", "flush", "kill", "help", "debug"],
        ),
    };
    conn.reply(r);
}

/// The write gate's view of a library change: a write.
const FUNCTION_WRITE: CommandMeta = CommandMeta {
    name: "function",
    arity: -2,
    flags: vigil_resp::Flags(vigil_resp::Flags::WRITE.0 | vigil_resp::Flags::DENYOOM.0),
    first_key: 0,
    last_key: 0,
    step: 0,
    group: "scripting",
    summary: "",
};

fn function(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let all = args.all().to_vec();
    let sub = String::from_utf8_lossy(&all[1]).to_lowercase();
    let n = all.len();
    let r = match sub.as_str() {
        "load" | "delete" | "flush" | "restore" => {
            let mut store = node.store.lock();
            match node.gate(&FUNCTION_WRITE) {
                Err(r) => r,
                Ok(hide) => {
                    let f: DataFn = function_write;
                    node.run_data(&mut store, conn, f, args, false, unix_ms(), hide)
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

/// Compiles a library in a throwaway engine: checks it and learns its functions.
fn compile(code: &Bytes) -> Result<Library, String> {
    let mut engine = vigil_lua::Engine::new(Default::default()).map_err(|e| format!("ERR {e}"))?;
    let (name, functions) = engine.load_library(code)?;
    Ok(Library {
        name,
        code: code.clone(),
        functions,
    })
}

/// Compiles a library for a snapshot being loaded.
pub fn compile_library(code: &[u8]) -> Result<Library, String> {
    compile(&Bytes::copy_from_slice(code))
}

/// FUNCTION LOAD / DELETE / FLUSH / RESTORE on the store; propagated as received.
pub fn function_write(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let sub = String::from_utf8_lossy(&all[1]).to_lowercase();
    let n = all.len();
    let libs = &mut ctx.store.functions;
    let reply = match sub.as_str() {
        "load" => {
            let (replace, code) = match n {
                3 => (false, &all[2]),
                4 if all[2].eq_ignore_ascii_case(b"replace") => (true, &all[3]),
                4 => {
                    return Err(CmdError::msg(format!(
                        "ERR Unknown option given: {}",
                        String::from_utf8_lossy(&all[2])
                    )));
                }
                _ => {
                    return Err(CmdError::msg(
                        "ERR wrong number of arguments for 'function|load' command",
                    ));
                }
            };
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
    let running = match node.scripts.busy.running_function() {
        Some((name, ms)) => Reply::Map(vec![
            (
                Reply::Bulk(Bytes::from_static(b"name")),
                Reply::Bulk(Bytes::from(name)),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"command")),
                Reply::Array(vec![]),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"duration_ms")),
                Reply::Int(ms as i64),
            ),
        ]),
        None => Reply::Nil,
    };
    let (libraries, functions) = libs.map_or((0, 0), |l| (l.libs.len(), l.function_count()));
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

/// FUNCTION DUMP's payload (Vigil's own format): `VGLF`, version 1, count (u32), each
/// library's code (u32 length + bytes), then a CRC-32 of all before it. Little-endian.
pub fn dump(libs: &Libraries) -> Vec<u8> {
    let mut out = b"VGLF".to_vec();
    out.push(1);
    out.extend_from_slice(&(libs.libs.len() as u32).to_le_bytes());
    for lib in libs.libs.values() {
        out.extend_from_slice(&(lib.code.len() as u32).to_le_bytes());
        out.extend_from_slice(&lib.code);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";

/// Parses a FUNCTION DUMP payload into the libraries' codes; every length is checked against
/// what the payload holds.
pub fn undump(b: &[u8]) -> Result<Vec<Bytes>, String> {
    if b.len() < 13 || &b[..4] != b"VGLF" || b[4] != 1 {
        return Err(BAD_PAYLOAD.into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(BAD_PAYLOAD.into());
    }
    let mut pos = 5;
    let u32_at = |pos: &mut usize| -> Result<usize, String> {
        let v = body
            .get(*pos..*pos + 4)
            .ok_or_else(|| BAD_PAYLOAD.to_string())?;
        *pos += 4;
        Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
    };
    let count = u32_at(&mut pos)?;
    let mut out = Vec::new();
    for _ in 0..count {
        let len = u32_at(&mut pos)?;
        let code = body
            .get(pos..pos.saturating_add(len))
            .ok_or_else(|| BAD_PAYLOAD.to_string())?;
        pos += len;
        out.push(Bytes::copy_from_slice(code));
    }
    if pos != body.len() {
        return Err(BAD_PAYLOAD.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_round_trips_and_garbage_is_refused() {
        let mut libs = Libraries::default();
        let code = Bytes::from_static(
            b"#!lua name=l\nredis.register_function('f', function() return 1 end)",
        );
        libs.add(compile_library(&code).unwrap(), false).unwrap();
        let d = dump(&libs);
        assert_eq!(undump(&d).unwrap(), vec![code]);
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x55;
            assert!(undump(&bad).is_err(), "#{i}");
            assert!(undump(&d[..i]).is_err(), "#{i}");
        }
    }
}
