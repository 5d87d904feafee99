//! The Raft driver in an in-process network that can cut links and lose messages: elections,
//! proposals through any member, linearizable reads, a cut-off minority, restarts from disk,
//! catch-up from a snapshot after compaction, and a lossy network.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, monitor, opts, propose_retrying};
use vigil_sentinel::driver::DriverError;

async fn groups_after_read(c: &Cluster, id: u64) -> Vec<String> {
    c.h(id).read_index(Duration::from_secs(5)).await.unwrap();
    c.h(id).state.read().groups.keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sentinels_elect_agree_and_survive_the_leader() {
    let c = Cluster::new(3, opts());
    let leader = c.leader(&c.ids).await;
    let follower = c.ids.iter().copied().find(|&i| i != leader).unwrap();
    // Proposed through a follower: forwarded to the leader.
    propose_retrying(&c, follower, monitor("g1")).await;
    for &i in &c.ids {
        assert_eq!(groups_after_read(&c, i).await, vec!["g1"], "sentinel {i}");
    }
    // The rejected command comes back as such.
    let e = c
        .h(leader)
        .propose(monitor("g1"), Duration::from_secs(2))
        .await;
    assert!(matches!(e, Err(DriverError::Rejected(_))), "{e:?}");
    // Cut the leader off: the other two elect a new one within two election timeouts.
    let t = Instant::now();
    c.net.isolate(leader, &c.ids);
    let rest: Vec<u64> = c.ids.iter().copied().filter(|&i| i != leader).collect();
    let new_leader = c.leader(&rest).await;
    assert_ne!(new_leader, leader);
    let election = Duration::from_millis(20 * 10);
    assert!(
        t.elapsed() < election * 2 + Duration::from_millis(300),
        "took {:?}",
        t.elapsed()
    );
    // The isolated old leader can neither commit nor serve a linearizable read.
    let e = c
        .h(leader)
        .propose(monitor("lost"), Duration::from_millis(600))
        .await;
    assert!(e.is_err(), "a cut-off sentinel committed: {e:?}");
    let r = c.h(leader).read_index(Duration::from_millis(600)).await;
    assert!(r.is_err(), "a cut-off sentinel served a linearizable read");
    // The majority goes on; written state survives and the old leader converges after healing.
    propose_retrying(&c, new_leader, monitor("g2")).await;
    c.net.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if c.h(leader).read_index(Duration::from_secs(1)).await.is_ok() {
            let groups: Vec<String> = c.h(leader).state.read().groups.keys().cloned().collect();
            if groups.contains(&"g2".to_string()) {
                // Its uncommitted entry from the old term was overwritten, never applied.
                assert!(!groups.contains(&"lost".to_string()), "{groups:?}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "old leader never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_comes_back_from_disk_applied_once() {
    let c = Cluster::new(3, opts());
    let leader = c.leader(&c.ids).await;
    for i in 0..20 {
        propose_retrying(&c, leader, monitor(&format!("g{i}"))).await;
    }
    let before = c.h(leader).state.read().clone();
    for &i in &c.ids {
        c.stop(i);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for &i in &c.ids {
        c.start(i);
    }
    let leader = c.leader(&c.ids).await;
    propose_retrying(&c, leader, monitor("after")).await;
    for &i in &c.ids {
        c.h(i).read_index(Duration::from_secs(5)).await.unwrap();
        let s = c.h(i).state.read().clone();
        assert_eq!(s.groups.len(), 21, "sentinel {i}");
        // Every change once in the history: nothing applied twice.
        let monitors = s.history.iter().filter(|h| h.what == "monitor").count();
        assert_eq!(monitors, 21, "sentinel {i}: {:#?}", s.history);
        for (name, g) in &before.groups {
            assert_eq!(&s.groups[name], g);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_far_behind_catches_up_from_a_snapshot() {
    let mut o = opts();
    o.compact_every = 10;
    let c = Cluster::new(3, o);
    let leader = c.leader(&c.ids).await;
    let behind = c.ids.iter().copied().find(|&i| i != leader).unwrap();
    c.net.isolate(behind, &c.ids);
    for i in 0..60 {
        propose_retrying(&c, leader, monitor(&format!("g{i}"))).await;
    }
    // The leader's log no longer holds what the lagging sentinel lacks: only a snapshot helps.
    let behind_applied = c.h(behind).status.read().applied;
    let leader_snap = c.h(leader).status.read().snapshot_index;
    assert!(
        leader_snap > behind_applied + 1,
        "leader compacted to {leader_snap}, the lagging sentinel applied {behind_applied}"
    );
    c.net.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = c.h(behind).state.read().groups.len();
        if n == 60 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "behind sentinel has {n} of 60 groups"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = c.h(behind).state.read().clone();
    assert_eq!(s.groups, c.h(leader).state.read().groups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_network_still_commits_and_a_total_loss_is_a_cut() {
    let c = Cluster::new(3, opts());
    // A third of every message lost, every way: Raft retransmits.
    for &a in &c.ids {
        for &b in &c.ids {
            if a != b {
                common::Net::drop(&c.net, a, b, 30);
            }
        }
    }
    let leader = c.leader(&c.ids).await;
    for i in 0..10 {
        propose_retrying(&c, leader, monitor(&format!("g{i}"))).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for &i in &c.ids {
        while c.h(i).read_index(Duration::from_millis(500)).await.is_err()
            || c.h(i).state.read().groups.len() < 10
        {
            assert!(Instant::now() < deadline, "sentinel {i} never caught up");
        }
    }
    // Losing everything to and from one sentinel cuts it off like `isolate`.
    c.net.heal();
    let leader = c.leader(&c.ids).await;
    for &o in &c.ids {
        if o != leader {
            common::Net::drop(&c.net, leader, o, 100);
            common::Net::drop(&c.net, o, leader, 100);
        }
    }
    let e = c
        .h(leader)
        .propose(monitor("lost"), Duration::from_millis(600))
        .await;
    assert!(
        e.is_err(),
        "a sentinel losing every message committed: {e:?}"
    );
}
