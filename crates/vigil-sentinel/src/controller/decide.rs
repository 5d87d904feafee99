//! The controller's pure decisions, apart from any IO so they read and test alone: the lease
//! arithmetic, the candidate choice, whether a committed master restarted behind its replicas,
//! and how much history a demoted master had that the new one never got.

use std::collections::HashSet;
use std::time::Duration;

use vigil_proto::node::{NodeStatus, Role as NodeRole};

use super::Observed;
use crate::state::{Group, NodeSpec, Settings};

/// The longest time between two renewals of a master's lease: what the lease has left when the
/// sentinel leader dies is what its successor's election may take without a write pause.
pub(super) const RENEW: Duration = Duration::from_millis(50);

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
pub(super) fn renew_every(s: &Settings) -> Duration {
    (lease(s) / 8).min(RENEW)
}

/// Whether the committed master of `g` restarted behind its replicas: it answers, is not
/// serving as master at the group's epoch, and has less history than some replica. Its offset
/// and the highest replica offset, if so.
pub(super) fn restarted_behind(g: &Group, master: &str, observed: &Observed) -> Option<(u64, u64)> {
    let mi = g.spec.nodes.iter().position(|n| n.name == master)?;
    let (st, _) = observed[mi].as_ref()?;
    let serving = st.role == NodeRole::Master as i32 && st.epoch >= g.epoch && !st.fenced;
    if serving {
        return None;
    }
    let highest = observed
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != mi)
        .filter_map(|(_, s)| s.as_ref().map(|(s, _)| s.offset))
        .max()?;
    (st.offset < highest).then_some((st.offset, highest))
}

/// The best replica to promote in place of `master`: reachable, not seen down (`sdown`),
/// priority > 0, not in `excluded`, at or above `min_offset`, and in async mode no more than
/// `max_lag_on_failover` behind the most up-to-date node; then lowest priority value, highest
/// offset, smallest run id.
pub fn choose_candidate<'g>(
    g: &'g Group,
    observed: &Observed,
    master: &str,
    min_offset: u64,
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
            (a.priority, std::cmp::Reverse(sa.offset), &sa.run_id).cmp(&(
                b.priority,
                std::cmp::Reverse(sb.offset),
                &sb.run_id,
            ))
        })
        .map(|(n, st)| (n, st.offset))
}

pub(super) fn split(addr: &str) -> Option<(String, u32)> {
    let (h, p) = addr.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
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
mod tests {
    use super::*;
    use crate::state::GroupSpec;
    use std::time::Instant;

    fn group(down_after_ms: u64) -> Group {
        let nodes = ["a", "b", "c"]
            .iter()
            .map(|n| NodeSpec {
                name: n.to_string(),
                data: format!("{n}:1"),
                admin: format!("{n}:2"),
                priority: 100,
            })
            .collect();
        Group {
            spec: GroupSpec {
                name: "g".into(),
                nodes,
                settings: Settings {
                    down_after_ms,
                    ..Settings::default()
                },
            },
            epoch: 3,
            master: Some("a".into()),
            failover: None,
            last_failover_ms: 0,
            deposed: None,
            lease_ms: 0,
        }
    }

    #[test]
    fn the_lease_ends_before_the_master_can_be_seen_down() {
        for (i, (down_after, want)) in [(1000, 875), (500, 385), (200, 141), (10_000, 9_695)]
            .into_iter()
            .enumerate()
        {
            let g = group(down_after);
            let l = lease(&g.spec.settings);
            assert_eq!(l, Duration::from_millis(want), "#{i}");
            let probe = crate::monitor::probe_interval(Duration::from_millis(down_after));
            assert!(
                l + probe + drift(l) <= Duration::from_millis(down_after),
                "#{i}"
            );
            assert!(renew_every(&g.spec.settings) <= l / 8, "#{i}");
        }
    }

    fn st(role: NodeRole, epoch: u64, offset: u64) -> Option<(NodeStatus, Instant)> {
        Some((
            NodeStatus {
                role: role as i32,
                epoch,
                offset,
                ..NodeStatus::default()
            },
            Instant::now(),
        ))
    }

    #[test]
    fn a_master_is_restarted_behind_only_when_it_serves_not_and_has_less() {
        let g = group(1000);
        let cases = [
            // Serving master at the group's epoch: never, whatever the offsets.
            (st(NodeRole::Master, 3, 10), None),
            // Restarted (unassigned), behind a replica.
            (st(NodeRole::Unassigned, 3, 10), Some((10, 20))),
            // Restarted but level with the best replica: promote it again instead.
            (st(NodeRole::Unassigned, 3, 20), None),
            // A master at an older epoch, behind.
            (st(NodeRole::Master, 2, 0), Some((0, 20))),
            // Not answering: that is `down_after`'s business.
            (None, None),
        ];
        for (i, (master, want)) in cases.into_iter().enumerate() {
            let observed = vec![
                master.clone(),
                st(NodeRole::Replica, 3, 20),
                st(NodeRole::Replica, 3, 15),
            ];
            assert_eq!(restarted_behind(&g, "a", &observed), want, "#{i}");
        }
    }

    /// (old offset, old data offset) against a master promoted at offset 100 of the old history.
    #[test]
    fn divergence_counts_data_only() {
        let master = NodeStatus {
            replid: "new".into(),
            replid2: "old".into(),
            second_offset: 101,
            offset: 500,
            ..NodeStatus::default()
        };
        for (i, (offset, data_offset, want)) in [
            (100, Some(100), 0),
            (114, Some(100), 0),
            (140, Some(140), 40),
            (154, Some(140), 40),
            (154, None, 54),
            (90, Some(90), 0),
        ]
        .into_iter()
        .enumerate()
        {
            let old = NodeStatus {
                replid: "old".into(),
                offset,
                data_offset,
                ..NodeStatus::default()
            };
            assert_eq!(divergent(&old, &master), Some(want), "#{i}");
        }
    }
}
