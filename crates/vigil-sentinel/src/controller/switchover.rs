//! An operator's switchover: a manual `BeginFailover` towards a chosen or the best reachable
//! replica; the leader's controller then takes the failover steps (`failover`), handing over
//! or fencing, and promoting only at the old master's final offset.

use std::collections::HashSet;
use std::sync::Arc;

use super::PROPOSE;
use super::decide::choose_candidate;
use super::steady::observe;
use crate::driver::Handle;
use crate::nodes::NodeAdmin;
use crate::state::Command;

/// Why a switchover was not begun.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    /// No such group.
    #[error("no such group {0:?}")]
    NoGroup(String),
    /// Another failover of the group is in flight.
    #[error("INPROG a failover of {0} is already in flight; wait for it to end")]
    InProgress(String),
    /// The group has no master to replace yet.
    #[error("{0} has no master yet")]
    NoMaster(String),
    /// The requested target cannot be promoted.
    #[error("{0}")]
    BadTarget(String),
    /// No replica can be promoted.
    #[error("NOGOODSLAVE no reachable replica of {0} can be promoted")]
    NoGoodReplica(String),
    /// Raft did not commit it.
    #[error(transparent)]
    Raft(#[from] crate::driver::DriverError),
}

/// Begins a switchover of `group` (to `target`, or the best reachable replica): commits a
/// manual `BeginFailover`; the leader's controller then fences the master, lets the target
/// catch up with its final offset and promotes it. The caller has confirmed (ReadIndex) that
/// its state is current.
pub async fn switchover(
    raft: &Handle,
    nodes: &Arc<dyn NodeAdmin>,
    group: &str,
    target: Option<&str>,
) -> Result<(), SwitchoverError> {
    let g = raft
        .state
        .read()
        .groups
        .get(group)
        .cloned()
        .ok_or_else(|| SwitchoverError::NoGroup(group.to_string()))?;
    if g.failover.is_some() {
        return Err(SwitchoverError::InProgress(group.to_string()));
    }
    let master = g
        .master
        .clone()
        .ok_or_else(|| SwitchoverError::NoMaster(group.to_string()))?;
    let candidate = match target {
        Some(t) => {
            if !g.has_node(t) {
                return Err(SwitchoverError::BadTarget(format!(
                    "{t} is not a node of {group}"
                )));
            }
            if t == master {
                return Err(SwitchoverError::BadTarget(format!(
                    "{t} is already the master"
                )));
            }
            t.to_string()
        }
        None => {
            let observed = observe(
                nodes,
                &g,
                crate::nodes::CALL_TIMEOUT,
                |_| false,
                0,
                None,
                &Vec::new(),
            )
            .await;
            choose_candidate(&g, &observed, &master, (0, 0), &HashSet::new(), |_| false)
                .map(|(n, _)| n.name.clone())
                .ok_or_else(|| SwitchoverError::NoGoodReplica(group.to_string()))?
        }
    };
    let cmd = Command::BeginFailover {
        group: group.to_string(),
        expected_epoch: g.epoch,
        new_epoch: g.epoch + 1,
        old: Some(master),
        candidate,
        min_offset: 0,
        manual: true,
    };
    raft.propose(cmd, PROPOSE).await?;
    Ok(())
}
