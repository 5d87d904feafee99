//! `ACL LOG`: recent refusals and failed authentications, newest first, with repeats of the
//! same event within a minute folded into one entry (Redis' grouping).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::reply::Reply;

/// Most entries kept (Redis' `acllog-max-len` default).
pub const MAX_LEN: usize = 128;
const GROUPING: Duration = Duration::from_secs(60);

/// Where the refused command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Sent by the client.
    Toplevel,
    /// Inside MULTI/EXEC.
    Multi,
    /// From a script.
    Lua,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Times it happened.
    pub count: u64,
    /// `command`, `key`, `channel` or `auth`.
    pub reason: &'static str,
    /// Where.
    pub context: Context,
    /// The command, key or channel refused (`AUTH` for authentication).
    pub object: String,
    /// The user.
    pub username: String,
    /// When it last happened.
    pub at: Instant,
    /// The client's `CLIENT LIST` line then.
    pub client_info: String,
}

/// The log.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<Entry>,
    /// `acllog-max-len` (`None`: [`MAX_LEN`]).
    pub max_len: Option<usize>,
}

impl AclLog {
    /// Records an event (count 1 in `e`), folding it into a recent equal one.
    pub fn add(&mut self, e: Entry) {
        let found = self.entries.iter().take(10).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.object == e.object
                && o.username == e.username
                && e.at.saturating_duration_since(o.at) <= GROUPING
        });
        if let Some(i) = found
            && let Some(mut old) = self.entries.remove(i)
        {
            old.count += 1;
            old.at = e.at;
            old.client_info = e.client_info;
            self.entries.push_front(old);
            return;
        }
        self.entries.push_front(e);
        self.entries.truncate(self.max_len.unwrap_or(MAX_LEN));
    }

    /// Forgets everything (`ACL LOG RESET`).
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// The newest `count` entries as `ACL LOG` replies them.
    pub fn reply(&self, count: usize) -> Reply {
        let now = Instant::now();
        let kv = |k: &'static str, v: Reply| (Reply::bulk_static(k), v);
        Reply::Array(
            self.entries
                .iter()
                .take(count)
                .map(|e| {
                    let age = now.saturating_duration_since(e.at).as_millis() as f64 / 1000.0;
                    Reply::Map(vec![
                        kv("count", Reply::Int(e.count as i64)),
                        kv("reason", Reply::bulk_static(e.reason)),
                        kv("context", Reply::bulk_static(e.context.name())),
                        kv("object", Reply::bulk(e.object.as_bytes())),
                        kv("username", Reply::bulk(e.username.as_bytes())),
                        kv("age-seconds", Reply::Double(age)),
                        kv("client-info", Reply::bulk(e.client_info.as_bytes())),
                    ])
                })
                .collect(),
        )
    }
}
