//! The node's side of the operations endpoint (`metrics = "host:port"`, served by
//! [`vigil_proto::ops`]): the metrics page, named as redis_exporter names the same
//! concepts (`redis_*`, taken from the INFO fields, as redis_exporter does) plus Vigil's own
//! (`vigil_*`: epoch, lease, fences, per-command latency histograms), and the health checks
//! shaped as Patroni's (`/primary` is 200 only on a master that may acknowledge a write now:
//! not fenced, lease valid in managed mode).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use vigil_proto::ops::{Check, Lag, OpsSource, Text, json_str, parse_lag, query_param};

use crate::gate::{GateView, Role};
use crate::node::Node;
use crate::repl::Phase;

/// The node as an [`OpsSource`].
pub struct NodeOps(pub Arc<Node>);

/// INFO's `field:value` lines as a map (section headers and blank lines skipped).
fn info_fields(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect()
}

/// A numeric INFO field (0 when absent or not a number).
fn num(fields: &HashMap<&str, &str>, key: &str) -> f64 {
    fields.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// The word Redis uses for a role.
fn role_word(role: &Role) -> &'static str {
    match role {
        Role::Master => "master",
        Role::Replica { .. } => "slave",
        Role::Unassigned => "none",
    }
}

/// What a replica knows of its link: whether it streams, and ms since its master last spoke.
fn link(node: &Node) -> (bool, Option<u64>) {
    let up = node.repl.upstream.lock();
    let Some(status) = up.as_ref().map(|u| u.status.clone()) else {
        return (false, None);
    };
    let connected = status.phase() == Phase::Connected;
    let last = status.last_io_ms.load(Ordering::Relaxed);
    let ago = node.clock_ms().saturating_sub(last);
    (connected, connected.then_some(ago))
}

/// How long the master's offset the sentinels reported stays usable (they report it every
/// probe, a fraction of `down_after`).
const SEEN_FRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a replica at offset `own` is within `limit` bytes of its master, whose offset the
/// sentinels reported as `seen` (offset, how long ago). Without a fresh report (a replica
/// outside a managed group, or sentinels gone quiet) bytes cannot be checked: the streaming
/// link alone decides, as the README states.
fn within_bytes(limit: u64, seen: Option<(u64, std::time::Duration)>, own: u64) -> bool {
    match seen {
        Some((master, ago)) if ago <= SEEN_FRESH => master.saturating_sub(own) <= limit,
        _ => true,
    }
}

impl NodeOps {
    fn view(&self) -> GateView {
        self.0.gate.view(Instant::now())
    }

    /// Patroni's JSON: state, role, epoch (Patroni's timeline), offsets.
    fn body(&self, view: &GateView) -> String {
        let node = &self.0;
        let feed_offset = node.repl.feed.lock().offset;
        let mut out = format!(
            "{{\"state\":\"running\",\"role\":{},\"epoch\":{},\"managed\":{},\"fenced\":{},\"writable\":{},\"lease_remaining_ms\":{},\"repl_offset\":{feed_offset},\"uptime_in_seconds\":{}",
            json_str(role_word(&view.role)),
            view.epoch,
            view.managed,
            view.fenced,
            view.writable,
            view.lease_remaining.as_millis(),
            node.started.elapsed().as_secs(),
        );
        if let Role::Replica { host, port } = &view.role {
            let (up, ago) = link(node);
            let _ = write!(
                out,
                ",\"master_host\":{},\"master_port\":{port},\"master_link_status\":{}",
                json_str(host),
                json_str(if up { "up" } else { "down" })
            );
            if let Some(ms) = ago {
                let _ = write!(out, ",\"master_last_io_ms\":{ms}");
            }
        }
        out.push('}');
        out
    }

    /// `/replica` and `/read-only`: a streaming replica within `?lag=` (time: since the
    /// master last spoke; bytes: behind the master's offset as the sentinels last reported
    /// it, see [`within_bytes`]), or for `/read-only` also a master.
    fn replica_ok(&self, view: &GateView, query: &str, master_too: bool) -> Result<bool, ()> {
        let lag = match query_param(query, "lag") {
            Some(v) => Some(parse_lag(v).ok_or(())?),
            None => None,
        };
        match view.role {
            Role::Master => Ok(master_too && !view.fenced),
            Role::Unassigned => Ok(false),
            Role::Replica { .. } => {
                let (up, ago) = link(&self.0);
                Ok(up
                    && match lag {
                        Some(Lag::Time(t)) => ago.is_some_and(|ms| ms <= t.as_millis() as u64),
                        Some(Lag::Bytes(b)) => {
                            let seen = *self.0.repl.master_seen.lock();
                            let own = self.0.repl.feed.lock().offset;
                            within_bytes(b, seen.map(|(m, at)| (m, at.elapsed())), own)
                        }
                        None => true,
                    })
            }
        }
    }
}

impl OpsSource for NodeOps {
    fn metrics(&self) -> String {
        let node = &self.0;
        let sections: Vec<String> = [
            "server",
            "clients",
            "memory",
            "persistence",
            "stats",
            "replication",
            "keyspace",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let info = crate::cmd::info::info_text(node, &sections);
        let f = info_fields(&info);
        let view = self.view();
        let mut t = Text::new();
        let port = node.port().to_string();
        t.instance(&[
            (
                "redis_version",
                f.get("redis_version").copied().unwrap_or(""),
            ),
            ("redis_mode", "standalone"),
            ("role", role_word(&view.role)),
            ("run_id", f.get("run_id").copied().unwrap_or("")),
            ("tcp_port", &port),
        ]);
        let gauges = [
            (
                "redis_uptime_in_seconds",
                "uptime_in_seconds",
                "Seconds since the process started",
            ),
            (
                "redis_connected_clients",
                "connected_clients",
                "Client connections",
            ),
            (
                "redis_blocked_clients",
                "blocked_clients",
                "Clients blocked on a command",
            ),
            ("redis_max_clients", "maxclients", "The maxclients setting"),
            ("redis_memory_used_bytes", "used_memory", "Memory used"),
            (
                "redis_memory_used_rss_bytes",
                "used_memory_rss",
                "Resident set size",
            ),
            (
                "redis_memory_max_bytes",
                "maxmemory",
                "The maxmemory setting",
            ),
            (
                "redis_master_repl_offset",
                "master_repl_offset",
                "Replication stream offset",
            ),
            (
                "redis_connected_slaves",
                "connected_slaves",
                "Connected replicas",
            ),
            (
                "redis_repl_backlog_history_bytes",
                "repl_backlog_histlen",
                "Bytes in the backlog",
            ),
            (
                "redis_rdb_changes_since_last_save",
                "rdb_changes_since_last_save",
                "Changes since the last snapshot",
            ),
            (
                "redis_aof_current_size_bytes",
                "aof_current_size",
                "Append log size",
            ),
        ];
        for (name, field, help) in gauges {
            t.gauge(name, help, num(&f, field));
        }
        let counters = [
            (
                "redis_commands_processed_total",
                "total_commands_processed",
                "Commands processed",
            ),
            (
                "redis_connections_received_total",
                "total_connections_received",
                "Connections accepted",
            ),
            (
                "redis_rejected_connections_total",
                "rejected_connections",
                "Connections refused",
            ),
            (
                "redis_net_input_bytes_total",
                "total_net_input_bytes",
                "Bytes read from clients",
            ),
            (
                "redis_net_output_bytes_total",
                "total_net_output_bytes",
                "Bytes written to clients",
            ),
            ("redis_expired_keys_total", "expired_keys", "Keys expired"),
            ("redis_evicted_keys_total", "evicted_keys", "Keys evicted"),
            (
                "redis_keyspace_hits_total",
                "keyspace_hits",
                "Lookups that found a key",
            ),
            (
                "redis_keyspace_misses_total",
                "keyspace_misses",
                "Lookups that found no key",
            ),
            ("redis_errors_total", "total_error_replies", "Error replies"),
            (
                "redis_replica_resyncs_full",
                "sync_full",
                "Full resynchronisations served",
            ),
            (
                "redis_replica_partial_resync_accepted",
                "sync_partial_ok",
                "Partial resynchronisations accepted",
            ),
            (
                "redis_replica_partial_resync_denied",
                "sync_partial_err",
                "Partial resynchronisations denied",
            ),
        ];
        for (name, field, help) in counters {
            t.counter(name, help, num(&f, field));
        }
        // Keyspace: one series per non-empty database, as redis_exporter.
        let ks: Vec<(String, f64, f64)> = f
            .iter()
            .filter_map(|(k, v)| {
                let db = k.strip_prefix("db")?;
                db.parse::<u32>().ok()?;
                let mut keys = 0.0;
                let mut expires = 0.0;
                for kv in v.split(',') {
                    match kv.split_once('=') {
                        Some(("keys", n)) => keys = n.parse().unwrap_or(0.0),
                        Some(("expires", n)) => expires = n.parse().unwrap_or(0.0),
                        _ => {}
                    }
                }
                Some((format!("db{db}"), keys, expires))
            })
            .collect();
        t.family("redis_db_keys", "gauge", "Keys per database");
        for (db, keys, _) in &ks {
            t.sample("redis_db_keys", &[("db", db)], *keys);
        }
        t.family(
            "redis_db_keys_expiring",
            "gauge",
            "Keys with a time to live per database",
        );
        for (db, _, exp) in &ks {
            t.sample("redis_db_keys_expiring", &[("db", db)], *exp);
        }
        replication(&mut t, node, &view);
        commands(&mut t, node);
        vigil_own(&mut t, node, &view);
        t.finish()
    }

    fn check(&self, path: &str, query: &str) -> Option<Check> {
        let view = self.view();
        let ok = match path {
            // 200 only where a write would be acknowledged now.
            "/primary" | "/master" | "/read-write" | "/leader" => {
                Ok(view.role == Role::Master && view.writable)
            }
            "/replica" => self.replica_ok(&view, query, false),
            "/read-only" => self.replica_ok(&view, query, true),
            "/health" | "/liveness" => Ok(!self.0.shared.shutdown.is_cancelled()),
            // Loaded (nothing is served before recovery) and given a role.
            "/readiness" => Ok(view.role != Role::Unassigned),
            _ => return None,
        };
        Some(match ok {
            Ok(pass) => Check {
                status: if pass { 200 } else { 503 },
                body: self.body(&view),
            },
            Err(()) => Check {
                status: 400,
                body:
                    "{\"error\":\"lag must be bytes (1048576, 16kB, 10MB) or a time (500ms, 1s)\"}"
                        .into(),
            },
        })
    }
}

/// Replication as redis_exporter shows it: the link, and each replica's offset.
fn replication(t: &mut Text, node: &Node, view: &GateView) {
    let (up, ago) = link(node);
    if let Role::Replica { .. } = view.role {
        t.gauge(
            "redis_master_link_up",
            "Whether the link to the master streams",
            up as u8 as f64,
        );
        t.gauge(
            "redis_master_last_io_seconds_ago",
            "Seconds since the master last sent anything",
            ago.map_or(-1.0, |ms| (ms / 1000) as f64),
        );
    }
    let now = node.clock_ms();
    let feed = node.repl.feed.lock();
    t.family(
        "redis_connected_slave_offset_bytes",
        "gauge",
        "Offset acknowledged by each replica",
    );
    let rows: Vec<(String, String, String, u64, u64)> = feed
        .links
        .iter()
        .map(|l| {
            (
                l.ip.to_string(),
                l.port.load(Ordering::Relaxed).to_string(),
                l.state().as_str().to_string(),
                l.ack.load(Ordering::Relaxed),
                now.saturating_sub(l.last_ack_ms.load(Ordering::Relaxed)) / 1000,
            )
        })
        .collect();
    drop(feed);
    for (ip, port, state, offset, _) in &rows {
        let labels = [
            ("slave_ip", ip.as_str()),
            ("slave_port", port),
            ("slave_state", state),
        ];
        t.sample(
            "redis_connected_slave_offset_bytes",
            &labels,
            *offset as f64,
        );
    }
    t.family(
        "redis_connected_slave_lag_seconds",
        "gauge",
        "Seconds since each replica acknowledged",
    );
    for (ip, port, state, _, lag) in &rows {
        let labels = [
            ("slave_ip", ip.as_str()),
            ("slave_port", port),
            ("slave_state", state),
        ];
        t.sample("redis_connected_slave_lag_seconds", &labels, *lag as f64);
    }
}

/// Per-command counts and time (redis_exporter's names) and Vigil's latency histograms.
fn commands(t: &mut Text, node: &Node) {
    let stats: Vec<_> = node
        .cmdstats
        .all()
        .into_iter()
        .filter(|c| c.calls > 0 || c.rejected > 0)
        .collect();
    t.family("redis_commands_total", "counter", "Calls per command");
    for c in &stats {
        t.sample("redis_commands_total", &[("cmd", c.name)], c.calls as f64);
    }
    t.family(
        "redis_commands_duration_seconds_total",
        "counter",
        "Run time per command",
    );
    for c in &stats {
        t.sample(
            "redis_commands_duration_seconds_total",
            &[("cmd", c.name)],
            c.usec as f64 / 1e6,
        );
    }
    t.family(
        "redis_commands_failed_calls_total",
        "counter",
        "Calls that answered an error",
    );
    for c in &stats {
        t.sample(
            "redis_commands_failed_calls_total",
            &[("cmd", c.name)],
            c.failed as f64,
        );
    }
    t.family(
        "redis_commands_rejected_calls_total",
        "counter",
        "Calls refused before running",
    );
    for c in &stats {
        t.sample(
            "redis_commands_rejected_calls_total",
            &[("cmd", c.name)],
            c.rejected as f64,
        );
    }
    t.family(
        "vigil_command_duration_seconds",
        "histogram",
        "Command latency (the LATENCY HISTOGRAM buckets)",
    );
    for c in stats.iter().filter(|c| c.calls > 0) {
        // The same bounds on every series and every scrape (Prometheus sums and compares
        // buckets by bound): every other bucket of the command statistics, 1 µs to 17 s.
        let buckets: Vec<(f64, u64)> = (0..=24)
            .step_by(2)
            .map(|i| {
                let bound = (1024u64 << i) / 1000;
                let n = c
                    .cdf
                    .iter()
                    .take_while(|(us, _)| *us <= bound)
                    .last()
                    .map_or(0, |(_, n)| *n);
                (bound as f64 / 1e6, n)
            })
            .collect();
        t.histogram(
            "vigil_command_duration_seconds",
            &[("cmd", c.name)],
            &buckets,
            c.usec as f64 / 1e6,
            c.calls,
        );
    }
}

/// What only Vigil has: the epoch, the lease, fences.
fn vigil_own(t: &mut Text, node: &Node, view: &GateView) {
    t.gauge(
        "vigil_epoch",
        "Highest failover epoch this node has seen",
        view.epoch as f64,
    );
    t.gauge(
        "vigil_managed",
        "Whether the sentinels assign this node's role",
        view.managed as u8 as f64,
    );
    t.gauge(
        "vigil_fenced",
        "Whether this node is fenced (acknowledges no write)",
        view.fenced as u8 as f64,
    );
    t.gauge(
        "vigil_writable",
        "Whether a write would be acknowledged now",
        view.writable as u8 as f64,
    );
    t.gauge(
        "vigil_lease_valid",
        "Whether this master holds a valid write lease",
        (view.role == Role::Master && !view.lease_remaining.is_zero()) as u8 as f64,
    );
    t.gauge(
        "vigil_lease_remaining_seconds",
        "Write lease time left",
        view.lease_remaining.as_secs_f64(),
    );
    let c = node.gate.counters();
    t.counter(
        "vigil_lease_renewals_total",
        "Lease renewals granted",
        c.renewals as f64,
    );
    t.counter(
        "vigil_lease_refusals_total",
        "Lease renewals refused (not master, fenced)",
        c.refusals as f64,
    );
    t.counter(
        "vigil_lease_expiries_total",
        "Times this node stopped serving as a leased master (a lease renewed late, within the hold, is not one)",
        c.lapses as f64,
    );
    t.counter("vigil_fences_total", "Fences received", c.fences as f64);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::within_bytes;

    #[test]
    fn byte_lag_against_the_reported_master_offset() {
        let now = Some((1000, Duration::from_secs(1)));
        for (i, (limit, seen, own, ok)) in [
            (100, now, 950, true),
            (100, now, 900, true),
            (100, now, 899, false),
            (0, now, 1000, true),
            (0, now, 999, false),
            // A replica ahead of a report that is a probe old.
            (0, now, 1200, true),
            // No report, or a stale one: bytes cannot be checked.
            (0, None, 0, true),
            (0, Some((1000, Duration::from_secs(60))), 0, true),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(within_bytes(limit, seen, own), ok, "#{i}");
        }
    }
}
