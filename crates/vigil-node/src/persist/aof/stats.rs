//! What `INFO persistence` reads of the log: its size, what is queued, the fsyncs behind.

use std::sync::atomic::Ordering;

use super::Aof;

impl Aof {
    /// The sequence number written to the file so far.
    pub fn written(&self) -> u64 {
        *self.inner.written.borrow()
    }

    /// Size of the current log file.
    pub fn size(&self) -> u64 {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet written (`aof_buffer_length`).
    pub fn queued(&self) -> u64 {
        let q = self.inner.queue.lock();
        q.segments.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Everysec fsyncs asked for and not finished (`aof_pending_bio_fsync`).
    pub fn fsyncs_pending(&self) -> usize {
        self.inner.fsyncs_pending.load(Ordering::Relaxed)
    }

    /// Writes made behind a slow fsync (`aof_delayed_fsync`).
    pub fn delayed_fsyncs(&self) -> u64 {
        self.inner.delayed.load(Ordering::Relaxed)
    }

    /// `CONFIG RESETSTAT`: the delayed writes count from zero.
    pub fn reset_stats(&self) {
        self.inner.delayed.store(0, Ordering::Relaxed);
    }

    /// The last write error, if the latest write failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.error.lock().clone()
    }
}
