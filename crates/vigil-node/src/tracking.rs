//! Client-side caching: `CLIENT TRACKING` and the invalidation messages it sends.
//!
//! Two modes, as in Redis. In the default mode the node remembers which clients read which keys
//! (the tracking table) and, when such a key is modified, tells exactly those clients once and
//! forgets them. In broadcast mode (`BCAST`) a client names key prefixes and hears about every
//! modified key under them, whoever read it.
//!
//! The invariant: every modification a command makes goes through [`crate::db::Db::touch`] (or
//! `clear`), which calls [`Tracking::invalidate`] under the store lock, so no write escapes a
//! client that cached the key. Messages go to the client's inbox (or its redirect target's) and
//! are written after the reply being built, as Redis writes them after the command's reply.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use vigil_resp::conn::Shared;
use vigil_resp::pubsub::{Message, Subscriber};

/// Redis' default `tracking-table-max-keys`.
const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// How a client tracks (`CLIENT TRACKING ON …` options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mode {
    /// Broadcast mode with these prefixes (empty prefix: every key).
    pub bcast: Option<Vec<Bytes>>,
    /// Only reads after `CLIENT CACHING yes` are tracked.
    pub optin: bool,
    /// Reads after `CLIENT CACHING no` are not tracked.
    pub optout: bool,
    /// No messages about the client's own writes.
    pub noloop: bool,
    /// The client whose connection receives the messages (0: this one).
    pub redirect: u64,
}

#[derive(Debug)]
struct Tracker {
    mode: Mode,
    own: Subscriber,
    /// The connected clients, where the redirect target is looked up at each message (it may
    /// subscribe, or leave, after tracking was enabled).
    clients: Option<Arc<Shared>>,
    broken: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Default mode: key → clients that read it since its last modification.
    keys: HashMap<Bytes, HashSet<u64>>,
    clients: HashMap<u64, Tracker>,
    /// Broadcast mode: prefix → clients.
    prefixes: BTreeMap<Bytes, HashSet<u64>>,
    /// Broadcast keys modified by the command running now, with the writer (for NOLOOP).
    pending: Vec<(Bytes, u64)>,
    /// The command running now flushed a database (FLUSHALL clears each: one message).
    flushed: bool,
    max_keys: usize,
    /// The (key, client) pairs in `keys`, kept as they change: `INFO` reads it without
    /// walking a table of up to `tracking-table-max-keys` keys under the lock.
    items: usize,
}

/// The node's tracking state, shared by every database of the store.
#[derive(Debug)]
pub struct Tracking {
    /// Tracking clients: zero makes every check on the write path one atomic load.
    active: AtomicUsize,
    /// The table holds keys: writes still drop them (and flushes clear them) after the last
    /// tracking client has gone, as in Redis, so the table and `INFO`'s counts drain.
    remembered: AtomicBool,
    /// The client whose command is running (under the store lock), for NOLOOP.
    current: AtomicU64,
    inner: Mutex<Inner>,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            active: AtomicUsize::new(0),
            remembered: AtomicBool::new(false),
            current: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                max_keys: DEFAULT_MAX_KEYS,
                ..Inner::default()
            }),
        }
    }
}

/// Why `CLIENT TRACKING ON` was refused (Redis' wording).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackingError {
    /// BCAST on ↔ off while tracking.
    #[error(
        "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."
    )]
    SwitchBcast,
    /// OPTIN ↔ OPTOUT while tracking.
    #[error(
        "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."
    )]
    SwitchOpt,
    /// A new prefix overlaps one the client already has.
    #[error(
        "ERR Prefix '{0}' overlaps with an existing prefix '{1}'. Prefixes for a single client must not overlap."
    )]
    Overlap(String, String),
    /// Two new prefixes overlap each other.
    #[error(
        "ERR Prefix '{0}' overlaps with another provided prefix '{1}'. Prefixes for a single client must not overlap."
    )]
    OverlapNew(String, String),
}

fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

impl Tracking {
    /// Whether any client tracks.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Whether a modified key or a flush concerns the table: a client tracks, or the table
    /// still holds keys read while one did.
    pub fn in_use(&self) -> bool {
        self.active() || self.remembered.load(Ordering::Relaxed)
    }

    /// Clients tracking now (`INFO`'s `tracking_clients`).
    pub fn clients(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Names the client whose command runs now (call under the store lock; 0: none, as when
    /// applying a master's stream).
    pub fn set_current(&self, id: u64) {
        if self.active() {
            self.current.store(id, Ordering::Relaxed);
        }
    }

    /// Sets `tracking-table-max-keys` (0: unlimited).
    pub fn set_max_keys(&self, n: usize) {
        self.inner.lock().max_keys = n;
    }

    /// Number of keys in the tracking table (`INFO`'s `tracking_total_keys`).
    pub fn total_keys(&self) -> usize {
        self.inner.lock().keys.len()
    }

    /// `INFO`'s `tracking_total_keys`, `tracking_total_items` (key and client pairs) and
    /// `tracking_total_prefixes`.
    pub fn totals(&self) -> (usize, usize, usize) {
        let inner = self.inner.lock();
        (inner.keys.len(), inner.items, inner.prefixes.len())
    }

    /// Turns tracking on (or changes its options) for client `id`; `own` is its inbox and
    /// `clients` the registry its redirect target (if any) is found in.
    pub fn enable(
        &self,
        id: u64,
        mode: Mode,
        own: Subscriber,
        clients: Option<Arc<Shared>>,
    ) -> Result<(), TrackingError> {
        let mut inner = self.inner.lock();
        let mut mode = mode;
        if let Some(old) = inner.clients.get(&id) {
            if old.mode.bcast.is_some() != mode.bcast.is_some() {
                return Err(TrackingError::SwitchBcast);
            }
            if (mode.optin && old.mode.optout) || (mode.optout && old.mode.optin) {
                return Err(TrackingError::SwitchOpt);
            }
        }
        if let Some(new) = &mode.bcast {
            let old: &[Bytes] = inner
                .clients
                .get(&id)
                .and_then(|t| t.mode.bcast.as_deref())
                .unwrap_or(&[]);
            let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            for (i, p) in new.iter().enumerate() {
                if let Some(o) = old.iter().find(|o| overlaps(o, p)) {
                    return Err(TrackingError::Overlap(lossy(p), lossy(o)));
                }
                if let Some(q) = new[i + 1..].iter().find(|q| overlaps(p, q)) {
                    return Err(TrackingError::OverlapNew(lossy(p), lossy(q)));
                }
            }
            // Prefixes accumulate over repeated `ON … BCAST PREFIX` calls, as in Redis.
            let mut all = old.to_vec();
            all.extend(new.iter().cloned());
            if all.is_empty() {
                all.push(Bytes::new());
            }
            all.dedup();
            for p in &all {
                inner.prefixes.entry(p.clone()).or_default().insert(id);
            }
            mode.bcast = Some(all);
        }
        let t = Tracker {
            mode,
            own,
            clients,
            broken: false,
        };
        if inner.clients.insert(id, t).is_none() {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Turns tracking off for client `id` (`CLIENT TRACKING OFF`, disconnect).
    pub fn disable(&self, id: u64) {
        let mut inner = self.inner.lock();
        let Some(t) = inner.clients.remove(&id) else {
            return;
        };
        self.active.fetch_sub(1, Ordering::Relaxed);
        for p in t.mode.bcast.unwrap_or_default() {
            if let Some(set) = inner.prefixes.get_mut(&p) {
                set.remove(&id);
                if set.is_empty() {
                    inner.prefixes.remove(&p);
                }
            }
        }
    }

    /// The client's options, if it tracks.
    pub fn mode(&self, id: u64) -> Option<Mode> {
        self.inner.lock().clients.get(&id).map(|t| t.mode.clone())
    }

    /// Whether the client's redirect target has gone (`CLIENT TRACKINGINFO`'s
    /// `broken_redirect`).
    pub fn broken(&self, id: u64) -> bool {
        self.inner.lock().clients.get(&id).is_some_and(|t| t.broken)
    }

    /// Remembers that client `id` read `keys` (default mode).
    pub fn remember<'k>(&self, id: u64, keys: impl Iterator<Item = &'k Bytes>) {
        let mut inner = self.inner.lock();
        for k in keys {
            if inner.keys.entry(k.clone()).or_default().insert(id) {
                inner.items += 1;
            }
        }
        self.remembered
            .store(!inner.keys.is_empty(), Ordering::Relaxed);
        let max = inner.max_keys;
        if max > 0 && inner.keys.len() > max {
            // Over the limit: forget (and invalidate) keys until back under it, as Redis does.
            let evict: Vec<Bytes> = inner
                .keys
                .keys()
                .take(inner.keys.len() - max)
                .cloned()
                .collect();
            for k in evict {
                Self::invalidate_tracked(&mut inner, &k, 0);
            }
        }
    }

    /// Called for every modified key, under the store lock.
    pub fn invalidate(&self, key: &[u8]) {
        let writer = self.current.load(Ordering::Relaxed);
        let mut inner = self.inner.lock();
        if !inner.prefixes.is_empty() {
            let key_b = Bytes::copy_from_slice(key);
            if inner.prefixes.keys().any(|p| key.starts_with(p.as_ref())) {
                inner.pending.push((key_b, writer));
            }
        }
        if inner.keys.contains_key(key) {
            Self::invalidate_tracked(&mut inner, key, writer);
            self.remembered
                .store(!inner.keys.is_empty(), Ordering::Relaxed);
        }
    }

    fn invalidate_tracked(inner: &mut Inner, key: &[u8], writer: u64) {
        let Some(ids) = inner.keys.remove(key) else {
            return;
        };
        inner.items -= ids.len();
        let key = Bytes::copy_from_slice(key);
        for id in ids {
            let Some(t) = inner.clients.get_mut(&id) else {
                continue;
            };
            // A client that switched to BCAST hears only about its prefixes.
            if t.mode.bcast.is_some() || (t.mode.noloop && id == writer && writer != 0) {
                continue;
            }
            send(t, Some(vec![key.clone()]));
        }
    }

    /// A database was flushed by the command running now: [`Tracking::flush`] tells every
    /// tracking client once.
    pub fn note_flush(&self) {
        if self.in_use() {
            let mut inner = self.inner.lock();
            inner.keys.clear();
            self.remembered.store(false, Ordering::Relaxed);
            inner.items = 0;
            inner.pending.clear();
            // Only tracking clients hear of it: none now, none told later.
            inner.flushed = self.active();
        }
    }

    /// After each command: sends the flush message, or the broadcast messages for the keys the
    /// command modified: one message per client and prefix, listing the keys (minus the
    /// client's own writes under NOLOOP).
    pub fn flush(&self) {
        if !self.active() {
            return;
        }
        let mut inner = self.inner.lock();
        if std::mem::take(&mut inner.flushed) {
            inner.pending.clear();
            for t in inner.clients.values_mut() {
                send(t, None);
            }
            return;
        }
        if inner.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut inner.pending);
        let Inner {
            prefixes, clients, ..
        } = &mut *inner;
        for (prefix, ids) in prefixes.iter() {
            let under: Vec<&(Bytes, u64)> = pending
                .iter()
                .filter(|(k, _)| k.starts_with(prefix.as_ref()))
                .collect();
            if under.is_empty() {
                continue;
            }
            for id in ids {
                let Some(t) = clients.get_mut(id) else {
                    continue;
                };
                let mut keys: Vec<Bytes> = Vec::new();
                for (k, w) in &under {
                    let own = t.mode.noloop && w == id;
                    if !own && !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
                if !keys.is_empty() {
                    send(t, Some(keys));
                }
            }
        }
    }

    /// A full resync: every tracking client is told to drop everything (a null message) and
    /// the table starts empty.
    pub fn invalidate_all(&self) {
        self.note_flush();
        self.flush();
    }
}

/// Queues one invalidation message for a tracking client, on its redirect target's connection
/// if it has one; a redirect target that has gone is reported to the client itself.
fn send(t: &mut Tracker, keys: Option<Vec<Bytes>>) {
    let redirect = t.mode.redirect;
    let Some(clients) = t.clients.as_ref().filter(|_| redirect != 0) else {
        t.own.send(Message::Invalidate {
            keys,
            redirected: false,
        });
        return;
    };
    match clients.clients.get(redirect) {
        Some(target) => {
            // A target without an inbox (RESP2, not subscribed) cannot receive it, as in Redis.
            let inbox = target.inbox.lock().clone();
            if let Some(inbox) = inbox
                && !inbox.send(Message::Invalidate {
                    keys,
                    redirected: true,
                })
            {
                // The target's connection ended before it left the registry.
                t.broken = true;
                t.own.send(Message::RedirectBroken(redirect));
            }
        }
        None => {
            t.broken = true;
            t.own.send(Message::RedirectBroken(redirect));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn inbox() -> (Subscriber, vigil_resp::pubsub::Inbox) {
        vigil_resp::pubsub::subscriber(CancellationToken::new())
    }

    fn keys_of(m: Message) -> Option<Vec<Bytes>> {
        match m {
            Message::Invalidate { keys, .. } => keys,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn default_mode_tells_readers_once() {
        let t = Tracking::default();
        let (s, mut rx) = inbox();
        t.enable(7, Mode::default(), s, None).unwrap();
        t.remember(7, [Bytes::from("a")].iter());
        t.set_current(9);
        t.invalidate(b"a");
        t.invalidate(b"a");
        assert_eq!(
            keys_of(rx.recv().await.unwrap()),
            Some(vec![Bytes::from("a")])
        );
        assert!(
            rx.try_recv().is_none(),
            "a key is invalidated once per read"
        );
    }

    #[test]
    fn totals_follow_reads_invalidations_evictions_and_flushes() {
        let t = Tracking::default();
        for id in [1, 2] {
            t.enable(id, Mode::default(), inbox().0, None).unwrap();
        }
        let (a, b, c) = (Bytes::from("a"), Bytes::from("b"), Bytes::from("c"));
        t.remember(1, [a.clone(), b.clone()].iter());
        t.remember(2, [a.clone(), a.clone()].iter());
        assert_eq!(
            t.totals(),
            (2, 3, 0),
            "a read twice by one client is one item"
        );
        t.invalidate(b"a");
        assert_eq!(t.totals(), (1, 1, 0));
        t.invalidate(b"zzz");
        assert_eq!(t.totals(), (1, 1, 0), "an untracked key changes nothing");
        t.set_max_keys(1);
        t.remember(2, [c.clone()].iter());
        assert_eq!(t.totals().0, 1, "over the limit a key is forgotten");
        assert_eq!(t.totals().1, 1);
        t.remember(1, [b, c].iter());
        t.note_flush();
        assert_eq!(t.totals(), (0, 0, 0));
        // With every tracking client gone, writes and flushes still drain the table.
        t.set_max_keys(0);
        t.remember(1, [Bytes::from("x"), Bytes::from("y")].iter());
        t.disable(1);
        t.disable(2);
        assert!(!t.active() && t.in_use());
        t.invalidate(b"x");
        assert_eq!(t.totals(), (1, 1, 0));
        t.note_flush();
        assert_eq!(t.totals(), (0, 0, 0));
        assert!(!t.in_use());
    }

    #[tokio::test]
    async fn noloop_skips_own_writes_and_bcast_batches() {
        let t = Tracking::default();
        let (s, mut rx) = inbox();
        let mode = Mode {
            bcast: Some(vec![Bytes::from("p:")]),
            noloop: true,
            ..Mode::default()
        };
        t.enable(1, mode, s, None).unwrap();
        t.set_current(1);
        t.invalidate(b"p:mine");
        t.set_current(2);
        t.invalidate(b"p:x");
        t.invalidate(b"q:y");
        t.invalidate(b"p:z");
        t.flush();
        assert_eq!(
            keys_of(rx.recv().await.unwrap()),
            Some(vec![Bytes::from("p:x"), Bytes::from("p:z")])
        );
    }

    #[test]
    fn overlapping_prefixes_are_refused() {
        let t = Tracking::default();
        let (s, _rx) = inbox();
        let mode = |p: &[&str]| Mode {
            bcast: Some(p.iter().map(|p| Bytes::from(p.to_string())).collect()),
            ..Mode::default()
        };
        assert_eq!(
            t.enable(1, mode(&["ab", "a"]), s.clone(), None),
            Err(TrackingError::OverlapNew("ab".into(), "a".into()))
        );
        t.enable(1, mode(&["ab"]), s.clone(), None).unwrap();
        assert_eq!(
            t.enable(1, mode(&["abc"]), s.clone(), None),
            Err(TrackingError::Overlap("abc".into(), "ab".into()))
        );
        assert_eq!(
            t.enable(1, Mode::default(), s, None),
            Err(TrackingError::SwitchBcast)
        );
    }
}
