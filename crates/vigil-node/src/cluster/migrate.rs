//! The node's part in slot migration, driven by its view and role (see the sentinels'
//! `state::migration` for the phases): exporting as the source's master ([`super::export`]),
//! importing as the target's master ([`super::import`]), and `DropSlots`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;
use vigil_proto::node::node_admin_client::NodeAdminClient;
use vigil_proto::node::{ExportSlotsRequest, SlotRange};
use vigil_resp::request::{ParseLimits, RequestParser};

use super::Phase;
use super::export::{AHEAD, ExportError, Step, Stream};
use super::import::{DropError, Import, Progress, delete_keys};
use crate::node::Node;

/// How often the node compares what it imports with what its view and role say when neither
/// announced a change (a safety net: every change is announced).
const EVERY: Duration = Duration::from_secs(1);
/// Keys deleted per hold of the store lock (about 2 ms): clients' commands wait meanwhile.
const DROP_MAX: usize = 2_000;
/// How long a target asks again a source that refuses its export (its view behind).
const SOURCE_LAG: Duration = Duration::from_secs(2);
/// How often it asks meanwhile.
const SOURCE_RETRY: Duration = Duration::from_millis(50);
/// The largest chunk accepted from a source (a key's `RESTORE` can be large).
const MAX_CHUNK: usize = 1 << 30;

impl Node {
    /// Starts exporting migration `id` (replacing any export): the snapshot of its slots and
    /// then their writes, as [`Stream`].
    pub fn export_slots(self: &Arc<Self>, id: u64) -> Result<Stream, ExportError> {
        // The view is read under the store lock, which a view change and `DropSlots` take too:
        // an export accepted here snapshots slots the source has not deleted.
        let mut store = self.store.lock();
        let view = self.cluster_view().ok_or(ExportError::NotListed(id))?;
        let m = view
            .migration
            .as_ref()
            .filter(|m| m.id == id && m.from == view.my_shard && m.phase != Phase::Cleanup)
            .ok_or(ExportError::NotListed(id))?;
        let mut slots = vec![false; vigil_resp::slot::SLOTS as usize];
        for &(a, b) in &m.ranges {
            slots[a as usize..=b as usize].fill(true);
        }
        // A lapsed lease is no reason to refuse: the snapshot is a read, and the stream carries
        // only writes, which the node takes again once its lease is renewed.
        if !self.gate.leads() {
            return Err(ExportError::NotMaster);
        }
        let stream = self.export.start(&mut store, id, slots);
        drop(store);
        tokio::spawn(self.clone().send_snapshot(stream.generation));
        Ok(stream)
    }

    /// Copies export `generation`'s slots a step per hold of the store lock, waiting while
    /// the target is far behind, until the snapshot is out or the export ends.
    async fn send_snapshot(self: Arc<Self>, generation: u64) {
        loop {
            match self.export.queued(generation) {
                None => return,
                Some(q) if q > AHEAD => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Some(_) => {}
            }
            let step = {
                let mut store = self.store_when_free().await;
                // Demotions happen under the store lock: a node that no longer leads its shard
                // (its data may be another master's after a resync) copies nothing more.
                if !self.gate.leads() {
                    self.export.retain(None);
                    return;
                }
                self.export.step(&mut store, generation)
            };
            if step != Step::More {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// `DropSlots`: deletes up to [`DROP_MAX`] keys of `ranges`, none of which this node's shard
    /// owns, replicated as `DEL`s; an import into them is cancelled first. Returns how many.
    pub fn drop_slots(&self, ranges: &[(u16, u16)], epoch: u64) -> Result<u64, DropError> {
        // Under the store lock, which a view change takes too.
        let mut store = self.store.lock();
        let view = self.cluster_view().ok_or(DropError::NoView)?;
        if view.epoch < epoch {
            return Err(DropError::Stale {
                have: view.epoch,
                want: epoch,
            });
        }
        for &(a, b) in ranges {
            if let Some(s) =
                (a..=b).find(|&s| view.owner_of(s).is_some_and(|(o, _)| o == view.my_shard))
            {
                return Err(DropError::Owned(s));
            }
        }
        if !self.gate.may_write(Instant::now()) {
            return Err(DropError::NotMaster);
        }
        self.import.cancel_overlapping(ranges);
        // The export of these slots ends first: their deletion is not the target's to apply.
        self.export.end_overlapping(ranges);
        let props = delete_keys(&mut store, ranges, DROP_MAX);
        let n = props.iter().map(|(_, d)| d.len() as u64 - 1).sum();
        self.propagate(&props);
        drop(store);
        Ok(n)
    }

    /// Applies one batch of an import, under the store lock, as this node's own writes; or
    /// applies nothing and says [`Applied::Later`] while the node's lease has lapsed (its
    /// history grows only under a lease, as clients' writes do).
    fn apply_imported(
        &self,
        id: u64,
        cmds: &[Vec<Bytes>],
        ranges: &[(u16, u16)],
        cancel: &CancellationToken,
    ) -> Result<Applied, String> {
        let mut store = self.store.lock();
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        // Committed: everything the source acknowledged is here already (the sentinels
        // commit only then); what it streams after is its own cleanup, not ours to apply.
        if self.cluster_view().is_some_and(|v| {
            v.migration
                .as_ref()
                .is_none_or(|m| m.id != id || m.phase == Phase::Cleanup)
        }) {
            cancel.cancel();
            return Ok(Applied::Done);
        }
        if !self.gate.may_write(Instant::now()) {
            return match self.gate.leads() {
                true => Ok(Applied::Later),
                false => Err(NOT_LEADING.into()),
            };
        }
        let now = vigil_base::clock::unix_ms();
        let mut props = Vec::new();
        let mut scratch = Vec::new();
        for cmd in cmds {
            if cmd[0].eq_ignore_ascii_case(b"flushall") || cmd[0].eq_ignore_ascii_case(b"flushdb") {
                // The source flushed: here that empties the imported slots only.
                props.extend(delete_keys(&mut store, ranges, usize::MAX));
                continue;
            }
            crate::replay::apply_logged(
                &self.table,
                crate::cmd::functions::logged,
                &mut store,
                0,
                cmd.clone(),
                now,
                &mut scratch,
            )?;
            props.append(&mut scratch);
        }
        store.publish_events(&self.shared.hub);
        self.propagate(&props);
        Ok(Applied::Done)
    }
}

/// What [`Node::apply_imported`] did with a batch.
enum Applied {
    Done,
    /// Nothing: the lease lapsed; offer the batch again.
    Later,
}

/// Why an import ends when its node stops leading the shard.
const NOT_LEADING: &str =
    "interrupted: this node stopped being its shard's master (fenced or demoted)";

/// How often an import waiting out a lapsed lease looks again.
const LAPSE_POLL: Duration = Duration::from_millis(10);

/// About this many bytes of an import's commands are applied per hold of the store lock.
pub(super) const APPLY_BYTES: usize = 64 << 10;

/// How many of `cmds` make the next batch to apply: [`APPLY_BYTES`] of them, and at least the
/// first (the count starts below the limit).
pub(super) fn apply_batch(cmds: &[Vec<Bytes>]) -> usize {
    let mut bytes = 0;
    cmds.iter()
        .take_while(|c| {
            let fits = bytes < APPLY_BYTES;
            bytes += c.iter().map(|a| a.len()).sum::<usize>();
            fits
        })
        .count()
}

/// Runs on every node for its life: starts the import its view and role call for, and cancels
/// one they no longer call for. Exports end the same way. It looks when the view or the role
/// changes, not on a short poll: an idle node should not wake twenty times a second for
/// nothing (on a small machine the wakeups of the whole cluster compete with its clients).
pub async fn supervise(node: Arc<Node>) {
    loop {
        let view = node.view_changed.notified();
        let role = node.gate.transitioned();
        tokio::pin!(view, role);
        // Before looking: a change while reconciling is not missed.
        view.as_mut().enable();
        role.as_mut().enable();
        reconcile(&node);
        tokio::select! {
            _ = view => {}
            _ = role => {}
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

fn reconcile(node: &Arc<Node>) {
    let view = node.cluster_view();
    // Not `may_write`: a lapse that a renewal ends must not end the export or the import.
    let master = node.gate.leads();
    let m = view
        .as_ref()
        .and_then(|v| v.migration.as_ref().map(|m| (v, m)));
    let exporting = m
        .filter(|(v, m)| master && m.from == v.my_shard && m.phase != Phase::Cleanup)
        .map(|(_, m)| m.id);
    node.export.retain(exporting);
    let want = m
        .filter(|(v, m)| master && m.to == v.my_shard && m.phase != Phase::Cleanup)
        .and_then(|(v, m)| {
            let admin = v.shards[m.from].master.as_ref()?.admin.clone();
            (!admin.is_empty()).then(|| (m.id, m.ranges.clone(), admin))
        });
    let mut cur = node.import.current.lock();
    if let (Some(i), Some((id, ..))) = (cur.as_ref(), &want)
        && i.id == *id
    {
        return;
    }
    if let Some(old) = cur.as_ref()
        && !old.cancel.is_cancelled()
    {
        old.cancel.cancel();
        // Still listed, not committed: the sentinels must hear it stopped, to start over.
        let listed = m.is_some_and(|(_, m)| m.id == old.id && m.phase != Phase::Cleanup);
        if listed {
            *old.progress.error.lock() = NOT_LEADING.into();
        }
    }
    let Some((id, ranges, admin)) = want else {
        return;
    };
    if id <= node.import.started.load(Ordering::Acquire) {
        return;
    }
    node.import.started.store(id, Ordering::Release);
    let progress = Arc::new(Progress::default());
    progress.running.store(true, Ordering::Release);
    let cancel = CancellationToken::new();
    *cur = Some(Import {
        id,
        progress: progress.clone(),
        cancel: cancel.clone(),
        ranges: ranges.clone(),
    });
    drop(cur);
    let node = node.clone();
    tokio::spawn(async move {
        tracing::info!(migration = id, source = %admin, "slot import started");
        let r = import(&node, id, &ranges, &admin, &progress, &cancel).await;
        // The source ends its export once the new owner is committed: that is the end.
        let committed = node.cluster_view().is_some_and(|v| {
            v.migration
                .as_ref()
                .is_some_and(|m| m.id == id && m.phase == Phase::Cleanup)
        });
        match r {
            Err(e) if !cancel.is_cancelled() && !committed => {
                tracing::warn!(migration = id, error = %e, "slot import failed");
                *progress.error.lock() = e;
            }
            _ => tracing::info!(migration = id, "slot import ended"),
        }
        progress.running.store(false, Ordering::Release);
    });
}

async fn import(
    node: &Node,
    id: u64,
    ranges: &[(u16, u16)],
    admin: &str,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let token = node
        .config
        .read()
        .admin_token()
        .ok_or("no admin token to present to the source")?;
    let bearer = vigil_proto::auth::Bearer::new(&token).ok_or("the admin token is not valid")?;
    // No call timeout: the stream lasts as long as the migration; the sentinels cancel an
    // import that stops progressing.
    let channel = vigil_proto::channel::lazy(admin, Duration::from_secs(7 * 24 * 3600))
        .map_err(|e| e.to_string())?;
    let mut client =
        NodeAdminClient::with_interceptor(channel, bearer).max_decoding_message_size(MAX_CHUNK);
    let req = ExportSlotsRequest {
        id,
        slots: ranges
            .iter()
            .map(|&(a, b)| SlotRange {
                start: a as u32,
                end: b as u32,
            })
            .collect(),
    };
    // The sentinels push a view to every node at once, and the source's may land after this
    // call (or the source's master be a moment from answering): a refusal is asked again
    // for a while before the attempt counts as failed.
    let asked = Instant::now();
    let mut stream = loop {
        let r = tokio::select! {
            r = client.export_slots(req.clone()) => r,
            _ = cancel.cancelled() => return Ok(()),
        };
        match r {
            Ok(s) => break s.into_inner(),
            Err(e)
                if asked.elapsed() < SOURCE_LAG
                    && matches!(
                        e.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::Unavailable
                    ) =>
            {
                tokio::select! {
                    _ = tokio::time::sleep(SOURCE_RETRY) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            Err(e) => return Err(format!("the source refused: {}", e.message())),
        }
    };
    // What an earlier attempt left goes now, and only now: the source took its snapshot, so
    // it still had every key of the slots (it deletes them only after the commit, and then
    // refuses an export). A node whose view is behind (restarted, or a push late) cannot
    // delete a copy the sentinels have committed.
    // A batch per hold of the store lock: a large leftover must not stop the node.
    loop {
        let deleted = {
            let mut store = node.store_when_free().await;
            if cancel.is_cancelled() {
                return Ok(());
            }
            if node.gate.may_write(Instant::now()) {
                let props = delete_keys(&mut store, ranges, DROP_MAX);
                node.propagate(&props);
                Some(!props.is_empty())
            } else if node.gate.leads() {
                None
            } else {
                return Err(NOT_LEADING.into());
            }
        };
        match deleted {
            Some(false) => break,
            Some(true) => tokio::task::yield_now().await,
            None => tokio::time::sleep(LAPSE_POLL).await,
        }
    }
    let limits = ParseLimits::peer(MAX_CHUNK, 1 << 20);
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = cancel.cancelled() => return Ok(()),
        };
        let chunk = match msg {
            Ok(Some(c)) => c,
            Ok(None) => return Err("the source ended its export".into()),
            Err(e) => return Err(format!("the export broke: {}", e.message())),
        };
        buf.extend_from_slice(&chunk.commands);
        let mut cmds = Vec::new();
        loop {
            match parser.parse(&mut buf, &limits, true) {
                Ok(Some(c)) if c.is_empty() => {}
                Ok(Some(c)) => cmds.push(c),
                Ok(None) => break,
                Err(e) => return Err(format!("the export is not RESP: {e}")),
            }
        }
        // A few hundred commands per hold of the store lock: a chunk holds thousands, and
        // clients' commands wait while the lock is held.
        let mut rest = &cmds[..];
        while !rest.is_empty() {
            let n = apply_batch(rest);
            node.script_done().await;
            match node.apply_imported(id, &rest[..n], ranges, cancel)? {
                Applied::Done if cancel.is_cancelled() => return Ok(()),
                Applied::Done => rest = &rest[n..],
                Applied::Later => tokio::time::sleep(LAPSE_POLL).await,
            }
            if !rest.is_empty() {
                tokio::task::yield_now().await;
            }
        }
        progress
            .generation
            .store(chunk.generation, Ordering::Release);
        progress.offset.store(chunk.offset, Ordering::Release);
        if chunk.snapshot_done {
            progress.snapshot_done.store(true, Ordering::Release);
        }
    }
}
