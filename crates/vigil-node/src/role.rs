//! The node's role and the write gate: master, replica or (managed, before the sentinels
//! speak) unassigned; the epoch it has seen; fencing and the write lease.
//!
//! Every write passes [`RoleState::write_denied`] before it runs and again when its reply is
//! about to leave (`Node::ack_check`), so a lease that expires or a fence that arrives while a
//! write waits for its replicas never becomes a false OK.
//!
//! Reads on a managed node that clients may take for the master pass
//! [`RoleState::read_denied`]: they are served under the same lease as writes (lease reads, as
//! etcd and TiKV serve them), since once the lease has lapsed the sentinels may have promoted
//! another node and this one's data may be stale. Replicas serve reads as Redis' do.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::NodeError;
use crate::persist::snapshot::write_atomic;

/// `-READONLY`: exactly Redis' wording (clients match it).
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
/// `-NOREPLICAS` (min_replicas_to_write), Redis' wording.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// `-READONLY` for a read on a managed node without a valid lease. Clients act on the prefix,
/// not the text: redis-py's Sentinel connections, for one, take `READONLY` as "the master
/// changed", disconnect and ask the sentinels again, which is what a client of a deposed master
/// must do. The text says why, since Redis' own speaks of writes.
pub const READONLY_READS: &str = "READONLY This node holds no valid master lease (deposed, fenced or not yet assigned a role): reads are refused too. Ask the sentinels for the current master.";
/// `-MASTERDOWN` (serve_stale_data = false), Redis' wording.
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// What the node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Takes writes (subject to fencing and the lease in managed mode).
    Master,
    /// Follows `host:port`.
    Replica {
        /// The master's host.
        host: String,
        /// The master's port.
        port: u16,
    },
    /// Managed, not yet given a role: read-only.
    Unassigned,
}

/// Role, epoch, fence and lease.
#[derive(Debug)]
pub struct RoleState {
    /// The role.
    pub role: Role,
    /// Managed by sentinels (epochs, lease, read-only boot).
    pub managed: bool,
    /// The highest epoch seen (persisted before it is acted on).
    pub epoch: u64,
    /// Fenced: read-only until promoted at a higher epoch.
    pub fenced: bool,
    /// The write lease ends here (monotonic clock); managed masters write only before it.
    pub lease_until: Option<Instant>,
    /// Managed: reads too need the lease (`lease_reads`), and a lapse closes normal clients.
    pub lease_reads: bool,
    /// Whether the node served as a leased master when [`RoleState::lapsed`] last looked.
    serving: bool,
}

impl RoleState {
    /// The initial state: standalone nodes are masters (or replicas of `replicaof`), managed
    /// nodes wait for the sentinels.
    pub fn new(
        managed: bool,
        lease_reads: bool,
        epoch: u64,
        replicaof: Option<(String, u16)>,
    ) -> RoleState {
        let role = match (managed, replicaof) {
            (true, _) => Role::Unassigned,
            (false, Some((host, port))) => Role::Replica { host, port },
            (false, None) => Role::Master,
        };
        RoleState {
            role,
            managed,
            epoch,
            fenced: false,
            lease_until: None,
            lease_reads: managed && lease_reads,
            serving: false,
        }
    }

    /// Whether the node is a master (possibly fenced or without a lease).
    pub fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    /// Why a write may not be acknowledged now, as the error reply; `None` if it may.
    pub fn write_denied(&self, now: Instant) -> Option<&'static str> {
        match self.role {
            Role::Master if !self.managed => None,
            Role::Master if !self.fenced && self.lease_until.is_some_and(|t| now < t) => None,
            _ => Some(READONLY),
        }
    }

    /// Why a read may not be served now, as the error reply; `None` if it may. Refused on a
    /// managed node that may present itself as the master (a master, or an unassigned node,
    /// which reports itself as one) unless it may also acknowledge writes: outside its lease
    /// another node may have been promoted and taken writes this one never saw.
    pub fn read_denied(&self, now: Instant) -> Option<&'static str> {
        if !self.lease_reads || matches!(self.role, Role::Replica { .. }) {
            return None;
        }
        self.write_denied(now).map(|_| READONLY_READS)
    }

    /// Notes whether the node serves as a leased master now; `true` exactly once per lapse,
    /// when a node that did stops (lease run out, fenced, demoted): the moment to close its
    /// normal clients, so that they ask the sentinels for the master again instead of waiting
    /// on a node that refuses them. Always `false` without `lease_reads`.
    pub fn lapsed(&mut self, now: Instant) -> bool {
        let serving = self.lease_reads && self.write_denied(now).is_none();
        std::mem::replace(&mut self.serving, serving) && !serving
    }

    /// Lease time left.
    pub fn lease_remaining(&self, now: Instant) -> Duration {
        self.lease_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// The role word of `INFO`, `ROLE` and `HELLO` (`slave`, as clients compare it).
    pub fn info_word(&self) -> &'static str {
        match self.role {
            Role::Replica { .. } => "slave",
            _ => "master",
        }
    }
}

/// The file holding the highest epoch a managed node has seen.
pub const EPOCH_FILE: &str = "epoch";

/// Reads the persisted epoch (0 when none was ever written).
pub fn load_epoch(dir: &Path) -> Result<u64, NodeError> {
    let path = dir.join(EPOCH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| NodeError::CorruptMeta {
            path,
            reason: format!("expected an integer, found {:?}", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(NodeError::Io {
            action: "cannot read",
            path,
            source: e,
        }),
    }
}

/// Persists the epoch durably (temp file, fsync, rename, fsync the directory).
pub fn save_epoch(dir: &Path, epoch: u64) -> Result<(), NodeError> {
    let path = dir.join(EPOCH_FILE);
    write_atomic(&path, format!("{epoch}\n").as_bytes())
        .map_err(NodeError::io("cannot write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate() {
        let now = Instant::now();
        let mut s = RoleState::new(false, true, 0, None);
        assert_eq!(s.write_denied(now), None);
        s.role = Role::Replica {
            host: "h".into(),
            port: 1,
        };
        assert_eq!(s.write_denied(now), Some(READONLY));
        let mut m = RoleState::new(true, true, 3, None);
        assert_eq!(m.role, Role::Unassigned);
        assert_eq!(m.write_denied(now), Some(READONLY));
        m.role = Role::Master;
        assert_eq!(m.write_denied(now), Some(READONLY), "no lease yet");
        m.lease_until = Some(now + Duration::from_secs(1));
        assert_eq!(m.write_denied(now), None);
        assert_eq!(
            m.write_denied(now + Duration::from_secs(2)),
            Some(READONLY),
            "expired"
        );
        m.fenced = true;
        assert_eq!(m.write_denied(now), Some(READONLY));
    }

    /// Reads: (role, fenced, lease left in ms, lease_reads) -> refused?
    #[test]
    fn lease_reads() {
        let now = Instant::now();
        let replica = Role::Replica {
            host: "h".into(),
            port: 1,
        };
        for (i, (role, fenced, lease, lease_reads, refused)) in [
            (Role::Master, false, Some(1000), true, false),
            (Role::Master, false, None, true, true),
            (Role::Master, false, Some(0), true, true),
            (Role::Master, true, Some(1000), true, true),
            (Role::Unassigned, false, None, true, true),
            (replica.clone(), false, None, true, false),
            (Role::Master, false, None, false, false),
            (Role::Master, true, None, false, false),
            (Role::Unassigned, false, None, false, false),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = RoleState::new(true, lease_reads, 1, None);
            s.role = role;
            s.fenced = fenced;
            s.lease_until = lease.map(|ms| now + Duration::from_millis(ms));
            let want = refused.then_some(READONLY_READS);
            assert_eq!(s.read_denied(now), want, "#{i}");
        }
        // Standalone nodes serve reads whatever the setting says.
        let mut s = RoleState::new(false, true, 0, None);
        assert_eq!(s.read_denied(now), None);
        s.role = replica;
        assert_eq!(s.read_denied(now), None);
    }

    #[test]
    fn a_lapse_is_reported_once() {
        let now = Instant::now();
        let mut m = RoleState::new(true, true, 1, None);
        assert!(!m.lapsed(now), "never served: nothing lapsed");
        m.role = Role::Master;
        m.lease_until = Some(now + Duration::from_secs(1));
        assert!(!m.lapsed(now));
        let later = now + Duration::from_secs(2);
        assert!(m.lapsed(later), "the lease ran out");
        assert!(!m.lapsed(later), "once per lapse");
        m.lease_until = Some(later + Duration::from_secs(1));
        assert!(!m.lapsed(later), "renewed");
        m.fenced = true;
        assert!(m.lapsed(later), "fenced");
        // Without lease reads a lapse closes nothing.
        let mut off = RoleState::new(true, false, 1, None);
        off.role = Role::Master;
        off.lease_until = Some(now + Duration::from_secs(1));
        assert!(!off.lapsed(now) && !off.lapsed(later));
    }

    #[test]
    fn epoch_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load_epoch(d.path()).unwrap(), 0);
        save_epoch(d.path(), 42).unwrap();
        assert_eq!(load_epoch(d.path()).unwrap(), 42);
        std::fs::write(d.path().join(EPOCH_FILE), "x").unwrap();
        assert!(
            load_epoch(d.path())
                .unwrap_err()
                .to_string()
                .contains("epoch")
        );
    }
}
