//! Per-connection state of a node client ([`ConnState`]): the MULTI queue, WATCHed keys, what
//! its pending replies wait for (the append log, the write gate's acknowledgement check), its
//! place in the blocked queues.
//!
//! The invariant: the state belongs to one connection and is touched only by the task serving
//! it; shared state (the store, the queues) is reached through the node.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::gate::PendingAck;

/// A key some client WATCHes.
#[derive(Debug)]
pub struct Watched {
    /// Database.
    pub db: usize,
    /// Key.
    pub key: Bytes,
    /// The watch, shared with the database.
    pub flags: crate::db::watch::Watcher,
}

/// Per-connection state of the node.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Queued commands while in MULTI.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command was rejected: EXEC must abort.
    pub multi_failed: bool,
    /// WATCHed keys.
    pub watched: Vec<Watched>,
    /// Log sequence number the pending replies wait for: their writes are in the append log's
    /// file (and fsynced under `appendfsync always`) before they leave.
    pub log_seq: Option<u64>,
    /// The last command's name, as last published to the client registry.
    pub last_cmd: &'static str,
    /// This client's entry in the blocked queues while a blocking command waits.
    pub waiter: Option<Arc<Notify>>,
    /// The port a replica announced (`REPLCONF listening-port`).
    pub repl_port: u32,
    /// The address a replica announced (`REPLCONF ip-address`), if any.
    pub repl_ip: Option<String>,
    /// Stream offset after this client's last write (`WAIT`).
    pub woff: u64,
    /// Write replies waiting in the output for the gate's acknowledgement check (synchronous
    /// mode, lease and fence).
    pub ack: PendingAck,
    /// Client-side caching options while `CLIENT TRACKING` is on.
    pub tracking: Option<crate::tracking::Mode>,
    /// `CLIENT CACHING yes|no` was given for the next command.
    pub caching: bool,
    /// `caching` was set by the command that just ran.
    pub caching_just_set: bool,
    /// `CLIENT REPLY`.
    pub replies: Replies,
    /// `CLIENT NO-TOUCH`: this client's commands (but TOUCH) leave access times alone.
    pub no_touch: bool,
    /// READONLY (cleared by READWRITE): in cluster mode, a replica serves this client's reads
    /// of its shard's slots instead of redirecting them.
    pub readonly: bool,
    /// ASKING: the next command (or transaction) may use a slot being imported.
    pub asking: bool,
    /// `asking` was set by the command that just ran.
    pub asking_just_set: bool,
}

/// `CLIENT REPLY ON|OFF|SKIP`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Replies {
    /// Every reply is sent.
    #[default]
    On,
    /// No reply is sent.
    Off,
    /// The next command's reply is not sent.
    SkipNext,
}

impl ConnState {
    /// After each command: `CLIENT CACHING` and ASKING cover only the next command (or
    /// transaction).
    pub fn command_done(&mut self) {
        // ASKING lasts for the next command, or until EXEC ends a transaction (Redis'
        // `resetClient`).
        if !std::mem::take(&mut self.asking_just_set) && self.multi.is_none() {
            self.asking = false;
        }
        if std::mem::take(&mut self.caching_just_set) {
            return;
        }
        if self.multi.is_none() {
            self.caching = false;
        }
    }

    /// Whether this client's reads of `meta`'s keys are remembered for client-side caching
    /// (default mode, subject to OPTIN/OPTOUT and `CLIENT CACHING`).
    pub fn tracks_reads(&self) -> bool {
        match &self.tracking {
            Some(m) if m.bcast.is_none() => {
                !((m.optin && !self.caching) || (m.optout && self.caching))
            }
            _ => false,
        }
    }
}

/// Publishes the command name for CLIENT LIST, only when it changes: no lock per command in a
/// steady stream of the same command. Returns whether it waited for the lock (CLIENT LIST
/// held it).
pub(crate) fn note_command(conn: &mut vigil_resp::Conn<ConnState>, name: &'static str) -> bool {
    if std::ptr::eq(conn.state.last_cmd, name) {
        return false;
    }
    conn.state.last_cmd = name;
    let (mut details, waited) = match conn.info.details.try_lock() {
        Some(d) => (d, false),
        None => (conn.info.details.lock(), true),
    };
    details.last_cmd = name;
    waited
}
