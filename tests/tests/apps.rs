//! Real applications on `vigil node`, through the libraries they ship with: BullMQ (a job queue
//! whose every operation is a Lua script and whose events are a stream) on a standalone node and
//! through a failover in sync mode, and redis-py's `Lock`, `register_script` and a stream
//! consumer group through the Sentinel client across a failover. tests/run.sh installs the
//! libraries; a missing one fails the test.

use vigil_tests::NodeProc;
use vigil_tests::client_script::Client;
use vigil_tests::managed::{Managed, start_managed_with};

/// A managed group in sync mode (every acknowledged write is on a replica).
fn sync_cluster() -> Managed {
    start_managed_with(
        "500ms",
        "[replication]\nsync_replicas = 1\nsync_timeout = \"2s\"\n",
        "sync_replicas = 1\n",
    )
}

fn sentinels(c: &Managed) -> String {
    c.sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.resp_port()))
        .collect::<Vec<_>>()
        .join(",")
}

const BULLMQ: &str = "tests/clients/node/bullmq_queue.js";
const JOBS: &str = "10000";

#[test]
fn bullmq_runs_ten_thousand_jobs_on_a_node() {
    let _turn = vigil_tests::heavy_turn();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let args = [
        "--server".to_string(),
        format!("127.0.0.1:{}", node.port),
        "--jobs".into(),
        JOBS.into(),
    ];
    Client::spawn("node", BULLMQ, &args).finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn bullmq_loses_no_job_through_a_failover_in_sync_mode() {
    let _turn = vigil_tests::heavy_turn();
    let mut c = sync_cluster();
    let (_, old) = c.master_and_followers().await;
    let args = [
        "--sentinels".to_string(),
        sentinels(&c),
        "--jobs".into(),
        JOBS.into(),
        "--fault-after".into(),
        "3000".into(),
    ];
    let mut client = Client::spawn("node", BULLMQ, &args);
    tokio::task::block_in_place(|| client.expect("FAULT"));
    c.nodes[old].kill9();
    client.resume();
    tokio::task::block_in_place(|| client.finish());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_py_lock_script_and_consumer_group_survive_a_failover() {
    let mut c = sync_cluster();
    let (_, old) = c.master_and_followers().await;
    let mut client = Client::spawn("python", "tests/clients/python/apps.py", &[sentinels(&c)]);
    tokio::task::block_in_place(|| client.expect("READY"));
    c.nodes[old].kill9();
    client.resume();
    tokio::task::block_in_place(|| client.finish());
}
