//! The agentless driver's pure parts: the epoch a stock server is reported at, and the write
//! guard.

use std::time::{Duration, Instant};

use vigil_agent::stock::Info;

use super::{Mark, write_guard};
use crate::state::{Driver, Group, GroupSpec, NodeSpec, Settings};

fn group(master: Option<&str>, epoch: u64) -> Group {
    let node = |name: &str, port: u16| NodeSpec {
        name: name.into(),
        data: format!("127.0.0.1:{port}"),
        admin: format!("127.0.0.1:{port}"),
        priority: 100,
        tls_data: String::new(),
    };
    Group {
        spec: GroupSpec {
            name: "g".into(),
            nodes: vec![node("a", 7001), node("b", 7002), node("c", 7003)],
            settings: Settings::default(),
            driver: Driver::Resp,
            ..GroupSpec::default()
        },
        epoch,
        master: master.map(String::from),
        failover: None,
        last_failover_ms: 0,
        deposed: None,
        lease_ms: 0,
    }
}

fn master(run: &str) -> Info {
    Info {
        master: true,
        run_id: run.into(),
        ..Info::default()
    }
}

fn replica(run: &str, port: u16) -> Info {
    Info {
        run_id: run.into(),
        master_host: "127.0.0.1".into(),
        master_port: port,
        ..Info::default()
    }
}

#[test]
fn a_server_in_its_committed_role_is_at_the_groups_epoch() {
    let g = group(Some("a"), 4);
    let now = Instant::now();
    let mut m = Mark::default();
    assert_eq!(
        m.reckon(&g, &g.spec.nodes[0], &master("r1"), now),
        (4, false)
    );
    let mut r = Mark::default();
    let b = &g.spec.nodes[1];
    assert_eq!(r.reckon(&g, b, &replica("r2", 7001), now), (4, false));
    // Following another node, or master where the state says replica: not confirmed.
    let mut x = Mark::default();
    assert_eq!(x.reckon(&g, b, &replica("r3", 7003), now), (0, false));
    assert_eq!(x.reckon(&g, b, &master("r3"), now), (0, false));
    // No committed master yet: nothing is confirmed.
    let g0 = group(None, 0);
    let mut y = Mark::default();
    assert_eq!(
        y.reckon(&g0, &g0.spec.nodes[0], &master("r1"), now),
        (0, false)
    );
}

#[test]
fn a_deposed_master_keeps_its_old_epoch() {
    let mut g = group(Some("a"), 4);
    let a = g.spec.nodes[0].clone();
    let now = Instant::now();
    let mut m = Mark::default();
    assert_eq!(m.reckon(&g, &a, &master("r1"), now).0, 4);
    // The failover moved the group on; the old master comes back, still a master.
    g.epoch = 5;
    g.master = Some("b".into());
    assert_eq!(m.reckon(&g, &a, &master("r1"), now).0, 4);
    // Once repointed at the new master it follows at the new epoch.
    m.set("r1", 5);
    assert_eq!(m.reckon(&g, &a, &replica("r1", 7002), now).0, 5);
}

#[test]
fn a_restarted_master_is_not_serving_until_promoted_again() {
    let g = group(Some("a"), 4);
    let a = &g.spec.nodes[0];
    let now = Instant::now();
    let mut m = Mark::default();
    assert_eq!(m.reckon(&g, a, &master("r1"), now).0, 4);
    // New run id: a new incarnation (maybe empty), not confirmed at any epoch.
    assert_eq!(m.reckon(&g, a, &master("r2"), now), (0, false));
    assert_eq!(m.reckon(&g, a, &master("r2"), now), (0, false));
    m.set("r2", 4);
    assert_eq!(m.reckon(&g, a, &master("r2"), now).0, 4);
    // A replica that restarted and follows the committed master again is in its role.
    let b = &g.spec.nodes[1];
    let mut r = Mark::default();
    assert_eq!(r.reckon(&g, b, &replica("r3", 7001), now).0, 4);
    assert_eq!(r.reckon(&g, b, &replica("r4", 7001), now).0, 4);
    assert_eq!(r.reckon(&g, b, &replica("r5", 7003), now).0, 0);
}

#[test]
fn the_fence_holds_while_the_pause_lasts_and_a_role_change_lifts_it() {
    let g = group(Some("a"), 4);
    let a = &g.spec.nodes[0];
    let now = Instant::now();
    let mut m = Mark::default();
    m.reckon(&g, a, &master("r1"), now);
    m.paused_until = Some(now + Duration::from_secs(1));
    assert_eq!(m.reckon(&g, a, &master("r1"), now), (4, true));
    assert!(!m.paused("r2", now), "another incarnation is not paused");
    assert_eq!(
        m.reckon(&g, a, &master("r1"), now + Duration::from_secs(2)),
        (4, false),
        "the pause ended"
    );
    m.paused_until = Some(now + Duration::from_secs(1));
    m.set("r1", 5);
    assert_eq!(m.reckon(&g, a, &master("r1"), now), (5, false));
}

#[test]
fn the_write_guard() {
    let mut g = group(Some("a"), 1);
    assert_eq!(
        write_guard(&g, 2),
        (1, 2),
        "1 s down_after: lag 2 s at least"
    );
    g.spec.settings.down_after_ms = 5500;
    g.spec.settings.sync_replicas = 2;
    assert_eq!(write_guard(&g, 2), (2, 6));
    g.spec.settings.sync_replicas = 5;
    assert_eq!(
        write_guard(&g, 5).0,
        2,
        "never more than the group's replicas"
    );
    assert_eq!(write_guard(&g, 1).0, 1, "never more than are online");
    assert_eq!(
        write_guard(&g, 0).0,
        0,
        "a master just promoted takes writes"
    );
    g.spec.nodes.truncate(1);
    assert_eq!(write_guard(&g, 0).0, 0, "a lone master is never held back");
}
