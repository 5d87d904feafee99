//! `vigil ctl`: the operator's client of the sentinels' gRPC API (`SentinelService`).
//!
//! Reads go to the sentinel given with `--sentinel`; group details and membership changes go
//! to the Raft leader it names (only the leader knows what it is doing about a group, and
//! membership changes run there).
//!
//! - [`args`]: the command line (clap) and the parsing of its values.
//! - [`client`]: the client library (token, leader discovery, calls turned into advice, the
//!   event feed), shared with the drill and `vigil up`.
//! - [`render`]: tables, event lines and JSON.
//! - [`cluster`]: `vigil ctl cluster …` (sharded clusters) and how it prints them.
//!
//! This module runs each subcommand: it calls through [`client`] and prints with [`render`].

pub mod args;
pub mod client;
pub mod cluster;
pub mod render;

pub use args::{ClusterCommand, CtlArgs, CtlCommand, SentinelCommand};

use anyhow::bail;
use vigil_proto::sentinel as pb;

use client::{Sentinel, explain};

/// `vigil ctl` from the command line: runs it on a small runtime and turns an error into a
/// sentence on stderr. Returns the process's exit code (0, or 1 on error).
pub fn main(args: CtlArgs) -> i32 {
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    // An operator's mistake is a sentence, not a backtrace.
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vigil ctl: {e:#}");
            1
        }
    }
}

/// Runs `vigil ctl`.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    args.tls.apply()?;
    let token = args.token()?;
    let first = Sentinel::connect(&args.sentinel, &token, args.timeout).await?;
    let (index, what) = match &args.command {
        CtlCommand::Status => return status(&first, &token, &args).await,
        CtlCommand::Watch { group } => return watch(first, group.as_deref(), args.json).await,
        CtlCommand::Cluster(cmd) => return cluster::run(&first, cmd, &args).await,
        CtlCommand::Failover { group, to } => {
            let leader = first.leader(&token, args.timeout).await?;
            let req = pb::FailoverRequest {
                group: group.clone(),
                target: to.clone().unwrap_or_default(),
            };
            let ack = leader.call(leader.client.clone().failover(req)).await?;
            (
                ack.index,
                format!("failover of {group:?} started; `vigil ctl watch` follows it"),
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
                .map(|n| args::parse_node(n))
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
                ..Default::default()
            };
            let ack = first.call(first.client.clone().monitor(req)).await?;
            (ack.index, format!("monitoring {group:?}"))
        }
        CtlCommand::Remove { group } => {
            let req = pb::RemoveRequest {
                group: group.clone(),
            };
            let ack = first.call(first.client.clone().remove(req)).await?;
            (ack.index, format!("removed {group:?}"))
        }
        CtlCommand::Set { group, key, value } => {
            let req = pb::SetOptionRequest {
                group: group.clone(),
                key: key.clone(),
                value: value.clone(),
            };
            let ack = first.call(first.client.clone().set_option(req)).await?;
            (ack.index, format!("{group}: {key} = {value}"))
        }
        CtlCommand::Sentinel(cmd) => {
            let leader = first.leader(&token, args.timeout).await?;
            let mut c = leader.client.clone();
            match cmd {
                SentinelCommand::Add { id, address } => {
                    let req = pb::AddSentinelRequest {
                        id: *id,
                        address: address.clone(),
                    };
                    (
                        leader.call(c.add_sentinel(req)).await?.index,
                        format!("sentinel {id} added at {address}"),
                    )
                }
                SentinelCommand::Remove { id } => (
                    leader
                        .call(c.remove_sentinel(pb::RemoveSentinelRequest { id: *id }))
                        .await?
                        .index,
                    format!("sentinel {id} removed"),
                ),
                SentinelCommand::TransferLeader { to } => (
                    leader
                        .call(c.transfer_leader(pb::TransferLeaderRequest { to: *to }))
                        .await?
                        .index,
                    format!("leadership handed to sentinel {to}"),
                ),
            }
        }
    };
    println!("{}", render::done(args.json, index, &what));
    Ok(())
}

async fn status(first: &Sentinel, token: &str, args: &CtlArgs) -> anyhow::Result<()> {
    let info = first.cluster_status().await?;
    // Details from the leader: only it knows which members it reaches and what it is doing
    // about each group.
    let source = first
        .leader(token, args.timeout)
        .await
        .unwrap_or_else(|_| first.clone());
    let info = if source.address == first.address {
        info
    } else {
        source.cluster_status().await.unwrap_or(info)
    };
    let groups = source
        .call(source.client.clone().list_groups(pb::ListGroupsRequest {}))
        .await?
        .groups;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::status_json(&info, &groups))?
        );
    } else {
        print!("{}", render::status_text(&info, &groups, &source.address));
    }
    Ok(())
}

async fn watch(s: Sentinel, group: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut stream = s.watch().await?;
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
            println!("{}", render::event_json(&ev));
        } else {
            println!("{}", render::event_line(&ev));
        }
    }
}
