//! The node's `CLIENT` command: the subcommands shared with the sentinel
//! ([`vigil_resp::builtin::client`]) plus client-side caching (`TRACKING`, `CACHING`,
//! `GETREDIR`, `TRACKINGINFO`, see [`crate::tracking`]); and `MONITOR` ([`crate::monitor`]).

use vigil_resp::args::{lossy_lower, parse_int};
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply, builtin};

use crate::node::{Handler, Node, row};
use crate::session::{ConnState, Replies};
use crate::tracking::Mode;

/// The `CLIENT` row (replaces the shared one in the node's table) and `MONITOR`.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "monitor",
            1,
            [ADMIN, NOSCRIPT, STALE],
            0,
            0,
            0,
            "server",
            "Listens for all requests received by the server in real-time.",
            Node(monitor)
        ),
        row!(
            "client",
            -2,
            [ADMIN, STALE],
            0,
            0,
            0,
            "connection",
            "Inspects and manages client connections.",
            Node(client)
        ),
    ]
}

/// `CLIENT HELP`, as Redis 7.0 words it.
const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

fn monitor(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let sub = conn.subscriber();
    node.monitors.add(conn.info.id, sub);
    conn.reply(Reply::ok());
}

fn client(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    // `CLIENT CACHING` covers the next command other than CLIENT, as in Redis.
    conn.state.caching_just_set = true;
    let all = args.all();
    let sub = lossy_lower(all.get(1).map(|b| &b[..]).unwrap_or_default());
    let n = all.len();
    let r = match sub.as_str() {
        "tracking" if n >= 3 => tracking(node, conn, &all[2..]),
        "caching" if n == 3 => caching(conn, &all[2]),
        "getredir" if n == 2 => Ok(Reply::Int(
            conn.state
                .tracking
                .as_ref()
                .map_or(-1, |m| m.redirect as i64),
        )),
        "trackinginfo" if n == 2 => Ok(tracking_info(node, conn)),
        "pause" if n == 3 || n == 4 => pause(node, &all[2..]),
        "unpause" if n == 2 => {
            node.pause.unpause();
            Ok(Reply::ok())
        }
        "unblock" if n == 3 || n == 4 => unblock(conn, &all[2..]),
        "reply" if n == 3 => match lossy_lower(&all[2]).as_str() {
            "on" => {
                conn.state.replies = Replies::On;
                Ok(Reply::ok())
            }
            "off" => {
                conn.state.replies = Replies::Off;
                return;
            }
            "skip" => {
                if conn.state.replies == Replies::On {
                    conn.state.replies = Replies::SkipNext;
                }
                return;
            }
            _ => Err(CmdError::Syntax),
        },
        // Commands other than TOUCH leave keys' access times alone.
        "no-touch" if n == 3 => match lossy_lower(&all[2]).as_str() {
            "on" => {
                conn.state.no_touch = true;
                Ok(Reply::ok())
            }
            "off" => {
                conn.state.no_touch = false;
                Ok(Reply::ok())
            }
            _ => Err(CmdError::Syntax),
        },
        "help" if n == 2 => Ok(Reply::Array(
            HELP.iter().map(|l| Reply::simple(l)).collect(),
        )),
        "tracking" | "caching" | "getredir" | "trackinginfo" | "pause" | "unpause" | "unblock"
        | "reply" | "no-touch" => Err(CmdError::Arity(format!("client|{sub}"))),
        _ => return builtin::client(conn, args),
    };
    conn.reply(r);
}

/// `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p …] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`.
fn tracking(
    node: &Node,
    conn: &mut Conn<ConnState>,
    args: &[bytes::Bytes],
) -> Result<Reply, CmdError> {
    let mut mode = Mode::default();
    let mut bcast = false;
    let mut prefixes = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let opt = lossy_lower(&args[i]);
        let more = i + 1 < args.len();
        match opt.as_str() {
            "redirect" if more => {
                i += 1;
                if mode.redirect != 0 {
                    return Err(CmdError::msg(
                        "ERR A client can only redirect to a single other client",
                    ));
                }
                let id = parse_int(&args[i])?;
                if id <= 0 || conn.shared.clients.get(id as u64).is_none() {
                    return Err(CmdError::msg(
                        "ERR The client ID you want redirect to does not exist",
                    ));
                }
                mode.redirect = id as u64;
            }
            "bcast" => bcast = true,
            "optin" => mode.optin = true,
            "optout" => mode.optout = true,
            "noloop" => mode.noloop = true,
            "prefix" if more => {
                i += 1;
                prefixes.push(args[i].clone());
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    let id = conn.info.id;
    match lossy_lower(&args[0]).as_str() {
        "on" => {
            if !bcast && !prefixes.is_empty() {
                return Err(CmdError::msg(
                    "ERR PREFIX option requires BCAST mode to be enabled",
                ));
            }
            if bcast && (mode.optin || mode.optout) {
                return Err(CmdError::msg(
                    "ERR OPTIN and OPTOUT are not compatible with BCAST",
                ));
            }
            if mode.optin && mode.optout {
                return Err(CmdError::msg(
                    "ERR You can't specify both OPTIN mode and OPTOUT mode",
                ));
            }
            if bcast {
                mode.bcast = Some(prefixes);
            }
            let own = conn.subscriber();
            let shared = (mode.redirect != 0).then(|| conn.shared.clone());
            let store = node.store.lock();
            let tracking = store.tracking();
            tracking
                .enable(id, mode, own, shared)
                .map_err(|e| CmdError::msg(e.to_string()))?;
            conn.state.tracking = tracking.mode(id);
            if conn
                .state
                .tracking
                .as_ref()
                .is_some_and(|m| !m.optin && !m.optout)
            {
                conn.state.caching = false;
            }
            Ok(Reply::ok())
        }
        "off" => {
            node.store.lock().tracking().disable(id);
            conn.state.tracking = None;
            conn.state.caching = false;
            Ok(Reply::ok())
        }
        _ => Err(CmdError::Syntax),
    }
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`.
fn pause(node: &Node, args: &[bytes::Bytes]) -> Result<Reply, CmdError> {
    let all = match args.get(1).map(|m| lossy_lower(m)).as_deref() {
        None | Some("all") => true,
        Some("write") => false,
        Some(_) => return Err(CmdError::msg("ERR CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = parse_int(&args[0])
        .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    node.pause
        .pause(std::time::Duration::from_millis(ms as u64), all);
    Ok(Reply::ok())
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: 1 if the client was blocked and is now answered.
fn unblock(conn: &Conn<ConnState>, args: &[bytes::Bytes]) -> Result<Reply, CmdError> {
    let mode = match args.get(1).map(|m| lossy_lower(m)).as_deref() {
        None | Some("timeout") => 1,
        Some("error") => 2,
        Some(_) => {
            return Err(CmdError::msg(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    };
    let id = parse_int(&args[0])?;
    let target = u64::try_from(id)
        .ok()
        .and_then(|id| conn.shared.clients.get(id));
    Ok(Reply::Int(match target {
        Some(t) if t.blocked.load(std::sync::atomic::Ordering::Relaxed) => {
            t.unblock_mode
                .store(mode, std::sync::atomic::Ordering::Relaxed);
            t.unblock.notify_one();
            1
        }
        _ => 0,
    }))
}

/// `CLIENT CACHING YES|NO`: applies to the next command only.
fn caching(conn: &mut Conn<ConnState>, arg: &[u8]) -> Result<Reply, CmdError> {
    let Some(mode) = &conn.state.tracking else {
        return Err(CmdError::msg(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    match lossy_lower(arg).as_str() {
        "yes" if mode.optin => {}
        "yes" => {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
        "no" if mode.optout => {}
        "no" => {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
        _ => return Err(CmdError::Syntax),
    }
    conn.state.caching = true;
    Ok(Reply::ok())
}

/// `CLIENT TRACKINGINFO`: flags, redirect, prefixes.
fn tracking_info(node: &Node, conn: &Conn<ConnState>) -> Reply {
    let broken = node.store.lock().tracking().broken(conn.info.id);
    let mut flags = Vec::new();
    let (redirect, prefixes) = match &conn.state.tracking {
        None => {
            flags.push("off");
            (-1, Vec::new())
        }
        Some(m) => {
            flags.push("on");
            if m.bcast.is_some() {
                flags.push("bcast");
            }
            if m.optin {
                flags.push("optin");
                if conn.state.caching {
                    flags.push("caching-yes");
                }
            }
            if m.optout {
                flags.push("optout");
                if conn.state.caching {
                    flags.push("caching-no");
                }
            }
            if m.noloop {
                flags.push("noloop");
            }
            if broken {
                flags.push("broken_redirect");
            }
            let mut p = m.bcast.clone().unwrap_or_default();
            p.sort();
            (m.redirect as i64, p)
        }
    };
    Reply::Map(vec![
        (
            Reply::bulk_static("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk_static).collect()),
        ),
        (Reply::bulk_static("redirect"), Reply::Int(redirect)),
        (
            Reply::bulk_static("prefixes"),
            Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect()),
        ),
    ])
}
