//! Per-command statistics: calls, total time and a latency histogram for every command (and
//! every subcommand of the container commands, named `config|get` as Redis names them). The
//! table of names is fixed when the node starts, so recording is a lookup and a few atomic
//! additions, and nothing a client sends can grow it. Read by `INFO commandstats` and
//! `LATENCY HISTOGRAM`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use vigil_resp::subcommands::SUBCOMMANDS;

/// Histogram buckets: bucket `i` counts calls of at most `1024 << i` nanoseconds.
const BUCKETS: usize = 32;

/// One command's numbers.
#[derive(Default)]
pub struct Stat {
    calls: AtomicU64,
    usec: AtomicU64,
    /// Calls that ran and answered an error.
    failed: AtomicU64,
    /// Calls refused before running (arity, OOM, READONLY...): not in `calls`.
    rejected: AtomicU64,
    hist: [AtomicU64; BUCKETS],
}

/// What `INFO commandstats` and `LATENCY HISTOGRAM` show of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its full name (`get`, `config|set`).
    pub name: &'static str,
    /// Calls.
    pub calls: u64,
    /// Total run time, microseconds.
    pub usec: u64,
    /// Calls that answered an error.
    pub failed: u64,
    /// Calls refused before running.
    pub rejected: u64,
    /// `(bucket upper bound in µs, calls at or under it)`, only where the count grows.
    pub cdf: Vec<(u64, u64)>,
}

/// The statistics of every command (looked up twice per command: aHash, as the command
/// table's index, where SipHash showed in profiles).
pub struct CmdStats {
    stats: HashMap<&'static str, Stat, ahash::RandomState>,
    /// `"config"` → `"config|get"`...: the full names, leaked once at start-up.
    subs: HashMap<&'static str, Vec<&'static str>, ahash::RandomState>,
}

/// The latency histogram's bucket for `ns`: the first `i` with `ns <= 1024 << i` (Redis'
/// power-of-two buckets from 1 µs), found in one instruction on every command's path.
fn bucket(ns: u64) -> usize {
    ((u64::BITS - ns.saturating_sub(1).leading_zeros()) as usize)
        .saturating_sub(10)
        .min(BUCKETS - 1)
}

impl CmdStats {
    /// The table for the given command names.
    pub fn new<'a>(names: impl Iterator<Item = &'a str>) -> CmdStats {
        let mut stats = HashMap::default();
        let mut subs = HashMap::default();
        for name in names {
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            stats.insert(name, Stat::default());
            if let Some((_, list)) = SUBCOMMANDS.iter().find(|(c, _)| *c == name) {
                let full: Vec<&'static str> = list
                    .iter()
                    .map(|s| &*Box::leak(format!("{name}|{s}").into_boxed_str()))
                    .collect();
                for f in &full {
                    stats.insert(*f, Stat::default());
                }
                subs.insert(name, full);
            }
        }
        CmdStats { stats, subs }
    }

    /// The name a call counts under: `command|sub` for a known subcommand of a container.
    pub fn name_of(&self, command: &'static str, sub: Option<&[u8]>) -> Option<&'static str> {
        match (self.subs.get(command), sub) {
            (Some(full), Some(sub)) => full.iter().copied().find(|f| {
                f.len() == command.len() + 1 + sub.len()
                    && f.as_bytes()[command.len() + 1..].eq_ignore_ascii_case(sub)
            }),
            (Some(_), None) => None,
            (None, _) => Some(command),
        }
    }

    /// Counts a call that ran for `micros`, and whether it answered an error.
    pub fn record(&self, name: &str, micros: u64, failed: bool) {
        let Some(s) = self.stats.get(name) else {
            return;
        };
        s.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        s.usec.fetch_add(micros, Ordering::Relaxed);
        s.hist[bucket(micros.saturating_mul(1000))].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call that ran and answered `error` (its text, without the `-`), if any. An
    /// arity error of a subcommand counts as a refusal: Redis checks it before running.
    pub fn finished(&self, name: &str, micros: u64, error: Option<&[u8]>) {
        match error {
            Some(e) if e.starts_with(b"ERR wrong number of arguments") => self.reject(name),
            _ => self.record(name, micros, error.is_some()),
        }
    }

    /// Counts a call refused before it ran.
    pub fn reject(&self, name: &str) {
        if let Some(s) = self.stats.get(name) {
            s.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets everything (`CONFIG RESETSTAT`).
    pub fn reset(&self) {
        for s in self.stats.values() {
            s.calls.store(0, Ordering::Relaxed);
            s.failed.store(0, Ordering::Relaxed);
            s.rejected.store(0, Ordering::Relaxed);
            s.usec.store(0, Ordering::Relaxed);
            s.hist.iter().for_each(|h| h.store(0, Ordering::Relaxed));
        }
    }

    fn snapshot(&self, name: &'static str, s: &Stat) -> Option<Snapshot> {
        let calls = s.calls.load(Ordering::Relaxed);
        let failed = s.failed.load(Ordering::Relaxed);
        let rejected = s.rejected.load(Ordering::Relaxed);
        if calls == 0 && failed == 0 && rejected == 0 {
            return None;
        }
        let mut cdf = Vec::new();
        let mut total = 0;
        for (i, h) in s.hist.iter().enumerate() {
            let n = h.load(Ordering::Relaxed);
            if n > 0 {
                total += n;
                cdf.push(((1024u64 << i) / 1000, total));
            }
        }
        Some(Snapshot {
            name,
            calls,
            usec: s.usec.load(Ordering::Relaxed),
            failed,
            rejected,
            cdf,
        })
    }

    /// Every command that was called or refused, by name.
    pub fn all(&self) -> Vec<Snapshot> {
        let mut v: Vec<Snapshot> = self
            .stats
            .iter()
            .filter_map(|(n, s)| self.snapshot(n, s))
            .collect();
        v.sort_by_key(|s| s.name);
        v
    }

    /// The named commands (a container names its subcommands too) that were called.
    pub fn some(&self, names: &[bytes::Bytes]) -> Vec<Snapshot> {
        let mut out: Vec<Snapshot> = Vec::new();
        for n in names {
            let lower = String::from_utf8_lossy(n).to_ascii_lowercase();
            let mut add = |name: &str| {
                if let Some((k, s)) = self.stats.get_key_value(name)
                    && !out.iter().any(|o| o.name == *k)
                    && let Some(snap) = self.snapshot(k, s)
                {
                    out.push(snap);
                }
            };
            add(&lower);
            if let Some(full) = self.subs.get(lower.as_str()) {
                full.iter().for_each(|f| add(f));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_commands_and_subcommands() {
        let s = CmdStats::new(["get", "config"].into_iter());
        assert_eq!(s.name_of("config", Some(b"GET")), Some("config|get"));
        assert_eq!(s.name_of("config", Some(b"nosuch")), None);
        let get = s.name_of("get", Some(b"k")).unwrap();
        s.record(get, 1, false);
        s.record(get, 3, true);
        s.record("config|get", 100, false);
        s.reject("set");
        let all = s.all();
        assert_eq!(all.len(), 2, "unknown names are not counted: {all:?}");
        assert_eq!(all[1].name, "get");
        assert_eq!((all[1].calls, all[1].failed, all[1].rejected), (2, 1, 0));
        assert_eq!(all[1].cdf, vec![(1, 1), (4, 2)]);
        let s = CmdStats::new(["set", "config"].into_iter());
        s.reject("set");
        s.reject("config|set");
        let all = s.all();
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].name, all[1].calls, all[1].rejected), ("set", 0, 1));
        assert_eq!(s.some(&[bytes::Bytes::from("config")]).len(), 1);
        s.reset();
        assert!(s.all().is_empty());
    }

    #[test]
    fn buckets_are_the_first_power_of_two_from_1024_ns_at_or_above() {
        let scan = |ns: u64| {
            (0..BUCKETS)
                .find(|&i| ns <= 1024u64 << i)
                .unwrap_or(BUCKETS - 1)
        };
        let edges = (0..40).flat_map(|b| {
            let p = 1u64 << b;
            [p - 1, p, p + 1]
        });
        for ns in edges.chain([0, 999, 1000, 1_000_000, u64::MAX]) {
            assert_eq!(bucket(ns), scan(ns), "{ns} ns");
        }
    }
}
