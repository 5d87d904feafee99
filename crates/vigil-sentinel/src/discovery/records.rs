//! The records of `SENTINEL MASTERS / MASTER / REPLICAS / SENTINELS`, with Redis Sentinel's
//! field names and order: flat key/value arrays under RESP2, maps under RESP3, every value a
//! bulk string.

use vigil_proto::node::{LinkStatus, Role as NodeRole};
use vigil_resp::Reply;

use super::{Discovery, run_id};
use crate::state::{Group, Step};

/// One record: field names and values.
pub type Record = Vec<(&'static str, String)>;

/// The value of field `k` of a record (empty if it has none).
pub fn field(r: &Record, k: &str) -> String {
    r.iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// A master record's status as `INFO sentinel` words it: `odown`, `sdown` or `ok`.
pub fn master_status(r: &Record) -> &'static str {
    let flags = field(r, "flags");
    if flags.contains("o_down") {
        "odown"
    } else if flags.contains("s_down") {
        "sdown"
    } else {
        "ok"
    }
}

/// A record as a reply.
pub fn reply(r: Record) -> Reply {
    Reply::Map(
        r.into_iter()
            .map(|(k, v)| (Reply::bulk_static(k), Reply::bulk_string(v)))
            .collect(),
    )
}

/// `host:port` split for the `ip` and `port` fields (`?`, `0` if it does not parse).
pub fn split(addr: &str) -> (String, String) {
    addr.parse::<vigil_base::HostPort>()
        .map_or(("?".into(), "0".into()), |a| {
            (a.host().to_string(), a.port().to_string())
        })
}

impl Discovery {
    fn flags(&self, role: &str, g: &Group, node: &str) -> String {
        let mut f = vec![role];
        let connected = self.connected();
        if !connected || self.health.is_sdown(&g.spec.name, node) {
            f.push("s_down");
        }
        let in_flight = g.failover.as_ref().is_some_and(|f| f.step == Step::Begun);
        if role == "master" && in_flight {
            f.push("o_down");
        }
        if !connected {
            f.push("disconnected");
        }
        if role == "master" && in_flight {
            f.push("failover_in_progress");
        }
        f.join(",")
    }

    fn since_ok_ms(&self, g: &Group, node: &str) -> String {
        self.health
            .down_for(&g.spec.name, node)
            .as_millis()
            .to_string()
    }

    /// The group's master record (`SENTINEL MASTER`).
    pub fn master_record(&self, g: &Group, tls: bool) -> Record {
        let master = g.master.clone().unwrap_or_default();
        let addr = g
            .spec
            .nodes
            .iter()
            .find(|n| n.name == master)
            .map_or("?:0", |n| n.client_addr(tls));
        let (ip, port) = split(addr);
        let st = self.health.status(&g.spec.name, &master);
        let s = &g.spec.settings;
        let others = self.raft.status.read().voters.len().saturating_sub(1);
        let mut r: Record = vec![
            ("name", g.spec.name.clone()),
            ("ip", ip),
            ("port", port),
            (
                "runid",
                st.as_ref().map(|s| s.run_id.clone()).unwrap_or_default(),
            ),
            ("flags", self.flags("master", g, &master)),
            ("link-pending-commands", "0".into()),
            ("link-refcount", "1".into()),
            ("last-ping-sent", "0".into()),
            ("last-ok-ping-reply", self.since_ok_ms(g, &master)),
            ("last-ping-reply", self.since_ok_ms(g, &master)),
            ("down-after-milliseconds", s.down_after_ms.to_string()),
            ("info-refresh", "0".into()),
            ("role-reported", "master".into()),
            ("role-reported-time", "0".into()),
            ("config-epoch", g.epoch.to_string()),
            (
                "num-slaves",
                g.spec.nodes.len().saturating_sub(1).to_string(),
            ),
            ("num-other-sentinels", others.to_string()),
            ("quorum", s.quorum.to_string()),
            ("failover-timeout", s.failover_timeout_ms.to_string()),
            ("parallel-syncs", s.parallel_syncs.to_string()),
        ];
        if let Some(f) = &g.failover {
            let state = match f.step {
                Step::Begun => "send_slaveof_noone",
                Step::Promoted => "reconf_slaves",
            };
            r.push(("failover-state", state.into()));
        }
        r
    }

    /// Records of every node but the master (`SENTINEL REPLICAS`).
    pub fn replica_records(&self, g: &Group, tls: bool) -> Vec<Record> {
        let master = g.master.clone().unwrap_or_default();
        let (mip, mport) = split(
            g.spec
                .nodes
                .iter()
                .find(|n| n.name == master)
                .map_or("?:0", |n| n.client_addr(tls)),
        );
        g.spec
            .nodes
            .iter()
            .filter(|n| n.name != master)
            .map(|n| {
                let (ip, port) = split(n.client_addr(tls));
                let st = self.health.status(&g.spec.name, &n.name);
                let (host, mp, link, offset, run) = match &st {
                    Some(s) if s.role == NodeRole::Replica as i32 => (
                        s.master_host.clone(),
                        s.master_port.to_string(),
                        if s.link == LinkStatus::Up as i32 {
                            "ok"
                        } else {
                            "err"
                        },
                        s.offset,
                        s.run_id.clone(),
                    ),
                    Some(s) => (
                        mip.clone(),
                        mport.clone(),
                        "err",
                        s.offset,
                        s.run_id.clone(),
                    ),
                    None => (mip.clone(), mport.clone(), "err", 0, String::new()),
                };
                let link_down = st.as_ref().map_or(0, |s| s.link_down_ms);
                vec![
                    ("name", n.client_addr(tls).to_string()),
                    ("ip", ip),
                    ("port", port),
                    ("runid", run),
                    ("flags", self.flags("slave", g, &n.name)),
                    ("link-pending-commands", "0".into()),
                    ("link-refcount", "1".into()),
                    ("last-ping-sent", "0".into()),
                    ("last-ok-ping-reply", self.since_ok_ms(g, &n.name)),
                    ("last-ping-reply", self.since_ok_ms(g, &n.name)),
                    (
                        "down-after-milliseconds",
                        g.spec.settings.down_after_ms.to_string(),
                    ),
                    ("info-refresh", "0".into()),
                    ("role-reported", "slave".into()),
                    ("role-reported-time", "0".into()),
                    ("master-link-down-time", link_down.to_string()),
                    ("master-link-status", link.into()),
                    ("master-host", host),
                    ("master-port", mp),
                    ("slave-priority", n.priority.to_string()),
                    ("slave-repl-offset", offset.to_string()),
                    ("replica-announced", "1".into()),
                ]
            })
            .collect()
    }

    /// Records of the other sentinels that announced their RESP address (`SENTINEL SENTINELS`).
    pub fn sentinel_records(&self, g: &Group) -> Vec<Record> {
        let (me, voters) = {
            let s = self.raft.status.read();
            (s.id, s.voters.clone())
        };
        let addresses = self.raft.state.read().sentinel_resp.clone();
        voters
            .into_iter()
            .filter(|&id| id != me)
            .filter_map(|id| addresses.get(&id).map(|a| (id, a.clone())))
            .map(|(id, addr)| {
                let (ip, port) = split(&addr);
                vec![
                    ("name", run_id(id)),
                    ("ip", ip),
                    ("port", port),
                    ("runid", run_id(id)),
                    ("flags", "sentinel".into()),
                    ("link-pending-commands", "0".into()),
                    ("link-refcount", "1".into()),
                    ("last-ping-sent", "0".into()),
                    ("last-ok-ping-reply", "0".into()),
                    ("last-ping-reply", "0".into()),
                    (
                        "down-after-milliseconds",
                        g.spec.settings.down_after_ms.to_string(),
                    ),
                    ("last-hello-message", "0".into()),
                    ("voted-leader", "?".into()),
                    ("voted-leader-epoch", "0".into()),
                ]
            })
            .collect()
    }
}
