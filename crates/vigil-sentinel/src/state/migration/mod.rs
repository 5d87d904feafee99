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

use super::shards::{Cluster, SLOTS, SlotRange};
use super::{ClusterState, Driver, Rejected};

pub mod types;
pub use types::{Migration, Move, Phase, Step};

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
        match self.cluster_of(group) {
            // Already in: nothing to do (an operator's retry).
            Some(c) if c.name == cluster => {
                return Ok((group.to_string(), format!("already in cluster {cluster}")));
            }
            Some(c) => {
                return Err(Rejected::Conflict(format!(
                    "group {group} already belongs to cluster {}",
                    c.name
                )));
            }
            None => {}
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
mod tests;
