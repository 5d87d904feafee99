//! `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
//! [AUTH2 username password] [KEYS key [key ...]]`: moves keys to another Redis-protocol
//! server with DUMP/RESTORE, replying and propagating as Redis 7.0 does (`+OK`, `+NOKEY`,
//! `-IOERR …`, the target's error; the moved keys propagate as one `DEL`).
//!
//! Unlike Redis, which blocks the whole server for the round trip, the node runs MIGRATE in
//! three steps so other clients keep being served: the keys are dumped under the store lock,
//! the lock is released for the network exchange ([`crate::migrate`]), then it is taken again
//! to delete the acknowledged keys — only those whose value and expiry are still what was sent.
//! A write that raced the migration therefore keeps its key on this node (the target has the
//! older copy) instead of being lost.

use std::time::Duration;

use bytes::Bytes;
use vigil_base::clock::unix_ms;
use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply};

use crate::ctx::Ctx;
use crate::migrate::Request;
use crate::node::{BoxFut, Handler, Node, row};
use crate::persist::rdb;
use crate::session::ConnState;

/// The rows of MIGRATE.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "migrate",
        -6,
        [WRITE, MOVABLEKEYS],
        3,
        3,
        1,
        "generic",
        "Atomically transfers a key from one Redis instance to another.",
        Async(migrate),
        keys = vigil_resp::keys::migrate
    )]
}

/// A parsed MIGRATE.
#[derive(Debug, PartialEq)]
struct Parsed {
    host: String,
    /// The port (Redis converts it with `atoi`; `None`: negative, which fails to connect).
    port: Option<u16>,
    keys: Vec<Bytes>,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Option<(Option<Bytes>, Bytes)>,
}

/// Parses as Redis does: options first (syntax and KEYS errors), then timeout, then db.
fn parse(args: &[Bytes]) -> Result<Parsed, CmdError> {
    let mut p = Parsed {
        host: String::from_utf8_lossy(&args[1]).into_owned(),
        // A negative port does not resolve; a larger one wraps, as the C conversion does.
        port: atoi(&args[2]).filter(|n| *n >= 0).map(|n| n as u16),
        keys: vec![args[3].clone()],
        db: 0,
        timeout: Duration::ZERO,
        copy: false,
        replace: false,
        auth: None,
    };
    let mut j = 6;
    while j < args.len() {
        let a = &args[j];
        let more = args.len() - 1 - j;
        if a.eq_ignore_ascii_case(b"copy") {
            p.copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            p.replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more < 1 {
                return Err(CmdError::Syntax);
            }
            p.auth = Some((None, args[j + 1].clone()));
            j += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(CmdError::Syntax);
            }
            p.auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !args[3].is_empty() {
                return Err(CmdError::msg(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            p.keys = args[j + 1..].to_vec();
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let timeout = parse_int(&args[5])?;
    p.db = parse_int(&args[4])?;
    // Redis' default when the timeout is not positive.
    let ms = if timeout <= 0 { 1000 } else { timeout as u64 };
    p.timeout = Duration::from_millis(ms);
    Ok(p)
}

/// C's `atoi`, as Redis reads the port: leading blanks, a sign, leading digits.
fn atoi(b: &[u8]) -> Option<i64> {
    let s = b.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

/// One key as it was sent: its DUMP payload and absolute expiry.
struct Sent {
    key: Bytes,
    payload: Bytes,
    expire_at: Option<i64>,
}

fn migrate<'a>(node: &'a Node, conn: &'a mut Conn<ConnState>, args: Args) -> BoxFut<'a> {
    Box::pin(run(node, conn, args))
}

async fn run(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let p = match parse(args.all()) {
        Ok(p) => p,
        Err(e) => {
            conn.reply(Reply::from(Err::<Reply, _>(e)));
            return;
        }
    };
    let Some((meta, _)) = node.table.get(b"migrate") else {
        return;
    };
    let sent = match dump_keys(node, conn, meta, &p.keys) {
        Ok(s) => s,
        Err(r) => {
            conn.reply(r);
            return;
        }
    };
    if sent.is_empty() {
        conn.reply(Reply::simple("NOKEY"));
        return;
    }
    let now = unix_ms();
    let req = Request {
        auth: p.auth.clone(),
        db: p.db,
        keys: sent
            .iter()
            .map(|s| {
                let ttl = s.expire_at.map_or(0, |at| (at - now).max(1));
                (s.key.clone(), ttl, s.payload.clone())
            })
            .collect(),
        replace: p.replace,
    };
    let Some(port) = p.port else {
        conn.reply(Reply::error(crate::migrate::IoFail::Connect.to_string()));
        return;
    };
    let ex = match node.migrate.migrate(&p.host, port, &req, p.timeout).await {
        Ok(ex) => ex,
        Err(fail) => {
            conn.reply(Reply::error(fail.to_string()));
            return;
        }
    };
    if !p.copy {
        let acked: Vec<&Sent> = sent
            .iter()
            .zip(&ex.acked)
            .filter(|(_, a)| **a)
            .map(|(s, _)| s)
            .collect();
        // Another client's script may have started during the network wait.
        node.script_done().await;
        delete_unchanged(node, conn, meta, &acked);
    }
    let reply = match (ex.error, ex.io) {
        (Some(e), _) => Reply::error(format!("ERR Target instance replied with error: {e}")),
        (None, Some(io)) => Reply::error(io.to_string()),
        (None, None) => Reply::ok(),
    };
    crate::dispatch::push_reply(conn, reply);
}

/// Dumps the live keys under the store lock (lazy expiry propagates as usual).
fn dump_keys(
    node: &Node,
    conn: &mut Conn<ConnState>,
    meta: &CommandMeta,
    keys: &[Bytes],
) -> Result<Vec<Sent>, Reply> {
    let mut store = node.lock_store()?;
    let hide = node.gate(meta)?;
    let thresholds = store.thresholds.clone();
    let mut props = Vec::new();
    let mut sent = Vec::new();
    let mut ctx = Ctx::new(&mut store, conn.db, unix_ms(), &mut props);
    ctx.hide_expired = hide;
    ctx.no_touch = conn.state.no_touch;
    // Read lookups, as Redis' MIGRATE does: keyspace hits and misses, `keymiss` events.
    ctx.reads = true;
    for key in keys {
        if let Some(v) = ctx.lookup(key) {
            let payload = Bytes::from(rdb::dump(v, &thresholds));
            let expire_at = ctx.db().expire_of(key);
            sent.push(Sent {
                key: key.clone(),
                payload,
                expire_at,
            });
        }
    }
    drop(ctx);
    // Keys found expired on the way are announced now, not with some later command.
    store.publish_events(&node.shared.hub);
    node.note_propagated(conn, &props);
    Ok(sent)
}

/// Deletes the acknowledged keys whose value and expiry are still what was sent, propagated
/// as one `DEL`, as Redis rewrites MIGRATE.
fn delete_unchanged(node: &Node, conn: &mut Conn<ConnState>, meta: &CommandMeta, acked: &[&Sent]) {
    if acked.is_empty() {
        return;
    }
    let mut store = node.store.lock();
    // The role may have changed while the lock was free: a node that may not write keeps the
    // keys (the target has copies; nothing is lost).
    if node.gate(meta).is_err() {
        return;
    }
    let thresholds = store.thresholds.clone();
    let mut props = Vec::new();
    let mut ctx = Ctx::new(&mut store, conn.db, unix_ms(), &mut props);
    let mut del = vec![Bytes::from_static(b"DEL")];
    for s in acked {
        let same = ctx
            .peek(&s.key)
            .is_some_and(|v| rdb::dump(v, &thresholds) == s.payload)
            && ctx.db().expire_of(&s.key) == s.expire_at;
        if same && ctx.delete(&s.key) {
            ctx.notify(crate::db::notify::GENERIC, "del", &s.key);
            del.push(s.key.clone());
        }
    }
    if del.len() > 1 {
        ctx.propagate(del);
    }
    ctx.finish(&Args::new(Vec::new()));
    drop(ctx);
    store.publish_events(&node.shared.hub);
    node.note_propagated(conn, &props);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn err(words: &[&str]) -> String {
        match parse(&req(words)) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("parsed: {p:?}"),
        }
    }

    #[test]
    fn parses_as_redis() {
        let p = parse(&req(&[
            "migrate", "h", "7000", "", "3", "0", "copy", "AUTH2", "u", "p", "keys", "a", "b",
        ]))
        .unwrap();
        assert_eq!(p.port, Some(7000));
        assert_eq!(p.keys, req(&["a", "b"]));
        assert_eq!((p.db, p.copy, p.replace), (3, true, false));
        assert_eq!(p.timeout, Duration::from_millis(1000));
        assert_eq!(p.auth, Some((Some(Bytes::from("u")), Bytes::from("p"))));
        let p = parse(&req(&["migrate", "h", "x", "k", "0", "-5", "replace"])).unwrap();
        assert_eq!((p.port, p.replace), (Some(0), true));
        assert_eq!(p.timeout, Duration::from_millis(1000));
        let cases: &[(&[&str], &str)] = &[
            (
                &["migrate", "h", "1", "k", "0", "0", "keys", "a"],
                "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
            ),
            (
                &["migrate", "h", "1", "k", "0", "0", "nope"],
                "ERR syntax error",
            ),
            (
                &["migrate", "h", "1", "k", "0", "0", "auth"],
                "ERR syntax error",
            ),
            (
                &["migrate", "h", "1", "k", "0", "0", "auth2", "u"],
                "ERR syntax error",
            ),
            (
                &["migrate", "h", "1", "k", "x", "y"],
                "ERR value is not an integer or out of range",
            ),
            (
                &["migrate", "h", "1", "k", "x", "0"],
                "ERR value is not an integer or out of range",
            ),
        ];
        for (i, (words, want)) in cases.iter().enumerate() {
            assert_eq!(err(words), *want, "#{i}");
        }
    }

    #[test]
    fn atoi_reads_leading_digits() {
        assert_eq!(atoi(b"80x"), Some(80));
        assert_eq!(atoi(b" -3"), Some(-3));
        assert_eq!(atoi(b"x"), Some(0));
        assert_eq!(atoi(b"99999999999999999999999"), None);
    }
}
