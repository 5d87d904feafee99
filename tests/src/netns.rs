//! Real network partitions: every member (a node, a sentinel, a group of clients) gets its own
//! network namespace with one veth link into a hub namespace holding two bridges. All links
//! start on bridge `a`; [`Net::cut`] moves some to bridge `b`, so the two sides can no longer
//! reach each other (packets are dropped, connections hang, as across a real partition), and
//! [`Net::heal`] moves them back. Needs root and iproute2 (`ip`); tests/run.sh checks both.
//!
//! The namespaces are private to one `Net` (named after the process id and a counter), so
//! tests run in parallel, each with the same addresses `10.77.0.<i>` and fixed ports.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip args`, panicking with its error output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's `ip` is required for the partition tests (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A set of namespaces joined by a switchable hub.
pub struct Net {
    prefix: String,
    members: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    /// One namespace per member, all connected (bridge `a`).
    pub fn new(members: &[&str]) -> Net {
        let prefix = format!(
            "vg{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Net {
            prefix,
            members: Vec::new(),
            children: Vec::new(),
        };
        let hub = net.ns("hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        for br in ["bra", "brb"] {
            ip(&["-n", &hub, "link", "add", br, "type", "bridge"]);
            ip(&["-n", &hub, "link", "set", br, "up"]);
        }
        for (i, m) in members.iter().enumerate() {
            let ns = net.ns(m);
            ip(&["netns", "add", &ns]);
            net.members.push(m.to_string());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("p{i}");
            ip(&[
                "link", "add", &port, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Net::addr(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &hub, "link", "set", &port, "master", "bra"]);
            ip(&["-n", &hub, "link", "set", &port, "up"]);
        }
        net
    }

    fn ns(&self, member: &str) -> String {
        format!("{}-{member}", self.prefix)
    }

    fn index(&self, member: &str) -> usize {
        self.members
            .iter()
            .position(|m| m == member)
            .unwrap_or_else(|| panic!("{member} is not a member"))
    }

    fn addr(i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// The IP address of `member`.
    pub fn ip(&self, member: &str) -> String {
        Net::addr(self.index(member))
    }

    /// Cuts `side` off from everyone else.
    pub fn cut(&self, side: &[&str]) {
        for m in side {
            let port = format!("p{}", self.index(m));
            ip(&["-n", &self.ns("hub"), "link", "set", &port, "master", "brb"]);
        }
    }

    /// Joins everyone again.
    pub fn heal(&self) {
        for i in 0..self.members.len() {
            let port = format!("p{i}");
            ip(&["-n", &self.ns("hub"), "link", "set", &port, "master", "bra"]);
        }
    }

    /// Makes `to` unreachable from `from` only (a blackhole route in `from`'s namespace): an
    /// asymmetric fault, the rest of the network unchanged.
    pub fn blackhole(&self, from: &str, to: &str) {
        let target = format!("{}/32", self.ip(to));
        ip(&["-n", &self.ns(from), "route", "add", "blackhole", &target]);
    }

    /// Starts the `vigil` binary with `args` inside `member`'s namespace, stderr to `log`; the
    /// child is SIGKILLed when the `Net` is dropped. Returns its index for [`Net::kill9`].
    pub fn spawn(&mut self, member: &str, args: &[&str], log: &Path) -> usize {
        let stderr = std::fs::File::create(log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(member)])
            .arg(crate::vigil_bin())
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("ip netns exec");
        self.children.push(child);
        self.children.len() - 1
    }

    /// The namespace file of `member`, for [`enter`] from another thread.
    pub fn ns_path(&self, member: &str) -> String {
        format!("/var/run/netns/{}", self.ns(member))
    }

    /// Runs `f` on a thread inside `member`'s namespace and returns its result.
    pub fn run_in<T: Send + 'static>(
        &self,
        member: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = self.ns_path(member);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

/// Moves the calling thread into the namespace at `path` (see [`Net::ns_path`]): every socket
/// it opens from now on lives there. (Network namespaces are per thread.)
pub fn enter(path: &str) {
    let f = std::fs::File::open(path).expect("netns file");
    // SAFETY: setns(2) on an open namespace file; it affects only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in self.members.iter().map(String::as_str).chain(["hub"]) {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{}-{m}", self.prefix)])
                .status();
        }
    }
}
