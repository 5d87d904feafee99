//! Events as Redis Sentinel publishes them: on a channel named after the event, with its
//! payload format — `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`, and for
//! instance events `<type> <name> <ip> <port>`, followed by `@ <master-name> <mip> <mport>` for
//! replicas and by the event's detail (`+odown`'s `#quorum K/Q`). Subscribers of the TLS
//! port have a hub of their own, whose payloads name the nodes' TLS addresses (`tls_data`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use vigil_resp::Shared;

use crate::driver::Handle;
use crate::events::{Event, host_port, switch_master_detail};
use crate::state::{ClusterState, Group};

/// Events about a replica (rendered as `slave <ip:port> <ip> <port> @ <master> …`).
const REPLICA_EVENTS: &[&str] = &[
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+promoted-slave",
    "+slave-reconf-sent",
    "+slave-reconf-inprog",
    "+slave-reconf-done",
    "+convert-to-slave",
    "+fix-slave-config",
];

/// Publishes every event of this sentinel on the RESP endpoint's pub/sub hubs until `shutdown`.
pub async fn run(raft: Handle, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut rx = raft.events.subscribe();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = shutdown.cancelled() => return,
        };
        match ev {
            Ok(ev) => {
                let channel = Bytes::from_static(ev.kind.as_bytes());
                let st = raft.state.read();
                shared
                    .hub
                    .publish(&channel, &payload(&st, &ev, false).into());
                if let Some(hub) = &shared.tls_hub {
                    hub.publish(&channel, &payload(&st, &ev, true).into());
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "event publisher fell behind; events lost")
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The address of `node` in `g` as `<ip:port> <ip> <port>`.
fn instance(g: &Group, node: &str, tls: bool) -> String {
    let hp = host_port(g, node, tls);
    let (h, p) = hp.split_once(' ').unwrap_or(("?", "0"));
    format!("{h}:{p} {hp}")
}

/// The payload of `ev`, given the state it was published in, naming the addresses clients of
/// a plain or `tls` listener use.
pub fn payload(st: &ClusterState, ev: &Event, tls: bool) -> String {
    let g = st.groups.get(&ev.group);
    match (ev.kind, g) {
        ("+switch-master", Some(g)) => return switch_master_detail(g, &ev.from, &ev.node, tls),
        // A cluster is not a group, nor is TILT about one: their events (migrations too)
        // carry their own words.
        ("+switch-master" | "+new-epoch" | "+cluster" | "+tilt" | "-tilt", _) => {
            return ev.detail.clone();
        }
        (_, None) if st.clusters.contains_key(&ev.group) => return ev.detail.clone(),
        _ => {}
    }
    let Some(g) = g else {
        return format!("master {} ? 0", ev.group);
    };
    let master = g.master.as_deref().unwrap_or("");
    let master_addr = host_port(g, master, tls);
    let mut out = if REPLICA_EVENTS.contains(&ev.kind) || (!ev.node.is_empty() && ev.node != master)
    {
        // A promoted replica is announced against the master it replaced.
        let of = match (&g.failover, ev.kind) {
            (Some(f), "+promoted-slave") => f
                .old
                .as_deref()
                .map_or_else(|| master_addr.clone(), |o| host_port(g, o, tls)),
            _ => master_addr,
        };
        format!(
            "slave {} @ {} {of}",
            instance(g, &ev.node, tls),
            g.spec.name
        )
    } else {
        format!("master {} {master_addr}", g.spec.name)
    };
    // `+master-assigned`'s detail is the node's address: in this listener's form.
    let detail = match ev.kind {
        "+master-assigned" => host_port(g, &ev.node, tls),
        _ => ev.detail.clone(),
    };
    if !detail.is_empty() {
        out.push(' ');
        out.push_str(&detail);
    }
    out
}
