//! The pub/sub commands a connection runs against the hub: (P|S)SUBSCRIBE,
//! (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB, with Redis 7.0's replies.
//!
//! The count in a (un)subscribe reply is, as in Redis 7.0, the connection's channels plus
//! patterns for the first two namespaces and its shard channels for the third; the connection
//! stays in subscribed mode while it has any of the three.

use bytes::Bytes;

use super::Space;
use crate::args::{Args, lossy_lower};
use crate::conn::Conn;
use crate::reply::Reply;

fn names(space: Space) -> (&'static str, &'static str) {
    match space {
        Space::Channel => ("subscribe", "unsubscribe"),
        Space::Pattern => ("psubscribe", "punsubscribe"),
        Space::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

fn sub_reply<S>(conn: &mut Conn<S>, space: Space, kind: &'static str, name: Option<Bytes>) {
    let count = match space {
        Space::Shard => conn.shard_channels.len(),
        _ => conn.channels.len() + conn.patterns.len(),
    } as i64;
    let name = name.map(Reply::Bulk).unwrap_or(Reply::Nil);
    conn.reply(Reply::Push(vec![
        Reply::bulk_static(kind),
        name,
        Reply::Int(count),
    ]));
}

/// `SUBSCRIBE channel ...`, `PSUBSCRIBE pattern ...` and `SSUBSCRIBE shardchannel ...`.
pub fn subscribe<S>(conn: &mut Conn<S>, mut args: Args, space: Space) {
    let sub = conn.subscriber();
    let id = conn.info.id;
    while let Some(name) = args.next() {
        if conn.subscriptions(space).insert(name.clone()) {
            conn.shared
                .hub_for(conn.tls)
                .subscribe(space, name.clone(), id, &sub);
        }
        conn.sync_subscription_info();
        sub_reply(conn, space, names(space).0, Some(name));
    }
}

/// `UNSUBSCRIBE [channel ...]`, `PUNSUBSCRIBE [pattern ...]` and
/// `SUNSUBSCRIBE [shardchannel ...]`.
pub fn unsubscribe<S>(conn: &mut Conn<S>, mut args: Args, space: Space) {
    if args.is_empty() {
        unsubscribe_all(conn, space, true);
        return;
    }
    let id = conn.info.id;
    while let Some(name) = args.next() {
        if conn.subscriptions(space).remove(&name) {
            conn.shared.hub_for(conn.tls).unsubscribe(space, &name, id);
        }
        conn.sync_subscription_info();
        sub_reply(conn, space, names(space).1, Some(name));
    }
}

/// A shard channel subscription the server ended (its slot moved away): forgotten, and
/// `sunsubscribe` pushed with the count left.
pub fn shard_channel_ended<S>(conn: &mut Conn<S>, channel: Bytes) {
    if conn.shard_channels.remove(&channel) {
        conn.sync_subscription_info();
        sub_reply(conn, Space::Shard, "sunsubscribe", Some(channel));
    }
}

fn unsubscribe_all<S>(conn: &mut Conn<S>, space: Space, notify: bool) {
    let kind = names(space).1;
    let all: Vec<Bytes> = conn.subscriptions(space).drain().collect();
    if all.is_empty() && notify {
        sub_reply(conn, space, kind, None);
    }
    for name in all {
        conn.shared
            .hub_for(conn.tls)
            .unsubscribe(space, &name, conn.info.id);
        conn.sync_subscription_info();
        if notify {
            sub_reply(conn, space, kind, Some(name));
        }
    }
    conn.sync_subscription_info();
}

/// Ends every subscription without a reply (RESET, a closing connection).
pub fn unsubscribe_everything<S>(conn: &mut Conn<S>) {
    for space in [Space::Channel, Space::Pattern, Space::Shard] {
        unsubscribe_all(conn, space, false);
    }
}

/// `PUBLISH channel message`.
pub fn publish<S>(conn: &mut Conn<S>, mut args: Args) {
    let channel = args.next().unwrap_or_default();
    let payload = args.next().unwrap_or_default();
    let n = conn.shared.hub_for(conn.tls).publish(&channel, &payload);
    conn.reply(Reply::Int(n as i64));
}

/// `PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | SHARDCHANNELS [pattern] |
/// SHARDNUMSUB [shardchannel ...]`.
pub fn pubsub<S>(conn: &mut Conn<S>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let sub = lossy_lower(&raw);
    let hub = conn.shared.hub_for(conn.tls);
    let numsub = |space: Space, channels: Vec<Bytes>| {
        let mut v = Vec::new();
        for ch in channels {
            let n = hub.numsub(space, &ch);
            v.push(Reply::Bulk(ch));
            v.push(Reply::Int(n as i64));
        }
        Reply::Array(v)
    };
    let r = match sub.as_str() {
        "channels" if args.remaining() <= 1 => {
            Reply::bulks(hub.channels(Space::Channel, args.next().as_deref()))
        }
        "shardchannels" if args.remaining() <= 1 => {
            Reply::bulks(hub.channels(Space::Shard, args.next().as_deref()))
        }
        "numsub" => numsub(Space::Channel, args.rest()),
        "shardnumsub" => numsub(Space::Shard, args.rest()),
        "numpat" if args.is_empty() => Reply::Int(hub.numpat() as i64),
        _ => crate::command::bad_subcommand(
            "pubsub",
            &raw,
            &[
                "channels",
                "numsub",
                "numpat",
                "shardchannels",
                "shardnumsub",
                "help",
            ],
        ),
    };
    conn.reply(r);
}
