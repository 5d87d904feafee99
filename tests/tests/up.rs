//! `vigil up`: a whole local cluster from one command — three managed nodes and three
//! sentinels as its supervised children, a master assigned by the sentinels, a killed process
//! restarted, the cluster's events on the terminal, everything stopped on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::{RawConn, sentinel_client, vigil_bin, write_config};

/// `n` free ports in a row, reserved for this test (see `vigil_tests::free_port_block`).
fn free_ports(n: u16) -> u16 {
    vigil_tests::free_port_block(n)
}

fn three_free_ports() -> u16 {
    free_ports(3)
}

/// A local cluster config in `dir` on free ports, without `dir` (sync mode, `down_after`
/// 1 s); its path and the data, admin, gRPC and RESP base ports.
fn cluster_config(dir: &std::path::Path) -> (std::path::PathBuf, [u16; 4]) {
    let ports = [(); 4].map(|_| three_free_ports());
    let [data, admin, grpc, resp] = ports;
    let metrics = free_ports(6);
    let cfg = write_config(
        dir,
        "local.toml",
        &format!(
            "base_port = {data}\nadmin_base_port = {admin}\ngrpc_base_port = {grpc}\nresp_base_port = {resp}\nmetrics_base_port = {metrics}\ngroup = \"mymaster\"\ndown_after = \"1s\"\nsync_replicas = 1\ntoken = \"t\"\nnode_token = \"n\"\n"
        ),
    );
    (cfg, ports)
}

/// `vigil up`'s stdout, collected line by line as it arrives.
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn collect(child: &mut Child) -> Output {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = lines.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        Output(lines)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Waits for a line containing every one of `parts`; returns it.
    async fn wait_line(&self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {parts:?} within {within:?}; vigil up printed:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Stops `vigil up` on drop (a failed assertion must not leave a cluster running).
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGKILLs the process a banner line of `vigil up` names (`… pid N)`).
fn sigkill_banner_process(line: &str) {
    let pid: i32 = line
        .rsplit("pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    // SAFETY: kill(2) on a grandchild this test started through `vigil up`.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

async fn master_of(grpc: u16) -> vigil_proto::sentinel::MasterInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = sentinel_client(grpc, "t")
            .get_master(GetMasterRequest {
                group: "mymaster".into(),
            })
            .await;
        if let Ok(m) = r.map(|r| r.into_inner())
            && m.status == "ok"
        {
            return m;
        }
        assert!(Instant::now() < deadline, "no master within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_until_ok(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut c) = RawConn::connect(port)
            && c.call(&["SET", "k", "v"]) == b"+OK\r\n"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the master on {port} took no write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `vigil up` run as a newcomer would, from an arbitrary directory (no repository around it)
/// with its data in the per-user default location: a master is assigned; SIGKILL of the
/// master's process leaves the rest running, the failover shows on the terminal as events,
/// the killed node is restarted and returns as a replica; SIGTERM stops everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_supervises_its_cluster_and_shows_a_failover() {
    supervises_and_fails_over(None).await;
}

/// The same with stock `redis-server`s, each owned by a `vigil agent`: killing a node's
/// process (the agent) takes its server down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_agents_supervises_stock_servers() {
    supervises_and_fails_over(Some("redis-server")).await;
}

/// And with stock `redis-server`s managed agentless: the killed server comes back from its own
/// config file and the sentinels demote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_agentless_supervises_stock_servers() {
    supervises_and_fails_over(Some("redis-resp")).await;
}

async fn supervises_and_fails_over(backend: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    // No `dir`: the per-user default under $HOME.
    let (cfg, [data, _, grpc, _]) = cluster_config(dir.path());
    let (home, cwd) = (dir.path().join("home"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["up", "--config"]).arg(&cfg);
    if let Some(b) = backend {
        cmd.args(["--backend", b]);
    }
    let mut child = cmd
        .current_dir(&cwd)
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Output::collect(&mut child);
    let mut up = Up(child);
    out.wait_line(&["ready"], Duration::from_secs(10)).await;
    let banner = out.text();
    let data_dir = home.join(".local/share/vigil/local-cluster");
    // A stock server agentless has a redis.conf of its own; the others a Vigil config.
    let node_config = match backend {
        Some("redis-resp") => "node1.conf",
        _ => "node1.toml",
    };
    // The generated configs are written before the processes start (the processes create
    // their own directories, possibly after "ready").
    assert!(
        banner.contains(&data_dir.display().to_string()) && data_dir.join(node_config).is_file(),
        "{banner}"
    );
    assert!(banner.contains("synchronous replication"), "{banner}");
    if backend.is_none() {
        // Each node runs one worker thread, as redis-server runs one event loop: the nodes
        // of a local cluster share this machine.
        let text = std::fs::read_to_string(data_dir.join(node_config)).unwrap();
        assert!(text.lines().any(|l| l == "threads = 1"), "{text}");
    }
    if backend == Some("redis-server") {
        assert!(banner.contains("owned by a vigil agent"), "{banner}");
    }
    if backend == Some("redis-resp") {
        assert!(banner.contains("managed over RESP"), "{banner}");
    }
    let first = master_of(grpc).await;
    let port: u16 = first.address.rsplit(':').next().unwrap().parse().unwrap();
    set_until_ok(port, Duration::from_secs(10)).await;
    // Every metrics URL the banner prints answers, with its server up (stock servers managed
    // over RESP have none: only the sentinels').
    let urls: Vec<u16> = banner
        .split("metrics http://127.0.0.1:")
        .skip(1)
        .filter_map(|rest| rest.split('/').next()?.parse().ok())
        .collect();
    let expected = if backend == Some("redis-resp") { 3 } else { 6 };
    assert_eq!(urls.len(), expected, "{banner}");
    for p in urls {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = vigil_tests::ops_http::request(p, "GET", "/metrics");
            let up = page
                .as_ref()
                .ok()
                .filter(|r| r.status == 200)
                .and_then(|r| {
                    vigil_tests::ops_http::value(
                        &vigil_tests::ops_http::parse_metrics(&r.body),
                        "redis_up",
                        "",
                    )
                });
            if up == Some(1.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "metrics on {p}: {:?}",
                page.map(|r| r.status)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Its process, as the banner names it.
    let line = out
        .wait_line(&[&format!("redis://127.0.0.1:{port} ")], Duration::ZERO)
        .await;
    let name = line.split_whitespace().next().unwrap().to_string();
    sigkill_banner_process(&line);
    // The exit is reported, the failover shows as events, the rest keeps running.
    out.wait_line(&[&name, "exited", "signal: 9"], Duration::from_secs(5))
        .await;
    out.wait_line(&["+sdown", &name], Duration::from_secs(10))
        .await;
    out.wait_line(&["+switch-master", "mymaster"], Duration::from_secs(15))
        .await;
    let second = master_of(grpc).await;
    assert_ne!(second.address, first.address);
    let new_port: u16 = second.address.rsplit(':').next().unwrap().parse().unwrap();
    set_until_ok(new_port, Duration::from_secs(10)).await;
    // The killed node is started again and rejoins as a replica of the new master.
    out.wait_line(&[&name, "restarted (pid"], Duration::from_secs(10))
        .await;
    out.wait_line(&["+convert-to-slave", &name], Duration::from_secs(20))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = RawConn::connect(port)
            .map(|mut c| c.call(&["INFO", "replication"]))
            .unwrap_or_default();
        let info = String::from_utf8_lossy(&info).to_string();
        if info.contains(&format!("master_port:{new_port}"))
            && info.contains("master_link_status:up")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node does not follow the new master: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(up.0.try_wait(), Ok(None)),
        "vigil up stopped:\n{}",
        out.text()
    );
    // SIGTERM stops the whole cluster.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = up.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "vigil up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for p in [data, data + 1, data + 2, grpc, grpc + 1, grpc + 2] {
        assert!(
            TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} still served after vigil up stopped"
        );
    }
}

/// With `--no-restart` a process that exits stays down, and is said to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_no_restart_leaves_an_exited_process_down() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, [_, _, grpc, _]) = cluster_config(dir.path());
    let mut child = Command::new(vigil_bin())
        .args(["up", "--async", "--no-restart", "--dir"])
        .arg(dir.path().join("cluster"))
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Output::collect(&mut child);
    let _up = Up(child);
    out.wait_line(&["ready"], Duration::from_secs(10)).await;
    assert!(
        out.text().contains("asynchronous replication"),
        "{}",
        out.text()
    );
    let line = out.wait_line(&["sentinel3 ", "pid "], Duration::ZERO).await;
    sigkill_banner_process(&line);
    out.wait_line(&["sentinel3 exited", "left down"], Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !out.text().contains("sentinel3 restarted"),
        "{}",
        out.text()
    );
    assert!(TcpStream::connect(("127.0.0.1", grpc + 2)).is_err());
    // The other two sentinels still serve.
    master_of(grpc).await;
}

/// `vigil up --shards 3`: nine nodes in three groups and the sentinels, the cluster created
/// before "ready"; `redis-cli -c` writes and reads through any node, and every node serves the
/// same full `CLUSTER SLOTS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_shards_serves_the_cluster_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let [data, admin, grpc, resp] = [9, 9, 3, 3].map(free_ports);
    let metrics = free_ports(12);
    let cfg = write_config(
        dir.path(),
        "local.toml",
        &format!(
            "base_port = {data}\nadmin_base_port = {admin}\ngrpc_base_port = {grpc}\nresp_base_port = {resp}\nmetrics_base_port = {metrics}\ngroup = \"mymaster\"\ndown_after = \"1s\"\nsync_replicas = 1\ntoken = \"t\"\nnode_token = \"n\"\n"
        ),
    );
    let mut child = Command::new(vigil_bin())
        .args(["up", "--shards", "3", "--config"])
        .arg(&cfg)
        .arg("--dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Output::collect(&mut child);
    let _up = Up(child);
    out.wait_line(&["ready"], Duration::from_secs(90)).await;
    let banner = out.text();
    assert!(
        banner.contains("sharded cluster \"mycluster\": 3 groups"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("node9      redis://127.0.0.1:{}", data + 8)),
        "{banner}"
    );
    let ports: Vec<u16> = (0..9).map(|i| data + i).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let slots = loop {
        let all: Vec<_> = ports
            .iter()
            .map(|p| vigil_tests::sharded::cluster_slots(*p))
            .collect();
        if let Some(Some(first)) = all.first()
            && vigil_tests::sharded::covers_all(first)
            && all.iter().all(|s| s.as_ref() == Some(first))
        {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no agreed slot map: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(slots.len(), 3, "{slots:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for (args, want) in [
        (vec!["SET", "foo", "bar"], "OK"),
        (vec!["SET", "hello", "world"], "OK"),
        (vec!["GET", "foo"], "bar"),
        (vec!["GET", "hello"], "world"),
    ] {
        loop {
            let o = Command::new("redis-cli")
                .args(["-c", "-p", &data.to_string()])
                .args(&args)
                .output()
                .expect("redis-cli");
            let got = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if got == want {
                break;
            }
            // A master takes writes once its first lease is granted.
            assert!(Instant::now() < deadline, "redis-cli -c {args:?}: {got}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
