//! Finding the keys of a request: fixed positions from the command table, or a finder for the
//! commands whose keys depend on their arguments (Redis' `movablekeys`).
//!
//! One function, [`crate::CommandMeta::keys`], answers for every command, so `COMMAND GETKEYS`,
//! client-side caching and cluster routing agree. Positions count the command name as 0, and
//! each key carries Redis' key-spec flags for `COMMAND GETKEYSANDFLAGS`.

use bytes::Bytes;
use thiserror::Error;

/// Redis' key-spec flags for one key (`RW`, `access`, …), as `COMMAND GETKEYSANDFLAGS` shows them.
pub type KeyFlags = &'static [&'static str];

/// One key found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    /// Index of the key in the request (the command name is 0).
    pub pos: usize,
    /// How the command uses the key.
    pub flags: KeyFlags,
}

/// Why a request's keys cannot be named; `Display` is Redis' `COMMAND GETKEYS` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeysError {
    /// An unknown subcommand of a container command.
    #[error("ERR Invalid command specified")]
    InvalidCommand,
    /// The command (or subcommand) never takes keys.
    #[error("ERR The command has no key arguments")]
    NoKeyArguments,
    /// The subcommand's argument count is wrong.
    #[error("ERR Invalid number of arguments specified for command")]
    Arity,
    /// The arguments do not name keys (bad numkeys, missing STREAMS, …).
    #[error("ERR Invalid arguments specified for command")]
    Invalid,
}

/// Finds the keys of a request whose key positions depend on its arguments.
pub type KeyFinder = fn(&[Bytes]) -> Result<Vec<KeyRef>, KeysError>;

/// Read-only access to the value.
pub const RO_ACCESS: KeyFlags = &["RO", "access"];
/// A shard channel, which names a hash slot but is no key (SSUBSCRIBE, SPUBLISH): routed by
/// a cluster, never checked against ACL key patterns.
pub const NOT_KEY: KeyFlags = &["not_key"];
/// Read-write, reads and updates the value.
pub const RW_ACCESS_UPDATE: KeyFlags = &["RW", "access", "update"];
/// Read-write, reads and removes data.
pub const RW_ACCESS_DELETE: KeyFlags = &["RW", "access", "delete"];
/// Read-write, adds data without reading it.
pub const RW_INSERT: KeyFlags = &["RW", "insert"];
/// Overwrites the value.
pub const OW_UPDATE: KeyFlags = &["OW", "update"];
/// Removes the key.
pub const RM_DELETE: KeyFlags = &["RM", "delete"];
/// Changes the value without reading it (EXPIRE, HSET).
pub const RW_UPDATE: KeyFlags = &["RW", "update"];
/// Removes data without reading it (HDEL, LTRIM).
pub const RW_DELETE: KeyFlags = &["RW", "delete"];
/// Read-write, reads (PFCOUNT may rewrite its cache).
pub const RW_ACCESS: KeyFlags = &["RW", "access"];
/// Creates the key only if absent (SETNX, MSETNX).
pub const OW_INSERT: KeyFlags = &["OW", "insert"];
/// Reads and adds (PFMERGE's destination).
pub const RW_ACCESS_INSERT: KeyFlags = &["RW", "access", "insert"];
/// Read-only without reading the value (OBJECT).
pub const RO: KeyFlags = &["RO"];
/// No flags: what Redis reports when it falls back to its lenient numkeys parse.
pub const NONE: KeyFlags = &[];

fn key(pos: usize, flags: KeyFlags) -> KeyRef {
    KeyRef { pos, flags }
}

/// `numkeys` read as Redis reads it: strictly first (keeping the key-spec flags), then as C's
/// `atoi` (leading digits, flags lost). `None` when neither yields a usable count.
fn numkeys(arg: Option<&Bytes>) -> Option<(usize, bool)> {
    let arg = arg?;
    if let Some(n) = std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        return usize::try_from(n).ok().map(|n| (n, true));
    }
    let s = arg.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: usize = 0;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add((d - b'0') as usize);
    }
    (!neg && n > 0).then_some((n, false))
}

/// Keys counted by the argument at `count_at`, starting at `count_at + 1`, optionally after a
/// destination key at 1. At least one source key, all within the request.
fn counted(
    args: &[Bytes],
    count_at: usize,
    dest: bool,
    flags: KeyFlags,
) -> Result<Vec<KeyRef>, KeysError> {
    let (n, strict) = numkeys(args.get(count_at)).ok_or(KeysError::Invalid)?;
    let first = count_at + 1;
    if n == 0 || n > args.len().saturating_sub(first) {
        return Err(KeysError::Invalid);
    }
    let pick = |f: KeyFlags| if strict { f } else { NONE };
    let mut keys = Vec::with_capacity(n + usize::from(dest));
    if dest {
        keys.push(key(1, pick(OW_UPDATE)));
    }
    keys.extend((first..first + n).map(|p| key(p, pick(flags))));
    Ok(keys)
}

/// EVAL, EVALSHA, FCALL: `numkeys` at 2; no keys at all is an empty answer, not an error.
pub fn eval(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    Ok(counted(args, 2, false, RW_ACCESS_UPDATE).unwrap_or_default())
}

/// The read-only script commands (EVAL_RO, EVALSHA_RO, FCALL_RO).
pub fn eval_ro(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    Ok(counted(args, 2, false, RO_ACCESS).unwrap_or_default())
}

/// Read-only commands with `numkeys` at 1: SINTERCARD, ZINTERCARD, ZUNION, ZINTER, ZDIFF.
pub fn numkeys_read(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    counted(args, 1, false, RO_ACCESS)
}

/// LMPOP and ZMPOP: `numkeys` at 1, keys popped from.
pub fn numkeys_pop(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    counted(args, 1, false, RW_ACCESS_DELETE)
}

/// BLMPOP and BZMPOP: a timeout, then `numkeys` at 2.
pub fn numkeys_pop_blocking(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    counted(args, 2, false, RW_ACCESS_DELETE)
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the destination, then `numkeys` at 2.
pub fn numkeys_store(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    counted(args, 2, true, RO_ACCESS)
}

/// SORT: the sorted key, and the last `STORE` destination (LIMIT takes 2 arguments, BY and
/// GET 1, which is how SORT itself reads them).
pub fn sort(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    if args.len() < 2 {
        return Err(KeysError::Invalid);
    }
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    let mut keys = vec![key(1, RO_ACCESS)];
    keys.extend(store.map(|p| key(p, OW_UPDATE)));
    Ok(keys)
}

/// SORT_RO: the sorted key only (its BY and GET patterns name keys no finder can know, which
/// is why Redis marks it movable).
pub fn sort_ro(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    if args.len() < 2 {
        return Err(KeysError::Invalid);
    }
    Ok(vec![key(1, RO_ACCESS)])
}

/// The position after the first `word` among `args[from..len-1]` (a keyword needs a value).
fn after_keyword(args: &[Bytes], from: usize, word: &[u8]) -> Option<usize> {
    (from..args.len().saturating_sub(1))
        .find(|&i| args[i].eq_ignore_ascii_case(word))
        .map(|i| i + 1)
}

fn geo_search(args: &[Bytes], from: usize) -> Result<Vec<KeyRef>, KeysError> {
    if args.len() < 2 {
        return Err(KeysError::Invalid);
    }
    let mut keys = vec![key(1, RO_ACCESS)];
    for word in [&b"store"[..], b"storedist"] {
        keys.extend(after_keyword(args, from, word).map(|p| key(p, OW_UPDATE)));
    }
    Ok(keys)
}

/// GEORADIUS: the source, then the first `STORE` and `STOREDIST` destinations after the unit.
pub fn georadius(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    geo_search(args, 6)
}

/// GEORADIUSBYMEMBER: as GEORADIUS, one argument earlier.
pub fn georadiusbymember(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    geo_search(args, 5)
}

fn streams(args: &[Bytes], from: usize) -> Result<Vec<KeyRef>, KeysError> {
    let first = after_keyword(args, from, b"streams").ok_or(KeysError::Invalid)?;
    // Keys and ids come in two halves; an odd tail belongs to the ids.
    let n = (args.len() - first) / 2;
    if n == 0 {
        return Err(KeysError::Invalid);
    }
    Ok((first..first + n).map(|p| key(p, RO_ACCESS)).collect())
}

/// XREAD: the keys after `STREAMS`.
pub fn xread(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    streams(args, 1)
}

/// XREADGROUP: the keys after `STREAMS`, looked for after `GROUP g c`.
pub fn xreadgroup(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    streams(args, 4)
}

/// MIGRATE: the key at 3, or with `KEYS` (and an empty key at 3) the keys after it. Redis
/// first reads its key specs, which name the key at 3 unless `KEYS` appears at or before the
/// second-to-last argument (searched backwards); only then does it scan the options from 6.
pub fn migrate(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    let keys_word = |a: &Bytes| a.eq_ignore_ascii_case(b"keys");
    let spec_hit = (2..args.len().saturating_sub(1)).any(|i| keys_word(&args[i]));
    let (first, n) = if !spec_hit || args.len() <= 6 {
        (3, 1)
    } else {
        let mut found = (3, 1);
        let mut i = 6;
        while i < args.len() {
            let a = &args[i];
            if keys_word(a) {
                found = if args[3].is_empty() {
                    (i + 1, args.len() - i - 1)
                } else {
                    (3, 0)
                };
                break;
            }
            if a.eq_ignore_ascii_case(b"auth") {
                i += 1;
            } else if a.eq_ignore_ascii_case(b"auth2") {
                i += 2;
            }
            i += 1;
        }
        found
    };
    if n == 0 || first + n > args.len() {
        return Err(KeysError::Invalid);
    }
    Ok((first..first + n)
        .map(|p| key(p, RW_ACCESS_DELETE))
        .collect())
}

/// A container's subcommands: name, Redis arity (counting the parent), key flags (`None`: the
/// subcommand takes no key). The key is always the argument after the subcommand.
type Subs = &'static [(&'static str, i32, Option<KeyFlags>)];

fn container(args: &[Bytes], subs: Subs) -> Result<Vec<KeyRef>, KeysError> {
    let Some(sub) = args.get(1) else {
        return Err(KeysError::NoKeyArguments);
    };
    let (_, arity, flags) = subs
        .iter()
        .find(|(name, _, _)| sub.eq_ignore_ascii_case(name.as_bytes()))
        .ok_or(KeysError::InvalidCommand)?;
    let flags = flags.ok_or(KeysError::NoKeyArguments)?;
    let argc = args.len() as i64;
    let arity = *arity as i64;
    if (arity > 0 && argc != arity) || argc < -arity {
        return Err(KeysError::Arity);
    }
    Ok(vec![key(2, flags)])
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key.
pub fn object(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    container(
        args,
        &[
            ("encoding", 3, Some(RO)),
            ("freq", 3, Some(RO)),
            ("idletime", 3, Some(RO)),
            ("refcount", 3, Some(RO)),
            ("help", 2, None),
        ],
    )
}

/// MEMORY USAGE key; DOCTOR, STATS, MALLOC-STATS, PURGE and HELP take none.
pub fn memory(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    container(
        args,
        &[
            ("usage", -3, Some(RO)),
            ("doctor", 2, None),
            ("stats", 2, None),
            ("malloc-stats", 2, None),
            ("purge", 2, None),
            ("help", 2, None),
        ],
    )
}

/// XINFO STREAM|GROUPS|CONSUMERS key.
pub fn xinfo(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    container(
        args,
        &[
            ("stream", -3, Some(RO_ACCESS)),
            ("groups", 3, Some(RO_ACCESS)),
            ("consumers", 4, Some(RO_ACCESS)),
            ("help", 2, None),
        ],
    )
}

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER key.
pub fn xgroup(args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    container(
        args,
        &[
            ("create", -5, Some(RW_INSERT)),
            ("setid", -5, Some(&["RW", "update"])),
            ("destroy", 4, Some(&["RW", "delete"])),
            ("createconsumer", 5, Some(RW_INSERT)),
            ("delconsumer", 5, Some(RW_ACCESS_DELETE)),
            ("help", 2, None),
        ],
    )
}

/// Flags of the `nth` key of a fixed-position command: Redis' key specs for the commands whose
/// flags differ from the default, else derived from the command's flags (read-only: `RO
/// access`; otherwise `RW access update`), which is what most Redis commands declare.
pub fn fixed_flags(name: &str, write: bool, args: &[Bytes], nth: usize) -> KeyFlags {
    match (name, nth) {
        ("ssubscribe" | "sunsubscribe" | "spublish", _) => NOT_KEY,
        ("set", _) => {
            let get = args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
            if get { RW_ACCESS_UPDATE } else { OW_UPDATE }
        }
        ("mset" | "psetex" | "setex" | "restore", _) => OW_UPDATE,
        ("msetnx" | "setnx", _) => OW_INSERT,
        ("del" | "unlink", _) => RM_DELETE,
        ("getdel" | "lpop" | "rpop" | "spop" | "zpopmin" | "zpopmax", _) => RW_ACCESS_DELETE,
        ("blpop" | "brpop" | "bzpopmin" | "bzpopmax", _) => RW_ACCESS_DELETE,
        ("hdel" | "lrem" | "ltrim" | "srem" | "xdel" | "xtrim" | "zrem", _) => RW_DELETE,
        ("zremrangebylex" | "zremrangebyrank" | "zremrangebyscore", _) => RW_DELETE,
        ("lmove" | "blmove" | "rpoplpush" | "brpoplpush" | "smove", 0) => RW_ACCESS_DELETE,
        ("lmove" | "blmove" | "rpoplpush" | "brpoplpush" | "smove", _) => RW_INSERT,
        ("rename" | "renamenx", 0) => RW_ACCESS_DELETE,
        ("copy", 0) => RO_ACCESS,
        ("rename" | "copy", _) => OW_UPDATE,
        ("renamenx", _) => OW_INSERT,
        ("lpush" | "rpush" | "lpushx" | "rpushx" | "linsert" | "sadd" | "pfadd", _) => RW_INSERT,
        ("append" | "hsetnx", _) => RW_INSERT,
        ("expire" | "expireat" | "pexpire" | "pexpireat" | "persist" | "geoadd" | "hmset", _) => {
            RW_UPDATE
        }
        ("hset" | "lset" | "setrange" | "xack" | "xadd" | "xsetid" | "zadd", _) => RW_UPDATE,
        ("sinterstore", 0) => RW_UPDATE,
        ("sdiffstore" | "sunionstore" | "zrangestore" | "bitop", 0) => OW_UPDATE,
        ("pfmerge", 0) => RW_ACCESS_INSERT,
        ("sinterstore" | "sdiffstore" | "sunionstore" | "zrangestore" | "bitop" | "pfmerge", _) => {
            RO_ACCESS
        }
        ("pfcount", _) => RW_ACCESS,
        ("exists" | "hexists" | "hlen" | "hstrlen" | "llen" | "scard" | "sismember", _) => RO,
        ("strlen" | "touch" | "type" | "watch" | "xlen" | "zcard", _) => RO,
        ("bitfield", _) if !bitfield_writes(args) => RO_ACCESS,
        _ if write => RW_ACCESS_UPDATE,
        _ => RO_ACCESS,
    }
}

/// Whether a BITFIELD has a SET or INCRBY (otherwise its key is only read, as Redis says).
fn bitfield_writes(args: &[Bytes]) -> bool {
    // As Redis reads it: only GET (with its two arguments) and OVERFLOW (with one) are
    // reads; anything else, a bad word included, counts as a write.
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let left = args.len() - i - 1;
        if a.eq_ignore_ascii_case(b"get") && left >= 2 {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"overflow") && left >= 1 {
            i += 2;
        } else {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// A finder, a request, the positions it must find.
    type Case = (KeyFinder, &'static str, Result<Vec<usize>, KeysError>);

    fn pos(r: Result<Vec<KeyRef>, KeysError>) -> Result<Vec<usize>, KeysError> {
        r.map(|v| v.into_iter().map(|k| k.pos).collect())
    }

    #[test]
    fn numkeys_bounds() {
        let cases: &[Case] = &[
            (eval, "eval s 1 a", Ok(vec![3])),
            (eval, "eval s 0", Ok(vec![])),
            (eval, "eval s 5 a", Ok(vec![])),
            (eval, "eval s -1 a", Ok(vec![])),
            (eval, "eval s x a", Ok(vec![])),
            (eval, "eval s 99999999999999999999999 a", Ok(vec![])),
            (eval, "eval", Ok(vec![])),
            (eval, "eval s 1x a", Ok(vec![3])),
            (numkeys_read, "sintercard 2 a b", Ok(vec![2, 3])),
            (numkeys_read, "sintercard 3 a b", Err(KeysError::Invalid)),
            (numkeys_read, "sintercard 0 a", Err(KeysError::Invalid)),
            (numkeys_read, "sintercard -2 a", Err(KeysError::Invalid)),
            (numkeys_read, "sintercard", Err(KeysError::Invalid)),
            (numkeys_store, "zunionstore d 2 a b", Ok(vec![1, 3, 4])),
            (numkeys_store, "zunionstore d 0 a", Err(KeysError::Invalid)),
            (numkeys_pop_blocking, "blmpop 0 2 a b left", Ok(vec![3, 4])),
        ];
        for (i, (f, r, want)) in cases.iter().enumerate() {
            assert_eq!(&pos(f(&req(r))), want, "#{i} {r}");
        }
        // The lenient parse loses the key-spec flags, as Redis' fallback does.
        assert_eq!(eval(&req("eval s 1x a")).unwrap()[0].flags, NONE);
        assert_eq!(eval(&req("eval s 1 a")).unwrap()[0].flags, RW_ACCESS_UPDATE);
    }

    #[test]
    fn keyword_finders() {
        let cases: &[Case] = &[
            (sort, "sort a store b", Ok(vec![1, 3])),
            (sort, "sort a by x store", Ok(vec![1])),
            (sort, "sort a limit store b store c", Ok(vec![1, 6])),
            (sort, "sort a store b store c", Ok(vec![1, 5])),
            (
                georadius,
                "georadius a 1 2 3 km store b storedist c",
                Ok(vec![1, 7, 9]),
            ),
            (
                georadius,
                "georadius a 1 2 3 km store b store c",
                Ok(vec![1, 7]),
            ),
            (georadius, "georadius a 1 2 3 km store", Ok(vec![1])),
            (
                georadiusbymember,
                "georadiusbymember a m 3 km store b",
                Ok(vec![1, 6]),
            ),
            (xread, "xread streams a b 1 2", Ok(vec![2, 3])),
            (xread, "xread streams a b 1", Ok(vec![2])),
            (xread, "xread count 2 a", Err(KeysError::Invalid)),
            (xread, "xread streams a", Err(KeysError::Invalid)),
            (xread, "xread streams", Err(KeysError::Invalid)),
            (xreadgroup, "xreadgroup group g c streams a 1", Ok(vec![5])),
            (xgroup, "xgroup create k g $", Ok(vec![2])),
            (xgroup, "xgroup create k", Err(KeysError::Arity)),
            (xgroup, "xgroup help", Err(KeysError::NoKeyArguments)),
            (xgroup, "xgroup nope k", Err(KeysError::InvalidCommand)),
            (object, "object encoding k", Ok(vec![2])),
            (object, "object encoding", Err(KeysError::Arity)),
            (object, "object", Err(KeysError::NoKeyArguments)),
            (xinfo, "xinfo stream k full", Ok(vec![2])),
            (memory, "memory usage k samples 5", Ok(vec![2])),
            (memory, "memory usage", Err(KeysError::Arity)),
            (memory, "memory stats", Err(KeysError::NoKeyArguments)),
            (migrate, "migrate h 1 k 0 0", Ok(vec![3])),
            (migrate, "migrate h 1 k 0 0 copy", Ok(vec![3])),
            (migrate, "migrate h 1  0 0 keys a b", Ok(vec![7, 8])),
            (migrate, "migrate h 1  0 0 auth keys b", Ok(vec![3])),
            (migrate, "migrate h 1  0 0 copy keys", Ok(vec![3])),
            (migrate, "migrate h 1 x 0 0 keys b", Err(KeysError::Invalid)),
            (migrate, "migrate h 1 x 0 0 auth2 keys b c", Ok(vec![3])),
            (
                migrate,
                "migrate h 1 x 0 0 keys keys b",
                Err(KeysError::Invalid),
            ),
            (migrate, "migrate h 1  0 0 replace keys a", Ok(vec![8])),
        ];
        for (i, (f, r, want)) in cases.iter().enumerate() {
            assert_eq!(&pos(f(&req(r))), want, "#{i} {r}");
        }
    }
}
