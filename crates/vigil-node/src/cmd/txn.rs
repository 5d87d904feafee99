//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, and RESET (which also ends them).

use vigil_resp::{Args, CommandMeta, Conn, Reply, builtin};

use crate::node::Node;
use crate::node::{Handler, row};
use crate::session::{ConnState, Watched};
use vigil_base::clock::unix_ms;

/// The transaction family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "multi",
            1,
            [FAST, STALE, UNQUEUED],
            0,
            0,
            0,
            "transactions",
            "Starts a transaction.",
            Node(multi)
        ),
        row!(
            "exec",
            1,
            [STALE, UNQUEUED],
            0,
            0,
            0,
            "transactions",
            "Executes the queued commands.",
            Node(exec)
        ),
        row!(
            "discard",
            1,
            [FAST, STALE, UNQUEUED],
            0,
            0,
            0,
            "transactions",
            "Discards the queued commands.",
            Node(discard)
        ),
        row!(
            "watch",
            -2,
            [FAST, STALE, UNQUEUED],
            1,
            -1,
            1,
            "transactions",
            "Aborts the next EXEC if these keys change.",
            Node(watch)
        ),
        row!(
            "unwatch",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "transactions",
            "Forgets all watched keys.",
            Node(unwatch)
        ),
        row!(
            "reset",
            1,
            [FAST, NO_AUTH, STALE, SUBSCRIBED, UNQUEUED],
            0,
            0,
            0,
            "connection",
            "Resets the connection.",
            Node(reset)
        ),
    ]
}

fn multi(_node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    if conn.state.multi.is_some() {
        conn.reply(Reply::error("ERR MULTI calls can not be nested"));
        return;
    }
    conn.state.multi = Some(Vec::new());
    conn.state.multi_failed = false;
    conn.info.begin_multi();
    conn.reply(Reply::ok());
}

fn exec(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    node.exec(conn);
}

fn discard(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    if conn.state.multi.is_none() {
        conn.reply(Reply::error("ERR DISCARD without MULTI"));
        return;
    }
    node.discard_multi(conn);
    conn.reply(Reply::ok());
}

fn watch(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    if conn.state.multi.is_some() {
        conn.reply(Reply::error("ERR WATCH inside MULTI is not allowed"));
        return;
    }
    let now = unix_ms();
    let mut store = node.store.lock();
    let db = conn.db;
    while let Some(key) = args.next() {
        if conn
            .state
            .watched
            .iter()
            .any(|w| w.db == db && w.key == key)
        {
            continue;
        }
        let d = &mut store.dbs[db];
        let expired = d.is_expired(&key, now);
        let flags = d.watch(&key, expired);
        conn.state.watched.push(Watched { db, key, flags });
    }
    drop(store);
    conn.reply(Reply::ok());
}

fn unwatch(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    node.unwatch_all(conn);
    conn.reply(Reply::ok());
}

fn reset(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    node.discard_multi(conn);
    // Redis' RESET also ends READONLY and a pending ASKING.
    conn.state.readonly = false;
    conn.state.asking = false;
    builtin::reset(conn);
}
