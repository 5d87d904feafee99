//! Helpers for the end-to-end suites: start real `vigil node` and `redis-server` processes on
//! free ports (killed on drop, even when a test fails), and a raw RESP connection that returns
//! each reply's exact bytes for byte-for-byte comparison.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub mod managed;
pub mod netns;

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

/// Wall-clock milliseconds (to line a test's moments up with events' `at_ms`).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A port nobody listens on right now, for a server started a moment later.
///
/// Taken below the ephemeral range, never handed out twice by this process: a port the OS
/// assigned (`bind(0)`) is an ephemeral one, which any outgoing connection of the suites
/// running in parallel may take before the server binds it ("Address already in use").
pub fn free_port() -> u16 {
    use rand::RngExt;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let mut rng = rand::rng();
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let p = rng.random_range(10_000..low.max(10_001));
        if !given.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            given.push(p);
            return p;
        }
    }
    panic!("no free port below {low}")
}

/// A port a child announces later (the node's admin port).
type LatePort = std::sync::Arc<std::sync::Mutex<Option<u16>>>;

/// Starts `vigil <args>` with stderr to `stderr_path` and waits for the stdout line
/// `<prefix>ADDR`; returns the child, that port, and the admin port slot (filled when the
/// child prints `admin listening on ADDR`). `Err` with its stderr if it exits first.
fn spawn_vigil(
    args: &[std::ffi::OsString],
    stderr_path: &Path,
    prefix: &'static str,
) -> Result<(Child, u16, LatePort), String> {
    let stderr = std::fs::File::create(stderr_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(vigil_bin())
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
            if let Some(addr) = second {
                let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                if let Ok(mut slot) = admin_slot.lock() {
                    *slot = port;
                }
            } else if let Some(addr) = line.strip_prefix(prefix) {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => {
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or("bad address line")?;
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
        let stderr_path = config.with_extension("stderr.log");
        let args: Vec<std::ffi::OsString> =
            vec!["sentinel".into(), "--config".into(), config.into()];
        let (child, port, resp) = spawn_vigil(&args, &stderr_path, "grpc listening on ")
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

    /// SIGKILLs the process and waits for it.
    pub fn kill9(&mut self) {
        // SAFETY: kill(2) with the PID of a child we own.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

    fn try_start_on(dir: &Path, port: u16, extra: &[&str]) -> Result<NodeProc, String> {
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
        let (child, port, admin) = spawn_vigil(&args, &stderr_path, "listening on ")?;
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
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
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
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect(
                    "redis-server is required for differential tests (tests/run.sh installs it)",
                );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(mut c) = RawConn::connect(port) {
                    // Make sure the server answering is ours: a concurrent test may have been
                    // handed the same free port and started its own redis-server there first.
                    let info = c
                        .send_raw(&RawConn::encode(&["INFO", "server"]))
                        .ok()
                        .and_then(|_| c.read_reply())
                        .unwrap_or_default();
                    let ours = format!("process_id:{}\r\n", child.id());
                    if String::from_utf8_lossy(&info).contains(&ours) {
                        return RedisProc {
                            child,
                            port,
                            _dir: dir,
                        };
                    }
                    // Someone else's server (or one going away) holds this port: try another.
                    break;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `redis-sentinel` (the reference for the Sentinel protocol), monitoring `group` at a
/// master address where nothing listens; killed on drop.
pub struct RedisSentinelProc {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisSentinelProc {
    /// Starts `redis-server <conf> --sentinel` on a free port.
    pub fn start(group: &str, master_port: u16) -> RedisSentinelProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {group} 127.0.0.1 {master_port} 2\n",
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

/// A raw RESP connection returning exact reply bytes.
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    resp3: bool,
}

impl RawConn {
    /// Connects with a 10 s read timeout.
    pub fn connect(port: u16) -> std::io::Result<RawConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        })
    }

    /// Connects to `addr` (`host:port`) within `timeout`, replies awaited up to `timeout` too
    /// (for peers that may sit behind a network partition).
    pub fn connect_to(addr: &str, timeout: Duration) -> std::io::Result<RawConn> {
        use std::net::ToSocketAddrs;
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("bad address {addr}")))?;
        let stream = TcpStream::connect_timeout(&sa, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        })
    }

    /// Encodes a command as a multibulk request.
    pub fn encode(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a command and returns its reply's bytes.
    pub fn call(&mut self, args: &[&str]) -> Vec<u8> {
        let port = self.stream.peer_addr().map(|a| a.port()).unwrap_or(0);
        if let Err(e) = self.send_raw(&Self::encode(args)) {
            panic!("cannot send {args:?} to port {port}: {e}");
        }
        if args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("hello"))
            && args.get(1) == Some(&"3")
        {
            self.resp3 = true;
        }
        if args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("hello"))
            && args.get(1) == Some(&"2")
        {
            self.resp3 = false;
        }
        if args
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case("reset"))
        {
            self.resp3 = false;
        }
        self.read_reply()
            .unwrap_or_else(|| panic!("no reply to {args:?} from port {port}"))
    }

    /// Reads one reply frame (as RESP3 after `HELLO 3`); `None` on EOF or timeout.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            let decoded = if self.resp3 {
                redis_protocol::resp3::decode::complete::decode(&self.buf)
                    .map(|o| o.map(|(_, n)| n))
            } else {
                redis_protocol::resp2::decode::decode(&self.buf).map(|o| o.map(|(_, n)| n))
            };
            match decoded {
                Ok(Some(n)) => return Some(self.buf.split_to(n).to_vec()),
                Ok(None) => {}
                Err(e) => panic!(
                    "undecodable reply {:?}: {e:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the server closed the connection (reads until EOF or timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Writes a config file into `dir` and returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("config dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

/// Every key of every database with its type, value and absolute expiry, read through RESP:
/// two nodes with equal dumps hold the same data.
pub fn dump_dataset(c: &mut redis::Connection, databases: usize) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..databases {
        let _: () = redis::cmd("SELECT").arg(db).query(c).expect("select");
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).expect("keys");
        keys.sort();
        for k in keys {
            let kind: String = redis::cmd("TYPE").arg(&k).query(c).expect("type");
            let value: redis::Value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&k).query(c),
                "list" => redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(c),
                "hash" => redis::cmd("HGETALL").arg(&k).query(c),
                "set" => redis::cmd("SMEMBERS").arg(&k).query(c),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(c),
                _ => Ok(redis::Value::Nil),
            }
            .expect("value");
            let value = match (kind.as_str(), value) {
                // Set and hash order is the node's own business.
                ("set" | "hash", redis::Value::Array(items)) => {
                    let mut v: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
                    if kind == "hash" {
                        let mut pairs: Vec<String> = v.chunks(2).map(|p| p.join("=")).collect();
                        pairs.sort();
                        v = pairs;
                    } else {
                        v.sort();
                    }
                    v.join(",")
                }
                (_, v) => format!("{v:?}"),
            };
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&k)
                .query(c)
                .expect("pexpiretime");
            out.push(format!(
                "db{db} {} {kind} {value} expires={at}",
                String::from_utf8_lossy(&k)
            ));
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query(c).expect("select");
    out
}

/// A `SentinelService` client carrying a token.
pub type SentinelClient = vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        vigil_proto::auth::Bearer,
    >,
>;

/// A client of the sentinel on `port`, sending `token` (connects on first use).
pub fn sentinel_client(port: u16, token: &str) -> SentinelClient {
    sentinel_client_at(&format!("127.0.0.1:{port}"), token, Duration::from_secs(60))
}

/// A client of the sentinel at `addr` (`host:port`) whose calls give up after `timeout`.
pub fn sentinel_client_at(addr: &str, token: &str, timeout: Duration) -> SentinelClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(2).min(timeout))
        .timeout(timeout)
        .connect_lazy();
    let bearer = vigil_proto::auth::Bearer::new(token).expect("an ASCII token");
    vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient::with_interceptor(
        channel, bearer,
    )
}

/// The leader that every sentinel in `alive` (id, gRPC port) reports, once they agree on one of
/// themselves; `None` if they do not within `within`.
pub async fn agreed_leader(alive: &[(u64, u16)], token: &str, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for &(_, port) in alive {
            let req = vigil_proto::sentinel::ClusterStatusRequest {};
            if let Ok(s) = sentinel_client(port, token).cluster_status(req).await {
                seen.push(s.into_inner().leader);
            }
        }
        if seen.len() == alive.len()
            && alive.iter().any(|(id, _)| *id == seen[0])
            && seen.iter().all(|l| *l == seen[0])
        {
            return Some(seen[0]);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The config of sentinel `id` (1-based) in a group whose gRPC ports are `ports`, all on
/// loopback with data under `dir`; `extra` is appended (more keys, `[raft]`, `[[groups]]`).
pub fn sentinel_config(id: u64, ports: &[u16], dir: &Path, token: &str, extra: &str) -> String {
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ id = {}, address = \"127.0.0.1:{p}\" }}", i + 1))
        .collect();
    format!(
        "id = {id}\ngrpc = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:0\"\ndir = \"{}\"\ntoken = \"{token}\"\npeers = [{}]\n{extra}",
        ports[id as usize - 1],
        dir.join(format!("s{id}")).display(),
        peers.join(", ")
    )
}

/// A `Monitor` request for group `name` with one placeholder node (for tests of the sentinels'
/// own state, where no node needs to exist).
pub fn monitor_request(name: &str) -> vigil_proto::sentinel::MonitorRequest {
    vigil_proto::sentinel::MonitorRequest {
        name: name.into(),
        nodes: vec![vigil_proto::sentinel::Node {
            name: "n1".into(),
            data: "127.0.0.1:6379".into(),
            admin: "127.0.0.1:16379".into(),
            priority: 100,
        }],
        settings: None,
    }
}
