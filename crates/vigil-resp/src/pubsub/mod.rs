//! Pub/sub fan-out: channels, glob patterns and shard channels (Redis 7's sharded pub/sub,
//! `SSUBSCRIBE`) to subscribed connections. The commands are in [`commands`].
//!
//! A publisher never waits for a subscriber. Each subscriber has an unbounded queue whose byte
//! size is tracked; a subscriber that falls more than its output limit behind is disconnected,
//! as Redis does with `client-output-buffer-limit pubsub`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::glob;
use crate::reply::{Protocol, Reply};

pub mod commands;

/// The three subscription namespaces: a message published in one reaches only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// `SUBSCRIBE` / `PUBLISH`.
    Channel,
    /// `PSUBSCRIBE`: glob patterns over the channels of `Channel`.
    Pattern,
    /// `SSUBSCRIBE` / `SPUBLISH`: shard channels, which a cluster routes by their hash slot.
    Shard,
}

/// A message queued for one subscriber.
#[derive(Debug, Clone)]
pub enum Message {
    /// From a channel subscription.
    Message {
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// From a pattern subscription.
    PMessage {
        /// The matching pattern.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// From a shard channel subscription (`smessage`).
    SMessage {
        /// The shard channel.
        channel: Bytes,
        /// The payload.
        payload: Bytes,
    },
    /// The server ended this shard channel subscription (its slot moved to another shard):
    /// the connection forgets it and pushes `sunsubscribe`, as Redis Cluster does.
    SUnsubscribed(Bytes),
    /// A client-side caching invalidation (`CLIENT TRACKING`): these keys changed (`None`:
    /// everything, after a flush).
    Invalidate {
        /// The keys.
        keys: Option<Vec<Bytes>>,
        /// Sent on behalf of another client (`REDIRECT`): a RESP2 connection receives it as a
        /// `__redis__:invalidate` pub/sub message.
        redirected: bool,
    },
    /// The client a tracking connection redirects to has gone (RESP3 push
    /// `tracking-redir-broken`).
    RedirectBroken(u64),
    /// Bytes written as they are (`MONITOR` lines).
    Raw(Bytes),
}

impl Message {
    fn size(&self) -> usize {
        match self {
            Message::Message { channel, payload } | Message::SMessage { channel, payload } => {
                channel.len() + payload.len() + 32
            }
            Message::SUnsubscribed(channel) => channel.len() + 32,
            Message::PMessage {
                pattern,
                channel,
                payload,
            } => pattern.len() + channel.len() + payload.len() + 48,
            Message::Invalidate { keys, .. } => {
                keys.iter().flatten().map(|k| k.len() + 16).sum::<usize>() + 48
            }
            Message::RedirectBroken(_) => 48,
            Message::Raw(b) => b.len() + 16,
        }
    }
}

/// The sending side for one subscribed connection.
#[derive(Debug, Clone)]
pub struct Subscriber {
    tx: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
    kill: CancellationToken,
}

/// The receiving side, owned by the connection.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
}

impl Inbox {
    /// The next message.
    pub async fn recv(&mut self) -> Option<Message> {
        let m = self.rx.recv().await?;
        self.queued.fetch_sub(m.size(), Ordering::Relaxed);
        Some(m)
    }

    /// The next message if one is queued now.
    pub fn try_recv(&mut self) -> Option<Message> {
        let m = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(m.size(), Ordering::Relaxed);
        Some(m)
    }
}

/// Creates a subscriber/inbox pair; `kill` is cancelled if the subscriber falls behind.
pub fn subscriber(kill: CancellationToken) -> (Subscriber, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Subscriber {
            tx,
            queued: queued.clone(),
            kill,
        },
        Inbox { rx, queued },
    )
}

impl Subscriber {
    /// Queues a message; false if the subscriber is gone or was cut off for being too slow.
    fn deliver(&self, m: Message, limit: usize) -> bool {
        if self.kill.is_cancelled() {
            return false;
        }
        let size = m.size();
        let total = self.queued.fetch_add(size, Ordering::Relaxed) + size;
        if limit > 0 && total > limit {
            tracing::warn!(
                queued = total,
                limit,
                "pub/sub client over its output limit, disconnecting"
            );
            self.kill.cancel();
            return false;
        }
        self.tx.send(m).is_ok()
    }

    /// Queues a message outside pub/sub (client-side caching invalidations); false if the
    /// connection is gone.
    pub fn send(&self, m: Message) -> bool {
        self.deliver(m, 0)
    }
}

type Subs = HashMap<Bytes, HashMap<u64, Subscriber>>;

/// Every subscription of the server.
#[derive(Debug, Default)]
pub struct Hub {
    channels: RwLock<Subs>,
    patterns: RwLock<Subs>,
    shard: RwLock<Subs>,
    /// Per-subscriber output limit in bytes (0: none).
    pub output_limit: AtomicUsize,
}

impl Hub {
    /// An empty hub with the given per-subscriber output limit.
    pub fn new(output_limit: usize) -> Self {
        Hub {
            output_limit: AtomicUsize::new(output_limit),
            ..Default::default()
        }
    }

    fn space(&self, space: Space) -> &RwLock<Subs> {
        match space {
            Space::Channel => &self.channels,
            Space::Pattern => &self.patterns,
            Space::Shard => &self.shard,
        }
    }

    /// Adds a subscription; returns false if it already existed.
    pub fn subscribe(&self, space: Space, name: Bytes, id: u64, sub: &Subscriber) -> bool {
        self.space(space)
            .write()
            .entry(name)
            .or_default()
            .insert(id, sub.clone())
            .is_none()
    }

    /// Removes one subscription; returns whether it existed.
    pub fn unsubscribe(&self, space: Space, name: &Bytes, id: u64) -> bool {
        let mut m = self.space(space).write();
        let Some(subs) = m.get_mut(name) else {
            return false;
        };
        let had = subs.remove(&id).is_some();
        if subs.is_empty() {
            m.remove(name);
        }
        had
    }

    /// Publishes; returns the number of subscriptions that received it.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let limit = self.output_limit.load(Ordering::Relaxed);
        let mut n = 0;
        if let Some(subs) = self.channels.read().get(channel) {
            for s in subs.values() {
                let m = Message::Message {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                n += s.deliver(m, limit) as usize;
            }
        }
        for (pattern, subs) in self.patterns.read().iter() {
            if glob::matches(pattern, channel) {
                for s in subs.values() {
                    let m = Message::PMessage {
                        pattern: pattern.clone(),
                        channel: channel.clone(),
                        payload: payload.clone(),
                    };
                    n += s.deliver(m, limit) as usize;
                }
            }
        }
        n
    }

    /// `SPUBLISH`: to the subscribers of one shard channel; returns how many received it.
    pub fn spublish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let limit = self.output_limit.load(Ordering::Relaxed);
        let Some(subs) = self.shard.read().get(channel).cloned() else {
            return 0;
        };
        subs.values()
            .map(|s| {
                let m = Message::SMessage {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                s.deliver(m, limit) as usize
            })
            .sum()
    }

    /// Ends every shard channel subscription whose channel `gone` selects (its slot left this
    /// node's shard); each subscriber is told (`sunsubscribe`). Returns how many channels.
    pub fn end_shard_channels(&self, gone: impl Fn(&[u8]) -> bool) -> usize {
        let ended: Vec<(Bytes, HashMap<u64, Subscriber>)> = {
            let mut m = self.shard.write();
            let names: Vec<Bytes> = m.keys().filter(|c| gone(c)).cloned().collect();
            names
                .into_iter()
                .filter_map(|c| m.remove(&c).map(|subs| (c, subs)))
                .collect()
        };
        for (channel, subs) in &ended {
            for s in subs.values() {
                s.send(Message::SUnsubscribed(channel.clone()));
            }
        }
        ended.len()
    }

    /// The clients among `ids` with a subscription `allowed` refuses (channel or pattern,
    /// is-pattern): ACL changes disconnect them.
    pub fn refused_subscribers(
        &self,
        ids: &std::collections::HashSet<u64>,
        allowed: impl Fn(&[u8], bool) -> bool,
    ) -> std::collections::HashSet<u64> {
        let mut out = std::collections::HashSet::new();
        let spaces = [
            (false, &self.channels),
            (true, &self.patterns),
            (false, &self.shard),
        ];
        for (pattern, map) in spaces {
            for (name, subs) in map.read().iter() {
                if subs.keys().any(|id| ids.contains(id)) && !allowed(name, pattern) {
                    out.extend(subs.keys().filter(|id| ids.contains(id)));
                }
            }
        }
        out
    }

    /// `PUBSUB CHANNELS [pattern]` (`Channel`) and `PUBSUB SHARDCHANNELS [pattern]` (`Shard`).
    pub fn channels(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.space(space)
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c)))
            .cloned()
            .collect()
    }

    /// `PUBSUB NUMSUB` (`Channel`) and `SHARDNUMSUB` (`Shard`): subscribers of one channel.
    pub fn numsub(&self, space: Space, channel: &[u8]) -> usize {
        self.space(space).read().get(channel).map_or(0, |s| s.len())
    }

    /// `PUBSUB NUMPAT`: number of distinct patterns.
    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }
}

/// How a queued message reaches the client; `None` when it cannot (an invalidation for a RESP2
/// connection that is not a subscribed redirect target, as in Redis).
pub(crate) fn push_reply(m: Message, proto: Protocol, subscribed: bool) -> Option<Reply> {
    Some(match m {
        Message::Message { channel, payload } => Reply::Push(vec![
            Reply::bulk_static("message"),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        Message::PMessage {
            pattern,
            channel,
            payload,
        } => Reply::Push(vec![
            Reply::bulk_static("pmessage"),
            Reply::Bulk(pattern),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        Message::SMessage { channel, payload } => Reply::Push(vec![
            Reply::bulk_static("smessage"),
            Reply::Bulk(channel),
            Reply::Bulk(payload),
        ]),
        // The connection handles it (it must forget the subscription): see `commands`.
        Message::SUnsubscribed(_) => return None,
        Message::Invalidate { keys, redirected } => {
            let keys = keys.map_or(Reply::Nil, |k| {
                Reply::Array(k.into_iter().map(Reply::Bulk).collect())
            });
            if proto == Protocol::Resp3 {
                Reply::Push(vec![Reply::bulk_static("invalidate"), keys])
            } else if redirected && subscribed {
                Reply::Push(vec![
                    Reply::bulk_static("message"),
                    Reply::bulk_static("__redis__:invalidate"),
                    keys,
                ])
            } else {
                return None;
            }
        }
        Message::RedirectBroken(id) if proto == Protocol::Resp3 => Reply::Push(vec![
            Reply::bulk_static("tracking-redir-broken"),
            Reply::Int(id as i64),
        ]),
        Message::RedirectBroken(_) => return None,
        Message::Raw(b) => Reply::Encoded(b),
    })
}
