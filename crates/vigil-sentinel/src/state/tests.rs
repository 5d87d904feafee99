//! The state machine's rules: compare-and-swap epochs, aborts, rejected specs and options.

use super::*;

fn spec(name: &str, nodes: &[&str]) -> GroupSpec {
    GroupSpec {
        name: name.into(),
        nodes: nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeSpec {
                name: n.to_string(),
                data: format!("127.0.0.1:{}", 6379 + i),
                admin: format!("127.0.0.1:{}", 16379 + i),
                priority: 100,
                tls_data: String::new(),
            })
            .collect(),
        settings: Settings::default(),
        ..GroupSpec::default()
    }
}

fn run(s: &mut ClusterState, index: u64, cmd: Command) -> Result<(), Rejected> {
    let p = Proposal {
        id: index,
        by: 1,
        at_ms: index * 10,
        cmd,
    };
    // Through the entry encoding, as the driver does.
    s.apply(index, &Proposal::decode(&p.encode()).unwrap())
}

#[test]
fn failover_is_a_compare_and_swap_on_the_epoch() {
    let mut s = ClusterState::default();
    run(&mut s, 1, Command::Monitor(spec("g", &["a", "b", "c"]))).unwrap();
    assert!(run(&mut s, 2, Command::Monitor(spec("g", &["a"]))).is_err());
    let assign = |e| Command::AssignMaster {
        group: "g".into(),
        expected_epoch: e,
        node: "a".into(),
    };
    run(&mut s, 3, assign(0)).unwrap();
    assert!(run(&mut s, 4, assign(0)).is_err(), "only once");
    let begin = |expected, new, cand: &str| Command::BeginFailover {
        group: "g".into(),
        expected_epoch: expected,
        new_epoch: new,
        old: Some("a".into()),
        candidate: cand.into(),
        min_offset: 10,
        manual: false,
    };
    assert!(
        run(&mut s, 5, begin(0, 2, "b")).is_err(),
        "stale expected epoch"
    );
    assert!(run(&mut s, 6, begin(1, 1, "b")).is_err(), "epoch must rise");
    assert!(
        run(&mut s, 7, begin(1, 2, "a")).is_err(),
        "old master is no candidate"
    );
    assert!(run(&mut s, 8, begin(1, 2, "zz")).is_err(), "unknown node");
    run(&mut s, 9, begin(1, 2, "b")).unwrap();
    // Two leaders racing: the second CAS fails.
    assert!(run(&mut s, 10, begin(1, 2, "c")).is_err());
    assert!(run(&mut s, 11, begin(2, 3, "c")).is_err(), "one in flight");
    let g = &s.groups["g"];
    assert_eq!((g.epoch, g.master.as_deref()), (2, Some("a")));
    assert!(
        run(
            &mut s,
            12,
            Command::CompleteFailover {
                group: "g".into(),
                epoch: 2
            }
        )
        .is_err(),
        "not promoted yet"
    );
    run(
        &mut s,
        13,
        Command::Promoted {
            group: "g".into(),
            epoch: 2,
        },
    )
    .unwrap();
    assert_eq!(s.groups["g"].master.as_deref(), Some("b"));
    run(
        &mut s,
        14,
        Command::CompleteFailover {
            group: "g".into(),
            epoch: 2,
        },
    )
    .unwrap();
    let g = &s.groups["g"];
    assert_eq!((g.failover.clone(), g.last_failover_ms), (None, 140));
    assert_eq!(s.applied, 14);
    assert_eq!(s.history.len(), 5, "{:#?}", s.history);
    // The snapshot round-trips exactly.
    assert_eq!(ClusterState::from_bytes(&s.to_bytes()).unwrap(), s);
}

#[test]
fn abort_keeps_the_epoch_and_frees_the_group() {
    let mut s = ClusterState::default();
    run(&mut s, 1, Command::Monitor(spec("g", &["a", "b"]))).unwrap();
    run(
        &mut s,
        2,
        Command::BeginFailover {
            group: "g".into(),
            expected_epoch: 0,
            new_epoch: 5,
            old: None,
            candidate: "b".into(),
            min_offset: 0,
            manual: false,
        },
    )
    .unwrap();
    run(
        &mut s,
        3,
        Command::AbortFailover {
            group: "g".into(),
            epoch: 5,
            reason: "candidate unreachable".into(),
            why: AbortReason::Timeout,
        },
    )
    .unwrap();
    let g = &s.groups["g"];
    assert_eq!(
        (g.epoch, g.failover.is_none(), g.master.clone()),
        (5, true, None)
    );
}

#[test]
fn bad_specs_and_options_are_rejected_without_change() {
    let mut s = ClusterState::default();
    let mut bad = spec("g", &["a", "a"]);
    assert!(run(&mut s, 1, Command::Monitor(bad.clone())).is_err());
    bad = spec("g", &["a"]);
    bad.nodes[0].data = "nohost".into();
    assert!(run(&mut s, 2, Command::Monitor(bad)).is_err());
    bad = spec("g", &["a"]);
    bad.nodes[0].tls_data = "nohost".into();
    assert!(run(&mut s, 2, Command::Monitor(bad)).is_err());
    assert!(run(&mut s, 3, Command::Monitor(spec("", &["a"]))).is_err());
    run(&mut s, 4, Command::Monitor(spec("g", &["a", "b"]))).unwrap();
    let set = |k: &str, v: &str| Command::SetOption {
        group: "g".into(),
        key: k.into(),
        value: v.into(),
    };
    assert!(run(&mut s, 5, set("quorum", "0")).is_err());
    assert!(run(&mut s, 6, set("quorum", "x")).is_err());
    assert!(run(&mut s, 7, set("nonsense", "1")).is_err());
    run(&mut s, 8, set("down-after-milliseconds", "250")).unwrap();
    assert_eq!(s.groups["g"].spec.settings.down_after_ms, 250);
    assert_eq!(s.groups["g"].spec.settings.quorum, 2);
    run(
        &mut s,
        9,
        Command::AssignMaster {
            group: "g".into(),
            expected_epoch: 0,
            node: "a".into(),
        },
    )
    .unwrap();
    assert!(
        run(&mut s, 10, Command::Update(spec("g", &["b", "c"]))).is_err(),
        "cannot drop the master"
    );
    run(&mut s, 11, Command::Update(spec("g", &["a", "c"]))).unwrap();
    run(&mut s, 12, Command::Remove { group: "g".into() }).unwrap();
    assert!(s.groups.is_empty());
    assert!(s.removed.contains("g"), "a removal is remembered");
    run(&mut s, 13, Command::Monitor(spec("g", &["a"]))).unwrap();
    assert!(s.removed.is_empty(), "monitoring the name again clears it");
    assert!(Proposal::decode(b"garbage").is_err());
}

#[test]
fn state_written_before_the_driver_fields_decodes_to_a_grpc_group() {
    // A snapshot and a Monitor entry as sentinels wrote them before `driver`, `auth_user`,
    // `auth_pass` and `rename_commands` existed.
    let spec = r#"{"name":"g","nodes":[{"name":"a","data":"127.0.0.1:6379","admin":"127.0.0.1:16379","priority":100}],"settings":{"quorum":2,"down_after_ms":1000,"failover_timeout_ms":10000,"parallel_syncs":1,"max_lag_on_failover":1048576,"sync_replicas":0,"min_failover_interval_ms":5000}}"#;
    let entry = format!(r#"{{"id":1,"by":1,"at_ms":5,"cmd":{{"Monitor":{spec}}}}}"#);
    let p = Proposal::decode(entry.as_bytes()).expect("an old entry decodes");
    let Command::Monitor(g) = &p.cmd else {
        panic!("{p:?}")
    };
    assert_eq!(g, &spec_of_old());
    let snap = format!(
        r#"{{"groups":{{"g":{{"spec":{spec},"epoch":1,"master":"a","failover":null,"last_failover_ms":0}}}},"history":[],"applied":7}}"#
    );
    let st = ClusterState::from_bytes(snap.as_bytes()).expect("an old snapshot decodes");
    assert_eq!(st.groups["g"].spec, spec_of_old());
    // And a new spec round-trips with its fields.
    let mut new = spec_of_old();
    new.driver = Driver::Resp;
    new.nodes[0].admin = new.nodes[0].data.clone();
    new.auth_pass = "p".into();
    new.rename_commands
        .insert("CONFIG".into(), "XCONFIG".into());
    let p = Proposal {
        id: 2,
        by: 1,
        at_ms: 6,
        cmd: Command::Monitor(new.clone()),
    };
    assert_eq!(Proposal::decode(&p.encode()), Ok(p.clone()));
    let mut s = ClusterState::default();
    s.apply(1, &p).expect("a valid resp group applies");
    assert_eq!(s.groups["g"].spec, new);
}

/// The old entry's group: gRPC-driven, no credentials, no renamed commands.
fn spec_of_old() -> GroupSpec {
    spec("g", &["a"])
}
