//! How `vigil ctl` (and the drill and `vigil up`, which print the same things) show the
//! sentinels' answers: the status as text tables or one JSON document, events as one line
//! or one JSON object each, and the acknowledgement of a change. Pure functions from
//! protobuf messages to text, so every rendering is testable without a sentinel.

use serde_json::json;
use vigil_proto::sentinel as pb;

/// Rows as aligned columns, each line indented by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
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

/// A change the sentinels committed, at Raft index `index`: one line of text or JSON.
pub fn done(json: bool, index: u64, what: &str) -> String {
    if json {
        json!({ "ok": true, "index": index, "message": what }).to_string()
    } else {
        format!("OK: {what} (Raft index {index})")
    }
}

/// `vigil ctl status --json`: the sentinels and every group with its settings and nodes.
pub fn status_json(info: &pb::ClusterInfo, groups: &[pb::Group]) -> serde_json::Value {
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
                        "tls_data": n.tls_data,
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

/// `vigil ctl status`: the sentinels as sentinel `info.id` at `asked` sees them, then a
/// table per group.
pub fn status_text(info: &pb::ClusterInfo, groups: &[pb::Group], asked: &str) -> String {
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
        out.push_str(&group_text(g));
    }
    if groups.is_empty() {
        out.push_str("\nNo groups are monitored (`vigil ctl monitor` adds one).\n");
    }
    out
}

/// One group of `vigil ctl status`: its master, epoch, failover, settings and node table.
fn group_text(g: &pb::Group) -> String {
    let mut out = String::new();
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
        let address = if n.tls_data.is_empty() {
            n.data.clone()
        } else {
            format!("{} (tls {})", n.data, n.tls_data)
        };
        rows.push(vec![
            n.name.clone(),
            address,
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
    out
}

/// An event as one line: `HH:MM:SS.mmm group epoch N kind node detail`.
pub fn event_line(ev: &pb::TopologyEvent) -> String {
    let parts = [
        time_of_day(ev.at_ms),
        ev.group.clone(),
        format!("epoch {}", ev.epoch),
        ev.kind.clone(),
        ev.node.clone(),
        ev.detail.clone(),
    ];
    let line: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    line.join(" ")
}

/// An event as one JSON object (`vigil ctl watch --json`).
pub fn event_json(ev: &pb::TopologyEvent) -> serde_json::Value {
    json!({
        "at_ms": ev.at_ms, "index": ev.index, "group": ev.group, "epoch": ev.epoch,
        "kind": ev.kind, "node": ev.node, "detail": ev.detail,
    })
}

/// `HH:MM:SS.mmm` (UTC) of a wall-clock time in milliseconds (as
/// `vigil_base::clock::unix_ms` reads it on the sentinel that stamped the event).
fn time_of_day(ms: u64) -> String {
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
    fn columns_align() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ]);
        assert_eq!(t, "  A    BB\n  CCC  D\n");
    }

    #[test]
    fn clock_reads_utc() {
        assert_eq!(time_of_day(3_723_004), "01:02:03.004");
    }

    #[test]
    fn events_leave_out_empty_fields() {
        let ev = pb::TopologyEvent {
            at_ms: 3_723_004,
            group: "mymaster".into(),
            epoch: 2,
            kind: "+sdown".into(),
            node: "n1".into(),
            ..Default::default()
        };
        assert_eq!(event_line(&ev), "01:02:03.004 mymaster epoch 2 +sdown n1");
        assert_eq!(event_json(&ev)["kind"], "+sdown");
    }

    #[test]
    fn acknowledgements_read_as_text_or_json() {
        assert_eq!(
            done(false, 7, "removed \"g\""),
            "OK: removed \"g\" (Raft index 7)"
        );
        let v: serde_json::Value = serde_json::from_str(&done(true, 7, "x")).unwrap();
        assert_eq!(
            (v["ok"].as_bool(), v["index"].as_u64()),
            (Some(true), Some(7))
        );
    }

    #[test]
    fn an_empty_cluster_says_how_to_add_a_group() {
        let info = pb::ClusterInfo {
            id: 1,
            ..Default::default()
        };
        let text = status_text(&info, &[], "a:1");
        assert!(text.contains("Raft leader none known"), "{text}");
        assert!(text.contains("No groups are monitored"), "{text}");
    }
}
