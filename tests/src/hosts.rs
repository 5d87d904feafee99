//! A private `/etc/hosts` for the processes of one test: names resolve as a DNS name would
//! for a real deployment, and a name can move to another address between restarts, without
//! touching the machine's own file (which every other suite reads at the same time).
//!
//! Each process runs in a mount namespace of its own (`unshare -m`) with the test's file
//! bind-mounted over `/etc/hosts`; it shares the network (loopback) with everyone. The file
//! is rewritten in place, so a bind-mounted copy sees every change.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::vigil_bin;

/// A hosts file: name → IPv4 address.
pub struct Hosts {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

impl Hosts {
    /// A hosts file at `path` with `localhost` and `entries`.
    pub fn new(path: &Path, entries: &[(&str, &str)]) -> Hosts {
        let mut h = Hosts {
            path: path.to_path_buf(),
            entries: entries
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
        };
        h.write();
        h
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points `name` at `addr` (as a DNS record changed behind a pod that came back).
    pub fn set(&mut self, name: &str, addr: &str) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = addr.to_string(),
            None => self.entries.push((name.to_string(), addr.to_string())),
        }
        self.write();
    }

    fn write(&mut self) {
        let mut text = String::from("127.0.0.1 localhost\n");
        for (n, a) in &self.entries {
            text.push_str(&format!("{a} {n}\n"));
        }
        // In place, in one write: a bind mount follows the inode, not the name.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .expect("write the test's hosts file");
        f.write_all(text.as_bytes()).expect("write the hosts file");
    }
}

/// `vigil` (arguments to follow) in a mount namespace where `hosts` is `/etc/hosts`. The
/// process keeps the PID of the spawned child (`unshare` and `sh` exec into it), so signals
/// reach vigil itself.
pub fn command(hosts: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
    ])
    .arg(hosts)
    .arg(vigil_bin());
    c
}
