//! Failover benchmark (run by tests/bench/failover.sh, not a test): SIGKILL of the master →
//! first acknowledged write on the new master, found through discovery, for Vigil (3 managed
//! nodes, 3 sentinels, `GetMaster`) and Redis Sentinel (3 redis-server, 3 redis-sentinel,
//! `SENTINEL get-master-addr-by-name`) with the same `down_after`, in the same run. The client
//! asks the sentinel again every 2 ms until a new master acknowledges a SET. Every round kills
//! the current master; the killed node is restarted and rejoins as a replica before the next.
//! Prints a markdown table.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::managed::{Managed, TOKEN, start_managed_with};
use vigil_tests::{NodeProc, RawConn, free_port, sentinel_client};

/// How often the client asks again while no new master acknowledges.
const RETRY: Duration = Duration::from_millis(2);

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn set_ok(port: u16, key: &str) -> bool {
    RawConn::connect(port).is_ok_and(|mut c| c.call(&["SET", key, "v"]) == b"+OK\r\n")
}

async fn vigil_rounds(down_after_ms: u64, rounds: usize) -> Vec<f64> {
    let mut c: Managed = start_managed_with(
        &format!("{down_after_ms}ms"),
        "",
        "min_failover_interval = \"500ms\"\n",
    );
    let mut out = Vec::new();
    for r in 0..rounds {
        let (m, mi) = c.master_and_followers().await;
        // Let the replicas acknowledge everything so far.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (port, admin) = (c.nodes[mi].port, c.nodes[mi].admin_port());
        let t0 = Instant::now();
        c.nodes[mi].kill9();
        loop {
            let g = sentinel_client(c.ports[0], TOKEN)
                .get_master(GetMasterRequest {
                    group: "mymaster".into(),
                })
                .await;
            if let Ok(g) = g.map(|g| g.into_inner())
                && g.status == "ok"
                && g.address != m.address
            {
                let p = g
                    .address
                    .parse::<vigil_base::HostPort>()
                    .map_or(0, |a| a.port());
                if set_ok(p, &format!("r{r}")) {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no failover in 60 s"
            );
            tokio::time::sleep(RETRY).await;
        }
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        let dir = c.nodes[mi].dir.clone();
        let cfg = c.dir.path().join(format!("n{}.toml", mi + 1));
        c.nodes[mi] = NodeProc::start_on(
            &dir,
            port,
            &[
                "--config",
                cfg.to_str().unwrap_or_default(),
                "--admin-port",
                &admin.to_string(),
            ],
        );
    }
    out
}

/// A redis-server or redis-sentinel child; SIGKILLed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(port: u16, dir: &Path, replicaof: Option<u16>) -> Proc {
    let d = dir.join(format!("r{port}"));
    std::fs::create_dir_all(&d).expect("dir");
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    // No diskless-sync delay (Redis 7 waits 5 s for more replicas by default).
    .args([
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
    ])
    .arg(&d)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if let Some(m) = replicaof {
        cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
    }
    let p = Proc(
        cmd.spawn()
            .expect("redis-server (tests/bench/failover.sh installs it)"),
    );
    wait_until(|| RawConn::connect(port).is_ok(), "redis-server to start");
    p
}

fn sentinel(port: u16, dir: &Path, master: u16, down_after_ms: u64) -> Proc {
    let conf = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds mymaster {down_after_ms}\n\
             sentinel failover-timeout mymaster 3000\nsentinel parallel-syncs mymaster 1\n",
            dir.display()
        ),
    )
    .expect("sentinel config");
    let p = Proc(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel"),
    );
    wait_until(|| RawConn::connect(port).is_ok(), "redis-sentinel to start");
    p
}

fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < deadline, "waited 120 s for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reply_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The master port a Redis sentinel gives.
fn redis_master(sentinel: u16) -> Option<u16> {
    let mut c = RawConn::connect(sentinel).ok()?;
    let r = reply_text(&c.call(&["SENTINEL", "get-master-addr-by-name", "mymaster"]));
    r.lines().nth(4)?.trim().parse().ok()
}

fn info_has(port: u16, needle: &str) -> bool {
    RawConn::connect(port)
        .is_ok_and(|mut c| reply_text(&c.call(&["INFO", "replication"])).contains(needle))
}

fn redis_rounds(down_after_ms: u64, rounds: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Proc> = vec![redis(ports[0], dir.path(), None)];
    nodes.push(redis(ports[1], dir.path(), Some(ports[0])));
    nodes.push(redis(ports[2], dir.path(), Some(ports[0])));
    let sports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _sentinels: Vec<Proc> = sports
        .iter()
        .map(|&p| sentinel(p, dir.path(), ports[0], down_after_ms))
        .collect();
    // The sentinels must know each other (hello messages every 2 s) and both replicas.
    wait_until(
        || {
            sports.iter().all(|&s| {
                RawConn::connect(s).is_ok_and(|mut c| {
                    let r = reply_text(&c.call(&["SENTINEL", "master", "mymaster"]));
                    r.contains("num-other-sentinels\r\n$1\r\n2")
                        && r.contains("num-slaves\r\n$1\r\n2")
                })
            })
        },
        "the Redis sentinels to discover each other",
    );
    let mut out = Vec::new();
    let mut last_failover = Instant::now() - Duration::from_secs(60);
    for r in 0..rounds {
        // Redis Sentinel starts no failover of a group within 2 × failover-timeout of the last.
        let quiet = Duration::from_millis(6500);
        if last_failover.elapsed() < quiet {
            std::thread::sleep(quiet - last_failover.elapsed());
        }
        // Settled: every sentinel names the same master, and it has both replicas online
        // (Redis Sentinel's view converges through hello messages, so this can take seconds).
        let deadline = Instant::now() + Duration::from_secs(120);
        let m = loop {
            let named: Vec<Option<u16>> = sports.iter().map(|&s| redis_master(s)).collect();
            if let Some(m) = named[0]
                && named.iter().all(|n| *n == Some(m))
                && info_has(m, "role:master")
                && info_has(m, "connected_slaves:2")
                && !info_has(m, "state=wait_bgsave")
                && ports.iter().filter(|&&p| p != m).all(|&p| {
                    info_has(p, &format!("master_port:{m}\r\n"))
                        && info_has(p, "master_link_status:up")
                })
            {
                break m;
            }
            if Instant::now() > deadline {
                for &p in &ports {
                    let info = RawConn::connect(p)
                        .map(|mut c| reply_text(&c.call(&["INFO", "replication"])))
                        .unwrap_or_default();
                    eprintln!("node {p}:\n{info}");
                }
                panic!("Redis Sentinel never settled: sentinels name {named:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mi = ports.iter().position(|&p| p == m).expect("a known port");
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let _ = nodes[mi].0.kill();
        let _ = nodes[mi].0.wait();
        loop {
            if let Some(p) = redis_master(sports[0])
                && p != m
                && set_ok(p, &format!("r{r}"))
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no Redis failover in 60 s"
            );
            std::thread::sleep(RETRY);
        }
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        last_failover = t0;
        // The old master comes back as a replica of the new one (configured so directly:
        // Redis Sentinel's own conversion takes 10 s or more and is not what is measured).
        let new = redis_master(sports[0]).expect("a master");
        nodes[mi] = redis(m, dir.path(), Some(new));
        wait_until(
            || info_has(m, "role:slave") && info_has(m, "master_link_status:up"),
            "the old Redis master to rejoin as a replica",
        );
    }
    out
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    println!("| down_after | system | rounds | p50 ms | p99 ms | max ms | p99 − down_after |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let only = std::env::var("ONLY").unwrap_or_default();
    for down_after in [200u64, 1000] {
        let v = if only == "redis" {
            vec![f64::NAN]
        } else {
            vigil_rounds(down_after, rounds).await
        };
        eprintln!("vigil, down_after {down_after} ms: {v:.0?}");
        let r = tokio::task::spawn_blocking(move || redis_rounds(down_after, rounds))
            .await
            .expect("redis rounds");
        eprintln!("redis, down_after {down_after} ms: {r:.0?}");
        for (name, s) in [("Vigil", &v), ("Redis Sentinel", &r)] {
            println!(
                "| {down_after} ms | {name} | {} | {:.0} | {:.0} | {:.0} | {:+.0} ms |",
                s.len(),
                pct(s, 0.5),
                pct(s, 0.99),
                pct(s, 1.0),
                pct(s, 0.99) - down_after as f64
            );
        }
        println!(
            "| {down_after} ms | ratio Vigil / Redis | | {:.2} | {:.2} | | |",
            pct(&v, 0.5) / pct(&r, 0.5),
            pct(&v, 0.99) / pct(&r, 0.99)
        );
    }
}
