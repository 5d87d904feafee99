//! Server commands: CONFIG, COMMAND, SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN (INFO has
//! its own file, `info.rs`).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use vigil_resp::args::lossy_lower;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::config::{AppendFsync, NodeConfig, parse_size};
use crate::node::{Handler, row};
use crate::node::{Node, limits_from};
use crate::session::ConnState;

/// The server family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "config",
            -2,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "Reads or changes configuration at run time.",
            Node(config)
        ),
        row!(
            "command",
            -1,
            [STALE],
            0,
            0,
            0,
            "server",
            "Describes the commands.",
            Node(command)
        ),
        row!(
            "save",
            1,
            [ADMIN, NO_MULTI],
            0,
            0,
            0,
            "server",
            "Writes a snapshot synchronously.",
            Node(save)
        ),
        row!(
            "bgsave",
            -1,
            [ADMIN],
            0,
            0,
            0,
            "server",
            "Writes a snapshot in the background.",
            Node(bgsave)
        ),
        row!(
            "bgrewriteaof",
            1,
            [ADMIN],
            0,
            0,
            0,
            "server",
            "Compacts the append log in the background.",
            Node(bgrewriteaof)
        ),
        row!(
            "lastsave",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "server",
            "Unix time of the last successful snapshot.",
            Node(lastsave)
        ),
        row!(
            "shutdown",
            -1,
            [ADMIN, NO_MULTI, STALE],
            0,
            0,
            0,
            "server",
            "Makes data durable and stops the server.",
            Node(shutdown)
        ),
    ]
}

/// One settable or readable configuration parameter.
/// Applies a new value at run time.
type Setter = fn(&Node, &str) -> Result<(), String>;

struct Param {
    name: &'static str,
    get: fn(&NodeConfig) -> String,
    /// `None`: immutable at run time.
    set: Option<Setter>,
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn parse_yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn set_busy_threshold(n: &Node, v: &str) -> Result<(), String> {
    let ms = parse_num(v)?;
    n.config.write().busy_reply_threshold = std::time::Duration::from_millis(ms);
    n.scripts
        .busy
        .threshold_ms
        .store(ms, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn parse_num(v: &str) -> Result<u64, String> {
    parse_size(v).ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

const PARAMS: &[Param] = &[
    Param {
        name: "bind",
        get: |c| c.bind.clone(),
        set: None,
    },
    Param {
        name: "port",
        get: |c| c.port.to_string(),
        set: None,
    },
    Param {
        name: "dir",
        get: |c| {
            std::fs::canonicalize(&c.dir)
                .unwrap_or(c.dir.clone())
                .display()
                .to_string()
        },
        set: None,
    },
    Param {
        name: "databases",
        get: |c| c.databases.to_string(),
        set: None,
    },
    Param {
        name: "requirepass",
        get: |c| c.requirepass.clone(),
        set: Some(|n, v| {
            n.config.write().requirepass = v.to_string();
            *n.shared.requirepass.write() =
                (!v.is_empty()).then(|| Bytes::copy_from_slice(v.as_bytes()));
            Ok(())
        }),
    },
    Param {
        name: "maxclients",
        get: |c| c.maxclients.to_string(),
        set: Some(|n, v| {
            let x = parse_num(v)?;
            if x == 0 {
                return Err("argument must be between 1 and 4294967295 inclusive".into());
            }
            n.config.write().maxclients = x as usize;
            n.shared.limits.write().maxclients = x as usize;
            Ok(())
        }),
    },
    Param {
        name: "busy-reply-threshold",
        get: |c| c.busy_reply_threshold.as_millis().to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "lua-time-limit",
        get: |c| c.busy_reply_threshold.as_millis().to_string(),
        set: Some(set_busy_threshold),
    },
    Param {
        name: "timeout",
        get: |c| c.timeout.as_secs().to_string(),
        set: Some(|n, v| {
            let x = parse_num(v)?;
            n.config.write().timeout = std::time::Duration::from_secs(x);
            let cfg = n.config.read().clone();
            *n.shared.limits.write() = limits_from(&cfg);
            Ok(())
        }),
    },
    Param {
        name: "appendonly",
        get: |c| yes_no(c.persistence.appendonly),
        set: None,
    },
    Param {
        name: "appendfsync",
        get: |c| c.persistence.appendfsync.as_str().into(),
        set: Some(|n, v| {
            let p = AppendFsync::parse(v)
                .ok_or("argument(s) must be one of the following: always, everysec, no")?;
            n.config.write().persistence.appendfsync = p;
            if let Some(a) = &n.persist.aof {
                a.set_policy(p);
            }
            Ok(())
        }),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |c| c.limits.proto_max_bulk_len.to_string(),
        set: Some(|n, v| {
            let x = parse_num(v)?;
            if x < 1024 {
                return Err("argument must be at least 1kb".into());
            }
            n.config.write().limits.proto_max_bulk_len = x;
            n.shared.limits.write().parse.max_bulk_len = x as usize;
            n.store.lock().limits.proto_max_bulk_len = x;
            Ok(())
        }),
    },
    Param {
        name: "client-query-buffer-limit",
        get: |c| c.limits.client_query_buffer_limit.to_string(),
        set: Some(|n, v| {
            let x = parse_num(v)?;
            if x < 1024 * 1024 {
                return Err("argument must be at least 1mb".into());
            }
            n.config.write().limits.client_query_buffer_limit = x;
            n.shared.limits.write().parse.max_query_buffer = x as usize;
            Ok(())
        }),
    },
    Param {
        name: "replica-priority",
        get: |c| c.replication.priority.to_string(),
        set: Some(|n, v| {
            let x = parse_num(v)?;
            n.config.write().replication.priority =
                u32::try_from(x).map_err(|_| "argument must be between 0 and 2147483647")?;
            Ok(())
        }),
    },
    Param {
        name: "replica-serve-stale-data",
        get: |c| yes_no(c.replication.serve_stale_data),
        set: Some(|n, v| {
            n.config.write().replication.serve_stale_data = parse_yes_no(v)?;
            Ok(())
        }),
    },
    Param {
        name: "repl-backlog-size",
        get: |c| c.replication.backlog_size.to_string(),
        set: None,
    },
    Param {
        name: "min-replicas-to-write",
        get: |c| c.replication.min_replicas_to_write.to_string(),
        set: None,
    },
    Param {
        name: "min-replicas-max-lag",
        get: |c| c.replication.min_replicas_max_lag.as_secs().to_string(),
        set: None,
    },
    Param {
        name: "repl-timeout",
        get: |c| c.replication.timeout.as_secs().to_string(),
        set: None,
    },
    Param {
        name: "repl-ping-replica-period",
        get: |c| c.replication.ping_period.as_secs().to_string(),
        set: None,
    },
    Param {
        name: "save",
        get: |_| String::new(),
        set: None,
    },
    Param {
        name: "maxmemory",
        get: |_| "0".into(),
        set: None,
    },
    Param {
        name: "maxmemory-policy",
        get: |_| "noeviction".into(),
        set: None,
    },
    Param {
        name: "appendfilename",
        get: |_| "appendonly.<generation>.aof".into(),
        set: None,
    },
    Param {
        name: "dbfilename",
        get: |_| crate::persist::SNAPSHOT_FILE.into(),
        set: None,
    },
];

fn config(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let raw_sub = args.next().unwrap_or_default();
    let sub = lossy_lower(&raw_sub);
    let r = match sub.as_str() {
        "get" if !args.is_empty() => {
            let patterns = args.rest();
            let cfg = node.config.read().clone();
            let pairs = PARAMS
                .iter()
                .filter(|p| {
                    patterns
                        .iter()
                        .any(|pat| vigil_resp::glob::matches_nocase(pat, p.name.as_bytes()))
                })
                .map(|p| {
                    (
                        Reply::bulk_static(p.name),
                        Reply::bulk_string((p.get)(&cfg)),
                    )
                })
                .collect();
            Reply::Map(pairs)
        }
        "set" if !args.is_empty() && args.remaining().is_multiple_of(2) => {
            let pairs = args.rest();
            let mut result = Reply::ok();
            for kv in pairs.chunks(2) {
                let name = lossy_lower(&kv[0]);
                let value = String::from_utf8_lossy(&kv[1]).into_owned();
                let Some(p) = PARAMS.iter().find(|p| p.name == name) else {
                    result = Reply::error(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    ));
                    break;
                };
                let Some(set) = p.set else {
                    result = Reply::error(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                    ));
                    break;
                };
                if let Err(e) = set(node, &value) {
                    result = Reply::error(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                    ));
                    break;
                }
            }
            result
        }
        "resetstat" if args.is_empty() => {
            let s = &node.shared.stats;
            s.commands_processed.store(0, Ordering::Relaxed);
            s.connections_received.store(0, Ordering::Relaxed);
            s.rejected_connections.store(0, Ordering::Relaxed);
            s.net_input_bytes.store(0, Ordering::Relaxed);
            s.net_output_bytes.store(0, Ordering::Relaxed);
            let mut st = node.store.lock();
            st.hits = 0;
            st.misses = 0;
            st.expired_keys = 0;
            Reply::ok()
        }
        "rewrite" => {
            Reply::error("ERR CONFIG REWRITE is not supported: edit the TOML config file instead")
        }
        "help" => Reply::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "SET <directive> <value>",
                "RESETSTAT",
                "HELP",
            ]
            .into_iter()
            .map(Reply::simple)
            .collect(),
        ),
        _ => vigil_resp::command::bad_subcommand(
            "config",
            &raw_sub,
            &["get", "set", "resetstat", "rewrite", "help"],
        ),
    };
    conn.reply(r);
}

fn command(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    conn.reply(node.table.command_reply(args.all()));
}

fn save(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let r = match node.save() {
        Ok(()) => Reply::ok(),
        Err(e) => Reply::error(format!("ERR {e}")),
    };
    conn.reply(r);
}

fn bgsave(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let schedule = args.eat("schedule");
    let r = if !args.is_empty() {
        Reply::error("ERR syntax error")
    } else if node.save_background() {
        Reply::simple("Background saving started")
    } else if schedule {
        Reply::simple("Background saving scheduled")
    } else {
        Reply::error("ERR Background save already in progress")
    };
    conn.reply(r);
}

fn bgrewriteaof(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let r = if node.save_background() {
        Reply::simple("Background append only file rewriting started")
    } else {
        Reply::error("ERR Background append only file rewriting already in progress")
    };
    conn.reply(r);
}

fn lastsave(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    conn.reply(Reply::Int(node.persist.last_save.load(Ordering::Relaxed)));
}

fn shutdown(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let mut save = false;
    let mut nosave = false;
    while let Some(a) = args.next() {
        match &a.to_ascii_lowercase()[..] {
            b"save" => save = true,
            b"nosave" => nosave = true,
            b"now" | b"force" => {}
            b"abort" => {
                conn.reply(Reply::error("ERR No shutdown in progress."));
                return;
            }
            _ => {
                conn.reply(Reply::error("ERR syntax error"));
                return;
            }
        }
    }
    if save
        && !nosave
        && let Err(e) = node.save()
    {
        conn.reply(Reply::error(format!(
            "ERR Errors trying to SHUTDOWN. Check logs. ({e})"
        )));
        return;
    }
    tracing::info!(client = conn.info.id, "SHUTDOWN requested");
    // The connection closes without a reply, as with Redis.
    conn.close = true;
    node.shared.shutdown.cancel();
}
