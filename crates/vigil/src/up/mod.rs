//! `vigil up`: three storage nodes and three sentinels on this machine, as child processes of
//! this one, supervised. The nodes are `vigil node`s, or with `--backend redis-server` stock
//! `redis-server`s each owned by a `vigil agent`, or with `--backend redis-resp` stock
//! `redis-server`s the sentinels manage over RESP (agentless). a child that exits is reported and restarted after a short back-off
//! (as systemd's `Restart=always` would), the cluster's events are printed one line each, and
//! Ctrl-C or SIGTERM stops everything. The configuration is embedded in the binary
//! ([`DEFAULT_CONFIG`], the commented `config/local-cluster.toml`), so an installed binary runs
//! in any directory; `--config FILE` replaces it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub use config::{Backend, DEFAULT_CONFIG, LocalCluster, default_dir};

mod config;

/// One child process of the cluster.
struct Proc {
    name: String,
    /// The program (`None`: this `vigil` binary).
    program: Option<String>,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// When the running child was started.
    started: Instant,
    /// Supervision: the pending restart after the child exited, and the back-off to use next.
    restart_at: Option<Instant>,
    backoff: Duration,
}

/// The first back-off before a child that exited is started again: longer than the default
/// `down_after`, so a killed master is seen failing over before it returns as a replica.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
/// The longest back-off (a child that keeps exiting at once).
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before it exited starts again after the shortest back-off.
const STABLE: Duration = Duration::from_secs(10);
/// How long the processes get to stop on SIGTERM (repeated every second) before they are
/// killed.
const STOP_WAIT: Duration = Duration::from_secs(12);

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
    /// Writes each process's configuration under `config.dir` and starts them: `node1..3`
    /// (with N shards, `per_group` nodes each), `sentinel1..3`.
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
        for i in 0..c.node_count() {
            let name = format!("node{}", i + 1);
            let (port, admin) = (c.base_port + i, c.admin_base_port + i);
            let metrics = c.metrics_base_port + i;
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)
                .with_context(|| format!("cannot create {}", node_dir.display()))?;
            let cfg = dir.join(format!("{name}.toml"));
            match c.backend {
                Backend::Vigil => {
                    std::fs::write(
                        &cfg,
                        format!(
                            "port = {port}\ndir = \"{}\"\nmode = \"managed\"\nthreads = {}\nmetrics = \"127.0.0.1:{metrics}\"\n[replication]\nsync_replicas = {}\n[admin]\nport = {admin}\ntoken = \"{}\"\n",
                            node_dir.display(),
                            c.node_threads,
                            c.sync_replicas,
                            c.node_token
                        ),
                    )?;
                    cluster.spawn(&name, None, &["node", "--config", &cfg.to_string_lossy()])?;
                }
                Backend::RedisServer => {
                    let conf = redis_conf(&dir, &name, port, None)?;
                    std::fs::write(
                        &cfg,
                        format!(
                            "server = \"127.0.0.1:{port}\"\ndir = \"{}\"\nexec = [\"{}\", \"{}\"]\nsync_replicas = {}\nmin_replicas_max_lag = \"1s\"\nmetrics = \"127.0.0.1:{metrics}\"\n[admin]\nport = {admin}\ntoken = \"{}\"\n",
                            node_dir.join("agent").display(),
                            c.redis_server,
                            conf.display(),
                            c.sync_replicas,
                            c.node_token
                        ),
                    )?;
                    cluster.spawn(&name, None, &["agent", "--config", &cfg.to_string_lossy()])?;
                }
                Backend::RedisResp => {
                    // Started as Redis Sentinel users run them: node1 the master, the others
                    // its replicas; the sentinels rewrite each config as roles change.
                    let master = (i > 0).then_some(c.base_port);
                    let conf = redis_conf(&dir, &name, port, master)?;
                    cluster.spawn(&name, Some(&c.redis_server), &[&conf.to_string_lossy()])?;
                }
            }
            let admin = match c.backend {
                Backend::RedisResp => String::new(),
                _ => format!(", admin = \"127.0.0.1:{admin}\""),
            };
            node_list.push(format!(
                "{{ name = \"{name}\", data = \"127.0.0.1:{port}\"{admin} }}"
            ));
        }
        let driver = match c.backend {
            Backend::RedisResp => "driver = \"resp\"\n",
            _ => "",
        };
        // One `[[groups]]` table per group.
        let per_group = c.per_group() as usize;
        let groups: String = c
            .groups()
            .iter()
            .map(|(g, first)| {
                let nodes = &node_list[*first as usize..*first as usize + per_group];
                format!(
                    "[[groups]]\nname = \"{g}\"\n{driver}down_after = \"{}\"\nsync_replicas = {}\nnodes = [{}]\n",
                    c.down_after,
                    c.sync_replicas,
                    nodes.join(", ")
                )
            })
            .collect();
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
                    "id = {}\ngrpc = \"127.0.0.1:{}\"\nresp = \"127.0.0.1:{}\"\nmetrics = \"127.0.0.1:{}\"\ndir = \"{}\"\ntoken = \"{}\"\nnode_token = \"{}\"\npeers = [{}]\n[raft]\ntick = \"{}ms\"\nelection_ticks = 6\n{groups}",
                    i + 1,
                    c.grpc_base_port + i,
                    c.resp_base_port + i,
                    c.metrics_base_port + c.node_count() + i,
                    dir.join(&name).display(),
                    c.token,
                    c.node_token,
                    peers.join(", "),
                    c.raft_tick().as_millis(),
                ),
            )?;
            cluster.spawn(
                &name,
                None,
                &["sentinel", "--config", &cfg.to_string_lossy()],
            )?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, name: &str, program: Option<&str>, args: &[&str]) -> anyhow::Result<()> {
        let mut p = Proc {
            name: name.to_string(),
            program: program.map(str::to_string),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: self.dir.join(format!("{name}.log")),
            child: None,
            started: Instant::now(),
            restart_at: None,
            backoff: BACKOFF_MIN,
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

    /// Whether a fault meant for `name` acts on the process of that name: not for a node of
    /// the `redis-server` backend, whose process is the agent while the server is its child
    /// (found by its port instead).
    pub fn signals_by_name(&self, name: &str) -> bool {
        self.config.backend != Backend::RedisServer || !name.starts_with("node")
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
            p.started = Instant::now();
            p.restart_at = None;
        }
        Ok(())
    }

    /// One supervision pass: reaps children that exited and, with `restart`, starts them again
    /// once their back-off has passed (doubling it, up to [`BACKOFF_MAX`], for a child that
    /// exits within [`STABLE`] of its start). Returns what happened, one line each.
    pub fn supervise(&mut self, restart: bool) -> Vec<String> {
        let mut out = Vec::new();
        let now = Instant::now();
        for p in &mut self.procs {
            if let Some(c) = p.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                p.child = None;
                if p.started.elapsed() >= STABLE {
                    p.backoff = BACKOFF_MIN;
                }
                let next = if restart {
                    p.restart_at = Some(now + p.backoff);
                    format!("restarting it in {}", humantime::format_duration(p.backoff))
                } else {
                    "left down (--no-restart)".to_string()
                };
                out.push(format!(
                    "{} exited ({status}); {next}; log: {}",
                    p.name,
                    p.log.display()
                ));
            }
            if p.child.is_none() && p.restart_at.is_some_and(|t| now >= t) {
                p.restart_at = None;
                match launch(p) {
                    Ok(c) => {
                        out.push(format!("{} restarted (pid {})", p.name, c.id()));
                        p.child = Some(c);
                        p.started = now;
                        p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
                    }
                    Err(e) => {
                        p.restart_at = Some(now + p.backoff);
                        out.push(format!("{} not restarted: {e:#}", p.name));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGTERM, repeated every second: a stock redis-server ignores one that arrives while
        // it writes its initial append-only file (right after a replica's full sync). Longer in
        // all than an agent gives its server (10 s), so a server is never left behind.
        let deadline = Instant::now() + STOP_WAIT;
        let mut next_term = Instant::now();
        loop {
            let now = Instant::now();
            let term = now >= next_term;
            let mut running = false;
            for c in self.procs.iter_mut().filter_map(|p| p.child.as_mut()) {
                // Exited, or not ours to wait for (ECHILD): never signalled again.
                if !matches!(c.try_wait(), Ok(None)) {
                    continue;
                }
                running = true;
                if term {
                    // SAFETY: kill(2) on the PID of a child we own that `try_wait` has just
                    // found unreaped, so its PID cannot have been reused.
                    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                }
            }
            if !running || now >= deadline {
                break;
            }
            if term {
                next_term = now + Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &mut self.procs {
            let Some(c) = p.child.as_mut() else { continue };
            if matches!(c.try_wait(), Ok(None)) {
                eprintln!(
                    "{} did not stop within {STOP_WAIT:?} of SIGTERM; killing it",
                    p.name
                );
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Writes `<dir>/<name>.conf` for a stock server on `port` (append-only file in `<dir>/<name>`,
/// a replica of `replicaof` if set) and returns its path. A config file lets the sentinels'
/// `CONFIG REWRITE` keep a role across restarts.
fn redis_conf(
    dir: &Path,
    name: &str,
    port: u16,
    replicaof: Option<u16>,
) -> anyhow::Result<PathBuf> {
    let conf = dir.join(format!("{name}.conf"));
    if conf.exists() {
        // Rewritten by the sentinels since: it holds the node's current role.
        return Ok(conf);
    }
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\ndir \"{}\"\nappendonly yes\nsave \"\"\nrepl-diskless-sync-delay 0\n",
        dir.join(name).display()
    );
    if let Some(m) = replicaof {
        text.push_str(&format!("replicaof 127.0.0.1 {m}\n"));
    }
    std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
    Ok(conf)
}

fn launch(p: &Proc) -> anyhow::Result<Child> {
    let exe = match &p.program {
        Some(program) => PathBuf::from(program),
        None => std::env::current_exe().context("cannot find the vigil binary")?,
    };
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

/// `vigil up` flags.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// TOML config file in config/local-cluster.toml's format (default: that file, built in).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (default: the config's `dir`, else ~/.local/share/vigil/local-cluster).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Asynchronous replication (the default is synchronous: a write is acknowledged once a
    /// replica has it).
    #[arg(long = "async")]
    pub async_replication: bool,
    /// Leave a process that exits down instead of restarting it.
    #[arg(long)]
    pub no_restart: bool,
    /// What the storage nodes are: `vigil` nodes, stock `redis-server`s owned by `vigil agent`s,
    /// or stock `redis-server`s managed over RESP (default: the config's `backend`).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Run N groups of three nodes sharing the hash slots as one sharded cluster (Redis
    /// Cluster protocol) instead of one group (default: the config's `shards`, 0).
    #[arg(long)]
    pub shards: Option<u16>,
}

/// Creates the sharded cluster once the sentinels have the groups (they load them from their
/// configs as they start), waiting up to a minute; a cluster left by an earlier run in the
/// same directory is kept.
pub async fn create_cluster(c: &LocalCluster) -> anyhow::Result<()> {
    let client = crate::ctl::client::lazy_client(
        &format!("127.0.0.1:{}", c.grpc_base_port),
        &c.token,
        Duration::from_secs(5),
    )?;
    let req = vigil_proto::sentinel::CreateClusterRequest {
        name: c.cluster.clone(),
        groups: c.groups().into_iter().map(|(g, _)| g).collect(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.clone().create_cluster(req.clone()).await {
            Ok(_) => return Ok(()),
            Err(st) if st.message().contains("already exists") => return Ok(()),
            Err(st) if Instant::now() > deadline => anyhow::bail!(
                "could not create the sharded cluster {:?} within a minute: {}",
                c.cluster,
                st.message()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Starts the cluster, supervises it and prints its events until SIGTERM or Ctrl-C, then stops
/// it.
pub fn run(opts: UpArgs) -> anyhow::Result<()> {
    let mut c = match &opts.config {
        Some(path) => LocalCluster::load(path)?,
        None => LocalCluster::builtin()?,
    };
    if let Some(d) = &opts.dir {
        c.dir = d.clone();
    }
    if opts.async_replication {
        c.sync_replicas = 0;
    }
    if let Some(b) = opts.backend {
        c.backend = b;
    }
    if let Some(n) = opts.shards {
        c.shards = n;
    }
    c.check_shards("the command line")?;
    let mut cluster = Cluster::start(&c)?;
    let mode = match c.sync_replicas {
        0 => "asynchronous replication".to_string(),
        n => {
            format!("synchronous replication: a write is acknowledged once {n} replica(s) have it")
        }
    };
    let what = if c.shards == 0 {
        format!("group {:?} on 3 nodes", c.group)
    } else {
        format!(
            "sharded cluster {:?}: {} groups (shard1..shard{}) of 3 nodes",
            c.cluster, c.shards, c.shards
        )
    };
    println!(
        "vigil up: {what} ({}), 3 sentinels, {mode}\n  data and logs in {}",
        match c.backend {
            Backend::Vigil => "vigil node",
            Backend::RedisServer => "redis-server, each owned by a vigil agent",
            Backend::RedisResp => "redis-server, managed over RESP",
        },
        cluster.dir.display()
    );
    for i in 0..c.node_count() {
        let name = format!("node{}", i + 1);
        let pid = cluster.pid(&name).unwrap_or(0);
        let how = match c.backend {
            Backend::Vigil => format!(
                "admin 127.0.0.1:{}, metrics http://127.0.0.1:{}/metrics, pid {pid}",
                c.admin_base_port + i,
                c.metrics_base_port + i
            ),
            Backend::RedisServer => format!(
                "agent admin 127.0.0.1:{}, metrics http://127.0.0.1:{}/metrics, agent pid {pid}",
                c.admin_base_port + i,
                c.metrics_base_port + i
            ),
            Backend::RedisResp => format!("redis-server pid {pid}"),
        };
        println!(
            "  {name}      redis://127.0.0.1:{}  ({how})",
            c.base_port + i
        );
    }
    for i in 0..3u16 {
        let name = format!("sentinel{}", i + 1);
        println!(
            "  {name}  redis-sentinel://127.0.0.1:{}  (grpc 127.0.0.1:{}, metrics http://127.0.0.1:{}/metrics, pid {})",
            c.resp_base_port + i,
            c.grpc_base_port + i,
            c.metrics_base_port + c.node_count() + i,
            cluster.pid(&name).unwrap_or(0)
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if c.shards > 0 {
        runtime.block_on(create_cluster(&c))?;
        println!(
            "Cluster {:?} created: every node answers the Redis Cluster protocol, e.g.\n\
             redis-cli -c -p {} SET foo bar (or any cluster client seeded with 127.0.0.1:{}).",
            c.cluster, c.base_port, c.base_port
        );
    }
    println!(
        "The sentinels assign the master within a few seconds. Point a Redis Sentinel client at\n\
         them with the group name {:?}, e.g. redis-cli -p {} SENTINEL get-master-addr-by-name {}\n\
         (or gRPC SentinelService.GetMaster, token in the config). Kill the master to watch a\n\
         failover here; {}. Ctrl-C stops everything.",
        c.group,
        c.resp_base_port,
        c.group,
        if opts.no_restart {
            "processes that exit are left down"
        } else {
            "processes that exit are restarted"
        }
    );
    println!("ready");
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let clients = (0..3u16)
            .map(|i| {
                crate::ctl::client::lazy_client(
                    &format!("127.0.0.1:{}", c.grpc_base_port + i),
                    &c.token,
                    Duration::from_secs(5),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut events = crate::ctl::client::follow_events(&clients);
        // Committed changes arrive from every sentinel: print each once.
        let mut printed = HashSet::new();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return anyhow::Ok(()),
                _ = term.recv() => return anyhow::Ok(()),
                Some((from, ev)) = events.recv() => {
                    if ev.index > 0 && !printed.insert((ev.index, ev.kind.clone(), ev.node.clone())) {
                        continue;
                    }
                    let by = if ev.index > 0 {
                        String::new()
                    } else {
                        format!("sentinel{} ", from + 1)
                    };
                    println!("{by}{}", crate::ctl::render::event_line(&ev));
                }
                _ = tick.tick() => {
                    for line in cluster.supervise(!opts.no_restart) {
                        println!("vigil up: {line}");
                    }
                }
            }
        }
    });
    // First the event watchers and their connections: a sentinel's graceful shutdown waits
    // for its open streams to close.
    drop(runtime);
    println!("vigil up: stopping");
    drop(cluster);
    result
}

#[cfg(test)]
mod tests;
