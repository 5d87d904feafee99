//! `vigil drill`: failover drills. Starts a local cluster (or attaches to a running one),
//! drives a write workload through discovery, injects the scenario's fault each round, heals,
//! and measures what clients felt: detection, failover time, the unavailability window,
//! writes acknowledged and lost, divergent writes discarded, stale reads. Writes a JSON and a
//! self-contained HTML report; the result gates deployments through the exit code.
//!
//! - [`faults`]: the scenarios and how each fault is injected and healed.
//! - [`workload`]: the writers and the loss check.
//! - [`report`]: the report and its renderings.

pub mod faults;
pub mod report;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use parking_lot::Mutex;
use vigil_proto::sentinel as pb;

use crate::ctl::{Client, lazy_client};
use crate::up::{Cluster, LocalCluster};
use faults::{Partition, Processes, Scenario, Stopped, Target};
use report::{Mark, Report, Round, Summary};

/// Replication mode of the drilled group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Writes acknowledged once a replica has them (`sync_replicas = 1`): nothing may be lost.
    Sync,
    /// Asynchronous replication: a failover may discard the old master's last writes.
    Async,
}

/// `vigil drill` flags.
#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// The fault each round injects.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// How many rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Replication mode of a local cluster (an attached one is drilled as configured).
    #[arg(long, value_enum, default_value = "sync")]
    pub mode: Mode,
    /// `down_after` of a local cluster.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub down_after: Duration,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Start the local cluster from this file (config/local-cluster.toml's format) instead
    /// of on free ports in a temporary directory.
    #[arg(long, conflicts_with = "attach")]
    pub cluster: Option<PathBuf>,
    /// Drill a running cluster: its sentinels' gRPC addresses, comma-separated. Faults act
    /// on processes of this machine found by their ports; killed ones must be restarted by
    /// their supervisor.
    #[arg(long, value_delimiter = ',')]
    pub attach: Vec<String>,
    /// The group to drill (attached clusters).
    #[arg(long, default_value = "mymaster")]
    pub group: String,
    /// The cluster token (attached clusters).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where to write report.json and report.html.
    #[arg(long, default_value = "drill-report")]
    pub report: PathBuf,
}

/// How long a cluster may take to become healthy (between rounds, after healing).
const SETTLE: Duration = Duration::from_secs(60);

/// Runs the drill; `Ok(true)` when every round passed.
pub async fn run(args: DrillArgs) -> anyhow::Result<bool> {
    if args.rounds == 0 || args.writers == 0 {
        bail!("--rounds and --writers must be at least 1");
    }
    let mut temp_dir = None;
    let (mut procs, sentinels, token, group) = if args.attach.is_empty() {
        let mut c = match &args.cluster {
            Some(path) => LocalCluster::load(path)?,
            None => {
                let dir = std::env::temp_dir().join(format!("vigil-drill-{}", std::process::id()));
                temp_dir = Some(dir.clone());
                generated_config(dir)?
            }
        };
        c.down_after = humantime::format_duration(args.down_after).to_string();
        c.sync_replicas = match args.mode {
            Mode::Sync => 1,
            Mode::Async => 0,
        };
        let sentinels = (0..3)
            .map(|i| format!("127.0.0.1:{}", c.grpc_base_port + i))
            .collect();
        let (token, group) = (c.token.clone(), c.group.clone());
        (
            Processes::Local(Cluster::start(&c)?),
            sentinels,
            token,
            group,
        )
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
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(&html, report::html(&report))
        .with_context(|| format!("cannot write {}", html.display()))?;
    print!("{}", report::text(&report));
    println!("Reports: {} and {}", json.display(), html.display());
    Ok(report.passed)
}

/// A local cluster on free ports.
fn generated_config(dir: PathBuf) -> anyhow::Result<LocalCluster> {
    Ok(LocalCluster {
        dir,
        base_port: free_ports()?,
        admin_base_port: free_ports()?,
        grpc_base_port: free_ports()?,
        resp_base_port: free_ports()?,
        group: "mymaster".into(),
        down_after: "1s".into(),
        sync_replicas: 1,
        token: "drill-token".into(),
        node_token: "drill-node-token".into(),
    })
}

/// Three consecutive free ports (the first one returned), below the ephemeral range's usual
/// busy top.
fn free_ports() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let first = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = first.local_addr()?.port();
        if p > 60000 {
            continue;
        }
        let rest: Vec<_> = (1..3)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return Ok(p);
        }
    }
    bail!("found no three consecutive free ports")
}

/// How clients and the drill find the master: the sentinels' `GetMaster`, asked in turn.
pub struct Discovery {
    clients: Vec<Client>,
    group: String,
}

impl Discovery {
    /// The master's data address, if some sentinel names one that is not being failed over.
    pub async fn master(&self) -> Option<String> {
        self.master_info().await.map(|m| m.address)
    }

    async fn master_info(&self) -> Option<pb::MasterInfo> {
        for c in &self.clients {
            let req = pb::GetMasterRequest {
                group: self.group.clone(),
            };
            if let Ok(m) = c.clone().get_master(req).await
                && m.get_ref().status == "ok"
            {
                return Some(m.into_inner());
            }
        }
        None
    }
}

/// Events from every sentinel, with the local time each arrived (the leader's own actions,
/// such as `+odown`, are published only on its stream).
type EventLog = Arc<Mutex<Vec<(Instant, pb::TopologyEvent)>>>;

fn watch_events(clients: &[Client], group: &str, log: EventLog) {
    for c in clients {
        let (mut c, group, log) = (c.clone(), group.to_string(), log.clone());
        tokio::spawn(async move {
            loop {
                let mut req = tonic::Request::new(pb::WatchRequest {});
                req.set_timeout(Duration::from_secs(365 * 24 * 3600));
                if let Ok(stream) = c.watch_topology(req).await {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(ev)) = stream.message().await {
                        if ev.group == group {
                            log.lock().push((Instant::now(), ev));
                        }
                    }
                }
                // A sentinel killed by the drill: watch it again once it is back.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

/// The cluster's shape when it is healthy.
struct Healthy {
    master: String,
    address: String,
    epoch: u64,
    leader: u64,
    /// Each sentinel's id and gRPC address.
    members: Vec<(u64, String)>,
    /// A client of the leader.
    leader_client: Client,
    /// Each node's name, data and admin address.
    nodes: Vec<pb::Node>,
    min_failover_interval: Duration,
}

/// Waits until a master is assigned, every other node follows it with its link up, no
/// failover is in flight, and every sentinel is reachable from the leader.
async fn healthy(clients: &[Client], group: &str, within: Duration) -> anyhow::Result<Healthy> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no sentinel answered");
    while Instant::now() < deadline {
        match check_healthy(clients, group).await {
            Ok(h) => return Ok(h),
            Err(why) => last = why,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the cluster did not become healthy within {within:?}: {last}")
}

async fn check_healthy(clients: &[Client], group: &str) -> Result<Healthy, String> {
    for c in clients {
        let Ok(info) = c.clone().cluster_status(pb::ClusterStatusRequest {}).await else {
            continue;
        };
        let info = info.into_inner();
        if info.leader == 0 || info.leader != info.id {
            continue;
        }
        // This one leads: it knows what it reaches and what it is doing.
        if let Some(m) = info.members.iter().find(|m| !m.reachable) {
            return Err(format!(
                "sentinel {} is not reachable from the leader",
                m.id
            ));
        }
        let groups = c
            .clone()
            .list_groups(pb::ListGroupsRequest {})
            .await
            .map_err(|e| e.message().to_string())?
            .into_inner();
        let g = groups
            .groups
            .into_iter()
            .find(|g| g.name == group)
            .ok_or_else(|| format!("no group {group:?} is monitored"))?;
        if g.master.is_empty() {
            return Err("no master is assigned".into());
        }
        if !g.failover_step.is_empty() {
            return Err(format!("a failover is in flight ({})", g.failover_step));
        }
        for h in &g.health {
            let fine = if h.name == g.master {
                h.role == "master" && h.writable
            } else {
                h.role == "replica" && h.link == "up"
            };
            if !fine || h.sdown {
                return Err(format!(
                    "{} is {} (link {:?}, down {})",
                    h.name, h.role, h.link, h.sdown
                ));
            }
        }
        let address = g
            .nodes
            .iter()
            .find(|n| n.name == g.master)
            .map(|n| n.data.clone())
            .unwrap_or_default();
        let s = g.settings.unwrap_or_default();
        return Ok(Healthy {
            leader_client: c.clone(),
            master: g.master,
            address,
            epoch: g.epoch,
            leader: info.leader,
            members: info
                .members
                .iter()
                .map(|m| (m.id, m.address.clone()))
                .collect(),
            nodes: g.nodes,
            min_failover_interval: Duration::from_millis(s.min_failover_interval_ms),
        });
    }
    Err("no sentinel leads".into())
}

fn port_of(address: &str) -> anyhow::Result<u16> {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| anyhow!("{address:?} has no port"))
}

/// Progress on stderr: a bar redrawn in place on a terminal, a line per step otherwise.
struct Progress {
    rounds: usize,
    tty: bool,
}

impl Progress {
    fn show(&self, round: usize, what: &str) {
        let done = round.saturating_sub(1);
        if self.tty {
            let width = 20;
            let filled = done * width / self.rounds.max(1);
            eprint!(
                "\r\x1b[2K[{}{}] round {round}/{}: {what}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                self.rounds
            );
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("round {round}/{}: {what}", self.rounds);
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

async fn drill(
    args: &DrillArgs,
    procs: &mut Processes,
    sentinels: &[String],
    token: &str,
    group: &str,
) -> anyhow::Result<Report> {
    let clients = sentinels
        .iter()
        .map(|a| lazy_client(a, token, Duration::from_secs(2)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let progress = Progress {
        rounds: args.rounds,
        tty: std::io::stderr().is_terminal(),
    };
    progress.show(1, "waiting for the cluster to be healthy");
    let first = healthy(&clients, group, SETTLE).await?;
    // Local clusters: rounds need not wait the default five seconds between failovers.
    if let Processes::Local(_) = procs {
        let interval = (args.down_after.as_millis() as u64).max(1000);
        let req = pb::SetOptionRequest {
            group: group.into(),
            key: "min-failover-interval".into(),
            value: interval.to_string(),
        };
        first
            .leader_client
            .clone()
            .set_option(req)
            .await
            .map_err(|e| anyhow!("cannot set min-failover-interval: {}", e.message()))?;
    }
    let events: EventLog = Arc::default();
    watch_events(&clients, group, events.clone());
    let discovery = Arc::new(Discovery {
        clients: clients.clone(),
        group: group.into(),
    });
    let record = workload::start(args.writers, discovery.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while record.acks.lock().is_empty() {
        if Instant::now() > deadline {
            record.stop();
            bail!("the writers got no write acknowledged within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
            discovery: &discovery,
            record: &record,
            events: &events,
            progress: &progress,
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
    Ok(Report {
        scenario: args.scenario.name().into(),
        mode: match args.mode {
            Mode::Sync => "sync".into(),
            Mode::Async => "async".into(),
        },
        down_after_ms: settings_down_after,
        writers: args.writers,
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        rounds,
        summary,
        passed,
    })
}

async fn down_after_of(c: &Client, group: &str) -> u64 {
    let Ok(groups) = c.clone().list_groups(pb::ListGroupsRequest {}).await else {
        return 0;
    };
    groups
        .into_inner()
        .groups
        .iter()
        .find(|g| g.name == group)
        .and_then(|g| g.settings)
        .map_or(0, |s| s.down_after_ms)
}

/// A fault in place, undone by [`heal`].
enum Injected {
    Killed(Target),
    Paused(Stopped),
    Cut(Partition),
    Nothing,
}

/// What every round works with.
struct Ctx<'a> {
    scenario: Scenario,
    mode: Mode,
    clients: &'a [Client],
    token: &'a str,
    discovery: &'a Discovery,
    record: &'a workload::Record,
    events: &'a EventLog,
    progress: &'a Progress,
}

async fn round(
    cx: &Ctx<'_>,
    n: usize,
    procs: &mut Processes,
    before: &Healthy,
    down_after: Duration,
) -> anyhow::Result<Round> {
    let Ctx {
        scenario,
        mode,
        clients,
        token,
        discovery,
        record,
        events,
        progress,
    } = *cx;
    let ev_mark = events.lock().len();
    let ack_mark = record.acks.lock().len();
    let stale_mark = record.stale_reads.load(Ordering::Relaxed);
    let master_node = before
        .nodes
        .iter()
        .find(|x| x.name == before.master)
        .cloned()
        .ok_or_else(|| anyhow!("the master {} is not among the nodes", before.master))?;
    let mut problems = Vec::new();
    let t0 = Instant::now();
    let injected = match scenario {
        Scenario::KillMaster => {
            let t = procs.find(&before.master, port_of(&master_node.data)?)?;
            procs.kill(&t)?;
            Injected::Killed(t)
        }
        Scenario::PauseMaster => {
            let t = procs.find(&before.master, port_of(&master_node.data)?)?;
            Injected::Paused(procs.pause(&t)?)
        }
        Scenario::PartitionMaster => Injected::Cut(Partition::cut(&[
            port_of(&master_node.data)?,
            port_of(&master_node.admin)?,
        ])?),
        Scenario::KillSentinelLeader => {
            let addr = before
                .members
                .iter()
                .find(|m| m.0 == before.leader)
                .map(|m| m.1.clone())
                .unwrap_or_default();
            let t = procs.find(&format!("sentinel{}", before.leader), port_of(&addr)?)?;
            procs.kill(&t)?;
            Injected::Killed(t)
        }
        Scenario::Switchover => {
            let req = pb::FailoverRequest {
                group: discovery.group.clone(),
                target: String::new(),
            };
            before
                .leader_client
                .clone()
                .failover(req)
                .await
                .map_err(|e| anyhow!("switchover refused: {}", e.message()))?;
            Injected::Nothing
        }
    };
    // The outcome: a new master that acknowledged a write, or (sentinel leader killed) a new
    // leader and the same master.
    let limit = down_after * 3 + Duration::from_secs(15);
    let mut new_master = before.master.clone();
    let mut new_address = before.address.clone();
    let mut epoch_after = before.epoch;
    let mut failover_ms = None;
    let mut recovered = false;
    if scenario.fails_over() {
        progress.show(n, "waiting for the new master's first acknowledged write");
        while t0.elapsed() < limit {
            if let Some(m) = discovery.master_info().await
                && m.epoch > before.epoch
            {
                new_master = m.node;
                new_address = m.address;
                epoch_after = m.epoch;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if epoch_after == before.epoch {
            problems.push(format!("no failover within {limit:?}"));
        } else {
            while t0.elapsed() < limit {
                let first = record
                    .acks
                    .lock()
                    .iter()
                    .skip(ack_mark)
                    .find(|a| a.master == new_address && a.at > t0)
                    .map(|a| a.at);
                if let Some(at) = first {
                    failover_ms = Some(ms(at - t0));
                    recovered = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !recovered {
                problems.push(format!("the new master {new_master} acknowledged no write"));
            }
        }
    } else {
        progress.show(n, "waiting for a new sentinel leader");
        let survivors: Vec<Client> = before
            .members
            .iter()
            .filter(|m| m.0 != before.leader)
            .filter_map(|m| lazy_client(&m.1, token, Duration::from_secs(1)).ok())
            .collect();
        let mut elected = false;
        while t0.elapsed() < limit && !elected {
            for c in &survivors {
                if let Ok(s) = c.clone().cluster_status(pb::ClusterStatusRequest {}).await
                    && s.get_ref().leader != 0
                    && s.get_ref().leader != before.leader
                {
                    elected = true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Watch the workload a while longer: the master must keep its lease.
        tokio::time::sleep(down_after * 2).await;
        let still = discovery.master_info().await;
        epoch_after = still.as_ref().map_or(before.epoch, |m| m.epoch);
        if !elected {
            problems.push(format!("no new sentinel leader within {limit:?}"));
        }
        if epoch_after != before.epoch {
            problems.push("the master was failed over although only a sentinel died".into());
            new_master = still.map(|m| m.node).unwrap_or_default();
        }
        recovered = elected && epoch_after == before.epoch;
    }
    let healed_at = Instant::now();
    progress.show(n, "healing");
    match injected {
        Injected::Killed(t) => procs.restart(&t)?,
        Injected::Paused(stopped) => drop(stopped),
        Injected::Cut(p) => drop(p),
        Injected::Nothing => {}
    }
    progress.show(n, "waiting for the cluster to heal");
    let after = healthy(clients, &discovery.group, SETTLE).await?;
    // Acknowledged writes of the round, checked on the master that now serves.
    let (acks, stale) = {
        let all = record.acks.lock();
        (
            all[ack_mark..].to_vec(),
            record.stale_reads.load(Ordering::Relaxed),
        )
    };
    let keys: Vec<String> = acks.iter().map(|a| a.key.clone()).collect();
    let acked_lost = workload::missing(&after.address, &keys).await?;
    // The longest silence, from the last acknowledgement before the fault.
    let mut times: Vec<Instant> = acks.iter().map(|a| a.at).collect();
    times.sort();
    let start = times
        .iter()
        .rev()
        .find(|t| **t <= t0)
        .copied()
        .unwrap_or(t0);
    let mut unavailable = Duration::ZERO;
    let mut prev = start;
    for t in times.iter().filter(|t| **t > start) {
        unavailable = unavailable.max(*t - prev);
        prev = *t;
    }
    let evs: Vec<(Instant, pb::TopologyEvent)> = events.lock()[ev_mark..].to_vec();
    let first = |kind: &str, node: Option<&str>| {
        evs.iter()
            .filter(|(at, e)| *at >= t0 && e.kind == kind && node.is_none_or(|n| e.node == n))
            .map(|(at, _)| ms(*at - t0))
            .reduce(f64::min)
    };
    let detection_ms = first("+sdown", Some(&before.master));
    let odown_ms = first("+odown", Some(&before.master));
    let promote_ms = first("+promoted-slave", None);
    let switch_ms = first("+switch-master", None);
    // Each demotion is reported once, by the leader that made it.
    let divergent_bytes = evs
        .iter()
        .filter(|(_, e)| e.kind == "+convert-to-slave")
        .filter_map(|(_, e)| {
            e.detail
                .split_whitespace()
                .skip_while(|w| *w != "divergent_bytes")
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    let mut timeline = vec![Mark {
        label: "fault".into(),
        at_ms: 0.0,
    }];
    for (label, at) in [
        ("+sdown", detection_ms),
        ("+odown", odown_ms),
        ("+promoted-slave", promote_ms),
        ("+switch-master", switch_ms),
        ("first write", failover_ms),
        ("healed", Some(ms(healed_at - t0))),
    ] {
        if let Some(at_ms) = at {
            timeline.push(Mark {
                label: label.into(),
                at_ms,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    let events = evs
        .iter()
        .filter(|(_, e)| seen.insert((e.index, e.kind.clone(), e.node.clone(), e.detail.clone())))
        .map(|(at, e)| report::EventMark {
            at_ms: ms(at.saturating_duration_since(t0)),
            kind: e.kind.clone(),
            node: e.node.clone(),
            detail: e.detail.clone(),
        })
        .collect();
    if mode == Mode::Sync && acked_lost > 0 {
        problems.push(format!(
            "{acked_lost} acknowledged writes lost in sync mode"
        ));
    }
    let stale_reads = stale - stale_mark;
    Ok(Round {
        round: n,
        old_master: before.master.clone(),
        new_master,
        epoch_before: before.epoch,
        epoch_after,
        detection_ms,
        odown_ms,
        promote_ms,
        failover_ms,
        unavailable_ms: ms(unavailable),
        writes_acked: acks.len() as u64,
        acked_lost,
        divergent_bytes,
        stale_reads,
        recovered,
        ok: recovered && problems.is_empty(),
        problems,
        timeline,
        events,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
