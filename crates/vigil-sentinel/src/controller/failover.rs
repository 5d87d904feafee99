//! A failover, step by step: ODOWN and the choice of the candidate, the `BeginFailover`
//! compare-and-swap, then fence → wait out the lease if the fence failed → promote → repoint →
//! `CompleteFailover`, each step idempotent from the committed state; the steps of an
//! operator's switchover too (begun in `switchover`).

use std::time::{Duration, Instant};

use vigil_proto::node::PromoteRequest;

use super::decide::{Observed, split};
use super::decide::{Tally, choose_candidate, drift, lease, silent_replicas, surely_acked, tally};
use super::steady::Repoint;
use super::{Controller, PROPOSE};
use crate::events::Event;
use crate::nodes::HandOver;
use crate::state::{AbortReason, Command, Driver, Failover, Group, Step};

impl Controller {
    /// Starts a failover if the master is objectively down. `None`: the master is not (or may
    /// not yet be) replaced, tend it as usual; `Some(committed)` otherwise.
    pub(super) async fn maybe_begin_failover(
        &mut self,
        g: &Group,
        master: &str,
        observed: &Observed,
    ) -> Option<bool> {
        let s = &g.spec.settings;
        let name = g.spec.name.clone();
        let down_after = Duration::from_millis(s.down_after_ms);
        // Through `sdown`, so `+sdown` is announced before anything that follows from it.
        if !self
            .health
            .sdown(&name, master, down_after, g.epoch, &self.events)
        {
            // The outage, if there was one, is over: a next one waits afresh.
            self.local(&name).unseen_since = None;
            return None;
        }
        let min_interval = Duration::from_millis(s.min_failover_interval_ms);
        if let Some((_, at)) = self.local(&name).last_failover
            && at.elapsed() < min_interval
        {
            tracing::debug!(
                master,
                "master down, but the last failover was less than min_failover_interval ago"
            );
            let why = format!(
                "{master} is down; no failover until min_failover_interval has passed since the last one"
            );
            self.say(&name, why);
            return None;
        }
        // Fresh opinions, all asked at once: ODOWN when `quorum` sentinels, this one
        // included, see it down.
        let mut asks = tokio::task::JoinSet::new();
        for id in self.peers.peers() {
            let (peers, group, node) = (self.peers.clone(), name.clone(), master.to_string());
            asks.spawn(async move { (id, peers.opinion(id, &group, &node).await) });
        }
        let mut heard = Vec::new();
        while let Some(r) = asks.join_next().await {
            if let Ok((id, Some(o))) = r {
                heard.push((id, o));
            }
        }
        // What any sentinel saw acknowledged: a leader elected a moment ago knows it too.
        let Tally {
            votes,
            sees_it_up,
            acked,
        } = tally(&heard, s.down_after_ms, self.health.acked(&name));
        if votes < s.quorum {
            tracing::info!(
                master,
                votes,
                quorum = s.quorum,
                "master down here, but no quorum agrees yet"
            );
            let why = format!(
                "{master} is down here; waiting for a quorum ({votes}/{})",
                s.quorum
            );
            self.say(&name, why);
            // Seen down only from here while a peer reaches it: that peer can keep its lease.
            if let Some(id) = sees_it_up
                && self.health.unanswered_for(&name, master) >= down_after * 2
            {
                tracing::warn!(
                    master,
                    to = id,
                    "this leader cannot reach the master that others can: handing leadership over"
                );
                self.raft.transfer_leader(id);
            }
            return None;
        }
        let l = self.local(&name);
        if l.odown.is_none() {
            l.odown = Some(master.to_string());
            self.events.emit(Event::local(
                "+odown",
                &name,
                master,
                g.epoch,
                format!("#quorum {votes}/{}", s.quorum),
            ));
        }
        let acked = if s.sync_replicas > 0 {
            self.local(&name).acked.max(acked)
        } else {
            0
        };
        // In sync mode the candidate must hold every acknowledged write, which the replicas'
        // offsets tell only once the master can acknowledge no more: its lease has surely
        // ended. Seen down by the leader that granted it, it has (the lease arithmetic); a
        // leader elected meanwhile, or one that kept renewing a master whose data port it
        // could not reach, waits as a promotion would, and reads the offsets afresh.
        if s.sync_replicas > 0 && g.spec.driver != Driver::Resp {
            let since = self.leader_since.unwrap_or_else(Instant::now);
            let over = self.lease_surely_over(g, since);
            if self.local(&name).round_asked.is_none_or(|a| a < over) {
                let why = format!(
                    "{master} is down; choosing a replica once its lease has surely ended (the replicas' offsets are final then)"
                );
                self.say(&name, why);
                return Some(false);
            }
        }
        Some(self.begin_failover(g, master, observed, acked, votes).await)
    }

    /// When every lease the master of `g` may hold has surely ended, to this leader (which has
    /// led since `leader_since`): no leader granted more than the committed lease, and this
    /// one's last grant ends at `lease_bound`.
    fn lease_surely_over(&mut self, g: &Group, leader_since: Instant) -> Instant {
        let ttl = lease(&g.spec.settings).min(Duration::from_millis(g.lease_bound_ms()));
        let committed = Duration::from_millis(g.lease_bound_ms()).max(ttl);
        let margin = drift(committed);
        let over = leader_since + committed + margin;
        match self.local(&g.spec.name).lease_bound {
            Some(b) => over.max(b + margin),
            None => over,
        }
    }

    /// Chooses the candidate and commits `BeginFailover` (at least `min_offset`; `votes`, for
    /// the log, is 0 when no quorum was needed). Returns whether it committed.
    pub(super) async fn begin_failover(
        &mut self,
        g: &Group,
        master: &str,
        observed: &Observed,
        min_offset: u64,
        votes: u32,
    ) -> bool {
        let name = g.spec.name.clone();
        let down_after = Duration::from_millis(g.spec.settings.down_after_ms);
        let excluded = self.local(&name).excluded.clone();
        let health = self.health.clone();
        let sdown = |n: &str| health.unanswered_for(&name, n) >= down_after;
        let mut filled = observed.clone();
        if g.spec.settings.sync_replicas > 0
            && let Some(n) = self.awaited_replica(g, master, &mut filled, &sdown)
        {
            let why = format!(
                "{master} is down; waiting for {n}'s offset before choosing a replica (it may hold the last acknowledged writes)"
            );
            self.say(&name, why);
            return false;
        }
        let observed = &filled;
        let surely = surely_acked(g, observed, master);
        let floor = (min_offset, surely);
        let candidate = choose_candidate(g, observed, master, floor, &excluded, sdown);
        let silent = silent_replicas(g, observed, master).len();
        let unbounded =
            g.spec.settings.sync_replicas > 0 && silent >= g.spec.settings.sync_replicas as usize;
        if let Some((cand, offset)) = candidate
            && (offset < surely || unbounded)
        {
            // The replicas that surely hold every acknowledged write may not be promoted
            // (priority 0, or they failed this outage), or too many replicas gave no offset
            // to tell: the candidate may lack some.
            tracing::warn!(
                master,
                candidate = %cand.name,
                offset,
                surely,
                silent,
                "no eligible replica surely holds every acknowledged write: promoting the best one seen"
            );
        }
        let Some((cand, offset)) = candidate else {
            let why = format!(
                "{master} is down and no replica is eligible (min offset {min_offset}): unavailable until one is"
            );
            self.say(&name, why);
            let l = self.local(&name);
            if !l.no_good {
                l.no_good = true;
                tracing::error!(
                    master,
                    min_offset,
                    "master is down and no replica is eligible: staying unavailable rather than promote a stale node"
                );
                self.events.emit(Event::local(
                    "-failover-abort-no-good-slave",
                    &name,
                    master,
                    g.epoch,
                    format!("no eligible replica (min_offset {min_offset})"),
                ));
            }
            return false;
        };
        let cmd = Command::BeginFailover {
            group: name.clone(),
            expected_epoch: g.epoch,
            new_epoch: g.epoch + 1,
            old: Some(master.to_string()),
            candidate: cand.name.clone(),
            min_offset,
            manual: false,
        };
        // Every replica's offset, so a reader of the log can check the choice.
        let offsets = g
            .spec
            .nodes
            .iter()
            .zip(observed)
            .map(|(n, st)| match st {
                Some((st, _)) => format!("{}={}", n.name, st.offset),
                None => format!("{}=?", n.name),
            })
            .collect::<Vec<_>>()
            .join(" ");
        match self.raft.propose(cmd, PROPOSE).await {
            Ok(()) => {
                tracing::warn!(old = master, candidate = %cand.name, offset, min_offset, offsets, votes, "failover begun");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "failover not begun this round");
                false
            }
        }
    }

    /// In sync mode, a replica (not seen down here) whose offset this round lacks, while
    /// this outage of `master` has waited less than `down_after` for one, and only when
    /// `sync_replicas` or more replicas lack one (with fewer, a replica that answered holds
    /// every acknowledged write: [`surely_acked`]). The acknowledged offset known here may be
    /// a renewal round old, and the last acknowledged writes may be on the silent replicas
    /// alone. A status this sentinel's probes asked for since the wait began fills the gap:
    /// the master's lease was over by then (see `maybe_begin_failover`; a master restarted
    /// behind its replicas has none), so the offset is final. A replica that gave none for
    /// `down_after` more is a second fault: the failover then goes on without it rather than
    /// leave the group unwritable.
    fn awaited_replica(
        &mut self,
        g: &Group,
        master: &str,
        observed: &mut Observed,
        sdown: &impl Fn(&str) -> bool,
    ) -> Option<String> {
        let name = &g.spec.name;
        let need = g.spec.settings.sync_replicas as usize;
        let missing = |o: &Observed| silent_replicas(g, o, master);
        if missing(observed).len() < need {
            return None;
        }
        let key = (master.to_string(), g.epoch);
        let l = self.local(name);
        let since = match &l.unseen_since {
            Some((k, t)) if *k == key => *t,
            _ => l.unseen_since.insert((key, Instant::now())).1,
        };
        for i in missing(observed) {
            let node = &g.spec.nodes[i].name;
            if let Some(st) = self.health.status_asked_since(name, node, since) {
                observed[i] = Some((st, Instant::now()));
            }
        }
        let missing = missing(observed);
        if missing.len() < need {
            return None;
        }
        // Not asked this round when held down here (`observe`'s `skip`).
        let unseen = missing
            .into_iter()
            .map(|i| &g.spec.nodes[i].name)
            .find(|n| !sdown(n) && !self.health.is_sdown(name, n))?
            .clone();
        if since.elapsed() < Duration::from_millis(g.spec.settings.down_after_ms) {
            return Some(unseen);
        }
        tracing::warn!(
            master,
            replica = unseen,
            "no offset from a replica for down_after: choosing among the others"
        );
        None
    }

    async fn abort(&mut self, g: &Group, f: &Failover, why: AbortReason, reason: String) -> bool {
        self.local(&g.spec.name)
            .excluded
            .insert(f.candidate.clone());
        let cmd = Command::AbortFailover {
            group: g.spec.name.clone(),
            epoch: f.epoch,
            reason,
            why,
        };
        self.raft.propose(cmd, PROPOSE).await.is_ok()
    }

    /// Drives a committed failover one step, idempotently; returns whether a step committed.
    pub(super) async fn drive_failover(
        &mut self,
        g: &Group,
        f: &Failover,
        observed: &Observed,
        leader_since: Instant,
    ) -> bool {
        let name = g.spec.name.clone();
        let l = self.local(&name);
        let seen = match l.failover_seen {
            Some((e, at)) if e == f.epoch => at,
            _ => {
                let now = Instant::now();
                l.failover_seen = Some((f.epoch, now));
                l.reconf.clear();
                now
            }
        };
        let timeout = Duration::from_millis(g.spec.settings.failover_timeout_ms);
        if seen.elapsed() > timeout {
            tracing::error!(candidate = %f.candidate, "failover not finished within {timeout:?}: aborted");
            let reason = format!("not finished within {timeout:?}");
            return self.abort(g, f, AbortReason::Timeout, reason).await;
        }
        let Some(ci) = g.spec.nodes.iter().position(|n| n.name == f.candidate) else {
            return false;
        };
        match f.step {
            Step::Begun => self.promote(g, f, ci, observed, leader_since).await,
            Step::Promoted => {
                if !self.repoint(g, ci, observed, Repoint::Failover).await {
                    let why = format!(
                        "failover: {} promoted; repointing the other nodes",
                        f.candidate
                    );
                    self.say(&name, why);
                    return false;
                }
                let cmd = Command::CompleteFailover {
                    group: name,
                    epoch: f.epoch,
                };
                self.raft.propose(cmd, PROPOSE).await.is_ok()
            }
        }
    }

    /// Asks the reachable old master of a switchover to hand its role to the candidate
    /// itself ([`NodeAdmin::hand_over`]): `Some(true)` when it did, `Some(false)` when it
    /// cannot (go on with fence and promotion), `None` when a hand-over is under way.
    async fn hand_over(&mut self, g: &Group, f: &Failover, ci: usize) -> Option<bool> {
        let name = &g.spec.name;
        let Some(o) = f
            .old
            .as_ref()
            .filter(|old| !self.health.is_sdown(name, old))
            .and_then(|old| g.spec.nodes.iter().find(|n| &n.name == old))
        else {
            return Some(false);
        };
        let Some((host, port)) = split(&g.spec.nodes[ci].data) else {
            return Some(false);
        };
        let req = HandOver {
            epoch: f.epoch,
            host,
            port,
            tls: split(&g.spec.nodes[ci].tls_data),
            timeout: Duration::from_millis(g.spec.settings.down_after_ms)
                .clamp(Duration::from_millis(500), Duration::from_secs(5)),
        };
        match self.nodes.hand_over(&o.admin, req).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::info!(old = %o.name, error = %e, "switchover: hand-over not settled yet");
                let why = format!("switchover: {} handing over ({})", o.name, e.message());
                self.say(name, why);
                None
            }
        }
    }

    /// Fences the old master, waits out its lease if the fence failed, promotes the candidate
    /// and commits `Promoted`.
    async fn promote(
        &mut self,
        g: &Group,
        f: &Failover,
        ci: usize,
        observed: &Observed,
        leader_since: Instant,
    ) -> bool {
        let name = g.spec.name.clone();
        let cand = &g.spec.nodes[ci];
        // Never more than the committed lease (see `lease_to_grant`).
        let ttl = lease(&g.spec.settings).min(Duration::from_millis(g.lease_bound_ms()));
        // A reachable old master is fenced at the new epoch: it stops acknowledging at once
        // (checked when each reply leaves), so its lease need not be waited out, and its
        // offset is final.
        let mut final_offset = None;
        let mut acked = 0;
        // A switchover first asks the old master to hand over itself (Redis' `FAILOVER`: zero
        // loss, no lease to wait out); a node that cannot takes the fence path below.
        let handed = if f.manual {
            match self.hand_over(g, f, ci).await {
                Some(h) => h,
                None => return false,
            }
        } else {
            false
        };
        // Not tried on an old master this sentinel holds down: it would only time out, and
        // the lease it last took has ended by then (a lease ends before `down_after`, see the
        // module doc).
        if !handed
            && let Some(old) = &f.old
            && !self.health.is_sdown(&name, old)
            && let Some(o) = g.spec.nodes.iter().find(|n| &n.name == old)
            && let Ok(Ok(st)) = self.fence(g, &o.admin, f.epoch).await
            && st.fenced
            && st.epoch >= f.epoch
        {
            final_offset = Some(st.offset);
            acked = st.acked_offset;
        }
        // Stock servers managed over RESP hold no lease: there is nothing to wait out.
        if final_offset.is_none()
            && !handed
            && g.spec.driver != Driver::Resp
            && Instant::now() < self.lease_surely_over(g, leader_since)
        {
            self.say(
                &name,
                "failover: waiting until the old master's lease has surely expired",
            );
            tracing::debug!("old master not fenced: waiting out its lease");
            return false;
        }
        // A switchover promotes only once the candidate has everything the old master had:
        // zero loss in async mode too.
        let min_offset = if f.manual {
            f.min_offset.max(final_offset.unwrap_or(0))
        } else if g.spec.settings.sync_replicas > 0 {
            // The fenced master's last word on what its sync replicas acknowledged.
            f.min_offset.max(acked)
        } else {
            f.min_offset
        };
        let Some((st, arrived)) = &observed[ci] else {
            return false;
        };
        let req = PromoteRequest {
            epoch: f.epoch,
            min_offset,
            lease_ttl_ms: ttl.as_millis() as u64,
            lease_since_node_ms: st.node_clock_ms,
        };
        match self.nodes.promote(&cand.admin, req).await {
            Ok(_) => {
                let l = self.local(&name);
                l.lease_bound = Some(*arrived + ttl);
                l.grants.insert(ttl.as_millis() as u64, *arrived + ttl);
                let cmd = Command::Promoted {
                    group: name,
                    epoch: f.epoch,
                };
                self.raft.propose(cmd, PROPOSE).await.is_ok()
            }
            Err(e) if e.code() == tonic::Code::FailedPrecondition && f.manual => {
                tracing::info!(candidate = %cand.name, min_offset, "switchover: candidate still catching up");
                let why = format!(
                    "switchover: {} catching up to offset {min_offset}",
                    cand.name
                );
                self.say(&name, why);
                false
            }
            Err(e) if e.code() == tonic::Code::FailedPrecondition => {
                let reason = format!("candidate {} refused: {}", cand.name, e.message());
                tracing::error!(candidate = %cand.name, min_offset, "{reason}");
                self.abort(g, f, AbortReason::CandidateRefused, reason)
                    .await
            }
            Err(e) => {
                tracing::warn!(candidate = %cand.name, error = %e, "promotion not done this round");
                false
            }
        }
    }
}
