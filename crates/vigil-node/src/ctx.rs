//! The context data commands run in ([`Ctx`]: the locked store, the selected database, the
//! clock reading, what to propagate) and the helpers commands share (argument scanning,
//! replies). The bottom layer of the command side: it knows the keyspace, not the node.
//!
//! The invariant: a data command changes the store only through a `Ctx`, and every change it
//! makes is propagated (to the log and the replicas) by the `Ctx`, in the order it was made.

use bytes::Bytes;
use vigil_resp::{Args, CmdError, Reply};

use crate::db::{Db, Hash, List, Set, Store, Stream, Value, ZSet, boxed, notify};

/// A data command: runs under the store lock, returns its reply.
pub type DataFn = fn(&mut Ctx, &mut Args) -> Result<Reply, CmdError>;

/// A client that must wait for a key to be written (BLPOP and friends).
#[derive(Debug)]
pub struct Block {
    /// Keys whose writes wake the client.
    pub keys: Vec<Bytes>,
    /// Seconds to wait (0: forever).
    pub timeout: f64,
    /// The reply when the wait times out.
    pub on_timeout: Reply,
    /// The arguments to retry with, when they differ from the command as received (XREAD
    /// resolves `$` once, at the first attempt).
    pub retry: Option<Vec<Bytes>>,
}

/// One command propagated to the append log (and later replicas): database and arguments.
pub type Prop = (usize, Vec<Bytes>);

/// The context of a data command.
pub struct Ctx<'a> {
    /// The whole dataset.
    pub store: &'a mut Store,
    /// Selected database.
    pub db: usize,
    /// Now, unix milliseconds (expiry times are absolute wall-clock times, as in Redis).
    pub now: i64,
    /// Replaying the log: keys are never expired by lookups, so replay is deterministic.
    pub loading: bool,
    /// On a node that takes no writes (a replica): lookups hide expired keys without
    /// deleting them; the master's DEL arrives in the stream.
    pub hide_expired: bool,
    /// Whether the command may block (not inside MULTI, not while loading).
    pub may_block: bool,
    /// Run by a script's `redis.call` (XREAD refuses BLOCK there, as in Redis).
    pub in_script: bool,
    /// The client speaks RESP3 (pairs are nested arrays, scores are doubles).
    pub resp3: bool,
    /// Lookups leave keys' access times alone (`CLIENT NO-TOUCH`).
    pub no_touch: bool,
    /// The command reads keys (Redis' read lookups): lookups count as keyspace hits and
    /// misses, and a missing key is a `keymiss` event. Redis' write lookups (INCR, LPUSH, a
    /// `*STORE` destination) do neither.
    pub reads: bool,
    /// Set by a blocking command that found nothing to do.
    pub block: Option<Block>,
    /// This client's place in the blocked queues, once it waits.
    pub waiter: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The client's ACL user may not read every key: SORT refuses BY and GET patterns.
    pub partial_keys: bool,
    dirty: u64,
    rewrite: Option<Vec<Vec<Bytes>>>,
    props: &'a mut Vec<Prop>,
}

impl<'a> Ctx<'a> {
    /// A context on database `db`; propagated commands are appended to `props`.
    pub fn new(store: &'a mut Store, db: usize, now: i64, props: &'a mut Vec<Prop>) -> Self {
        Ctx {
            store,
            db,
            now,
            loading: false,
            hide_expired: false,
            may_block: false,
            in_script: false,
            resp3: false,
            no_touch: false,
            reads: false,
            block: None,
            waiter: None,
            partial_keys: false,
            dirty: 0,
            rewrite: None,
            props,
        }
    }

    /// The selected database.
    pub fn db(&mut self) -> &mut Db {
        &mut self.store.dbs[self.db]
    }

    /// Records `n` changes to the dataset.
    pub fn changed(&mut self, n: u64) {
        self.dirty += n;
    }

    /// Changes recorded by this command.
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// Propagates `cmd` instead of the command as received (deterministic rewrite). May be
    /// called several times; the commands are propagated in order.
    pub fn propagate(&mut self, cmd: Vec<Bytes>) {
        self.rewrite.get_or_insert_with(Vec::new).push(cmd);
    }

    /// After the command ran: propagates it (or its rewrite) if it changed anything.
    pub fn finish(&mut self, args: &Args) {
        if self.dirty == 0 {
            return;
        }
        self.store.dirty += self.dirty;
        match self.rewrite.take() {
            Some(cmds) => self.props.extend(cmds.into_iter().map(|c| (self.db, c))),
            None => self.props.push((self.db, args.all().to_vec())),
        }
        self.dirty = 0;
    }

    /// A keyspace notification of `class` (see [`crate::db::notify`]) about `key` in the
    /// selected database; nothing unless that class is enabled.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.store.notify.wants(class) {
            self.store.note_created();
            self.store.notify.event(class, event, self.db, key);
        }
    }

    /// [`Ctx::notify`] about `key` in database `db`.
    pub fn notify_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        if self.store.notify.wants(class) {
            self.store.note_created();
            self.store.notify.event(class, event, db, key);
        }
    }

    /// Deletes `key` if its expiry has passed (lazy expiry); returns whether it is now gone
    /// (deleted, or hidden on a node that takes no writes).
    pub fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        if self.loading {
            return false;
        }
        if !self.store.dbs[self.db].is_expired(key, self.now) {
            return false;
        }
        if self.hide_expired {
            return true;
        }
        let del = self.store.expire_key(self.db, key);
        self.props.push((self.db, del));
        true
    }

    /// The live value of a key, which counts as used.
    pub fn lookup(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.lookup_with(key, !self.no_touch)
    }

    /// The live value of a key, leaving its access time alone (TYPE, OBJECT: looking at a key
    /// is not using it).
    pub fn peek(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.lookup_with(key, false)
    }

    fn lookup_with(&mut self, key: &[u8], touch: bool) -> Option<&mut Value> {
        let gone = self.expire_if_needed(key);
        let store = &mut *self.store;
        let found = if gone {
            None
        } else {
            store.dbs[self.db].keys.get_index_of(key)
        };
        let Some(i) = found else {
            if !self.reads {
                return None;
            }
            store.misses += 1;
            if store.notify.wants(notify::KEY_MISS) {
                store.note_created();
                store
                    .notify
                    .event(notify::KEY_MISS, "keymiss", self.db, key);
            }
            return None;
        };
        let keys = &mut store.dbs[self.db].keys;
        if touch {
            keys.access_index(i);
        }
        if self.reads {
            store.hits += 1;
        }
        keys.get_index_mut(i).map(|(_, v)| v)
    }

    /// Whether a live key exists.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        !self.expire_if_needed(key) && self.store.dbs[self.db].keys.contains_key(key)
    }

    /// Whether a live key exists, looked up for a write as Redis' `lookupKeyWrite` looks
    /// before SET or MSET replaces a value: an existing key counts as used (its LFU counter
    /// may rise and is carried over to the new value), without the read statistics.
    pub fn exists_write(&mut self, key: &[u8]) -> bool {
        if self.expire_if_needed(key) {
            return false;
        }
        let keys = &mut self.store.dbs[self.db].keys;
        let Some(i) = keys.get_index_of(key) else {
            return false;
        };
        if !self.no_touch {
            keys.access_index(i);
        }
        true
    }

    /// Whether a live key exists, looked up as a read that leaves the access time alone
    /// (EXISTS, TTL: Redis reads the key): a keyspace hit or miss, and a missing key is a
    /// `keymiss` event.
    pub fn exists_read(&mut self, key: &[u8]) -> bool {
        let found = self.exists(key);
        if self.reads {
            if found {
                self.store.hits += 1;
            } else {
                self.store.misses += 1;
                self.notify(notify::KEY_MISS, "keymiss", key);
            }
        }
        found
    }

    /// Deletes a key; returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.expire_if_needed(key);
        let db = self.db();
        if db.remove(key).is_some() {
            db.touch(key);
            self.changed(1);
            true
        } else {
            false
        }
    }

    /// Gives an existing key an absolute expiry, propagated as `PEXPIREAT`; a time already past
    /// deletes the key (propagated as `DEL`), as Redis does outside of loading.
    pub fn expire_at(&mut self, key: &Bytes, at: i64) {
        if at <= self.now && !self.loading {
            self.delete(key);
            self.propagate(argv([b"DEL", key]));
            self.notify(notify::GENERIC, "del", key);
        } else {
            let db = self.db();
            db.set_expire(key, at);
            db.touch(key);
            self.changed(1);
            self.propagate(vec![
                Bytes::from_static(b"PEXPIREAT"),
                key.clone(),
                int_arg(at),
            ]);
            self.notify(notify::GENERIC, "expire", key);
        }
    }

    /// Blocked clients ahead of this one on `key`.
    pub fn waiters_ahead(&self, key: &[u8]) -> usize {
        self.store.dbs[self.db].waiters_ahead(key, self.waiter.as_ref())
    }

    /// Whether this client waits in the queue of blocked clients of `key`.
    pub fn is_queued_on(&self, key: &[u8]) -> bool {
        let db = &self.store.dbs[self.db];
        self.waiter.as_ref().is_some_and(|me| {
            db.blocked
                .get(key)
                .is_some_and(|q| q.iter().any(|w| std::sync::Arc::ptr_eq(w, me)))
        })
    }

    /// Deletes the key if it holds an empty aggregate (Redis never keeps empty ones); returns
    /// whether it did.
    pub fn remove_if_empty(&mut self, key: &[u8]) -> bool {
        let db = self.db();
        if db.keys.get(key).is_some_and(|v| v.is_empty_aggregate()) {
            db.remove(key);
            true
        } else {
            false
        }
    }

    /// After elements were taken from an aggregate: deletes it if empty, then announces
    /// `event` and, if it went, `del` (Redis' order).
    pub fn took_from(&mut self, class: u32, event: &'static str, key: &[u8]) {
        let gone = self.remove_if_empty(key);
        self.notify(class, event, key);
        if gone {
            self.notify(notify::GENERIC, "del", key);
        }
    }

    /// A string value.
    pub fn get_str(&mut self, key: &[u8]) -> Result<Option<&[u8]>, CmdError> {
        match self.lookup(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(&s[..])),
            Some(_) => Err(CmdError::WrongType),
        }
    }
}

/// Generates typed accessors: `get_x` (existing value or none) and `x_or_new` (created empty).
macro_rules! typed_access {
    ($get:ident, $create:ident, $variant:ident, $ty:ty, $new:expr) => {
        typed_access!($get, $create, $variant, $ty, Box::new($new), |v| &mut **v);
    };
    // A value held in the enum itself (a small hash, set or sorted set is one buffer pointer).
    ($get:ident, $create:ident, $variant:ident, $ty:ty, $new:expr, inline) => {
        typed_access!($get, $create, $variant, $ty, $new, |v| v);
    };
    ($get:ident, $create:ident, $variant:ident, $ty:ty, $new:expr, |$v:ident| $deref:expr) => {
        impl<'a> Ctx<'a> {
            /// The value if the key holds this type; `WRONGTYPE` if another.
            pub fn $get(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, CmdError> {
                match self.lookup(key) {
                    None => Ok(None),
                    Some(Value::$variant($v)) => Ok(Some($deref)),
                    Some(_) => Err(CmdError::WrongType),
                }
            }

            /// The value, created empty if the key is missing; `WRONGTYPE` if another type.
            pub fn $create(&mut self, key: &[u8]) -> Result<&mut $ty, CmdError> {
                self.expire_if_needed(key);
                let keys = &mut self.store.dbs[self.db].keys;
                // One hash lookup when the key exists (the common case on a hot key).
                let i = match keys.get_index_of(key) {
                    Some(i) => {
                        if !self.no_touch {
                            keys.access_index(i);
                        }
                        i
                    }
                    None => keys.insert_full(boxed(key), Value::$variant($new)).0,
                };
                match keys.get_index_mut(i) {
                    Some((_, Value::$variant($v))) => Ok($deref),
                    _ => Err(CmdError::WrongType),
                }
            }
        }
    };
}

typed_access!(get_list, list_or_new, List, List, List::new());
typed_access!(get_hash, hash_or_new, Hash, Hash, Hash::default(), inline);
typed_access!(get_set, set_or_new, Set, Set, Set::default(), inline);
typed_access!(get_zset, zset_or_new, ZSet, ZSet, ZSet::default(), inline);
typed_access!(get_stream, stream_or_new, Stream, Stream, Stream::new());

/// Parses SCAN-family options: `MATCH pattern`, `COUNT n`, and `TYPE t` where allowed.
pub struct ScanOpts {
    /// The cursor.
    pub cursor: u64,
    /// `MATCH` pattern.
    pub pattern: Option<Bytes>,
    /// `COUNT`.
    pub count: usize,
    /// `TYPE` filter.
    pub kind: Option<String>,
    /// `NOVALUES` (HSCAN).
    pub novalues: bool,
}

impl ScanOpts {
    /// Parses the cursor and options.
    pub fn parse(args: &mut Args, allow_type: bool) -> Result<ScanOpts, CmdError> {
        let cursor = scan_cursor(&args.bytes()?)?;
        let mut o = ScanOpts {
            cursor,
            pattern: None,
            count: 10,
            kind: None,
            novalues: false,
        };
        while let Some(opt) = args.next() {
            if opt.eq_ignore_ascii_case(b"match") {
                o.pattern = Some(args.bytes()?);
            } else if opt.eq_ignore_ascii_case(b"count") {
                let n = args.i64()?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                o.count = n as usize;
            } else if allow_type && opt.eq_ignore_ascii_case(b"type") {
                o.kind = Some(String::from_utf8_lossy(&args.bytes()?).to_lowercase());
            } else if !allow_type && opt.eq_ignore_ascii_case(b"novalues") {
                o.novalues = true;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(o)
    }

    /// Whether `item` passes the MATCH filter.
    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|p| vigil_resp::glob::matches(p, item))
    }
}

/// A SCAN-family cursor. HSCAN and SSCAN check it before the key, and the options after.
pub fn scan_cursor(c: &[u8]) -> Result<u64, CmdError> {
    std::str::from_utf8(c)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| CmdError::msg("ERR invalid cursor"))
}

/// The optional `count` of the POP family: a non-negative integer, worded as Redis words it.
pub fn pop_count(args: &mut Args) -> Result<Option<usize>, CmdError> {
    let Some(c) = args.next() else {
        return Ok(None);
    };
    match vigil_resp::args::parse_int(&c) {
        Ok(n) if n >= 0 => Ok(Some(n as usize)),
        _ => Err(CmdError::msg("ERR value is out of range, must be positive")),
    }
}

/// `[cursor, [items...]]`.
pub fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk_string(cursor.to_string()),
        Reply::Array(items),
    ])
}

/// Shorthand for a propagated argument vector.
pub fn argv<const N: usize>(items: [&[u8]; N]) -> Vec<Bytes> {
    items.iter().map(|b| Bytes::copy_from_slice(b)).collect()
}

/// Formats an integer as an argument.
pub fn int_arg(n: i64) -> Bytes {
    Bytes::from(itoa::Buffer::new().format(n).to_owned())
}
