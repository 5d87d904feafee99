//! Commands across databases: COPY, MOVE, SWAPDB. Each runs under the store lock and is
//! propagated as received (deterministic: every argument names its database). Also SELECT's
//! node handler: a cluster has database 0 only.

use vigil_resp::args::parse_int;
use vigil_resp::{Args, CmdError, CommandMeta, Conn, Reply};

use crate::ctx::Ctx;
use crate::db::boxed;
use crate::db::notify::GENERIC;
use crate::node::{Handler, Node, row};
use crate::session::ConnState;

/// `SELECT index`: as the shared handler, but in cluster mode only database 0 (the integer is
/// checked first, as Redis does).
pub(crate) fn select(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let n = args.all().get(1).map(|a| parse_int(a));
    if matches!(n, Some(Ok(n)) if n != 0) && node.cluster.read().is_some() {
        conn.reply(Reply::error("ERR SELECT is not allowed in cluster mode"));
        return;
    }
    vigil_resp::builtin::select(conn, args);
}

/// The cross-database family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "copy",
            -3,
            [WRITE, DENYOOM],
            1,
            2,
            1,
            "generic",
            "Copies a key, to the same or another database.",
            Data(copy)
        ),
        row!(
            "move",
            3,
            [WRITE, FAST],
            1,
            1,
            1,
            "generic",
            "Moves a key to another database.",
            Data(move_key)
        ),
        row!(
            "swapdb",
            3,
            [WRITE, FAST],
            0,
            0,
            0,
            "server",
            "Swaps the contents of two databases.",
            Data(swapdb)
        ),
    ]
}

/// A database index argument: an integer (Redis' `not_integer` wording otherwise), in range.
fn db_index(ctx: &Ctx, arg: &[u8], not_int: &'static str) -> Result<usize, CmdError> {
    let n = parse_int(arg).map_err(|_| CmdError::msg(not_int))?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n < ctx.store.dbs.len())
        .ok_or_else(|| CmdError::msg("ERR DB index is out of range"))
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

fn copy(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let src = args.bytes()?;
    let dst = args.bytes()?;
    let mut to = ctx.db;
    let mut replace = false;
    while let Some(o) = args.next() {
        if o.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if o.eq_ignore_ascii_case(b"db") && args.remaining() >= 1 {
            to = db_index(ctx, &args.bytes()?, NOT_INT)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if to == ctx.db && src == dst {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    let Some(value) = ctx.lookup(&src).cloned() else {
        return Ok(Reply::Int(0));
    };
    let expire = ctx.db().expire_of(&src);
    let here = ctx.db;
    ctx.db = to;
    let exists = ctx.exists_write(&dst);
    ctx.db = here;
    if exists && !replace {
        return Ok(Reply::Int(0));
    }
    let db = &mut ctx.store.dbs[to];
    // A replaced key is deleted first, as Redis does: the copy is a new key.
    db.remove(&dst);
    db.set(&dst, value, false);
    if let Some(at) = expire {
        db.set_expire(&dst, at);
    }
    db.touch(&dst);
    ctx.changed(1);
    ctx.notify_in(to, GENERIC, "copy_to", &dst);
    Ok(Reply::Int(1))
}

fn move_key(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let to = db_index(ctx, &args.bytes()?, NOT_INT)?;
    if to == ctx.db {
        return Err(CmdError::msg(
            "ERR source and destination objects are the same",
        ));
    }
    // Looked up for the write in both databases, as Redis does: each counts as used.
    if !ctx.exists_write(&key) {
        return Ok(Reply::Int(0));
    }
    let here = ctx.db;
    ctx.db = to;
    let taken = ctx.exists_write(&key);
    ctx.db = here;
    if taken {
        return Ok(Reply::Int(0));
    }
    let db = ctx.db();
    let expire = db.expire_of(&key);
    let stamp = db.keys.stamp(&key);
    let Some(value) = db.remove(&key) else {
        return Ok(Reply::Int(0));
    };
    db.touch(&key);
    let dst = &mut ctx.store.dbs[to];
    dst.keys.insert(boxed(&key), value);
    // The moved value keeps its access data, as Redis moves the object itself.
    if let Some(s) = stamp {
        dst.keys.set_stamp(&key, s);
    }
    if let Some(at) = expire {
        dst.set_expire(&key, at);
    }
    dst.touch(&key);
    ctx.changed(1);
    ctx.notify(GENERIC, "move_from", &key);
    ctx.notify_in(to, GENERIC, "move_to", &key);
    Ok(Reply::Int(1))
}

fn swapdb(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    // Both indexes parse before either is range-checked, as in Redis.
    let int = |b: &[u8], e: &'static str| parse_int(b).map_err(|_| CmdError::msg(e));
    let a = int(&args.bytes()?, "ERR invalid first DB index")?;
    let b = int(&args.bytes()?, "ERR invalid second DB index")?;
    let n = ctx.store.dbs.len() as i64;
    if !(0..n).contains(&a) || !(0..n).contains(&b) {
        return Err(CmdError::msg("ERR DB index is out of range"));
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = ctx.store.dbs.split_at_mut(hi);
        let (x, y) = (&mut left[lo], &mut right[0]);
        std::mem::swap(&mut x.keys, &mut y.keys);
        std::mem::swap(&mut x.expires, &mut y.expires);
        // Blocked clients and WATCHes stay with their database index: every blocked client is
        // woken to look at its keys' new contents, and WATCHes see the replaced keys as Redis'
        // rules for stale keys say (`db::watch`).
        let now = ctx.now;
        for (db, old) in [(&*x, &*y), (&*y, &*x)] {
            for (k, ws) in &db.watched {
                let (before, after) = (old.keys.contains_key(k), db.keys.contains_key(k));
                let after_expired = after && db.is_expired(k, now);
                for w in ws {
                    w.replaced(before, after, after_expired);
                }
            }
        }
        for db in [x, y] {
            let keys: Vec<_> = db.blocked.keys().cloned().collect();
            for k in keys {
                db.touch(&k);
            }
        }
    }
    ctx.changed(1);
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use crate::db::Store;

    fn run(store: &mut Store, db: usize, f: crate::ctx::DataFn, words: &[&str]) -> Reply {
        let mut props = Vec::new();
        let mut ctx = Ctx::new(store, db, 1_000, &mut props);
        let mut a = Args::new(words.iter().map(|w| Bytes::from(w.to_string())).collect());
        Reply::from(f(&mut ctx, &mut a))
    }

    #[test]
    fn copy_move_swap() {
        let mut s = Store::new(4);
        s.dbs[0].set(b"k", crate::db::Value::Str(boxed(b"v")), false);
        s.dbs[0].set_expire(b"k", 5_000);
        assert_eq!(run(&mut s, 0, copy, &["copy", "k", "k2"]), Reply::Int(1));
        assert_eq!(s.dbs[0].expire_of(b"k2"), Some(5_000));
        assert_eq!(run(&mut s, 0, copy, &["copy", "k", "k2"]), Reply::Int(0));
        assert_eq!(
            run(&mut s, 0, copy, &["copy", "k", "k2", "replace"]),
            Reply::Int(1)
        );
        assert_eq!(
            run(&mut s, 0, copy, &["copy", "k", "k", "db", "2"]),
            Reply::Int(1)
        );
        assert!(matches!(
            run(&mut s, 0, copy, &["copy", "k", "k"]),
            Reply::Error(_)
        ));
        assert!(matches!(
            run(&mut s, 0, copy, &["copy", "k", "x", "db", "9"]),
            Reply::Error(_)
        ));
        assert_eq!(
            run(&mut s, 0, move_key, &["move", "k2", "1"]),
            Reply::Int(1)
        );
        assert!(s.dbs[1].keys.contains_key(&b"k2"[..]));
        assert_eq!(s.dbs[1].expire_of(b"k2"), Some(5_000));
        assert_eq!(run(&mut s, 0, move_key, &["move", "k", "2"]), Reply::Int(0));
        assert_eq!(run(&mut s, 0, swapdb, &["swapdb", "0", "1"]), Reply::ok());
        assert!(s.dbs[0].keys.contains_key(&b"k2"[..]));
        assert!(s.dbs[1].keys.contains_key(&b"k"[..]));
    }
}
