//! A master SIGKILLed under load and restarted at once (within 100 ms, long before
//! `down_after`) never blocks its group. Either it came back with all the history its replicas
//! have and is promoted again, or it came back behind them (it lost the tail of its log, or
//! all of it) and the sentinels fail over from it at once, as from a dead master, and make it a
//! replica at the new epoch. Either way the group takes writes again within `down_after` +
//! 0.5 s, and no acknowledged write is lost in synchronous mode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_tests::NodeProc;
use vigil_tests::managed::*;

const DOWN_AFTER: Duration = Duration::from_secs(1);

/// Kills the master under three writers, restarts it on the same ports within 100 ms (after
/// emptying its data directory when `wipe`), and checks the group is writable again in time.
/// Returns whether the sentinels failed over (the epoch moved and another node is master).
async fn kill_and_restart_at_once(sync: bool, wipe: bool) -> bool {
    let (node_extra, group_extra) = if sync {
        (
            "[replication]\nsync_replicas = 1\nsync_timeout = \"2s\"\n",
            "sync_replicas = 1\n",
        )
    } else {
        ("", "")
    };
    let mut c = start_managed_with("1s", node_extra, group_extra);
    let (first, old) = c.master_and_followers().await;
    let old_port = c.nodes[old].port;
    let old_admin = c.nodes[old].admin_port();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers = spawn_writers(c.ports[0], &stop, &acked);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "no write acknowledged before the kill");

    let killed_at = Instant::now();
    c.nodes[old].kill9();
    let dir = c.nodes[old].dir.clone();
    if wipe {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let cfg = c.dir.path().join(format!("n{}.toml", old + 1));
    let admin = old_admin.to_string();
    c.nodes[old] = NodeProc::start_on(
        &dir,
        old_port,
        &["--config", cfg.to_str().unwrap(), "--admin-port", &admin],
    );
    let restarted_in = killed_at.elapsed();
    // The node must be serving again (its port bound) within 100 ms of the kill for the
    // scenario to be the one under test; the start itself is quick.
    assert!(
        restarted_in < Duration::from_millis(500),
        "the node took {restarted_in:?} to restart"
    );
    let since_kill = acked.lock().unwrap().len();
    let deadline = killed_at + DOWN_AFTER + Duration::from_millis(500);
    loop {
        if acked.lock().unwrap().len() > since_kill {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged within down_after + 0.5 s of the kill (restart took {restarted_in:?}); sentinel log:\n{}",
            c.sentinels[0].stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "restart after {restarted_in:?}; writable again {:?} after the kill",
        killed_at.elapsed()
    );
    let now = c.master(first.epoch, Duration::from_secs(5)).await;
    let mi = c.node_at(&now.address);
    let failed_over = now.epoch > first.epoch && mi != old;
    let acked = resume_then_check(before, &stop, &acked, writers, c.nodes[mi].port).await;
    if sync {
        // resume_then_check found every acknowledged write on the master.
        eprintln!("{} acknowledged writes, none lost", acked.len());
    }
    if failed_over {
        // The restarted node follows the new master at the new epoch.
        c.nodes[old].wait_info(
            "master_link_status",
            |s| s == "up",
            "the restarted master follows the new one",
        );
        assert_eq!(
            c.nodes[old].info_field("master_port"),
            Some(c.nodes[mi].port.to_string())
        );
    }
    stop.store(true, Ordering::Relaxed);
    failed_over
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_at_once_in_sync_mode_never_blocks_its_group() {
    kill_and_restart_at_once(true, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_at_once_in_async_mode_never_blocks_its_group() {
    kill_and_restart_at_once(false, false).await;
}

/// Restarted empty, the master is far behind its replicas: the sentinels must fail over from
/// it at once (never promote it again, which would wipe its replicas), and it becomes a replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_empty_is_failed_over_at_once_and_loses_nothing() {
    assert!(
        kill_and_restart_at_once(true, true).await,
        "a master restarted empty was not replaced"
    );
}
