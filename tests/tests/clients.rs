//! Real client libraries against Vigil's sentinels, each in the language and version
//! applications use: redis-py 8 (`redis.sentinel`, sync and asyncio, RESP3 and RESP2) and
//! ioredis 6 (RESP3 and its RESP2 fallback, with and without `failoverDetector`). Each connects
//! through the sentinels, writes, reads from a replica, then the test SIGKILLs the master and
//! the client must reach the new master on its own. Each library also runs once against stock
//! `redis-server`s owned by `vigil agent`s, and once against stock servers managed agentless.
//! tests/run.sh installs the libraries (a venv under target/, npm packages under
//! tests/clients/node); a missing one fails the test.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_tests::backends::{Backend, Group};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// What happens to the master.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL: connections to it drop at once.
    Kill,
    /// SIGSTOP: connections to it hang (what `+switch-master` watchers are for).
    Pause,
}

/// Runs a client script against a fresh group of `backend`; stops the master (`fault`) once
/// it prints READY, and expects `FAILOVER <ms> <old> <new>` with `new` the group's new master.
fn run_client(program: PathBuf, script: &str, extra: &[&str], fault: Fault) {
    run_client_on(Backend::Vigil, program, script, extra, fault)
}

fn run_client_on(backend: Backend, program: PathBuf, script: &str, extra: &[&str], fault: Fault) {
    assert!(
        program.exists() || program.components().count() == 1,
        "{} is missing: run tests/run.sh, which installs the client libraries",
        program.display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Group::start(backend, "500ms");
    let (first, old) = rt.block_on(c.master_and_followers());
    let sentinels: Vec<String> = c
        .resp_ports()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut child = Command::new(&program)
        .arg(repo().join(script))
        .arg(sentinels.join(","))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || {
        out.next()
            .and_then(Result::ok)
            .unwrap_or_else(|| "FAIL the client exited".into())
    };
    let ready = next();
    if ready != "READY" {
        let _ = child.kill();
        panic!("{script} {extra:?}: {ready}");
    }
    let t = Instant::now();
    match fault {
        Fault::Kill => c.kill(old),
        Fault::Pause => c.pause(old),
    }
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "killed").unwrap();
    let done = next();
    let status = child.wait().unwrap();
    let second = rt.block_on(c.master(first.epoch + 1, Duration::from_secs(5)));
    eprintln!(
        "{script} {extra:?} {fault:?}: {done} (test saw {:?})",
        t.elapsed()
    );
    if fault == Fault::Pause {
        c.resume(old);
    }
    let words: Vec<&str> = done.split(' ').collect();
    assert!(
        status.success() && words.first() == Some(&"FAILOVER"),
        "{script} {extra:?}: {done}"
    );
    assert_eq!(words.get(3).copied(), Some(second.address.as_str()));
    assert_ne!(words.get(2).copied(), Some(second.address.as_str()));
    // Within the failover time (down_after 500 ms) plus the library's own reconnect back-off
    // (a stock server restarted by its agent is failed over from at once, or within it);
    // a paused master also costs ioredis its 2 s wait for the hung socket to close.
    let ms: u64 = words
        .get(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(u64::MAX);
    let bound = if fault == Fault::Kill { 3_000 } else { 6_000 };
    assert!(
        ms < bound,
        "{script} {extra:?}: {ms} ms to reach the new master"
    );
}

const PY: &str = "tests/clients/python/sentinel_client.py";
const JS: &str = "tests/clients/node/sentinel_client.js";
const NODE_REDIS: &str = "tests/clients/node/node_redis_client.js";

fn python() -> PathBuf {
    repo().join("target/venv/bin/python")
}

fn node() -> PathBuf {
    PathBuf::from("node")
}

#[test]
fn redis_py_resp3() {
    run_client(python(), PY, &["--protocol", "3"], Fault::Kill);
}

#[test]
fn redis_py_resp2() {
    run_client(python(), PY, &["--protocol", "2"], Fault::Kill);
}

#[test]
fn redis_py_asyncio_resp3() {
    run_client(python(), PY, &["--protocol", "3", "--asyncio"], Fault::Kill);
}

#[test]
fn ioredis_resp3() {
    run_client(node(), JS, &["--protocol", "3"], Fault::Kill);
}

#[test]
fn ioredis_resp2() {
    run_client(node(), JS, &["--protocol", "2"], Fault::Kill);
}

/// The failover detector exists for a master whose connections hang rather than drop: only
/// `+switch-master` tells the client to move. (With a killed master ioredis 6 reconnects by
/// itself, and its detector can abort that reconnection for good if `+switch-master` lands
/// during it — an ioredis race that Redis Sentinel's own ordering triggers as well; see the
/// README.)
#[test]
fn ioredis_resp3_with_failover_detector_and_a_paused_master() {
    run_client(
        node(),
        JS,
        &["--protocol", "3", "--failover-detector"],
        Fault::Pause,
    );
}

#[test]
fn node_redis_resp3() {
    run_client(node(), NODE_REDIS, &["--protocol", "3"], Fault::Kill);
}

/// The same libraries against stock `redis-server`s owned by agents.
#[test]
fn redis_py_resp3_with_agents() {
    let (p, extra) = (python(), ["--protocol", "3"]);
    run_client_on(Backend::RedisServer, p, PY, &extra, Fault::Kill);
}

#[test]
fn ioredis_resp3_with_agents() {
    let extra = ["--protocol", "3"];
    run_client_on(Backend::RedisServer, node(), JS, &extra, Fault::Kill);
}

#[test]
fn node_redis_resp3_with_agents() {
    let extra = ["--protocol", "3"];
    run_client_on(
        Backend::RedisServer,
        node(),
        NODE_REDIS,
        &extra,
        Fault::Kill,
    );
}

/// And against stock `redis-server`s managed agentless.
#[test]
fn redis_py_resp3_agentless() {
    let (p, extra) = (python(), ["--protocol", "3"]);
    run_client_on(Backend::RedisResp, p, PY, &extra, Fault::Kill);
}

#[test]
fn ioredis_resp3_agentless() {
    let extra = ["--protocol", "3"];
    run_client_on(Backend::RedisResp, node(), JS, &extra, Fault::Kill);
}

#[test]
fn node_redis_resp3_agentless() {
    let extra = ["--protocol", "3"];
    run_client_on(Backend::RedisResp, node(), NODE_REDIS, &extra, Fault::Kill);
}
