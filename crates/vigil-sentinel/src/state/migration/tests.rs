use super::*;
use crate::state::{Command, GroupSpec, NodeSpec, Proposal};

fn apply(st: &mut ClusterState, cmd: Command) -> Result<(), Rejected> {
    let index = st.applied + 1;
    let p = Proposal {
        id: index,
        by: 1,
        at_ms: 0,
        cmd,
    };
    st.apply(index, &p)
}

/// Four monitored groups, the first three a cluster `c`.
fn state() -> ClusterState {
    let mut st = ClusterState::default();
    for g in 1..=4u16 {
        let spec = GroupSpec {
            name: format!("g{g}"),
            nodes: vec![NodeSpec {
                name: "n1".into(),
                data: format!("127.0.0.1:{}", 7000 + g * 10),
                admin: format!("127.0.0.1:{}", 7001 + g * 10),
                priority: 1,
                tls_data: String::new(),
            }],
            ..Default::default()
        };
        apply(&mut st, Command::Monitor(spec)).expect("monitor");
    }
    let groups = vec!["g1".into(), "g2".into(), "g3".into()];
    apply(
        &mut st,
        Command::CreateCluster {
            name: "c".into(),
            groups,
        },
    )
    .expect("create");
    st
}

fn mv(from: &str, to: &str, ranges: &[(u16, u16)]) -> Move {
    Move {
        from: from.into(),
        to: to.into(),
        ranges: ranges.to_vec(),
    }
}

fn queue(st: &mut ClusterState, moves: Vec<Move>) -> Result<(), Rejected> {
    let expected_epoch = st.clusters["c"].epoch;
    apply(
        st,
        Command::QueueMigrations {
            cluster: "c".into(),
            expected_epoch,
            moves,
        },
    )
}

fn step(st: &mut ClusterState, id: u64, step: Step) -> Result<(), Rejected> {
    apply(
        st,
        Command::MigrationStep {
            cluster: "c".into(),
            id,
            step,
        },
    )
}

#[test]
fn moves_are_checked_against_the_map() {
    let mut st = state();
    let cases = [
        (vec![mv("g1", "g9", &[(0, 1)])], "not in cluster c"),
        (vec![mv("g1", "g1", &[(0, 1)])], "to itself"),
        (
            vec![mv("g1", "g2", &[(5460, 5461)])],
            "slot 5461 belongs to g2",
        ),
        (vec![mv("g1", "g2", &[(3, 2)])], "bad slot range"),
        (vec![mv("g1", "g2", &[(0, 16384)])], "bad slot range"),
        (
            vec![mv("g1", "g2", &[(0, 9)]), mv("g1", "g3", &[(5, 5)])],
            "slot 5 belongs to g2",
        ),
        (vec![], "nothing to move"),
    ];
    for (i, (moves, want)) in cases.into_iter().enumerate() {
        let e = queue(&mut st, moves).expect_err("refused");
        assert!(e.to_string().contains(want), "#{i}: {e}");
    }
    let stale = apply(
        &mut st,
        Command::QueueMigrations {
            cluster: "c".into(),
            expected_epoch: 0,
            moves: vec![mv("g1", "g2", &[(0, 0)])],
        },
    );
    assert!(stale.expect_err("stale").to_string().contains("changed"));
    assert!(st.clusters["c"].migrations.is_empty());
    // A chain within one request is checked in order.
    queue(
        &mut st,
        vec![mv("g1", "g2", &[(0, 9)]), mv("g2", "g3", &[(0, 4)])],
    )
    .expect("queued");
    let e = queue(&mut st, vec![mv("g1", "g2", &[(10, 10)])]).expect_err("one at a time");
    assert!(e.to_string().contains("in flight"), "{e}");
}

#[test]
fn a_migration_goes_through_its_phases_and_the_owner_changes_only_at_the_commit() {
    let mut st = state();
    queue(&mut st, vec![mv("g1", "g2", &[(0, 99), (200, 200)])]).expect("queued");
    let id = st.clusters["c"].migrations[0].id;
    let e = step(&mut st, id, Step::Commit).expect_err("not paused yet");
    assert!(e.to_string().contains("Copying"), "{e}");
    assert!(step(&mut st, id + 1, Step::Pause).is_err(), "another id");
    // A retry takes a new id; the old one is refused from then on.
    step(&mut st, id, Step::Retry("target failed over".into())).expect("retry");
    let m = &st.clusters["c"].migrations[0];
    assert_ne!(m.id, id);
    assert_eq!((m.attempts, m.phase), (1, Phase::Copying));
    let id = m.id;
    let epoch = st.clusters["c"].epoch;
    step(&mut st, id, Step::Pause).expect("pause");
    assert_eq!(
        st.clusters["c"].owner(50),
        Some("g1"),
        "no owner change yet"
    );
    assert_eq!(
        st.clusters["c"].epoch,
        epoch + 1,
        "every step raises the epoch"
    );
    step(&mut st, id, Step::Commit).expect("commit");
    let c = &st.clusters["c"];
    for (slot, owner) in [
        (0, "g2"),
        (99, "g2"),
        (100, "g1"),
        (199, "g1"),
        (200, "g2"),
        (201, "g1"),
        (5461, "g2"),
    ] {
        assert_eq!(c.owner(slot), Some(owner), "slot {slot}");
    }
    // Still one owner per slot, contiguous, covering.
    assert_eq!(c.slots[0].start, 0);
    assert_eq!(c.slots.last().map(|r| r.end), Some(16383));
    for w in c.slots.windows(2) {
        assert_eq!(w[0].end + 1, w[1].start);
        assert_ne!(w[0].group, w[1].group, "runs merged");
    }
    let e = step(&mut st, id, Step::Abort("late".into())).expect_err("committed");
    assert!(e.to_string().contains("Cleanup"), "{e}");
    step(&mut st, id, Step::Finish).expect("finish");
    assert!(st.clusters["c"].migrations.is_empty());
    let back = ClusterState::from_bytes(&st.to_bytes()).expect("decodes");
    assert_eq!(back.clusters, st.clusters);
}

#[test]
fn a_failover_during_the_pause_refuses_the_commit() {
    let mut st = state();
    apply(
        &mut st,
        Command::AssignMaster {
            group: "g1".into(),
            expected_epoch: 0,
            node: "n1".into(),
        },
    )
    .expect("master");
    queue(&mut st, vec![mv("g1", "g2", &[(0, 9)])]).expect("queued");
    let id = st.clusters["c"].migrations[0].id;
    step(&mut st, id, Step::Pause).expect("pause");
    let g1 = st.groups["g1"].epoch;
    st.groups.get_mut("g1").expect("g1").epoch = g1 + 1;
    let e = step(&mut st, id, Step::Commit).expect_err("failed over");
    assert!(
        e.to_string().contains("failed over during the pause"),
        "{e}"
    );
    assert_eq!(st.clusters["c"].owner(0), Some("g1"));
    step(&mut st, id, Step::Abort("given up".into())).expect("abort");
    assert!(st.clusters["c"].migrations.is_empty());
    assert_eq!(st.clusters["c"].owner(0), Some("g1"));
}

#[test]
fn rebalance_shares_slots_by_weight() {
    let mut st = state();
    apply(
        &mut st,
        Command::AddClusterGroup {
            cluster: "c".into(),
            group: "g4".into(),
        },
    )
    .expect("add");
    let c = st.clusters["c"].clone();
    let count = |slots: &[SlotRange], g: &str| -> u32 {
        slots
            .iter()
            .filter(|r| r.group == g)
            .map(|r| (r.end - r.start) as u32 + 1)
            .sum()
    };
    let moves = rebalance(&c, &BTreeMap::new()).expect("moves");
    assert!(moves.iter().all(|m| m.to == "g4"), "{moves:?}");
    queue(&mut st, moves).expect("queued");
    while let Some(m) = st.clusters["c"].migrations.front().cloned() {
        for s in [Step::Pause, Step::Commit, Step::Finish] {
            step(&mut st, m.id, s).expect("step");
        }
    }
    let c = st.clusters["c"].clone();
    for g in ["g1", "g2", "g3", "g4"] {
        assert_eq!(count(&c.slots, g), 4096, "{g}");
    }
    assert!(rebalance(&c, &BTreeMap::new()).expect("none").is_empty());
    // Weight 0 empties a group; the others share its slots.
    let moves = rebalance(&c, &BTreeMap::from([("g2".to_string(), 0)])).expect("moves");
    assert!(moves.iter().all(|m| m.from == "g2"), "{moves:?}");
    let e = apply(
        &mut st,
        Command::RemoveClusterGroup {
            cluster: "c".into(),
            group: "g2".into(),
        },
    )
    .expect_err("owns slots");
    assert!(e.to_string().contains("still owns slots"), "{e}");
    assert!(rebalance(&c, &BTreeMap::from([("g9".to_string(), 1)])).is_err());
    let zero: BTreeMap<String, u32> = c.groups.iter().map(|g| (g.clone(), 0)).collect();
    assert!(rebalance(&c, &zero).is_err());
}
