//! Slot migrations in the replicated state: a cluster's queue of moves (slots from one group
//! to another), the head of which the leader drives through its phases (`shards::migrate`),
//! each phase change a committed entry that raises the map's epoch.
//!
//! The phases and their invariants:
//! - **Copying**: the target's master copies the slots (a snapshot, then the stream of their
//!   writes) from the source's master. The source owns the slots.
//! - **Paused**: the source's nodes hold writes to the slots; the target catches up with the
//!   source's final offset for them. The source still owns them. The group epochs of both are
//!   recorded: a failover of either since then refuses the commit (the new master may have
//!   taken writes the target never saw), and the migration starts over.
//! - **Cleanup**: committed; the target owns the slots. The source deletes its copies once the
//!   target's replicas hold them, then the migration ends (`Finish`).
//!
//! `Retry` (a new id, back to Copying) and `Abort` are allowed before the commit only, so a
//! slot always has exactly one owner and its keys are never only in a place that does not own
//! them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::shards::{Cluster, SLOTS, SlotRange};
use super::{ClusterState, Driver, Rejected};

/// A migration's phase (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The target copies the slots.
    Copying,
    /// The source holds writes to them; the target catches up.
    Paused,
    /// The target owns them; the source deletes its copies.
    Cleanup,
}

/// Slots to move from one group to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The group giving the slots (it must own them).
    pub from: String,
    /// The group receiving them.
    pub to: String,
    /// Slot ranges `start..=end`, ascending.
    pub ranges: Vec<(u16, u16)>,
}

/// A queued or running migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Unique in the cluster for each attempt: a retry takes a new one, so nodes tell a fresh
    /// copy from a stale one.
    pub id: u64,
    /// What moves.
    pub slots: Move,
    /// Where it is.
    pub phase: Phase,
    /// Attempts started before this one.
    pub attempts: u32,
    /// The source's and target's group epochs when the pause was committed.
    pub epochs: (u64, u64),
}

/// What the leader commits about the migration at the head of a cluster's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The target is close behind: the source holds writes to the slots from now.
    Pause,
    /// The target holds everything the source wrote to the slots: it owns them.
    Commit,
    /// The source deleted its copies: the migration is over.
    Finish,
    /// Start over with a new id (a failover, a failed call, no progress).
    Retry(String),
    /// Give up: the slots stay with the source.
    Abort(String),
}

/// Every slot's owner, from a cluster's ranges.
fn owners(slots: &[SlotRange]) -> Vec<&str> {
    let mut out = vec![""; SLOTS as usize];
    for r in slots {
        for o in &mut out[r.start as usize..=r.end as usize] {
            *o = &r.group;
        }
    }
    out
}

/// Ranges from every slot's owner (contiguous runs of one owner).
fn ranges(owner: &[String]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for (slot, g) in owner.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.group == *g && last.end as usize + 1 == slot => {
                last.end = slot as u16
            }
            _ => out.push(SlotRange {
                start: slot as u16,
                end: slot as u16,
                group: g.to_string(),
            }),
        }
    }
    out
}

/// Slots as ascending `start..=end` ranges.
pub fn compress(mut slots: Vec<u16>) -> Vec<(u16, u16)> {
    slots.sort_unstable();
    slots.dedup();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// The moves that give each group of `c` a share of the slots proportional to its weight
/// (missing: 1; 0 empties a group), taking the highest slots of the groups above their share.
pub fn rebalance(c: &Cluster, weights: &BTreeMap<String, u32>) -> Result<Vec<Move>, String> {
    if let Some(g) = weights.keys().find(|g| !c.groups.contains(g)) {
        return Err(format!("group {g} is not in cluster {}", c.name));
    }
    let w: Vec<u64> = c
        .groups
        .iter()
        .map(|g| weights.get(g).copied().unwrap_or(1) as u64)
        .collect();
    let total: u64 = w.iter().sum();
    if total == 0 {
        return Err("at least one group needs a positive weight".into());
    }
    // Largest remainder, so the shares add up to every slot.
    let mut share: Vec<u64> = w.iter().map(|wi| SLOTS as u64 * wi / total).collect();
    let mut left = SLOTS as u64 - share.iter().sum::<u64>();
    let mut by_rem: Vec<usize> = (0..w.len()).collect();
    by_rem.sort_by_key(|&i| std::cmp::Reverse((SLOTS as u64 * w[i]) % total));
    for &i in &by_rem {
        if left == 0 {
            break;
        }
        if w[i] > 0 {
            share[i] += 1;
            left -= 1;
        }
    }
    let owner = owners(&c.slots);
    let mut spare: Vec<(u16, usize)> = Vec::new();
    let mut need: Vec<u64> = vec![0; w.len()];
    for (i, g) in c.groups.iter().enumerate() {
        let mine: Vec<u16> = (0..SLOTS as u16)
            .filter(|&s| owner[s as usize] == g)
            .collect();
        let have = mine.len() as u64;
        if have > share[i] {
            let surplus = (have - share[i]) as usize;
            spare.extend(mine[mine.len() - surplus..].iter().map(|&s| (s, i)));
        } else {
            need[i] = share[i] - have;
        }
    }
    spare.sort_unstable();
    let mut taken: BTreeMap<(usize, usize), Vec<u16>> = BTreeMap::new();
    let mut it = spare.into_iter();
    for (to, n) in need.iter().enumerate() {
        for (slot, from) in it.by_ref().take(*n as usize) {
            taken.entry((from, to)).or_default().push(slot);
        }
    }
    Ok(taken
        .into_iter()
        .map(|((from, to), slots)| Move {
            from: c.groups[from].clone(),
            to: c.groups[to].clone(),
            ranges: compress(slots),
        })
        .collect())
}

impl ClusterState {
    fn cluster_mut(&mut self, name: &str) -> Result<&mut Cluster, Rejected> {
        self.clusters
            .get_mut(name)
            .ok_or_else(|| Rejected::Invalid(format!("no such cluster {name:?}")))
    }

    /// `QueueMigrations`: compare-and-swap on the map's epoch; nothing else queued; each move
    /// between two of the cluster's groups, of slots its source owns once the earlier moves
    /// are done.
    pub(super) fn queue_migrations(
        &mut self,
        cluster: &str,
        expected_epoch: u64,
        moves: &[Move],
    ) -> Result<(String, String), Rejected> {
        let c = self.cluster_mut(cluster)?;
        if c.epoch != expected_epoch {
            return Err(Rejected::Conflict(format!(
                "cluster {cluster} changed (epoch {}, expected {expected_epoch}): look again",
                c.epoch
            )));
        }
        if !c.migrations.is_empty() {
            return Err(Rejected::Conflict(format!(
                "a migration is in flight in cluster {cluster}: wait for it to end (`vigil ctl cluster status {cluster}`)"
            )));
        }
        if moves.is_empty() || moves.len() > SLOTS as usize {
            return Err(Rejected::Invalid("nothing to move".into()));
        }
        let mut owner: Vec<String> = owners(&c.slots).into_iter().map(String::from).collect();
        for m in moves {
            for g in [&m.from, &m.to] {
                if !c.groups.contains(g) {
                    return Err(Rejected::Invalid(format!(
                        "group {g} is not in cluster {cluster}"
                    )));
                }
            }
            if m.from == m.to {
                return Err(Rejected::Invalid(format!(
                    "cannot move slots from {} to itself",
                    m.from
                )));
            }
            if m.ranges.is_empty() {
                return Err(Rejected::Invalid("a move needs slots".into()));
            }
            for &(start, end) in &m.ranges {
                if start > end || end as u32 >= SLOTS {
                    return Err(Rejected::Invalid(format!(
                        "bad slot range {start}-{end}: slots are 0-16383"
                    )));
                }
                for s in start..=end {
                    let o = &mut owner[s as usize];
                    if *o != m.from {
                        return Err(Rejected::Conflict(format!(
                            "slot {s} belongs to {o}, not {}",
                            m.from
                        )));
                    }
                    *o = m.to.clone();
                }
            }
        }
        for m in moves {
            c.next_migration += 1;
            c.migrations.push_back(Migration {
                id: c.next_migration,
                slots: m.clone(),
                phase: Phase::Copying,
                attempts: 0,
                epochs: (0, 0),
            });
        }
        c.epoch += 1;
        Ok((
            String::new(),
            format!("queue {} migrations in {cluster}", moves.len()),
        ))
    }

    /// One step of migration `id`, which must be the head of `cluster`'s queue.
    pub(super) fn migration_step(
        &mut self,
        cluster: &str,
        id: u64,
        step: &Step,
    ) -> Result<(String, String), Rejected> {
        let groups = &self.groups;
        let c = self
            .clusters
            .get_mut(cluster)
            .ok_or_else(|| Rejected::Invalid(format!("no such cluster {cluster:?}")))?;
        let Some(m) = c.migrations.front_mut().filter(|m| m.id == id) else {
            return Err(Rejected::Conflict(format!(
                "migration {id} is not the one in flight in {cluster}"
            )));
        };
        // A group's epoch, refused while a failover of it is in flight.
        let settled = |name: &str| -> Result<u64, Rejected> {
            let g = groups
                .get(name)
                .ok_or_else(|| Rejected::NoGroup(name.to_string()))?;
            match &g.failover {
                Some(_) => Err(Rejected::Conflict(format!(
                    "a failover of {name} is in flight"
                ))),
                None => Ok(g.epoch),
            }
        };
        let what = match (step, m.phase) {
            (Step::Pause, Phase::Copying) => {
                m.epochs = (settled(&m.slots.from)?, settled(&m.slots.to)?);
                m.phase = Phase::Paused;
                format!("pause migration {id}")
            }
            (Step::Commit, Phase::Paused) => {
                let now = (settled(&m.slots.from)?, settled(&m.slots.to)?);
                if now != m.epochs {
                    return Err(Rejected::Conflict(format!(
                        "{} or {} failed over during the pause: the migration starts over",
                        m.slots.from, m.slots.to
                    )));
                }
                m.phase = Phase::Cleanup;
                let mv = m.slots.clone();
                let mut owner: Vec<String> =
                    owners(&c.slots).into_iter().map(String::from).collect();
                for &(start, end) in &mv.ranges {
                    for o in &mut owner[start as usize..=end as usize] {
                        o.clone_from(&mv.to);
                    }
                }
                c.slots = ranges(&owner);
                format!("commit migration {id}: {} now owns its slots", mv.to)
            }
            (Step::Finish, Phase::Cleanup) => {
                c.migrations.pop_front();
                format!("finish migration {id}")
            }
            (Step::Retry(why), Phase::Copying | Phase::Paused) => {
                c.next_migration += 1;
                m.id = c.next_migration;
                m.attempts += 1;
                m.phase = Phase::Copying;
                format!("retry migration {id} as {}: {why}", m.id)
            }
            (Step::Abort(why), Phase::Copying | Phase::Paused) => {
                c.migrations.pop_front();
                format!("abort migration {id}: {why}")
            }
            (step, phase) => {
                return Err(Rejected::Conflict(format!(
                    "migration {id} is {phase:?}: {step:?} does not apply"
                )));
            }
        };
        c.epoch += 1;
        Ok((String::new(), what))
    }

    /// `AddClusterGroup`: a monitored `vigil node` group in no cluster joins, owning no slots.
    pub(super) fn add_cluster_group(
        &mut self,
        cluster: &str,
        group: &str,
    ) -> Result<(String, String), Rejected> {
        let g = self
            .groups
            .get(group)
            .ok_or_else(|| Rejected::NoGroup(group.to_string()))?;
        if g.spec.driver != Driver::Grpc {
            return Err(Rejected::Invalid(format!(
                "group {group} is a stock server group: shards must be `vigil node` groups"
            )));
        }
        if let Some(c) = self.cluster_of(group) {
            return Err(Rejected::Conflict(format!(
                "group {group} already belongs to cluster {}",
                c.name
            )));
        }
        let c = self.cluster_mut(cluster)?;
        c.groups.push(group.to_string());
        c.epoch += 1;
        Ok((group.to_string(), format!("join cluster {cluster}")))
    }

    /// `RemoveClusterGroup`: a group that owns no slots and takes part in no migration leaves
    /// (the last one cannot).
    pub(super) fn remove_cluster_group(
        &mut self,
        cluster: &str,
        group: &str,
    ) -> Result<(String, String), Rejected> {
        let c = self.cluster_mut(cluster)?;
        if !c.groups.iter().any(|g| g == group) {
            return Err(Rejected::Invalid(format!(
                "group {group} is not in cluster {cluster}"
            )));
        }
        if c.ranges_of(group).next().is_some() {
            return Err(Rejected::Conflict(format!(
                "group {group} still owns slots: move them away first (`vigil ctl cluster remove-group` does)"
            )));
        }
        if c.migrations
            .iter()
            .any(|m| m.slots.from == group || m.slots.to == group)
        {
            return Err(Rejected::Conflict(format!(
                "group {group} takes part in a queued migration: wait for it to end"
            )));
        }
        if c.groups.len() == 1 {
            return Err(Rejected::Conflict(
                "a cluster keeps at least one group".into(),
            ));
        }
        c.groups.retain(|g| g != group);
        c.epoch += 1;
        Ok((group.to_string(), format!("leave cluster {cluster}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, GroupSpec, NodeSpec, Proposal};

    fn apply(st: &mut ClusterState, cmd: Command) -> Result<(), Rejected> {
        let index = st.applied + 1;
        let p = Proposal {
            id: index,
            by: 1,
            at_ms: 0,
            cmd,
        };
        st.apply(index, &p)
    }

    /// Four monitored groups, the first three a cluster `c`.
    fn state() -> ClusterState {
        let mut st = ClusterState::default();
        for g in 1..=4u16 {
            let spec = GroupSpec {
                name: format!("g{g}"),
                nodes: vec![NodeSpec {
                    name: "n1".into(),
                    data: format!("127.0.0.1:{}", 7000 + g * 10),
                    admin: format!("127.0.0.1:{}", 7001 + g * 10),
                    priority: 1,
                    tls_data: String::new(),
                }],
                ..Default::default()
            };
            apply(&mut st, Command::Monitor(spec)).expect("monitor");
        }
        let groups = vec!["g1".into(), "g2".into(), "g3".into()];
        apply(
            &mut st,
            Command::CreateCluster {
                name: "c".into(),
                groups,
            },
        )
        .expect("create");
        st
    }

    fn mv(from: &str, to: &str, ranges: &[(u16, u16)]) -> Move {
        Move {
            from: from.into(),
            to: to.into(),
            ranges: ranges.to_vec(),
        }
    }

    fn queue(st: &mut ClusterState, moves: Vec<Move>) -> Result<(), Rejected> {
        let expected_epoch = st.clusters["c"].epoch;
        apply(
            st,
            Command::QueueMigrations {
                cluster: "c".into(),
                expected_epoch,
                moves,
            },
        )
    }

    fn step(st: &mut ClusterState, id: u64, step: Step) -> Result<(), Rejected> {
        apply(
            st,
            Command::MigrationStep {
                cluster: "c".into(),
                id,
                step,
            },
        )
    }

    #[test]
    fn moves_are_checked_against_the_map() {
        let mut st = state();
        let cases = [
            (vec![mv("g1", "g9", &[(0, 1)])], "not in cluster c"),
            (vec![mv("g1", "g1", &[(0, 1)])], "to itself"),
            (
                vec![mv("g1", "g2", &[(5460, 5461)])],
                "slot 5461 belongs to g2",
            ),
            (vec![mv("g1", "g2", &[(3, 2)])], "bad slot range"),
            (vec![mv("g1", "g2", &[(0, 16384)])], "bad slot range"),
            (
                vec![mv("g1", "g2", &[(0, 9)]), mv("g1", "g3", &[(5, 5)])],
                "slot 5 belongs to g2",
            ),
            (vec![], "nothing to move"),
        ];
        for (i, (moves, want)) in cases.into_iter().enumerate() {
            let e = queue(&mut st, moves).expect_err("refused");
            assert!(e.to_string().contains(want), "#{i}: {e}");
        }
        let stale = apply(
            &mut st,
            Command::QueueMigrations {
                cluster: "c".into(),
                expected_epoch: 0,
                moves: vec![mv("g1", "g2", &[(0, 0)])],
            },
        );
        assert!(stale.expect_err("stale").to_string().contains("changed"));
        assert!(st.clusters["c"].migrations.is_empty());
        // A chain within one request is checked in order.
        queue(
            &mut st,
            vec![mv("g1", "g2", &[(0, 9)]), mv("g2", "g3", &[(0, 4)])],
        )
        .expect("queued");
        let e = queue(&mut st, vec![mv("g1", "g2", &[(10, 10)])]).expect_err("one at a time");
        assert!(e.to_string().contains("in flight"), "{e}");
    }

    #[test]
    fn a_migration_goes_through_its_phases_and_the_owner_changes_only_at_the_commit() {
        let mut st = state();
        queue(&mut st, vec![mv("g1", "g2", &[(0, 99), (200, 200)])]).expect("queued");
        let id = st.clusters["c"].migrations[0].id;
        let e = step(&mut st, id, Step::Commit).expect_err("not paused yet");
        assert!(e.to_string().contains("Copying"), "{e}");
        assert!(step(&mut st, id + 1, Step::Pause).is_err(), "another id");
        // A retry takes a new id; the old one is refused from then on.
        step(&mut st, id, Step::Retry("target failed over".into())).expect("retry");
        let m = &st.clusters["c"].migrations[0];
        assert_ne!(m.id, id);
        assert_eq!((m.attempts, m.phase), (1, Phase::Copying));
        let id = m.id;
        let epoch = st.clusters["c"].epoch;
        step(&mut st, id, Step::Pause).expect("pause");
        assert_eq!(
            st.clusters["c"].owner(50),
            Some("g1"),
            "no owner change yet"
        );
        assert_eq!(
            st.clusters["c"].epoch,
            epoch + 1,
            "every step raises the epoch"
        );
        step(&mut st, id, Step::Commit).expect("commit");
        let c = &st.clusters["c"];
        for (slot, owner) in [
            (0, "g2"),
            (99, "g2"),
            (100, "g1"),
            (199, "g1"),
            (200, "g2"),
            (201, "g1"),
            (5461, "g2"),
        ] {
            assert_eq!(c.owner(slot), Some(owner), "slot {slot}");
        }
        // Still one owner per slot, contiguous, covering.
        assert_eq!(c.slots[0].start, 0);
        assert_eq!(c.slots.last().map(|r| r.end), Some(16383));
        for w in c.slots.windows(2) {
            assert_eq!(w[0].end + 1, w[1].start);
            assert_ne!(w[0].group, w[1].group, "runs merged");
        }
        let e = step(&mut st, id, Step::Abort("late".into())).expect_err("committed");
        assert!(e.to_string().contains("Cleanup"), "{e}");
        step(&mut st, id, Step::Finish).expect("finish");
        assert!(st.clusters["c"].migrations.is_empty());
        let back = ClusterState::from_bytes(&st.to_bytes()).expect("decodes");
        assert_eq!(back.clusters, st.clusters);
    }

    #[test]
    fn a_failover_during_the_pause_refuses_the_commit() {
        let mut st = state();
        apply(
            &mut st,
            Command::AssignMaster {
                group: "g1".into(),
                expected_epoch: 0,
                node: "n1".into(),
            },
        )
        .expect("master");
        queue(&mut st, vec![mv("g1", "g2", &[(0, 9)])]).expect("queued");
        let id = st.clusters["c"].migrations[0].id;
        step(&mut st, id, Step::Pause).expect("pause");
        let g1 = st.groups["g1"].epoch;
        st.groups.get_mut("g1").expect("g1").epoch = g1 + 1;
        let e = step(&mut st, id, Step::Commit).expect_err("failed over");
        assert!(
            e.to_string().contains("failed over during the pause"),
            "{e}"
        );
        assert_eq!(st.clusters["c"].owner(0), Some("g1"));
        step(&mut st, id, Step::Abort("given up".into())).expect("abort");
        assert!(st.clusters["c"].migrations.is_empty());
        assert_eq!(st.clusters["c"].owner(0), Some("g1"));
    }

    #[test]
    fn rebalance_shares_slots_by_weight() {
        let mut st = state();
        apply(
            &mut st,
            Command::AddClusterGroup {
                cluster: "c".into(),
                group: "g4".into(),
            },
        )
        .expect("add");
        let c = st.clusters["c"].clone();
        let count = |slots: &[SlotRange], g: &str| -> u32 {
            slots
                .iter()
                .filter(|r| r.group == g)
                .map(|r| (r.end - r.start) as u32 + 1)
                .sum()
        };
        let moves = rebalance(&c, &BTreeMap::new()).expect("moves");
        assert!(moves.iter().all(|m| m.to == "g4"), "{moves:?}");
        queue(&mut st, moves).expect("queued");
        while let Some(m) = st.clusters["c"].migrations.front().cloned() {
            for s in [Step::Pause, Step::Commit, Step::Finish] {
                step(&mut st, m.id, s).expect("step");
            }
        }
        let c = st.clusters["c"].clone();
        for g in ["g1", "g2", "g3", "g4"] {
            assert_eq!(count(&c.slots, g), 4096, "{g}");
        }
        assert!(rebalance(&c, &BTreeMap::new()).expect("none").is_empty());
        // Weight 0 empties a group; the others share its slots.
        let moves = rebalance(&c, &BTreeMap::from([("g2".to_string(), 0)])).expect("moves");
        assert!(moves.iter().all(|m| m.from == "g2"), "{moves:?}");
        let e = apply(
            &mut st,
            Command::RemoveClusterGroup {
                cluster: "c".into(),
                group: "g2".into(),
            },
        )
        .expect_err("owns slots");
        assert!(e.to_string().contains("still owns slots"), "{e}");
        assert!(rebalance(&c, &BTreeMap::from([("g9".to_string(), 1)])).is_err());
        let zero: BTreeMap<String, u32> = c.groups.iter().map(|g| (g.clone(), 0)).collect();
        assert!(rebalance(&c, &zero).is_err());
    }
}
