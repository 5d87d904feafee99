//! Keyspace notifications (`notify-keyspace-events`): the classes a command's events belong
//! to, the events collected while a command runs under the store lock, and their delivery
//! through the pub/sub hub once it has run, in the order they happened.
//!
//! The enabled classes live in the store ([`Notify::flags`]) so a command checks them under
//! the lock it holds; with notifications off the check is one integer test and nothing is
//! collected.

use bytes::{BufMut, Bytes, BytesMut};
use vigil_resp::pubsub::Hub;

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: keys deleted by expiry.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: keys evicted (none: the node does not evict).
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub const STREAM: u32 = 1 << 10;
/// `m`: reads of missing keys (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (none: the node has no modules).
pub const MODULE: u32 = 1 << 12;
/// `n`: keys created (not part of `A`).
pub const NEW: u32 = 1 << 13;
/// `A`.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses the class letters of `notify-keyspace-events` (already checked by CONFIG); unknown
/// letters are ignored.
pub fn parse_flags(classes: &str) -> u32 {
    classes.chars().fold(0, |f, c| {
        f | match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => 0,
        }
    })
}

/// One event: what happened to which key of which database.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The database.
    pub db: usize,
    /// The event name (`set`, `lpush`, `expired`...).
    pub name: &'static str,
    /// The key.
    pub key: Bytes,
}

/// The notification state of a store.
#[derive(Debug, Default)]
pub struct Notify {
    /// The enabled classes; 0 unless `K` or `E` is set along with some class.
    flags: u32,
    /// Events not yet published.
    pending: Vec<Event>,
}

impl Notify {
    /// Follows `notify-keyspace-events`.
    pub fn configure(&mut self, classes: &str) {
        let f = parse_flags(classes);
        let channels = f & (KEYSPACE | KEYEVENT) != 0;
        self.flags = if channels && f & !(KEYSPACE | KEYEVENT) != 0 {
            f
        } else {
            0
        };
    }

    /// Whether events of `class` are published.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        self.flags & class != 0
    }

    /// Records an event of `class`, if that class is enabled.
    #[inline]
    pub fn event(&mut self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        if self.flags & class != 0 {
            self.pending.push(Event {
                db,
                name,
                key: Bytes::copy_from_slice(key),
            });
        }
    }

    /// Whether events wait to be published.
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the events not yet published, in order.
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
    }

    /// Publishes the pending events through `hub`, in order: for each, the keyspace channel
    /// first, then the keyevent channel, as Redis does.
    pub fn publish(&mut self, hub: &Hub) {
        if self.pending.is_empty() {
            return;
        }
        let (space, event) = (self.wants(KEYSPACE), self.wants(KEYEVENT));
        for e in self.pending.drain(..) {
            if space {
                let ch = channel("__keyspace@", e.db, &e.key);
                hub.publish(&ch, &Bytes::from_static(e.name.as_bytes()));
            }
            if event {
                let ch = channel("__keyevent@", e.db, e.name.as_bytes());
                hub.publish(&ch, &e.key);
            }
        }
    }
}

/// `<prefix><db>__:<tail>`.
fn channel(prefix: &str, db: usize, tail: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(prefix.len() + 8 + tail.len());
    b.put_slice(prefix.as_bytes());
    b.put_slice(itoa::Buffer::new().format(db).as_bytes());
    b.put_slice(b"__:");
    b.put_slice(tail);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_need_a_channel_and_a_class() {
        let mut n = Notify::default();
        n.configure("KEA");
        assert!(n.wants(STRING) && n.wants(EXPIRED) && !n.wants(KEY_MISS) && !n.wants(NEW));
        n.configure("A");
        assert!(!n.wants(STRING));
        n.configure("K");
        assert!(!n.wants(KEYSPACE));
        n.configure("Exnm");
        assert!(n.wants(EXPIRED) && n.wants(NEW) && n.wants(KEY_MISS) && !n.wants(GENERIC));
        n.event(GENERIC, "del", 0, b"k");
        n.event(EXPIRED, "expired", 3, b"k");
        assert_eq!(
            n.take(),
            vec![Event {
                db: 3,
                name: "expired",
                key: Bytes::from_static(b"k")
            }]
        );
    }

    #[test]
    fn channel_names() {
        assert_eq!(
            &channel("__keyspace@", 12, b"k:1")[..],
            b"__keyspace@12__:k:1"
        );
    }
}
