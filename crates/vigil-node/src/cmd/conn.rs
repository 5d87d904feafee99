//! Connection commands: the rows shared with the sentinel (`vigil_resp::connection`) and the
//! node's own (READONLY, READWRITE, ASKING, PUBLISH, SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE,
//! PUBSUB, TIME). SELECT is the shared row with the node's handler (refused in cluster mode,
//! see `cmd::dbs::select`).

use vigil_resp::pubsub::{Space, commands};
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::node::{Handler, row};
use crate::session::ConnState;

/// The connection family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    // The node answers CLIENT itself (client-side caching): see `cmd::client`.
    let shared = vigil_resp::connection::rows::<ConnState>()
        .into_iter()
        .filter(|(meta, _)| meta.name != "client")
        .map(|(meta, f)| match meta.name {
            "select" => (meta, Handler::Node(super::dbs::select)),
            _ => (meta, Handler::Conn(f)),
        });
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
                "Enables read-only queries for a connection to a Redis Cluster replica node.",
                Conn(readonly)
            ),
            row!(
                "readwrite",
                1,
                [FAST, STALE],
                0,
                0,
                0,
                "cluster",
                "Enables read-write queries for a connection to a Redis Cluster replica node.",
                Conn(readwrite)
            ),
            row!(
                "asking",
                1,
                [FAST],
                0,
                0,
                0,
                "cluster",
                "Signals that a cluster client is following an -ASK redirect.",
                Conn(asking)
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
                Node(publish)
            ),
            row!(
                "ssubscribe",
                -2,
                [PUBSUB, NOSCRIPT, STALE, SUBSCRIBED],
                1,
                -1,
                1,
                "pubsub",
                "Listens for messages published to shard channels.",
                Conn(|c, a| commands::subscribe(c, a, Space::Shard))
            ),
            row!(
                "sunsubscribe",
                -1,
                [PUBSUB, NOSCRIPT, STALE, SUBSCRIBED],
                1,
                -1,
                1,
                "pubsub",
                "Stops listening to messages posted to shard channels.",
                Conn(|c, a| commands::unsubscribe(c, a, Space::Shard))
            ),
            row!(
                "spublish",
                3,
                [PUBSUB, FAST, STALE],
                1,
                1,
                1,
                "pubsub",
                "Post a message to a shard channel",
                Node(spublish)
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
                Conn(commands::pubsub)
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

/// READONLY: `+OK` in every mode (clients send it to any node); in cluster mode a replica then
/// serves this client's reads of its shard.
fn readonly(conn: &mut Conn<ConnState>, _args: Args) {
    conn.state.readonly = true;
    conn.reply(Reply::ok());
}

/// READWRITE: ends READONLY.
fn readwrite(conn: &mut Conn<ConnState>, _args: Args) {
    conn.state.readonly = false;
    conn.reply(Reply::ok());
}

/// ASKING: the next command (or transaction) may use an importing slot.
fn asking(conn: &mut Conn<ConnState>, _args: Args) {
    conn.state.asking = true;
    conn.state.asking_just_set = true;
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

/// `PUBLISH channel message`: to this node's subscribers, and in a sharded cluster to every
/// other node's (the reply counts this node's receivers only, as in Redis Cluster).
fn publish(node: &crate::node::Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let channel = args.next().unwrap_or_default();
    let message = args.next().unwrap_or_default();
    let n = conn.shared.hub_for(conn.tls).publish(&channel, &message);
    node.forward_publish(&channel, &message, false);
    conn.reply(Reply::Int(n as i64));
}

/// `SPUBLISH shardchannel message`: to this node's shard channel subscribers, and in a
/// sharded cluster to the other nodes of this node's shard only (the reply counts this node's
/// receivers, as in Redis Cluster).
fn spublish(node: &crate::node::Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let channel = args.next().unwrap_or_default();
    let message = args.next().unwrap_or_default();
    let n = conn.shared.hub_for(conn.tls).spublish(&channel, &message);
    node.forward_publish(&channel, &message, true);
    conn.reply(Reply::Int(n as i64));
}
