//! Table-driven tests of the controller's pure decisions.

use super::*;
use crate::state::GroupSpec;
use std::time::Instant;

fn group(down_after_ms: u64) -> Group {
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|n| NodeSpec {
            name: n.to_string(),
            data: format!("{n}:1"),
            admin: format!("{n}:2"),
            priority: 100,
        })
        .collect();
    Group {
        spec: GroupSpec {
            name: "g".into(),
            nodes,
            settings: Settings {
                down_after_ms,
                ..Settings::default()
            },
        },
        epoch: 3,
        master: Some("a".into()),
        failover: None,
        last_failover_ms: 0,
        deposed: None,
        lease_ms: 0,
    }
}

#[test]
fn the_lease_ends_before_the_master_can_be_seen_down() {
    for (i, (down_after, want)) in [(1000, 875), (500, 385), (200, 141), (10_000, 9_695)]
        .into_iter()
        .enumerate()
    {
        let g = group(down_after);
        let l = lease(&g.spec.settings);
        assert_eq!(l, Duration::from_millis(want), "#{i}");
        let probe = crate::monitor::probe_interval(Duration::from_millis(down_after));
        assert!(
            l + probe + drift(l) <= Duration::from_millis(down_after),
            "#{i}"
        );
        assert!(renew_every(&g.spec.settings) <= l / 8, "#{i}");
    }
}

fn st(role: NodeRole, epoch: u64, offset: u64) -> Option<(NodeStatus, Instant)> {
    Some((
        NodeStatus {
            role: role as i32,
            epoch,
            offset,
            ..NodeStatus::default()
        },
        Instant::now(),
    ))
}

#[test]
fn a_master_is_restarted_behind_only_when_it_serves_not_and_has_less() {
    let g = group(1000);
    let cases = [
        // Serving master at the group's epoch: never, whatever the offsets.
        (st(NodeRole::Master, 3, 10), None),
        // Restarted (unassigned), behind a replica.
        (st(NodeRole::Unassigned, 3, 10), Some((10, 20))),
        // Restarted but level with the best replica: promote it again instead.
        (st(NodeRole::Unassigned, 3, 20), None),
        // A master at an older epoch, behind.
        (st(NodeRole::Master, 2, 0), Some((0, 20))),
        // Not answering: that is `down_after`'s business.
        (None, None),
    ];
    for (i, (master, want)) in cases.into_iter().enumerate() {
        let observed = vec![
            master.clone(),
            st(NodeRole::Replica, 3, 20),
            st(NodeRole::Replica, 3, 15),
        ];
        assert_eq!(restarted_behind(&g, "a", &observed), want, "#{i}");
    }
}

/// (old offset, old data offset) against a master promoted at offset 100 of the old history.
#[test]
fn divergence_counts_data_only() {
    let master = NodeStatus {
        replid: "new".into(),
        replid2: "old".into(),
        second_offset: 101,
        offset: 500,
        ..NodeStatus::default()
    };
    for (i, (offset, data_offset, want)) in [
        (100, Some(100), 0),
        (114, Some(100), 0),
        (140, Some(140), 40),
        (154, Some(140), 40),
        (154, None, 54),
        (90, Some(90), 0),
    ]
    .into_iter()
    .enumerate()
    {
        let old = NodeStatus {
            replid: "old".into(),
            offset,
            data_offset,
            ..NodeStatus::default()
        };
        assert_eq!(divergent(&old, &master), Some(want), "#{i}");
    }
}
