//! The append log's writes: in order through failures, and off a client's thread when they
//! may wait for the disk.

use super::*;

/// A client's task whose write fails hands the bytes back to the queue in order, ahead of
/// what was appended meanwhile; the next write puts everything in the file in order, and
/// only then is it published as written.
#[test]
fn a_failed_write_from_a_task_keeps_every_byte_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), 1);
    std::fs::write(&path, b"").unwrap();
    // Read-only: every write fails.
    let file = File::open(&path).unwrap();
    let inner = Inner::new(file, 1, EVERYSEC, 0, dir.path());
    {
        let mut q = inner.queue.lock();
        q.segments = VecDeque::from([(1, b"one ".to_vec()), (1, b"two ".to_vec())]);
        q.seq = 8;
    }
    assert_eq!(
        inner.write_queued(&mut inner.file.lock(), By::Task),
        Drained::Failed
    );
    assert!(inner.failing.load(Ordering::Relaxed));
    assert_eq!(*inner.written.borrow(), 0, "published a failed write");
    {
        let mut q = inner.queue.lock();
        q.segments.push_back((1, b"three".to_vec()));
        q.seq += 5;
    }
    inner.file.lock().file = OpenOptions::new().append(true).open(&path).unwrap();
    assert_eq!(
        inner.write_queued(&mut inner.file.lock(), By::Thread),
        Drained::Written
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"one two three");
    assert_eq!(*inner.written.borrow(), 13);
    assert!(!inner.failing.load(Ordering::Relaxed) && inner.error.lock().is_none());
}

/// While the fsync runs, or when the queue starts a new file, a client's task does not
/// write itself: the writer thread does, at once, and the task's thread goes on serving
/// others though the write stalls (here 300 ms, as a busy disk stalls one behind an
/// fsync). Without that, a node stalled on its disk stops answering its sentinels.
#[test]
fn a_write_that_may_stall_is_left_to_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let aof = Aof::open(dir.path(), 1, AppendFsync::Everysec, b"m".to_vec()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let stall = Duration::from_millis(300);
    for case in ["an fsync running", "a new file"] {
        *aof.inner.write_stall.lock() = stall;
        // Before the append: the writer thread may write it before `wait` starts.
        let started = Instant::now();
        let seq = if case == "a new file" {
            aof.rotate(2, b"m2".to_vec());
            aof.append(b"after")
        } else {
            aof.inner.fsyncs_pending.fetch_add(1, Ordering::Release);
            aof.append(b"during")
        };
        // How many 10 ms ticks the runtime's one thread ran while `wait` waited.
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let c = counter.clone();
        let took = rt.block_on(async {
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    c.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::time::timeout(Duration::from_secs(5), aof.wait(seq))
                .await
                .unwrap_or_else(|_| panic!("{case}: the write never completed"));
            let took = started.elapsed();
            ticker.abort();
            took
        });
        aof.inner.fsyncs_pending.fetch_sub(1, Ordering::Release);
        *aof.inner.write_stall.lock() = Duration::ZERO;
        assert!(
            took >= stall,
            "{case}: waited {took:?}, less than the stall"
        );
        let ticks = counter.load(Ordering::Relaxed);
        assert!(
            ticks >= 10,
            "{case}: the client's thread ran {ticks} ticks of 10 ms during a {took:?} wait"
        );
    }
    assert_eq!(std::fs::read(log_path(dir.path(), 1)).unwrap(), b"mduring");
    assert_eq!(std::fs::read(log_path(dir.path(), 2)).unwrap(), b"m2after");
}

/// A client's task decides under the queue lock whether its write may wait for the disk: a
/// queue holding a new generation's bytes (a rotation since the task looked), or an fsync asked
/// for and not finished, is left whole to the writer thread.
#[test]
fn a_task_drains_nothing_that_may_wait_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(dir.path(), 1);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let inner = Inner::new(file, 1, EVERYSEC, 0, dir.path());
    let queued = |inner: &Inner| inner.queue.lock().segments.len();
    {
        let mut q = inner.queue.lock();
        q.segments = VecDeque::from([(1, b"a".to_vec()), (2, b"m2".to_vec())]);
        q.seq = 3;
    }
    let drained = inner.write_queued(&mut inner.file.lock(), By::Task);
    assert_eq!(drained, Drained::MayStall, "a new file in the queue");
    assert_eq!(queued(&inner), 2);
    inner.queue.lock().segments.pop_back();
    inner.fsyncs_pending.fetch_add(1, Ordering::Release);
    let drained = inner.write_queued(&mut inner.file.lock(), By::Task);
    assert_eq!(drained, Drained::MayStall, "an fsync pending");
    assert_eq!(queued(&inner), 1);
    inner.fsyncs_pending.fetch_sub(1, Ordering::Release);
    let drained = inner.write_queued(&mut inner.file.lock(), By::Task);
    assert_eq!(drained, Drained::Written);
    assert_eq!(std::fs::read(&path).unwrap(), b"a");
}
