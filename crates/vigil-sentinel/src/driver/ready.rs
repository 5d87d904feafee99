//! The driver task itself: the one owner of `RawNode`. Ticks and mailbox messages in, one
//! Ready at a time out, in raft-rs' documented order; each proposal's caller answered when its
//! own entry applies, each read when the state reached its read index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeV2, Entry, EntryType};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, oneshot};

use super::{DriverError, Handle, Msg, Transport};
use crate::state::{ClusterState, Proposal};
use crate::storage::{DiskStorage, StoreError};

/// A linearizable read: its caller and, once known, the index the state must reach.
type PendingRead = (oneshot::Sender<Result<u64, DriverError>>, Option<u64>);

pub(super) struct Driver {
    /// Tells [`Handle::leading`] when this sentinel starts or stops leading.
    pub(super) leading: tokio::sync::watch::Sender<bool>,
    pub(super) raw: RawNode<DiskStorage>,
    pub(super) storage: DiskStorage,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) handle: Handle,
    pub(super) proposals: HashMap<u64, oneshot::Sender<Result<(), DriverError>>>,
    /// Reads waiting for their read index (known once Raft confirmed leadership).
    pub(super) reads: HashMap<u64, PendingRead>,
    pub(super) conf_changes: HashMap<u64, oneshot::Sender<Result<(), DriverError>>>,
    pub(super) next_id: u64,
    pub(super) id: u64,
    pub(super) compact_every: u64,
    /// When each peer's last message arrived.
    pub(super) heard: HashMap<u64, Instant>,
    /// How recent "heard from recently" is.
    pub(super) recent: Duration,
}

impl Driver {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        mut reports: mpsc::UnboundedReceiver<Msg>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raw.tick();
                }
                m = rx.recv() => match m {
                    Some(m) => {
                        self.handle_msg(m);
                        // Drain what else is waiting: one Ready for the batch.
                        while let Ok(m) = rx.try_recv() {
                            self.handle_msg(m);
                        }
                    }
                    None => return,
                },
                Some(m) = reports.recv() => self.handle_msg(m),
            }
            if let Err(e) = self.on_ready() {
                tracing::error!(error = %e, "raft storage failed; this sentinel stops taking part");
                return;
            }
        }
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn handle_msg(&mut self, m: Msg) {
        match m {
            Msg::Raft(m) => {
                self.heard.insert(m.from, Instant::now());
                if let Err(e) = self.raw.step(m) {
                    tracing::debug!(error = %e, "raft message ignored");
                }
            }
            Msg::Unreachable(id) => self.raw.report_unreachable(id),
            Msg::SnapshotStatus(id, ok) => self.raw.report_snapshot(
                id,
                if ok {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                },
            ),
            Msg::TransferLeader(to) => self.raw.transfer_leader(to),
            Msg::Propose(cmd, reply) => {
                let id = self.take_id();
                let p = Proposal {
                    id,
                    by: self.id,
                    at_ms: vigil_base::clock::unix_ms().max(0) as u64,
                    cmd,
                };
                match self.raw.propose(vec![], p.encode()) {
                    Ok(()) => {
                        self.proposals.insert(id, reply);
                    }
                    Err(_) => {
                        let _ = reply.send(Err(DriverError::NoLeader));
                    }
                }
            }
            Msg::Read(reply) => {
                let id = self.take_id();
                self.raw.read_index(id.to_le_bytes().to_vec());
                self.reads.insert(id, (reply, None));
            }
            Msg::ConfChange(cc, reply) => {
                let id = self.take_id();
                match self.raw.propose_conf_change(id.to_le_bytes().to_vec(), cc) {
                    Ok(()) => {
                        self.conf_changes.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(DriverError::Membership(format!(
                            "membership change refused: {e}"
                        ))));
                    }
                }
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.raw.has_ready() {
            self.resolve_reads();
            return Ok(());
        }
        let mut ready = self.raw.ready();
        self.transport.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.storage.apply_snapshot(snap.clone())?;
            match ClusterState::from_bytes(snap.get_data()) {
                Ok(mut s) => {
                    s.applied = snap.get_metadata().index;
                    self.update_state(|st| *st = s);
                }
                Err(e) => tracing::error!(error = %e, "snapshot from the leader does not decode"),
            }
        }
        self.apply(ready.take_committed_entries())?;
        self.storage.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            self.storage.set_hard_state(hs);
        }
        // Durable before anything that depends on it leaves.
        self.storage.sync()?;
        self.transport.send(ready.take_persisted_messages());
        for rs in ready.read_states() {
            if let Ok(b) = <[u8; 8]>::try_from(&rs.request_ctx[..])
                && let Some(r) = self.reads.get_mut(&u64::from_le_bytes(b))
            {
                r.1 = Some(rs.index);
            }
        }
        if let Some(ss) = ready.ss() {
            // Proposals in flight may be lost with a leadership change; their callers time out.
            tracing::debug!(leader = ss.leader_id, role = ?ss.raft_state, "raft role changed");
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit);
        }
        self.transport.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_compact()?;
        self.resolve_reads();
        self.publish_status();
        Ok(())
    }

    /// Snapshots the state at the applied index and drops the log before it: every
    /// `compact_every` entries, or when a lagging follower needs a newer snapshot.
    fn maybe_compact(&mut self) -> Result<(), StoreError> {
        let applied = self.handle.state.read().applied;
        let snap_index = self.storage.snapshot_index();
        let wanted = self.storage.take_snapshot_request();
        if applied > snap_index && (wanted || applied - snap_index >= self.compact_every) {
            let conf = self.raw.raft.prs().conf().to_conf_state();
            let data = self.handle.state.read().to_bytes();
            self.storage.compact(applied, conf, data)?;
            tracing::debug!(index = applied, "raft log compacted");
        }
        Ok(())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), StoreError> {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if e.data.is_empty() {
                        // A new leader's empty entry.
                        self.update_state(|st| st.applied = e.index);
                        continue;
                    }
                    let result = match Proposal::decode(&e.data) {
                        Ok(p) => {
                            let (r, events) = self.update_state(|st| {
                                let r = st.apply(e.index, &p);
                                let events = if r.is_ok() {
                                    crate::events::committed(e.index, p.at_ms, &p.cmd, st)
                                } else {
                                    Vec::new()
                                };
                                (r, events)
                            });
                            for ev in events {
                                self.handle.events.emit(ev);
                            }
                            if let Err(why) = &r {
                                tracing::info!(index = e.index, why = %why, "command rejected");
                            }
                            (p.by == self.id).then_some((p.id, r))
                        }
                        Err(why) => {
                            tracing::error!(index = e.index, why = %why, "undecodable entry skipped");
                            self.update_state(|st| st.applied = e.index);
                            None
                        }
                    };
                    if let Some((id, r)) = result
                        && let Some(reply) = self.proposals.remove(&id)
                    {
                        let _ = reply.send(r.map_err(DriverError::Rejected));
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    // Both forms, including the empty "leave joint" entry.
                    let applied = if e.get_entry_type() == EntryType::EntryConfChange {
                        raft::eraftpb::ConfChange::parse_from_bytes(&e.data)
                            .map_err(|err| err.to_string())
                            .and_then(|cc| {
                                self.raw
                                    .apply_conf_change(&cc)
                                    .map_err(|err| err.to_string())
                            })
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data)
                            .map_err(|err| err.to_string())
                            .and_then(|cc| {
                                self.raw
                                    .apply_conf_change(&cc)
                                    .map_err(|err| err.to_string())
                            })
                    };
                    let outcome = match applied {
                        Ok(cs) => {
                            self.storage.set_conf_state(&cs);
                            // Published before the caller hears back, so its next status
                            // read shows the new membership.
                            {
                                let mut st = self.handle.status.write();
                                st.voters = cs.get_voters().to_vec();
                                st.learners = cs.get_learners().to_vec();
                            }
                            self.handle.version.fetch_add(1, Ordering::Release);
                            Ok(())
                        }
                        Err(err) => Err(DriverError::Membership(format!(
                            "membership change not applied: {err}"
                        ))),
                    };
                    self.update_state(|st| st.applied = e.index);
                    if let Ok(b) = <[u8; 8]>::try_from(&e.context[..])
                        && let Some(reply) = self.conf_changes.remove(&u64::from_le_bytes(b))
                    {
                        let _ = reply.send(outcome);
                    }
                }
            }
        }
        Ok(())
    }

    /// Answers reads whose read index the state has reached.
    fn resolve_reads(&mut self) {
        let applied = self.handle.state.read().applied;
        let done: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, (tx, idx))| idx.is_some_and(|i| i <= applied) || tx.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some((tx, idx)) = self.reads.remove(&id) {
                let _ = tx.send(idx.ok_or(DriverError::NoLeader));
            }
        }
        // Callers that gave up leave closed senders behind.
        self.proposals.retain(|_, tx| !tx.is_closed());
        self.conf_changes.retain(|_, tx| !tx.is_closed());
    }

    /// Changes the applied state, then tells cached readers.
    fn update_state<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> R {
        let r = f(&mut self.handle.state.write());
        self.handle.version.fetch_add(1, Ordering::Release);
        r
    }

    fn publish_status(&self) {
        let r = self.raw.raft.prs().conf();
        let voters: Vec<u64> = r.voters().ids().iter().collect();
        let learners: Vec<u64> = r.learners().iter().copied().collect();
        let mut s = self.handle.status.write();
        s.leader = self.raw.raft.leader_id;
        s.term = self.raw.raft.term;
        s.is_leader = self.raw.raft.state == StateRole::Leader;
        s.commit = self.raw.raft.raft_log.committed;
        s.applied = self.handle.state.read().applied;
        s.voters = voters;
        s.learners = learners;
        s.snapshot_index = self.storage.snapshot_index();
        s.progress = if s.is_leader {
            self.raw
                .raft
                .prs()
                .iter()
                .map(|(id, p)| {
                    let recent = *id == self.id
                        || self
                            .heard
                            .get(id)
                            .is_some_and(|t| t.elapsed() < self.recent);
                    (*id, p.matched, recent)
                })
                .collect()
        } else {
            Vec::new()
        };
        let leads = s.is_leader;
        drop(s);
        self.handle.version.fetch_add(1, Ordering::Release);
        self.leading
            .send_if_modified(|l| std::mem::replace(l, leads) != leads);
    }
}
