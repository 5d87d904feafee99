//! What the agent has been told by the sentinels, and what follows for its server: the highest
//! epoch (persisted before it is acted on), the assigned role, the fence and the write lease
//! on the agent's monotonic clock. [`Authority::open`] is the one rule deciding whether the
//! server may take writes now; everything else pauses them (`CLIENT PAUSE … WRITE`).
//!
//! The lease ends [`margin`] early on the server: the pause must be in force before the lease
//! the sentinels counted on runs out, and sending it takes a round trip.

use std::path::Path;
use std::time::{Duration, Instant};

use vigil_base::epoch::EpochFileError;

/// The role the sentinels assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigned {
    /// None yet (after a start, or after the server restarted as master): writes paused.
    Unassigned,
    /// Master, writable while leased and not fenced.
    Master,
    /// Replica of this master.
    Replica {
        /// The master's host.
        host: String,
        /// Its data port.
        port: u16,
    },
}

/// Why an epoch was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EpochRefused {
    /// Lower than the agent's: the caller's view of the cluster is stale.
    #[error(
        "stale epoch {epoch}: this agent has seen epoch {current}; refresh the cluster state and retry"
    )]
    Stale {
        /// The epoch offered.
        epoch: u64,
        /// The agent's.
        current: u64,
    },
    /// The newer epoch could not be made durable, so it is not acted on.
    #[error("cannot persist the epoch: {0}")]
    Persist(#[from] EpochFileError),
}

/// The part of the lease kept back: the server is paused this long before the lease ends
/// (a quarter of it, at most 100 ms, at least 1 ms).
pub fn margin(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// The agent's authority over its server.
#[derive(Debug, Clone)]
pub struct Authority {
    /// The highest epoch seen.
    pub epoch: u64,
    /// The assigned role.
    pub role: Assigned,
    /// Fenced: read-only until promoted at a higher epoch.
    pub fenced: bool,
    /// When the server must stop taking writes (the lease end less [`margin`]).
    pub writes_until: Option<Instant>,
    /// When the lease itself ends (reported to the sentinels).
    pub lease_until: Option<Instant>,
}

impl Authority {
    /// At start-up: unassigned at the persisted epoch.
    pub fn new(epoch: u64) -> Authority {
        Authority {
            epoch,
            role: Assigned::Unassigned,
            fenced: false,
            writes_until: None,
            lease_until: None,
        }
    }

    /// Refuses a lower epoch; makes a higher one durable in `dir` before adopting it.
    /// `Ok(true)` if it advanced.
    pub fn accept_epoch(&mut self, epoch: u64, dir: &Path) -> Result<bool, EpochRefused> {
        if epoch < self.epoch {
            return Err(EpochRefused::Stale {
                epoch,
                current: self.epoch,
            });
        }
        if epoch == self.epoch {
            return Ok(false);
        }
        vigil_base::epoch::save(dir, epoch)?;
        self.epoch = epoch;
        Ok(true)
    }

    /// Sets a lease ending at `end`, `ttl` long.
    pub fn lease(&mut self, end: Instant, ttl: Duration) {
        self.lease_until = Some(end);
        self.writes_until = end.checked_sub(margin(ttl));
    }

    /// Forgets the role and lease (the server restarted as a master: it may have lost data,
    /// so only the sentinels may make it master again).
    pub fn unassign(&mut self) {
        self.role = Assigned::Unassigned;
        self.writes_until = None;
        self.lease_until = None;
    }

    /// Whether the server may take writes at `now`, given whether it runs as a master.
    pub fn open(&self, now: Instant, server_is_master: bool) -> bool {
        match &self.role {
            Assigned::Master => {
                server_is_master && !self.fenced && self.writes_until.is_some_and(|t| now < t)
            }
            // A replica refuses writes itself (-READONLY, which sends clients back to the
            // sentinels); paused, they would hang instead. Only once it really is one.
            Assigned::Replica { .. } => !server_is_master,
            Assigned::Unassigned => false,
        }
    }

    /// Lease left at `now`.
    pub fn lease_remaining(&self, now: Instant) -> Duration {
        self.lease_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leased_unfenced_master_takes_writes() {
        let now = Instant::now();
        let mut a = Authority::new(1);
        assert!(!a.open(now, true), "unassigned");
        a.role = Assigned::Master;
        assert!(!a.open(now, true), "no lease");
        a.lease(now + Duration::from_millis(400), Duration::from_millis(400));
        assert!(a.open(now, true));
        assert!(!a.open(now, false), "the server is not a master (yet)");
        assert!(!a.open(now + Duration::from_millis(301), true), "margin");
        assert_eq!(a.lease_remaining(now), Duration::from_millis(400));
        a.fenced = true;
        assert!(!a.open(now, true), "fenced");
        a.role = Assigned::Replica {
            host: "h".into(),
            port: 1,
        };
        assert!(a.open(now, false) && !a.open(now, true));
        a.unassign();
        assert!(!a.open(now, true) && a.lease_until.is_none());
    }

    #[test]
    fn epochs_never_go_down() {
        let d = tempfile::tempdir().unwrap();
        let mut a = Authority::new(3);
        assert!(matches!(
            a.accept_epoch(2, d.path()),
            Err(EpochRefused::Stale { current: 3, .. })
        ));
        assert!(!a.accept_epoch(3, d.path()).unwrap());
        assert!(a.accept_epoch(5, d.path()).unwrap());
        assert_eq!(vigil_base::epoch::load(d.path()).unwrap(), 5);
    }

    #[test]
    fn margins() {
        for (i, (ttl, m)) in [(1000, 100), (200, 50), (2, 1), (0, 1)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                margin(Duration::from_millis(ttl)),
                Duration::from_millis(m),
                "#{i}"
            );
        }
    }
}
