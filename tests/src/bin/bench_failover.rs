//! Failover benchmark (run by tests/bench/failover.sh, not a test), all systems in the same run
//! at the same `down_after`:
//! - Vigil (3 managed `vigil node`s), Vigil with stock `redis-server`s owned by `vigil agent`s,
//!   Vigil agentless on stock `redis-server`s, and Redis Sentinel (3 redis-server, 3
//!   redis-sentinel): SIGKILL of the master's process →
//!   first acknowledged write on the new master, found through discovery (asked again every
//!   2 ms). The killed process is restarted and rejoins before the next round.
//! - The zombie-master round on the stock-server systems: a client pinned to the master keeps
//!   writing while the master's server is SIGSTOPped, the group fails over, and the server is
//!   SIGCONTed; every write the client saw acknowledged is then looked for on the new master.
//!
//! Prints markdown tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::agentless::{start_agentless, wait_followed};
use vigil_tests::agents::{Stock, start_stock};
use vigil_tests::managed::{Managed, TOKEN, start_managed_with};
use vigil_tests::reference::{RedisSentinelGroup, SERVER_ARGS, info_has, redis_master, wait_until};
use vigil_tests::{NodeProc, RawConn, sentinel_client};

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

fn port_of(address: &str) -> u16 {
    address
        .parse::<vigil_base::HostPort>()
        .map_or(0, |a| a.port())
}

/// The master the Vigil sentinels on `ports` name, once it is not `old` and acknowledges a
/// write; its port.
async fn vigil_new_master(grpc: u16, old: &str, key: &str) -> Option<u16> {
    let g = sentinel_client(grpc, TOKEN)
        .get_master(GetMasterRequest {
            group: "mymaster".into(),
        })
        .await
        .ok()?
        .into_inner();
    let p = port_of(&g.address);
    (g.status == "ok" && g.address != old && set_ok(p, key)).then_some(p)
}

/// Runs `kill` and times until the sentinel on `grpc` names a master other than `old` that
/// acknowledges a write; the milliseconds and the new master's port.
async fn time_failover(grpc: u16, old: &str, key: &str, kill: impl FnOnce()) -> (f64, u16) {
    let t0 = Instant::now();
    kill();
    loop {
        if let Some(p) = vigil_new_master(grpc, old, key).await {
            return (t0.elapsed().as_secs_f64() * 1000.0, p);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no failover in 60 s"
        );
        tokio::time::sleep(RETRY).await;
    }
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
        let key = format!("r{r}");
        let (ms, _) = time_failover(c.ports[0], &m.address, &key, || c.nodes[mi].kill9()).await;
        out.push(ms);
        let dir = c.nodes[mi].dir.clone();
        let cfg = c.dir.path().join(format!("n{}.toml", mi + 1));
        let admin = admin.to_string();
        let args = [
            "--config",
            cfg.to_str().unwrap_or_default(),
            "--admin-port",
            &admin,
        ];
        c.nodes[mi] = NodeProc::start_on(&dir, port, &args);
    }
    out
}

async fn stock_group(down_after_ms: u64) -> Stock {
    // The same pacing as the managed group above.
    let s = start_stock(&format!("{down_after_ms}ms"));
    s.master_and_followers().await;
    s
}

async fn agent_rounds(down_after_ms: u64, rounds: usize) -> Vec<f64> {
    let mut c = stock_group(down_after_ms).await;
    let mut out = Vec::new();
    for r in 0..rounds {
        let (m, mi) = c.master_and_followers().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The machine dies: the agent and, with it, its server.
        let key = format!("r{r}");
        let (ms, _) = time_failover(c.ports[0], &m.address, &key, || c.agents[mi].kill9()).await;
        out.push(ms);
        c.agents[mi].restart();
        // Not before the failover interval has passed (5 s by default).
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    out
}

async fn agentless_rounds(down_after_ms: u64, rounds: usize) -> Vec<f64> {
    let extra = "min_failover_interval = \"500ms\"\n";
    let mut c = start_agentless(&format!("{down_after_ms}ms"), &[], extra);
    let mut out = Vec::new();
    for r in 0..rounds {
        let m = vigil_tests::managed::master_of(&c.ports, 1, Duration::from_secs(30)).await;
        let mi = c.server_at(&m.address);
        let others: Vec<usize> = (0..3).filter(|&i| i != mi).collect();
        tokio::task::block_in_place(|| {
            wait_followed(&c, mi, &others, None, Duration::from_secs(60))
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let key = format!("r{r}");
        let (ms, new) = time_failover(c.ports[0], &m.address, &key, || c.servers[mi].kill9()).await;
        out.push(ms);
        // Back as a replica of the new master, as an operator would restart it.
        let new = new.to_string();
        c.servers[mi].restart_empty(&["--replicaof", "127.0.0.1", &new]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    out
}

fn redis_rounds(down_after_ms: u64, rounds: usize) -> Vec<f64> {
    let mut g = RedisSentinelGroup::start(down_after_ms);
    let mut out = Vec::new();
    let mut last_failover = Instant::now() - Duration::from_secs(60);
    for r in 0..rounds {
        // Redis Sentinel starts no failover of a group within 2 × failover-timeout of the last.
        let quiet = Duration::from_millis(6500);
        if last_failover.elapsed() < quiet {
            std::thread::sleep(quiet - last_failover.elapsed());
        }
        let (m, mi) = g.settled_master();
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        g.nodes[mi].kill9();
        loop {
            if let Some(p) = redis_master(g.sentinel_ports[0])
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
        let new = redis_master(g.sentinel_ports[0])
            .expect("a master")
            .to_string();
        let mut args = SERVER_ARGS.to_vec();
        args.extend(["--replicaof", "127.0.0.1", &new]);
        g.nodes[mi].restart_empty(&args);
        wait_until(
            || info_has(m, "role:slave") && info_has(m, "master_link_status:up"),
            "the old Redis master to rejoin as a replica",
        );
    }
    out
}

/// What a zombie round saw: writes the pinned client saw acknowledged, and how many of them
/// the new master lacks once the old one rejoined.
#[derive(Debug, Default, Clone, Copy)]
struct Zombie {
    acked: usize,
    lost: usize,
}

/// A client pinned to `port`: `SET z<round>:<i>` one at a time (1 s timeout, reconnecting
/// to the same address), until stopped; the acknowledged `i`.
fn pinned_writer(
    port: u16,
    round: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut conn: Option<RawConn> = None;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => {
                    match RawConn::connect_to(&format!("127.0.0.1:{port}"), Duration::from_secs(1))
                    {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                }
            };
            i += 1;
            let req = RawConn::encode(&["SET", &format!("z{round}:{i}"), "v"]);
            match c.send_raw(&req).ok().and_then(|_| c.read_reply()) {
                Some(r) if r == b"+OK\r\n" => acked.push(i),
                Some(_) => std::thread::sleep(Duration::from_millis(5)),
                None => conn = None,
            }
        }
        acked
    })
}

/// Which of `acked` the server on `port` lacks.
fn missing(port: u16, round: usize, acked: &[u64]) -> usize {
    let mut c = RawConn::connect(port).expect("new master");
    acked
        .iter()
        .filter(|i| c.call(&["EXISTS", &format!("z{round}:{i}")]) != b":1\r\n")
        .count()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a redis-server this benchmark (or its agent) started.
    unsafe { libc::kill(pid, sig) };
}

fn server_pid(port: u16) -> i32 {
    let mut c = RawConn::connect(port).expect("the master answers");
    let info = String::from_utf8_lossy(&c.call(&["INFO", "server"])).into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("process_id")
}

/// One zombie round against the master on `port`: stop its server, wait for `failed_over`
/// (the new master's port), continue it, let the pinned client write on for 3 s, then wait
/// until the old master follows the new one and count what it lost.
fn zombie(port: u16, round: usize, mut failed_over: impl FnMut() -> Option<u16>) -> Zombie {
    let pid = server_pid(port);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = pinned_writer(port, round, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGSTOP);
    let t0 = Instant::now();
    let new = loop {
        if let Some(p) = failed_over() {
            break p;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            signal(pid, libc::SIGCONT);
            panic!("no failover within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(500));
    signal(pid, libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().expect("writer");
    wait_until(
        || {
            info_has(port, &format!("master_port:{new}\r\n"))
                && info_has(port, "master_link_status:up")
        },
        "the old master to follow the new one",
    );
    Zombie {
        acked: acked.len(),
        lost: missing(new, round, &acked),
    }
}

async fn agent_zombies(down_after_ms: u64, rounds: usize) -> Zombie {
    let c = stock_group(down_after_ms).await;
    let mut total = Zombie::default();
    for r in 0..rounds {
        let (m, mi) = c.master_and_followers().await;
        let port = c.agents[mi].port;
        let grpc = c.ports[0];
        let rt = tokio::runtime::Handle::current();
        let z = tokio::task::block_in_place(|| {
            zombie(port, r, || {
                rt.block_on(vigil_new_master(grpc, &m.address, &format!("zr{r}")))
            })
        });
        eprintln!("agent zombie round {r}: {z:?}");
        total.acked += z.acked;
        total.lost += z.lost;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    total
}

async fn agentless_zombies(down_after_ms: u64, rounds: usize) -> Zombie {
    let c = start_agentless(&format!("{down_after_ms}ms"), &[], "");
    let mut total = Zombie::default();
    for r in 0..rounds {
        let m = vigil_tests::managed::master_of(&c.ports, 1, Duration::from_secs(30)).await;
        let mi = c.server_at(&m.address);
        let others: Vec<usize> = (0..3).filter(|&i| i != mi).collect();
        let (port, grpc) = (c.servers[mi].port, c.ports[0]);
        let rt = tokio::runtime::Handle::current();
        let z = tokio::task::block_in_place(|| {
            wait_followed(&c, mi, &others, None, Duration::from_secs(60));
            zombie(port, r, || {
                rt.block_on(vigil_new_master(grpc, &m.address, &format!("zr{r}")))
            })
        });
        eprintln!("agentless zombie round {r}: {z:?}");
        total.acked += z.acked;
        total.lost += z.lost;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    total
}

fn redis_zombies(down_after_ms: u64, rounds: usize) -> Zombie {
    let g = RedisSentinelGroup::start(down_after_ms);
    let mut total = Zombie::default();
    for r in 0..rounds {
        std::thread::sleep(Duration::from_millis(6500));
        let (m, _) = g.settled_master();
        let s = g.sentinel_ports[0];
        let z = zombie(m, r, || {
            redis_master(s).filter(|&p| p != m && set_ok(p, &format!("zr{r}")))
        });
        eprintln!("redis zombie round {r}: {z:?}");
        total.acked += z.acked;
        total.lost += z.lost;
    }
    total
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("ROUNDS", 20);
    let zombie_rounds = env("ZOMBIE_ROUNDS", 3);
    let only = std::env::var("ONLY").unwrap_or_default();
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    println!("| down_after | system | rounds | p50 ms | p99 ms | max ms | p99 − down_after |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for down_after in [200u64, 1000] {
        let v = if want("vigil") {
            vigil_rounds(down_after, rounds).await
        } else {
            vec![f64::NAN]
        };
        eprintln!("vigil, down_after {down_after} ms: {v:.0?}");
        let a = if want("agent") {
            agent_rounds(down_after, rounds).await
        } else {
            vec![f64::NAN]
        };
        eprintln!("agent, down_after {down_after} ms: {a:.0?}");
        let l = if want("agentless") {
            agentless_rounds(down_after, rounds).await
        } else {
            vec![f64::NAN]
        };
        eprintln!("agentless, down_after {down_after} ms: {l:.0?}");
        let r = if want("redis") {
            tokio::task::spawn_blocking(move || redis_rounds(down_after, rounds))
                .await
                .expect("redis rounds")
        } else {
            vec![f64::NAN]
        };
        eprintln!("redis, down_after {down_after} ms: {r:.0?}");
        for (name, s) in [
            ("Vigil", &v),
            ("Vigil agent + redis-server", &a),
            ("Vigil agentless + redis-server", &l),
            ("Redis Sentinel", &r),
        ] {
            println!(
                "| {down_after} ms | {name} | {} | {:.0} | {:.0} | {:.0} | {:+.0} ms |",
                s.len(),
                pct(s, 0.5),
                pct(s, 0.99),
                pct(s, 1.0),
                pct(s, 0.99) - down_after as f64
            );
        }
        for (name, s) in [("Vigil", &v), ("Vigil agent", &a), ("Vigil agentless", &l)] {
            println!(
                "| {down_after} ms | ratio {name} / Redis | | {:.2} | {:.2} | | |",
                pct(s, 0.5) / pct(&r, 0.5),
                pct(s, 0.99) / pct(&r, 0.99)
            );
        }
    }
    if zombie_rounds == 0 {
        return;
    }
    let down_after = 1000;
    println!();
    println!(
        "Zombie master (SIGSTOP the master's redis-server, fail over, SIGCONT it while a client pinned to it writes), down_after {down_after} ms, {zombie_rounds} rounds:"
    );
    println!();
    println!("| system | writes acknowledged | acknowledged writes lost | lost % |");
    println!("| --- | --- | --- | --- |");
    let a = if want("agent") {
        agent_zombies(down_after, zombie_rounds).await
    } else {
        Zombie::default()
    };
    let l = if want("agentless") {
        agentless_zombies(down_after, zombie_rounds).await
    } else {
        Zombie::default()
    };
    let r = if want("redis") {
        tokio::task::spawn_blocking(move || redis_zombies(down_after, zombie_rounds))
            .await
            .expect("redis zombies")
    } else {
        Zombie::default()
    };
    for (name, z) in [
        ("Vigil agent + redis-server", a),
        ("Vigil agentless + redis-server", l),
        ("Redis Sentinel", r),
    ] {
        println!(
            "| {name} | {} | {} | {:.2} % |",
            z.acked,
            z.lost,
            100.0 * z.lost as f64 / z.acked.max(1) as f64
        );
    }
}
