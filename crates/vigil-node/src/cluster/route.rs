//! Which node serves a request: Redis 7's `getNodeByQuery` without migrations, as a pure
//! function of the view, the request's keys and the client's mode.
//!
//! Keyless requests are never redirected (the caller does not ask). All keys must hash to one
//! slot; the slot's shard must have a master; a node serves the slots of its own shard when it
//! is the shard's master, or, as a replica the sentinels list as serving and fresh enough
//! (`replica_max_read_lag`), reads from clients that sent READONLY. Everything
//! else is `MOVED` to the owner's master, at the address matching the client's connection.

use std::fmt;

use vigil_resp::Reply;
use vigil_resp::slot::key_slot;

use super::View;

/// Why a request is not served here, rendered as Redis renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED <slot> <host>:<port>`: the slot's master serves it.
    Moved {
        /// The slot.
        slot: u16,
        /// The master's endpoint.
        host: String,
        /// The master's port.
        port: u16,
    },
    /// The keys hash to more than one slot.
    CrossSlot,
    /// No shard owns the slot, or its shard has no master.
    Unserved,
    /// This node is its shard's master but may not acknowledge writes now (its write lease
    /// lapsed or it was fenced): Redis Cluster's answer on a master cut off from the
    /// majority, which cluster clients retry (they do not retry `READONLY`).
    Down,
}

impl fmt::Display for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Redirect::Moved { slot, host, port } => write!(f, "MOVED {slot} {host}:{port}"),
            Redirect::CrossSlot => {
                f.write_str("CROSSSLOT Keys in request don't hash to the same slot")
            }
            Redirect::Unserved => f.write_str("CLUSTERDOWN Hash slot not served"),
            Redirect::Down => f.write_str("CLUSTERDOWN The cluster is down"),
        }
    }
}

impl From<Redirect> for Reply {
    fn from(r: Redirect) -> Reply {
        Reply::error(r.to_string())
    }
}

/// The client's side of the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    /// It sent READONLY (and no READWRITE since).
    pub readonly: bool,
    /// It is connected over TLS: it is sent to TLS ports.
    pub tls: bool,
}

/// The one slot `keys` hash to (`None`: no keys), or `CROSSSLOT`.
pub fn keys_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, Redirect> {
    let mut slot = None;
    for k in keys {
        let s = key_slot(k);
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Err(Redirect::CrossSlot),
            Some(_) => {}
        }
    }
    Ok(slot)
}

/// Whether this node serves a request on `slot` (`is_write`: the command, or a queued one at
/// EXEC, is flagged `write`; `fresh`: whether this node, as a replica, heard from its master
/// recently enough to serve reads, asked only for such a read).
pub fn route(
    view: &View,
    slot: u16,
    is_write: bool,
    client: Client,
    fresh: impl FnOnce() -> bool,
) -> Result<(), Redirect> {
    let Some((owner, shard)) = view.owner_of(slot) else {
        return Err(Redirect::Unserved);
    };
    let Some(master) = &shard.master else {
        return Err(Redirect::Unserved);
    };
    let reads_here = || client.readonly && !is_write && view.serves_reads() && fresh();
    if owner == view.my_shard && (view.i_am_master() || reads_here()) {
        return Ok(());
    }
    let (host, port) = master.endpoint(client.tls);
    Err(Redirect::Moved {
        slot,
        host: host.to_string(),
        port,
    })
}

/// A write this node's view routes here (it is its shard's master in the view) while the node
/// is not master itself: demoted by a failover the view does not show yet, or not promoted
/// yet. The client must not see `READONLY` (cluster clients do not retry it): `MOVED` to the
/// master the node follows (`follows`, as the sentinels named it: its data or TLS address),
/// at the endpoint matching the client's connection; `CLUSTERDOWN` while it follows none.
pub fn not_master(
    view: &View,
    slot: u16,
    follows: Option<(&str, u16)>,
    client: Client,
) -> Redirect {
    let Some((host, port)) = follows else {
        return Redirect::Unserved;
    };
    let known = view
        .shards
        .iter()
        .flat_map(|s| s.master.iter().chain(&s.replicas))
        .find(|m| {
            (m.host == host && m.port == port) || (m.tls_port == port && m.endpoint(true).0 == host)
        });
    let (host, port) = known.map_or((host, port), |m| m.endpoint(client.tls));
    Redirect::Moved {
        slot,
        host: host.to_string(),
        port,
    }
}
