//! The everysec fsync thread of the append log ([`super::Aof`]).

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use super::Inner;

/// The everysec fsync, off the writer thread so the writes (and the replies waiting for them)
/// never queue behind the disk.
pub(super) struct Fsyncer {
    inner: Arc<Inner>,
    tx: Option<std::sync::mpsc::SyncSender<(File, u64)>>,
    handle: Option<JoinHandle<()>>,
}

impl Fsyncer {
    pub(super) fn start(inner: Arc<Inner>) -> std::io::Result<Fsyncer> {
        // Room for one request: while an fsync runs, the next one waits for it instead of
        // piling up behind a slow disk.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(File, u64)>(1);
        let shared = inner.clone();
        let handle = std::thread::Builder::new()
            .name("aof-fsync".into())
            .spawn(move || {
                for (file, seq) in rx {
                    let synced = file.sync_data();
                    {
                        let mut since = inner.fsync_since.lock();
                        let left = inner.fsyncs_pending.fetch_sub(1, Ordering::AcqRel) - 1;
                        // A queued request starts now.
                        *since = (left > 0).then(Instant::now);
                    }
                    match synced {
                        Ok(()) => {
                            inner
                                .synced
                                .send_if_modified(|s| std::mem::replace(s, (*s).max(seq)) < seq);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "append log fsync failed");
                            *inner.error.lock() = Some(e.to_string());
                        }
                    }
                }
            })?;
        Ok(Fsyncer {
            inner: shared,
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Asks for an fsync of `file`, which holds everything up to `seq`; `false` if the
    /// previous one is still running (or the file cannot be shared with the thread; the next
    /// request retries).
    pub(super) fn request(&self, file: &File, seq: u64) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        // A second handle on the same open file: syncing it syncs the file.
        match file.try_clone() {
            Ok(f) => {
                // Raised before the fsync thread can start, lowered by it when done; the
                // start time with it, under the same lock.
                let mut since = self.inner.fsync_since.lock();
                self.inner.fsyncs_pending.fetch_add(1, Ordering::AcqRel);
                let sent = tx.try_send((f, seq)).is_ok();
                if !sent {
                    self.inner.fsyncs_pending.fetch_sub(1, Ordering::AcqRel);
                } else if since.is_none() {
                    *since = Some(Instant::now());
                }
                sent
            }
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
