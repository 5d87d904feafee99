//! `maxmemory`: the limit past which commands that may grow the dataset are refused with
//! `-OOM`, as Redis refuses them when nothing can be evicted.
//!
//! The node evicts nothing, so every policy behaves as `noeviction`. Used memory is the
//! resident set size (what `INFO memory` reports as `used_memory`): the node does not
//! instrument its allocator (jemalloc's statistics cost every allocation about a tenth of the
//! node's throughput).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_resp::{CommandMeta, Flags};

/// The allocator the binary runs on, as `INFO memory` names it (`mem_allocator`); the binary
/// that installs one sets it at start-up.
pub static ALLOCATOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

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

/// How long a reading of the resident set size is reused: reading /proc costs a few
/// microseconds, more than a small command, and RSS moves slowly.
const SAMPLE_FOR: Duration = Duration::from_millis(1);

/// The configured limit (0: none), read on every command without the config lock, and the
/// last reading of used memory.
#[derive(Debug)]
pub struct MaxMemory {
    limit: AtomicU64,
    /// Last RSS reading and when it was taken (microseconds since `base`).
    rss: AtomicU64,
    sampled_us: AtomicU64,
    base: Instant,
    /// The highest reading seen (`used_memory_peak`).
    peak: AtomicU64,
    /// The reading before the dataset was loaded (`used_memory_startup`).
    startup: AtomicU64,
}

impl Default for MaxMemory {
    fn default() -> Self {
        MaxMemory::new(0)
    }
}

impl MaxMemory {
    /// A limit of `bytes` (0: none).
    pub fn new(bytes: u64) -> Self {
        MaxMemory {
            limit: AtomicU64::new(bytes),
            rss: AtomicU64::new(0),
            sampled_us: AtomicU64::new(0),
            base: Instant::now(),
            peak: AtomicU64::new(0),
            startup: AtomicU64::new(0),
        }
    }

    /// Records the footprint before the dataset was loaded.
    pub fn set_startup(&self, bytes: u64) {
        self.startup.store(bytes, Ordering::Relaxed);
    }

    /// The footprint before the dataset was loaded.
    pub fn startup(&self) -> u64 {
        self.startup.load(Ordering::Relaxed)
    }

    /// Used memory now, and the highest reading seen (this one included).
    pub fn used_and_peak(&self) -> (u64, u64) {
        let used = rss_bytes();
        let peak = self.peak.fetch_max(used, Ordering::Relaxed).max(used);
        (used, peak)
    }

    /// Follows `CONFIG SET maxmemory`.
    pub fn set(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// The limit in bytes (0: none).
    pub fn get(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Used memory, read again at most every [`SAMPLE_FOR`] (monotonic clock).
    fn used(&self) -> u64 {
        let now = self.base.elapsed().as_micros() as u64 + 1;
        let at = self.sampled_us.load(Ordering::Relaxed);
        if at != 0 && now.saturating_sub(at) < SAMPLE_FOR.as_micros() as u64 {
            return self.rss.load(Ordering::Relaxed);
        }
        let rss = rss_bytes();
        self.rss.store(rss, Ordering::Relaxed);
        self.peak.fetch_max(rss, Ordering::Relaxed);
        self.sampled_us.store(now, Ordering::Relaxed);
        rss
    }

    /// Whether used memory is past the limit (never without one).
    pub fn exceeded(&self) -> bool {
        let limit = self.get();
        limit != 0 && self.used() > limit
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
        denied && self.used() > limit
    }
}
