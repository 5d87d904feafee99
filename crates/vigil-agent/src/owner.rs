//! Owning the server process (`exec`): the agent starts it, restarts it when it exits, and
//! stops it when the agent stops. The server dies with the agent however the agent dies: it
//! is started with `PR_SET_PDEATHSIG` = SIGKILL from a thread that lives as long as the
//! agent (the signal follows the thread that forked, not the process), so a dead agent never
//! leaves an unfenced master behind.
//!
//! The server is started without a TCP port (`--port 0`) and with a private Unix socket in
//! the agent's directory: the agent pauses its writes over that socket, and only then opens
//! the data port (`CONFIG SET port`), so no client can write to a server the sentinels have
//! not given a role (a master restarted empty never wipes its replicas).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Restart back-off: from the first, doubling to the last; reset once a server ran this long.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));
const STABLE: Duration = Duration::from_secs(10);
/// Stopping: SIGTERM again this often, since Redis drops a SIGTERM it cannot act on ("Writing
/// initial AOF, can't exit", as a replica does right after a full sync) and runs on...
const TERM_AGAIN: Duration = Duration::from_secs(1);
/// ...and SIGKILL after this long: the agent exits only once its server has (Redis' own wait
/// for lagging replicas, `shutdown-timeout`, is 10 s by default).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the owner looks at its server.
const POLL: Duration = Duration::from_millis(20);

/// The socket the agent reaches a server it started through, before its port opens.
pub fn boot_socket(dir: &Path) -> PathBuf {
    dir.join("server.sock")
}

/// What happened to the owned server.
#[derive(Debug)]
pub enum Lifecycle {
    /// Started with this pid; reachable on the boot socket once it has loaded.
    Started(u32),
    /// Exited (the description says how); it is restarted after a back-off.
    Exited(String),
    /// Could not be started at all (it is retried after a back-off).
    Failed(String),
}

/// The owned server: dropping it stops the server.
pub struct Owner {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicI32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Owner {
    /// Starts `exec` (with the boot arguments appended) and keeps it running; events arrive
    /// on the returned channel.
    pub fn start(exec: Vec<String>, dir: &Path) -> (Owner, mpsc::UnboundedReceiver<Lifecycle>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicI32::new(0));
        let socket = boot_socket(dir);
        let (s, p) = (stop.clone(), pid.clone());
        let thread = std::thread::Builder::new()
            .name("vigil-agent-owner".into())
            .spawn(move || supervise(exec, socket, s, p, tx))
            .expect("spawning a thread");
        (
            Owner {
                stop,
                pid,
                thread: Some(thread),
            },
            rx,
        )
    }

    /// The server's pid (0 while none runs), kept current.
    pub fn pid(&self) -> Arc<AtomicI32> {
        self.pid.clone()
    }
}

impl Drop for Owner {
    /// Stops the server and returns once it exited ([`wait_child`]).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for `child` to exit and reaps it. Once `stop` is set it is stopped: SIGTERM, repeated
/// every [`TERM_AGAIN`], then SIGKILL at [`STOP_GRACE`]. Only this thread reaps the child, so
/// its pid cannot have been reused when it is signalled.
fn wait_child(child: &mut Child, stop: &AtomicBool) -> std::io::Result<ExitStatus> {
    let mut stopping: Option<(Instant, Instant)> = None; // (since, last SIGTERM)
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            match stopping {
                Some((since, _)) if now - since >= STOP_GRACE => {
                    child.kill()?;
                    return child.wait();
                }
                Some((_, last)) if now - last < TERM_AGAIN => {}
                _ => {
                    // SAFETY: our own child, not yet reaped (see above).
                    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                    stopping = Some((stopping.map_or(now, |(since, _)| since), now));
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

fn supervise(
    exec: Vec<String>,
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicI32>,
    tx: mpsc::UnboundedSender<Lifecycle>,
) {
    let mut backoff = BACKOFF.0;
    while !stop.load(Ordering::SeqCst) {
        let _ = std::fs::remove_file(&socket);
        let started = Instant::now();
        match spawn(&exec, &socket) {
            Ok(mut child) => {
                pid.store(child.id() as i32, Ordering::SeqCst);
                let _ = tx.send(Lifecycle::Started(child.id()));
                let how = match wait_child(&mut child, &stop) {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                pid.store(0, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let _ = tx.send(Lifecycle::Exited(how));
            }
            Err(e) => {
                let _ = tx.send(Lifecycle::Failed(format!("{}: {e}", exec[0])));
            }
        }
        if started.elapsed() >= STABLE {
            backoff = BACKOFF.0;
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

fn spawn(exec: &[String], socket: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&exec[0]);
    cmd.args(&exec[1..])
        .arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(socket)
        .arg("--unixsocketperm")
        .arg("700");
    // SAFETY: only async-signal-safe calls between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The agent died between fork and prctl: do not outlive it.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}
