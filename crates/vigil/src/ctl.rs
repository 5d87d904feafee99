//! `vigil ctl`: the operator's client of the sentinels' gRPC API (`SentinelService`).
//!
//! Reads go to the sentinel given with `--sentinel`; group details and membership changes go
//! to the Raft leader it names (only the leader knows what it is doing about a group, and
//! membership changes run there). Every failure is turned into a sentence that says what to
//! do: an unreachable sentinel, a refused token, an unknown group, a failover in flight.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use vigil_proto::auth::Bearer;
use vigil_proto::sentinel as pb;
use vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient;

/// `vigil ctl` flags.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// A sentinel's gRPC address (`grpc` in its config).
    #[arg(long, env = "VIGIL_SENTINEL", default_value = "127.0.0.1:27379")]
    pub sentinel: String,
    /// The sentinels' cluster token (`token` in their config).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the cluster token (surrounding whitespace ignored).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Print JSON (one document; one object per line for `watch`) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long one call may take.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `vigil ctl` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CtlCommand {
    /// Groups (master, replicas with their lag, epoch, failover state) and the sentinels
    /// (Raft leader, term, members).
    Status,
    /// Streams events (`+sdown`, `+odown`, `+switch-master`, ...) as they happen; Ctrl-C ends.
    Watch {
        /// Only this group's events.
        #[arg(long)]
        group: Option<String>,
    },
    /// Manual failover (switchover): fence the master, let a replica catch up, promote it.
    Failover {
        /// The group.
        group: String,
        /// The node to promote (default: the best replica).
        #[arg(long)]
        to: Option<String>,
    },
    /// Starts monitoring a group of storage nodes.
    Monitor {
        /// The group's name (the Sentinel "master name").
        group: String,
        /// A node as NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY], e.g.
        /// `n1,10.0.0.1:6379,10.0.0.1:16379`; repeat for each node.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Sentinels that must see the master down (default: a majority).
        #[arg(long)]
        quorum: Option<u32>,
        /// How long a master may be silent before it counts as down (e.g. `1s`).
        #[arg(long, value_parser = humantime::parse_duration)]
        down_after: Option<Duration>,
        /// Replicas that must acknowledge a write before the master does (0: asynchronous).
        #[arg(long)]
        sync_replicas: Option<u32>,
    },
    /// Stops monitoring a group (its nodes keep running).
    Remove {
        /// The group.
        group: String,
    },
    /// Changes a group setting, with Redis Sentinel's names: quorum, down-after-milliseconds,
    /// failover-timeout, parallel-syncs, max-lag-on-failover, sync-replicas,
    /// min-failover-interval.
    Set {
        /// The group.
        group: String,
        /// The setting.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Changes the sentinels' Raft membership.
    #[command(subcommand)]
    Sentinel(SentinelCommand),
}

/// `vigil ctl sentinel ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SentinelCommand {
    /// Adds a sentinel (a learner first, a voter once it has caught up). Start it first with
    /// the others as its peers.
    Add {
        /// Its id.
        id: u64,
        /// Its gRPC address, host:port.
        address: String,
    },
    /// Removes a sentinel (leadership moves away first if it leads).
    Remove {
        /// Its id.
        id: u64,
    },
    /// Hands Raft leadership to another sentinel.
    TransferLeader {
        /// The sentinel to lead.
        to: u64,
    },
}

/// A `SentinelService` client sending the cluster token.
pub type Client = SentinelServiceClient<InterceptedService<Channel, Bearer>>;

/// A connection to one sentinel.
struct Sentinel {
    address: String,
    client: Client,
}

/// Runs `vigil ctl`.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let token = token(&args)?;
    let first = connect(&args.sentinel, &token, args.timeout).await?;
    match &args.command {
        CtlCommand::Status => status(&first, &token, &args).await,
        CtlCommand::Watch { group } => watch(first, group.as_deref(), args.json).await,
        CtlCommand::Failover { group, to } => {
            let leader = leader(&first, &token, args.timeout).await?;
            let req = pb::FailoverRequest {
                group: group.clone(),
                target: to.clone().unwrap_or_default(),
            };
            let ack = call(&leader, leader.client.clone().failover(req)).await?;
            done(
                args.json,
                ack.index,
                &format!("failover of {group:?} started; `vigil ctl watch` follows it"),
            )
        }
        CtlCommand::Monitor {
            group,
            nodes,
            quorum,
            down_after,
            sync_replicas,
        } => {
            let nodes = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = pb::MonitorRequest {
                name: group.clone(),
                nodes,
                settings: Some(pb::Settings {
                    quorum: quorum.unwrap_or(0),
                    down_after_ms: down_after.map_or(0, |d| d.as_millis() as u64),
                    sync_replicas: sync_replicas.unwrap_or(0),
                    ..Default::default()
                }),
            };
            let ack = call(&first, first.client.clone().monitor(req)).await?;
            done(args.json, ack.index, &format!("monitoring {group:?}"))
        }
        CtlCommand::Remove { group } => {
            let req = pb::RemoveRequest {
                group: group.clone(),
            };
            let ack = call(&first, first.client.clone().remove(req)).await?;
            done(args.json, ack.index, &format!("removed {group:?}"))
        }
        CtlCommand::Set { group, key, value } => {
            let req = pb::SetOptionRequest {
                group: group.clone(),
                key: key.clone(),
                value: value.clone(),
            };
            let ack = call(&first, first.client.clone().set_option(req)).await?;
            done(args.json, ack.index, &format!("{group}: {key} = {value}"))
        }
        CtlCommand::Sentinel(cmd) => {
            let leader = leader(&first, &token, args.timeout).await?;
            let mut c = leader.client.clone();
            let (ack, what) = match cmd {
                SentinelCommand::Add { id, address } => {
                    let req = pb::AddSentinelRequest {
                        id: *id,
                        address: address.clone(),
                    };
                    (
                        call(&leader, c.add_sentinel(req)).await?,
                        format!("sentinel {id} added at {address}"),
                    )
                }
                SentinelCommand::Remove { id } => (
                    call(
                        &leader,
                        c.remove_sentinel(pb::RemoveSentinelRequest { id: *id }),
                    )
                    .await?,
                    format!("sentinel {id} removed"),
                ),
                SentinelCommand::TransferLeader { to } => (
                    call(
                        &leader,
                        c.transfer_leader(pb::TransferLeaderRequest { to: *to }),
                    )
                    .await?,
                    format!("leadership handed to sentinel {to}"),
                ),
            };
            done(args.json, ack.index, &what)
        }
    }
}

fn token(args: &CtlArgs) -> anyhow::Result<String> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!(
            "no cluster token: pass --token, set VIGIL_TOKEN, or --token-file (the sentinels' `token`)"
        ),
    };
    if token.is_empty() {
        bail!("the cluster token is empty");
    }
    Ok(token)
}

fn bearer(token: &str) -> anyhow::Result<Bearer> {
    Bearer::new(token).ok_or_else(|| anyhow!("the cluster token must be printable ASCII"))
}

fn endpoint(address: &str, timeout: Duration) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(format!("http://{address}"))
        .map_err(|_| anyhow!("{address:?} is not a host:port address"))?
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout))
}

/// A client of the sentinel at `address` that connects on first use (and again after a
/// failure): for callers that outlive a sentinel's restart.
pub fn lazy_client(address: &str, token: &str, timeout: Duration) -> anyhow::Result<Client> {
    let channel = endpoint(address, timeout)?.tcp_nodelay(true).connect_lazy();
    Ok(SentinelServiceClient::with_interceptor(
        channel,
        bearer(token)?,
    ))
}

async fn connect(address: &str, token: &str, timeout: Duration) -> anyhow::Result<Sentinel> {
    let bearer = bearer(token)?;
    let channel = endpoint(address, timeout)?.connect().await.map_err(|e| {
        anyhow!(
            "cannot reach the sentinel at {address} ({}): is it running, and is this its gRPC \
             address (`grpc` in its config; --sentinel or VIGIL_SENTINEL)?",
            source_text(&e)
        )
    })?;
    Ok(Sentinel {
        address: address.to_string(),
        client: SentinelServiceClient::with_interceptor(channel, bearer),
    })
}

/// The innermost cause, which says what actually failed (connection refused, ...).
fn source_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// Awaits a call, turning its status into advice.
async fn call<T>(
    s: &Sentinel,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    fut.await
        .map(|r| r.into_inner())
        .map_err(|st| explain(&s.address, &st))
}

fn explain(address: &str, st: &tonic::Status) -> anyhow::Error {
    let msg = st.message();
    match st.code() {
        Code::Unauthenticated => anyhow!(
            "the sentinel at {address} refused the token: pass the cluster token (`token` in \
             the sentinels' config) with --token, VIGIL_TOKEN or --token-file"
        ),
        Code::NotFound => anyhow!("{msg}; `vigil ctl status` lists the groups and sentinels"),
        Code::FailedPrecondition | Code::AlreadyExists => anyhow!("refused: {msg}"),
        Code::InvalidArgument => anyhow!("invalid request: {msg}"),
        Code::Unavailable if msg.contains("leader") => {
            anyhow!("the sentinels cannot act now: {msg}; a majority must be up")
        }
        Code::Unavailable => anyhow!("lost the sentinel at {address}: {msg}"),
        Code::DeadlineExceeded | Code::Cancelled => anyhow!(
            "the sentinel at {address} did not answer in time ({msg}); try --timeout, or check \
             that a majority of sentinels is up"
        ),
        _ => anyhow!("the sentinel at {address} failed: {msg}"),
    }
}

/// The Raft leader, as `s` knows it (`s` itself if it leads or knows no address).
async fn leader(s: &Sentinel, token: &str, timeout: Duration) -> anyhow::Result<Sentinel> {
    let info = call(
        s,
        s.client.clone().cluster_status(pb::ClusterStatusRequest {}),
    )
    .await?;
    if info.leader == 0 {
        bail!(
            "the sentinel at {} knows no Raft leader: a majority of sentinels must be up and \
             in touch",
            s.address
        );
    }
    let addr = info
        .members
        .iter()
        .find(|m| m.id == info.leader)
        .map(|m| m.address.clone())
        .filter(|a| !a.is_empty());
    match addr {
        Some(a) if info.leader != info.id => connect(&a, token, timeout).await,
        _ => Ok(Sentinel {
            address: s.address.clone(),
            client: s.client.clone(),
        }),
    }
}

fn done(json: bool, index: u64, what: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", json!({ "ok": true, "index": index, "message": what }));
    } else {
        println!("OK: {what} (Raft index {index})");
    }
    Ok(())
}

fn parse_node(spec: &str) -> anyhow::Result<pb::Node> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let bad = || {
        anyhow!(
            "--node {spec:?}: expected NAME,DATA-ADDR,ADMIN-ADDR[,PRIORITY], e.g. \
             n1,10.0.0.1:6379,10.0.0.1:16379"
        )
    };
    let (name, data, admin) = match parts.as_slice() {
        [n, d, a] | [n, d, a, _] if !n.is_empty() => (n, d, a),
        _ => return Err(bad()),
    };
    let priority = match parts.get(3) {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => 100,
    };
    Ok(pb::Node {
        name: name.to_string(),
        data: data.to_string(),
        admin: admin.to_string(),
        priority,
    })
}

async fn status(first: &Sentinel, token: &str, args: &CtlArgs) -> anyhow::Result<()> {
    let info = call(
        first,
        first
            .client
            .clone()
            .cluster_status(pb::ClusterStatusRequest {}),
    )
    .await?;
    // Details from the leader: only it knows which members it reaches and what it is doing
    // about each group.
    let source = leader(first, token, args.timeout)
        .await
        .unwrap_or(Sentinel {
            address: first.address.clone(),
            client: first.client.clone(),
        });
    let info = if source.address == first.address {
        info
    } else {
        call(
            &source,
            source
                .client
                .clone()
                .cluster_status(pb::ClusterStatusRequest {}),
        )
        .await
        .unwrap_or(info)
    };
    let groups = call(
        &source,
        source.client.clone().list_groups(pb::ListGroupsRequest {}),
    )
    .await?
    .groups;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status_json(&info, &groups))?
        );
    } else {
        print!("{}", status_text(&info, &groups, &source.address));
    }
    Ok(())
}

fn status_json(info: &pb::ClusterInfo, groups: &[pb::Group]) -> serde_json::Value {
    json!({
        "sentinels": {
            "answered_by": info.id,
            "leader": info.leader,
            "term": info.term,
            "commit": info.commit,
            "applied": info.applied,
            "members": info.members.iter().map(|m| json!({
                "id": m.id,
                "address": m.address,
                "resp": m.resp,
                "voter": m.voter,
                "reachable": m.reachable,
                "matched": m.matched,
            })).collect::<Vec<_>>(),
        },
        "groups": groups.iter().map(|g| {
            let s = g.settings.unwrap_or_default();
            json!({
                "name": g.name,
                "epoch": g.epoch,
                "master": g.master,
                "failover": if g.failover_step.is_empty() {
                    serde_json::Value::Null
                } else {
                    json!({ "step": g.failover_step, "candidate": g.failover_candidate })
                },
                "status": g.status,
                "settings": {
                    "quorum": s.quorum,
                    "down_after_ms": s.down_after_ms,
                    "failover_timeout_ms": s.failover_timeout_ms,
                    "parallel_syncs": s.parallel_syncs,
                    "max_lag_on_failover": s.max_lag_on_failover,
                    "sync_replicas": s.sync_replicas,
                    "min_failover_interval_ms": s.min_failover_interval_ms,
                },
                "nodes": g.nodes.iter().map(|n| {
                    let h = g.health.iter().find(|h| h.name == n.name);
                    json!({
                        "name": n.name,
                        "data": n.data,
                        "admin": n.admin,
                        "priority": n.priority,
                        "role": h.map_or("unknown", |h| h.role.as_str()),
                        "offset": h.map_or(0, |h| h.offset),
                        "lag": h.map_or(0, |h| h.lag),
                        "link": h.map_or("", |h| h.link.as_str()),
                        "sdown": h.is_some_and(|h| h.sdown),
                        "since_ok_ms": h.map_or(0, |h| h.since_ok_ms),
                        "writable": h.is_some_and(|h| h.writable),
                    })
                }).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

/// Rows as aligned columns.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn status_text(info: &pb::ClusterInfo, groups: &[pb::Group], asked: &str) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut out = String::new();
    let leader = if info.leader == 0 {
        "none known".to_string()
    } else {
        info.leader.to_string()
    };
    out.push_str(&format!(
        "Sentinels (as sentinel {} at {asked} sees them): Raft leader {leader}, term {}, commit {}, applied {}\n",
        info.id, info.term, info.commit, info.applied
    ));
    let mut rows = vec![vec![
        "ID".into(),
        "GRPC".into(),
        "RESP".into(),
        "ROLE".into(),
        "VOTER".into(),
        "REACHABLE".into(),
    ]];
    for m in &info.members {
        let role = if m.id == info.leader {
            "leader"
        } else if m.voter {
            "follower"
        } else {
            "learner"
        };
        rows.push(vec![
            m.id.to_string(),
            m.address.clone(),
            if m.resp.is_empty() {
                "-".into()
            } else {
                m.resp.clone()
            },
            role.into(),
            yes(m.voter),
            yes(m.reachable),
        ]);
    }
    out.push_str(&table(&rows));
    for g in groups {
        let s = g.settings.unwrap_or_default();
        let master = g
            .nodes
            .iter()
            .find(|n| n.name == g.master)
            .map_or("none".to_string(), |n| format!("{} ({})", n.name, n.data));
        let failover = if g.failover_step.is_empty() {
            "none".to_string()
        } else {
            format!("{} -> {}", g.failover_step, g.failover_candidate)
        };
        out.push_str(&format!(
            "\nGroup {}: master {master}, epoch {}, failover {failover}\n",
            g.name, g.epoch
        ));
        out.push_str(&format!(
            "  quorum {}, down_after {} ms, sync_replicas {}, parallel_syncs {}\n",
            s.quorum, s.down_after_ms, s.sync_replicas, s.parallel_syncs
        ));
        if !g.status.is_empty() {
            out.push_str(&format!("  leader says: {}\n", g.status));
        }
        let mut rows = vec![vec![
            "NODE".into(),
            "ADDRESS".into(),
            "ROLE".into(),
            "OFFSET".into(),
            "LAG".into(),
            "LINK".into(),
            "DOWN".into(),
        ]];
        for n in &g.nodes {
            let h = g.health.iter().find(|h| h.name == n.name);
            let role = h.map_or("unknown", |h| h.role.as_str());
            rows.push(vec![
                n.name.clone(),
                n.data.clone(),
                role.to_string(),
                h.map_or("-".into(), |h| h.offset.to_string()),
                match h {
                    Some(h) if role == "replica" => format!("{} B", h.lag),
                    _ => "-".into(),
                },
                h.map_or("-".into(), |h| {
                    if h.link.is_empty() {
                        "-".into()
                    } else {
                        h.link.clone()
                    }
                }),
                h.map_or("-".into(), |h| {
                    if h.sdown {
                        format!("yes ({} ms)", h.since_ok_ms)
                    } else {
                        "no".into()
                    }
                }),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if groups.is_empty() {
        out.push_str("\nNo groups are monitored (`vigil ctl monitor` adds one).\n");
    }
    out
}

async fn watch(s: Sentinel, group: Option<&str>, json: bool) -> anyhow::Result<()> {
    // The stream lives as long as the operator watches: no per-call deadline.
    let mut c = s.client.clone();
    let mut req = tonic::Request::new(pb::WatchRequest {});
    req.set_timeout(Duration::from_secs(365 * 24 * 3600));
    let mut stream = call(&s, c.watch_topology(req)).await?;
    if !json {
        eprintln!("watching the sentinel at {} (Ctrl-C ends)", s.address);
    }
    loop {
        let ev = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            m = stream.message() => m.map_err(|st| explain(&s.address, &st))?,
        };
        let Some(ev) = ev else {
            bail!("the sentinel at {} closed the stream", s.address);
        };
        if group.is_some_and(|g| g != ev.group) {
            continue;
        }
        if json {
            println!(
                "{}",
                json!({
                    "at_ms": ev.at_ms, "index": ev.index, "group": ev.group, "epoch": ev.epoch,
                    "kind": ev.kind, "node": ev.node, "detail": ev.detail,
                })
            );
        } else {
            println!("{}", event_line(&ev));
        }
    }
}

/// An event as one line: `HH:MM:SS.mmm group epoch N kind node detail`.
pub fn event_line(ev: &pb::TopologyEvent) -> String {
    let parts = [
        clock(ev.at_ms),
        ev.group.clone(),
        format!("epoch {}", ev.epoch),
        ev.kind.clone(),
        ev.node.clone(),
        ev.detail.clone(),
    ];
    let line: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    line.join(" ")
}

/// Streams every sentinel's events (`WatchTopology`), each with the index of the client it
/// came from, watching a sentinel again whenever its stream ends (it was killed and is back).
/// The leader's own actions, such as `+odown`, are published only on its stream. The watchers
/// stop when the receiver is dropped.
pub fn follow_events(
    clients: &[Client],
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, pb::TopologyEvent)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, c) in clients.iter().enumerate() {
        let (mut c, tx) = (c.clone(), tx.clone());
        tokio::spawn(async move {
            while !tx.is_closed() {
                let mut req = tonic::Request::new(pb::WatchRequest {});
                req.set_timeout(Duration::from_secs(365 * 24 * 3600));
                if let Ok(stream) = c.watch_topology(req).await {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(ev)) = stream.message().await {
                        if tx.send((i, ev)).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    rx
}

/// `HH:MM:SS.mmm` (UTC) of a wall-clock time in milliseconds.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_specs() {
        let n = parse_node("n1,10.0.0.1:6379,10.0.0.1:16379,5").unwrap();
        assert_eq!(
            (
                n.name.as_str(),
                n.data.as_str(),
                n.admin.as_str(),
                n.priority
            ),
            ("n1", "10.0.0.1:6379", "10.0.0.1:16379", 5)
        );
        assert_eq!(parse_node("n2,a:1,a:2").unwrap().priority, 100);
        for (i, bad) in ["n1", "n1,a:1", ",a:1,a:2", "n1,a:1,a:2,x", "n1,a:1,a:2,1,2"]
            .iter()
            .enumerate()
        {
            assert!(parse_node(bad).is_err(), "#{i} {bad}");
        }
    }

    #[test]
    fn columns_align() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ]);
        assert_eq!(t, "  A    BB\n  CCC  D\n");
    }

    #[test]
    fn clock_reads_utc() {
        assert_eq!(clock(3_723_004), "01:02:03.004");
    }
}
