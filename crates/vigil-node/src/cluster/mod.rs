//! Redis Cluster mode, the storage node's half: the slot map the sentinels push
//! (NodeAdmin `SetClusterView`), kept as a [`View`].
//!
//! A node with a view is in cluster mode: it answers `CLUSTER …`, redirects the commands whose
//! keys it does not serve ([`route`]) and refuses `SELECT` of another database. Without one it
//! behaves as a standalone server. The invariants: a view is validated ([`View::from_proto`])
//! and checked newer than the current one ([`View::check_replaces`]) before it is persisted
//! ([`file`]), and persisted before it is served, so a restarted node never serves an older map
//! than the one it acknowledged.

pub mod bus;
pub mod check;
pub mod export;
pub mod file;
pub mod import;
pub mod migrate;
pub mod route;

use std::collections::HashSet;

use vigil_proto::node as pb;
use vigil_resp::slot::SLOTS;

/// `owner` entry of a slot no shard owns.
const NO_OWNER: u16 = u16::MAX;

/// Why a view is refused.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The view is malformed (answered with INVALID_ARGUMENT).
    #[error("invalid cluster view: {0}")]
    Invalid(String),
    /// The node already serves another cluster (INVALID_ARGUMENT).
    #[error(
        "this node serves cluster {have:?}, not {got:?}: a node belongs to one cluster; remove it from {have:?} first"
    )]
    OtherCluster {
        /// The cluster it serves.
        have: String,
        /// The one the view names.
        got: String,
    },
    /// The view is older than the one served (FAILED_PRECONDITION).
    #[error("cluster view refused: {0}")]
    Older(String),
}

/// One storage node of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// 40 lower-case hex characters.
    pub id: String,
    /// Data address.
    pub host: String,
    /// Data port.
    pub port: u16,
    /// TLS data address (empty: `host`).
    pub tls_host: String,
    /// NodeAdmin address (empty: unknown): where PUBLISH is forwarded.
    pub admin: String,
    /// TLS data port (0: none).
    pub tls_port: u16,
}

impl Member {
    /// The address a client is sent to: the TLS one for a client on TLS when the node has
    /// one, else the plain one (Redis picks the port matching the client's connection).
    pub fn endpoint(&self, tls: bool) -> (&str, u16) {
        if tls && self.tls_port != 0 {
            let host = if self.tls_host.is_empty() {
                &self.host
            } else {
                &self.tls_host
            };
            (host, self.tls_port)
        } else {
            (&self.host, self.port)
        }
    }
}

/// One shard: a Vigil group, its nodes and the slots it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The group's name.
    pub group: String,
    /// The group's config epoch.
    pub epoch: u64,
    /// Its master, if it has one now.
    pub master: Option<Member>,
    /// Replicas that serve reads.
    pub replicas: Vec<Member>,
    /// Owned slot ranges `start..=end`, ascending.
    pub ranges: Vec<(u16, u16)>,
}

/// A migration's phase, as the sentinels committed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The target's master copies the slots from the source's master.
    Copying,
    /// The source's nodes hold writes to the slots.
    Paused,
    /// The target owns the slots; the source's copies are deleted next.
    Cleanup,
}

/// A slot migration in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The attempt's id.
    pub id: u64,
    /// The source shard (index into `shards`).
    pub from: usize,
    /// The target shard.
    pub to: usize,
    /// The slots, `start..=end` ascending.
    pub ranges: Vec<(u16, u16)>,
    /// Its phase.
    pub phase: Phase,
}

impl Migration {
    /// Whether it moves `slot`.
    pub fn moves(&self, slot: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// The slot map a node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The cluster's name.
    pub name: String,
    /// The slot map's config epoch.
    pub epoch: u64,
    /// This node's id.
    pub my_id: String,
    /// This node's shard (index into `shards`).
    pub my_shard: usize,
    /// The shards, in the order the sentinels sent them.
    pub shards: Vec<Shard>,
    /// Shard index owning each slot (`NO_OWNER`: none); 16384 entries.
    owner: Box<[u16]>,
    /// The migration in flight, if any.
    pub migration: Option<Migration>,
    /// Hex SHA-1 of the encoded view, as received (`NodeStatus.cluster_digest`).
    pub digest: String,
    /// Whether this node is its shard's master in the view, and whether it is among the
    /// shard's serving replicas: asked for every routed command, so answered once here rather
    /// than by comparing ids each time. Computed at construction: a view is never changed
    /// after it, only replaced by another (the public fields are read-only by that rule).
    roles: (bool, bool),
}

/// Hex SHA-1 of an encoded view: the digest both the node and the sentinels compute.
pub fn digest(encoded: &[u8]) -> String {
    sha1_smol::Sha1::from(encoded).digest().to_string()
}

fn is_node_id(id: &str) -> bool {
    id.len() == 40
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn member(n: &pb::ClusterNode, ids: &mut HashSet<String>) -> Result<Member, ViewError> {
    let bad = |why: String| Err(ViewError::Invalid(why));
    if !is_node_id(&n.id) {
        return bad(format!(
            "node id {:?} is not 40 lower-case hex characters",
            n.id
        ));
    }
    if !ids.insert(n.id.clone()) {
        return bad(format!("node {} appears twice", n.id));
    }
    if n.host.is_empty() || n.port == 0 || n.port > 65535 || n.tls_port > 65535 {
        return bad(format!(
            "node {} has no valid address ({:?}:{}, TLS port {})",
            n.id, n.host, n.port, n.tls_port
        ));
    }
    Ok(Member {
        id: n.id.clone(),
        host: n.host.clone(),
        port: n.port as u16,
        tls_host: n.tls_host.clone(),
        tls_port: n.tls_port as u16,
        admin: n.admin.clone(),
    })
}

fn migration(m: &pb::SlotMigration, shards: &[Shard]) -> Result<Migration, ViewError> {
    use pb::slot_migration::Phase as P;
    let bad = |why: String| ViewError::Invalid(format!("migration {}: {why}", m.id));
    let shard = |g: &str| {
        shards
            .iter()
            .position(|s| s.group == g)
            .ok_or_else(|| bad(format!("group {g:?} is not a shard of the view")))
    };
    let (from, to) = (shard(&m.from_group)?, shard(&m.to_group)?);
    if from == to {
        return Err(bad("source and target are the same group".into()));
    }
    let phase = match P::try_from(m.phase) {
        Ok(P::Copying) => Phase::Copying,
        Ok(P::Paused) => Phase::Paused,
        Ok(P::Cleanup) => Phase::Cleanup,
        _ => return Err(bad(format!("unknown phase {}", m.phase))),
    };
    let mut ranges = Vec::with_capacity(m.slots.len());
    for r in &m.slots {
        if r.start > r.end || r.end >= SLOTS as u32 {
            return Err(bad(format!(
                "slot range {}-{} is not within 0-16383",
                r.start, r.end
            )));
        }
        ranges.push((r.start as u16, r.end as u16));
    }
    if ranges.is_empty() {
        return Err(bad("it moves no slots".into()));
    }
    ranges.sort_unstable();
    Ok(Migration {
        id: m.id,
        from,
        to,
        ranges,
        phase,
    })
}

impl View {
    /// Validates a received view: slot ranges within 0..=16383 and owned once, node ids of 40
    /// lower-case hex characters, each node once, `my_group` one of the shards. `digest` is
    /// that of the bytes received.
    pub fn from_proto(v: &pb::ClusterView, digest: String) -> Result<View, ViewError> {
        let bad = |why: String| Err(ViewError::Invalid(why));
        if v.name.is_empty() {
            return bad("the cluster name is empty".into());
        }
        if !is_node_id(&v.my_id) {
            return bad(format!(
                "my_id {:?} is not 40 lower-case hex characters",
                v.my_id
            ));
        }
        if v.shards.len() >= NO_OWNER as usize {
            return bad(format!("{} shards is too many", v.shards.len()));
        }
        let mut owner = vec![NO_OWNER; SLOTS as usize].into_boxed_slice();
        let (mut ids, mut groups) = (HashSet::new(), HashSet::new());
        let mut shards = Vec::with_capacity(v.shards.len());
        for (i, s) in v.shards.iter().enumerate() {
            if s.group.is_empty() || !groups.insert(s.group.as_str()) {
                return bad(format!(
                    "shard #{i}: group name {:?} empty or repeated",
                    s.group
                ));
            }
            let master = s.master.as_ref().map(|m| member(m, &mut ids)).transpose()?;
            let replicas = s
                .replicas
                .iter()
                .map(|m| member(m, &mut ids))
                .collect::<Result<Vec<_>, _>>()?;
            let mut ranges = Vec::with_capacity(s.slots.len());
            for r in &s.slots {
                if r.start > r.end || r.end >= SLOTS as u32 {
                    return bad(format!(
                        "group {}: slot range {}-{} is not within 0-16383 with start <= end",
                        s.group, r.start, r.end
                    ));
                }
                for slot in r.start..=r.end {
                    let o = &mut owner[slot as usize];
                    if *o != NO_OWNER {
                        return bad(format!(
                            "slot {slot} is owned by both {} and {}",
                            v.shards[*o as usize].group, s.group
                        ));
                    }
                    *o = i as u16;
                }
                ranges.push((r.start as u16, r.end as u16));
            }
            ranges.sort_unstable();
            shards.push(Shard {
                group: s.group.clone(),
                epoch: s.epoch,
                master,
                replicas,
                ranges,
            });
        }
        let Some(my_shard) = shards.iter().position(|s| s.group == v.my_group) else {
            return bad(format!(
                "my_group {:?} is not a shard of the view",
                v.my_group
            ));
        };
        let migration = match v.migrations.as_slice() {
            [] => None,
            [m] => Some(migration(m, &shards)?),
            more => return bad(format!("{} migrations in flight: at most one", more.len())),
        };
        // This node need not be listed: a replica that is syncing, or unassigned after a
        // restart, is left out of its shard's serving replicas, yet it is in cluster mode and
        // redirects every request to the shard's master.
        let me = &shards[my_shard];
        let roles = (
            me.master.as_ref().is_some_and(|m| m.id == v.my_id),
            me.replicas.iter().any(|m| m.id == v.my_id),
        );
        Ok(View {
            name: v.name.clone(),
            epoch: v.epoch,
            my_id: v.my_id.clone(),
            my_shard,
            shards,
            owner,
            migration,
            digest,
            roles,
        })
    }

    /// Whether this view may replace `current`: same cluster name, and not older — neither a
    /// lower `epoch` nor, at the same epoch, a group with a lower epoch.
    pub fn check_replaces(&self, current: Option<&View>) -> Result<(), ViewError> {
        let Some(cur) = current else { return Ok(()) };
        if cur.name != self.name {
            return Err(ViewError::OtherCluster {
                have: cur.name.clone(),
                got: self.name.clone(),
            });
        }
        if self.epoch < cur.epoch {
            return Err(ViewError::Older(format!(
                "its epoch {} is older than the served view's {}",
                self.epoch, cur.epoch
            )));
        }
        if self.epoch == cur.epoch {
            for s in &self.shards {
                if let Some(old) = cur.shards.iter().find(|o| o.group == s.group)
                    && s.epoch < old.epoch
                {
                    return Err(ViewError::Older(format!(
                        "group {} has epoch {}, older than the served view's {} at the same view epoch {}",
                        s.group, s.epoch, old.epoch, self.epoch
                    )));
                }
            }
        }
        Ok(())
    }

    /// The shard owning `slot` (index and shard), if any.
    pub fn owner_of(&self, slot: u16) -> Option<(usize, &Shard)> {
        let i = *self.owner.get(slot as usize)?;
        (i != NO_OWNER).then(|| (i as usize, &self.shards[i as usize]))
    }

    /// This node's shard.
    pub fn my_shard(&self) -> &Shard {
        &self.shards[self.my_shard]
    }

    /// Whether a write to `slot` must wait: this node's shard is handing it to another and
    /// holds its writes until the next view (see [`Phase::Paused`]).
    pub fn holds(&self, slot: u16) -> bool {
        self.migration
            .as_ref()
            .is_some_and(|m| m.phase == Phase::Paused && m.from == self.my_shard && m.moves(slot))
    }

    /// What a node whose group left this cluster keeps serving until it restarts: this view
    /// without a digest (the mark of a left node) or a migration, and without any slot of its
    /// own shard, so every keyed command is sent on (`MOVED`) or, for a slot the last view it
    /// got still gave it, refused (`CLUSTERDOWN`, which makes clients ask for the map again).
    pub fn left(&self) -> View {
        let mine = self.my_shard as u16;
        View {
            owner: self
                .owner
                .iter()
                .map(|&o| if o == mine { NO_OWNER } else { o })
                .collect(),
            migration: None,
            digest: String::new(),
            ..self.clone()
        }
    }

    /// Whether this is a left node's view ([`View::left`]).
    pub fn is_left(&self) -> bool {
        self.digest.is_empty()
    }

    /// Whether this node's shard holds any writes now.
    pub fn holds_any(&self) -> bool {
        self.migration
            .as_ref()
            .is_some_and(|m| m.phase == Phase::Paused && m.from == self.my_shard)
    }

    /// Whether this node is its shard's master in the view.
    pub fn i_am_master(&self) -> bool {
        self.roles.0
    }

    /// Whether this node serves its shard's reads as a replica: the sentinels list it among the
    /// shard's serving replicas (linked to the master, caught up, not down).
    pub fn serves_reads(&self) -> bool {
        self.roles.1
    }

    /// Every other node of the view: where a PUBLISH made here is forwarded.
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        self.shards
            .iter()
            .flat_map(|s| s.master.iter().chain(&s.replicas))
            .filter(|m| m.id != self.my_id)
    }

    /// Maximal runs of slots owned by one shard, ascending: `(start, end, shard index)`.
    pub fn runs(&self) -> Vec<(u16, u16, usize)> {
        let mut out: Vec<(u16, u16, usize)> = Vec::new();
        for (slot, &o) in self.owner.iter().enumerate() {
            if o == NO_OWNER {
                continue;
            }
            match out.last_mut() {
                Some((_, end, s)) if *s == o as usize && *end as usize + 1 == slot => {
                    *end = slot as u16
                }
                _ => out.push((slot as u16, slot as u16, o as usize)),
            }
        }
        out
    }

    /// Slots owned by some shard, and those of them whose shard has a master.
    pub fn slot_counts(&self) -> (usize, usize) {
        let owned = self.owner.iter().filter(|&&o| o != NO_OWNER);
        let served = owned
            .clone()
            .filter(|&&o| self.shards[o as usize].master.is_some())
            .count();
        (owned.count(), served)
    }
}

#[cfg(test)]
pub(crate) mod tests;
