//! The ACL side of a connection: its user (refreshed when the users change), the check
//! before each command, authentication, and the ACL LOG entries they write.

use bytes::Bytes;

use crate::command::CommandMeta;
use crate::conn::Conn;
use crate::error::CmdError;

/// The connection's user, refreshed if the users changed since it was copied; `None` if the
/// user no longer exists.
pub fn current_user<S>(conn: &mut Conn<S>) -> Option<std::sync::Arc<crate::acl::User>> {
    refresh(conn);
    conn.user.user.clone()
}

/// Brings the connection's copy of its user up to date. The common path reads one atomic:
/// the lock is taken only after a change.
fn refresh<S>(conn: &mut Conn<S>) {
    let now = conn
        .shared
        .acl_generation
        .load(std::sync::atomic::Ordering::Acquire);
    if conn.user.generation != now {
        conn.user.user = conn.shared.acl.read().user(&conn.user.name);
        conn.user.generation = now;
    }
}

/// Whether the connection's user may run anything (no ACL check needed).
pub fn acl_open<S>(conn: &mut Conn<S>) -> bool {
    refresh(conn);
    conn.user.user.as_ref().is_some_and(|u| u.unrestricted())
}

/// Checks a request against the connection's ACL user, logging a refusal (ACL LOG). On
/// refusal, returns why and the command's full name (`config|get`).
pub fn acl_check<S>(
    conn: &mut Conn<S>,
    meta: &CommandMeta,
    args: &[Bytes],
    context: crate::acl::log::Context,
) -> Result<(), (crate::acl::Denied, String)> {
    if acl_open(conn) {
        return Ok(());
    }
    let user = conn.user.user.clone();
    let who = Who {
        name: &conn.user.name,
        client_info: &|| conn.info.list_line(),
    };
    check_logged(&conn.shared.acl, user.as_deref(), meta, args, context, who)
}

/// Who a checked request comes from, for its ACL LOG entry.
pub struct Who<'a> {
    /// The user's name.
    pub name: &'a [u8],
    /// The client's `CLIENT LIST` line (made only for a refusal).
    pub client_info: &'a dyn Fn() -> String,
}

/// Checks a request against `user` (`None`: a deleted user, refused) and adds the ACL LOG
/// entry of a refusal: the one check of the connection, EXEC and scripts. On refusal, returns
/// why and the command's full name (`config|get`).
pub fn check_logged(
    acl: &parking_lot::RwLock<crate::acl::Acl>,
    user: Option<&crate::acl::User>,
    meta: &CommandMeta,
    args: &[Bytes],
    context: crate::acl::log::Context,
    who: Who<'_>,
) -> Result<(), (crate::acl::Denied, String)> {
    let (result, name) = {
        let acl = acl.read();
        let r = match user {
            Some(u) => crate::acl::check(&acl.universe, u, meta, args),
            None => Err(crate::acl::Denied::Command),
        };
        (r, crate::acl::full_name(&acl.universe, meta, args))
    };
    let Err(d) = result else { return Ok(()) };
    let object = match d {
        crate::acl::Denied::Command => name.clone(),
        crate::acl::Denied::Key(i) | crate::acl::Denied::Channel(i) => {
            String::from_utf8_lossy(&args[i]).into_owned()
        }
    };
    log(acl, d.reason(), context, object, who);
    Err((d, name))
}

/// Adds an ACL LOG entry.
fn log(
    acl: &parking_lot::RwLock<crate::acl::Acl>,
    reason: &'static str,
    context: crate::acl::log::Context,
    object: String,
    who: Who<'_>,
) {
    let entry = crate::acl::log::Entry {
        count: 1,
        reason,
        context,
        object,
        username: String::from_utf8_lossy(who.name).into_owned(),
        at: std::time::Instant::now(),
        client_info: (who.client_info)(),
    };
    acl.write().log.add(entry);
}

/// Adds an ACL LOG entry for this connection.
pub fn log_denial<S>(
    conn: &Conn<S>,
    reason: &'static str,
    context: crate::acl::log::Context,
    object: String,
    username: Option<&[u8]>,
) {
    let who = Who {
        name: username.unwrap_or(&conn.user.name),
        client_info: &|| conn.info.list_line(),
    };
    log(&conn.shared.acl, reason, context, object, who);
}

/// Authenticates the connection as a user, or logs the failure and returns -WRONGPASS.
pub fn check_password<S>(
    conn: &mut Conn<S>,
    user: &[u8],
    pass: &[u8],
    command: &[u8],
) -> Result<(), CmdError> {
    // The generation is read before the user is looked up: a change that lands in between
    // (a DELUSER that cannot see this connection yet, a narrowing SETUSER) makes the next
    // command reload the user instead of keeping the one found here.
    let generation = conn
        .shared
        .acl_generation
        .load(std::sync::atomic::Ordering::Acquire);
    let found = conn.shared.acl.read().authenticate(user, pass);
    let Some(u) = found else {
        log_denial(
            conn,
            "auth",
            crate::acl::log::Context::Toplevel,
            String::from_utf8_lossy(command).into_owned(),
            Some(user),
        );
        return Err(CmdError::WrongPass);
    };
    let name = Bytes::from(u.name.clone().into_bytes());
    conn.info.details.lock().user = name.clone();
    conn.user = crate::acl::Session {
        name,
        user: Some(u),
        generation,
    };
    conn.authenticated = true;
    Ok(())
}

/// Whether the connection's user may run the command with unrestricted read access to keys
/// (in one selector: `allkeys` or a read pattern `*`), which SORT's BY and GET need.
/// Uses the user as of the command's check (which refreshed it).
pub fn reads_every_key<S>(conn: &Conn<S>, meta: &CommandMeta, args: &[Bytes]) -> bool {
    match &conn.user.user {
        Some(user) => user_reads_every_key(&conn.shared.acl, user, meta, args),
        None => false,
    }
}

/// [`reads_every_key`] for `user` (a script's caller, say), with the ACL of `acl`.
pub fn user_reads_every_key(
    acl: &parking_lot::RwLock<crate::acl::Acl>,
    user: &crate::acl::User,
    meta: &CommandMeta,
    args: &[Bytes],
) -> bool {
    if user.unrestricted() {
        return true;
    }
    let acl = acl.read();
    let id = acl.universe.of_request(meta, args);
    std::iter::once(&user.root)
        .chain(user.selectors.iter())
        .any(|s| s.reads_every_key() && s.check(&acl.universe, id, meta, args).is_ok())
}
