//! The node's background work, on a 100 ms tick: noticing a lapsed lease, active expiry,
//! keepalive PINGs down the replication stream, the ops/sec sample and auto-compaction.
//!
//! The invariant: expiry and PINGs extend the stream only while the write gate says the node
//! may write, checked under the store lock: a fenced master's history never grows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vigil_base::clock::unix_ms;

use crate::ctx::Prop;
use crate::node::Node;

/// Active expiry, auto-compaction and the ops/sec sampler.
pub(crate) async fn background(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut ticks = 0u64;
    let (mut last_cmds, mut last_in, mut last_out) = (0u64, 0u64, 0u64);
    let (mut last_repl_in, mut last_repl_out) = (0u64, 0u64);
    let mut last_ping = Instant::now();
    loop {
        tick.tick().await;
        ticks += 1;
        node.check_lease();
        // `used_memory_peak` sees what happens between two INFOs, as Redis' cron samples it.
        node.maxmemory.used_and_peak();
        // A running script holds the store: this tick's work waits for the next one rather
        // than parking a worker thread on the lock (see engines::Busy and script::busy).
        if node.scripts.busy.running() {
            continue;
        }
        forget_leftovers(&node);
        active_expire(&node);
        if last_ping.elapsed() >= node.config.read().replication.ping_period {
            last_ping = Instant::now();
            ping_replicas(&node);
        }
        if ticks.is_multiple_of(10) {
            let stats = &node.shared.stats;
            // CONFIG RESETSTAT may have zeroed the counters since the last sample.
            let rate = |now: u64, last: &mut u64, to: &std::sync::atomic::AtomicU64| {
                to.store(now.saturating_sub(*last), Ordering::Relaxed);
                *last = now;
            };
            let cmds = stats.commands_processed.load(Ordering::Relaxed);
            rate(cmds, &mut last_cmds, &node.ops_per_sec);
            let read = stats.net_input_bytes.load(Ordering::Relaxed);
            rate(read, &mut last_in, &node.input_per_sec);
            let written = stats.net_output_bytes.load(Ordering::Relaxed);
            rate(written, &mut last_out, &node.output_per_sec);
            let repl_in = node.repl.net_in.load(Ordering::Relaxed);
            rate(repl_in, &mut last_repl_in, &node.repl_input_per_sec);
            let repl_out = node.repl.net_out.load(Ordering::Relaxed);
            rate(repl_out, &mut last_repl_out, &node.repl_output_per_sec);
            maybe_compact(&node);
            node.migrate.close_idle();
        }
    }
}

/// Removes the WATCHes of clients that disconnected during a script ([`Node::leftovers`]).
fn forget_leftovers(node: &Node) {
    let left = std::mem::take(&mut *node.leftovers.lock());
    if left.is_empty() {
        return;
    }
    let mut store = node.store.lock();
    for w in left {
        store.dbs[w.db].unwatch(&w.key, &w.flags);
    }
}

/// A master sends PING down the stream so idle replicas know the link is alive.
///
/// Only while it may acknowledge writes: a PING is stream bytes, and a fenced master (or one
/// whose lease ran out) must not extend its history past the offset the sentinels took as
/// final, or every byte after it counts as divergent when it is demoted (Redis' own master
/// stops pinging its replicas while writes are paused, for FAILOVER, for the same reason).
/// Its replicas hear nothing meanwhile and, after `replication.timeout`, reconnect and
/// continue partially.
fn ping_replicas(node: &Node) {
    // Checked under the store lock, which a fence takes too: after the fence, no PING.
    let _store = node.store.lock();
    if !node.gate.may_write(Instant::now()) {
        return;
    }
    let mut feed = node.repl.feed.lock();
    if feed.links.is_empty() {
        return;
    }
    let mut bytes = Vec::new();
    crate::stream::encode_command(&mut bytes, &[Bytes::from_static(b"PING")]);
    feed.push_ping(&bytes);
    if let Some(aof) = &node.persist.aof {
        aof.append(&bytes);
    }
}

/// Redis' active expiry: sample keys with a TTL, delete the expired ones, repeat while more
/// than a quarter of a sample was expired, within a time budget so clients are not starved.
fn active_expire(node: &Node) {
    if !node
        .active_expire
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let start = Instant::now();
    let mut store = node.store.lock();
    // Only a node that takes writes expires keys: replicas (and fenced or unassigned nodes)
    // wait for the master's DEL, hiding expired keys meanwhile. Checked under the store lock,
    // as role changes and fences take it: a fenced master's history must not grow.
    // Nor while CLIENT PAUSE holds writes: nothing may be propagated then.
    if !node.gate.may_write(Instant::now()) || node.pause.writes_paused() {
        return;
    }
    let now = unix_ms();
    let mut props: Vec<Prop> = Vec::new();
    store.tracking().set_current(0);
    for dbi in 0..store.dbs.len() {
        loop {
            let db = &store.dbs[dbi];
            if db.expires.is_empty() {
                break;
            }
            let mut expired = Vec::new();
            let sample = 20.min(db.expires.len());
            for _ in 0..sample {
                let i = rand::random_range(0..db.expires.len());
                if let Some((k, at)) = db.expires.get_index(i)
                    && *at <= now
                {
                    expired.push(k.clone());
                }
            }
            expired.sort();
            expired.dedup();
            for k in &expired {
                let del = store.expire_key(dbi, k);
                props.push((dbi, del));
            }
            if expired.len() * 4 <= sample || start.elapsed() > Duration::from_millis(25) {
                break;
            }
        }
    }
    store.tracking().flush();
    store.publish_events(&node.shared.hub);
    node.propagate(&props);
    // Redis' "expire-cycle" latency event: a cycle that held the dataset too long.
    node.slowlog
        .sample_if_needed("expire-cycle", start.elapsed().as_millis() as u64);
}

fn maybe_compact(node: &Node) {
    let (min, pct) = {
        let c = node.config.read();
        (
            c.persistence.auto_compact_min_size,
            c.persistence.auto_compact_percentage,
        )
    };
    let Some(aof) = &node.persist.aof else { return };
    if pct == 0 || node.persist.compacting() {
        return;
    }
    let size = aof.size();
    let base = node.persist.base_size.load(Ordering::Relaxed);
    if size >= min && size.saturating_mul(100) >= base.saturating_mul(pct) {
        tracing::info!(size, base, "append log grew past the threshold, compacting");
        node.save_background();
    }
}
