//! The node's use of its view: adopting a pushed one ([`Node::set_cluster_view`]) and the
//! routing check every client command passes before it runs or is queued
//! ([`Node::cluster_check`]). Only client connections pass it: the replication stream and
//! the append log are applied without it.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use vigil_proto::node as pb;
use vigil_resp::{CommandMeta, Conn, Flags, Reply};

use super::route::{Client, Redirect, keys_slot, not_master, route};
use super::{View, ViewError, digest, file};
use crate::gate::Role;
use crate::node::Node;
use crate::session::ConnState;

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
        self.cluster.read().clone()
    }

    /// Adopts a view pushed by the sentinels: validated, checked newer than the served one,
    /// persisted, then served. Returns its digest. The caller serialises calls.
    pub fn set_cluster_view(&self, v: &pb::ClusterView) -> Result<String, AdoptError> {
        let encoded = v.encode_to_vec();
        let view = View::from_proto(v, digest(&encoded))?;
        let current = self.cluster_view();
        view.check_replaces(current.as_deref())?;
        let d = view.digest.clone();
        // The same bytes again (a sentinel retrying): already durable and served.
        if current.is_some_and(|c| c.digest == d) {
            return Ok(d);
        }
        let dir = self.config.read().dir.clone();
        file::save(&dir, &encoded)?;
        self.bus.retain(&view);
        *self.cluster.write() = Some(Arc::new(view));
        tracing::info!(cluster = %v.name, epoch = v.epoch, digest = %d, "cluster view adopted");
        Ok(d)
    }

    /// Sends a PUBLISH made here to the cluster's other nodes (nothing outside cluster mode,
    /// or without an admin token to present).
    pub(crate) fn forward_publish(&self, channel: &Bytes, message: &Bytes) {
        let Some(view) = self.cluster_view() else {
            return;
        };
        if let Some(token) = self.config.read().admin_token() {
            self.bus.forward(&view, &token, channel, message);
        }
    }

    /// Whether this node serves the request (always, outside cluster mode); the redirect
    /// reply otherwise. At EXEC the queued commands count as one request.
    pub(crate) fn cluster_check(
        &self,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<(), Reply> {
        match self.cluster.read().as_deref() {
            Some(view) => self.check_with(view, conn, meta, args),
            None => Ok(()),
        }
    }

    /// [`Node::cluster_check`] against `view`.
    pub(crate) fn check_with(
        &self,
        view: &View,
        conn: &Conn<ConnState>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<(), Reply> {
        let client = Client {
            readonly: conn.state.readonly,
            tls: conn.tls,
        };
        let (slot, write) = match (meta.name, &conn.state.multi) {
            ("exec", Some(queue)) => {
                let mut keys: Vec<&[u8]> = Vec::new();
                let mut write = false;
                for a in queue {
                    if let Some((m, _)) = self.table.get(&a[0]) {
                        write |= m.flags.has(Flags::WRITE);
                        keys.extend(key_args(m, a));
                    }
                }
                (keys_slot(keys)?, write)
            }
            _ => (
                keys_slot(key_args(meta, args))?,
                meta.flags.has(Flags::WRITE),
            ),
        };
        let Some(slot) = slot else { return Ok(()) };
        route(view, slot, write, client)?;
        if write && view.i_am_master() {
            let gate = self.gate.view(std::time::Instant::now());
            match gate.role {
                Role::Master if gate.writable => {}
                Role::Master => return Err(Redirect::Down.into()),
                Role::Replica { host, port } => {
                    return Err(not_master(view, slot, Some((&host, port)), client).into());
                }
                Role::Unassigned => return Err(not_master(view, slot, None, client).into()),
            }
        }
        Ok(())
    }
}

/// The keys of a request (none for keyless commands).
fn key_args<'a>(meta: &CommandMeta, args: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> {
    meta.keys(args)
        .unwrap_or_default()
        .into_iter()
        .filter_map(move |k| args.get(k.pos).map(|b| &b[..]))
}
