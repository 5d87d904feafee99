//! The slow log and the latency monitor: what `SLOWLOG` and `LATENCY` report. Every command's
//! run time is offered to [`Monitor::record`] by dispatch; the thresholds are the
//! `slowlog-log-slower-than`, `slowlog-max-len` and `latency-monitor-threshold` parameters,
//! pushed here by `CONFIG SET` (read without a lock on the hot path).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// Arguments kept per slow log entry; the last one says how many more there were.
const MAX_ARGS: usize = 32;
/// Bytes kept per argument.
const MAX_ARG_BYTES: usize = 128;
/// Samples kept per latency event (one per second at most).
const LATENCY_SAMPLES: usize = 160;

/// One slow log entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Increasing id.
    pub id: u64,
    /// Unix time, seconds.
    pub time: i64,
    /// Run time, microseconds.
    pub micros: u64,
    /// The arguments, trimmed.
    pub args: Vec<Bytes>,
    /// The client's `ip:port`.
    pub addr: String,
    /// The client's name.
    pub name: Bytes,
}

/// One latency event's history.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// `(unix seconds, milliseconds)`, oldest first; one per second, the highest of it.
    pub samples: VecDeque<(i64, u64)>,
    /// The highest ever.
    pub max: u64,
}

#[derive(Default)]
struct SlowLog {
    next_id: u64,
    /// Newest first.
    entries: VecDeque<SlowEntry>,
}

/// The slow log and latency monitor of a node.
pub struct Monitor {
    /// Microseconds; negative: off.
    slower_than: AtomicI64,
    max_len: AtomicU64,
    /// Milliseconds; 0: off.
    latency_threshold: AtomicU64,
    slowlog: Mutex<SlowLog>,
    latency: Mutex<BTreeMap<String, Series>>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            slower_than: AtomicI64::new(10_000),
            max_len: AtomicU64::new(128),
            latency_threshold: AtomicU64::new(0),
            slowlog: Mutex::default(),
            latency: Mutex::default(),
        }
    }
}

impl Monitor {
    /// Sets the thresholds (from the configuration).
    pub fn configure(&self, slower_than_us: i64, max_len: u64, latency_ms: u64) {
        self.slower_than.store(slower_than_us, Ordering::Relaxed);
        self.max_len.store(max_len, Ordering::Relaxed);
        self.latency_threshold.store(latency_ms, Ordering::Relaxed);
        let mut log = self.slowlog.lock();
        log.entries
            .truncate(max_len.min(usize::MAX as u64) as usize);
    }

    /// Takes the thresholds of a configuration.
    pub fn configure_from(&self, cfg: &crate::config::NodeConfig) {
        self.configure(
            cfg.redis_int("slowlog-log-slower-than"),
            cfg.redis_int("slowlog-max-len").max(0) as u64,
            cfg.redis_int("latency-monitor-threshold").max(0) as u64,
        );
    }

    /// Whether commands are watched at all (the slow log or the latency monitor is on).
    pub fn watching(&self) -> bool {
        self.slower_than.load(Ordering::Relaxed) >= 0
            || self.latency_threshold.load(Ordering::Relaxed) > 0
    }

    /// Offers a command that ran for `micros`: logged if slow, and a latency sample (`command`
    /// or, for a fast command, `fast-command`) if above the monitor's threshold.
    /// `who` names the client (`ip:port`, name), asked only when the command is logged.
    /// Returns whether it kept anything (it then took a lock, which may have waited).
    pub fn record(
        &self,
        args: &[Bytes],
        micros: u64,
        fast: impl FnOnce() -> bool,
        who: impl FnOnce() -> (String, Bytes),
    ) -> bool {
        let mut kept = false;
        let slower = self.slower_than.load(Ordering::Relaxed);
        if slower >= 0 && micros >= slower as u64 {
            let (addr, name) = who();
            self.log_slow(args, micros, &addr, &name);
            kept = true;
        }
        let ms = micros / 1000;
        let t = self.latency_threshold.load(Ordering::Relaxed);
        if t > 0 && ms >= t {
            self.sample(if fast() { "fast-command" } else { "command" }, ms);
            kept = true;
        }
        kept
    }

    fn log_slow(&self, args: &[Bytes], micros: u64, addr: &str, name: &Bytes) {
        let max_len = self.max_len.load(Ordering::Relaxed) as usize;
        let kept = args.len().min(MAX_ARGS);
        let mut out = Vec::with_capacity(kept);
        for (j, a) in args.iter().take(kept).enumerate() {
            if kept != args.len() && j == kept - 1 {
                let more = args.len() - kept + 1;
                out.push(Bytes::from(format!("... ({more} more arguments)")));
            } else if a.len() > MAX_ARG_BYTES {
                let mut s = a[..MAX_ARG_BYTES].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                out.push(Bytes::from(s));
            } else {
                // Copied: a slice of a large request buffer must not be kept alive by the log.
                out.push(Bytes::copy_from_slice(a));
            }
        }
        redact(&mut out);
        let mut log = self.slowlog.lock();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(SlowEntry {
            id,
            time: vigil_base::clock::unix_ms() / 1000,
            micros,
            args: out,
            addr: addr.to_string(),
            name: name.clone(),
        });
        log.entries.truncate(max_len);
    }

    /// The newest `n` slow log entries.
    pub fn slow_entries(&self, n: usize) -> Vec<SlowEntry> {
        self.slowlog
            .lock()
            .entries
            .iter()
            .take(n)
            .cloned()
            .collect()
    }

    /// How many entries the slow log holds.
    pub fn slow_len(&self) -> usize {
        self.slowlog.lock().entries.len()
    }

    /// Empties the slow log (ids keep increasing).
    pub fn slow_reset(&self) {
        self.slowlog.lock().entries.clear();
    }

    /// Adds a latency sample of `ms` for `event`, if above the threshold.
    pub fn sample_if_needed(&self, event: &str, ms: u64) {
        let t = self.latency_threshold.load(Ordering::Relaxed);
        if t > 0 && ms >= t {
            self.sample(event, ms);
        }
    }

    fn sample(&self, event: &str, ms: u64) {
        let now = vigil_base::clock::unix_ms() / 1000;
        let mut events = self.latency.lock();
        let s = events.entry(event.to_string()).or_default();
        s.max = s.max.max(ms);
        match s.samples.back_mut() {
            Some(last) if last.0 == now => last.1 = last.1.max(ms),
            _ => {
                if s.samples.len() == LATENCY_SAMPLES {
                    s.samples.pop_front();
                }
                s.samples.push_back((now, ms));
            }
        }
    }

    /// Every event's history.
    pub fn latency_events(&self) -> BTreeMap<String, Series> {
        self.latency.lock().clone()
    }

    /// Forgets the named events (all with none named); returns how many there were.
    pub fn latency_reset(&self, events: &[Bytes]) -> usize {
        let mut all = self.latency.lock();
        if events.is_empty() {
            let n = all.len();
            all.clear();
            return n;
        }
        events
            .iter()
            .filter(|e| all.remove(&*String::from_utf8_lossy(e)).is_some())
            .count()
    }
}

/// Hides secrets from the log, as Redis does: passwords of AUTH, HELLO, MIGRATE and
/// `CONFIG SET` of a sensitive parameter, the rules of `ACL SETUSER`.
fn redact(args: &mut [Bytes]) {
    let hidden = || Bytes::from_static(b"(redacted)");
    let name = args
        .first()
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    let sub = args
        .get(1)
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    match (&name[..], &sub[..]) {
        (b"auth", _) => args.iter_mut().skip(1).for_each(|a| *a = hidden()),
        (b"acl", b"setuser") => args.iter_mut().skip(2).for_each(|a| *a = hidden()),
        (b"config", b"set") => {
            for i in (2..args.len()).step_by(2) {
                let secret = crate::config::params::lookup(&String::from_utf8_lossy(&args[i]))
                    .is_some_and(|p| p.has(crate::config::params::S));
                if secret && i + 1 < args.len() {
                    args[i + 1] = hidden();
                }
            }
        }
        _ => {
            let mut i = 1;
            while i < args.len() {
                let w = args[i].to_ascii_lowercase();
                // MIGRATE's options end at KEYS: a key may be called `auth`.
                if &name[..] == b"migrate" && &w[..] == b"keys" {
                    break;
                }
                let n = match (&name[..], &w[..]) {
                    (b"hello", b"auth") | (b"migrate", b"auth2") => 2,
                    (b"migrate", b"auth") => 1,
                    _ => 0,
                };
                for a in args.iter_mut().skip(i + 1).take(n) {
                    *a = hidden();
                }
                i += 1 + n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_entries_are_trimmed_and_redacted() {
        let m = Monitor::default();
        m.configure(0, 2, 0);
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        m.record(&many, 5, || true, || ("1.2.3.4:5".into(), Bytes::new()));
        let e = &m.slow_entries(10)[0];
        assert_eq!(e.args.len(), 32);
        assert_eq!(e.args[31], "... (9 more arguments)");
        let long = vec![Bytes::from("set"), Bytes::from(vec![b'A'; 129])];
        m.record(&long, 5, || true, || ("a".into(), Bytes::new()));
        assert!(m.slow_entries(1)[0].args[1].ends_with(b"A... (1 more bytes)"));
        let cfg: Vec<Bytes> = ["config", "set", "masterauth", "pw", "hz", "5"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        m.record(&cfg, 5, || true, || ("a".into(), Bytes::new()));
        assert_eq!(m.slow_entries(1)[0].args[3], "(redacted)");
        assert_eq!(m.slow_entries(1)[0].args[5], "5");
        assert_eq!(m.slow_len(), 2);
        assert_eq!(m.slow_entries(10)[0].id, 2);
        // MIGRATE's options end at KEYS: a key named `auth` stays.
        let mig: Vec<Bytes> = [
            "migrate", "h", "1", "", "0", "0", "AUTH", "p", "auth2", "u", "q", "keys", "auth", "k",
        ]
        .into_iter()
        .map(Bytes::from)
        .collect();
        m.record(&mig, 5, || true, || ("a".into(), Bytes::new()));
        let shown: Vec<String> = m.slow_entries(1)[0]
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(
            shown[6..],
            [
                "AUTH",
                "(redacted)",
                "auth2",
                "(redacted)",
                "(redacted)",
                "keys",
                "auth",
                "k"
            ]
        );
    }

    #[test]
    fn latency_keeps_the_highest_sample_per_second() {
        let m = Monitor::default();
        m.configure(-1, 128, 100);
        m.record(&[], 50_000, || false, || ("a".into(), Bytes::new()));
        assert!(m.latency_events().is_empty());
        m.record(&[], 150_000, || false, || ("a".into(), Bytes::new()));
        m.record(&[], 120_000, || false, || ("a".into(), Bytes::new()));
        let ev = m.latency_events();
        let s = &ev["command"];
        assert_eq!(s.max, 150);
        assert!(s.samples.len() <= 2);
        assert_eq!(m.latency_reset(&[Bytes::from("nope")]), 0);
        assert_eq!(m.latency_reset(&[]), 1);
    }
}
