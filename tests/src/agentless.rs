//! Agentless mode: three stock `redis-server`s (the first a master, the others started with
//! `--replicaof` it, as an existing Redis Sentinel deployment runs them) under three
//! sentinels monitoring them as a `driver = "resp"` group `mymaster`, and a redis-py client
//! writing through the sentinels.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::managed::start_sentinels_at;
use crate::{RedisProc, SentinelProc};

/// Three servers (`n1`..`n3`) and three sentinels (ids 1..3).
pub struct Agentless {
    /// The servers; `n1` (index 0) starts as the master.
    pub servers: Vec<RedisProc>,
    /// The sentinels.
    pub sentinels: Vec<SentinelProc>,
    /// Their gRPC ports.
    pub ports: Vec<u16>,
    /// Configs and logs.
    pub dir: tempfile::TempDir,
}

/// Starts an [`Agentless`] group: every server gets `server_args` (passwords, ACL users,
/// renamed commands), the group `driver = "resp"` and `group_extra` (TOML lines).
pub fn start_agentless(down_after: &str, server_args: &[&str], group_extra: &str) -> Agentless {
    start_agentless_as("127.0.0.1", down_after, server_args, group_extra)
}

/// [`start_agentless`] with the nodes named by `host` in the group (`localhost`: as the
/// servers do not see each other, so Redis' `FAILOVER TO` cannot name them).
pub fn start_agentless_as(
    host: &str,
    down_after: &str,
    server_args: &[&str],
    group_extra: &str,
) -> Agentless {
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("VIGIL_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let master = RedisProc::start_with(server_args);
    let port = master.port.to_string();
    let mut servers = vec![master];
    for _ in 0..2 {
        let mut args = server_args.to_vec();
        args.extend(["--replicaof", "127.0.0.1", &port]);
        servers.push(RedisProc::start_with(&args));
    }
    let nodes: Vec<(String, String)> = servers
        .iter()
        .map(|s| (format!("{host}:{}", s.port), format!("{host}:{}", s.port)))
        .collect();
    let extra = format!("driver = \"resp\"\n{group_extra}");
    let (sentinels, ports) = start_sentinels_at(dir.path(), &nodes, down_after, &extra);
    Agentless {
        servers,
        sentinels,
        ports,
        dir,
    }
}

impl Agentless {
    /// The index of the server listening at `address`.
    pub fn server_at(&self, address: &str) -> usize {
        let port = crate::port_of(address);
        self.servers.iter().position(|s| s.port == port).unwrap()
    }

    /// The sentinels' Redis Sentinel protocol addresses, comma-separated.
    pub fn sentinel_addrs(&self) -> String {
        let a: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.resp_port()))
            .collect();
        a.join(",")
    }
}

/// A connection to the server on `port`, logged in with `auth` (user, password) if given.
pub fn connect(port: u16, auth: Option<(&str, &str)>) -> redis::Connection {
    let url = match auth {
        Some((u, p)) => format!("redis://{u}:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url).expect("redis url");
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"))
}

/// One field of `INFO replication` of the server on `port` (`None` if it cannot be read).
pub fn info_field(port: u16, auth: Option<(&str, &str)>, field: &str) -> Option<String> {
    let url = match auth {
        Some((u, p)) => format!("redis://{u}:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let mut c = redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let text: String = redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Waits until the servers at `followers` follow the one at `master` with their links up.
pub fn wait_followed(
    c: &Agentless,
    master: usize,
    followers: &[usize],
    auth: Option<(&str, &str)>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let port = c.servers[master].port.to_string();
    loop {
        let all = followers.iter().all(|i| {
            let s = &c.servers[*i];
            info_field(s.port, auth, "master_port").as_deref() == Some(port.as_str())
                && info_field(s.port, auth, "master_link_status").as_deref() == Some("up")
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas do not follow port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// redis-py's Sentinel client writing `w:<i>` through the sentinels
/// (`tests/clients/python/agentless_writer.py`), killed on drop.
pub struct Writer {
    child: Child,
    /// Every acknowledged write's index and when the acknowledgement arrived here.
    pub acked: Arc<Mutex<Vec<(u64, Instant)>>>,
    /// Its last line that was not an acknowledgement.
    pub said: Arc<Mutex<Vec<String>>>,
}

impl Writer {
    /// Starts the writer against the sentinels at `sentinels` (`host:port,...`), with the
    /// servers' password `pass` (empty: none); returns once a first write is acknowledged.
    pub fn start(sentinels: &str, pass: &str) -> Writer {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root")
            .to_path_buf();
        let python = repo.join("target/venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run tests/run.sh, which installs redis-py",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(repo.join("tests/clients/python/agentless_writer.py"))
            .arg(sentinels)
            .arg(pass)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python");
        let stdout = child.stdout.take().expect("stdout");
        let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let said: Arc<Mutex<Vec<String>>> = Arc::default();
        let (a, s) = (acked.clone(), said.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("ACK ").and_then(|i| i.parse().ok()) {
                    Some(i) => a.lock().unwrap().push((i, Instant::now())),
                    None => s.lock().unwrap().push(line),
                }
            }
        });
        let w = Writer { child, acked, said };
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.acked.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the writer acknowledged nothing: {:?}",
                w.said.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        w
    }

    /// How many writes were acknowledged so far.
    pub fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `n` more writes than now are acknowledged.
    pub fn wait_more(&self, n: usize, within: Duration) {
        let target = self.count() + n;
        let deadline = Instant::now() + within;
        while self.count() < target {
            assert!(
                Instant::now() < deadline,
                "the writer stalled at {} acknowledged writes: {:?}",
                self.count(),
                self.said.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the writer; every acknowledged write, in order.
    pub fn stop(mut self) -> Vec<(u64, Instant)> {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = writeln!(stdin, "stop");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The reader thread has the last lines once the process is gone.
        std::thread::sleep(Duration::from_millis(50));
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
