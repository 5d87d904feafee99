//! Events: what happens to the groups, named like Redis Sentinel's (`+sdown`, `+odown`,
//! `+try-failover`, `+selected-slave`, `+promoted-slave`, `+switch-master`, `+failover-end`, ...).
//!
//! Two sources feed one bus per sentinel: committed changes of the cluster state (every
//! sentinel emits the same events for them, in log order), and this sentinel's own
//! observations and actions (`+sdown` from its probes; `+odown`, `+slave-reconf-sent`,
//! `+convert-to-slave` from the leader's controller). Every event is logged with tracing and
//! streamed by `WatchTopology`.

use tokio::sync::broadcast;

use crate::state::{AbortReason, ClusterState, Command, Group};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Redis Sentinel's name for it, e.g. `+switch-master`.
    pub kind: &'static str,
    /// The group.
    pub group: String,
    /// The node it is about (empty: the group, or its master).
    pub node: String,
    /// The group's epoch when it happened.
    pub epoch: u64,
    /// Extra words: `+odown`'s `#quorum 2/2`, `+switch-master`'s addresses, a reason.
    pub detail: String,
    /// `+switch-master`: the master it replaced (so each listener can name its addresses in
    /// the form its clients use, plain or TLS); empty otherwise.
    pub from: String,
    /// Wall clock (ms), for display only.
    pub at_ms: u64,
    /// The Raft index of the committed change behind it (0: this sentinel's own observation).
    pub index: u64,
}

impl Event {
    /// A local event about `node` of `group` at `epoch`, now.
    pub fn local(kind: &'static str, group: &str, node: &str, epoch: u64, detail: String) -> Self {
        Event {
            kind,
            group: group.to_string(),
            node: node.to_string(),
            epoch,
            detail,
            from: String::new(),
            at_ms: vigil_base::clock::unix_ms().max(0) as u64,
            index: 0,
        }
    }
}

/// The event bus of one sentinel.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    /// Logs `ev` and hands it to every subscriber.
    pub fn emit(&self, ev: Event) {
        tracing::info!(
            group = %ev.group,
            node = %ev.node,
            epoch = ev.epoch,
            index = ev.index,
            detail = %ev.detail,
            "{}", ev.kind
        );
        let _ = self.tx.send(ev);
    }

    /// Every event from now on (a subscriber that falls 4096 events behind loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// `host port` of a node of `g` (as Sentinel payloads spell addresses), `? 0` if unknown:
/// the address clients use, plain or `tls` ([`crate::state::NodeSpec::client_addr`]).
pub fn host_port(g: &Group, node: &str, tls: bool) -> String {
    g.spec
        .nodes
        .iter()
        .find(|n| n.name == node)
        .and_then(|n| n.client_addr(tls).parse::<vigil_base::HostPort>().ok())
        .map_or_else(|| "? 0".into(), |a| format!("{} {}", a.host(), a.port()))
}

/// The events of a committed command, given the state after it was applied.
pub fn committed(index: u64, at_ms: u64, cmd: &Command, st: &ClusterState) -> Vec<Event> {
    let ev = |kind, g: &Group, node: &str, detail: String| Event {
        kind,
        group: g.spec.name.clone(),
        node: node.to_string(),
        epoch: g.epoch,
        detail,
        from: String::new(),
        at_ms,
        index,
    };
    let group = |name: &str| st.groups.get(name);
    match cmd {
        Command::Monitor(spec) => group(&spec.name)
            .map(|g| {
                vec![ev(
                    "+monitor",
                    g,
                    "",
                    format!("quorum {}", spec.settings.quorum),
                )]
            })
            .unwrap_or_default(),
        Command::Remove { group: name } => vec![Event {
            kind: "-monitor",
            group: name.clone(),
            node: String::new(),
            epoch: 0,
            detail: String::new(),
            from: String::new(),
            at_ms,
            index,
        }],
        Command::Update(spec) => group(&spec.name)
            .map(|g| vec![ev("+config-update", g, "", String::new())])
            .unwrap_or_default(),
        Command::SetOption {
            group: name,
            key,
            value,
        } => group(name)
            .map(|g| vec![ev("+set", g, "", format!("{key} {value}"))])
            .unwrap_or_default(),
        Command::SetSentinel { .. }
        | Command::SetSentinelResp { .. }
        | Command::ForgetSentinel { .. }
        | Command::SetLease { .. } => Vec::new(),
        Command::AssignMaster {
            group: name, node, ..
        } => group(name)
            .map(|g| {
                vec![
                    ev("+new-epoch", g, "", g.epoch.to_string()),
                    ev("+master-assigned", g, node, host_port(g, node, false)),
                ]
            })
            .unwrap_or_default(),
        Command::BeginFailover {
            group: name,
            old,
            candidate,
            min_offset,
            manual,
            ..
        } => group(name)
            .map(|g| {
                let old = old.as_deref().unwrap_or("");
                vec![
                    ev("+new-epoch", g, "", g.epoch.to_string()),
                    ev(
                        "+try-failover",
                        g,
                        old,
                        if *manual {
                            "manual".into()
                        } else {
                            String::new()
                        },
                    ),
                    ev("+failover-state-select-slave", g, old, String::new()),
                    ev(
                        "+selected-slave",
                        g,
                        candidate,
                        format!("min_offset {min_offset}"),
                    ),
                    ev(
                        "+failover-state-send-slaveof-noone",
                        g,
                        candidate,
                        String::new(),
                    ),
                ]
            })
            .unwrap_or_default(),
        Command::Promoted { group: name, .. } => group(name)
            .and_then(|g| Some((g, g.failover.as_ref()?)))
            .map(|(g, f)| {
                vec![
                    ev("+promoted-slave", g, &f.candidate, String::new()),
                    ev(
                        "+failover-state-reconf-slaves",
                        g,
                        &f.candidate,
                        String::new(),
                    ),
                ]
            })
            .unwrap_or_default(),
        // As in Redis Sentinel, `+switch-master` comes last, with `+failover-end` (lookups
        // already answer the new master since `Promoted`). Clients that reconnect when they
        // see it (ioredis' failoverDetector) then find the new master settled instead of being
        // told while they are still retrying the dead one.
        Command::CompleteFailover { group: name, .. } => group(name)
            .map(|g| {
                let m = g.master.as_deref().unwrap_or("");
                vec![
                    ev("+failover-end", g, m, String::new()),
                    switch_master(g, at_ms, index),
                ]
            })
            .unwrap_or_default(),
        Command::AbortFailover {
            group: name,
            reason,
            why,
            ..
        } => group(name)
            .map(|g| {
                let kind = match why {
                    AbortReason::Timeout => "+failover-end-for-timeout",
                    AbortReason::CandidateRefused => "-failover-abort-no-good-slave",
                };
                let mut out = vec![ev(kind, g, "", reason.clone())];
                // Given up after the promotion: the master did change.
                if g.last_failover_ms == at_ms {
                    out.push(switch_master(g, at_ms, index));
                }
                out
            })
            .unwrap_or_default(),
        Command::CreateCluster { name, groups } => vec![cluster_event(
            "+cluster",
            st,
            name,
            format!("{name} groups {}", groups.join(",")),
            at_ms,
            index,
        )],
        Command::QueueMigrations { cluster, moves, .. } => {
            let detail = moves
                .iter()
                .map(|m| format!("{}->{} {} ranges", m.from, m.to, m.ranges.len()))
                .collect::<Vec<_>>()
                .join(", ");
            vec![cluster_event(
                "+migration-queued",
                st,
                cluster,
                detail,
                at_ms,
                index,
            )]
        }
        Command::MigrationStep { cluster, id, step } => {
            use crate::state::migration::Step;
            let (kind, why) = match step {
                Step::Pause => ("+migration-paused", String::new()),
                Step::Commit => ("+migration-committed", String::new()),
                Step::Finish => ("+migration-finished", String::new()),
                Step::Retry(why) => ("-migration-retry", why.clone()),
                Step::Abort(why) => ("-migration-aborted", why.clone()),
            };
            let detail = format!("{cluster} migration {id} {why}")
                .trim_end()
                .to_string();
            vec![cluster_event(kind, st, cluster, detail, at_ms, index)]
        }
        Command::AddClusterGroup { cluster, group } => vec![cluster_event(
            "+cluster-group",
            st,
            cluster,
            format!("{cluster} adds {group}"),
            at_ms,
            index,
        )],
        Command::RemoveClusterGroup { cluster, group } => vec![cluster_event(
            "-cluster-group",
            st,
            cluster,
            format!("{cluster} removes {group}"),
            at_ms,
            index,
        )],
    }
}

/// An event about a cluster (named where a group's name goes), at its map's epoch.
fn cluster_event(
    kind: &'static str,
    st: &ClusterState,
    cluster: &str,
    detail: String,
    at_ms: u64,
    index: u64,
) -> Event {
    Event {
        kind,
        group: cluster.to_string(),
        node: String::new(),
        epoch: st.clusters.get(cluster).map_or(0, |c| c.epoch),
        detail,
        from: String::new(),
        at_ms,
        index,
    }
}

/// `<group> <old-ip> <old-port> <new-ip> <new-port>`: `+switch-master`'s words, with the
/// addresses clients of a plain or `tls` listener use.
pub fn switch_master_detail(g: &Group, from: &str, to: &str, tls: bool) -> String {
    let old = if from.is_empty() {
        "? 0".to_string()
    } else {
        host_port(g, from, tls)
    };
    format!("{} {old} {}", g.spec.name, host_port(g, to, tls))
}

/// `+switch-master <group> <old-ip> <old-port> <new-ip> <new-port>` after a promotion.
fn switch_master(g: &Group, at_ms: u64, index: u64) -> Event {
    let new = g.master.as_deref().unwrap_or("");
    let from = g.deposed.clone().unwrap_or_default();
    Event {
        kind: "+switch-master",
        group: g.spec.name.clone(),
        node: new.to_string(),
        epoch: g.epoch,
        detail: switch_master_detail(g, &from, new, false),
        from,
        at_ms,
        index,
    }
}
