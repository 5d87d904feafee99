//! Serialization and introspection of single values: DUMP and RESTORE (Redis' RDB payload,
//! see [`crate::persist::rdb`]) and OBJECT (ENCODING, REFCOUNT, IDLETIME, FREQ, HELP).

use bytes::Bytes;
use vigil_resp::command::{bad_subcommand, unknown_subcommand};
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::stream_groups::help;
use crate::ctx::{Ctx, int_arg};
use crate::db::Value;
use crate::db::encoding::string_int;
use crate::node::{Handler, row};
use crate::persist::rdb;

/// The rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "dump",
            2,
            [READONLY],
            1,
            1,
            1,
            "generic",
            "Returns a serialized representation of the value stored at a key.",
            Data(dump)
        ),
        row!(
            "restore",
            -4,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "generic",
            "Creates a key from the serialized representation of a value.",
            Data(restore)
        ),
        row!(
            "object",
            -2,
            [READONLY],
            2,
            2,
            1,
            "generic",
            "Returns internal information about a key's value.",
            Data(object),
            keys = vigil_resp::keys::object
        ),
    ]
}

fn dump(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let t = ctx.store.thresholds.clone();
    Ok(match ctx.lookup(&key) {
        None => Reply::Nil,
        Some(v) => Reply::Bulk(Bytes::from(rdb::dump(v, &t))),
    })
}

/// Options of RESTORE after the payload.
struct RestoreOpts {
    replace: bool,
    absttl: bool,
    /// `IDLETIME` seconds (applied under an LRU-clock policy).
    idle: Option<u64>,
    /// `FREQ` counter (applied under an LFU policy).
    freq: Option<u8>,
}

fn restore_opts(args: &mut Args) -> Result<RestoreOpts, CmdError> {
    let mut o = RestoreOpts {
        replace: false,
        absttl: false,
        idle: None,
        freq: None,
    };
    while let Some(a) = args.next() {
        let more = args.remaining() >= 1;
        if a.eq_ignore_ascii_case(b"replace") {
            o.replace = true;
        } else if a.eq_ignore_ascii_case(b"absttl") {
            o.absttl = true;
        } else if a.eq_ignore_ascii_case(b"idletime") && more && o.freq.is_none() {
            let idle = args.i64()?;
            if idle < 0 {
                return Err(CmdError::msg("ERR Invalid IDLETIME value, must be >= 0"));
            }
            o.idle = Some(idle as u64);
        } else if a.eq_ignore_ascii_case(b"freq") && more && o.idle.is_none() {
            let freq = args.i64()?;
            if !(0..=255).contains(&freq) {
                return Err(CmdError::msg(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            o.freq = Some(freq as u8);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`. A relative TTL is
/// propagated as an absolute one (`ABSTTL` appended), so replicas and the log agree.
fn restore(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let ttl_arg = args.bytes()?;
    let payload = args.bytes()?;
    let o = restore_opts(args)?;
    // A write lookup: an existing key counts as used, even when refused.
    if !o.replace && ctx.exists_write(&key) {
        return Err(CmdError::msg("BUSYKEY Target key name already exists."));
    }
    let mut ttl = vigil_resp::args::parse_int(&ttl_arg)?;
    if ttl < 0 {
        return Err(CmdError::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let value = rdb::undump(&payload, &ctx.store.thresholds)
        .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
    let deleted = o.replace && ctx.delete(&key);
    if ttl != 0 && !o.absttl {
        ttl = ttl.saturating_add(ctx.now);
    }
    if ttl != 0 && ttl <= ctx.now && !ctx.loading {
        if deleted {
            ctx.notify(crate::db::notify::GENERIC, "del", &key);
            ctx.propagate(vec![Bytes::from_static(b"DEL"), key]);
        }
        return Ok(Reply::ok());
    }
    let db = ctx.db();
    db.set(&key, value, false);
    db.keys.set_hint(&key, o.idle, o.freq);
    if ttl != 0 {
        db.set_expire(&key, ttl);
    }
    db.touch(&key);
    ctx.changed(1);
    ctx.notify(crate::db::notify::GENERIC, "restore", &key);
    let mut prop: Vec<Bytes> = args.all().to_vec();
    if ttl != 0 && !o.absttl {
        prop[2] = int_arg(ttl);
        prop.push(Bytes::from_static(b"ABSTTL"));
    }
    ctx.propagate(prop);
    Ok(Reply::ok())
}

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// Redis shares the objects of the integers 0..9999 (refcount `INT_MAX`) under the default
/// maxmemory policy.
const SHARED_INTEGERS: i64 = 10_000;

/// `OBJECT`. Looking at a key is not using it: its access time stays. IDLETIME is kept under
/// an LRU-clock policy, FREQ under an LFU one; each refuses under the other, as in Redis.
fn object(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let all = args.all().to_vec();
    let sub = &all[1];
    let lower = String::from_utf8_lossy(sub).to_lowercase();
    let known = ["help", "encoding", "refcount", "idletime", "freq"];
    let want = match lower.as_str() {
        "help" => 2,
        s if known.contains(&s) => 3,
        _ => return Ok(unknown_subcommand("object", sub)),
    };
    if all.len() != want {
        return Ok(bad_subcommand("object", sub, &known));
    }
    if lower == "help" {
        return Ok(help(HELP));
    }
    let t = ctx.store.thresholds.clone();
    let lfu = ctx.store.access_policy().lfu;
    let key = &all[2];
    let edited = ctx.db().edited.contains(&key[..]);
    let Some(v) = ctx.peek(key) else {
        return Ok(Reply::Nil);
    };
    Ok(match lower.as_str() {
        "encoding" => Reply::bulk_static(encoding(v, &t, edited)),
        "refcount" => Reply::Int(match v {
            Value::Str(s)
                if !edited && string_int(s).is_some_and(|i| (0..SHARED_INTEGERS).contains(&i)) =>
            {
                i64::from(i32::MAX)
            }
            _ => 1,
        }),
        "idletime" if lfu => Reply::error(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        "idletime" => Reply::Int(ctx.db().keys.idle_secs(key).unwrap_or(0) as i64),
        _ if !lfu => Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        _ => Reply::Int(i64::from(ctx.db().keys.freq(key).unwrap_or(0))),
    })
}

fn encoding(v: &Value, t: &crate::db::encoding::Thresholds, edited: bool) -> &'static str {
    match v {
        Value::Str(s) => crate::db::encoding::string_encoding(s, edited),
        _ => t.encoding(v),
    }
}
