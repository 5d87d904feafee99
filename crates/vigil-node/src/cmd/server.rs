//! Server commands: INFO, CONFIG, COMMAND, SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, SHUTDOWN.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use vigil_resp::args::lossy_lower;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::config::{AppendFsync, NodeConfig, parse_size};
use crate::node::{Handler, row};
use crate::node::{Node, limits_from};
use crate::session::ConnState;
use vigil_base::REDIS_VERSION;
use vigil_base::clock::unix_ms;

/// The server family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "info",
            -1,
            [STALE],
            0,
            0,
            0,
            "server",
            "Returns information and statistics about the server.",
            Node(info)
        ),
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

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Resident set size from /proc (the node does not instrument its allocator).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

fn info(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let mut wanted: Vec<String> = args.rest().iter().map(|s| lossy_lower(s)).collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "default" || w == "all" || w == "everything")
    {
        wanted = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    let text = info_text(node, &wanted);
    conn.reply(Reply::Verbatim(Bytes::from(text)));
}

/// The INFO text for the given sections, with Redis' field names.
pub fn info_text(node: &Node, sections: &[String]) -> String {
    let mut out = String::new();
    let stats = &node.shared.stats;
    let cfg = node.config.read().clone();
    let uptime = node.started.elapsed().as_secs();
    let (keyspace, dirty, expired, hits, misses) = {
        let s = node.store.lock();
        let ks: Vec<(usize, usize, usize)> = s
            .dbs
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.is_empty())
            .map(|(i, d)| (i, d.len(), d.expires.len()))
            .collect();
        (ks, s.dirty, s.expired_keys, s.hits, s.misses)
    };
    for section in DEFAULT_SECTIONS
        .iter()
        .filter(|s| sections.iter().any(|w| w == *s))
    {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match *section {
            "server" => {
                let _ = write!(
                    out,
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nexecutable:{}\r\nconfig_file:{}\r\nvigil_version:{}\r\n",
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    node.run_id,
                    node.port(),
                    unix_ms() * 1000,
                    uptime / 86400,
                    std::env::current_exe()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    node.config_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    env!("CARGO_PKG_VERSION"),
                );
            }
            "clients" => {
                let (blocked, pubsub) = node.shared.clients.counts();
                let _ = write!(
                    out,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\ntracking_clients:0\r\npubsub_clients:{pubsub}\r\nclients_in_timeout_table:{blocked}\r\n",
                    node.shared.clients.len(),
                    node.shared.limits.read().maxclients,
                );
            }
            "memory" => {
                let rss = rss_bytes();
                let _ = write!(
                    out,
                    "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_allocator:libc\r\n",
                    human(rss),
                    human(rss),
                );
            }
            "persistence" => {
                let p = &node.persist;
                let compacting = p.compacting() as u8;
                let status = if p.last_ok.load(Ordering::Relaxed) {
                    "ok"
                } else {
                    "err"
                };
                let aof_size = p.aof.as_ref().map_or(0, |a| a.size());
                let aof_status = if p.aof.as_ref().and_then(|a| a.last_error()).is_some() {
                    "err"
                } else {
                    "ok"
                };
                let _ = write!(
                    out,
                    "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{compacting}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{status}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{compacting}\r\naof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:{status}\r\naof_last_write_status:{aof_status}\r\naof_current_size:{aof_size}\r\naof_base_size:{}\r\n",
                    dirty.saturating_sub(p.dirty_saved.load(Ordering::Relaxed)),
                    p.last_save.load(Ordering::Relaxed),
                    cfg.persistence.appendonly as u8,
                    p.base_size.load(Ordering::Relaxed),
                );
            }
            "stats" => {
                let _ = write!(
                    out,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{expired}\r\nevicted_keys:0\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n",
                    stats.connections_received.load(Ordering::Relaxed),
                    stats.commands_processed.load(Ordering::Relaxed),
                    node.ops_per_sec.load(Ordering::Relaxed),
                    stats.net_input_bytes.load(Ordering::Relaxed),
                    stats.net_output_bytes.load(Ordering::Relaxed),
                    stats.rejected_connections.load(Ordering::Relaxed),
                    node.repl.sync_full.load(Ordering::Relaxed),
                    node.repl.sync_partial_ok.load(Ordering::Relaxed),
                    node.repl.sync_partial_err.load(Ordering::Relaxed),
                    node.shared.hub.channels(None).len(),
                    node.shared.hub.numpat(),
                );
            }
            "replication" => out.push_str(&node.info_replication()),
            "cpu" => {
                let (user, sys) = cpu_times();
                let _ = write!(
                    out,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n"
                );
            }
            "keyspace" => {
                out.push_str("# Keyspace\r\n");
                for (i, keys, expires) in &keyspace {
                    let _ = write!(out, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
            _ => {}
        }
    }
    out
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other preconditions.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

/// Applies a new value at run time.
type Setter = fn(&Node, &str) -> Result<(), String>;

/// One settable or readable configuration parameter.
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
