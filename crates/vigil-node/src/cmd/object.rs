//! OBJECT: ENCODING (the representation Redis 7.0 would choose, from the configured
//! thresholds), REFCOUNT (Redis' shared small integers report as shared), IDLETIME and FREQ
//! (Vigil keeps no access clock: keys read as just used, and no LFU policy is offered), HELP.

use vigil_resp::args::lossy_lower;
use vigil_resp::command::bad_subcommand;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use crate::config::redis::Encoding;
use crate::ctx::Ctx;
use crate::db::Value;
use crate::node::{Handler, row};

/// The OBJECT row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "object",
        -2,
        [READONLY],
        0,
        0,
        0,
        "generic",
        "Inspects the internals of a key's value.",
        Data(object)
    )]
}

/// Redis' refcount of its shared integer objects.
const SHARED: i64 = i32::MAX as i64;

fn object(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let raw = args.bytes()?;
    let sub = lossy_lower(&raw);
    if sub == "help" && args.is_empty() {
        return Ok(crate::cmd::monitor::help(
            "OBJECT",
            &[
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
            ],
        ));
    }
    let known = ["encoding", "refcount", "idletime", "freq"];
    if !known.contains(&sub.as_str()) || args.remaining() != 1 {
        return Ok(bad_subcommand(
            "object",
            &raw,
            &["help", "encoding", "refcount", "idletime", "freq"],
        ));
    }
    let key = args.bytes()?;
    let enc = ctx.store.encoding;
    let Some(v) = ctx.lookup(&key) else {
        return Ok(Reply::Nil);
    };
    Ok(match sub.as_str() {
        "encoding" => Reply::bulk_static(encoding(v, &enc)),
        "refcount" => Reply::Int(match v {
            Value::Str(s)
                if vigil_resp::args::parse_int(s)
                    .is_ok_and(|n| (0..10_000).contains(&n) && canonical(s)) =>
            {
                SHARED
            }
            _ => 1,
        }),
        "idletime" => Reply::Int(0),
        _ => Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    })
}

/// Whether an integer's text is the one Redis would store it as (no sign, no leading zero).
fn canonical(s: &[u8]) -> bool {
    vigil_resp::args::parse_int(s).is_ok_and(|n| itoa::Buffer::new().format(n).as_bytes() == s)
}

/// The encoding Redis 7.0 would give a value, from the configured thresholds.
pub fn encoding(v: &Value, enc: &Encoding) -> &'static str {
    let small = |n: usize, max: i64| (n as i64) <= max;
    let short = |b: &[u8], max: i64| (b.len() as i64) <= max;
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && canonical(s) {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            let fits = small(h.len(), enc.hash_max_listpack_entries)
                && h.iter().all(|(f, v)| {
                    short(f, enc.hash_max_listpack_value) && short(v, enc.hash_max_listpack_value)
                });
            if fits { "listpack" } else { "hashtable" }
        }
        Value::Set(s) => {
            let ints = s.iter().all(|m| canonical(m));
            if ints && small(s.len(), enc.set_max_intset_entries) {
                "intset"
            } else {
                "hashtable"
            }
        }
        Value::ZSet(z) => {
            let fits = small(z.len(), enc.zset_max_listpack_entries)
                && z.scores
                    .keys()
                    .all(|m| short(m, enc.zset_max_listpack_value));
            if fits { "listpack" } else { "skiplist" }
        }
        Value::Stream(_) => "stream",
    }
}
