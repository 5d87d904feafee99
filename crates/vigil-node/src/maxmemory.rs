//! `maxmemory`: the limit past which commands that may grow the dataset are refused with
//! `-OOM`, as Redis refuses them when nothing can be evicted.
//!
//! The node evicts nothing, so every policy behaves as `noeviction`. Used memory is the
//! resident set size (what `INFO memory` reports as `used_memory`): the node does not
//! instrument its allocator.

use std::sync::atomic::{AtomicU64, Ordering};

use vigil_resp::{CommandMeta, Flags};

/// Redis' refusal, word for word.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Resident set size from /proc.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// The configured limit (0: none), read on every command without the config lock.
#[derive(Debug, Default)]
pub struct MaxMemory(AtomicU64);

impl MaxMemory {
    /// A limit of `bytes` (0: none).
    pub fn new(bytes: u64) -> Self {
        MaxMemory(AtomicU64::new(bytes))
    }

    /// Follows `CONFIG SET maxmemory`.
    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    /// The limit in bytes (0: none).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether used memory is past the limit (never without one).
    pub fn exceeded(&self) -> bool {
        let limit = self.get();
        limit != 0 && rss_bytes() > limit
    }

    /// Whether this command must be refused now. Inside MULTI every command but EXEC,
    /// DISCARD, QUIT and RESET is refused (queueing takes memory too); EXEC only when it
    /// would run a command that may grow the dataset (`queued_denyoom`, asked only then).
    pub fn refuses(
        &self,
        meta: &CommandMeta,
        in_multi: bool,
        queued_denyoom: impl FnOnce() -> bool,
    ) -> bool {
        let limit = self.get();
        if limit == 0 {
            return false;
        }
        let exempt = matches!(meta.name, "exec" | "discard" | "quit" | "reset");
        let denied = meta.flags.has(Flags::DENYOOM)
            || (meta.name == "exec" && queued_denyoom())
            || (in_multi && !exempt);
        denied && rss_bytes() > limit
    }
}
