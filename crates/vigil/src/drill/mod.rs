//! `vigil drill`: failover drills. Starts a local cluster (or attaches to a running one),
//! drives a write workload through discovery, injects the scenario's fault each round, heals,
//! and measures what clients felt: detection, failover time, the unavailability window,
//! writes acknowledged and lost, divergent writes discarded, stale reads. Writes a JSON and a
//! self-contained HTML report; the result gates deployments through the exit code.
//!
//! - [`args`]: the command line.
//! - [`cluster`]: discovery, the sentinels' events, the wait for a whole cluster.
//! - [`round`]: one fault, its outcome, the healing and the measurements.
//! - [`faults`]: the scenarios and how each fault is injected and healed.
//! - [`pidfd`]: signals that cannot reach a process that reused a PID.
//! - [`workload`]: the writers and the loss check.
//! - [`report`]: the report and its renderings.
//! - [`shards`]: the drills of a sharded cluster (`--shards`), with their own workload,
//!   rounds and report.
//! - `progress`: the progress line on stderr.
//!
//! This module runs the drill: the cluster, the writers, the rounds in turn, the report.
//! Its children import each other, never this module.

pub mod args;
mod cluster;
pub mod faults;
pub mod pidfd;
mod progress;
pub mod report;
mod round;
pub mod shards;
pub mod workload;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::ctl::client::{Client, lazy_client};
use crate::up::{Backend, Cluster, LocalCluster};
pub use args::{DrillArgs, Mode};
use cluster::{EventLog, SETTLE, Sentinels, configure, down_after_of, healthy, watch_events};
use faults::{Processes, Scenario};
use progress::Progress;
use report::{Report, Summary};
use round::{Ctx, round};

/// `vigil drill` from the command line: runs the drill on its own runtime and returns the
/// process's exit code: 0 when every round passed, 1 when a round failed (the report says
/// which and why), 2 when the drill could not run.
pub fn main(args: DrillArgs) -> i32 {
    let r = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    match r {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("vigil drill: {e:#}");
            2
        }
    }
}

/// Runs the drill; `Ok(true)` when every round passed.
pub async fn run(args: DrillArgs) -> anyhow::Result<bool> {
    if args.rounds == 0 || args.writers == 0 {
        bail!("--rounds and --writers must be at least 1");
    }
    args.tls.apply()?;
    shards::check(args.scenario, args.shards > 0)?;
    let mut temp_dir = None;
    let (mut procs, sentinels, token, group) = if args.attach.is_empty() {
        let mut c = match &args.cluster {
            Some(path) => LocalCluster::load(path)?,
            None => {
                let dir = std::env::temp_dir().join(format!("vigil-drill-{}", std::process::id()));
                temp_dir = Some(dir.clone());
                generated_config(dir, args.shards)?
            }
        };
        if args.shards > 0 {
            c.shards = args.shards;
            c.check_shards("--shards")?;
        }
        c.down_after = humantime::format_duration(args.down_after).to_string();
        c.sync_replicas = match args.mode {
            Mode::Sync => 1,
            Mode::Async => 0,
        };
        if let Some(b) = args.backend {
            c.backend = b;
        }
        let sentinels = (0..3)
            .map(|i| format!("127.0.0.1:{}", c.grpc_base_port + i))
            .collect();
        let (token, group) = match c.shards {
            0 => (c.token.clone(), c.group.clone()),
            _ => (c.token.clone(), c.cluster.clone()),
        };
        let cluster = Cluster::start(&c)?;
        if c.shards > 0 {
            crate::up::create_cluster(&c).await?;
        }
        (Processes::Local(Box::new(cluster)), sentinels, token, group)
    } else {
        let token = args
            .token
            .clone()
            .ok_or_else(|| anyhow!("--attach needs the cluster token: --token or VIGIL_TOKEN"))?;
        (
            Processes::Attached,
            args.attach.clone(),
            token,
            args.group.clone(),
        )
    };
    // Interrupted, the drill still stops its cluster, continues a paused node and removes its
    // packet filter rules (all undone on drop).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = drill(&args, &mut procs, &sentinels, &token, &group) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow!("terminated")),
    };
    drop(procs);
    if let Some(d) = temp_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    let report = result?;
    std::fs::create_dir_all(&args.report)
        .with_context(|| format!("cannot create {}", args.report.display()))?;
    let json = args.report.join("report.json");
    let html = args.report.join("report.html");
    let (data, page, text, passed) = match &report {
        Outcome::Group(r) => (
            serde_json::to_string_pretty(r)?,
            report::html(r),
            report::text(r),
            r.passed,
        ),
        Outcome::Sharded(r) => (
            serde_json::to_string_pretty(r)?,
            shards::report::html(r),
            shards::report::text(r),
            r.passed,
        ),
    };
    std::fs::write(&json, data).with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(&html, page).with_context(|| format!("cannot write {}", html.display()))?;
    print!("{text}");
    println!("Reports: {} and {}", json.display(), html.display());
    Ok(passed)
}

/// What a drill found: a group's report, or a sharded cluster's.
enum Outcome {
    Group(Report),
    Sharded(shards::ShardReport),
}

/// A local cluster on free ports, in a row: the nodes' data and admin ports (three nodes, or
/// three per shard), three gRPC and three RESP ports of the sentinels, then every process's
/// metrics port.
fn generated_config(dir: PathBuf, shards: u16) -> anyhow::Result<LocalCluster> {
    let nodes = 3 * shards.max(1);
    let base = free_ports(3 * nodes + 9)?;
    Ok(LocalCluster {
        dir,
        base_port: base,
        admin_base_port: base + nodes,
        grpc_base_port: base + 2 * nodes,
        resp_base_port: base + 2 * nodes + 3,
        metrics_base_port: base + 2 * nodes + 6,
        group: "mymaster".into(),
        down_after: "1s".into(),
        sync_replicas: 1,
        token: "drill-token".into(),
        node_token: "drill-node-token".into(),
        backend: Backend::Vigil,
        redis_server: "redis-server".into(),
        shards,
        shard_replicas: 2,
        cluster: "mycluster".into(),
        node_threads: 1,
    })
}

/// `n` consecutive free ports (the first one returned), below the ephemeral range: an
/// OS-assigned port could be taken by some outgoing connection before the cluster binds it.
fn free_ports(n: u16) -> anyhow::Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
        .max(10_100);
    // Spread the starting points (by time and PID) so concurrent drills rarely collide.
    let seed = vigil_base::clock::unix_us() as u32 ^ std::process::id().wrapping_mul(2_654_435_761);
    let span = u32::from(low - 10_000 - n);
    for i in 0..2_000u32 {
        let p = 10_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % span) as u16;
        let all: Vec<_> = (0..n)
            .map(|k| std::net::TcpListener::bind(("127.0.0.1", p + k)))
            .collect();
        if all.iter().all(Result::is_ok) {
            return Ok(p);
        }
    }
    bail!("found no {n} consecutive free ports below {low}")
}

async fn drill(
    args: &DrillArgs,
    procs: &mut Processes,
    sentinels: &[String],
    token: &str,
    group: &str,
) -> anyhow::Result<Outcome> {
    let clients = sentinels
        .iter()
        .map(|a| lazy_client(a, token, Duration::from_secs(2)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let progress = Progress {
        rounds: args.rounds,
        tty: std::io::stderr().is_terminal(),
    };
    if args.shards > 0 {
        let r = shards::drill(args, procs, &clients, group, &progress).await;
        progress.finish();
        return r.map(Outcome::Sharded);
    }
    group_drill(args, procs, &clients, token, group, &progress)
        .await
        .map(Outcome::Group)
}

/// The drill of one group.
async fn group_drill(
    args: &DrillArgs,
    procs: &mut Processes,
    clients: &[Client],
    token: &str,
    group: &str,
    progress: &Progress,
) -> anyhow::Result<Report> {
    let clients = clients.to_vec();
    progress.show(1, "waiting for the cluster to be healthy");
    let first = healthy(&clients, group, SETTLE).await?;
    if let Processes::Local(_) = procs {
        configure(&first.leader_client, group, args).await?;
    }
    let events: EventLog = Arc::default();
    watch_events(&clients, group, events.clone());
    let sentinels = Sentinels {
        clients: clients.clone(),
        group: group.into(),
    };
    // The writers ask the sentinels' Redis Sentinel protocol ports, as client libraries do.
    let resp: Vec<String> = first.members.iter().map(|m| m.resp.clone()).collect();
    let record = workload::start(args.writers, resp, group, args.mode == Mode::Sync);
    if let Err(e) = workload::first_ack(|| !record.acks.lock().is_empty()).await {
        record.stop();
        return Err(e);
    }
    let mut rounds = Vec::new();
    let mut settings_down_after = 0;
    let mut last_failover: Option<Instant> = None;
    for n in 1..=args.rounds {
        progress.show(n, "waiting for the cluster to be healthy");
        let before = healthy(&clients, group, SETTLE).await?;
        settings_down_after = down_after_of(&before.leader_client, group).await;
        if let Some(t) = last_failover {
            let wait = (t + before.min_failover_interval + Duration::from_millis(200))
                .saturating_duration_since(Instant::now());
            tokio::time::sleep(wait).await;
        }
        // Let the writers run a moment on the healthy cluster.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let victim = match args.scenario {
            Scenario::KillSentinelLeader => format!("sentinel {}", before.leader),
            _ => before.master.clone(),
        };
        progress.show(n, &format!("{} of {victim}", args.scenario.name()));
        let cx = Ctx {
            scenario: args.scenario,
            mode: args.mode,
            clients: &clients,
            token,
            sentinels: &sentinels,
            record: &record,
            events: &events,
            progress,
        };
        let r = round(
            &cx,
            n,
            procs,
            &before,
            Duration::from_millis(settings_down_after),
        )
        .await;
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                record.stop();
                progress.finish();
                return Err(e.context(format!("round {n}")));
            }
        };
        if r.recovered && args.scenario.fails_over() {
            last_failover = Some(Instant::now());
        }
        rounds.push(r);
    }
    record.stop();
    progress.finish();
    let summary = Summary::of(&rounds);
    let passed = rounds.iter().all(|r| r.ok);
    let backend = match &*procs {
        Processes::Local(c) => c.config.backend.name().to_string(),
        Processes::Attached => "attached".to_string(),
    };
    Ok(Report {
        scenario: args.scenario.name().into(),
        backend,
        mode: match args.mode {
            Mode::Sync => "sync".into(),
            Mode::Async => "async".into(),
        },
        down_after_ms: settings_down_after,
        writers: args.writers,
        confirmed_with_wait: record.waited.load(std::sync::atomic::Ordering::Relaxed),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        rounds,
        summary,
        passed,
    })
}
