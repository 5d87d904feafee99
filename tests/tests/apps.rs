//! Real applications on `vigil node`, through the libraries they ship with: BullMQ (a job queue
//! whose every operation is a Lua script and whose events are a stream) on a standalone node and
//! through a failover in sync mode, and redis-py's `Lock`, `register_script` and a stream
//! consumer group through the Sentinel client across a failover. tests/run.sh installs the
//! libraries; a missing one fails the test.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use vigil_tests::NodeProc;
use vigil_tests::managed::{Managed, start_managed_with};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// A client program's process, killed if the test fails before it exits.
struct Client {
    child: Child,
    out: std::io::Lines<BufReader<ChildStdout>>,
    what: String,
}

impl Client {
    fn spawn(program: &str, script: &str, args: &[String]) -> Client {
        let program = if program == "python" {
            repo().join("target/venv/bin/python")
        } else {
            PathBuf::from(program)
        };
        let mut child = Command::new(&program)
            .arg(repo().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (tests/run.sh installs it): {e}",
                    program.display()
                )
            });
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Client {
            child,
            out,
            what: format!("{script} {args:?}"),
        }
    }

    /// The next line the client prints.
    fn line(&mut self) -> String {
        self.out
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| "FAIL the client exited".into())
    }

    /// Expects `want` as the next line (the client's cue to fault the master).
    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}", self.what);
    }

    /// Lets the client go on after the fault.
    fn resume(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "go").unwrap();
    }

    /// Waits for the client's final line, which must start with `OK`; returns it.
    fn finish(mut self) -> String {
        let last = self.line();
        let status = self.child.wait().unwrap();
        assert!(
            status.success() && last.starts_with("OK"),
            "{}: {last}",
            self.what
        );
        eprintln!("{}: {last}", self.what);
        last
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
