//! Sharded clusters in the replicated state: a cluster is a named set of groups and a slot map
//! (every one of the 16,384 hash slots → one of its groups), changed only by committed entries,
//! each raising the map's config epoch.
//!
//! The map is kept as sorted, contiguous, non-overlapping ranges that cover every slot, so an
//! entry that would leave a slot without an owner or with two cannot be expressed.

use serde::{Deserialize, Serialize};

use super::{ClusterState, Driver, Rejected};

/// Hash slots in a cluster (Redis Cluster's 16,384).
pub const SLOTS: u32 = 16384;

/// Slots `start..=end`, owned by `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The owning group.
    pub group: String,
}

/// A sharded cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Its name.
    pub name: String,
    /// Its groups, in the order they were added.
    pub groups: Vec<String>,
    /// The slot map: ascending, contiguous, covering `0..SLOTS`.
    pub slots: Vec<SlotRange>,
    /// The map's config epoch: raised by every committed change of it.
    pub epoch: u64,
    /// Slot migrations, in order: the head is in flight.
    #[serde(default)]
    pub migrations: std::collections::VecDeque<super::migration::types::Migration>,
    /// The last migration id given out.
    #[serde(default)]
    pub next_migration: u64,
}

impl Cluster {
    /// The group owning `slot`.
    pub fn owner(&self, slot: u16) -> Option<&str> {
        self.slots
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .map(|r| r.group.as_str())
    }

    /// The ranges `group` owns, ascending.
    pub fn ranges_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a SlotRange> + 'a {
        self.slots.iter().filter(move |r| r.group == group)
    }

    /// A node's cluster id: 40 lower-case hex characters, the same on every sentinel and
    /// stable for the node's place in the cluster (a SHA-1 of cluster, group and node name).
    pub fn node_id(&self, group: &str, node: &str) -> String {
        let mut h = sha1_smol::Sha1::new();
        for part in [&self.name, group, node] {
            h.update(part.as_bytes());
            h.update(b"\0");
        }
        h.digest().to_string()
    }
}

/// `groups` sharing the slots evenly, in order, as `redis-cli --cluster create` spreads them
/// (three groups: 0-5460, 5461-10922, 10923-16383).
pub fn spread(groups: &[String]) -> Vec<SlotRange> {
    let n = groups.len() as u32;
    let at = |i: u32| (i * SLOTS + n / 2) / n;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| SlotRange {
            start: at(i as u32) as u16,
            end: (at(i as u32 + 1) - 1) as u16,
            group: g.clone(),
        })
        .collect()
}

impl ClusterState {
    /// The cluster `group` belongs to, if any.
    pub fn cluster_of(&self, group: &str) -> Option<&Cluster> {
        self.clusters
            .values()
            .find(|c| c.groups.iter().any(|g| g == group))
    }

    /// `CreateCluster`: a new name, at least one group, each monitored, driven over gRPC
    /// (`vigil node`: only it routes by slot) and in no other cluster.
    pub(super) fn create_cluster(
        &mut self,
        name: &str,
        groups: &[String],
    ) -> Result<(String, String), Rejected> {
        if name.is_empty() || name.len() > 200 || name.contains(char::is_whitespace) {
            return Err(Rejected::Invalid(
                "cluster name must be 1-200 characters without spaces".into(),
            ));
        }
        if self.clusters.contains_key(name) {
            return Err(Rejected::Conflict(format!("cluster {name} already exists")));
        }
        if groups.is_empty() || groups.len() > 1024 {
            return Err(Rejected::Invalid("a cluster needs 1 to 1024 groups".into()));
        }
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].contains(g) {
                return Err(Rejected::Invalid(format!("group {g} is named twice")));
            }
            let spec = &self
                .groups
                .get(g)
                .ok_or_else(|| Rejected::NoGroup(g.clone()))?
                .spec;
            if spec.driver != Driver::Grpc {
                return Err(Rejected::Invalid(format!(
                    "group {g} is a stock server group (driver \"{}\"): shards must be `vigil node` groups",
                    spec.driver
                )));
            }
            if let Some(c) = self.cluster_of(g) {
                return Err(Rejected::Conflict(format!(
                    "group {g} already belongs to cluster {}",
                    c.name
                )));
            }
        }
        let cluster = Cluster {
            name: name.to_string(),
            groups: groups.to_vec(),
            slots: spread(groups),
            epoch: 1,
            migrations: Default::default(),
            next_migration: 0,
        };
        self.clusters.insert(name.to_string(), cluster);
        Ok((
            String::new(),
            format!("create cluster {name} over {}", groups.join(",")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("g{i}")).collect()
    }

    #[test]
    fn spread_covers_every_slot_once_as_redis_cli_does() {
        let three = spread(&names(3));
        let bounds: Vec<(u16, u16)> = three.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(bounds, [(0, 5460), (5461, 10922), (10923, 16383)]);
        for n in 1..=64 {
            let ranges = spread(&names(n));
            assert_eq!(ranges.len(), n, "#{n}");
            assert_eq!(ranges[0].start, 0, "#{n}");
            assert_eq!(ranges[n - 1].end as u32, SLOTS - 1, "#{n}");
            for w in ranges.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start, "#{n}: contiguous");
            }
            for r in &ranges {
                let size = (r.end - r.start + 1) as u32;
                assert!(
                    size == SLOTS / n as u32 || size == SLOTS / n as u32 + 1,
                    "#{n}"
                );
            }
        }
    }

    fn apply(st: &mut ClusterState, cmd: super::super::Command) -> Result<(), Rejected> {
        let index = st.applied + 1;
        let p = super::super::Proposal {
            id: index,
            by: 1,
            at_ms: 0,
            cmd,
        };
        st.apply(index, &p)
    }

    fn monitor(st: &mut ClusterState, name: &str, driver: Driver) {
        let port = 7000 + st.groups.len() as u16 * 10;
        let spec = super::super::GroupSpec {
            name: name.into(),
            nodes: vec![super::super::NodeSpec {
                name: "n1".into(),
                data: format!("127.0.0.1:{port}"),
                admin: format!(
                    "127.0.0.1:{}",
                    port + if driver == Driver::Resp { 0 } else { 1 }
                ),
                priority: 1,
                tls_data: String::new(),
            }],
            driver,
            ..Default::default()
        };
        apply(st, super::super::Command::Monitor(spec)).expect("monitor");
    }

    fn create(st: &mut ClusterState, name: &str, groups: &[&str]) -> Result<(), Rejected> {
        apply(
            st,
            super::super::Command::CreateCluster {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        )
    }

    #[test]
    fn create_cluster_checks_its_groups_and_a_shard_cannot_be_removed() {
        let mut st = ClusterState::default();
        for g in ["g1", "g2", "g3"] {
            monitor(&mut st, g, Driver::Grpc);
        }
        monitor(&mut st, "stock", Driver::Resp);
        let cases: [(&str, &[&str], &str); 5] = [
            ("c", &[], "1 to 1024 groups"),
            ("c", &["g1", "nope"], "no such group"),
            ("c", &["g1", "g1"], "named twice"),
            ("c", &["g1", "stock"], "shards must be `vigil node` groups"),
            ("bad name", &["g1"], "without spaces"),
        ];
        for (i, (name, groups, want)) in cases.iter().enumerate() {
            let e = create(&mut st, name, groups).expect_err("refused");
            assert!(e.to_string().contains(want), "#{i}: {e}");
        }
        assert!(st.clusters.is_empty());
        create(&mut st, "c", &["g1", "g2"]).expect("created");
        let c = &st.clusters["c"];
        assert_eq!(
            (c.epoch, c.owner(0), c.owner(16383)),
            (1, Some("g1"), Some("g2"))
        );
        let e = create(&mut st, "d", &["g3", "g2"]).expect_err("g2 is taken");
        assert!(
            e.to_string().contains("already belongs to cluster c"),
            "{e}"
        );
        let e = create(&mut st, "c", &["g3"]).expect_err("name taken");
        assert!(e.to_string().contains("already exists"), "{e}");
        let e = apply(
            &mut st,
            super::super::Command::Remove { group: "g1".into() },
        )
        .expect_err("a shard stays");
        assert!(e.to_string().contains("is a shard of cluster c"), "{e}");
        // The state survives a snapshot round trip.
        let back = ClusterState::from_bytes(&st.to_bytes()).expect("decodes");
        assert_eq!(back.clusters, st.clusters);
    }

    #[test]
    fn node_ids_are_forty_hex_and_distinct() {
        let c = Cluster {
            name: "c".into(),
            groups: vec![],
            slots: vec![],
            epoch: 1,
            migrations: Default::default(),
            next_migration: 0,
        };
        let a = c.node_id("g1", "n1");
        assert_eq!(a.len(), 40);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, c.node_id("g1", "n1"));
        assert_ne!(a, c.node_id("g1n", "1"));
        assert_ne!(a, c.node_id("g2", "n1"));
    }
}
