//! CONFIG: GET, SET, RESETSTAT, REWRITE, HELP over the parameter table
//! ([`crate::config::params`]). SET is atomic: every name is looked up and every value checked
//! on a copy of the configuration before any is applied; then the running node takes the new
//! values (limits, password, script threshold, fsync policy, slow log, encoding thresholds).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use vigil_resp::args::lossy_lower;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::config::NodeConfig;
use crate::config::params::{self, H, I, P, PARAMS, Param};
use crate::node::{Handler, Node, limits_from, row};
use crate::session::ConnState;

/// The CONFIG row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "config",
        -2,
        [ADMIN, STALE],
        0,
        0,
        0,
        "server",
        "Reads or changes configuration at run time.",
        Node(config)
    )]
}

/// Makes the running node follow its configuration.
fn apply(node: &Node, cfg: &NodeConfig) {
    *node.shared.limits.write() = limits_from(cfg);
    {
        let mut acl = node.shared.acl.write();
        acl.follow_requirepass(cfg.password().as_deref());
        acl.log.max_len = Some(cfg.redis_int("acllog-max-len").max(0) as usize);
    }
    node.scripts.busy.threshold_ms.store(
        cfg.busy_reply_threshold.as_millis() as u64,
        Ordering::Relaxed,
    );
    if let Some(a) = &node.persist.aof {
        a.set_policy(cfg.persistence.appendfsync);
    }
    node.slowlog.configure_from(cfg);
    node.gate.set_min_replicas(
        cfg.replication.min_replicas_to_write,
        cfg.replication.min_replicas_max_lag,
    );
    node.maxmemory.set(cfg.redis_int("maxmemory").max(0) as u64);
    let mut store = node.store.lock();
    store.thresholds = cfg.thresholds();
    store.configure_notify(cfg.notify_classes());
    store.set_access_policy(cfg.access_policy());
    store.limits.proto_max_bulk_len = cfg.limits.proto_max_bulk_len;
    store.limits.hll_sparse_max_bytes = cfg.redis_int("hll-sparse-max-bytes").max(0) as usize;
    store
        .tracking()
        .set_max_keys(cfg.redis_int("tracking-table-max-keys").max(0) as usize);
}

fn config(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let raw_sub = args.next().unwrap_or_default();
    let sub = lossy_lower(&raw_sub);
    let arity = |s: &str| {
        Reply::error(format!(
            "ERR wrong number of arguments for 'config|{s}' command"
        ))
    };
    let r = match sub.as_str() {
        "get" if !args.is_empty() => get(node, &args.rest()),
        "set" if args.remaining() >= 2 => {
            if args.remaining() % 2 == 1 {
                Reply::error("ERR syntax error")
            } else {
                set(node, &args.rest())
            }
        }
        "resetstat" if args.is_empty() => {
            resetstat(node);
            Reply::ok()
        }
        "rewrite" if args.is_empty() => match rewrite(node) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(e),
        },
        "help" if args.is_empty() => crate::cmd::slowlog::help(
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        ),
        "get" | "set" | "resetstat" | "rewrite" | "help" => arity(&sub),
        _ => vigil_resp::command::bad_subcommand(
            "config",
            &raw_sub,
            &["get", "set", "resetstat", "rewrite", "help"],
        ),
    };
    conn.reply(r);
}

/// GET: an exact name (hidden ones included) answers under the name as asked; a pattern lists
/// every visible name and alias that matches.
fn get(node: &Node, patterns: &[bytes::Bytes]) -> Reply {
    let cfg = node.config.read().clone();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for pat in patterns {
        let text = String::from_utf8_lossy(pat);
        if !pat.iter().any(|c| b"[*?".contains(c)) {
            if let Some(p) = params::lookup(&text) {
                out.entry(text.into_owned()).or_insert_with(|| cfg.param(p));
            }
            continue;
        }
        for p in PARAMS.iter().filter(|p| !p.has(H)) {
            for name in std::iter::once(p.name).chain(p.alias) {
                if vigil_resp::glob::matches_nocase(pat, name.as_bytes()) {
                    out.entry(name.to_string()).or_insert_with(|| cfg.param(p));
                }
            }
        }
    }
    Reply::Map(
        out.into_iter()
            .map(|(k, v)| (Reply::bulk_string(k), Reply::bulk_string(v)))
            .collect(),
    )
}

fn set(node: &Node, pairs: &[bytes::Bytes]) -> Reply {
    let fail = |name: &str, why: &str| {
        Reply::error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    // First every name: unknown names win over other refusals, as in Redis. An alias is a
    // parameter of its own there: named in errors as such, and no duplicate of its original.
    let mut found: Vec<(&'static Param, &'static str, String)> = Vec::new();
    let mut refusal: Option<Reply> = None;
    for kv in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&kv[0]);
        let Some(p) = params::lookup(&name) else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        let called = match p.alias {
            Some(a) if a.eq_ignore_ascii_case(&name) => a,
            _ => p.name,
        };
        if refusal.is_some() {
            continue;
        }
        // What Redis can change and this node cannot (set only at start) is refused in the
        // next step, unless the value is the one in force: a no-op, as in Redis.
        let fixed = p.has(I);
        if fixed || p.has(P) {
            let why = if fixed {
                "can't set immutable config"
            } else {
                "can't set protected config"
            };
            refusal = Some(fail(&name, why));
        } else if found.iter().any(|(_, c, _)| *c == called) {
            refusal = Some(fail(&name, "duplicate parameter"));
        }
        found.push((p, called, String::from_utf8_lossy(&kv[1]).into_owned()));
    }
    if let Some(r) = refusal {
        return r;
    }
    // Then every value, on a copy; nothing changes unless all of them are good.
    let mut cfg = node.config.read().clone();
    for (p, called, value) in found {
        let current = cfg.param(p);
        let fixed_here = p.bound.is_some_and(|b| b.set.is_none());
        let checked = p
            .check(&value, &current)
            .and_then(|v| match fixed_here && v == current {
                true => Ok(()),
                false => cfg.set_param(p, v),
            });
        if let Err(why) = checked {
            return fail(called, &why);
        }
    }
    apply(node, &cfg);
    *node.config.write() = cfg;
    Reply::ok()
}

fn resetstat(node: &Node) {
    let s = &node.shared.stats;
    s.commands_processed.store(0, Ordering::Relaxed);
    s.connections_received.store(0, Ordering::Relaxed);
    s.rejected_connections.store(0, Ordering::Relaxed);
    s.net_input_bytes.store(0, Ordering::Relaxed);
    s.net_output_bytes.store(0, Ordering::Relaxed);
    s.reads_processed.store(0, Ordering::Relaxed);
    s.writes_processed.store(0, Ordering::Relaxed);
    s.errors.reset();
    let r = &node.repl;
    for counter in [
        &r.sync_full,
        &r.sync_partial_ok,
        &r.sync_partial_err,
        &r.net_in,
        &r.net_out,
    ] {
        counter.store(0, Ordering::Relaxed);
    }
    node.persist.reset_stats();
    node.cmdstats.reset();
    crate::persist::snapshot::reset_fork_stats();
    let mut st = node.store.lock();
    st.hits = 0;
    st.misses = 0;
    st.expired_keys = 0;
}

/// REWRITE: the config file with every changed value written back in place (comments and
/// layout kept); Redis-only values go to `[redis]`.
fn rewrite(node: &Node) -> Result<(), String> {
    let Some(path) = node.config_file.as_ref() else {
        return Err("ERR The server is running without a config file".into());
    };
    let cfg = node.config.read().clone();
    let err = |e: &dyn std::fmt::Display| format!("ERR Rewriting config file: {e}");
    let text = std::fs::read_to_string(path).map_err(|e| err(&e))?;
    let on_disk = NodeConfig::parse(&text, &path.display().to_string()).map_err(|e| err(&e))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| err(&e))?;
    for p in PARAMS {
        let Some(b) = p.bound else { continue };
        if b.set.is_none() || (b.get)(&cfg) == (b.get)(&on_disk) {
            continue;
        }
        let (table, key) = match b.toml.split_once('.') {
            Some((t, k)) => (Some(t), k),
            None => (None, b.toml),
        };
        let t = match table {
            Some(t) => doc
                .entry(t)
                .or_insert(toml_edit::table())
                .as_table_mut()
                .ok_or_else(|| err(&format!("`{t}` is not a table")))?,
            None => doc.as_table_mut(),
        };
        put(t, key, (b.value)(&cfg));
    }
    if cfg.redis != on_disk.redis {
        let t = doc
            .entry("redis")
            .or_insert(toml_edit::table())
            .as_table_mut()
            .ok_or_else(|| err(&"`redis` is not a table"))?;
        let stale: Vec<String> = t
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| !params::lookup(k).is_some_and(|p| cfg.redis.contains_key(p.name)))
            .collect();
        for k in stale {
            t.remove(&k);
        }
        for (k, v) in &cfg.redis {
            // An alias in the file keeps its spelling.
            let key = t
                .iter()
                .map(|(k, _)| k.to_string())
                .find(|f| params::lookup(f).is_some_and(|p| p.name == k))
                .unwrap_or_else(|| k.clone());
            put(t, &key, toml_edit::Value::from(v.as_str()));
        }
    }
    vigil_base::fs::write_durable(path, doc.to_string().as_bytes()).map_err(|e| err(&e))
}

/// Sets `key` in `t` to `v`, keeping the comments around an existing value.
fn put(t: &mut toml_edit::Table, key: &str, mut v: toml_edit::Value) {
    match t.get_mut(key) {
        // In place: the key, and the comments above it, stay as they were.
        Some(item) => {
            if let Some(old) = item.as_value() {
                *v.decor_mut() = old.decor().clone();
            }
            *item = toml_edit::Item::Value(v);
        }
        None => {
            t.insert(key, toml_edit::Item::Value(v));
        }
    }
}
