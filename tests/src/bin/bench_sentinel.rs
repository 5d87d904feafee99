//! Sentinel benchmark (run by tests/bench/sentinel.sh, not a test): SIGKILL of the Raft leader
//! → a new leader agreed by the survivors, over many rounds; and `GetMaster` latency (one
//! client, sequential) and throughput (many concurrent clients) on one sentinel. Prints a
//! markdown table.

use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::{
    SentinelClient, SentinelProc, agreed_leader, free_port, monitor_request, sentinel_client,
    sentinel_config, write_config,
};

const TOKEN: &str = "bench-token";

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

async fn leader_of(alive: &[(u64, u16)]) -> u64 {
    agreed_leader(alive, TOKEN, Duration::from_secs(60))
        .await
        .expect("the sentinels agree on a leader within 60 s")
}

fn client(port: u16) -> SentinelClient {
    sentinel_client(port, TOKEN)
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    // The sentinel's defaults unless asked otherwise.
    let tick = std::env::var("TICK").unwrap_or_else(|_| "50ms".into());
    let election: u32 = std::env::var("ELECTION_TICKS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut procs: Vec<SentinelProc> = (1..=3u64)
        .map(|id| {
            let cfg = write_config(
                dir.path(),
                &format!("s{id}.toml"),
                &sentinel_config(
                    id,
                    &ports,
                    dir.path(),
                    TOKEN,
                    &format!("[raft]\ntick = \"{tick}\"\nelection_ticks = {election}\n"),
                ),
            );
            SentinelProc::start(id, &cfg)
        })
        .collect();
    let all: Vec<(u64, u16)> = (1..=3u64).zip(ports.iter().copied()).collect();
    let leader = leader_of(&all).await;
    let mut c = client(ports[leader as usize - 1]);
    c.monitor(monitor_request("mymaster"))
        .await
        .expect("monitor");

    // GetMaster on one follower: sequential latency, then concurrent throughput.
    let target = ports[all
        .iter()
        .find(|(id, _)| *id != leader)
        .expect("follower")
        .0 as usize
        - 1];
    let req = || GetMasterRequest {
        group: "mymaster".into(),
    };
    let mut c = client(target);
    let mut lat = Vec::new();
    for _ in 0..3000 {
        let t = Instant::now();
        c.get_master(req()).await.expect("get master");
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    let dur = Duration::from_secs(3);
    let start = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let mut c = client(target);
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < dur {
                    if c.get_master(req()).await.is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let rps = total as f64 / start.elapsed().as_secs_f64();

    // Leader kills.
    let mut elections = Vec::new();
    for _ in 0..rounds {
        let leader = leader_of(&all).await;
        let t = Instant::now();
        procs[leader as usize - 1].kill9();
        let rest: Vec<(u64, u16)> = all
            .iter()
            .copied()
            .filter(|(id, _)| *id != leader)
            .collect();
        leader_of(&rest).await;
        elections.push(t.elapsed().as_secs_f64() * 1000.0);
        let cfg = procs[leader as usize - 1].config.clone();
        procs[leader as usize - 1] = SentinelProc::start(leader, &cfg);
        leader_of(&all).await;
    }
    let (e50, e99, emax) = (
        pct(&mut elections, 0.5),
        pct(&mut elections, 0.99),
        elections.iter().cloned().fold(0.0, f64::max),
    );
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| leader SIGKILL → new leader agreed, p50 / p99 / max ({rounds} rounds, tick {tick}, election after {} to {} ticks) | {e50:.0} / {e99:.0} / {emax:.0} ms |",
        election + 2,
        (2 * election).max(election + 3)
    );
    println!(
        "| GetMaster latency on a follower (linearizable, sequential), p50 / p99 | {p50:.2} / {p99:.2} ms |"
    );
    println!("| GetMaster throughput on one follower, 32 concurrent clients | {rps:.0} req/s |");
}
