//! `vigil up`: three storage nodes and three sentinels on this machine, as child processes of
//! this one, configured from `config/local-cluster.toml` and stopped together.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// `config/local-cluster.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCluster {
    /// Where the processes keep their data, configs and logs.
    pub dir: PathBuf,
    /// First node's data port (then +1, +2).
    pub base_port: u16,
    /// First node's admin port.
    pub admin_base_port: u16,
    /// First sentinel's gRPC port.
    pub grpc_base_port: u16,
    /// First sentinel's Redis Sentinel protocol port.
    pub resp_base_port: u16,
    /// The group's name.
    pub group: String,
    /// `down_after` of the group, e.g. `"1s"`.
    pub down_after: String,
    /// Synchronous replicas (0: asynchronous replication).
    pub sync_replicas: u32,
    /// The sentinels' cluster token.
    pub token: String,
    /// The nodes' admin token.
    pub node_token: String,
}

impl LocalCluster {
    /// Reads the file.
    pub fn load(path: &Path) -> anyhow::Result<LocalCluster> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let c: LocalCluster = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("invalid config in {}: {}", path.display(), e.message())
        })?;
        humantime::parse_duration(&c.down_after).with_context(|| {
            format!(
                "invalid config in {}: `down_after` {:?} is not a duration",
                path.display(),
                c.down_after
            )
        })?;
        if c.token.is_empty() || c.node_token.is_empty() {
            bail!(
                "invalid config in {}: `token` and `node_token` must not be empty",
                path.display()
            );
        }
        Ok(c)
    }
}

/// One child process of the cluster.
struct Proc {
    name: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running local cluster: its processes are children of this one, stopped (SIGTERM, then
/// SIGKILL) when this goes out of scope, even on error.
pub struct Cluster {
    /// The configuration it runs.
    pub config: LocalCluster,
    /// Its directory, absolute.
    pub dir: PathBuf,
    procs: Vec<Proc>,
}

impl Cluster {
    /// Writes each process's configuration under `config.dir` and starts them: `node1..3`,
    /// `sentinel1..3`.
    pub fn start(config: &LocalCluster) -> anyhow::Result<Cluster> {
        let c = config;
        std::fs::create_dir_all(&c.dir)
            .with_context(|| format!("cannot create {}", c.dir.display()))?;
        let dir = std::fs::canonicalize(&c.dir)?;
        let mut cluster = Cluster {
            config: c.clone(),
            dir: dir.clone(),
            procs: Vec::new(),
        };
        let mut node_list = Vec::new();
        for i in 0..3u16 {
            let name = format!("node{}", i + 1);
            let (port, admin) = (c.base_port + i, c.admin_base_port + i);
            let cfg = dir.join(format!("{name}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "port = {port}\ndir = \"{}\"\nmode = \"managed\"\n[replication]\nsync_replicas = {}\n[admin]\nport = {admin}\ntoken = \"{}\"\n",
                    dir.join(&name).display(),
                    c.sync_replicas,
                    c.node_token
                ),
            )?;
            cluster.spawn(&name, &["node", "--config", &cfg.to_string_lossy()])?;
            node_list.push(format!(
                "{{ name = \"{name}\", data = \"127.0.0.1:{port}\", admin = \"127.0.0.1:{admin}\" }}"
            ));
        }
        let peers: Vec<String> = (0..3u16)
            .map(|i| {
                format!(
                    "{{ id = {}, address = \"127.0.0.1:{}\" }}",
                    i + 1,
                    c.grpc_base_port + i
                )
            })
            .collect();
        for i in 0..3u16 {
            let name = format!("sentinel{}", i + 1);
            let cfg = dir.join(format!("{name}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "id = {}\ngrpc = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:{}\"\ndir = \"{}\"\ntoken = \"{}\"\nnode_token = \"{}\"\npeers = [{}]\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"{}\"\ndown_after = \"{}\"\nsync_replicas = {}\nnodes = [{}]\n",
                    i + 1,
                    c.grpc_base_port + i,
                    c.resp_base_port + i,
                    dir.join(&name).display(),
                    c.token,
                    c.node_token,
                    peers.join(", "),
                    c.group,
                    c.down_after,
                    c.sync_replicas,
                    node_list.join(", ")
                ),
            )?;
            cluster.spawn(&name, &["sentinel", "--config", &cfg.to_string_lossy()])?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut p = Proc {
            name: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: self.dir.join(format!("{name}.log")),
            child: None,
        };
        p.child = Some(launch(&p)?);
        self.procs.push(p);
        Ok(())
    }

    fn proc_mut(&mut self, name: &str) -> anyhow::Result<&mut Proc> {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow::anyhow!("no process named {name} in the cluster"))
    }

    /// The PID of a running process (`node2`, `sentinel1`, ...).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.child.as_ref())
            .map(Child::id)
    }

    /// SIGKILLs a process and reaps it.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self.proc_mut(name)?;
        if let Some(mut c) = p.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    /// Starts a killed process again with its configuration (its log is appended to).
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let p = self.proc_mut(name)?;
        if p.child.is_none() {
            p.child = Some(launch(p)?);
        }
        Ok(())
    }

    /// The first process found to have exited on its own, with its status.
    pub fn exited(&mut self) -> Option<String> {
        for p in &mut self.procs {
            if let Some(c) = p.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Some(format!(
                    "{} exited ({status}); see {}",
                    p.name,
                    p.log.display()
                ));
            }
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.iter().filter_map(|p| p.child.as_ref()) {
            // SAFETY: kill(2) on the PID of a child we own.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for p in &mut self.procs {
            let Some(c) = p.child.as_mut() else { continue };
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                eprintln!("{} did not stop on SIGTERM; killing it", p.name);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn launch(p: &Proc) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the vigil binary")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .with_context(|| format!("cannot create {}", p.log.display()))?;
    let err = out.try_clone()?;
    Command::new(exe)
        .args(&p.args)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("cannot start {}", p.name))
}

/// Starts the cluster and waits for SIGTERM or Ctrl-C, then stops it.
pub fn run(config: &Path) -> anyhow::Result<()> {
    let c = LocalCluster::load(config)?;
    let mut cluster = Cluster::start(&c)?;
    let dir = cluster.dir.clone();
    println!(
        "vigil up: group {:?} on 3 nodes, 3 sentinels (data and logs in {})",
        c.group,
        dir.display()
    );
    for i in 0..3u16 {
        println!(
            "  node{}      redis://127.0.0.1:{}  (admin 127.0.0.1:{})",
            i + 1,
            c.base_port + i,
            c.admin_base_port + i
        );
    }
    for i in 0..3u16 {
        println!(
            "  sentinel{}  redis-sentinel://127.0.0.1:{}  (grpc 127.0.0.1:{})",
            i + 1,
            c.resp_base_port + i,
            c.grpc_base_port + i
        );
    }
    println!(
        "The sentinels assign the master within a few seconds. Point a Redis Sentinel client at"
    );
    println!(
        "them with the group name {:?}, e.g. redis-cli -p {} SENTINEL get-master-addr-by-name {}",
        c.group, c.resp_base_port, c.group
    );
    println!("(or gRPC SentinelService.GetMaster, token in the config). Ctrl-C stops everything.");
    println!("ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exited = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return anyhow::Ok(None),
                _ = term.recv() => return anyhow::Ok(None),
                _ = tick.tick() => {
                    if let Some(why) = cluster.exited() {
                        return anyhow::Ok(Some(why));
                    }
                }
            }
        }
    })?;
    println!("vigil up: stopping");
    drop(cluster);
    match exited {
        Some(why) => bail!("{why}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// The commented example in config/ must always load.
    #[test]
    fn shipped_example_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/local-cluster.toml"
        );
        let c = super::LocalCluster::load(std::path::Path::new(path)).unwrap();
        assert_eq!(
            (c.base_port, c.grpc_base_port, c.group.as_str()),
            (6379, 27379, "mymaster")
        );
    }
}
