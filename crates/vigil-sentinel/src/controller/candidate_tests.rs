//! The failover candidate and the first master: which node, and in what order (table-driven).

use super::tests::{group, st};
use super::*;
use std::time::Instant;

/// A node's status for the candidate rules: offset and run id.
fn at(offset: u64, run_id: &str) -> Option<(NodeStatus, Instant)> {
    Some((
        NodeStatus {
            role: NodeRole::Replica as i32,
            epoch: 3,
            offset,
            run_id: run_id.into(),
            ..NodeStatus::default()
        },
        Instant::now(),
    ))
}

#[test]
fn the_candidate_rules_each_exclude_or_order() {
    type Case = (
        &'static str,
        // (priority of a, b, c)
        [u32; 3],
        // statuses of a (the master), b, c
        [Option<(NodeStatus, Instant)>; 3],
        u64,                     // min_offset
        &'static [&'static str], // excluded
        &'static [&'static str], // seen down here
        u32,                     // sync_replicas
        Option<(&'static str, u64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "the best offset wins",
            [100; 3],
            [at(100, "a"), at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("c", 95)),
        ),
        (
            "the master is never its own replacement",
            [100; 3],
            [at(500, "a"), None, at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("c", 95)),
        ),
        (
            "unreachable nodes are skipped",
            [100; 3],
            [None, None, at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("c", 95)),
        ),
        (
            "priority 0 never",
            [100, 100, 0],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("b", 90)),
        ),
        (
            "a lower priority value first",
            [100, 10, 100],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("b", 90)),
        ),
        (
            "equal offsets: the smaller run id",
            [100; 3],
            [None, at(95, "y"), at(95, "x")],
            0,
            &[],
            &[],
            0,
            Some(("c", 95)),
        ),
        (
            "an excluded candidate is skipped",
            [100; 3],
            [None, at(90, "b"), at(95, "c")],
            0,
            &["c"],
            &[],
            0,
            Some(("b", 90)),
        ),
        (
            "a node seen down is skipped",
            [100; 3],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &["c"],
            0,
            Some(("b", 90)),
        ),
        (
            "below min_offset is skipped",
            [100; 3],
            [None, at(90, "b"), at(95, "c")],
            92,
            &[],
            &[],
            0,
            Some(("c", 95)),
        ),
        (
            "nobody reaches min_offset",
            [100; 3],
            [None, at(90, "b"), at(95, "c")],
            96,
            &[],
            &[],
            0,
            None,
        ),
        // max_lag_on_failover is 1 MiB by default; the lag is against the best node seen,
        // the master included.
        (
            "async: too far behind",
            [100; 3],
            [at(3 << 20, "a"), at(1 << 20, "b"), at(0, "c")],
            0,
            &[],
            &[],
            0,
            None,
        ),
        (
            "async: within the lag",
            [100; 3],
            [at(2 << 20, "a"), at(1 << 20, "b"), at(0, "c")],
            0,
            &[],
            &[],
            0,
            Some(("b", 1 << 20)),
        ),
        (
            "sync mode ignores the lag",
            [100; 3],
            [at(3 << 20, "a"), at(1 << 20, "b"), at(0, "c")],
            0,
            &[],
            &[],
            1,
            Some(("b", 1 << 20)),
        ),
        // A write is acknowledged once sync_replicas replicas hold it: with one, the most
        // advanced replica may be the only one with the last acknowledged writes, whatever
        // min_offset (read a round ago) says.
        (
            "async: priority before offset",
            [100, 50, 100],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            0,
            Some(("b", 90)),
        ),
        (
            "sync: a replica surely holding every acknowledged write before priority",
            [100, 50, 100],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            1,
            Some(("c", 95)),
        ),
        (
            "sync_replicas 2: both surely hold them, priority decides",
            [100, 50, 100],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            2,
            Some(("b", 90)),
        ),
        (
            "sync: the safe replica may not be promoted, priority then",
            [100, 50, 0],
            [None, at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            1,
            Some(("b", 90)),
        ),
        (
            "sync: the master's own offset bounds nothing",
            [100, 50, 100],
            [at(99, "a"), at(90, "b"), at(95, "c")],
            0,
            &[],
            &[],
            2,
            Some(("b", 90)),
        ),
        (
            "no replica at all",
            [100; 3],
            [at(10, "a"), None, None],
            0,
            &[],
            &[],
            0,
            None,
        ),
    ];
    for (i, (what, prio, observed, min_offset, excluded, down, sync, want)) in
        cases.into_iter().enumerate()
    {
        let mut g = group(1000);
        for (n, p) in g.spec.nodes.iter_mut().zip(prio) {
            n.priority = p;
        }
        g.spec.settings.sync_replicas = sync;
        let excluded: HashSet<String> = excluded.iter().map(|s| s.to_string()).collect();
        let observed = observed.to_vec();
        let floor = (min_offset, surely_acked(&g, &observed, "a"));
        let got = choose_candidate(&g, &observed, "a", floor, &excluded, |n| down.contains(&n))
            .map(|(n, off)| (n.name.as_str(), off));
        assert_eq!(got, want, "#{i} {what}");
    }
}

/// The offset no acknowledged write exceeds: the N-th highest replica offset, counting the
/// replicas that gave none (`silent_replicas`) as above every other.
#[test]
fn surely_acked_bounds_what_sync_replicas_acknowledged() {
    // (sync_replicas, offsets of the replicas b, c, d, e (None: no status), want)
    type Case = (u32, [Option<u64>; 4], u64);
    let cases: [Case; 8] = [
        (0, [Some(5), Some(9), Some(7), Some(1)], 0),
        (1, [Some(5), Some(9), Some(7), Some(1)], 9),
        (2, [Some(5), Some(9), Some(7), Some(1)], 7),
        (4, [Some(5), Some(9), Some(7), Some(1)], 1),
        // c missing may hold more than everything seen: d's 7 is not enough with two.
        (2, [Some(5), None, Some(7), Some(1)], 7),
        (3, [Some(5), None, Some(7), Some(1)], 5),
        // As many missing as acknowledge: nothing bounds it, the highest seen at best.
        (2, [None, None, Some(7), Some(1)], 7),
        (1, [None, None, None, None], 0),
    ];
    for (i, (sync, offsets, want)) in cases.into_iter().enumerate() {
        let mut g = group(1000);
        g.spec.settings.sync_replicas = sync;
        for n in ["d", "e"] {
            let mut extra = g.spec.nodes[1].clone();
            extra.name = n.into();
            g.spec.nodes.push(extra);
        }
        let mut observed: Observed = vec![st(NodeRole::Master, 1, 100)];
        observed.extend(
            offsets
                .iter()
                .map(|o| o.and_then(|o| st(NodeRole::Replica, 1, o))),
        );
        assert_eq!(surely_acked(&g, &observed, "a"), want, "#{i}");
        let silent: Vec<usize> = (0..4)
            .filter(|&r| offsets[r].is_none())
            .map(|r| r + 1)
            .collect();
        assert_eq!(silent_replicas(&g, &observed, "a"), silent, "#{i}");
    }
}

#[test]
fn the_first_master_is_the_most_up_to_date_eligible_node() {
    // (priorities of a, b, c; offsets (None: unreachable); want)
    type Case = ([u32; 3], [Option<u64>; 3], Option<&'static str>);
    let cases: [Case; 7] = [
        ([100; 3], [Some(5), Some(9), Some(7)], Some("b")),
        ([100; 3], [Some(5), None, Some(7)], Some("c")),
        ([100, 0, 100], [Some(5), Some(9), Some(7)], Some("c")),
        // Equal offsets: the lower priority value, then the smaller name.
        ([100, 50, 100], [Some(9), Some(9), Some(9)], Some("b")),
        ([100; 3], [Some(9), Some(9), Some(9)], Some("a")),
        ([0, 0, 0], [Some(1), Some(2), Some(3)], None),
        ([100; 3], [None, None, None], None),
    ];
    for (i, (prio, offsets, want)) in cases.into_iter().enumerate() {
        let mut g = group(1000);
        g.master = None;
        for (n, p) in g.spec.nodes.iter_mut().zip(prio) {
            n.priority = p;
        }
        let observed: Observed = offsets
            .iter()
            .map(|o| o.and_then(|o| st(NodeRole::Unassigned, 0, o)))
            .collect();
        let got = first_master(&g, &observed).map(|n| n.name.as_str());
        assert_eq!(got, want, "#{i}");
    }
}

#[test]
fn a_resp_group_keeps_the_stock_master_it_has() {
    use crate::state::Driver;
    let mut g = group(1000);
    g.master = None;
    // b is master; its replicas, read a moment later, are slightly ahead.
    let observed: Observed = vec![
        st(NodeRole::Replica, 0, 12),
        st(NodeRole::Master, 0, 10),
        st(NodeRole::Replica, 0, 11),
    ];
    assert_eq!(
        first_master(&g, &observed).unwrap().name,
        "a",
        "grpc: the offsets decide"
    );
    g.spec.driver = Driver::Resp;
    assert_eq!(first_master(&g, &observed).unwrap().name, "b");
    // A master that may never be master (priority 0) is not kept; nor is an absent one.
    g.spec.nodes[1].priority = 0;
    assert_eq!(first_master(&g, &observed).unwrap().name, "a");
    g.spec.nodes[1].priority = 100;
    let without: Observed = vec![observed[0].clone(), None, observed[2].clone()];
    assert_eq!(first_master(&g, &without).unwrap().name, "a");
}
