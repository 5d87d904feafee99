//! The append-only command log.
//!
//! The log holds exactly the replication stream (see [`crate::repl::feed`]): RESP multibulk
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
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;
use vigil_resp::error::ProtocolError;
use vigil_resp::request::{ParseLimits, RequestParser};

use crate::config::AppendFsync;
use crate::persist::snapshot::sync_dir;

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

/// Appends one command in RESP form.
pub fn encode_command(out: &mut Vec<u8>, args: &[Bytes]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

struct Queue {
    /// Pending bytes per generation, oldest first.
    segments: VecDeque<(u64, Vec<u8>)>,
    /// Total bytes ever appended (the sequence number clients wait for).
    seq: u64,
    generation: u64,
    stop: bool,
}

/// Shared between the node and the writer thread.
struct Inner {
    queue: Mutex<Queue>,
    cond: Condvar,
    policy: AtomicU8,
    /// Highest sequence number written to the file (and, with `always`, fsynced).
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

fn policy_code(p: AppendFsync) -> u8 {
    match p {
        AppendFsync::Always => 0,
        AppendFsync::Everysec => 1,
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
        let (synced, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                segments: VecDeque::new(),
                seq: 0,
                generation,
                stop: false,
            }),
            cond: Condvar::new(),
            policy: AtomicU8::new(policy_code(policy)),
            synced,
            size: AtomicU64::new(size),
            error: Mutex::new(None),
            dir: dir.to_path_buf(),
        });
        let thread_inner = inner.clone();
        let fsyncer = Fsyncer::start(inner.clone())?;
        let handle = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || writer_loop(thread_inner, file, generation, fsyncer))?;
        Ok(Aof {
            inner,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Queues stream bytes; returns the sequence number that covers them, which the replies
    /// depending on them wait for ([`Aof::wait`]). Call under the store lock.
    ///
    /// Wakes the writer only when the queue was empty: under load the writer drains everything
    /// queued while its last write (or, with `always`, its last fsync) ran, instead of paying a
    /// thread switch per write.
    pub fn append(&self, encoded: &[u8]) -> u64 {
        let mut q = self.inner.queue.lock();
        let was_idle = q.segments.iter().all(|(_, b)| b.is_empty());
        q.seq += encoded.len() as u64;
        let generation = q.generation;
        match q.segments.back_mut() {
            Some((g, buf)) if *g == generation => buf.extend_from_slice(encoded),
            _ => q.segments.push_back((generation, encoded.to_vec())),
        }
        let seq = q.seq;
        drop(q);
        if was_idle {
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

    /// Waits until everything up to `seq` is written (and fsynced under `always`).
    pub async fn wait(&self, seq: u64) {
        if *self.inner.synced.borrow() >= seq {
            return;
        }
        let mut rx = self.inner.synced.subscribe();
        let _ = rx.wait_for(|s| *s >= seq).await;
    }

    /// Changes the fsync policy (`CONFIG SET appendfsync`).
    pub fn set_policy(&self, p: AppendFsync) {
        self.inner.policy.store(policy_code(p), Ordering::Relaxed);
    }

    /// The sequence number written so far (fsynced too, under `always`).
    pub fn written(&self) -> u64 {
        *self.inner.synced.borrow()
    }

    /// Size of the current log file.
    pub fn size(&self) -> u64 {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// The last write error, if the latest write failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.error.lock().clone()
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

/// How often `everysec` fsyncs.
const FSYNC_EVERY: Duration = Duration::from_secs(1);

/// After the fsync thread turned a request down (still busy), when to ask again.
const FSYNC_RETRY: Duration = Duration::from_millis(10);

fn writer_loop(inner: Arc<Inner>, mut file: File, mut generation: u64, fsyncer: Fsyncer) {
    // When everysec's next fsync is due.
    let mut next_fsync = Instant::now() + FSYNC_EVERY;
    // Bytes written since the last fsync (or its request).
    let mut dirty = false;
    loop {
        let (segments, seq, stop) = {
            let mut q = inner.queue.lock();
            loop {
                if q.stop {
                    break;
                }
                // Every client whose write is queued waits for it to be written: write at once
                // whatever is there (everything appended while the last write ran goes out in
                // this one, so concurrent clients share a write).
                if q.segments.iter().any(|(_, b)| !b.is_empty()) {
                    break;
                }
                // Only everysec has an fsync of its own to schedule; `no` never fsyncs.
                let fsync_due = inner.policy.load(Ordering::Relaxed) == 1 && dirty;
                let now = Instant::now();
                if fsync_due && now >= next_fsync {
                    break;
                }
                // An idle writer sleeps until append wakes it or the everysec fsync is due.
                let wait = if fsync_due {
                    next_fsync - now
                } else {
                    Duration::from_secs(10)
                };
                inner
                    .cond
                    .wait_for(&mut q, wait.max(Duration::from_millis(1)));
            }
            let segs: Vec<(u64, Vec<u8>)> = q.segments.drain(..).collect();
            (segs, q.seq, q.stop)
        };
        for (g, buf) in segments {
            if g != generation {
                // Rotation: make the old file durable before anything goes to the new one.
                let _ = file.sync_data();
                match OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path(&inner.dir, g))
                {
                    Ok(f) => {
                        file = f;
                        generation = g;
                        let _ = sync_dir(&inner.dir);
                        inner.size.store(0, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, generation = g, "cannot open the new append log; staying on the old one");
                        *inner.error.lock() = Some(e.to_string());
                    }
                }
            }
            write_retrying(&inner, &mut file, &buf);
            inner.size.fetch_add(buf.len() as u64, Ordering::Relaxed);
            dirty |= !buf.is_empty();
        }
        let policy = inner.policy.load(Ordering::Relaxed);
        if dirty && (policy == 0 || stop) {
            // `always`: the replies wait for this fsync; on close, every policy ends durable.
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "append log fsync failed");
                *inner.error.lock() = Some(e.to_string());
            }
            dirty = false;
        }
        // The kernel has the bytes (and under `always` the disk): a process crash can no longer
        // lose them, so the replies waiting for them may leave.
        inner
            .synced
            .send_if_modified(|s| std::mem::replace(s, seq) != seq);
        if stop {
            return;
        }
        if dirty && policy == 1 && Instant::now() >= next_fsync {
            // The fsync runs on its own thread, as Redis runs it in the background: replies
            // never wait for the disk under everysec, only for the write.
            if fsyncer.request(&file) {
                next_fsync = Instant::now() + FSYNC_EVERY;
                dirty = false;
            } else {
                next_fsync = Instant::now() + FSYNC_RETRY;
            }
        }
    }
}

/// The everysec fsync, off the writer thread so the writes (and the replies waiting for them)
/// never queue behind the disk.
struct Fsyncer {
    tx: Option<std::sync::mpsc::SyncSender<File>>,
    handle: Option<JoinHandle<()>>,
}

impl Fsyncer {
    fn start(inner: Arc<Inner>) -> std::io::Result<Fsyncer> {
        // Room for one request: while an fsync runs, the next one waits for it instead of
        // piling up behind a slow disk.
        let (tx, rx) = std::sync::mpsc::sync_channel::<File>(1);
        let handle = std::thread::Builder::new()
            .name("aof-fsync".into())
            .spawn(move || {
                for file in rx {
                    if let Err(e) = file.sync_data() {
                        tracing::error!(error = %e, "append log fsync failed");
                        *inner.error.lock() = Some(e.to_string());
                    }
                }
            })?;
        Ok(Fsyncer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Asks for an fsync of `file`; `false` if the previous one is still running (or the
    /// file cannot be shared with the thread; the next request retries).
    fn request(&self, file: &File) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        // A second handle on the same open file: syncing it syncs the file.
        match file.try_clone() {
            Ok(f) => tx.try_send(f).is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "cannot hand the append log to the fsync thread");
                false
            }
        }
    }
}

impl Drop for Fsyncer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Writes a buffer, retrying on error: an acknowledged write must be in the file, so the
/// writer keeps trying (clients under `always` wait) rather than dropping data.
fn write_retrying(inner: &Inner, file: &mut File, buf: &[u8]) {
    loop {
        match file.write_all(buf) {
            Ok(()) => {
                if inner.error.lock().take().is_some() {
                    tracing::info!("append log writes recovered");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "append log write failed, retrying in 1s");
                *inner.error.lock() = Some(e.to_string());
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The result of reading one log file.
#[derive(Debug)]
pub struct LogRead {
    /// Complete commands, in order, each with the byte offset where it starts.
    pub commands: Vec<(u64, Vec<Bytes>)>,
    /// Bytes of the file that hold complete commands.
    pub valid_len: u64,
    /// Whether an incomplete tail followed them.
    pub torn: bool,
}

/// Reads a log file; an incomplete or zero-filled tail (a crash mid-write) is reported as
/// `torn`, anything else that does not parse is an error with its offset.
///
/// Sizes are judged by what the node could have written: a length or count over the node's
/// limits (`max_bulk_len`, `max_multibulk_len`) is damage, reported as such (with its offset)
/// rather than believed; one within them that the file does not hold is a torn last write
/// (say, of a value larger than the whole log so far). Either way nothing is allocated for
/// what a size announces beyond the bytes actually there.
pub fn read_log(
    path: &Path,
    max_bulk_len: usize,
    max_multibulk_len: usize,
) -> Result<LogRead, (u64, String)> {
    let data = std::fs::read(path).map_err(|e| (0, format!("cannot read: {e}")))?;
    let total = data.len();
    let mut buf = BytesMut::from(&data[..]);
    let limits = ParseLimits::peer(max_bulk_len, max_multibulk_len);
    let mut parser = RequestParser::new();
    let mut commands = Vec::new();
    let mut valid = 0usize;
    loop {
        if buf.is_empty() {
            return Ok(LogRead {
                commands,
                valid_len: valid as u64,
                torn: false,
            });
        }
        if buf[0] != b'*' {
            if buf.iter().all(|&b| b == 0) {
                return Ok(LogRead {
                    commands,
                    valid_len: valid as u64,
                    torn: true,
                });
            }
            return Err((
                valid as u64,
                format!("expected '*', found byte {:#04x}", buf[0]),
            ));
        }
        match parser.parse(&mut buf, &limits, true) {
            Ok(Some(cmd)) => {
                let start = valid as u64;
                valid = total - buf.len();
                if !cmd.is_empty() {
                    commands.push((start, cmd));
                }
            }
            Ok(None) => {
                return Ok(LogRead {
                    commands,
                    valid_len: valid as u64,
                    torn: true,
                });
            }
            Err(e) => {
                let rest = &data[valid..];
                if rest.iter().skip(1).all(|&b| b == 0) {
                    return Ok(LogRead {
                        commands,
                        valid_len: valid as u64,
                        torn: true,
                    });
                }
                let reason = match e {
                    ProtocolError::BulkLength | ProtocolError::MultibulkLength => format!(
                        "a command announces a size over the node's limits (proto_max_bulk_len {max_bulk_len}, max_multibulk_len {max_multibulk_len}) or not a size"
                    ),
                    e => e.to_string(),
                };
                return Err((valid as u64, reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default `proto_max_bulk_len` (512 MiB).
    const LIMIT: usize = 512 * 1024 * 1024;

    #[test]
    fn torn_tail_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("appendonly.1.aof");
        let mut data = Vec::new();
        encode_command(
            &mut data,
            &[Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
        );
        let full = data.len();
        encode_command(
            &mut data,
            &[Bytes::from("SET"), Bytes::from("k2"), Bytes::from("v2")],
        );
        for cut in full..data.len() {
            std::fs::write(&p, &data[..cut]).unwrap();
            let r = read_log(&p, LIMIT, LIMIT).unwrap();
            assert_eq!(r.commands.len(), 1, "cut {cut}");
            assert_eq!(r.valid_len as usize, full);
            assert_eq!(r.torn, cut != full, "cut {cut}");
        }
        let mut zeros = data[..full].to_vec();
        zeros.extend_from_slice(&[0; 100]);
        std::fs::write(&p, &zeros).unwrap();
        assert!(read_log(&p, LIMIT, LIMIT).unwrap().torn);
        let mut garbage = data[..full].to_vec();
        garbage.extend_from_slice(b"hello world\r\n*1\r\n$4\r\nPING\r\n");
        std::fs::write(&p, &garbage).unwrap();
        assert_eq!(read_log(&p, LIMIT, LIMIT).unwrap_err().0, full as u64);
    }

    /// A damaged tail announcing absurd sizes is an error at its offset, never an attempt to
    /// allocate what it claims; a claim the file could hold is an ordinary torn tail.
    #[test]
    fn announced_sizes_beyond_the_file_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("appendonly.1.aof");
        let mut clean = Vec::new();
        encode_command(
            &mut clean,
            &[Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")],
        );
        for (i, tail) in [
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\nabc"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$9223372036854775807\r\n",
            b"*99999999999\r\n$3\r\nSET\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-7\r\n",
        ]
        .iter()
        .enumerate()
        {
            let mut data = clean.clone();
            data.extend_from_slice(tail);
            std::fs::write(&p, &data).unwrap();
            let (offset, reason) = read_log(&p, LIMIT, LIMIT).unwrap_err();
            assert_eq!(offset, clean.len() as u64, "#{i}");
            assert!(reason.contains("over the node's limits"), "#{i}: {reason}");
        }
        // A torn write of a value larger than the whole file so far, within the limits.
        for (i, tail) in [
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\nabc"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\nabc",
        ]
        .iter()
        .enumerate()
        {
            let mut data = clean.clone();
            data.extend_from_slice(tail);
            std::fs::write(&p, &data).unwrap();
            let r = read_log(&p, LIMIT, LIMIT).unwrap();
            assert!(r.torn && r.valid_len == clean.len() as u64, "#{i}");
        }
    }
}
