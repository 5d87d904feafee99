//! Membership: adding a sentinel (learner first, voter once caught up), removing one (the
//! leader hands leadership over first), and leadership transfer. One change at a time, on the
//! leader only.

use std::time::{Duration, Instant};

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use tonic::{Response, Status};
use vigil_proto::sentinel as pb;

use super::convert::{NewSentinel, driver_status};
use super::{PROPOSAL_TIMEOUT, Sentinel};
use crate::driver::DriverError;
use crate::state::Command;

impl Sentinel {
    /// Where the leader is, in words (appended to `UNAVAILABLE` answers).
    pub(super) fn leader_hint(&self) -> String {
        let leader = self.raft.status.read().leader;
        match leader {
            0 => "no leader is known".into(),
            l if l == self.id => format!("this sentinel ({l}) leads"),
            l => format!(
                "the leader is sentinel {l} at {}",
                self.transport
                    .address(l)
                    .unwrap_or_else(|| "an unknown address".into())
            ),
        }
    }

    /// A driver error as a status, with where the leader is.
    pub(super) fn status_of(&self, e: DriverError) -> Status {
        driver_status(e, || self.leader_hint())
    }

    /// Commits `cmd`; acknowledges with the applied index.
    pub(super) async fn propose(&self, cmd: Command) -> Result<Response<pb::Ack>, Status> {
        self.raft
            .propose(cmd, PROPOSAL_TIMEOUT)
            .await
            .map_err(|e| self.status_of(e))?;
        Ok(Response::new(pb::Ack {
            index: self.raft.state.read().applied,
        }))
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.raft.status.read().is_leader {
            Ok(())
        } else {
            Err(Status::unavailable(format!(
                "membership changes run on the leader; {}",
                self.leader_hint()
            )))
        }
    }

    async fn conf_change(&self, id: u64, kind: ConfChangeType) -> Result<(), Status> {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = id;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(vec![single].into());
        self.raft
            .conf_change(cc, PROPOSAL_TIMEOUT)
            .await
            .map_err(|e| self.status_of(e))
    }

    /// Adds sentinel `r` as a learner, waits until it caught up, then makes it a voter (so a
    /// newcomer never weakens the quorum).
    pub(super) async fn add_sentinel(&self, r: NewSentinel) -> Result<Response<pb::Ack>, Status> {
        let _one = self.membership.lock().await;
        self.require_leader()?;
        if self.raft.status.read().voters.contains(&r.id) {
            return Err(Status::already_exists(format!(
                "sentinel {} is already a voter",
                r.id
            )));
        }
        self.propose(Command::SetSentinel {
            id: r.id,
            address: r.address.clone(),
        })
        .await?;
        self.transport.set_address(r.id, r.address);
        self.conf_change(r.id, ConfChangeType::AddLearnerNode)
            .await?;
        // Catch up as a learner first, so the new voter does not weaken the quorum.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.raft.status.read().clone();
            if s.progress.iter().any(|p| p.0 == r.id && p.1 >= s.commit) {
                break;
            }
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded(format!(
                    "sentinel {} did not catch up within 60 s; it stays a learner (check that it runs and can reach the leader)",
                    r.id
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.conf_change(r.id, ConfChangeType::AddNode).await?;
        Ok(Response::new(pb::Ack {
            index: self.raft.state.read().applied,
        }))
    }

    /// Removes sentinel `id`; the leader itself first hands leadership over (the caller
    /// then asks the new leader).
    pub(super) async fn remove_sentinel(&self, id: u64) -> Result<Response<pb::Ack>, Status> {
        let _one = self.membership.lock().await;
        self.require_leader()?;
        let s = self.raft.status.read().clone();
        if !s.voters.contains(&id) && !s.learners.contains(&id) {
            return Err(Status::not_found(format!("sentinel {id} is not a member")));
        }
        if id == self.id {
            // Leadership moves first; the new leader then removes us.
            // The most caught-up other voter, preferring one heard from recently.
            let to = s
                .progress
                .iter()
                .filter(|p| p.0 != id && s.voters.contains(&p.0))
                .max_by_key(|p| (p.2, p.1))
                .map(|p| p.0)
                .ok_or_else(|| Status::failed_precondition("no other voter to take over"))?;
            self.raft.transfer_leader(to);
            return Err(Status::unavailable(format!(
                "sentinel {id} leads: leadership is moving to sentinel {to}; call RemoveSentinel there"
            )));
        }
        self.conf_change(id, ConfChangeType::RemoveNode).await?;
        self.propose(Command::ForgetSentinel { id }).await
    }

    /// Hands leadership to voter `to` and waits until it leads.
    pub(super) async fn transfer_leader(&self, to: u64) -> Result<Response<pb::Ack>, Status> {
        self.require_leader()?;
        if !self.raft.status.read().voters.contains(&to) {
            return Err(Status::invalid_argument(format!(
                "sentinel {to} is not a voter"
            )));
        }
        self.raft.transfer_leader(to);
        let deadline = Instant::now() + PROPOSAL_TIMEOUT;
        while self.raft.status.read().leader != to {
            if Instant::now() > deadline {
                return Err(Status::deadline_exceeded(format!(
                    "sentinel {to} did not take over within {PROPOSAL_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Response::new(pb::Ack { index: 0 }))
    }
}
