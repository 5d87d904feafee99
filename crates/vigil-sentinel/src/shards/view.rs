//! What a shard's node is told ([`ClusterView`]): the committed slot map and every group's
//! master and serving replicas, built from the replicated state alone (and the caller's say
//! on which replicas serve), so every leader builds the same view from the same state.

use vigil_proto::node::slot_migration::Phase as PbPhase;
use vigil_proto::node::{
    ClusterNode, ClusterShard, ClusterView, SlotMigration, SlotRange as PbRange,
};

use crate::state::migration::Phase;
use crate::state::{Cluster, ClusterState, Group, NodeSpec};

/// A node as the cluster protocol names it; `None` if its data address does not parse (the
/// state machine validated it, so only a bug gets here).
fn node(c: &Cluster, g: &Group, n: &NodeSpec) -> Option<ClusterNode> {
    let data: vigil_base::HostPort = n.data.parse().ok()?;
    let tls = (!n.tls_data.is_empty())
        .then(|| n.tls_data.parse::<vigil_base::HostPort>().ok())
        .flatten();
    Some(ClusterNode {
        id: c.node_id(&g.spec.name, &n.name),
        host: data.host().to_string(),
        port: data.port() as u32,
        tls_host: tls.as_ref().map_or(String::new(), |t| t.host().to_string()),
        tls_port: tls.map_or(0, |t| t.port() as u32),
        admin: n.admin.clone(),
    })
}

/// Every shard of `c`, in the cluster's group order: its epoch, master, the replicas for which
/// `serving(group, node)` holds, and its slots.
pub fn shards(
    st: &ClusterState,
    c: &Cluster,
    serving: impl Fn(&Group, &NodeSpec) -> bool,
) -> Vec<ClusterShard> {
    c.groups
        .iter()
        .filter_map(|name| st.groups.get(name))
        .map(|g| {
            let master = g.master.as_deref();
            let spec = |name: &str| g.spec.nodes.iter().find(|n| n.name == name);
            ClusterShard {
                group: g.spec.name.clone(),
                epoch: g.epoch,
                master: master.and_then(spec).and_then(|n| node(c, g, n)),
                replicas: g
                    .spec
                    .nodes
                    .iter()
                    .filter(|n| Some(n.name.as_str()) != master && serving(g, n))
                    .filter_map(|n| node(c, g, n))
                    .collect(),
                slots: c
                    .ranges_of(&g.spec.name)
                    .map(|r| PbRange {
                        start: r.start as u32,
                        end: r.end as u32,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The view for node `node` of `group`.
pub fn view_for(c: &Cluster, shards: &[ClusterShard], group: &str, node: &str) -> ClusterView {
    ClusterView {
        name: c.name.clone(),
        epoch: c.epoch,
        my_id: c.node_id(group, node),
        my_group: group.to_string(),
        shards: shards.to_vec(),
        migrations: c
            .migrations
            .front()
            .map(|m| SlotMigration {
                id: m.id,
                from_group: m.slots.from.clone(),
                to_group: m.slots.to.clone(),
                slots: m
                    .slots
                    .ranges
                    .iter()
                    .map(|&(start, end)| PbRange {
                        start: start as u32,
                        end: end as u32,
                    })
                    .collect(),
                phase: match m.phase {
                    Phase::Copying => PbPhase::Copying,
                    Phase::Paused => PbPhase::Paused,
                    Phase::Cleanup => PbPhase::Cleanup,
                } as i32,
            })
            .into_iter()
            .collect(),
    }
}

/// Lower-case hex SHA-1 of the view's encoding: what a node reports as its `cluster_digest`.
pub fn digest(view: &ClusterView) -> String {
    use prost::Message;
    sha1_smol::Sha1::from(view.encode_to_vec())
        .digest()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, GroupSpec, Proposal, Settings};

    fn state() -> ClusterState {
        let mut st = ClusterState::default();
        let mut cmds: Vec<Command> = (1..=3)
            .map(|g| {
                Command::Monitor(GroupSpec {
                    name: format!("g{g}"),
                    nodes: (1..=2)
                        .map(|n| NodeSpec {
                            name: format!("n{n}"),
                            data: format!("127.0.0.1:{}", 7000 + g * 10 + n),
                            admin: format!("127.0.0.1:{}", 8000 + g * 10 + n),
                            priority: 1,
                            tls_data: String::new(),
                        })
                        .collect(),
                    settings: Settings::default(),
                    ..GroupSpec::default()
                })
            })
            .collect();
        cmds.push(Command::AssignMaster {
            group: "g1".into(),
            expected_epoch: 0,
            node: "n2".into(),
        });
        cmds.push(Command::CreateCluster {
            name: "c".into(),
            groups: vec!["g1".into(), "g2".into(), "g3".into()],
        });
        for (i, cmd) in cmds.into_iter().enumerate() {
            let p = Proposal {
                id: i as u64,
                by: 1,
                at_ms: 0,
                cmd,
            };
            st.apply(i as u64 + 1, &p).expect("applies");
        }
        st
    }

    #[test]
    fn the_view_names_masters_serving_replicas_and_slots() {
        let st = state();
        let c = &st.clusters["c"];
        let shards = shards(&st, c, |_, n| n.name == "n1");
        assert_eq!(shards.len(), 3);
        let g1 = &shards[0];
        assert_eq!((g1.group.as_str(), g1.epoch), ("g1", 1));
        let master = g1.master.as_ref().expect("g1 has a master");
        assert_eq!((master.host.as_str(), master.port), ("127.0.0.1", 7012));
        assert_eq!(master.id, c.node_id("g1", "n2"));
        assert_eq!(g1.replicas.len(), 1);
        assert_eq!(g1.replicas[0].port, 7011);
        assert_eq!((g1.slots[0].start, g1.slots[0].end), (0, 5460));
        // No master yet: none named, and its replicas are still listed.
        assert!(shards[1].master.is_none());
        let v = view_for(c, &shards, "g2", "n1");
        assert_eq!(v.my_id, c.node_id("g2", "n1"));
        assert_eq!(v.epoch, 1);
        assert_eq!(digest(&v), digest(&v.clone()));
        assert_ne!(digest(&v), digest(&view_for(c, &shards, "g2", "n2")));
    }
}
