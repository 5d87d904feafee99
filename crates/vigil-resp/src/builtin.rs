//! Connection-level commands every Redis client sends, answered the same way by the node and
//! the sentinel: HELLO, AUTH, CLIENT, PING, ECHO, SELECT, QUIT, RESET and the pub/sub family.
//!
//! Each takes the connection and the request and writes its reply with [`Conn::reply`]. The
//! servers list these functions in their own command tables.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::args::{Args, lossy_lower, parse_int};
use crate::command::{CommandMeta, Flags, unknown_command, wrong_arity};
use crate::conn::{Conn, Protocol};
use crate::error::CmdError;
use crate::reply::Reply;

/// Checks a request against its table entry before it runs: unknown command, arity,
/// authentication, RESP2 subscribed mode. Returns the error reply to send instead.
pub fn precheck<S>(
    conn: &mut Conn<S>,
    meta: Option<&CommandMeta>,
    args: &[Bytes],
) -> Result<(), Reply> {
    let Some(meta) = meta else {
        return Err(unknown_command(args));
    };
    if !meta.arity_ok(args.len()) {
        return Err(wrong_arity(meta.name));
    }
    if !conn.authenticated && !meta.flags.has(Flags::NO_AUTH) {
        return Err(CmdError::NoAuth.into());
    }
    let context = if conn.info.in_multi.load(Ordering::Relaxed) {
        crate::acl::log::Context::Multi
    } else {
        crate::acl::log::Context::Toplevel
    };
    crate::acl::session::acl_check(conn, meta, args, context)
        .map_err(|(d, name)| d.reply(&name))?;
    if conn.proto == Protocol::Resp2
        && conn.subscription_count() > 0
        && !meta.flags.has(Flags::SUBSCRIBED)
    {
        return Err(Reply::error(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            meta.name
        )));
    }
    Ok(())
}

/// `AUTH [username] password`.
pub fn auth<S>(conn: &mut Conn<S>, mut args: Args) {
    let r = if args.remaining() > 2 {
        Err(CmdError::Syntax)
    } else if args.remaining() == 1
        && conn
            .shared
            .acl
            .read()
            .users
            .get("default")
            .is_some_and(|d| d.nopass)
    {
        Err(CmdError::msg(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ))
    } else {
        let first = args.next().unwrap_or_default();
        let (user, pass) = match args.next() {
            Some(p) => (first, p),
            None => (Bytes::from_static(b"default"), first),
        };
        let command = args.name().to_vec();
        crate::acl::session::check_password(conn, &user, &pass, &command).map(|_| Reply::ok())
    };
    conn.reply(r);
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub fn hello<S>(conn: &mut Conn<S>, mut args: Args) {
    let r = hello_inner(conn, &mut args);
    conn.reply(r);
}

fn hello_inner<S>(conn: &mut Conn<S>, args: &mut Args) -> Result<Reply, CmdError> {
    let mut proto = None;
    if let Some(v) = args.next() {
        let v = parse_int(&v)
            .map_err(|_| CmdError::msg("ERR Protocol version is not an integer or out of range"))?;
        proto = match v {
            2 => Some(Protocol::Resp2),
            3 => Some(Protocol::Resp3),
            _ => return Err(CmdError::msg("NOPROTO unsupported protocol version")),
        };
    }
    let mut setname = None;
    let mut creds = None;
    while let Some(opt) = args.next() {
        if opt.eq_ignore_ascii_case(b"auth") && args.remaining() >= 2 {
            creds = Some((args.bytes()?, args.bytes()?));
        } else if opt.eq_ignore_ascii_case(b"setname") && args.remaining() >= 1 {
            setname = Some(args.bytes()?);
        } else {
            return Err(CmdError::msg(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt)
            )));
        }
    }
    if let Some((user, pass)) = creds {
        let command = args.name().to_vec();
        crate::acl::session::check_password(conn, &user, &pass, &command)?;
    }
    if !conn.authenticated {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = setname {
        validate_name(&name)?;
        conn.info.details.lock().name = (!name.is_empty()).then_some(name);
    }
    if let Some(p) = proto {
        conn.proto = p;
        if p == Protocol::Resp3 {
            // A RESP3 connection can receive pushes at any time (client-side caching
            // invalidations redirected to it), so it gets its inbox now.
            conn.subscriber();
        }
        conn.info
            .resp
            .store(if p == Protocol::Resp3 { 3 } else { 2 }, Ordering::Relaxed);
    }
    let ident = &conn.shared.ident;
    Ok(Reply::Map(vec![
        (
            Reply::bulk_static("server"),
            Reply::bulk_static(ident.server),
        ),
        (
            Reply::bulk_static("version"),
            Reply::bulk_static(ident.version),
        ),
        (
            Reply::bulk_static("proto"),
            Reply::Int(if conn.proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk_static("id"), Reply::Int(conn.info.id as i64)),
        (
            Reply::bulk_static("mode"),
            Reply::bulk_static(if conn.shared.cluster_mode.load(Ordering::Relaxed) {
                "cluster"
            } else {
                ident.mode
            }),
        ),
        (
            Reply::bulk_static("role"),
            Reply::bulk_static(*conn.shared.role.read()),
        ),
        (Reply::bulk_static("modules"), Reply::Array(vec![])),
    ]))
}

fn validate_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// `PING [message]`.
pub fn ping<S>(conn: &mut Conn<S>, mut args: Args) {
    // Arity -1 in the table (for COMMAND), but more than one argument is refused, as Redis.
    if args.remaining() > 1 {
        conn.reply(Reply::error(
            "ERR wrong number of arguments for 'ping' command",
        ));
        return;
    }
    let msg = args.next();
    if conn.proto == Protocol::Resp2 && conn.subscription_count() > 0 {
        let m = msg.unwrap_or_default();
        conn.reply(Reply::Array(vec![
            Reply::bulk_static("pong"),
            Reply::Bulk(m),
        ]));
        return;
    }
    conn.reply(match msg {
        Some(m) => Reply::Bulk(m),
        None => Reply::simple("PONG"),
    });
}

/// `ECHO message`.
pub fn echo<S>(conn: &mut Conn<S>, mut args: Args) {
    let m = args.next().unwrap_or_default();
    conn.reply(Reply::Bulk(m));
}

/// `QUIT`.
pub fn quit<S>(conn: &mut Conn<S>, _args: Args) {
    conn.reply(Reply::ok());
    conn.close = true;
}

/// `SELECT index`.
pub fn select<S>(conn: &mut Conn<S>, mut args: Args) {
    let r = match parse_int(&args.next().unwrap_or_default()) {
        Err(_) => Reply::error("ERR value is not an integer or out of range"),
        Ok(n) if n < 0 || n as usize >= conn.shared.databases => {
            Reply::error("ERR DB index is out of range")
        }
        Ok(n) => {
            conn.db = n as usize;
            conn.info.db.store(conn.db, Ordering::Relaxed);
            Reply::ok()
        }
    };
    conn.reply(r);
}

/// The connection part of `RESET`: protocol, database, name, subscriptions, authentication.
pub fn reset<S>(conn: &mut Conn<S>) {
    crate::pubsub::commands::unsubscribe_everything(conn);
    conn.proto = Protocol::Resp2;
    conn.info.resp.store(2, Ordering::Relaxed);
    conn.db = 0;
    conn.info.db.store(0, Ordering::Relaxed);
    conn.info.details.lock().name = None;
    conn.authenticated = conn.shared.acl.read().default_open();
    conn.user = crate::acl::Session::default();
    conn.info.details.lock().user = Bytes::new();
    conn.reply(Reply::simple("RESET"));
}

/// `CLIENT subcommand ...`.
pub fn client<S>(conn: &mut Conn<S>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let sub = lossy_lower(&raw);
    let r = match client_inner(conn, &sub, &mut args) {
        Err(CmdError::Other(m)) if m.starts_with("ERR unknown subcommand") => {
            Ok(crate::command::unknown_subcommand("client", &raw))
        }
        r => r,
    };
    conn.reply(r);
}

fn client_inner<S>(conn: &mut Conn<S>, sub: &str, args: &mut Args) -> Result<Reply, CmdError> {
    let arity = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(CmdError::Arity(format!("client|{sub}")))
        }
    };
    match sub {
        "id" => {
            arity(args.is_empty())?;
            Ok(Reply::Int(conn.info.id as i64))
        }
        "getname" => {
            arity(args.is_empty())?;
            Ok(conn
                .info
                .details
                .lock()
                .name
                .clone()
                .map(Reply::Bulk)
                .unwrap_or(Reply::Nil))
        }
        "setname" => {
            arity(args.remaining() == 1)?;
            let name = args.bytes()?;
            validate_name(&name)?;
            conn.info.details.lock().name = (!name.is_empty()).then_some(name);
            Ok(Reply::ok())
        }
        "setinfo" => {
            arity(args.remaining() == 2)?;
            let attr = lossy_lower(&args.bytes()?);
            let val = args.bytes()?;
            if val.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                return Err(CmdError::msg(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    attr
                )));
            }
            let mut d = conn.info.details.lock();
            match attr.as_str() {
                "lib-name" => d.lib_name = Some(val),
                "lib-ver" => d.lib_ver = Some(val),
                _ => return Err(CmdError::msg(format!("ERR Unrecognized option '{attr}'"))),
            }
            Ok(Reply::ok())
        }
        "info" => {
            arity(args.is_empty())?;
            Ok(Reply::Verbatim(Bytes::from(conn.info.list_line() + "\n")))
        }
        "list" => {
            let mut ids: Option<Vec<u64>> = None;
            let mut kind: Option<String> = None;
            while let Some(opt) = args.next() {
                if opt.eq_ignore_ascii_case(b"type") {
                    kind = Some(lossy_lower(&args.bytes()?));
                } else if opt.eq_ignore_ascii_case(b"id") {
                    let mut v = Vec::new();
                    while let Some(id) = args.next() {
                        let n = parse_int(&id)
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| CmdError::msg("ERR Invalid client ID"))?;
                        v.push(n as u64);
                    }
                    ids = Some(v);
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            if let Some(k) = &kind
                && !["normal", "master", "replica", "slave", "pubsub"].contains(&k.as_str())
            {
                return Err(CmdError::msg(format!("ERR Unknown client type '{k}'")));
            }
            let mut s = String::new();
            for c in conn.shared.clients.all() {
                if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
                    continue;
                }
                if kind.as_ref().is_some_and(|k| !c.is_type(k)) {
                    continue;
                }
                s.push_str(&c.list_line());
                s.push('\n');
            }
            Ok(Reply::Verbatim(Bytes::from(s)))
        }
        "kill" => client_kill(conn, args),
        "reply" | "no-evict" | "no-touch" => {
            arity(args.remaining() == 1)?;
            let v = lossy_lower(&args.bytes()?);
            match v.as_str() {
                "on" => Ok(Reply::ok()),
                "off" if sub != "reply" => Ok(Reply::ok()),
                _ => Err(CmdError::Syntax),
            }
        }
        "help" => Ok(Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "ID",
                "INFO",
                "KILL <ip:port>|<option> <value> [...]",
                "LIST [TYPE <type>] [ID <id> ...]",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "SETNAME <name>",
                "HELP",
            ]
            .into_iter()
            .map(Reply::simple)
            .collect(),
        )),
        _ => Err(CmdError::msg(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            sub
        ))),
    }
}

fn client_kill<S>(conn: &mut Conn<S>, args: &mut Args) -> Result<Reply, CmdError> {
    if args.is_empty() {
        return Err(CmdError::msg(
            "ERR wrong number of arguments for 'client|kill' command",
        ));
    }
    if args.remaining() == 1 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(&args.bytes()?).into_owned();
        let n = conn
            .shared
            .clients
            .kill_where(|c| c.addr.to_string() == addr);
        return if n == 0 {
            Err(CmdError::msg("ERR No such client"))
        } else {
            Ok(Reply::ok())
        };
    }
    if !args.remaining().is_multiple_of(2) || args.is_empty() {
        return Err(CmdError::Syntax);
    }
    let mut id = None;
    let mut kind = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut user: Option<Bytes> = None;
    while let Some(opt) = args.next() {
        let val = args.bytes()?;
        match lossy_lower(&opt).as_str() {
            "id" => {
                id =
                    Some(
                        parse_int(&val).ok().filter(|n| *n > 0).ok_or_else(|| {
                            CmdError::msg("ERR client-id should be greater than 0")
                        })? as u64,
                    )
            }
            "type" => {
                let k = lossy_lower(&val);
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&k.as_str()) {
                    return Err(CmdError::msg(format!("ERR Unknown client type '{k}'")));
                }
                kind = Some(k);
            }
            "addr" => addr = Some(String::from_utf8_lossy(&val).into_owned()),
            "laddr" => laddr = Some(String::from_utf8_lossy(&val).into_owned()),
            "skipme" => {
                skipme = match lossy_lower(&val).as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(CmdError::Syntax),
                }
            }
            "user" => {
                if conn.shared.acl.read().user(&val).is_none() {
                    return Err(CmdError::msg(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(&val)
                    )));
                }
                user = Some(val);
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    let me = conn.info.id;
    let n = conn.shared.clients.kill_where(|c| {
        (!skipme || c.id != me)
            && id.is_none_or(|i| c.id == i)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && kind.as_ref().is_none_or(|k| c.is_type(k))
            && user
                .as_ref()
                .is_none_or(|u| c.details.lock().user() == &u[..])
    });
    Ok(Reply::Int(n as i64))
}
