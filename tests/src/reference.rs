//! The reference deployment the benchmarks compare Vigil with: Redis Sentinel as its users run
//! it, three `redis-server`s (a master and two replicas, [`RedisProc`]s) and three Redis
//! sentinels (`redis-server --sentinel`), on free ports, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{RawConn, RedisProc, free_port};

/// A redis-sentinel child; SIGKILLed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What every server of the reference runs with: no diskless-sync delay (Redis 7 waits 5 s for
/// more replicas by default).
pub const SERVER_ARGS: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

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

/// Waits (up to 120 s) until `ok`.
pub fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
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
pub fn redis_master(sentinel: u16) -> Option<u16> {
    let mut c = RawConn::connect(sentinel).ok()?;
    let r = reply_text(&c.call(&["SENTINEL", "get-master-addr-by-name", "mymaster"]));
    r.lines().nth(4)?.trim().parse().ok()
}

/// Whether the server on `port` has `needle` in its `INFO replication`.
pub fn info_has(port: u16, needle: &str) -> bool {
    RawConn::connect(port)
        .is_ok_and(|mut c| reply_text(&c.call(&["INFO", "replication"])).contains(needle))
}

/// Three redis-servers and three Redis sentinels monitoring them as `mymaster`.
pub struct RedisSentinelGroup {
    /// The servers (index as in `ports`).
    pub nodes: Vec<RedisProc>,
    /// Their ports.
    pub ports: Vec<u16>,
    /// The sentinels' ports.
    pub sentinel_ports: Vec<u16>,
    _sentinels: Vec<Proc>,
    /// Their files.
    pub dir: tempfile::TempDir,
}

impl RedisSentinelGroup {
    /// Starts the group and waits until the sentinels know each other and both replicas.
    pub fn start(down_after_ms: u64) -> RedisSentinelGroup {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = RedisProc::start_with(&SERVER_ARGS);
        let m = master.port.to_string();
        let mut nodes = vec![master];
        for _ in 0..2 {
            let mut args = SERVER_ARGS.to_vec();
            args.extend(["--replicaof", "127.0.0.1", &m]);
            nodes.push(RedisProc::start_with(&args));
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels = sentinel_ports
            .iter()
            .map(|&p| sentinel(p, dir.path(), ports[0], down_after_ms))
            .collect();
        // The sentinels must know each other (hello messages every 2 s) and both replicas.
        wait_until(
            || {
                sentinel_ports.iter().all(|&s| {
                    RawConn::connect(s).is_ok_and(|mut c| {
                        let r = reply_text(&c.call(&["SENTINEL", "master", "mymaster"]));
                        r.contains("num-other-sentinels\r\n$1\r\n2")
                            && r.contains("num-slaves\r\n$1\r\n2")
                    })
                })
            },
            "the Redis sentinels to discover each other",
        );
        RedisSentinelGroup {
            nodes,
            ports,
            sentinel_ports,
            _sentinels: sentinels,
            dir,
        }
    }

    /// The master once settled: every sentinel names it, it has both replicas online and
    /// they follow it (Redis Sentinel's view converges through hello messages, so this can
    /// take seconds). Its port and index.
    pub fn settled_master(&self) -> (u16, usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let named: Vec<Option<u16>> = self
                .sentinel_ports
                .iter()
                .map(|&s| redis_master(s))
                .collect();
            if let Some(m) = named[0]
                && named.iter().all(|n| *n == Some(m))
                && info_has(m, "role:master")
                && info_has(m, "connected_slaves:2")
                && !info_has(m, "state=wait_bgsave")
                && self.ports.iter().filter(|&&p| p != m).all(|&p| {
                    info_has(p, &format!("master_port:{m}\r\n"))
                        && info_has(p, "master_link_status:up")
                })
            {
                let mi = self
                    .ports
                    .iter()
                    .position(|&p| p == m)
                    .expect("a known port");
                return (m, mi);
            }
            if Instant::now() > deadline {
                for &p in &self.ports {
                    let info = RawConn::connect(p)
                        .map(|mut c| reply_text(&c.call(&["INFO", "replication"])))
                        .unwrap_or_default();
                    eprintln!("node {p}:\n{info}");
                }
                panic!("Redis Sentinel never settled: sentinels name {named:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
