//! Failover as operators and clients watch it: the events of every step in order, the sentinel
//! leader killed in the middle of a failover, a flapping master held back by
//! `min_failover_interval`, and the probes' kept connections.

use std::time::{Duration, Instant};

use vigil_proto::sentinel::{GetMasterRequest, ListGroupsRequest};
use vigil_tests::managed::*;
use vigil_tests::{NodeProc, RawConn, sentinel_client};

/// Position of the first event `kind` (about `node`, if given) in `kinds`.
fn pos(kinds: &[String], kind: &str, node: Option<&str>) -> usize {
    kinds
        .iter()
        .position(|k| {
            let mut w = k.split(' ');
            w.next() == Some(kind) && node.is_none_or(|n| w.next() == Some(n))
        })
        .unwrap_or_else(|| panic!("no {kind} {node:?} in {kinds:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_announces_every_step_in_order() {
    let mut c = start_managed("500ms");
    let (first, old) = c.master_and_followers().await;
    let leader = leader_of(&c, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let on_leader = EventLog::watch(c.ports[leader]).await;
    let on_follower = EventLog::watch(c.ports[follower]).await;
    let old_name = format!("n{}", old + 1);
    let (old_port, old_admin) = (c.nodes[old].port, c.nodes[old].admin_port());
    let killed_ms = vigil_tests::wall_ms();
    c.nodes[old].kill9();
    let end = on_leader
        .wait_for("+switch-master", Duration::from_secs(20))
        .await;
    let second = c.master(first.epoch + 1, Duration::from_secs(5)).await;
    let new_name = second.node.clone();
    assert_eq!(end.node, new_name);
    let kinds = on_leader.kinds();
    for e in on_leader.all() {
        eprintln!(
            "{:>+5} ms {} {} {}",
            e.at_ms as i64 - killed_ms as i64,
            e.kind,
            e.node,
            e.detail
        );
    }
    // The leader's own view, in Redis Sentinel's order.
    let order = [
        pos(&kinds, "+sdown", Some(&old_name)),
        pos(&kinds, "+odown", Some(&old_name)),
        pos(&kinds, "+new-epoch", None),
        pos(&kinds, "+try-failover", Some(&old_name)),
        pos(&kinds, "+selected-slave", Some(&new_name)),
        pos(&kinds, "+promoted-slave", Some(&new_name)),
        pos(&kinds, "+slave-reconf-sent", None),
        pos(&kinds, "+failover-end", Some(&new_name)),
        pos(&kinds, "+switch-master", Some(&new_name)),
    ];
    assert!(order.is_sorted(), "out of order: {kinds:?}");
    let odown = on_leader.wait_for("+odown", Duration::ZERO).await;
    assert_eq!(odown.detail.split(' ').next(), Some("#quorum"), "{odown:?}");
    // `+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>`: exactly five fields,
    // the same on every sentinel.
    let (oh, op) = first.address.rsplit_once(':').unwrap();
    let (nh, np) = second.address.rsplit_once(':').unwrap();
    let expected = format!("mymaster {oh} {op} {nh} {np}");
    for log in [&on_leader, &on_follower] {
        let sw = log.wait_for("+switch-master", Duration::from_secs(5)).await;
        assert_eq!(sw.detail, expected);
        assert_eq!(sw.epoch, first.epoch + 1);
        assert!(sw.index > 0, "a committed change carries its Raft index");
    }
    // The group's status no longer shows a failover.
    let groups = sentinel_client(c.ports[follower], TOKEN)
        .list_groups(ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(groups.groups[0].failover_step, "");
    // The old master comes back and is demoted; it had nothing the new master lacks.
    let cfg = c.dir.path().join(format!("n{}.toml", old + 1));
    let admin = old_admin.to_string();
    let dir = c.nodes[old].dir.clone();
    let _back = NodeProc::start_on(
        &dir,
        old_port,
        &["--config", cfg.to_str().unwrap(), "--admin-port", &admin],
    );
    let conv = on_leader
        .wait_for("+convert-to-slave", Duration::from_secs(20))
        .await;
    assert_eq!(
        (conv.node.as_str(), conv.detail.as_str()),
        (old_name.as_str(), "divergent_bytes 0")
    );
}

/// Kills the sentinel leader as soon as it announces `step` of a failover, then checks that the
/// two survivors finish it on their own: one master at the committed epoch, writable, the
/// other node following it.
async fn leader_killed_at(step: &str) {
    let mut c = start_managed("400ms");
    let (first, old) = c.master_and_followers().await;
    let leader = leader_of(&c, &[0, 1, 2]).await;
    let events = EventLog::watch(c.ports[leader]).await;
    c.nodes[old].kill9();
    events.wait_for(step, Duration::from_secs(20)).await;
    c.sentinels[leader].kill9();
    let alive: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let ask = c.ports[alive[0]];
    // Finished by the new leader: no failover in flight, a master at epoch 2 or later.
    let deadline = Instant::now() + Duration::from_secs(30);
    let group = loop {
        if let Ok(r) = sentinel_client(ask, TOKEN)
            .list_groups(ListGroupsRequest {})
            .await
        {
            let g = r.into_inner().groups.remove(0);
            if g.epoch > first.epoch && g.failover_step.is_empty() && !g.master.is_empty() {
                break g;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the failover was not finished after the leader died at {step}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Exactly one node is master, the committed one, at the committed epoch, and writable;
    // the other live node follows it.
    let m = sentinel_client(ask, TOKEN)
        .get_master(GetMasterRequest {
            group: "mymaster".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (m.node.as_str(), m.epoch),
        (group.master.as_str(), group.epoch)
    );
    let mi = c.node_at(&m.address);
    set_until_ok(c.nodes[mi].port, "after", "1", Duration::from_secs(10)).await;
    for (i, n) in c.nodes.iter().enumerate() {
        if i == old {
            continue;
        }
        if i == mi {
            assert_eq!(n.info_field("role").as_deref(), Some("master"));
        } else {
            n.wait_info(
                "master_link_status",
                |s| s == "up",
                "the other replica follows",
            );
            assert_eq!(
                n.info_field("master_port"),
                Some(c.nodes[mi].port.to_string())
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinel_leader_killed_right_after_begin_failover() {
    leader_killed_at("+try-failover").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinel_leader_killed_right_after_the_promotion() {
    leader_killed_at("+promoted-slave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentinel_leader_killed_after_the_first_replica_is_repointed() {
    leader_killed_at("+slave-reconf-sent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_group_waits_min_failover_interval_between_failovers() {
    let mut c = start_managed_with("300ms", "", "min_failover_interval = \"4s\"\n");
    let (first, old) = c.master_and_followers().await;
    let events = EventLog::watch(c.ports[0]).await;
    c.nodes[old].kill9();
    let second = c.master(first.epoch + 1, Duration::from_secs(20)).await;
    events
        .wait_for("+failover-end", Duration::from_secs(10))
        .await;
    let ended = Instant::now();
    // The new master dies at once: the last node must wait out the interval.
    let new = c.node_at(&second.address);
    c.nodes[new].kill9();
    let third = c.master(first.epoch + 2, Duration::from_secs(20)).await;
    let waited = ended.elapsed();
    assert!(
        waited >= Duration::from_millis(3500),
        "second failover after {waited:?}, inside min_failover_interval (4 s)"
    );
    let last = c.node_at(&third.address);
    assert!(last != old && last != new);
    set_until_ok(c.nodes[last].port, "k", "v", Duration::from_secs(10)).await;
    let mut r = RawConn::connect(c.nodes[last].port).unwrap();
    assert_eq!(r.call(&["GET", "k"]), b"$1\r\nv\r\n");
}

/// Every sentinel probes a node over one kept connection, as Redis Sentinel keeps its link, not
/// a new connection per probe (eight a second per sentinel here); a kept connection the node
/// drops is replaced at the next probe without the node being judged down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_keep_their_connections_and_replace_a_dropped_one() {
    let c = start_managed("500ms");
    let (_, old) = c.master_and_followers().await;
    let node = &c.nodes[old];
    let received = || -> u64 {
        node.info_field("total_connections_received")
            .and_then(|v| v.trim().parse().ok())
            .expect("total_connections_received")
    };
    let before = received();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grew = received() - before;
    // The INFO calls' own connections, and a probe connection a sentinel replaced: a few.
    assert!(
        grew <= 6,
        "{grew} connections in 2 s: the probes connect anew (48 would be three sentinels' probes)"
    );
    let logs = [
        EventLog::watch(c.ports[0]).await,
        EventLog::watch(c.ports[1]).await,
        EventLog::watch(c.ports[2]).await,
    ];
    let mut r = RawConn::connect(node.port).unwrap();
    let killed = r.call(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert!(
        killed.starts_with(b":"),
        "{}",
        String::from_utf8_lossy(&killed)
    );
    let before = received();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grew = received() - before;
    assert!(
        (3..=9).contains(&grew),
        "{grew} connections in the 2 s after CLIENT KILL: each sentinel reconnects once"
    );
    for (i, log) in logs.iter().enumerate() {
        let kinds = log.kinds();
        assert!(
            !kinds.iter().any(|k| k.starts_with("+sdown")),
            "sentinel {} judged a node down after its probe connection was killed: {kinds:?}",
            i + 1
        );
    }
}

/// A sentinel that stood still (SIGSTOP for 3 s, as a VM pause does) enters TILT when it
/// resumes: the probes that were out across the stall timed out on its clock, not the nodes',
/// so it announces `+tilt`, changes no node's SDOWN (the master it could not hear while
/// stopped is not announced down), leaves TILT after `down_after`, and no failover follows.
async fn a_stalled_sentinel_enters_tilt(leader_stalls: bool) {
    let c = start_managed("1s");
    let (first, _) = c.master_and_followers().await;
    let leader = leader_of(&c, &[0, 1, 2]).await;
    let paused = &c.sentinels[if leader_stalls {
        leader
    } else {
        (leader + 1) % 3
    }];
    let mut sub = RawConn::connect(paused.resp_port()).unwrap();
    for channel in ["+tilt", "-tilt", "+sdown", "-sdown"] {
        assert!(sub.call(&["SUBSCRIBE", channel]).starts_with(b"*3\r\n"));
    }
    paused.signal(libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(3)).await;
    paused.signal(libc::SIGCONT);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|m: &String| m.contains("-tilt")) && Instant::now() < deadline {
        if let Some(m) = sub.unsolicited(Duration::from_millis(500)) {
            seen.push(String::from_utf8_lossy(&m).replace("\r\n", " "));
        }
    }
    assert!(
        seen.iter().all(|m| !m.contains("sdown")),
        "a stall of the sentinel was taken for the nodes': {seen:?}"
    );
    let tilt = |ch: &str, why: &str| {
        let want = format!("$5 {ch} ${} {why} ", why.len());
        seen.iter().position(|m| m.ends_with(&want))
    };
    let entered = tilt("+tilt", "#tilt mode entered").expect("+tilt announced");
    let exited = tilt("-tilt", "#tilt mode exited").expect("-tilt announced");
    assert!(entered < exited, "{seen:?}");
    let now = c.master(0, Duration::from_secs(5)).await;
    assert_eq!((now.epoch, now.node), (first.epoch, first.node));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sentinel_that_stood_still_enters_tilt() {
    a_stalled_sentinel_enters_tilt(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_sentinel_that_stood_still_enters_tilt_and_no_failover_follows() {
    a_stalled_sentinel_enters_tilt(true).await;
}
