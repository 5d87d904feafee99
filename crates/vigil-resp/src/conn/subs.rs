//! A connection's subscriptions: its counts and sets per namespace, its inbox, and what the
//! client registry shows of them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::Conn;
use crate::pubsub::{self, Subscriber};

impl<S> Conn<S> {
    /// The number of subscriptions (channels, patterns and shard channels): the connection is
    /// in subscribed mode while it has any.
    pub fn subscription_count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The subscriptions of one namespace.
    pub fn subscriptions(&mut self, space: pubsub::Space) -> &mut HashSet<Bytes> {
        match space {
            pubsub::Space::Channel => &mut self.channels,
            pubsub::Space::Pattern => &mut self.patterns,
            pubsub::Space::Shard => &mut self.shard_channels,
        }
    }

    /// The subscriber handle (the connection's inbox), created on first use.
    pub fn subscriber(&mut self) -> Subscriber {
        if let Some((s, _)) = &self.sub {
            return s.clone();
        }
        let (s, inbox) = pubsub::subscriber(self.info.kill.clone());
        *self.info.inbox.lock() = Some(s.clone());
        self.sub = Some((s.clone(), inbox));
        s
    }

    /// Updates the registry's view of the subscriptions.
    pub fn sync_subscription_info(&self) {
        self.info
            .subscriptions
            .store(self.subscription_count(), Ordering::Relaxed);
        let mut d = self.info.details.lock();
        d.sub = self.channels.len();
        d.psub = self.patterns.len();
        d.ssub = self.shard_channels.len();
    }
}
