//! The controller's pure decisions, apart from any IO so they read and test alone: the lease
//! arithmetic, the first master and the failover candidate, ODOWN from the peers' opinions,
//! whether a committed master restarted behind its replicas, and how much history a demoted
//! master had that the new one never got. Table-driven tests in `decide_tests.rs` and
//! `candidate_tests.rs`.

use std::collections::HashSet;
use std::time::Duration;

use vigil_proto::node::{NodeStatus, Role as NodeRole};

use crate::peers::Opinion;
use crate::state::{Driver, Group, NodeSpec, Settings};

/// A node's status and when it arrived (monotonic), in the group's node order.
pub type Observed = Vec<Option<(NodeStatus, std::time::Instant)>>;

/// How often a master's lease is renewed at most (a round may start up to one look early and
/// end a round's time late). What the lease has left when the sentinel leader dies (about the
/// lease less this: 775 ms at a 1 s `down_after`) is what its successor's election may take
/// without a write pause: at the default Raft timing (a tick of 50 ms, 6 election ticks) a
/// candidate stands within 600 ms. Each renewal is a round of a status call and a renewal per
/// master and a ReadIndex; at 100 ms rather than 50, the idle local cluster of three shards
/// took 92–103 ms of CPU a second rather than 141–157 (ad hoc).
pub(super) const RENEW: Duration = Duration::from_millis(100);

/// The write lease granted to a group's master, counted from a reading of the master's own
/// clock: `down_after` less one probe interval and the clock margin (20 ms – 60 s), so it ends
/// before the master can be seen down (see the module doc).
pub fn lease(s: &Settings) -> Duration {
    let d = Duration::from_millis(s.down_after_ms);
    d.saturating_sub(crate::monitor::probe_interval(d))
        .saturating_sub(drift(d))
        .clamp(Duration::from_millis(20), Duration::from_secs(60))
}

/// How long the leader waits for a node's status each round: a quarter of `down_after`
/// (50 ms – 5 s).
pub(super) fn status_timeout(s: &Settings) -> Duration {
    (Duration::from_millis(s.down_after_ms) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Margin on lease waits for clock-rate differences between machines (generous: real rates
/// differ by parts per million).
pub(super) fn drift(lease: Duration) -> Duration {
    lease / 50 + Duration::from_millis(5)
}

/// How often a master's lease is renewed: eight times per lease, at least every [`RENEW`].
pub fn renew_every(s: &Settings) -> Duration {
    (lease(s) / 8).min(RENEW)
}

/// Whether `st` is of a master serving `g` at its epoch, unfenced.
pub(super) fn serves(g: &Group, st: &NodeStatus) -> bool {
    st.role == NodeRole::Master as i32 && st.epoch >= g.epoch && !st.fenced
}

/// Whether the committed master of `g` restarted behind its replicas: it answers, is not
/// serving as master at the group's epoch, and has less history than some replica. Its offset
/// and the highest replica offset, if so.
pub(super) fn restarted_behind(g: &Group, master: &str, observed: &Observed) -> Option<(u64, u64)> {
    let mi = g.spec.nodes.iter().position(|n| n.name == master)?;
    let (st, _) = observed[mi].as_ref()?;
    if serves(g, st) {
        return None;
    }
    holds_less(mi, st, observed)
}

/// Whether node `mi` (status `st`) holds less than some other node of `observed` answering
/// this round: a lower offset, or history it lacks ([`lacks_history`]). Its offset and the
/// highest other offset, if so; `None` also when no other node answered.
pub(super) fn holds_less(mi: usize, st: &NodeStatus, observed: &Observed) -> Option<(u64, u64)> {
    let others = observed
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != mi)
        .filter_map(|(_, s)| s.as_ref().map(|(s, _)| s));
    let highest = others.clone().map(|s| s.offset).max()?;
    (st.offset < highest || others.into_iter().any(|r| lacks_history(st, r)))
        .then_some((st.offset, highest))
}

/// Whether `node` lacks history that `replica` holds although their offsets may not show it:
/// the replica has more keys and a history (replication id) the node never had. A stock
/// Redis counts no offset for writes made before its first replica attached, so a master
/// restarted empty can report the same offset (0) as replicas that got everything in their
/// first sync; its fresh replication id gives it away.
fn lacks_history(node: &NodeStatus, replica: &NodeStatus) -> bool {
    replica.keys > node.keys
        && !node.replid.is_empty()
        && replica.replid != node.replid
        && replica.replid2 != node.replid
}

/// The best replica to promote in place of `master`: reachable, not seen down (`sdown`),
/// priority > 0, not in `excluded`, at or above `min_offset`, and in async mode no more than
/// `max_lag_on_failover` behind the most up-to-date node; then one at or above `prefer_at`
/// (a failover in sync mode passes [`surely_acked`], 0 otherwise); then lowest priority
/// value, highest offset, smallest run id.
pub fn choose_candidate<'g>(
    g: &'g Group,
    observed: &Observed,
    master: &str,
    (min_offset, prefer_at): (u64, u64),
    excluded: &HashSet<String>,
    sdown: impl Fn(&str) -> bool,
) -> Option<(&'g NodeSpec, u64)> {
    let s = &g.spec.settings;
    let highest = observed
        .iter()
        .flatten()
        .map(|(s, _)| s.offset)
        .max()
        .unwrap_or(0);
    g.spec
        .nodes
        .iter()
        .zip(observed)
        .filter(|(n, _)| n.name != master && n.priority > 0 && !excluded.contains(&n.name))
        .filter(|(n, _)| !sdown(&n.name))
        .filter_map(|(n, st)| st.as_ref().map(|(st, _)| (n, st)))
        .filter(|(_, st)| st.offset >= min_offset)
        .filter(|(_, st)| s.sync_replicas > 0 || highest - st.offset <= s.max_lag_on_failover)
        .min_by(|(a, sa), (b, sb)| {
            let rank = |n: &NodeSpec, st: &NodeStatus| {
                (
                    st.offset < prefer_at,
                    n.priority,
                    std::cmp::Reverse(st.offset),
                )
            };
            (rank(a, sa), &sa.run_id).cmp(&(rank(b, sb), &sb.run_id))
        })
        .map(|(n, st)| (n, st.offset))
}

/// In sync mode, an offset at or above every acknowledged write, from the replicas' offsets
/// (0 in async mode). A master acknowledges a write once `sync_replicas` (N) replicas hold it,
/// so no acknowledged offset exceeds the N-th highest replica offset; with k replicas
/// missing from `observed` that is at most the (N − k)-th highest of the others. With k ≥ N
/// nothing bounds it: the highest offset seen, at best. The master's own acknowledged offset,
/// as last read, can be a round old, and writes acknowledged since may be on some replicas
/// only.
pub fn surely_acked(g: &Group, observed: &Observed, master: &str) -> u64 {
    let n = g.spec.settings.sync_replicas as usize;
    if n == 0 {
        return 0;
    }
    let mut offsets: Vec<u64> = g
        .spec
        .nodes
        .iter()
        .zip(observed)
        .filter(|(node, _)| node.name != master)
        .filter_map(|(_, st)| st.as_ref().map(|(st, _)| st.offset))
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    let missing = silent_replicas(g, observed, master).len();
    let rank = n.saturating_sub(missing).max(1);
    offsets.get(rank - 1).copied().unwrap_or(0)
}

/// The replicas of `g` (every node but `master`) with no status in `observed`, by index.
pub fn silent_replicas(g: &Group, observed: &Observed, master: &str) -> Vec<usize> {
    g.spec
        .nodes
        .iter()
        .zip(observed)
        .enumerate()
        .filter(|(_, (node, st))| node.name != master && st.is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The most up-to-date reachable node that may be master (priority 0 never); ties go to the
/// lowest priority value, then the smallest name. In a `resp` group (stock servers that
/// already replicate), a server that is master already is kept if there is one: its replicas
/// are at its offset or (read a moment later) slightly above, and promoting one of them
/// would discard the writes the master takes meanwhile.
pub fn first_master<'g>(g: &'g Group, observed: &Observed) -> Option<&'g NodeSpec> {
    let is_master = |st: &NodeStatus| st.role == NodeRole::Master as i32 && !st.fenced;
    let masters_only = g.spec.driver == Driver::Resp
        && g.spec
            .nodes
            .iter()
            .zip(observed)
            .any(|(n, st)| n.priority > 0 && st.as_ref().is_some_and(|(st, _)| is_master(st)));
    let mut best: Option<(&NodeSpec, &NodeStatus)> = None;
    for (n, st) in g.spec.nodes.iter().zip(observed) {
        let Some((st, _)) = st else { continue };
        if n.priority == 0 || (masters_only && !is_master(st)) {
            continue;
        }
        let better = best.as_ref().is_none_or(|(b, bs)| {
            (
                st.offset,
                std::cmp::Reverse(n.priority),
                std::cmp::Reverse(&n.name),
            ) > (
                bs.offset,
                std::cmp::Reverse(b.priority),
                std::cmp::Reverse(&b.name),
            )
        });
        if better {
            best = Some((n, st));
        }
    }
    best.map(|(n, _)| n)
}

/// The peers' opinions of a master this sentinel sees down, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Sentinels that see it down for `down_after`, this one included: ODOWN at `quorum`.
    pub votes: u32,
    /// A peer that saw it answer within half of `down_after` (it can keep its lease).
    pub sees_it_up: Option<u64>,
    /// The highest offset any sentinel saw acknowledged by the group's sync replicas.
    pub acked: u64,
}

/// Counts the `opinions` that answered (this sentinel, which saw `acked_here`, votes too).
pub fn tally(opinions: &[(u64, Opinion)], down_after_ms: u64, acked_here: u64) -> Tally {
    let mut t = Tally {
        votes: 1,
        sees_it_up: None,
        acked: acked_here,
    };
    for (id, o) in opinions {
        t.acked = t.acked.max(o.acked_offset);
        if o.down_ms >= down_after_ms {
            t.votes += 1;
        } else if o.down_ms < down_after_ms / 2 {
            t.sees_it_up = Some(*id);
        }
    }
    t
}

/// A node's data address as the host and port `ReplicateFrom` names.
pub(super) fn split(addr: &str) -> Option<(String, u32)> {
    let a: vigil_base::HostPort = addr.parse().ok()?;
    Some((a.host().to_string(), u32::from(a.port())))
}

/// Bytes of history `old` holds that `master` (promoted from the same history) never got:
/// writes acknowledged by an old master and never replicated. Counted up to the end of `old`'s
/// data: keepalive PINGs it sent alone (cut off, within its lease) are not writes. `None` when
/// their histories cannot be compared.
pub(super) fn divergent(old: &NodeStatus, master: &NodeStatus) -> Option<u64> {
    if master.second_offset <= 0 || master.replid2.is_empty() {
        return None;
    }
    // The new master shares its predecessor's history up to (not including) second_offset.
    let shared = (master.second_offset - 1) as u64;
    let len = if old.replid == master.replid2 {
        old.offset
    } else if old.replid2 == master.replid2 && old.second_offset > 0 {
        (old.second_offset - 1) as u64
    } else {
        return None;
    };
    let data_end = old.data_offset.unwrap_or(len);
    Some(len.min(data_end).saturating_sub(shared))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "candidate_tests.rs"]
mod candidate_tests;
