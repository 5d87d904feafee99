//! Connection commands: the shared implementations from `vigil_resp::builtin`, listed in the
//! node's table.

use vigil_resp::builtin;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use super::{Handler, row};
use crate::dispatch::ConnState;

/// The connection family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "hello",
            -1,
            [NO_AUTH, FAST, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "connection",
            "Handshakes: protocol version, authentication, client name.",
            Conn(builtin::hello)
        ),
        row!(
            "auth",
            -2,
            [NO_AUTH, FAST, STALE],
            0,
            0,
            0,
            "connection",
            "Authenticates the connection.",
            Conn(builtin::auth)
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
            Conn(builtin::client)
        ),
        row!(
            "ping",
            -1,
            [FAST, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "connection",
            "Returns PONG.",
            Conn(builtin::ping)
        ),
        row!(
            "echo",
            2,
            [FAST, STALE],
            0,
            0,
            0,
            "connection",
            "Returns the message.",
            Conn(builtin::echo)
        ),
        row!(
            "quit",
            -1,
            [NO_AUTH, FAST, STALE, SUBSCRIBED, UNQUEUED],
            0,
            0,
            0,
            "connection",
            "Closes the connection.",
            Conn(builtin::quit)
        ),
        row!(
            "select",
            2,
            [FAST, STALE],
            0,
            0,
            0,
            "connection",
            "Selects the database.",
            Conn(builtin::select)
        ),
        row!(
            "readonly",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "cluster",
            "Enables reads from replicas (accepted for client compatibility).",
            Conn(ok)
        ),
        row!(
            "readwrite",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "cluster",
            "Disables READONLY (accepted for client compatibility).",
            Conn(ok)
        ),
        row!(
            "subscribe",
            -2,
            [PUBSUB, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "pubsub",
            "Subscribes to channels.",
            Conn(|c, a| builtin::subscribe(c, a, false))
        ),
        row!(
            "psubscribe",
            -2,
            [PUBSUB, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "pubsub",
            "Subscribes to channel patterns.",
            Conn(|c, a| builtin::subscribe(c, a, true))
        ),
        row!(
            "unsubscribe",
            -1,
            [PUBSUB, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "pubsub",
            "Unsubscribes from channels.",
            Conn(|c, a| builtin::unsubscribe(c, a, false))
        ),
        row!(
            "punsubscribe",
            -1,
            [PUBSUB, STALE, SUBSCRIBED],
            0,
            0,
            0,
            "pubsub",
            "Unsubscribes from channel patterns.",
            Conn(|c, a| builtin::unsubscribe(c, a, true))
        ),
        row!(
            "publish",
            3,
            [PUBSUB, FAST, STALE],
            0,
            0,
            0,
            "pubsub",
            "Posts a message to a channel.",
            Conn(builtin::publish)
        ),
        row!(
            "pubsub",
            -2,
            [PUBSUB, STALE],
            0,
            0,
            0,
            "pubsub",
            "Inspects pub/sub state.",
            Conn(builtin::pubsub)
        ),
        row!(
            "time",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "server",
            "Returns the server time.",
            Conn(time)
        ),
    ]
}

fn ok(conn: &mut Conn<ConnState>, _args: Args) {
    conn.reply(Reply::ok());
}

fn time(conn: &mut Conn<ConnState>, _args: Args) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    conn.reply(Reply::Array(vec![
        Reply::bulk_string(now.as_secs().to_string()),
        Reply::bulk_string(now.subsec_micros().to_string()),
    ]));
}
