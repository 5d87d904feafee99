//! `vigil agent` processes owning real `redis-server`s, and a group of three of them under
//! three sentinels (the `redis-server` backend).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::managed::{NODE_TOKEN, master_and_followers_at, start_sentinels};
use crate::procs::spawn_vigil;
use crate::{RawConn, SentinelProc, free_port, write_config};

/// A `vigil agent` child (SIGKILLed on drop, which takes its server down with it).
pub struct AgentProc {
    /// The agent process.
    pub child: Child,
    /// Its NodeAdmin port.
    pub admin_port: u16,
    /// The server's data port.
    pub port: u16,
    /// The agent's directory.
    pub dir: PathBuf,
    config: PathBuf,
    stderr_path: PathBuf,
}

impl AgentProc {
    /// An agent in `dir` owning a `redis-server` (persistence off) on a free port; `extra` is
    /// appended to its config.
    pub fn start(dir: &Path, extra: &str) -> AgentProc {
        let port = free_port();
        let exec = format!(
            "exec = [\"redis-server\", \"--bind\", \"127.0.0.1\", \"--save\", \"\", \"--appendonly\", \"no\", \"--repl-diskless-sync-delay\", \"0\", \"--dir\", \"{}\", \"--logfile\", \"{}\"]\n",
            dir.display(),
            dir.join("redis.log").display()
        );
        let agent = Self::start_with(dir, port, &format!("{exec}{extra}"));
        // The data port opens once the agent has paused the server's writes.
        let deadline = Instant::now() + Duration::from_secs(30);
        while RawConn::connect(port).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server never opened its port: {}",
                agent.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    /// An agent in `dir` for a server on `port`; `extra` is the rest of its config (`exec`
    /// or not).
    pub fn start_with(dir: &Path, port: u16, extra: &str) -> AgentProc {
        std::fs::create_dir_all(dir).expect("agent dir");
        let text = format!(
            "server = \"127.0.0.1:{port}\"\ndir = \"{}\"\n{extra}\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n",
            dir.join("agent").display()
        );
        let cfg = write_config(dir, "agent.toml", &text);
        let stderr_path = dir.join("agent.stderr.log");
        let args: Vec<std::ffi::OsString> = vec!["agent".into(), "--config".into(), cfg.into()];
        let (child, admin_port, _) = spawn_vigil(&args, &stderr_path, "admin listening on ")
            .unwrap_or_else(|e| panic!("agent did not start: {e}"));
        // A restart keeps the admin port the sentinels know.
        let text = text.replace("port = 0\n", &format!("port = {admin_port}\n"));
        let config = write_config(dir, "agent.toml", &text);
        AgentProc {
            child,
            admin_port,
            port,
            dir: dir.to_path_buf(),
            config,
            stderr_path,
        }
    }

    /// Starts a killed agent again with its configuration and ports.
    pub fn restart(&mut self) {
        let args: Vec<std::ffi::OsString> = vec![
            "agent".into(),
            "--config".into(),
            self.config.clone().into(),
        ];
        let (child, _, _) = spawn_vigil(&args, &self.stderr_path, "admin listening on ")
            .unwrap_or_else(|e| panic!("agent did not restart: {e}"));
        self.child = child;
    }

    /// Its log so far (the agent's and its server's).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A field of the server's `INFO`, if it answers.
    pub fn info_field(&self, field: &str) -> Option<String> {
        crate::info_field(self.port, field)
    }

    /// Waits until the server's `INFO` field satisfies `ok`.
    pub fn wait_info(&self, field: &str, ok: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.info_field(field).filter(|v| ok(v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's pid, once it answers.
    pub fn server_pid(&self) -> i32 {
        self.wait_info("process_id", |_| true, "the server never answered")
            .parse()
            .expect("process_id")
    }

    /// SIGKILLs the agent (its server dies with it).
    pub fn kill9(&mut self) {
        // SAFETY: kill(2) with the PID of a child we own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three agents owning `redis-server`s (`a1`..`a3`) and three sentinels monitoring them as
/// `mymaster`.
pub struct Stock {
    /// The agents.
    pub agents: Vec<AgentProc>,
    /// The sentinels, ids 1..3.
    pub sentinels: Vec<SentinelProc>,
    /// Their gRPC ports.
    pub ports: Vec<u16>,
    /// Configs, data and logs.
    pub dir: tempfile::TempDir,
    /// Servers this suite stopped (SIGSTOP), continued on drop.
    pub stopped: Vec<i32>,
}

impl Drop for Stock {
    fn drop(&mut self) {
        for pid in self.stopped.drain(..) {
            // SAFETY: kill(2) on a server this suite stopped; it must not stay stopped.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// Starts a [`Stock`] group with `down_after`.
pub fn start_stock(down_after: &str) -> Stock {
    let dir = tempfile::Builder::new()
        .disable_cleanup(std::env::var_os("VIGIL_TEST_KEEP").is_some())
        .tempdir()
        .unwrap();
    let agents: Vec<AgentProc> = (1..=3)
        .map(|i| AgentProc::start(&dir.path().join(format!("a{i}")), ""))
        .collect();
    let nodes: Vec<(u16, u16)> = agents.iter().map(|a| (a.port, a.admin_port)).collect();
    let (sentinels, ports) = start_sentinels(dir.path(), &nodes, down_after, "");
    Stock {
        agents,
        sentinels,
        ports,
        dir,
        stopped: Vec::new(),
    }
}

impl Stock {
    /// The master and its index, once both other servers follow it with their links up.
    pub async fn master_and_followers(&self) -> (vigil_proto::sentinel::MasterInfo, usize) {
        let data: Vec<u16> = self.agents.iter().map(|a| a.port).collect();
        master_and_followers_at(&self.ports, &data).await
    }

    /// The index of the agent whose server listens at `address`.
    pub fn agent_at(&self, address: &str) -> usize {
        let port = crate::port_of(address);
        self.agents.iter().position(|a| a.port == port).unwrap()
    }
}
