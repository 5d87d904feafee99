//! The node's use of its view: adopting a pushed one ([`Node::set_cluster_view`]) and the
//! routing check every client command passes before it runs or is queued
//! ([`Node::cluster_check`]). Only client connections pass it: the replication stream and
//! the append log are applied without it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use prost::Message;
use vigil_proto::node as pb;
use vigil_resp::slot::key_slot;
use vigil_resp::{CommandMeta, Conn, Flags, Reply};

use super::route::{Client, Redirect, keys_slot, not_master, route};
use super::{View, ViewError, digest, file};
use crate::gate::Role;
use crate::node::Node;
use crate::repl::Phase;
use crate::session::ConnState;

/// Why a request is not run now.
#[derive(Debug)]
pub enum Refusal {
    /// Answered with this reply (a redirect, CROSSSLOT, CLUSTERDOWN, a refused command).
    Reply(Reply),
    /// A write to a slot this node's shard is handing over: it waits for the next view.
    Hold,
}

impl From<Reply> for Refusal {
    fn from(r: Reply) -> Refusal {
        Refusal::Reply(r)
    }
}

impl From<Redirect> for Refusal {
    fn from(r: Redirect) -> Refusal {
        Refusal::Reply(r.into())
    }
}

/// Why a write found misrouted under the store lock does not run ([`Node::misrouted_write`]).
#[derive(Debug)]
pub enum Misrouted {
    /// Its slot is held by a migration's pause: [`TRYAGAIN`].
    Held,
    /// Its slot is another shard's now: this reply (`MOVED`, `CLUSTERDOWN`).
    Elsewhere(Reply),
}

/// The reply to a write that reached a held slot after all (bounded wait, or a race with the
/// view that began the hold), as Redis words it; cluster clients retry it.
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
/// A script's call on a key this shard does not serve (Redis' wording).
const NON_LOCAL: &str = "ERR Script attempted to access a non local key in a cluster node";

/// Why a pushed view was not adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// Refused: malformed, another cluster's or older.
    #[error(transparent)]
    Refused(#[from] ViewError),
    /// It could not be persisted, so it is not served.
    #[error(transparent)]
    Persist(#[from] crate::error::NodeError),
}

impl Node {
    /// The served view (`None`: not in cluster mode).
    pub fn cluster_view(&self) -> Option<Arc<View>> {
        // Outside cluster mode (most nodes), no lock on the hot path.
        if !self.shared.cluster_mode.load(Ordering::Acquire) {
            return None;
        }
        self.cluster.read().clone()
    }

    /// Adopts a view pushed by the sentinels: validated, checked newer than the served one,
    /// persisted, then served. Returns its digest. The caller serialises calls.
    pub fn set_cluster_view(&self, v: &pb::ClusterView) -> Result<String, AdoptError> {
        // An empty view: the node's group left its cluster.
        if v.name.is_empty() && v.shards.is_empty() {
            return self.leave_cluster();
        }
        let encoded = v.encode_to_vec();
        let view = View::from_proto(v, digest(&encoded))?;
        // A node that left a cluster may join another, or its own again at a newer epoch (its
        // removal raised the epoch: a late push of a view from before it is refused).
        let current = self.cluster_view();
        if let Some(c) = current.as_deref().filter(|c| c.is_left())
            && c.name == view.name
            && view.epoch <= c.epoch
        {
            return Err(ViewError::Older(format!(
                "its epoch {} is not newer than the one this node's group left the cluster at ({})",
                view.epoch, c.epoch
            ))
            .into());
        }
        // Migration ids count per cluster: joining another one, the imports this node
        // started for the old one say nothing about the new one's ids.
        let other_cluster = current.as_deref().is_some_and(|c| c.name != view.name);
        let current = current.filter(|c| !c.is_left());
        view.check_replaces(current.as_deref())?;
        let d = view.digest.clone();
        // The same bytes again (a sentinel retrying): already durable and served.
        if current.is_some_and(|c| c.digest == d) {
            return Ok(d);
        }
        let dir = self.config.read().dir.clone();
        file::save(&dir, &encoded)?;
        self.bus.retain(&view);
        let view = Arc::new(view);
        {
            // Under the store lock, so a write that runs after this sees the slots this view
            // holds (`held_write`): a migration's source reads its final export offset under
            // the same lock.
            let _store = self.store.lock();
            if other_cluster {
                self.import.forget_started();
            }
            *self.cluster.write() = Some(view.clone());
            self.holding.store(view.holds_any(), Ordering::Release);
            self.shared.cluster_mode.store(true, Ordering::Release);
        }
        self.view_changed.notify_waiters();
        // Shard channels of slots this shard does not own (moved away, or subscribed before
        // the node joined the cluster) would never see a message: their subscribers are told
        // (`sunsubscribe`), as Redis Cluster tells them when a slot moves.
        let ours = |ch: &[u8]| {
            view.owner_of(key_slot(ch))
                .is_some_and(|(o, _)| o == view.my_shard)
        };
        self.shared.hub.end_shard_channels(|ch| !ours(ch));
        tracing::info!(cluster = %v.name, epoch = v.epoch, digest = %d, "cluster view adopted");
        Ok(d)
    }

    /// Leaves the cluster (the group was removed from it): the node keeps serving its last
    /// view as [`View::left`] until it is restarted or given another, and so sends a cluster
    /// client whose slot map is older on to the owners (`MOVED`). Serving as a standalone node
    /// at once would take that client's writes for slots it gave away, and they would be lost
    /// to the cluster. The file goes first, so a restart comes back standalone. Returns the
    /// empty digest (the sentinels stop telling it to leave).
    fn leave_cluster(&self) -> Result<String, AdoptError> {
        let Some(old) = self.cluster_view().filter(|v| !v.is_left()) else {
            return Ok(String::new());
        };
        let dir = self.config.read().dir.clone();
        file::remove(&dir)?;
        {
            let _store = self.store.lock();
            *self.cluster.write() = Some(Arc::new(old.left()));
            self.holding.store(false, Ordering::Release);
        }
        self.view_changed.notify_waiters();
        // It serves no slot: its shard channels' subscribers are told (`sunsubscribe`).
        self.shared.hub.end_shard_channels(|_| true);
        tracing::info!(
            cluster = %old.name,
            "left the cluster: sending clients on to the slots' owners until restarted"
        );
        Ok(String::new())
    }

    /// Sends a PUBLISH made here to the cluster's other nodes (nothing outside cluster mode,
    /// or without an admin token to present).
    pub(crate) fn forward_publish(&self, channel: &Bytes, message: &Bytes, shard: bool) {
        // A left node's publishes stay here: it is no longer the old cluster's.
        let Some(view) = self.cluster_view().filter(|v| !v.is_left()) else {
            return;
        };
        if let Some(token) = self.config.read().admin_token() {
            self.bus.forward(&view, &token, channel, message, shard);
        }
    }

    /// Whether this node serves the request (always, outside cluster mode); the redirect
    /// reply otherwise. At EXEC the queued commands count as one request.
    pub(crate) fn cluster_check(
        &self,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<(), Refusal> {
        match self.cluster_view() {
            Some(view) => self.check_with(&view, conn, meta, args, std::time::Instant::now()),
            None => Ok(()),
        }
    }

    /// A write that must not run here after all, found under the store lock (which every view
    /// change takes too): the view changed since it was routed, and now holds its slot (a
    /// migration's pause: the source's final offset may already be taken) or gives the slot
    /// to another shard (the migration committed). A flush waits while any slot is held, and
    /// ends an import in progress (what it copied is gone). `None` outside cluster mode at the
    /// cost of one atomic load.
    pub(crate) fn misrouted_write(
        &self,
        tls: bool,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Option<Misrouted> {
        if !self.shared.cluster_mode.load(Ordering::Acquire) || !may_write(meta) {
            return None;
        }
        let view = self.cluster_view()?;
        if matches!(meta.name, "flushall" | "flushdb") {
            if view.holds_any() {
                return Some(Misrouted::Held);
            }
            self.import.fail("this node was flushed during the copy");
            return None;
        }
        let slot = request_slot(meta, args).ok()??;
        if view.holds(slot) {
            return Some(Misrouted::Held);
        }
        match view.owner_of(slot) {
            Some((o, _)) if o == view.my_shard => None,
            Some((_, shard)) => {
                let (host, port) = shard.master.as_ref()?.endpoint(tls);
                let r = Redirect::Moved {
                    slot,
                    host: host.to_string(),
                    port,
                };
                Some(Misrouted::Elsewhere(r.into()))
            }
            None => Some(Misrouted::Elsewhere(Redirect::Unserved.into())),
        }
    }

    /// Whether a script's call may run in cluster mode, as Redis checks each one
    /// (`scriptVerifyClusterState`): no other database, its keys in one slot this shard
    /// serves, and (unless `cross` allows it: `allow-cross-slot-keys`, or an `EVAL` without a
    /// shebang) the slot of the script's calls so far (`slot`, seeded from its declared keys); a
    /// write to a slot held or moved since the script was routed is refused too. Each call in
    /// one slot is also what lets a migration copy slot by slot. `None` outside cluster mode.
    pub(crate) fn script_refusal(
        &self,
        tls: bool,
        meta: &CommandMeta,
        args: &[Bytes],
        slot: &mut Option<u16>,
        cross: bool,
    ) -> Option<Reply> {
        if !self.shared.cluster_mode.load(Ordering::Acquire) {
            return None;
        }
        if let Err(r) = refused_in_cluster(meta.name, args) {
            return Some(r);
        }
        let view = self.cluster_view()?;
        let non_local = || Some(Reply::error(NON_LOCAL));
        match request_slot(meta, args) {
            Err(_) => return non_local(),
            Ok(None) => {}
            Ok(Some(s)) => {
                if view.owner_of(s).is_none_or(|(o, _)| o != view.my_shard) {
                    return non_local();
                }
                match *slot {
                    Some(prev) if prev != s && !cross => {
                        return Some(Reply::error(
                            "ERR Script attempted to access keys that do not hash to the same slot",
                        ));
                    }
                    Some(_) => {}
                    None => *slot = Some(s),
                }
            }
        }
        match self.misrouted_write(tls, meta, args)? {
            Misrouted::Held => Some(Reply::error(TRYAGAIN)),
            Misrouted::Elsewhere(_) => non_local(),
        }
    }

    /// Whether this node, a replica, may serve reads: its link to its master streams and the
    /// master spoke within `replica_max_read_lag` (its keepalives keep an idle link fresh).
    fn reads_fresh(&self) -> bool {
        let lag = self.config.read().replica_max_read_lag.as_millis() as u64;
        let up = self.repl.upstream.lock();
        up.as_ref().is_some_and(|u| {
            u.status.phase() == Phase::Connected
                && self
                    .clock_ms()
                    .saturating_sub(u.status.last_io_ms.load(Ordering::Relaxed))
                    <= lag
        })
    }

    /// [`Node::cluster_check`] against `view`, at `now` (the lease check's reading too).
    pub(crate) fn check_with(
        &self,
        view: &View,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
        now: std::time::Instant,
    ) -> Result<(), Refusal> {
        match self.route_here(view, conn, meta, args)? {
            Some(m) => self.serves_as_master(view, &m, now),
            None => Ok(()),
        }
    }

    /// The routing half of [`Node::check_with`]: whether the view sends the command here, and
    /// if it does as the shard's master, what [`Node::serves_as_master`] must check (the
    /// gate's half, which the batch path folds into its own gate check).
    pub(crate) fn route_here(
        &self,
        view: &View,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<Option<AsMaster>, Refusal> {
        let pubsub = meta.flags.has(Flags::PUBSUB);
        let client = Client {
            // Shard channel commands are served by the slot's replicas too, READONLY or not,
            // as Redis serves them.
            readonly: conn.state.readonly || pubsub,
            tls: conn.tls,
        };
        let (slot, write) = match (meta.name, &conn.state.multi) {
            ("exec", Some(queue)) => {
                let mut keys: Vec<&[u8]> = Vec::new();
                let mut write = false;
                for a in queue {
                    if let Some((m, _)) = self.table.get(&a[0]) {
                        write |= may_write(m);
                        keys.extend(key_args(m, a));
                    }
                }
                (keys_slot(keys)?, write)
            }
            _ => (request_slot(meta, args)?, may_write(meta)),
        };
        let Some(slot) = slot else {
            refused_in_cluster(meta.name, args)?;
            return Ok(None);
        };
        // Scripts count as writes (Redis routes EVAL without `no-writes` as one).
        route(view, slot, write, client, || pubsub || self.reads_fresh())?;
        refused_in_cluster(meta.name, args)?;
        if write && view.holds(slot) {
            return Err(Refusal::Hold);
        }
        Ok(view.i_am_master().then_some(AsMaster {
            slot,
            write,
            pubsub,
            client,
        }))
    }

    /// Served here as the shard's master: the node must be the master now. A demoted one
    /// sends reads too to the master it follows (its data may be older or divergent), and one
    /// without its lease answers `CLUSTERDOWN`, which cluster clients retry, where `READONLY`
    /// would reach the application.
    pub(crate) fn serves_as_master(
        &self,
        view: &View,
        m: &AsMaster,
        now: std::time::Instant,
    ) -> Result<(), Refusal> {
        match self.gate.serves_as_master(now, m.write, m.pubsub) {
            Ok(()) => Ok(()),
            Err(Role::Master) => Err(Redirect::Down.into()),
            Err(Role::Replica { host, port }) => {
                Err(not_master(view, m.slot, Some((&host, port)), m.client).into())
            }
            Err(Role::Unassigned) => Err(not_master(view, m.slot, None, m.client).into()),
        }
    }
}

/// A command the view routes to this node as its shard's master (see [`Node::route_here`]).
pub(crate) struct AsMaster {
    slot: u16,
    write: bool,
    /// A shard channel command: served without the read lease.
    pub(crate) pubsub: bool,
    client: Client,
}

/// Commands that reach another database, which a cluster node does not have (Redis' wording);
/// in MULTI they fail the transaction when queued.
fn refused_in_cluster(name: &str, args: &[Bytes]) -> Result<(), Reply> {
    let other_db = || {
        args.windows(2).skip(3).any(|w| {
            w[0].eq_ignore_ascii_case(b"db")
                && vigil_resp::args::parse_int(&w[1]).is_ok_and(|n| n != 0)
        })
    };
    let why = match name {
        "move" => "ERR MOVE is not allowed in cluster mode",
        "swapdb" => "ERR SWAPDB is not allowed in cluster mode",
        "copy" if other_db() => "ERR Copying to another database is not allowed in cluster mode",
        _ => return Ok(()),
    };
    Err(Reply::error(why))
}

/// Whether a command may write: flagged `write`, or a script or function that is not a
/// `_RO` variant.
fn may_write(meta: &CommandMeta) -> bool {
    meta.flags.has(Flags::WRITE) || matches!(meta.name, "eval" | "evalsha" | "fcall")
}

/// The slot of a request's keys (`None`: it has none), or `CROSSSLOT`. A command with one
/// key at a fixed position, most of them, takes its slot without walking the key specs.
fn request_slot(meta: &CommandMeta, args: &[Bytes]) -> Result<Option<u16>, Redirect> {
    if meta.find_keys.is_none() && meta.first_key > 0 && meta.first_key == meta.last_key {
        return Ok(args.get(meta.first_key as usize).map(|k| key_slot(k)));
    }
    keys_slot(key_args(meta, args))
}

/// The keys of a request (none for keyless commands).
fn key_args<'a>(meta: &CommandMeta, args: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> {
    meta.key_positions_in(args)
        .filter_map(move |p| args.get(p).map(|b| &b[..]))
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    /// The single-key shortcut finds the slot the key specs find, for every command of the
    /// table and requests of every length up to six arguments.
    #[test]
    fn request_slot_agrees_with_the_key_specs() {
        let table = crate::cmd::table();
        let words: Vec<Bytes> = ["a", "{b}x", "c{b}", "2", "d", "e"]
            .iter()
            .map(|w| Bytes::from_static(w.as_bytes()))
            .collect();
        for (i, (meta, _)) in table.iter().enumerate() {
            for n in 0..=words.len() {
                let mut args = vec![Bytes::from_static(meta.name.as_bytes())];
                args.extend(words[..n].iter().cloned());
                assert_eq!(
                    request_slot(meta, &args),
                    keys_slot(key_args(meta, &args)),
                    "#{i} {} with {n} arguments",
                    meta.name
                );
            }
        }
    }
}
