//! Replication commands: REPLICAOF (SLAVEOF), ROLE, WAIT, and the master side of the
//! handshake (REPLCONF, PSYNC, SYNC), whose code lives in [`crate::repl::master`].

use std::sync::atomic::Ordering;

use vigil_resp::args::parse_int;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::gate::Role;
use crate::node::Node;
use crate::node::{Handler, row};
use crate::repl::master;
use crate::session::ConnState;

/// The replication family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "replicaof",
            3,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "Follows another server as its replica, or (NO ONE) becomes a master.",
            Node(replicaof)
        ),
        row!(
            "slaveof",
            3,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "Alias of REPLICAOF.",
            Node(replicaof)
        ),
        row!(
            "role",
            1,
            [FAST, STALE],
            0,
            0,
            0,
            "server",
            "Returns the replication role.",
            Node(role)
        ),
        row!(
            "wait",
            3,
            [],
            0,
            0,
            0,
            "generic",
            "Waits until the client's writes reach a number of replicas.",
            Async(master::wait)
        ),
        row!(
            "replconf",
            -1,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "A replica's handshake options.",
            Node(master::replconf)
        ),
        row!(
            "psync",
            -3,
            [ADMIN, NO_MULTI],
            0,
            0,
            0,
            "server",
            "Starts replication from an id and offset.",
            Async(master::psync)
        ),
        row!(
            "sync",
            1,
            [ADMIN, NO_MULTI],
            0,
            0,
            0,
            "server",
            "Starts replication with a full sync.",
            Async(master::psync)
        ),
    ]
}

fn replicaof(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let host = args.next().unwrap_or_default();
    let port = args.next().unwrap_or_default();
    let r = if node.gate.managed() {
        Reply::error(
            "ERR REPLICAOF is disabled in managed mode: the sentinels assign roles through NodeAdmin",
        )
    } else if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        node.become_master();
        Reply::ok()
    } else {
        match parse_int(&port).ok().filter(|p| (0..=65535).contains(p)) {
            None => Reply::error("ERR Invalid master port"),
            Some(p) => {
                let host = String::from_utf8_lossy(&host).into_owned();
                let same = node.gate.role()
                    == Role::Replica {
                        host: host.clone(),
                        port: p as u16,
                    };
                if same {
                    Reply::simple("OK Already connected to specified master")
                } else {
                    node.become_replica(host, p as u16);
                    Reply::ok()
                }
            }
        }
    };
    conn.reply(r);
}

fn role(node: &Node, conn: &mut Conn<ConnState>, _args: Args) {
    let role = node.gate.role();
    let offset = node.repl.feed.lock().offset as i64;
    let r = match role {
        Role::Replica { host, port } => {
            let phase = node
                .repl
                .upstream
                .lock()
                .as_ref()
                .map_or("connect", |u| u.status.phase().as_str());
            Reply::Array(vec![
                Reply::bulk_static("slave"),
                Reply::bulk_string(host),
                Reply::Int(port as i64),
                Reply::bulk_static(phase),
                Reply::Int(offset),
            ])
        }
        _ => {
            let replicas = node
                .repl
                .feed
                .lock()
                .links
                .iter()
                .map(|l| {
                    Reply::Array(vec![
                        Reply::bulk_string(l.ip.clone()),
                        Reply::bulk_string(l.port.load(Ordering::Relaxed).to_string()),
                        Reply::bulk_string(l.ack.load(Ordering::Relaxed).to_string()),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::bulk_static("master"),
                Reply::Int(offset),
                Reply::Array(replicas),
            ])
        }
    };
    conn.reply(r);
}
