//! The `ACL` command, answered alike by the node and the sentinel.

use std::sync::Arc;

use bytes::Bytes;

use super::universe::CATEGORIES;
use super::user::User;
use super::{Acl, Denied, check};
use crate::args::{Args, lossy_lower, parse_int};
use crate::conn::Conn;
use crate::error::CmdError;
use crate::reply::Reply;

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
];

const NO_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// `ACL subcommand ...`.
pub fn acl<S>(conn: &mut Conn<S>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let sub = lossy_lower(&raw);
    let rest = args.rest();
    let r = match (sub.as_str(), rest.len()) {
        ("setuser", n) if n >= 1 => setuser(conn, &rest),
        ("deluser", n) if n >= 1 => deluser(conn, &rest),
        ("getuser", 1) => Ok(getuser(&conn.shared.acl.read(), &rest[0])),
        ("list", 0) => {
            let acl = conn.shared.acl.read();
            Ok(Reply::Array(
                acl.users
                    .values()
                    .map(|u| {
                        Reply::bulk_string(format!("user {} {}", u.name, u.describe(&acl.universe)))
                    })
                    .collect(),
            ))
        }
        ("users", 0) => Ok(Reply::bulks(
            conn.shared
                .acl
                .read()
                .users
                .keys()
                .map(|k| k.as_bytes().to_vec()),
        )),
        ("whoami", 0) => Ok(Reply::Bulk(conn.user.name.clone())),
        ("cat", 0) => Ok(Reply::bulks(CATEGORIES.iter().map(|c| c.as_bytes()))),
        ("cat", 1) => cat(&conn.shared.acl.read(), &rest[0]),
        ("genpass", 0 | 1) => genpass(rest.first()),
        ("log", 0 | 1) => log(conn, rest.first()),
        ("dryrun", n) if n >= 2 => dryrun(&conn.shared.acl.read(), &rest),
        // Under the write lock: two saves at once would share the temporary file.
        ("save", 0) => save(&conn.shared.acl.write()),
        ("load", 0) => load(conn),
        ("help", 0) => Ok(help()),
        // Variable arity in Redis' table: too many arguments reach the handler's own error.
        ("log" | "genpass" | "cat", _) => Err(CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
            String::from_utf8_lossy(&raw)
        ))),
        _ => {
            let known = crate::subcommands::SUBCOMMANDS
                .iter()
                .find(|(c, _)| *c == "acl")
                .map_or(&[][..], |(_, s)| *s);
            Ok(crate::command::bad_subcommand("acl", &raw, known))
        }
    };
    conn.reply(r);
}

fn help() -> Reply {
    let mut out = vec![Reply::simple(
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    )];
    out.extend(HELP.iter().map(|l| Reply::simple(l)));
    out.push(Reply::simple("HELP"));
    out.push(Reply::simple("    Prints this help."));
    Reply::Array(out)
}

fn setuser<S>(conn: &mut Conn<S>, rest: &[Bytes]) -> Result<Reply, CmdError> {
    let name = &rest[0];
    if name.iter().any(|c| c.is_ascii_whitespace() || *c == 0) {
        return Err(CmdError::msg(
            "ERR Usernames can't contain spaces or null characters",
        ));
    }
    let mut acl = conn.shared.acl.write();
    let user = acl
        .apply_ops(name, &rest[1..])
        .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    let updated = user.clone();
    acl.put(user);
    drop(acl);
    kill_refused_subscribers(conn, &updated);
    Ok(Reply::ok())
}

/// Disconnects the user's clients subscribed to what it may no longer subscribe to, as
/// Redis 7.0 does when channel permissions shrink.
fn kill_refused_subscribers<S>(conn: &mut Conn<S>, user: &User) {
    let ids: std::collections::HashSet<u64> = conn
        .shared
        .clients
        .all()
        .iter()
        .filter(|c| c.details.lock().user() == user.name.as_bytes())
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        return;
    }
    let allowed = |name: &[u8], pattern: bool| {
        std::iter::once(&user.root)
            .chain(user.selectors.iter())
            .any(|s| s.channel_allowed(name, pattern))
    };
    let mut refused = conn.shared.hub.refused_subscribers(&ids, allowed);
    if let Some(hub) = &conn.shared.tls_hub {
        refused.extend(hub.refused_subscribers(&ids, allowed));
    }
    if refused.contains(&conn.info.id) {
        conn.close = true;
    }
    let me = conn.info.id;
    conn.shared
        .clients
        .kill_where(|c| c.id != me && refused.contains(&c.id));
}

fn deluser<S>(conn: &mut Conn<S>, names: &[Bytes]) -> Result<Reply, CmdError> {
    if names.iter().any(|n| &n[..] == b"default") {
        return Err(CmdError::msg("ERR The 'default' user cannot be removed"));
    }
    let mut gone = Vec::new();
    {
        let mut acl = conn.shared.acl.write();
        for n in names {
            let key = String::from_utf8_lossy(n).into_owned();
            if acl.users.remove(&key).is_some() {
                acl.changed();
                gone.push(n.clone());
            }
        }
    }
    for n in &gone {
        kill_user_clients(conn, n);
    }
    Ok(Reply::Int(gone.len() as i64))
}

/// Disconnects the clients authenticated as a user (after this reply, for the caller).
pub fn kill_user_clients<S>(conn: &mut Conn<S>, name: &[u8]) {
    let me = conn.info.id;
    if conn.user.name[..] == *name {
        conn.close = true;
    }
    conn.shared
        .clients
        .kill_where(|c| c.id != me && c.details.lock().user() == name);
}

/// `ACL GETUSER name`: null for an unknown user.
pub fn getuser(acl: &Acl, name: &[u8]) -> Reply {
    let Some(u) = acl.user(name) else {
        return Reply::Nil;
    };
    let kv = |k: &'static str, v: Reply| (Reply::bulk_static(k), v);
    let selector = |s: &super::selector::Selector| {
        vec![
            kv(
                "commands",
                Reply::bulk_string(s.describe_commands(&acl.universe)),
            ),
            kv("keys", Reply::bulk_string(s.describe_keys())),
            kv("channels", Reply::bulk_string(s.describe_channels())),
        ]
    };
    let mut fields = vec![
        kv(
            "flags",
            Reply::Set(u.flags().iter().map(|f| Reply::bulk_static(f)).collect()),
        ),
        kv(
            "passwords",
            Reply::bulks(u.passwords.iter().map(|p| p.as_bytes())),
        ),
    ];
    fields.extend(selector(&u.root));
    fields.push(kv(
        "selectors",
        Reply::Array(
            u.selectors
                .iter()
                .map(|s| Reply::Map(selector(s)))
                .collect(),
        ),
    ));
    Reply::Map(fields)
}

fn cat(acl: &Acl, name: &Bytes) -> Result<Reply, CmdError> {
    let cat = lossy_lower(name);
    if !CATEGORIES.contains(&cat.as_str()) {
        let shown: String = String::from_utf8_lossy(name).chars().take(128).collect();
        return Err(CmdError::msg(format!("ERR Unknown category '{shown}'")));
    }
    let u = &acl.universe;
    Ok(Reply::bulks(
        (0..u.cmds.len())
            .filter(|&id| u.in_category(id, &cat))
            .map(|id| u.cmds[id].name.as_bytes()),
    ))
}

fn genpass(bits: Option<&Bytes>) -> Result<Reply, CmdError> {
    let bits = match bits {
        Some(b) => parse_int(b)?,
        None => 256,
    };
    if bits <= 0 || bits > 4096 {
        return Err(CmdError::msg(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
        ));
    }
    let chars = (bits as usize).div_ceil(4);
    let mut raw = vec![0u8; chars.div_ceil(2)];
    random_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Reply::bulk(&hex.as_bytes()[..chars]))
}

/// Random bytes from the operating system (`/dev/urandom`), falling back to a hash of the
/// clock and a counter where that cannot be read.
fn random_bytes(out: &mut [u8]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .is_ok()
    {
        return;
    }
    let seed = format!("{:?}{:p}", std::time::SystemTime::now(), out);
    let h = super::user::hash_password(seed.as_bytes());
    for (o, c) in out.iter_mut().zip(h.bytes().cycle()) {
        *o = c;
    }
}

fn log<S>(conn: &mut Conn<S>, arg: Option<&Bytes>) -> Result<Reply, CmdError> {
    let count = match arg {
        Some(a) if a.eq_ignore_ascii_case(b"reset") => {
            conn.shared.acl.write().log.reset();
            return Ok(Reply::ok());
        }
        Some(a) => parse_int(a)?.max(0) as usize,
        None => 10,
    };
    Ok(conn.shared.acl.read().log.reply(count))
}

fn dryrun(acl: &Acl, rest: &[Bytes]) -> Result<Reply, CmdError> {
    let Some(user) = acl.user(&rest[0]) else {
        return Err(CmdError::msg(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&rest[0])
        )));
    };
    let args = &rest[1..];
    let u = &acl.universe;
    let Some(id) = u.lookup(&String::from_utf8_lossy(&args[0])) else {
        return Err(CmdError::msg(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&args[0])
        )));
    };
    let meta = u.cmds[id].meta;
    let full = super::full_name(u, &meta, args);
    if !meta.arity_ok(args.len()) {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for '{full}' command"
        )));
    }
    Ok(match check(u, &user, &meta, args) {
        Ok(()) => Reply::ok(),
        Err(d) => Reply::bulk_string(match d {
            Denied::Command => format!("This user has no permissions to run the '{full}' command"),
            Denied::Key(i) => format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(&args[i])
            ),
            Denied::Channel(i) => format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(&args[i])
            ),
        }),
    })
}

fn save(acl: &Acl) -> Result<Reply, CmdError> {
    let Some(path) = acl.file.as_deref() else {
        return Err(CmdError::msg(NO_FILE));
    };
    super::file::save(acl, path).map(|_| Reply::ok()).map_err(|e| {
        tracing::warn!(file = %path.display(), error = %e, "saving the ACL file failed");
        CmdError::msg(
            "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
        )
    })
}

fn load<S>(conn: &mut Conn<S>) -> Result<Reply, CmdError> {
    let mut acl = conn.shared.acl.write();
    let Some(path) = acl.file.clone() else {
        return Err(CmdError::msg(NO_FILE));
    };
    let users = super::file::read(&acl, &path).map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    acl.users = users
        .into_iter()
        .map(|u| (u.name.clone(), Arc::new(u)))
        .collect();
    acl.changed();
    drop(acl);
    // Every client of a user other than `default` is disconnected, as Redis frees the old
    // users (and their clients) on ACL LOAD.
    if conn.user.name[..] != *b"default" {
        conn.close = true;
    }
    let me = conn.info.id;
    conn.shared
        .clients
        .kill_where(|c| c.id != me && c.details.lock().user() != b"default");
    Ok(Reply::ok())
}
