//! `vigil drill` run as an operator runs it: a local cluster of its own (or an attached one),
//! a real fault per round, the JSON report read back, the HTML report rendered by a real
//! headless Chromium, and the exit code that gates a deployment.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use vigil_tests::managed::{TOKEN, start_managed_with};
use vigil_tests::vigil_bin;

fn drill(report: &Path, args: &[&str]) -> (Output, Value) {
    let out = Command::new(vigil_bin())
        .arg("drill")
        .args(["--report", report.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run vigil drill");
    let text = std::fs::read_to_string(report.join("report.json")).unwrap_or_else(|e| {
        panic!(
            "no report.json ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out,
        serde_json::from_str(&text).expect("report.json is JSON"),
    )
}

fn assert_passed(out: &Output, r: &Value, rounds: usize) {
    assert!(
        out.status.success(),
        "drill failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(r["rounds"].as_array().unwrap().len(), rounds);
    assert_eq!(r["summary"]["rounds_ok"], rounds);
}

#[test]
fn kill_master_in_sync_mode_loses_nothing_and_the_report_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (out, r) = drill(
        dir.path(),
        &[
            "--scenario",
            "kill-master",
            "--rounds",
            "2",
            "--down-after",
            "500ms",
            "--writers",
            "2",
        ],
    );
    assert_passed(&out, &r, 2);
    assert_eq!(r["mode"], "sync");
    assert_eq!(r["down_after_ms"], 500);
    for round in r["rounds"].as_array().unwrap() {
        assert_ne!(round["old_master"], round["new_master"], "{round:#}");
        assert_eq!(
            round["epoch_after"],
            round["epoch_before"].as_u64().unwrap() + 1
        );
        assert_eq!(round["acked_lost"], 0, "{round:#}");
        assert_eq!(round["stale_reads"], 0, "{round:#}");
        assert!(round["writes_acked"].as_u64().unwrap() > 0, "{round:#}");
        let detect = round["detection_ms"].as_f64().unwrap();
        let failover = round["failover_ms"].as_f64().unwrap();
        // Detection follows the last good answer by down_after. The kill follows that answer
        // by up to one probe interval (100 ms) plus the round trip of a probe sent just
        // before the kill, which goes unanswered (up to 7 ms seen on a loaded machine; 50
        // allowed).
        assert!((350.0..failover).contains(&detect), "{round:#}");
        assert!(round["unavailable_ms"].as_f64().unwrap() >= failover - detect);
        let kinds: Vec<&str> = round["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        for k in [
            "+sdown",
            "+odown",
            "+promoted-slave",
            "+switch-master",
            "+convert-to-slave",
        ] {
            assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Drill kill-master (vigil backend, sync mode"),
        "{text}"
    );
    assert!(text.contains("2/2 ok"), "{text}");

    // The HTML page draws one timeline per round with its own script: Chromium's DOM after
    // the scripts ran has the charts the static page does not.
    let html = dir.path().join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("<svg"),
        "the charts must be drawn by the page's script"
    );
    let dom = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium (tests/run.sh installs it)");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg class=\"timeline\"").count(),
        2,
        "one chart per round: {dom}"
    );
    let marks: usize = r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["timeline"].as_array().unwrap().len())
        .sum();
    assert_eq!(dom.matches("class=\"mark\"").count(), marks, "{dom}");
    assert!(dom.contains("first write"), "{dom}");
}

/// One sync-mode round of `scenario` at `down_after = 500ms`, which must pass; its round.
fn one_round(scenario: &str) -> Value {
    let round = one_round_on("vigil", scenario);
    // Lease reads: not even a reader pinned to the old master reads stale data.
    assert_eq!(round["stale_reads"], 0, "{round:#}");
    round
}

#[test]
fn pause_master() {
    let round = one_round("pause-master");
    assert_ne!(round["old_master"], round["new_master"]);
}

#[test]
fn partition_master() {
    let round = one_round("partition-master");
    assert_ne!(round["old_master"], round["new_master"]);
}

#[test]
fn kill_sentinel_leader_keeps_the_master() {
    let round = one_round("kill-sentinel-leader");
    assert_eq!(round["old_master"], round["new_master"], "{round:#}");
    assert_eq!(round["epoch_after"], round["epoch_before"]);
    assert!(round["failover_ms"].is_null());
}

#[test]
fn switchover_in_async_mode_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, r) = drill(
        dir.path(),
        &[
            "--scenario",
            "switchover",
            "--rounds",
            "2",
            "--mode",
            "async",
        ],
    );
    assert_passed(&out, &r, 2);
    assert_eq!(r["mode"], "async");
    for round in r["rounds"].as_array().unwrap() {
        // A switchover waits for the candidate to have everything: nothing lost, nothing
        // discarded, even without synchronous replication.
        assert_eq!(round["acked_lost"], 0, "{round:#}");
        assert_eq!(round["divergent_bytes"], 0, "{round:#}");
        assert!(round["detection_ms"].is_null());
    }
}

#[test]
fn a_round_that_cannot_fail_over_fails_the_drill() {
    // An attached cluster whose quorum (4 of 3 sentinels) can never be reached.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed_with("500ms", "", "quorum = 4\n");
    rt.block_on(c.master_and_followers());
    let sentinels: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let (out, r) = drill(
        dir.path(),
        &[
            "--attach",
            &sentinels.join(","),
            "--token",
            TOKEN,
            "--scenario",
            "pause-master",
            "--rounds",
            "1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r["passed"], false);
    let problems = r["rounds"][0]["problems"].to_string();
    assert!(problems.contains("no failover"), "{problems}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
}

/// One sync-mode round of `scenario` on stock `redis-server`s owned by agents.
fn one_stock_round(scenario: &str) -> Value {
    one_round_on("redis-server", scenario)
}

/// One sync-mode round of `scenario` at `down_after = 500ms` on `backend`: it passes and
/// loses no acknowledged write; the report names the backend and whether writes were
/// confirmed with `WAIT` (on stock servers, whose plain replies promise nothing about their
/// replicas); its round.
fn one_round_on(backend: &str, scenario: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--scenario",
        scenario,
        "--rounds",
        "1",
        "--down-after",
        "500ms",
        "--backend",
        backend,
    ];
    let (out, r) = drill(dir.path(), &args);
    assert_passed(&out, &r, 1);
    assert_eq!(r["backend"], backend);
    assert_eq!(r["confirmed_with_wait"], backend != "vigil", "{r:#}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("({backend} backend, sync mode")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let round = r["rounds"][0].clone();
    assert_eq!(round["acked_lost"], 0, "{round:#}");
    round
}

#[test]
fn kill_master_with_agents() {
    let round = one_stock_round("kill-master");
    assert_ne!(round["old_master"], round["new_master"]);
}

#[test]
fn pause_master_with_agents() {
    // The server itself is stopped (not its agent): the agent's lease lapses, and the
    // server's writes are paused before the sentinels promote another node.
    let round = one_stock_round("pause-master");
    assert_ne!(round["old_master"], round["new_master"]);
}

/// Agentless, a killed master is failed over from, the drill's writers go on, and no write a
/// replica confirmed (`WAIT`) is lost: the sentinels promote the replica with the most data.
#[test]
fn kill_master_agentless() {
    let round = one_round_on("redis-resp", "kill-master");
    assert_ne!(round["old_master"], round["new_master"]);
}

/// `vigil drill --shards 3`: each round moves slots from one shard to the next under writes
/// routed by slot, and SIGKILLs a master as the migration starts (the target's in round 1,
/// the source's in round 2). Each migration completes or rolls back, the killed shard fails
/// over, the shards not hit keep taking writes, and afterwards every acknowledged key is in
/// exactly one shard, the one owning its slot.
#[test]
fn sharded_drill_kills_masters_during_migrations_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, r) = drill(
        dir.path(),
        &[
            "--shards",
            "3",
            "--scenario",
            "kill-during-migration",
            "--rounds",
            "2",
            "--move-slots",
            "500",
            "--writers",
            "3",
        ],
    );
    assert_passed(&out, &r, 2);
    assert_eq!(r["groups"].as_array().unwrap().len(), 3, "{r:#}");
    let rounds = r["rounds"].as_array().unwrap();
    for (i, round) in rounds.iter().enumerate() {
        let m = &round["migration"];
        assert_eq!(m["slots"], 500, "{round:#}");
        let outcome = m["outcome"].as_str().unwrap();
        assert!(
            outcome == "completed" || outcome == "rolled back",
            "{round:#}"
        );
        // Round 1 hits the target (shard2), round 2 the source (shard2 again: it moves to
        // shard3).
        assert_eq!(round["group"], ["shard2", "shard2"][i], "{round:#}");
        assert_ne!(round["old_master"], round["new_master"], "{round:#}");
        assert!(round["failover_ms"].as_f64().unwrap() > 0.0, "{round:#}");
        for key in ["acked_lost", "duplicated", "misplaced"] {
            assert_eq!(round[key], 0, "{key}: {round:#}");
        }
        // Every shard took writes during the round.
        for s in round["shards"].as_array().unwrap() {
            assert!(s["writes_acked"].as_u64().unwrap() > 0, "{round:#}");
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Sharded drill kill-during-migration"),
        "{text}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("<td>move 500 slots shard1 -&gt; shard2, SIGKILL"),
        "{html}"
    );
}

/// A migration scenario needs shards, and a group-only scenario refuses them: a clear error,
/// exit code 2, before anything starts.
#[test]
fn sharded_scenarios_need_shards() {
    for args in [
        &["--scenario", "migrate-under-load"][..],
        &["--scenario", "kill-sentinel-leader", "--shards", "3"][..],
    ] {
        let out = Command::new(vigil_bin())
            .arg("drill")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--scenario") && err.contains("shard"), "{err}");
    }
}
