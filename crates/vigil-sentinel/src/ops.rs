//! The operator's operations on the cluster state — monitor a group, remove it, set one of its
//! options, switch its master over — written once and called by both front ends: the gRPC
//! `SentinelService` and the Redis Sentinel protocol's `SENTINEL` subcommands. Each front end
//! parses its own arguments and words its own replies; what is checked, proposed and waited
//! for is here, and what went wrong comes back as an [`OpError`] variant the front end maps
//! (to a gRPC code, or to Redis Sentinel's error text), never by matching message text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::controller::{SwitchoverError, switchover};
use crate::driver::{DriverError, Handle};
use crate::nodes::NodeAdmin;
use crate::state::migration::{Move, rebalance};
use crate::state::{Command, GroupSpec, Rejected};

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The request itself is malformed (checked before anything is proposed).
    #[error(transparent)]
    Invalid(Rejected),
    /// No linearizable read point within the budget: this sentinel cannot reach the majority.
    #[error(transparent)]
    NoQuorum(DriverError),
    /// Proposing failed, or the state machine rejected the command.
    #[error(transparent)]
    Raft(#[from] DriverError),
    /// The switchover was not begun.
    #[error(transparent)]
    Switchover(#[from] SwitchoverError),
}

/// The operations, over this sentinel's Raft driver and node clients.
#[derive(Clone)]
pub struct Ops {
    /// The Raft driver.
    pub raft: Handle,
    /// The nodes (a switchover without a target asks them for the best replica).
    pub nodes: Arc<dyn NodeAdmin>,
    /// How long a proposal may wait for the majority (the front end's call budget).
    pub budget: Duration,
}

impl Ops {
    /// Commits `cmd`; the applied index after it.
    async fn propose(&self, cmd: Command) -> Result<u64, OpError> {
        self.raft.propose(cmd, self.budget).await?;
        Ok(self.raft.state.read().applied)
    }

    /// Starts monitoring `spec`. The spec is checked here with the state machine's own rules
    /// (the same rejection, without a round through the log).
    pub async fn monitor(&self, spec: GroupSpec) -> Result<u64, OpError> {
        crate::state::validate(&spec).map_err(OpError::Invalid)?;
        self.propose(Command::Monitor(spec)).await
    }

    /// Stops monitoring `group`.
    pub async fn remove(&self, group: &str) -> Result<u64, OpError> {
        self.propose(Command::Remove {
            group: group.to_string(),
        })
        .await
    }

    /// Sets the options `changes` (name, value) of `group`, one committed command each, in
    /// order; stops at the first refused.
    pub async fn set_options(
        &self,
        group: &str,
        changes: &[(String, String)],
    ) -> Result<u64, OpError> {
        let mut index = self.raft.state.read().applied;
        for (key, value) in changes {
            index = self
                .propose(Command::SetOption {
                    group: group.to_string(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .await?;
        }
        Ok(index)
    }

    /// Creates the sharded cluster `name` over `groups`, the slots spread evenly.
    pub async fn create_cluster(&self, name: &str, groups: Vec<String>) -> Result<u64, OpError> {
        self.propose(Command::CreateCluster {
            name: name.to_string(),
            groups,
        })
        .await
    }

    /// Queues slot migrations in `cluster`: `moves`, or (none given) the moves that rebalance
    /// it by `weights`, computed from a linearizable read and committed only if the map has
    /// not changed since (compare-and-swap on its epoch). `Ok` with nothing to move is 0.
    pub async fn migrate_slots(
        &self,
        cluster: &str,
        moves: Vec<Move>,
        weights: BTreeMap<String, u32>,
    ) -> Result<u64, OpError> {
        self.raft
            .linearizable(crate::driver::CALL_BUDGET)
            .await
            .map_err(OpError::NoQuorum)?;
        let (epoch, moves) = {
            let st = self.raft.state.read();
            let c = st.clusters.get(cluster).ok_or_else(|| {
                OpError::Invalid(Rejected::Invalid(format!("no such cluster {cluster:?}")))
            })?;
            let moves = if moves.is_empty() {
                rebalance(c, &weights).map_err(|e| OpError::Invalid(Rejected::Invalid(e)))?
            } else {
                moves
            };
            (c.epoch, moves)
        };
        if moves.is_empty() {
            return Ok(0);
        }
        self.propose(Command::QueueMigrations {
            cluster: cluster.to_string(),
            expected_epoch: epoch,
            moves,
        })
        .await
    }

    /// Adds `group` to `cluster` (no slots) or removes it (it must own none).
    pub async fn change_cluster_groups(
        &self,
        cluster: &str,
        group: &str,
        add: bool,
    ) -> Result<u64, OpError> {
        let (cluster, group) = (cluster.to_string(), group.to_string());
        self.propose(if add {
            Command::AddClusterGroup { cluster, group }
        } else {
            Command::RemoveClusterGroup { cluster, group }
        })
        .await
    }

    /// Begins a switchover of `group` (to `target`, or the best reachable replica) once a
    /// linearizable read confirmed the state is current; a read lost in an election is
    /// retried for as long as a gRPC call waits ([`crate::driver::CALL_BUDGET`]).
    pub async fn failover(&self, group: &str, target: Option<&str>) -> Result<u64, OpError> {
        self.raft
            .linearizable(crate::driver::CALL_BUDGET)
            .await
            .map_err(OpError::NoQuorum)?;
        switchover(&self.raft, &self.nodes, group, target).await?;
        Ok(self.raft.state.read().applied)
    }
}
