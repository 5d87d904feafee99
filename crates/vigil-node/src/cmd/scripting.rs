//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL, FCALL_RO.
//!
//! Scripts run through [`crate::script`].

use bytes::Bytes;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::node::{Handler, Node, row};
use crate::script::{Call, Kind};
use crate::session::ConnState;

/// The scripting family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "eval",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Executes a Lua script.",
            Node(eval),
            keys = vigil_resp::keys::eval
        ),
        row!(
            "evalsha",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Executes a cached Lua script by its SHA1.",
            Node(eval),
            keys = vigil_resp::keys::eval
        ),
        row!(
            "eval_ro",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Executes a read-only Lua script.",
            Node(eval),
            keys = vigil_resp::keys::eval_ro
        ),
        row!(
            "evalsha_ro",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Executes a cached read-only Lua script by its SHA1.",
            Node(eval),
            keys = vigil_resp::keys::eval_ro
        ),
        row!(
            "fcall",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Calls a function.",
            Node(fcall),
            keys = vigil_resp::keys::eval
        ),
        row!(
            "fcall_ro",
            -3,
            [STALE, MOVABLEKEYS],
            0,
            0,
            0,
            "scripting",
            "Calls a read-only function.",
            Node(fcall),
            keys = vigil_resp::keys::eval_ro
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
    ]
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
    node.monitors
        .show(conn.db, &conn.info.addr.to_string(), &all);
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
    node.monitors
        .show(conn.db, &conn.info.addr.to_string(), &all);
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

pub(super) fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(l)).collect())
}

pub(super) fn arity(cmd: &str, sub: &str) -> Reply {
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
