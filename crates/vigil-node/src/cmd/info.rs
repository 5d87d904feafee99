//! `INFO`: the server, clients, memory, persistence, stats, replication, CPU, cluster and
//! keyspace sections, with Redis' field names (client libraries and tools parse them).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use vigil_base::REDIS_VERSION;
use vigil_base::clock::unix_ms;
use vigil_resp::args::lossy_lower;
use vigil_resp::pubsub::Space;

use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::gate::Role;
use crate::node::{Handler, Node, row};
use crate::repl::Phase;
use crate::session::ConnState;

/// The row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "info",
        -1,
        [STALE],
        0,
        0,
        0,
        "server",
        "Returns information and statistics about the server.",
        Node(info)
    )]
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

pub(crate) use crate::maxmemory::rss_bytes;

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Every section, in Redis' order (`INFO all`: the defaults and the per-command statistics).
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

fn info(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let mut wanted: Vec<String> = args.rest().iter().map(|s| lossy_lower(s)).collect();
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    if wanted.is_empty() || all || wanted.iter().any(|w| w == "default") {
        wanted = DEFAULT_SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    if all {
        wanted.push("commandstats".into());
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
    let cluster = node.cluster.read().is_some();
    let (keyspace, dirty, expired, hits, misses, functions) = {
        let s = node.store.lock();
        let libs = &s.functions;
        let functions = Functions {
            libraries: libs.libs.len(),
            functions: libs.function_count(),
            code_bytes: libs.libs.values().map(|l| l.code.len()).sum(),
        };
        let ks: Vec<(usize, usize, usize)> = s
            .dbs
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.is_empty())
            .map(|(i, d)| (i, d.len(), d.expires.len()))
            .collect();
        (ks, s.dirty, s.expired_keys, s.hits, s.misses, functions)
    };
    for section in ALL_SECTIONS
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
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nvigil_version:{}\r\n",
                    if cluster { "cluster" } else { "standalone" },
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    node.run_id,
                    node.port(),
                    unix_ms() * 1000,
                    uptime / 86400,
                    // Redis' LRU clock: seconds, in 24 bits.
                    (unix_ms() / 1000) & 0xFF_FFFF,
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
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:{}\r\npubsub_clients:{pubsub}\r\nclients_in_timeout_table:{blocked}\r\n",
                    node.shared.clients.len(),
                    node.shared.limits.read().maxclients,
                    node.tracking.clients(),
                );
            }
            "memory" => memory(&mut out, node, &cfg, &functions),
            "persistence" => persistence(&mut out, node, dirty, cfg.persistence.appendonly),
            "stats" => stats_section(&mut out, node, expired, hits, misses),
            "replication" => out.push_str(&info_replication(node)),
            "cpu" => {
                let (user, sys) = cpu_times(libc::RUSAGE_SELF);
                // Forked snapshot writers; the thread answering (a worker, the nearest
                // thing to Redis' main thread).
                let (cuser, csys) = cpu_times(libc::RUSAGE_CHILDREN);
                let (tuser, tsys) = cpu_times(libc::RUSAGE_THREAD);
                let _ = write!(
                    out,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:{csys:.6}\r\nused_cpu_user_children:{cuser:.6}\r\nused_cpu_sys_main_thread:{tsys:.6}\r\nused_cpu_user_main_thread:{tuser:.6}\r\n"
                );
            }
            "commandstats" => {
                out.push_str("# Commandstats\r\n");
                for c in node.cmdstats.all() {
                    let _ = write!(
                        out,
                        "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                        c.name,
                        c.calls,
                        c.usec,
                        if c.calls == 0 {
                            0.0
                        } else {
                            c.usec as f64 / c.calls as f64
                        },
                        c.rejected,
                        c.failed,
                    );
                }
            }
            "errorstats" => {
                out.push_str("# Errorstats\r\n");
                for (code, n) in stats.errors.codes() {
                    let _ = write!(out, "errorstat_{code}:count={n}\r\n");
                }
            }
            "cluster" => {
                let _ = write!(
                    out,
                    "# Cluster\r\ncluster_enabled:{}\r\n",
                    u8::from(cluster)
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

/// User and system CPU seconds of `who` (`RUSAGE_SELF`, `_CHILDREN`, `_THREAD`).
fn cpu_times(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct we pass; no other preconditions.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

/// The `# Replication` section of `INFO`, with Redis' field names and order.
fn info_replication(node: &Node) -> String {
    use std::fmt::Write as _;
    let role = node.gate.role();
    let priority = node.config.read().replication.priority;
    let now = node.clock_ms();
    let mut out = String::from("# Replication\r\n");
    let feed = node.repl.feed.lock();
    match &role {
        Role::Replica { host, port } => {
            let up = node.repl.upstream.lock();
            let status = up.as_ref().map(|u| u.status.clone());
            let phase = status.as_ref().map_or(Phase::Connect, |s| s.phase());
            let last_io = status.as_ref().map_or(-1, |s| {
                (now.saturating_sub(s.last_io_ms.load(Ordering::Relaxed)) / 1000) as i64
            });
            let _ = write!(
                out,
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n",
                if phase == Phase::Connected {
                    "up"
                } else {
                    "down"
                },
                if phase == Phase::Connected {
                    last_io
                } else {
                    -1
                },
                (phase == Phase::Sync) as u8,
            );
            if phase != Phase::Connected {
                let since = status
                    .as_ref()
                    .map_or(0, |s| s.down_since_ms.load(Ordering::Relaxed));
                let secs = if since == 0 {
                    -1
                } else {
                    (now.saturating_sub(since) / 1000) as i64
                };
                let _ = write!(out, "master_link_down_since_seconds:{secs}\r\n");
            }
            let _ = write!(
                out,
                "slave_read_repl_offset:{0}\r\nslave_repl_offset:{0}\r\nslave_priority:{priority}\r\nslave_read_only:1\r\nreplica_announced:1\r\n",
                feed.offset
            );
        }
        _ => out.push_str("role:master\r\n"),
    }
    let _ = write!(out, "connected_slaves:{}\r\n", feed.links.len());
    for (i, l) in feed.links.iter().enumerate() {
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            l.ip,
            l.port.load(Ordering::Relaxed),
            l.state().as_str(),
            l.ack.load(Ordering::Relaxed),
            now.saturating_sub(l.last_ack_ms.load(Ordering::Relaxed)) / 1000,
        );
    }
    let hist = feed.backlog_len();
    let _ = write!(
        out,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:1\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{hist}\r\n",
        feed.replid,
        feed.replid2,
        feed.offset,
        feed.second_offset,
        node.config.read().replication.backlog_size,
        feed.backlog_first_byte(),
    );
    out
}

/// `INFO persistence`, in Redis 7.0's fields and order. A compaction is both Redis' BGSAVE and
/// its BGREWRITEAOF (one snapshot, the log rotated at its instant): both sets of fields
/// describe it. No fork's copy-on-write is tracked (zeros, as Redis shows between forks).
fn persistence(out: &mut String, node: &Node, dirty: u64, appendonly: bool) {
    let p = &node.persist;
    let compacting = p.compacting() as u8;
    let status = if p.last_ok.load(Ordering::Relaxed) {
        "ok"
    } else {
        "err"
    };
    let aof_status = if p.aof.as_ref().and_then(|a| a.last_error()).is_some() {
        "err"
    } else {
        "ok"
    };
    let (last, current, saves, begun, failures) = {
        let r = p.runs.lock();
        let secs = |d: Option<u64>| d.map_or(-1, |s| s as i64);
        (
            secs(r.last_secs),
            secs(r.began.map(|b| b.elapsed().as_secs())),
            r.saves,
            r.begun,
            r.failures_in_a_row,
        )
    };
    let (rewrites, rewrite_failures) = if appendonly {
        (begun, failures)
    } else {
        (0, 0)
    };
    let _ = write!(
        out,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{compacting}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{status}\r\nrdb_last_bgsave_time_sec:{last}\r\nrdb_current_bgsave_time_sec:{current}\r\nrdb_saves:{saves}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{compacting}\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:{last}\r\naof_current_rewrite_time_sec:{current}\r\naof_last_bgrewrite_status:{status}\r\naof_rewrites:{rewrites}\r\naof_rewrites_consecutive_failures:{rewrite_failures}\r\naof_last_write_status:{aof_status}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        dirty.saturating_sub(p.dirty_saved.load(Ordering::Relaxed)),
        p.last_save.load(Ordering::Relaxed),
        p.loaded_keys.load(Ordering::Relaxed),
        appendonly as u8,
    );
    if let Some(aof) = &p.aof {
        let _ = write!(
            out,
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:{}\r\naof_delayed_fsync:{}\r\n",
            aof.size(),
            p.base_size.load(Ordering::Relaxed),
            aof.queued(),
            aof.fsyncs_pending(),
            aof.delayed_fsyncs(),
        );
    }
}

/// The function libraries' counts, for `INFO memory`.
struct Functions {
    libraries: usize,
    functions: usize,
    code_bytes: usize,
}

/// `INFO memory`, in Redis 7.0's fields and order. Used memory is the resident set size (what
/// `maxmemory` is judged by), so the fragmentation Redis reports between the two is none here;
/// the allocator's counts are Redis' stand-ins for an allocator without statistics. The overhead is the footprint before the dataset
/// was loaded plus the clients' pending replies and the replication backlog.
fn memory(out: &mut String, node: &Node, cfg: &crate::config::NodeConfig, f: &Functions) {
    let (used, peak) = node.maxmemory.used_and_peak();
    let startup = node.maxmemory.startup().min(used);
    let clients = node.shared.output_bytes.load(Ordering::Relaxed) as u64;
    let backlog = node.repl.feed.lock().backlog_len() as u64;
    let overhead = (startup + clients + backlog).min(used);
    let dataset = used - overhead;
    let net = used - startup;
    let perc = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let total_system = system_memory();
    // The EVAL engine and the functions' engine, each skipped while a script holds it.
    let (vm_eval, scripts, scripts_bytes) = node
        .scripts
        .eval
        .try_lock()
        .and_then(|e| {
            e.as_ref()
                .map(|e| (e.used_memory(), e.script_count(), e.script_bytes()))
        })
        .unwrap_or((0, 0, 0));
    let vm_functions = node
        .scripts
        .functions
        .try_lock()
        .and_then(|e| e.as_ref().map(|(_, e)| e.used_memory()))
        .unwrap_or(0);
    let vm_total = (vm_eval + vm_functions) as u64;
    // The allocator keeps no statistics here (they would cost every allocation): Redis'
    // own stand-ins when its allocator gives none — allocated is used memory, resident
    // (and active) the process' less the EVAL engine's.
    let resident = used.saturating_sub(vm_eval as u64);
    let (allocated, active) = (used, resident);
    let scripts_total = (scripts_bytes + f.code_bytes) as u64;
    let max = node.maxmemory.get();
    let policy = cfg
        .redis
        .get("maxmemory-policy")
        .map_or("noeviction", String::as_str);
    let aof_buffer = node.persist.aof.as_ref().map_or(0, |a| a.queued());
    let _ = write!(
        out,
        "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{used}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\ntotal_system_memory:{total_system}\r\ntotal_system_memory_human:{}\r\n",
        human(used),
        human(used),
        human(peak),
        perc(used, peak),
        perc(dataset, net),
        allocated,
        active,
        resident,
        human(total_system),
    );
    let _ = write!(
        out,
        "used_memory_lua:{vm_eval}\r\nused_memory_vm_eval:{vm_eval}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:{scripts_bytes}\r\nnumber_of_cached_scripts:{scripts}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\nused_memory_vm_functions:{vm_functions}\r\nused_memory_vm_total:{vm_total}\r\nused_memory_vm_total_human:{}\r\nused_memory_functions:{}\r\nused_memory_scripts:{scripts_total}\r\nused_memory_scripts_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\n",
        human(vm_eval as u64),
        f.functions,
        f.libraries,
        human(vm_total),
        f.code_bytes,
        human(scripts_total),
        human(max),
    );
    // Nothing is defragmented or freed on another thread here (`UNLINK` frees in the
    // command): the fields scripts poll for those (Redis' test suite waits on
    // `lazyfree_pending_objects`) are 0.
    let _ = write!(
        out,
        "allocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:1.00\r\nmem_fragmentation_bytes:0\r\nmem_not_counted_for_evict:{aof_buffer}\r\nmem_replication_backlog:{backlog}\r\nmem_total_replication_buffers:{backlog}\r\nmem_clients_slaves:0\r\nmem_clients_normal:{clients}\r\nmem_cluster_links:0\r\nmem_aof_buffer:{aof_buffer}\r\nmem_allocator:{}\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
        ratio(active, allocated),
        active as i64 - allocated as i64,
        ratio(resident, active),
        resident as i64 - active as i64,
        ratio(used, resident),
        used as i64 - resident as i64,
        crate::maxmemory::ALLOCATOR.get().unwrap_or(&"libc"),
    );
}

/// The machine's memory (`MemTotal` in /proc/meminfo), in bytes; 0 where unknown.
fn system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// `INFO stats`, in Redis 7.0's fields and order. Nothing is evicted or defragmented here, no
/// I/O thread runs and no reply buffer is resized: those counts are 0, as on a Redis that never
/// did either. Rates are sampled once a second.
fn stats_section(out: &mut String, node: &Node, expired: u64, hits: u64, misses: u64) {
    let stats = &node.shared.stats;
    let (fork_usec, forks) = crate::persist::snapshot::fork_stats();
    let (tracked_keys, tracked_items, tracked_prefixes) = node.tracking.totals();
    let kbps = |bytes: &std::sync::atomic::AtomicU64| bytes.load(Ordering::Relaxed) as f64 / 1024.0;
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:{}\r\ntotal_net_repl_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\ninstantaneous_input_repl_kbps:{:.2}\r\ninstantaneous_output_repl_kbps:{:.2}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{expired}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:0\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\n",
        stats.connections_received.load(Ordering::Relaxed),
        stats.commands_processed.load(Ordering::Relaxed),
        node.ops_per_sec.load(Ordering::Relaxed),
        stats.net_input_bytes.load(Ordering::Relaxed),
        stats.net_output_bytes.load(Ordering::Relaxed),
        node.repl.net_in.load(Ordering::Relaxed),
        node.repl.net_out.load(Ordering::Relaxed),
        kbps(&node.input_per_sec),
        kbps(&node.output_per_sec),
        kbps(&node.repl_input_per_sec),
        kbps(&node.repl_output_per_sec),
        stats.rejected_connections.load(Ordering::Relaxed),
        node.repl.sync_full.load(Ordering::Relaxed),
        node.repl.sync_partial_ok.load(Ordering::Relaxed),
        node.repl.sync_partial_err.load(Ordering::Relaxed),
    );
    let _ = write!(
        out,
        "pubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:{fork_usec}\r\ntotal_forks:{forks}\r\nmigrate_cached_sockets:{}\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{tracked_keys}\r\ntracking_total_items:{tracked_items}\r\ntracking_total_prefixes:{tracked_prefixes}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\n",
        node.shared.hub.channels(Space::Channel, None).len(),
        node.shared.hub.numpat(),
        node.shared.hub.channels(Space::Shard, None).len(),
        node.migrate.len(),
        stats.errors.total(),
        stats.reads_processed.load(Ordering::Relaxed),
        stats.writes_processed.load(Ordering::Relaxed),
    );
}
