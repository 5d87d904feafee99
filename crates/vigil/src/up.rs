//! `vigil up`: three storage nodes and three sentinels on this machine, as child processes of
//! this one, configured from `config/local-cluster.toml` and stopped together.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// `config/local-cluster.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCluster {
    dir: PathBuf,
    base_port: u16,
    admin_base_port: u16,
    grpc_base_port: u16,
    resp_base_port: u16,
    group: String,
    down_after: String,
    sync_replicas: u32,
    token: String,
    node_token: String,
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

/// Children killed (SIGTERM, then SIGKILL) when this goes out of scope, even on error.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            // SAFETY: kill(2) on the PID of a child we own.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for (name, c) in &mut self.0 {
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !matches!(c.try_wait(), Ok(Some(_))) {
                eprintln!("{name} did not stop on SIGTERM; killing it");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn spawn(name: &str, args: &[&str], log: &Path) -> anyhow::Result<(String, Child)> {
    let exe = std::env::current_exe().context("cannot find the vigil binary")?;
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new(exe)
        .args(args)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok((name.to_string(), child))
}

/// Starts the cluster and waits for SIGTERM or Ctrl-C, then stops it.
pub fn run(config: &Path) -> anyhow::Result<()> {
    let c = LocalCluster::load(config)?;
    std::fs::create_dir_all(&c.dir)
        .with_context(|| format!("cannot create {}", c.dir.display()))?;
    let dir = std::fs::canonicalize(&c.dir)?;
    let mut children = Children(Vec::new());
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
        children.0.push(spawn(
            &name,
            &["node", "--config", &cfg.to_string_lossy()],
            &dir.join(format!("{name}.log")),
        )?);
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
        children.0.push(spawn(
            &name,
            &["sentinel", "--config", &cfg.to_string_lossy()],
            &dir.join(format!("{name}.log")),
        )?);
    }
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
                    for (name, ch) in &mut children.0 {
                        if let Ok(Some(status)) = ch.try_wait() {
                            return anyhow::Ok(Some(format!("{name} exited ({status}); see its log in {}", dir.display())));
                        }
                    }
                }
            }
        }
    })?;
    println!("vigil up: stopping");
    drop(children);
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
