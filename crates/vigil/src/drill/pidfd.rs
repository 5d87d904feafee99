//! Signals that reach the process the drill looked up, never another one that reused its PID.
//!
//! The drill finds attached processes by reading `/proc`, and a PID read there can be reused
//! by an unrelated process before the signal is sent. A [`Pidfd`] (`pidfd_open(2)`, Linux
//! 5.3 or later) refers to one process for good: once that process has exited, signals
//! through it fail with `ESRCH` instead of reaching whoever holds the number next. Whoever
//! opens one from a PID read from `/proc` must check, after opening, that the PID still
//! names the process they meant (see `faults::process_listening_on`); a PID of a child that
//! was not reaped yet needs no check.

use std::fmt;

/// A handle on one process, for signals that cannot reach another.
pub struct Pidfd {
    pid: u32,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl fmt::Debug for Pidfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {}", self.pid)
    }
}

impl Pidfd {
    /// The process now holding `pid`.
    #[cfg(target_os = "linux")]
    pub fn open(pid: u32) -> anyhow::Result<Pidfd> {
        use std::os::fd::FromRawFd;
        let raw =
            libc::pid_t::try_from(pid).map_err(|_| anyhow::anyhow!("{pid} is not a process id"))?;
        // SAFETY: pidfd_open(2) takes a PID and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0 as libc::c_uint) };
        if fd < 0 {
            return Err(unsupported_or(
                std::io::Error::last_os_error(),
                pid,
                "pidfd_open",
            ));
        }
        // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        Ok(Pidfd { pid, fd })
    }

    /// Not Linux: there is no pidfd, and the drill refuses to signal a bare PID.
    #[cfg(not(target_os = "linux"))]
    pub fn open(pid: u32) -> anyhow::Result<Pidfd> {
        anyhow::bail!(
            "cannot signal process {pid} safely: the drill needs Linux 5.3 or later (pidfds)"
        )
    }

    /// Another handle on the same process.
    #[cfg(target_os = "linux")]
    pub fn try_clone(&self) -> anyhow::Result<Pidfd> {
        Ok(Pidfd {
            pid: self.pid,
            fd: self.fd.try_clone()?,
        })
    }

    /// Not Linux: never opened.
    #[cfg(not(target_os = "linux"))]
    pub fn try_clone(&self) -> anyhow::Result<Pidfd> {
        anyhow::bail!("cannot signal process {} without pidfds", self.pid)
    }

    /// The PID it was opened for (for messages).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `sig` to the process; fails (`ESRCH`) if it has exited, even if its PID is in use
    /// again.
    #[cfg(target_os = "linux")]
    pub fn signal(&self, sig: i32) -> anyhow::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal(2) on a descriptor we own; no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
        if r != 0 {
            return Err(unsupported_or(
                std::io::Error::last_os_error(),
                self.pid,
                "pidfd_send_signal",
            ));
        }
        Ok(())
    }

    /// Not Linux: never opened.
    #[cfg(not(target_os = "linux"))]
    pub fn signal(&self, _sig: i32) -> anyhow::Result<()> {
        anyhow::bail!("cannot signal process {} without pidfds", self.pid)
    }
}

/// A failed pidfd call as a sentence: a kernel without pidfds is named as such.
#[cfg(target_os = "linux")]
fn unsupported_or(e: std::io::Error, pid: u32, call: &str) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENOSYS) {
        anyhow::anyhow!(
            "cannot signal process {pid} safely: this kernel has no {call} (pidfds need Linux \
             5.3 or later), and the drill does not signal a bare PID that may have been reused"
        )
    } else {
        anyhow::anyhow!("cannot signal process {pid}: {call}: {e}")
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn signals_reach_the_process_and_not_its_successor() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let p = Pidfd::open(child.id()).unwrap();
        assert_eq!(p.pid(), child.id());
        // Signal 0 checks that the process exists without signalling it.
        p.signal(0).unwrap();
        p.signal(libc::SIGKILL).unwrap();
        child.wait().unwrap();
        // Reaped: its PID may name another process now, the pidfd still names the dead one.
        let e = p.signal(libc::SIGKILL).unwrap_err();
        assert!(e.to_string().contains("No such process"), "{e}");
    }

    #[test]
    fn a_missing_process_cannot_be_opened() {
        // Above the kernel's PID limit (4194304 at most): never a process.
        assert!(Pidfd::open(999_999_999).is_err());
    }
}
