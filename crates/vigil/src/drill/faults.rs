//! The faults a drill injects and heals: processes killed (SIGKILL) or paused (SIGSTOP), a
//! master cut off by packet filters, a switchover asked for.
//!
//! A process is signalled only through a [`Pidfd`] opened while its PID was known to be its
//! own (a child not yet reaped, or a listener checked again after the pidfd was opened), so
//! a PID reused by another process is never signalled.

use std::process::Command;

use anyhow::{Context, bail};

use super::pidfd::Pidfd;
use crate::up::Cluster;

/// What a round does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL the master; restart it after the failover (it comes back as a replica).
    KillMaster,
    /// SIGSTOP the master past `down_after`; SIGCONT it after the failover.
    PauseMaster,
    /// Drop every packet to and from the master's ports (iptables; root); heal after the
    /// failover.
    PartitionMaster,
    /// SIGKILL the sentinels' Raft leader; the master must stay, writes must go on.
    KillSentinelLeader,
    /// Manual failover (switchover) through the sentinels' API.
    Switchover,
    /// Sharded (`--shards`): move slots from one shard to the next under writes.
    MigrateUnderLoad,
    /// Sharded (`--shards`): move slots and SIGKILL the target's master (odd rounds) or the
    /// source's (even rounds) as the migration starts; it must complete or roll back.
    KillDuringMigration,
}

impl Scenario {
    /// Whether the round should end with a new master.
    pub fn fails_over(self) -> bool {
        self != Scenario::KillSentinelLeader
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::KillMaster => "kill-master",
            Scenario::PauseMaster => "pause-master",
            Scenario::PartitionMaster => "partition-master",
            Scenario::KillSentinelLeader => "kill-sentinel-leader",
            Scenario::Switchover => "switchover",
            Scenario::MigrateUnderLoad => "migrate-under-load",
            Scenario::KillDuringMigration => "kill-during-migration",
        }
    }

    /// Whether it runs on a sharded cluster (`--shards`); `None`: on either.
    pub fn sharded(self) -> Option<bool> {
        match self {
            Scenario::MigrateUnderLoad | Scenario::KillDuringMigration => Some(true),
            Scenario::KillSentinelLeader | Scenario::Switchover => Some(false),
            Scenario::KillMaster | Scenario::PauseMaster | Scenario::PartitionMaster => None,
        }
    }
}

/// The processes a drill can act on.
pub enum Processes {
    /// A cluster the drill started: processes by name (`node1`, `sentinel2`, ...).
    Local(Box<Cluster>),
    /// A running cluster: processes found by the port they listen on (this machine only);
    /// killed ones must be restarted by their supervisor.
    Attached,
}

/// A process the drill has acted on, to heal.
#[derive(Debug)]
pub enum Target {
    /// A process of a local cluster.
    Named(String),
    /// A process found by its listening port, held by a pidfd so that a signal never reaches
    /// a process that took over its PID.
    Process(Pidfd),
}

impl Processes {
    /// The process listening on `port` (a node's data port, a sentinel's gRPC port), by its
    /// name in a local cluster.
    pub fn find(&self, name: &str, port: u16) -> anyhow::Result<Target> {
        match self {
            Processes::Local(c) if c.pid(name).is_some() && c.signals_by_name(name) => {
                Ok(Target::Named(name.to_string()))
            }
            _ => process_listening_on(port)
                .map(Target::Process)
                .with_context(|| {
                    format!(
                        "{name} (port {port}) is not a process on this machine the drill can signal"
                    )
                }),
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, t: &Target) -> anyhow::Result<()> {
        match (self, t) {
            (Processes::Local(c), Target::Named(n)) => c.kill(n),
            (_, Target::Process(p)) => p.signal(libc::SIGKILL),
            (_, t) => bail!("no process for {t:?}"),
        }
    }

    /// Starts a killed process again; an attached one is left to its supervisor.
    pub fn restart(&mut self, t: &Target) -> anyhow::Result<()> {
        match (self, t) {
            (Processes::Local(c), Target::Named(n)) => c.restart(n),
            _ => Ok(()),
        }
    }

    /// SIGSTOPs a process; it gets SIGCONT when the returned guard drops (also when the
    /// drill fails midway, so no node is left stopped).
    pub fn pause(&self, t: &Target) -> anyhow::Result<Stopped> {
        let process = match (self, t) {
            // A child of the drill that was not reaped: its PID is still its own.
            (Processes::Local(c), Target::Named(n)) => Pidfd::open(
                c.pid(n)
                    .ok_or_else(|| anyhow::anyhow!("{n} is not running"))?,
            )?,
            (_, Target::Process(p)) => p.try_clone()?,
            (_, t) => bail!("no process for {t:?}"),
        };
        process.signal(libc::SIGSTOP)?;
        Ok(Stopped(process))
    }
}

/// A process stopped by [`Processes::pause`], continued on drop.
pub struct Stopped(Pidfd);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Err(e) = self.0.signal(libc::SIGCONT) {
            eprintln!(
                "vigil drill: could not continue process {}: {e:#}",
                self.0.pid()
            );
        }
    }
}

/// The inodes (`socket:[N]`) of the TCP sockets listening on `port`, from /proc/net (Linux).
fn listening_sockets(port: u16) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT (the kernel's hex, not a host:port address);
            // state 0A is LISTEN; inode is field 9.
            let listening = f.get(3) == Some(&"0A");
            let on_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listening
                && on_port
                && let Some(inode) = f.get(9)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    inodes
}

/// Whether process `pid` holds one of the sockets `inodes`.
fn holds(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|link| inodes.iter().any(|i| link.as_os_str() == i.as_str()))
    })
}

/// The process with a listening TCP socket on `port`, from /proc (Linux). Only a number: to
/// signal it, use [`process_listening_on`].
pub fn pid_listening_on(port: u16) -> anyhow::Result<u32> {
    let inodes = listening_sockets(port);
    if inodes.is_empty() {
        bail!("nothing listens on port {port} here");
    }
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if holds(pid, &inodes) {
            return Ok(pid);
        }
    }
    bail!("the process listening on port {port} is not visible (run the drill as its user or root)")
}

/// The process listening on `port`, held by a pidfd. The pidfd is opened after the PID was
/// read, so the PID is checked again once it is open: if the listener exited in between and
/// its PID went to another process, that process does not hold the socket and is refused.
pub fn process_listening_on(port: u16) -> anyhow::Result<Pidfd> {
    let pid = pid_listening_on(port)?;
    let process = Pidfd::open(pid)?;
    if !holds(pid, &listening_sockets(port)) {
        bail!(
            "the process listening on port {port} (PID {pid}) exited while the drill looked it up"
        );
    }
    Ok(process)
}

/// Packet filter rules that cut a master off (every packet to or from its ports dropped), removed
/// when dropped.
pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    /// Cuts off `ports` (needs root and iptables).
    pub fn cut(ports: &[u16]) -> anyhow::Result<Partition> {
        let mut p = Partition { rules: Vec::new() };
        for port in ports {
            for dir in ["--dport", "--sport"] {
                let rule: Vec<String> =
                    ["INPUT", "-p", "tcp", dir, &port.to_string(), "-j", "DROP"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                iptables("-I", &rule)?;
                p.rules.push(rule);
            }
        }
        Ok(p)
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for r in &self.rules {
            if let Err(e) = iptables("-D", r) {
                eprintln!("vigil drill: could not remove the iptables rule {r:?}: {e:#}");
            }
        }
    }
}

fn iptables(op: &str, rule: &[String]) -> anyhow::Result<()> {
    let out = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .output()
        .context("partition-master needs iptables (apt-get install iptables) and root")?;
    if !out.status.success() {
        bail!(
            "iptables {op} {} failed (partition-master needs root): {}",
            rule.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(super::pid_listening_on(port).unwrap(), std::process::id());
        drop(l);
        assert!(super::pid_listening_on(port).is_err());
    }

    #[test]
    fn holds_its_own_listener_by_pidfd() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let p = super::process_listening_on(port).unwrap();
        assert_eq!(p.pid(), std::process::id());
        // Signal 0: the pidfd names a live process (this one).
        p.signal(0).unwrap();
        drop(l);
        assert!(super::process_listening_on(port).is_err());
    }
}
