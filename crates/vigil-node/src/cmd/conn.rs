//! Connection commands: the rows shared with the sentinel (`vigil_resp::connection`) and the
//! node's own (READONLY, READWRITE, PUBLISH, PUBSUB, TIME).

use vigil_resp::builtin;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::node::{Handler, row};
use crate::session::ConnState;

/// The connection family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    // The node answers CLIENT itself (client-side caching): see `cmd::client`.
    let shared = vigil_resp::connection::rows::<ConnState>()
        .into_iter()
        .filter(|(meta, _)| meta.name != "client")
        .map(|(meta, f)| (meta, Handler::Conn(f)));
    shared
        .chain([
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
        ])
        .collect()
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
