//! Table-driven tests of the controller's pure decisions.

use super::*;
use crate::state::GroupSpec;
use std::time::Instant;

pub(super) fn group(down_after_ms: u64) -> Group {
    let nodes = ["a", "b", "c"]
        .iter()
        .map(|n| NodeSpec {
            name: n.to_string(),
            data: format!("{n}:1"),
            admin: format!("{n}:2"),
            priority: 100,
            tls_data: String::new(),
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
            ..GroupSpec::default()
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

pub(super) fn st(role: NodeRole, epoch: u64, offset: u64) -> Option<(NodeStatus, Instant)> {
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

/// A stock server restarted empty reports offset 0, as do replicas whose data all came in
/// their first sync: the replication id and the key count tell it lacks their history.
#[test]
fn a_master_restarted_empty_is_behind_even_at_an_equal_offset() {
    let g = group(1000);
    let node = |role: NodeRole, replid: &str, keys: u64| {
        Some((
            NodeStatus {
                role: role as i32,
                epoch: 1,
                replid: replid.into(),
                keys,
                ..NodeStatus::default()
            },
            std::time::Instant::now(),
        ))
    };
    for (i, (master, want)) in [
        // A fresh history and fewer keys: behind.
        (node(NodeRole::Unassigned, "fresh", 0), Some((0, 0))),
        // The replicas' own history, all keys: promote it again.
        (node(NodeRole::Unassigned, "h", 1), None),
        // A fresh history but as many keys (reloaded from its own files): not behind.
        (node(NodeRole::Unassigned, "fresh", 1), None),
    ]
    .into_iter()
    .enumerate()
    {
        let observed = vec![
            master,
            node(NodeRole::Replica, "h", 1),
            node(NodeRole::Replica, "h", 1),
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

#[test]
fn the_lease_and_waits_are_clamped() {
    // (down_after ms, lease ms, status timeout ms)
    for (i, (down_after, want_lease, want_status)) in [
        (10, 20, 50),
        (40, 20, 50),
        (1000, 875, 250),
        (100_000, 60_000, 5000),
    ]
    .into_iter()
    .enumerate()
    {
        let s = Settings {
            down_after_ms: down_after,
            ..Settings::default()
        };
        assert_eq!(lease(&s), Duration::from_millis(want_lease), "#{i}");
        assert_eq!(
            status_timeout(&s),
            Duration::from_millis(want_status),
            "#{i}"
        );
        assert!(renew_every(&s) <= RENEW, "#{i}");
        assert!(renew_every(&s) <= lease(&s) / 8, "#{i}");
    }
    for (i, (lease_ms, want)) in [(0, 5), (50, 6), (1000, 25), (60_000, 1205)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            drift(Duration::from_millis(lease_ms)),
            Duration::from_millis(want),
            "#{i}"
        );
    }
}

#[test]
fn odown_counts_this_sentinel_and_every_peer_that_sees_the_master_down() {
    let o = |down_ms, acked_offset| Opinion {
        down_ms,
        acked_offset,
    };
    // (opinions, acked here, want votes, want sees_it_up, want acked); down_after 1000
    type Case = (Vec<(u64, Opinion)>, u64, u32, Option<u64>, u64);
    let cases: Vec<Case> = vec![
        (vec![], 7, 1, None, 7),
        (vec![(2, o(1000, 0)), (3, o(2000, 0))], 0, 3, None, 0),
        // Between half and all of down_after: neither a vote nor "sees it up".
        (vec![(2, o(999, 0)), (3, o(500, 0))], 0, 1, None, 0),
        (vec![(2, o(499, 0)), (3, o(1000, 0))], 0, 2, Some(2), 0),
        (vec![(2, o(0, 40)), (3, o(1500, 30))], 35, 2, Some(2), 40),
    ];
    for (i, (opinions, here, votes, up, acked)) in cases.into_iter().enumerate() {
        let t = tally(&opinions, 1000, here);
        assert_eq!(
            t,
            Tally {
                votes,
                sees_it_up: up,
                acked
            },
            "#{i}"
        );
    }
}

#[test]
fn divergence_is_unknown_without_a_shared_history() {
    let master = |second_offset, replid2: &str| NodeStatus {
        replid: "new".into(),
        replid2: replid2.into(),
        second_offset,
        ..NodeStatus::default()
    };
    let old = |replid: &str, replid2: &str, offset, second_offset| NodeStatus {
        replid: replid.into(),
        replid2: replid2.into(),
        offset,
        second_offset,
        ..NodeStatus::default()
    };
    for (i, (m, o, want)) in [
        // The master never changed history: nothing to compare with.
        (master(0, "old"), old("old", "", 150, 0), None),
        (master(101, ""), old("old", "", 150, 0), None),
        // Unrelated histories.
        (master(101, "old"), old("other", "", 150, 0), None),
        // The old node itself moved on from the shared history once before.
        (master(101, "old"), old("other", "old", 150, 121), Some(20)),
        (master(101, "old"), old("other", "old", 150, 0), None),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(divergent(&o, &m), want, "#{i}");
    }
}

#[test]
fn replicate_from_names_the_host_without_brackets() {
    for (i, (addr, want)) in [
        ("10.0.0.1:6379", Some(("10.0.0.1", 6379))),
        ("redis-0.svc:7000", Some(("redis-0.svc", 7000))),
        ("[::1]:7000", Some(("::1", 7000))),
        ("nohost", None),
        ("h:99999", None),
    ]
    .into_iter()
    .enumerate()
    {
        let got = split(addr);
        assert_eq!(got.as_ref().map(|(h, p)| (h.as_str(), *p)), want, "#{i}");
    }
}
