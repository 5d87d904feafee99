//! The gate's second check, when write replies are about to leave ([`Gate::settle`]): the
//! synchronous replicas' acknowledgements, then role, fence and lease again; and what a
//! connection records of its pending write replies ([`PendingAck`]) so a failed check can cut
//! them off.

use std::future::Future;
use std::time::{Duration, Instant};

use super::Gate;

/// Writes whose replies wait in one connection's output for the acknowledgement check.
#[derive(Debug, Default)]
pub struct PendingAck {
    /// Stream offset the pending writes must be acknowledged at.
    offset: Option<u64>,
    /// Where the first pending write reply starts in the output buffer.
    first_write: Option<usize>,
    /// The last command wrote: its reply, about to be appended, is a write reply.
    just_wrote: bool,
}

impl PendingAck {
    /// A command wrote up to stream `offset`; its reply comes next.
    pub fn wrote(&mut self, offset: u64) {
        self.just_wrote = true;
        self.offset = Some(offset);
    }

    /// The reply of the last command starts at `start` in the output: remembered if that
    /// command wrote, since a failed check cuts the output there.
    pub fn reply_at(&mut self, start: usize) {
        if std::mem::take(&mut self.just_wrote) {
            self.first_write.get_or_insert(start);
        }
    }
}

/// A write that ran but may not be acknowledged: its outcome is unknown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacknowledged {
    /// The stream offset the writes reached.
    pub offset: u64,
    /// Cut the output here (the first pending write reply; 0 when none was recorded: never
    /// send too much).
    pub cut: usize,
    /// Why, for the log.
    pub why: String,
}

impl Gate {
    /// Runs before write replies leave: with `sync() = (n, timeout)` and `n > 0` (read only
    /// when a write is pending: this runs for every batch of replies), waits (through
    /// `wait(offset, n, deadline)`, which returns how many replicas acknowledged `offset`) for
    /// `n` acknowledgements, then checks role, fence and lease *now*.
    ///
    /// `Err` means the writes ran and nobody knows whether they will survive: an error reply
    /// would be a lie, since clients read `-READONLY` and `-NOREPLICAS` as "not run" and retry
    /// elsewhere. The caller sends nothing from [`Unacknowledged::cut`] on and closes the
    /// connection: an unknown outcome, as after a timeout.
    pub async fn settle<F: Future<Output = usize>>(
        &self,
        pending: &mut PendingAck,
        sync: impl FnOnce() -> (usize, Duration),
        wait: impl FnOnce(u64, usize, Instant) -> F,
    ) -> Result<(), Unacknowledged> {
        let Some(offset) = pending.offset.take() else {
            pending.first_write = None;
            return Ok(());
        };
        let (n, timeout) = sync();
        let mut failure: Option<String> = None;
        if n > 0 {
            let got = wait(offset, n, Instant::now() + timeout).await;
            if got < n {
                failure = Some(format!(
                    "it reached {got} of the {n} replicas sync_replicas requires within {}ms",
                    timeout.as_millis()
                ));
            }
        }
        if failure.is_none() {
            failure = self
                .ack_refusal(Instant::now())
                .map(|why| format!("{why} before it was acknowledged"));
        }
        let first_write = pending.first_write.take();
        match failure {
            None => Ok(()),
            Some(why) => Err(Unacknowledged {
                offset,
                cut: first_write.unwrap_or(0),
                why,
            }),
        }
    }

    /// Why a write that ran may not be acknowledged at `now`; `None` if it may.
    fn ack_refusal(&self, now: Instant) -> Option<&'static str> {
        let s = self.state.read();
        s.write_denied(now)?;
        Some(if !s.is_master() {
            "the node stopped being a master"
        } else if s.fenced {
            "the node was fenced"
        } else {
            "the write lease expired"
        })
    }
}
