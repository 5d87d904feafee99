//! The append-only command log.
//!
//! The log holds exactly the replication stream (the replication feed's bytes): RESP multibulk
//! requests, with `SELECT` when the database changes, queued while the store lock is held, so
//! the log order is exactly the order in which commands changed the data. Every file starts
//! with a `REPLMARK replid offset db` record, so replaying a log also recovers the replication
//! position of the data (a restarted replica resynchronises partially).
//!
//! One writer thread drains the queue and writes it. A client's reply leaves only once its
//! write has been written to the file (handed to the kernel, as Redis does before the replies
//! of an event-loop iteration go out), so a process crash loses no acknowledged write under any
//! `appendfsync` policy; with `always` the reply also waits for the fsync. Writes are group
//! commits: one `write` (and under `always` one fsync) serves every client waiting at that
//! moment. Under `everysec` a second thread fsyncs once a second, so replies never wait for the
//! disk; `no` leaves flushing to the kernel.
//!
//! Files are `appendonly.<generation>.aof`. A compaction rotates to the next generation at the
//! exact point its snapshot was taken.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::config::AppendFsync;
use vigil_base::fs::sync_dir;

mod stats;

/// The log file of a generation.
pub fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("appendonly.{generation}.aof"))
}

/// The generation of a log file name, if it is one.
pub fn log_generation(name: &str) -> Option<u64> {
    name.strip_prefix("appendonly.")?
        .strip_suffix(".aof")?
        .parse()
        .ok()
}

struct Queue {
    /// Pending bytes per generation, oldest first.
    segments: VecDeque<(u64, Vec<u8>)>,
    /// Total bytes ever appended (the sequence number clients wait for).
    seq: u64,
    generation: u64,
    stop: bool,
    /// The writer thread sleeps past the next tick: an append must wake it.
    writer_asleep: bool,
    /// A client waits for the writer thread to write now, not after a tick.
    urgent: bool,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.segments.iter().all(|(_, b)| b.is_empty())
    }
}

/// The open log file. Whoever writes holds it (the writer thread, or under `everysec` and `no`
/// the task of a client waiting for its write), so the queue is drained and written in order.
struct LogFile {
    file: File,
    generation: u64,
}

/// Who writes the queue ([`Inner::write_queued`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// The writer thread: retries a failing write, may wait for the disk.
    Thread,
    /// A client's task: writes only what goes to the page cache at once.
    Task,
    /// A client's task after the writer thread stopped: writes whatever it takes.
    TaskAnyway,
}

/// What [`Inner::write_queued`] did.
#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// Everything queued at the drain is in the file.
    Written,
    /// A write failed; the rest is back in the queue for the writer thread.
    Failed,
    /// Nothing drained: the write may wait for the disk ([`By::Task`]).
    MayStall,
}

/// Shared between the node and the writer thread.
struct Inner {
    queue: Mutex<Queue>,
    cond: Condvar,
    file: Mutex<LogFile>,
    policy: AtomicU8,
    /// Bytes written since the last fsync (or fsync request); changed with the file held.
    dirty: AtomicBool,
    /// A write from a client's task failed: leave the retries to the writer thread.
    failing: AtomicBool,
    /// Everysec fsyncs asked for and not yet finished: a write to the file may wait for one
    /// (on ext4 it does, for the whole fsync under a busy disk), so clients' tasks leave
    /// writing to the writer thread meanwhile, as Redis does not write its AOF while its
    /// background fsync runs. Counted from the request, not from the fsync thread's start: a
    /// write between the two would wait too.
    fsyncs_pending: AtomicUsize,
    /// When the oldest pending fsync was asked for (or began, after the one before it);
    /// changed with `fsyncs_pending` under this lock.
    fsync_since: Mutex<Option<Instant>>,
    /// Writes the writer thread made behind an fsync pending for [`DELAYED_AFTER`] or more
    /// (Redis' `aof_delayed_fsync`: a disk that cannot keep up).
    delayed: AtomicU64,
    /// Tests: a stall added to every write, as a busy disk adds one.
    #[cfg(test)]
    write_stall: Mutex<Duration>,
    /// Highest sequence number written to the file.
    written: watch::Sender<u64>,
    /// Highest sequence number fsynced.
    synced: watch::Sender<u64>,
    /// Size of the current log file in bytes.
    size: AtomicU64,
    /// The last write error, if the latest write failed.
    error: Mutex<Option<String>>,
    dir: PathBuf,
}

/// The append log and its writer thread.
pub struct Aof {
    inner: Arc<Inner>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

const ALWAYS: u8 = 0;
const EVERYSEC: u8 = 1;

fn policy_code(p: AppendFsync) -> u8 {
    match p {
        AppendFsync::Always => ALWAYS,
        AppendFsync::Everysec => EVERYSEC,
        AppendFsync::No => 2,
    }
}

impl Aof {
    /// Opens (creating if needed) the log of `generation` for appending, appends `marker` and
    /// starts the writer.
    pub fn open(
        dir: &Path,
        generation: u64,
        policy: AppendFsync,
        marker: Vec<u8>,
    ) -> std::io::Result<Aof> {
        let path = log_path(dir, generation);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // Always: a node continuing an existing file may start a new history (a restarted
        // master takes a new replication id).
        file.write_all(&marker)?;
        file.sync_data()?;
        sync_dir(dir)?;
        let size = file.metadata()?.len();
        let inner = Arc::new(Inner::new(file, generation, policy_code(policy), size, dir));
        let thread_inner = inner.clone();
        let fsyncer = Fsyncer::start(inner.clone())?;
        let handle = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || writer_loop(thread_inner, fsyncer))?;
        Ok(Aof {
            inner,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Queues stream bytes; returns the sequence number that covers them, which the replies
    /// depending on them wait for ([`Aof::wait`]). Call under the store lock.
    ///
    /// Wakes the writer thread only when it must write (`always`, an empty queue) or would
    /// otherwise sleep past a tick: no thread switch per write.
    pub fn append(&self, encoded: &[u8]) -> u64 {
        let mut q = self.inner.queue.lock();
        let was_idle = q.is_empty();
        q.seq += encoded.len() as u64;
        let generation = q.generation;
        match q.segments.back_mut() {
            Some((g, buf)) if *g == generation => buf.extend_from_slice(encoded),
            _ => q.segments.push_back((generation, encoded.to_vec())),
        }
        let seq = q.seq;
        let wake = was_idle && (self.inner.policy() == ALWAYS || q.writer_asleep);
        if wake {
            q.writer_asleep = false;
        }
        drop(q);
        if wake {
            self.inner.cond.notify_one();
        }
        seq
    }

    /// Starts a new generation, whose file begins with `marker`; everything appended from now
    /// on goes to it. Call under the store lock, at the point the matching snapshot is taken.
    pub fn rotate(&self, generation: u64, marker: Vec<u8>) {
        let mut q = self.inner.queue.lock();
        q.generation = generation;
        q.seq += marker.len() as u64;
        q.segments.push_back((generation, marker));
        drop(q);
        self.inner.cond.notify_one();
    }

    /// Waits until everything up to `seq` is in the file (and fsynced under `always`).
    ///
    /// Under `always` the writer thread writes and fsyncs for every waiting client at once.
    /// Under `everysec` and `no` the waiting task writes, as Redis writes its AOF buffer once
    /// per event-loop iteration before the replies go out: it first lets the other clients
    /// ready in this round of the scheduler queue their writes, then one `write` serves them
    /// all, with no thread switch. A write to the page cache takes microseconds; a failing one
    /// is left to the writer thread, which retries. So is one that may wait for the disk (an
    /// fsync running, or a new file to open after fsyncing the old one): the task's thread
    /// serves every other client, the sentinels' probes and lease renewals among them, and a
    /// node stalled on its disk for a second would be failed over.
    pub async fn wait(&self, seq: u64) {
        if self.inner.policy() == ALWAYS {
            let mut rx = self.inner.synced.subscribe();
            let _ = rx.wait_for(|s| *s >= seq).await;
            return;
        }
        if *self.inner.written.borrow() >= seq {
            return;
        }
        tokio::task::yield_now().await;
        loop {
            // Subscribed before the check, so a write published after it wakes us.
            let mut rx = self.inner.written.subscribe();
            if *rx.borrow_and_update() >= seq {
                return;
            }
            // Once the log is closed its writer thread is gone: no one else will write these
            // bytes, so the task writes whatever it takes, retrying a failed write itself.
            let stopped = self.inner.queue.lock().stop;
            let by = if stopped { By::TaskAnyway } else { By::Task };
            let drained = if stopped || !self.inner.failing.load(Ordering::Relaxed) {
                self.inner
                    .file
                    .try_lock()
                    .map(|mut file| self.inner.write_queued(&mut file, by))
            } else {
                None
            };
            match drained {
                // Our bytes were queued before this drain: it covered them.
                Some(Drained::Written) => continue,
                Some(Drained::Failed) if stopped => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Some(Drained::Failed) => {
                    self.inner.cond.notify_one();
                }
                // Stopped since: the next pass writes.
                Some(Drained::MayStall) if !self.inner.write_now() => continue,
                Some(Drained::MayStall) | None => {}
            }
            // Someone else is writing (or retrying): their write may cover ours.
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Writes everything queued so far on the calling thread, whatever it takes (`DEBUG
    /// LOADAOF` reads the files next); false if a write failed ([`Aof::last_error`]).
    pub fn drain(&self) -> bool {
        let mut file = self.inner.file.lock();
        let written = self.inner.write_queued(&mut file, By::TaskAnyway) == Drained::Written;
        drop(file);
        // The writer fsyncs what this wrote (`always`: clients wait for that) and publishes it.
        self.inner.cond.notify_one();
        written
    }

    /// Changes the fsync policy (`CONFIG SET appendfsync`).
    pub fn set_policy(&self, p: AppendFsync) {
        self.inner.policy.store(policy_code(p), Ordering::Relaxed);
        // A switch to `always` must not leave queued bytes for the next tick.
        self.inner.cond.notify_one();
    }

    /// Writes and fsyncs everything queued, then stops the writer.
    pub fn close(&self) {
        self.inner.queue.lock().stop = true;
        self.inner.cond.notify_one();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Aof {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// A log at `generation` writing to `file` (`size` bytes so far) in `dir`, nothing queued.
    fn new(file: File, generation: u64, policy: u8, size: u64, dir: &Path) -> Inner {
        Inner {
            queue: Mutex::new(Queue {
                segments: VecDeque::new(),
                seq: 0,
                generation,
                stop: false,
                writer_asleep: false,
                urgent: false,
            }),
            cond: Condvar::new(),
            file: Mutex::new(LogFile { file, generation }),
            policy: AtomicU8::new(policy),
            dirty: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            fsyncs_pending: AtomicUsize::new(0),
            fsync_since: Mutex::new(None),
            delayed: AtomicU64::new(0),
            #[cfg(test)]
            write_stall: Mutex::new(Duration::ZERO),
            written: watch::channel(0).0,
            synced: watch::channel(0).0,
            size: AtomicU64::new(size),
            error: Mutex::new(None),
            dir: dir.to_path_buf(),
        }
    }

    /// Has the writer thread write the queue now; `false` if it has stopped (the log was
    /// closed), when the caller must write itself.
    fn write_now(&self) -> bool {
        let mut q = self.queue.lock();
        if q.stop {
            return false;
        }
        q.urgent = true;
        drop(q);
        self.cond.notify_one();
        true
    }

    fn policy(&self) -> u8 {
        self.policy.load(Ordering::Relaxed)
    }

    /// Drains the queue into the file and publishes the sequence number now written. The
    /// caller holds the file, so drains and writes never interleave. The writer thread retries
    /// a failing write until it succeeds; a client's task, which must not sleep, puts the
    /// unwritten bytes back in front of the queue and leaves them to the writer thread
    /// ([`Drained::Failed`]). [`By::Task`] drains nothing when the write may wait for the disk
    /// (an fsync asked for, or a new file, which fsyncs the old one), decided under the queue
    /// lock so that no rotation slips in between.
    fn write_queued(&self, lf: &mut LogFile, by: By) -> Drained {
        let retry = by == By::Thread;
        let (mut segments, seq) = {
            let mut q = self.queue.lock();
            if by == By::Task
                && !q.is_empty()
                && (self.fsyncs_pending.load(Ordering::Acquire) > 0
                    || q.segments.iter().any(|(g, _)| *g != lf.generation))
            {
                return Drained::MayStall;
            }
            (q.segments.drain(..).collect::<VecDeque<_>>(), q.seq)
        };
        if by == By::Thread
            && !segments.is_empty()
            && self
                .fsync_since
                .lock()
                .is_some_and(|t| t.elapsed() >= DELAYED_AFTER)
        {
            self.delayed.fetch_add(1, Ordering::Relaxed);
        }
        while let Some((g, buf)) = segments.pop_front() {
            if g != lf.generation {
                self.switch_file(lf, g);
            }
            let mut done = 0;
            while done < buf.len() {
                #[cfg(test)]
                std::thread::sleep(*self.write_stall.lock());
                match lf.file.write(&buf[done..]) {
                    Ok(0) => {
                        self.write_failed(std::io::ErrorKind::WriteZero.into(), retry);
                    }
                    Ok(n) => {
                        done += n;
                        self.size.fetch_add(n as u64, Ordering::Relaxed);
                        self.dirty.store(true, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => self.write_failed(e, retry),
                }
                if !retry && self.failing.load(Ordering::Relaxed) {
                    // Back in front of what was appended meanwhile, in order: the rest of
                    // this segment, then the ones after it.
                    let mut q = self.queue.lock();
                    while let Some(s) = segments.pop_back() {
                        q.segments.push_front(s);
                    }
                    q.segments.push_front((g, buf[done..].to_vec()));
                    return Drained::Failed;
                }
            }
        }
        self.failing.store(false, Ordering::Relaxed);
        if self.error.lock().take().is_some() {
            tracing::info!("append log writes recovered");
        }
        // The kernel has the bytes: a process crash can no longer lose them, so (except under
        // `always`, which waits for the fsync) the replies waiting for them may leave.
        self.written
            .send_if_modified(|s| std::mem::replace(s, (*s).max(seq)) < seq);
        Drained::Written
    }

    /// Records a failed write; the writer thread (`retry`) waits a second before trying again:
    /// an acknowledged write must be in the file, so the log never drops data.
    fn write_failed(&self, e: std::io::Error, retry: bool) {
        *self.error.lock() = Some(e.to_string());
        if retry {
            tracing::error!(error = %e, "append log write failed, retrying in 1s");
            std::thread::sleep(Duration::from_secs(1));
        } else {
            tracing::error!(error = %e, "append log write failed; the log writer retries");
            self.failing.store(true, Ordering::Relaxed);
        }
    }

    /// Rotation: makes the old file durable before anything goes to the new one.
    fn switch_file(&self, lf: &mut LogFile, generation: u64) {
        let _ = lf.file.sync_data();
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(&self.dir, generation))
        {
            Ok(f) => {
                lf.file = f;
                lf.generation = generation;
                let _ = sync_dir(&self.dir);
                self.size.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, generation, "cannot open the new append log; staying on the old one");
                *self.error.lock() = Some(e.to_string());
            }
        }
    }

    fn fsync(&self, lf: &LogFile) {
        let seq = *self.written.borrow();
        if let Err(e) = lf.file.sync_data() {
            tracing::error!(error = %e, "append log fsync failed");
            *self.error.lock() = Some(e.to_string());
        }
        self.dirty.store(false, Ordering::Relaxed);
        self.synced
            .send_if_modified(|s| std::mem::replace(s, (*s).max(seq)) < seq);
    }
}

/// A write behind an fsync pending this long is a delayed one (Redis' two seconds).
const DELAYED_AFTER: Duration = Duration::from_secs(2);

/// How often `everysec` fsyncs.
const FSYNC_EVERY: Duration = Duration::from_secs(1);

/// After the fsync thread turned a request down (still busy), when to ask again.
const FSYNC_RETRY: Duration = Duration::from_millis(10);

/// Under `everysec` and `no`, how long queued bytes no client writes itself (expiry, a
/// replica's stream) wait for the writer thread.
const WRITE_TICK: Duration = Duration::from_millis(20);

fn writer_loop(inner: Arc<Inner>, fsyncer: Fsyncer) {
    // When everysec's next fsync is due.
    let mut next_fsync = Instant::now() + FSYNC_EVERY;
    // When the bytes queued now are written at the latest.
    let mut write_by: Option<Instant> = None;
    loop {
        let stop = {
            let mut q = inner.queue.lock();
            let stop = loop {
                q.writer_asleep = false;
                if q.stop {
                    break true;
                }
                let policy = inner.policy();
                let now = Instant::now();
                if q.is_empty() {
                    write_by = None;
                } else {
                    if q.urgent {
                        break false;
                    }
                    // `always`: every waiting client waits for this thread; otherwise clients
                    // write themselves, and this thread writes only what is left after a tick.
                    if policy == ALWAYS || inner.failing.load(Ordering::Relaxed) {
                        break false;
                    }
                    if now >= *write_by.get_or_insert(now + WRITE_TICK) {
                        break false;
                    }
                }
                let dirty = inner.dirty.load(Ordering::Relaxed);
                // Bytes clients wrote themselves before a switch to `always` now need the fsync
                // their replies wait for.
                if policy == ALWAYS && dirty {
                    break false;
                }
                // Only everysec has an fsync of its own to schedule; `no` never fsyncs.
                let fsync_due = policy == EVERYSEC && dirty;
                if fsync_due && now >= next_fsync {
                    break false;
                }
                // An idle writer sleeps until append wakes it or the everysec fsync is due.
                let mut wait = Duration::from_secs(10);
                if let Some(by) = write_by {
                    wait = wait.min(by - now);
                }
                if fsync_due {
                    wait = wait.min(next_fsync - now);
                }
                q.writer_asleep = wait > WRITE_TICK;
                inner
                    .cond
                    .wait_for(&mut q, wait.max(Duration::from_millis(1)));
            };
            q.urgent = false;
            stop
        };
        write_by = None;
        let lf = &mut *inner.file.lock();
        inner.write_queued(lf, By::Thread);
        let policy = inner.policy();
        let dirty = inner.dirty.load(Ordering::Relaxed);
        if dirty && (policy == ALWAYS || stop) {
            // `always`: the replies wait for this fsync; on close, every policy ends durable.
            inner.fsync(lf);
        }
        if stop {
            return;
        }
        if dirty && policy == EVERYSEC && Instant::now() >= next_fsync {
            // The fsync runs on its own thread, as Redis runs it in the background: replies
            // never wait for the disk under everysec, only for the write.
            if fsyncer.request(&lf.file, *inner.written.borrow()) {
                inner.dirty.store(false, Ordering::Relaxed);
                next_fsync = Instant::now() + FSYNC_EVERY;
            } else {
                next_fsync = Instant::now() + FSYNC_RETRY;
            }
        }
    }
}

#[path = "aof_fsync.rs"]
mod fsync;
use fsync::Fsyncer;

#[cfg(test)]
#[path = "aof_tests.rs"]
mod tests;
