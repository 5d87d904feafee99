//! `vigil ctl` against a real managed cluster (3 nodes, 3 sentinels): the binary run as an
//! operator runs it, its output read as text and as JSON, its errors as the sentences it
//! prints, its exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_tests::managed::{Managed, TOKEN, start_managed};
use vigil_tests::{free_port, vigil_bin};

fn ctl_at(port: u16, token: &str, args: &[&str]) -> Output {
    Command::new(vigil_bin())
        .arg("ctl")
        .args(["--sentinel", &format!("127.0.0.1:{port}"), "--token", token])
        .args(args)
        .env_remove("VIGIL_TOKEN")
        .env_remove("VIGIL_SENTINEL")
        .output()
        .expect("run vigil ctl")
}

/// Runs `vigil ctl` against the first sentinel; returns stdout, asserting success.
fn ctl(c: &Managed, args: &[&str]) -> String {
    let out = ctl_at(c.ports[0], TOKEN, args);
    assert!(
        out.status.success(),
        "vigil ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `vigil ctl` expecting failure; returns stderr.
fn ctl_fails(port: u16, token: &str, args: &[&str]) -> String {
    let out = ctl_at(port, token, args);
    assert_eq!(out.status.code(), Some(1), "vigil ctl {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn status_json(c: &Managed) -> Value {
    serde_json::from_str(&ctl(c, &["--json", "status"])).expect("status --json is JSON")
}

/// `status --json` once `ok` holds, within 20 s.
fn status_until(c: &Managed, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status_json(c);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child killed on drop, even when the test fails.
struct Watch(Child);
impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_failover_and_watch() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("1s");
    let (first, _) = rt.block_on(c.master_and_followers());
    // Text: the group, its master, every node with a role and the Raft leader.
    let text = ctl(&c, &["status"]);
    assert!(
        text.contains(&format!(
            "Group mymaster: master {} ({}), epoch {}",
            first.node, first.address, first.epoch
        )),
        "{text}"
    );
    assert!(text.contains("Raft leader "), "{text}");
    for n in ["n1", "n2", "n3"] {
        assert!(text.contains(&format!("\n  {n} ")), "{n} missing: {text}");
    }
    // JSON: the same facts, replicas following with their lag.
    let s = status_until(&c, "two replicas with their links up", |s| {
        s["groups"][0]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == "replica" && n["link"] == "up")
            .count()
            == 2
    });
    let g = &s["groups"][0];
    assert_eq!(g["name"], "mymaster");
    assert_eq!(g["master"], first.node.as_str());
    assert_eq!(g["epoch"], first.epoch);
    assert!(s["sentinels"]["leader"].as_u64().unwrap() >= 1);
    assert_eq!(s["sentinels"]["members"].as_array().unwrap().len(), 3);
    let target = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "replica")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();

    // `watch --json` streams the failover's events, one JSON object per line.
    let mut watch = Watch(
        Command::new(vigil_bin())
            .args(["ctl", "--sentinel", &format!("127.0.0.1:{}", c.ports[1])])
            .args(["--json", "watch", "--group", "mymaster"])
            .env("VIGIL_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = watch.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // Give the stream a moment to open before the failover starts.
    std::thread::sleep(Duration::from_millis(500));
    let out = ctl(&c, &["failover", "mymaster", "--to", &target]);
    assert!(
        out.starts_with("OK: failover of \"mymaster\" started"),
        "{out}"
    );
    let second = rt.block_on(c.master(first.epoch + 1, Duration::from_secs(10)));
    assert_eq!(second.node, target);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "+switch-master") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no +switch-master from watch; saw {kinds:?}"));
        let ev: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(ev["group"], "mymaster");
        kinds.push(ev["kind"].as_str().unwrap().to_string());
        if ev["kind"] == "+switch-master" {
            assert_eq!(ev["epoch"], first.epoch + 1);
            assert!(
                ev["detail"]
                    .as_str()
                    .unwrap()
                    .ends_with(&second.address.replace(':', " ")),
                "{ev}"
            );
        }
    }
    for k in ["+try-failover", "+selected-slave", "+promoted-slave"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    status_until(&c, "the new master in status", |s| {
        s["groups"][0]["master"] == target.as_str() && s["groups"][0]["failover"].is_null()
    });
}

#[test]
fn errors_say_what_to_do() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("1s");
    rt.block_on(c.master_and_followers());
    let port = c.ports[0];
    let e = ctl_fails(port, "wrong-token", &["status"]);
    assert!(
        e.contains("refused the token") && e.contains("--token"),
        "{e}"
    );
    let e = ctl_fails(free_port(), TOKEN, &["status"]);
    assert!(e.contains("cannot reach the sentinel"), "{e}");
    let e = ctl_fails(port, TOKEN, &["failover", "nosuch"]);
    assert!(e.contains("no such group \"nosuch\""), "{e}");
    let e = ctl_fails(port, TOKEN, &["set", "mymaster", "bogus", "1"]);
    assert!(e.contains("unknown option \"bogus\""), "{e}");
    let e = ctl_fails(port, TOKEN, &["monitor", "g2", "--node", "n1,127.0.0.1:1"]);
    assert!(e.contains("expected NAME,DATA-ADDR,ADMIN-ADDR"), "{e}");
    // Two failovers at once: the second is refused while the first is in flight.
    let first = ctl_at(port, TOKEN, &["failover", "mymaster"]);
    assert!(first.status.success());
    let again = ctl_at(port, TOKEN, &["failover", "mymaster"]);
    if !again.status.success() {
        let e = String::from_utf8_lossy(&again.stderr);
        assert!(e.contains("already in flight"), "{e}");
    }
    // No token at all, and a token from a file.
    let out = Command::new(vigil_bin())
        .args(["ctl", "--sentinel", &format!("127.0.0.1:{port}"), "status"])
        .env_remove("VIGIL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster token"));
    let file = c.dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let out = Command::new(vigil_bin())
        .args(["ctl", "--sentinel", &format!("127.0.0.1:{port}")])
        .args(["--token-file", file.to_str().unwrap(), "status"])
        .env_remove("VIGIL_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn settings_membership_and_monitoring() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = start_managed("1s");
    rt.block_on(c.master_and_followers());
    ctl(&c, &["set", "mymaster", "down-after-milliseconds", "1500"]);
    let s = status_json(&c);
    assert_eq!(s["groups"][0]["settings"]["down_after_ms"], 1500);

    // Leadership moves where the operator says.
    let leader = s["sentinels"]["leader"].as_u64().unwrap();
    let to = (1..=3).find(|&i| i != leader).unwrap();
    ctl(&c, &["sentinel", "transfer-leader", &to.to_string()]);
    status_until(&c, "the new Raft leader", |s| {
        s["sentinels"]["leader"] == to
    });

    // Remove the group, then monitor its nodes again: the sentinels take it back.
    let nodes: Vec<String> = s["groups"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            format!(
                "{},{},{}",
                n["name"].as_str().unwrap(),
                n["data"].as_str().unwrap(),
                n["admin"].as_str().unwrap()
            )
        })
        .collect();
    // The first node is given a TLS address too (default priority, then the address).
    let tls_data = "127.0.0.1:16380";
    let mut nodes = nodes;
    nodes[0].push_str(&format!(",,{tls_data}"));
    ctl(&c, &["remove", "mymaster"]);
    let text = ctl(&c, &["status"]);
    assert!(text.contains("No groups are monitored"), "{text}");
    // The removal sticks: the group in the sentinels' config is not added back (they look for
    // missing configured groups every 500 ms).
    std::thread::sleep(Duration::from_millis(1500));
    let text = ctl(&c, &["status"]);
    assert!(text.contains("No groups are monitored"), "{text}");
    let mut args = vec!["monitor", "mymaster", "--down-after", "2s"];
    for n in &nodes {
        args.extend(["--node", n.as_str()]);
    }
    ctl(&c, &args);
    let s = status_until(&c, "a master of the monitored group", |s| {
        s["groups"][0]["master"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    });
    assert_eq!(s["groups"][0]["settings"]["down_after_ms"], 2000);
    assert!(s["groups"][0]["epoch"].as_u64().unwrap() >= 1);
    assert_eq!(s["groups"][0]["nodes"][0]["tls_data"], tls_data);
    assert_eq!(s["groups"][0]["nodes"][0]["priority"], 100);
    let text = ctl(&c, &["status"]);
    assert!(text.contains(&format!("(tls {tls_data})")), "{text}");
}
