//! The forked snapshot child (Redis' BGSAVE model): the fork copies the dataset copy-on-write
//! in a few milliseconds, so the store lock is held only for the fork instead of the whole
//! encoding.
//!
//! Compiled only where the allocator is known to be fork-safe: glibc Linux (glibc's malloc
//! takes its arena locks around `fork` and resets them in the child); elsewhere snapshots
//! are encoded in place. The gate is `cfg(all(target_os = "linux", target_env = "gnu"))`,
//! written where the module is declared and where the snapshot code uses it.
//!
//! The invariant: the child never returns into the parent's code — a panic
//! is caught and the child `_exit`s, so it can neither unwind into the async runtime it
//! inherited nor run the parent's destructors.

/// Size of the pieces the child's bytes are read in: the parent never holds them whole.
const PIECE: usize = 1 << 20;

/// A snapshot being encoded by a forked child process: the fork copies the dataset
/// copy-on-write in a few milliseconds, so the store lock is held only for the fork instead of
/// the whole encoding (Redis' BGSAVE model).
pub struct Forked {
    pid: libc::pid_t,
    pipe: std::fs::File,
    /// How long `fork` took: the parent's pause, as it copies its page tables.
    pub took: std::time::Duration,
}

/// Forks a child that encodes `store` and writes the bytes to a pipe, then exits. Call with
/// the store lock held, so the child sees one instant. The child only encodes, writes and
/// `_exit`s: it takes no lock and logs nothing (other threads' locks are not its own).
pub(crate) fn fork_with(produce: impl FnOnce() -> Vec<u8>) -> std::io::Result<Forked> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let started = std::time::Instant::now();
    // SAFETY: the child runs only `child_encode`, which uses memory it inherited, the
    // allocator (glibc makes malloc safe across fork) and raw write/_exit; it never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: closing the descriptors pipe2 just gave us.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Err(e);
    }
    if pid == 0 {
        child(produce, fds[1]);
    }
    // SAFETY: fds[1] is ours to close; fds[0] is a valid descriptor we now own.
    unsafe { libc::close(fds[1]) };
    let took = started.elapsed();
    Ok(Forked {
        pid,
        pipe: unsafe { std::fs::File::from_raw_fd(fds[0]) },
        took,
    })
}

fn child(produce: impl FnOnce() -> Vec<u8>, fd: i32) -> ! {
    // SAFETY: a plain syscall; the child dies with the parent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The default panic hook writes to stderr under its lock, which a logging thread of the
    // parent may have held at the fork: the child would hang instead of exiting. Silence it.
    std::panic::set_hook(Box::new(|_| {}));
    // A panic (a bug in encoding) must not unwind into the runtime the child inherited: it
    // ends here, and the parent sees a failed child and keeps its logs.
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let bytes = produce();
        let len = (bytes.len() as u64).to_le_bytes();
        // SAFETY: fd is the pipe's write end, owned by this child.
        unsafe { write_fd(fd, &len) && write_fd(fd, &bytes) }
    }))
    .unwrap_or(false);
    // SAFETY: exits without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// Writes all of `buf` to a raw descriptor.
unsafe fn write_fd(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

impl Drop for Forked {
    fn drop(&mut self) {
        if self.pid > 0 {
            // Abandoned before collection: stop and reap the child.
            // SAFETY: signalling and waiting for our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

impl Forked {
    /// Streams the encoded snapshot: `on_len` with its size, then `on_chunk` with each piece;
    /// reaps the child. Blocking: call off the async runtime.
    pub(super) fn stream(
        mut self,
        on_len: impl FnOnce(u64) -> std::io::Result<()>,
        mut on_chunk: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        use std::io::Read;
        let copy = || -> std::io::Result<()> {
            let mut len = [0u8; 8];
            self.pipe.read_exact(&mut len)?;
            let mut left = u64::from_le_bytes(len);
            on_len(left)?;
            let mut buf = vec![0u8; PIECE];
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = self.pipe.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::Error::other("snapshot child stopped early"));
                }
                on_chunk(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        };
        let copied = copy();
        if copied.is_err() {
            // SAFETY: signalling our own child, which may still be writing.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        self.pid = 0;
        copied?;
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(std::io::Error::other(format!(
                "snapshot child failed (wait status {status})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(f: Forked) -> std::io::Result<Vec<u8>> {
        crate::persist::snapshot::Pending::Forked(f).bytes()
    }

    #[test]
    fn the_child_hands_over_its_bytes() {
        let data: Vec<u8> = (0..3 * PIECE + 7).map(|i| i as u8).collect();
        let expect = data.clone();
        assert_eq!(collect(fork_with(move || data).unwrap()).unwrap(), expect);
    }

    #[test]
    fn a_panicking_child_exits_and_fails_the_snapshot() {
        let got = collect(fork_with(|| panic!("bug in encoding")).unwrap());
        assert!(got.is_err(), "{got:?}");
    }
}
