//! Holding commands through a late lease renewal. A managed master whose lease ran out (a
//! renewal late by a moment: a busy sentinel leader, a leader election) holds the commands that
//! need the lease, for up to one lease length ([`crate::gate::Gate::held_until`]), and runs them
//! when the renewal comes, as `CLIENT PAUSE` holds commands. Applications take `-READONLY` as a
//! failed command (BullMQ fails the job) and would otherwise see it from a master that is master
//! still. Sound, since a held command is admitted only by the usual gate check once it runs; a
//! lease that stays out is a failover or a partition, and past the hold the command is refused
//! as before and the clients closed so they ask the sentinels.

use std::sync::atomic::Ordering;
use std::time::Instant;

use vigil_resp::{CommandMeta, Conn, Flags, Reply, Service};

use crate::node::Node;
use crate::session::ConnState;

/// Commands outside the data path that run data commands, and so need the lease as they do.
const LEASED: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "exec",
    "function",
    "migrate",
];

/// What became of a command [`Node::wait_for_lease`] looked at.
pub(crate) enum LeaseWait {
    /// Not held: it goes on to the usual checks.
    Go,
    /// Held until the lease came back: it goes on, after another look at `CLIENT PAUSE`.
    Renewed,
    /// Held, and the lease did not come back (it ran out for good, or the node was fenced or
    /// demoted meanwhile): refused with this, as a deposed master refuses it.
    Refused(Reply),
    /// The client left while held.
    Left,
}

impl Node {
    /// Holds a command that needs the master lease while the lease is being renewed late
    /// ([`crate::gate::Gate::held_until`]). Not in cluster mode: cluster clients retry
    /// `CLUSTERDOWN` themselves, as with Redis Cluster.
    pub(crate) async fn wait_for_lease(
        &self,
        conn: &mut Conn<ConnState>,
        meta: &CommandMeta,
        data: bool,
    ) -> LeaseWait {
        if conn.info.is_replica()
            || !(data || LEASED.contains(&meta.name))
            || self.shared.cluster_mode.load(Ordering::Acquire)
        {
            return LeaseWait::Go;
        }
        let Some(until) = self.gate.held_until(Instant::now()) else {
            return LeaseWait::Go;
        };
        // Earlier pipelined replies leave first, through the acknowledgement check: a write
        // that ran under the lease is not confirmed now that it lapsed (the check closes).
        self.before_reply(conn).await;
        if conn.close || conn.flush().await.is_err() {
            conn.close = true;
            return LeaseWait::Left;
        }
        conn.info.blocked.store(true, Ordering::Relaxed);
        let waited = conn.wait_or_disconnect(self.gate.lease_back(until)).await;
        conn.info.blocked.store(false, Ordering::Relaxed);
        if waited.is_none() {
            conn.close = true;
            return LeaseWait::Left;
        }
        // Only a renewed master goes on: a node demoted meanwhile must not answer a read
        // meant for the master from its replica data.
        if self.gate.may_write(Instant::now()) {
            LeaseWait::Renewed
        } else if meta.flags.has(Flags::WRITE) {
            LeaseWait::Refused(Reply::error(crate::gate::READONLY))
        } else {
            LeaseWait::Refused(Reply::error(crate::gate::READONLY_READS))
        }
    }
}
