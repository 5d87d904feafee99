//! Per-command statistics: calls, total time and a latency histogram for every command (and
//! every subcommand of the container commands, named `config|get` as Redis names them). The
//! table of names is fixed when the node starts, so recording is a lookup and a few atomic
//! additions, and nothing a client sends can grow it. Read by `INFO commandstats` and
//! `LATENCY HISTOGRAM`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use vigil_resp::CommandMeta;
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

/// The statistics of every command. A call finds its numbers by its command's position in
/// the command table ([`CommandMeta::index`]), not by hashing its name: this runs for every
/// command, and two name lookups showed in profiles of a pipelined `GET`.
pub struct CmdStats {
    /// Every counted name and its numbers: the table's commands in table order, then the
    /// containers' subcommands (`config|get`), their full names leaked once at start-up.
    stats: Vec<(&'static str, Stat)>,
    /// Per entry of `stats`: for a container, the entries of its subcommands.
    subs: Vec<Option<Vec<usize>>>,
    /// By full name, for `INFO commandstats` with names.
    by_name: HashMap<&'static str, usize, ahash::RandomState>,
}

/// The latency histogram's bucket for `ns`: the first `i` with `ns <= 1024 << i` (Redis'
/// power-of-two buckets from 1 µs), found in one instruction on every command's path.
fn bucket(ns: u64) -> usize {
    ((u64::BITS - ns.saturating_sub(1).leading_zeros()) as usize)
        .saturating_sub(10)
        .min(BUCKETS - 1)
}

impl Stat {
    /// Counts a call that ran for `micros`, and whether it answered an error.
    pub fn record(&self, micros: u64, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.usec.fetch_add(micros, Ordering::Relaxed);
        self.hist[bucket(micros.saturating_mul(1000))].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a call that ran and answered `error` (its text, without the `-`), if any. An
    /// arity error of a subcommand counts as a refusal: Redis checks it before running.
    pub fn finished(&self, micros: u64, error: Option<&[u8]>) {
        match error {
            Some(e) if e.starts_with(b"ERR wrong number of arguments") => self.reject(),
            _ => self.record(micros, error.is_some()),
        }
    }

    /// Counts a call refused before it ran.
    pub fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

impl CmdStats {
    /// The table for the command table's names, in its order.
    pub fn new(names: impl Iterator<Item = &'static str>) -> CmdStats {
        let mut stats: Vec<(&'static str, Stat)> = names.map(|n| (n, Stat::default())).collect();
        let mut subs: Vec<Option<Vec<usize>>> = vec![None; stats.len()];
        for i in 0..subs.len() {
            let name = stats[i].0;
            if let Some((_, list)) = SUBCOMMANDS.iter().find(|(c, _)| *c == name) {
                let mut full = Vec::new();
                for s in list.iter() {
                    full.push(stats.len());
                    let f: &'static str = Box::leak(format!("{name}|{s}").into_boxed_str());
                    stats.push((f, Stat::default()));
                }
                subs[i] = Some(full);
            }
        }
        subs.resize(stats.len(), None);
        let by_name = stats
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (*n, i))
            .collect();
        CmdStats {
            stats,
            subs,
            by_name,
        }
    }

    /// The name and numbers a call of `meta` counts under: its own, or for a container those
    /// of the subcommand `sub` (`config|get`; `None` without a known one). A description the
    /// command table does not hold counts nothing: `FUNCTION LOAD` replays its change as a
    /// data command, which must not count the call a second time.
    pub fn stat(&self, meta: &CommandMeta, sub: Option<&[u8]>) -> Option<(&'static str, &Stat)> {
        let i = meta.index as usize;
        let (name, _) = self.stats.get(i)?;
        if !std::ptr::eq(*name, meta.name) {
            return None;
        }
        match (&self.subs[i], sub) {
            (Some(full), Some(sub)) => {
                let at = self.stats[i].0.len() + 1;
                full.iter()
                    .map(|&j| &self.stats[j])
                    .find(|(f, _)| {
                        f.len() == at + sub.len() && f.as_bytes()[at..].eq_ignore_ascii_case(sub)
                    })
                    .map(|(f, s)| (*f, s))
            }
            (Some(_), None) => None,
            (None, _) => Some((self.stats[i].0, &self.stats[i].1)),
        }
    }

    /// The numbers of the full name `name` (`get`, `config|get`).
    pub fn named(&self, name: &str) -> Option<&Stat> {
        self.by_name.get(name).map(|&i| &self.stats[i].1)
    }

    /// Forgets everything (`CONFIG RESETSTAT`).
    pub fn reset(&self) {
        for (_, s) in &self.stats {
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
            let mut add = |i: usize| {
                let (k, s) = &self.stats[i];
                if !out.iter().any(|o| o.name == *k)
                    && let Some(snap) = self.snapshot(k, s)
                {
                    out.push(snap);
                }
            };
            if let Some(&i) = self.by_name.get(lower.as_str()) {
                add(i);
                self.subs[i].iter().flatten().for_each(|&j| add(j));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command table's descriptions of `names`, each knowing its position.
    fn table(names: &[&'static str]) -> vigil_resp::command::CommandTable<()> {
        vigil_resp::command::CommandTable::new(
            names
                .iter()
                .map(|&n| {
                    (
                        CommandMeta::keyless(n, -1, vigil_resp::Flags(0), "server", ""),
                        (),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn counts_commands_and_subcommands() {
        let t = table(&["get", "config"]);
        let s = CmdStats::new(t.iter().map(|(m, _)| m.name));
        let (get, config) = (&t.get(b"get").unwrap().0, &t.get(b"config").unwrap().0);
        assert_eq!(
            s.stat(config, Some(b"GET")).map(|x| x.0),
            Some("config|get")
        );
        assert!(s.stat(config, Some(b"nosuch")).is_none());
        assert!(s.stat(config, Some(b"get|")).is_none());
        assert!(s.stat(config, Some(b"")).is_none());
        assert!(s.stat(config, None).is_none());
        let (name, stat) = s.stat(get, Some(b"k")).unwrap();
        assert_eq!(name, "get");
        stat.record(1, false);
        stat.record(3, true);
        s.named("config|get").unwrap().record(100, false);
        let all = s.all();
        assert_eq!(all.len(), 2, "unknown names are not counted: {all:?}");
        assert_eq!(all[1].name, "get");
        assert_eq!((all[1].calls, all[1].failed, all[1].rejected), (2, 1, 0));
        assert_eq!(all[1].cdf, vec![(1, 1), (4, 2)]);
        // A description the table does not hold counts nothing, even under a known name or at
        // a known position.
        let other = CommandMeta::keyless("config", -2, vigil_resp::Flags(0), "server", "");
        assert!(s.stat(&other, Some(b"get")).is_none());
        let placed = CommandMeta {
            index: get.index,
            ..CommandMeta::keyless("nosuch", -2, vigil_resp::Flags(0), "server", "")
        };
        assert!(s.stat(&placed, None).is_none());

        let t = table(&["set", "config"]);
        let s = CmdStats::new(t.iter().map(|(m, _)| m.name));
        s.named("set").unwrap().reject();
        s.named("config|set").unwrap().reject();
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
