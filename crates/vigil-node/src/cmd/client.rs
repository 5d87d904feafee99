//! The node's `CLIENT` command: the subcommands shared with the sentinel
//! ([`vigil_resp::builtin::client`]) plus client-side caching (`TRACKING`, `CACHING`,
//! `GETREDIR`, `TRACKINGINFO`, see [`crate::tracking`]).

use vigil_resp::args::{lossy_lower, parse_int};
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply, builtin};

use crate::node::{Handler, Node, row};
use crate::session::ConnState;
use crate::tracking::Mode;

/// The `CLIENT` row (replaces the shared one in the node's table).
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "client",
        -2,
        [ADMIN, STALE],
        0,
        0,
        0,
        "connection",
        "Inspects and manages client connections.",
        Node(client)
    )]
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
        "tracking" | "caching" | "getredir" | "trackinginfo" => {
            Err(CmdError::Arity(format!("client|{sub}")))
        }
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
