//! Error replies counted by their code (`ERR`, `WRONGTYPE`, `NOSCRIPT`...), as Redis counts them
//! for `INFO errorstats` and `total_error_replies`. The code is the error's first word when a
//! space comes within its first 31 bytes, else `ERR`, as in Redis.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Distinct codes kept: a script can return any error text, so the table is bounded; codes
/// past the limit still count in the total.
const MAX_CODES: usize = 128;

/// The counters.
#[derive(Debug, Default)]
pub struct ErrorStats {
    total: AtomicU64,
    codes: Mutex<BTreeMap<String, u64>>,
}

/// The code an error message counts under.
pub fn code(msg: &str) -> &str {
    let head = &msg.as_bytes()[..msg.len().min(31)];
    match head.iter().position(|&b| b == b' ') {
        Some(i) if i > 0 => &msg[..i],
        _ => "ERR",
    }
}

impl ErrorStats {
    /// Counts one error reply.
    pub fn count(&self, msg: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let code = code(msg);
        let mut codes = self.codes.lock();
        if let Some(n) = codes.get_mut(code) {
            *n += 1;
        } else if codes.len() < MAX_CODES {
            codes.insert(code.to_string(), 1);
        }
    }

    /// Error replies sent since the last reset.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// `(code, count)` in code order.
    pub fn codes(&self) -> Vec<(String, u64)> {
        self.codes
            .lock()
            .iter()
            .map(|(c, n)| (c.clone(), *n))
            .collect()
    }

    /// Forgets everything (`CONFIG RESETSTAT`).
    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.codes.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_first_words_as_redis_reads_them() {
        let cases = [
            ("WRONGTYPE Operation against a key", "WRONGTYPE"),
            ("ERR unknown command", "ERR"),
            ("NOSCRIPT No matching script.", "NOSCRIPT"),
            ("no-space-at-all", "ERR"),
            (" leading space", "ERR"),
            ("AVERYLONGCODEWITHOUTANYSPACEINSIDEIT here", "ERR"),
            ("", "ERR"),
        ];
        for (i, (msg, want)) in cases.iter().enumerate() {
            assert_eq!(code(msg), *want, "#{i}");
        }
    }

    #[test]
    fn the_code_table_is_bounded_but_the_total_counts_all() {
        let s = ErrorStats::default();
        for i in 0..1000 {
            s.count(&format!("E{i} x"));
        }
        assert_eq!(s.total(), 1000);
        assert_eq!(s.codes().len(), MAX_CODES);
        s.reset();
        assert_eq!((s.total(), s.codes().len()), (0, 0));
    }
}
