//! The process harness: real `vigil node`, `vigil sentinel`, `redis-server` and
//! `redis-sentinel` processes on free ports, each killed and reaped on drop (even when a test
//! fails), and the ports they announce on stdout.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_base::HostPort;

use crate::raw::RawConn;

/// The `vigil` binary built by this workspace (the test script builds it before the suites).
pub fn vigil_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin> → target/<profile>/vigil
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("vigil"))
        .find(|p| p.exists());
    bin.unwrap_or_else(|| {
        panic!("the vigil binary was not found next to {}: run `cargo build --bin vigil` first (tests/run.sh does)", exe.display())
    })
}

/// A port nobody listens on right now, for a server started a moment later.
///
/// Taken below the ephemeral range, never handed out twice by this process: a port the OS
/// assigned (`bind(0)`) is an ephemeral one, which any outgoing connection of the suites
/// running in parallel may take before the server binds it ("Address already in use").
pub fn free_port() -> u16 {
    free_port_block(1)
}

/// `n` consecutive free ports (the first one returned), for `vigil up` and its base ports;
/// reserved as [`free_port`]'s are, every one of them: a block whose tail was only checked,
/// not reserved, could be handed to a test running beside (two clusters on one port).
pub fn free_port_block(n: u16) -> u16 {
    use rand::RngExt;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let top = low.saturating_sub(n).max(10_001);
    let mut rng = rand::rng();
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let p = rng.random_range(10_000..top);
        let block = p..p + n;
        if block
            .clone()
            .all(|q| !given.contains(&q) && TcpListener::bind(("127.0.0.1", q)).is_ok())
        {
            given.extend(block);
            return p;
        }
    }
    panic!("no {n} free ports in a row below {low}")
}

/// A port a child announces later (the node's admin port).
pub(crate) type LatePort = std::sync::Arc<std::sync::Mutex<Option<u16>>>;

/// Starts `vigil <args>` with stderr to `stderr_path` and waits for the stdout line
/// `<prefix>ADDR`; returns the child, that port, and the admin port slot (filled when the
/// child prints `admin listening on ADDR`). `Err` with its stderr if it exits first.
pub(crate) fn spawn_vigil(
    args: &[std::ffi::OsString],
    stderr_path: &Path,
    prefix: &'static str,
) -> Result<(Child, u16, LatePort), String> {
    spawn_vigil_in(None, args, stderr_path, prefix)
}

/// [`spawn_vigil`], seeing `hosts` (a [`crate::hosts::Hosts`] file) as its `/etc/hosts`.
pub(crate) fn spawn_vigil_in(
    hosts: Option<&Path>,
    args: &[std::ffi::OsString],
    stderr_path: &Path,
    prefix: &'static str,
) -> Result<(Child, u16, LatePort), String> {
    let stderr = std::fs::File::create(stderr_path).map_err(|e| e.to_string())?;
    let mut cmd = match hosts {
        Some(h) => crate::hosts::command(h),
        None => Command::new(vigil_bin()),
    };
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let admin: LatePort = LatePort::default();
    let admin_slot = admin.clone();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            // A node's admin port, or a sentinel's RESP port: the second port a process has.
            let second = line
                .strip_prefix("admin listening on ")
                .or_else(|| line.strip_prefix("resp listening on "));
            if let Some(addr) = line.strip_prefix(prefix) {
                let _ = tx.send(addr.to_string());
            } else if let Some(addr) = second {
                let port = addr.parse::<HostPort>().ok().map(|a| a.port());
                if let Ok(mut slot) = admin_slot.lock() {
                    *slot = port;
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => {
            let port = addr
                .parse::<HostPort>()
                .map(|a| a.port())
                .map_err(|e| format!("bad address line: {e}"))?;
            Ok((child, port, admin))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::fs::read_to_string(stderr_path).unwrap_or_default())
        }
    }
}

/// A `vigil sentinel` child process; SIGKILLed on drop.
pub struct SentinelProc {
    /// The child.
    pub child: Child,
    /// Its Raft id.
    pub id: u64,
    /// Its gRPC port.
    pub port: u16,
    /// Its config file.
    pub config: PathBuf,
    stderr_path: PathBuf,
    resp: LatePort,
}

impl SentinelProc {
    /// Starts `vigil sentinel --config <config>`.
    pub fn start(id: u64, config: &Path) -> SentinelProc {
        Self::start_in(None, id, config)
    }

    /// [`SentinelProc::start`], seeing `hosts` as its `/etc/hosts` ([`crate::hosts`]).
    pub fn start_in(hosts: Option<&Path>, id: u64, config: &Path) -> SentinelProc {
        let stderr_path = config.with_extension("stderr.log");
        let args: Vec<std::ffi::OsString> =
            vec!["sentinel".into(), "--config".into(), config.into()];
        let (child, port, resp) = spawn_vigil_in(hosts, &args, &stderr_path, "grpc listening on ")
            .unwrap_or_else(|e| panic!("sentinel {id} did not start: {e}"));
        SentinelProc {
            child,
            id,
            port,
            config: config.to_path_buf(),
            stderr_path,
            resp,
        }
    }

    /// Its Redis Sentinel protocol (RESP) port (announced before the gRPC one).
    pub fn resp_port(&self) -> u16 {
        self.resp
            .lock()
            .ok()
            .and_then(|s| *s)
            .expect("the sentinel announces its RESP port before its gRPC port")
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of a child we own.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILLs the process and waits for it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test's temporary directory goes with it: keep the end of the log in the
        // test's output, where a failure seen once (in CI) can still be understood.
        if std::thread::panicking() {
            let log = self.stderr();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            eprintln!("--- sentinel {} log, last lines ---\n{tail}", self.id);
        }
    }
}

/// Lines of a sentinel's log a failing test prints.
const LOG_TAIL: usize = 40;

/// A `vigil node` child process; SIGKILLed on drop.
pub struct NodeProc {
    /// The child.
    pub child: Child,
    /// Its RESP port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    stderr_path: PathBuf,
    admin: LatePort,
}

impl NodeProc {
    /// Starts a node on a free port with data in `dir` and extra flags.
    pub fn start(dir: &Path, extra: &[&str]) -> NodeProc {
        Self::try_start(dir, extra).unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// Starts a node; `Err` with its stderr if it exits or does not announce its address.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<NodeProc, String> {
        Self::try_start_on(dir, 0, extra)
    }

    /// Starts a node on data port `port` (0: any free port).
    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> NodeProc {
        Self::try_start_on(dir, port, extra).unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// [`NodeProc::start_on`], seeing `hosts` as its `/etc/hosts` ([`crate::hosts`]).
    pub fn start_in(hosts: &Path, dir: &Path, port: u16, extra: &[&str]) -> NodeProc {
        Self::try_start_in(Some(hosts), dir, port, extra)
            .unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    /// A node serving TLS only (`--port 0`, a `tls_port` in `extra`); its `port` is the TLS
    /// port, so [`NodeProc::client`] does not apply.
    pub fn start_tls_only(dir: &Path, extra: &[&str]) -> NodeProc {
        Self::spawn(None, dir, 0, extra, "tls listening on ")
            .unwrap_or_else(|e| panic!("node did not start: {e}"))
    }

    fn try_start_on(dir: &Path, port: u16, extra: &[&str]) -> Result<NodeProc, String> {
        Self::try_start_in(None, dir, port, extra)
    }

    fn try_start_in(
        hosts: Option<&Path>,
        dir: &Path,
        port: u16,
        extra: &[&str],
    ) -> Result<NodeProc, String> {
        Self::spawn(hosts, dir, port, extra, "listening on ")
    }

    fn spawn(
        hosts: Option<&Path>,
        dir: &Path,
        port: u16,
        extra: &[&str],
        ready: &'static str,
    ) -> Result<NodeProc, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let stderr_path = dir.with_extension("stderr.log");
        let mut args: Vec<std::ffi::OsString> = vec![
            "node".into(),
            "--port".into(),
            port.to_string().into(),
            "--dir".into(),
            dir.into(),
        ];
        args.extend(extra.iter().map(|a| a.into()));
        let (child, port, admin) = spawn_vigil_in(hosts, &args, &stderr_path, ready)?;
        Ok(NodeProc {
            child,
            port,
            dir: dir.to_path_buf(),
            stderr_path,
            admin,
        })
    }

    /// The admin (gRPC) port, once the node announced it.
    pub fn admin_port(&self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.admin.lock().ok().and_then(|s| *s) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "node announced no admin port: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A field of `INFO` (e.g. `master_link_status`), if present.
    pub fn info_field(&self, field: &str) -> Option<String> {
        let mut c = self.client();
        let info: String = redis::cmd("INFO").arg("everything").query(&mut c).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
    }

    /// Waits until `INFO`'s `field` satisfies `ok`, or panics naming what it saw.
    pub fn wait_info(&self, field: &str, ok: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.info_field(field);
            if last.as_deref().is_some_and(&ok) {
                return last.unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{what}: {field} is {last:?} after 20s; node log:\n{}",
            self.stderr()
        );
    }

    /// The node's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A `redis` crate client.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of a child we own.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILLs the process and waits for it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGSTOPs the process and waits until the kernel reports it stopped: `kill(2)` returns
    /// before every thread has actually stopped, and a test must not race the last ones.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id());
        let stopped = |t: &std::fs::DirEntry| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().and_then(|r| r.trim().chars().next()))
                == Some('T')
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            // Every thread, not just the main one.
            if std::fs::read_dir(&tasks).is_ok_and(|d| d.flatten().all(|t| stopped(&t))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("process {} did not stop", self.child.id());
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` child process (the reference); killed on drop.
pub struct RedisProc {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisProc {
    /// Starts `redis-server` with persistence off on a free port. Fails (never skips) when it is
    /// not installed: the test script installs it.
    pub fn start() -> RedisProc {
        Self::start_with(&[])
    }

    /// Starts `redis-server` as `start` does, with more arguments (`--replicaof`, ...); with
    /// `--requirepass PASS` among them, the start-up check logs in with it.
    pub fn start_with(extra: &[&str]) -> RedisProc {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = Self::spawn_on(port, dir.path(), extra) {
                return RedisProc {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("redis-server did not start");
    }

    /// SIGKILLs the server and starts a new, empty one on the same port with `extra` (a
    /// server restarted without persistence).
    pub fn restart_empty(&mut self, extra: &[&str]) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = Self::spawn_on(self.port, self._dir.path(), extra) {
                self.child = child;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `redis-server` on `port`, once it answers there as itself.
    fn spawn_on(port: u16, dir: &Path, extra: &[&str]) -> Option<Child> {
        let pass = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1));
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for differential tests (tests/run.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = RawConn::connect(port) {
                if let Some(p) = pass {
                    let _ = c.send_raw(&RawConn::encode(&["AUTH", p]));
                    let _ = c.read_reply();
                }
                // Make sure the server answering is ours: a concurrent test may have been
                // handed the same free port and started its own redis-server there first.
                let info = c
                    .send_raw(&RawConn::encode(&["INFO", "server"]))
                    .ok()
                    .and_then(|_| c.read_reply())
                    .unwrap_or_default();
                let ours = format!("process_id:{}\r\n", child.id());
                if String::from_utf8_lossy(&info).contains(&ours) {
                    return Some(child);
                }
                // Someone else's server (or one going away) holds this port.
                break;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl RedisProc {
    /// SIGKILLs the server and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the PID of a child we own and have not waited for.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `redis-sentinel` (the reference for the Sentinel protocol); killed on drop.
pub struct RedisSentinelProc {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its config file (which it rewrites as it learns replicas and sentinels).
    pub conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisSentinelProc {
    /// Starts `redis-server <conf> --sentinel` on a free port, monitoring `group` at
    /// `master_port` with quorum 2.
    pub fn start(group: &str, master_port: u16) -> RedisSentinelProc {
        Self::start_with(&format!(
            "sentinel monitor {group} 127.0.0.1 {master_port} 2\n"
        ))
    }

    /// Starts `redis-server <conf> --sentinel` on a free port with `lines` (the `sentinel ...`
    /// directives) after its port, bind and dir.
    pub fn start_with(lines: &str) -> RedisSentinelProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n{lines}",
                dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required (tests/run.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while RawConn::connect(port).is_err() {
            assert!(Instant::now() < deadline, "redis-sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisSentinelProc {
            child,
            port,
            conf,
            _dir: dir,
        }
    }
}

impl Drop for RedisSentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
