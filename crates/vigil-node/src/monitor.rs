//! `MONITOR`: every command the node runs, as one line per command to each monitoring client,
//! in Redis' format (`+<unix s>.<µs> [<db> <client addr>|lua] "arg" …`).
//!
//! The invariant: a command is shown after it ran, once, by the code that ran it (the
//! dispatcher, EXEC for queued commands, the script host for `redis.call`); administrative
//! commands and script invocations themselves are never shown, and passwords are redacted.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use vigil_resp::pubsub::{Message, Subscriber};
use vigil_resp::{CommandMeta, Flags};

/// The monitoring clients.
#[derive(Debug, Default)]
pub struct Monitors {
    count: AtomicUsize,
    subs: Mutex<Vec<(u64, Subscriber)>>,
}

impl Monitors {
    /// Whether any client monitors (one atomic load on the command path).
    pub fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// Adds a monitoring client (again: no change).
    pub fn add(&self, id: u64, sub: Subscriber) {
        let mut subs = self.subs.lock();
        if subs.iter().all(|(i, _)| *i != id) {
            subs.push((id, sub));
            self.count.store(subs.len(), Ordering::Relaxed);
        }
    }

    /// Removes a client that disconnected.
    pub fn remove(&self, id: u64) {
        let mut subs = self.subs.lock();
        subs.retain(|(i, _)| *i != id);
        self.count.store(subs.len(), Ordering::Relaxed);
    }

    /// Shows a command that ran, if its kind is shown (`meta`'s flags).
    pub fn feed(&self, meta: &CommandMeta, db: usize, from: &str, args: &[Bytes]) {
        if shown(meta) {
            self.show(db, from, args);
        }
    }

    /// Shows a script invocation before the commands it runs, as Redis does.
    pub fn show(&self, db: usize, from: &str, args: &[Bytes]) {
        if !self.active() {
            return;
        }
        let line = Bytes::from(line(db, from, args, vigil_base::clock::unix_us()));
        let mut subs = self.subs.lock();
        subs.retain(|(_, s)| s.send(Message::Raw(line.clone())));
        self.count.store(subs.len(), Ordering::Relaxed);
    }
}

/// Redis hides administrative commands; scripts (`skip_monitor`) are shown before they run
/// ([`Monitors::show`]), not after.
fn shown(meta: &CommandMeta) -> bool {
    !meta.flags.has(Flags::ADMIN)
        && !matches!(
            meta.name,
            "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro"
        )
}

/// One monitor line.
fn line(db: usize, from: &str, args: &[Bytes], micros: i64) -> Vec<u8> {
    let mut out = format!(
        "+{}.{:06} [{db} {from}]",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
    .into_bytes();
    let hidden = redacted(args);
    for (i, a) in args.iter().enumerate() {
        out.push(b' ');
        if hidden.iter().any(|&(from, to)| i >= from && i < to) {
            out.extend_from_slice(b"\"(redacted)\"");
        } else {
            repr(&mut out, a);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Which arguments hold credentials, as index ranges: `AUTH`'s, `HELLO … AUTH user pass`,
/// MIGRATE's `AUTH password` and `AUTH2 user password` (options before `KEYS`).
fn redacted(args: &[Bytes]) -> Vec<(usize, usize)> {
    let is = |i: usize, w: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(w.as_bytes()))
    };
    if is(0, "auth") {
        return vec![(1, args.len())];
    }
    if is(0, "hello")
        && let Some(i) = (2..args.len()).find(|&i| is(i, "auth"))
    {
        return vec![(i + 1, (i + 3).min(args.len()))];
    }
    let mut ranges = Vec::new();
    if is(0, "migrate") {
        let mut i = 6;
        while i < args.len() && !is(i, "keys") {
            let n = if is(i, "auth") {
                1
            } else if is(i, "auth2") {
                2
            } else {
                0
            };
            if n > 0 {
                ranges.push((i + 1, (i + 1 + n).min(args.len())));
            }
            i += 1 + n;
        }
    }
    ranges
}

/// Quotes an argument as Redis' `sdscatrepr` does.
pub fn repr(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b'"');
    for &c in a {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            b' '..=b'~' => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_and_redact_as_redis() {
        let args = |a: &[&[u8]]| {
            a.iter()
                .map(|x| Bytes::copy_from_slice(x))
                .collect::<Vec<_>>()
        };
        let l = line(
            3,
            "127.0.0.1:5000",
            &args(&[b"set", b"k\"1", b"a b\n\x01\xff"]),
            1_700_000_000_000_042,
        );
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "+1700000000.000042 [3 127.0.0.1:5000] \"set\" \"k\\\"1\" \"a b\\n\\x01\\xff\"\r\n"
        );
        let l = line(
            0,
            "x",
            &args(&[
                b"migrate", b"h", b"1", b"", b"0", b"0", b"AUTH", b"p", b"auth2", b"u", b"q",
                b"KEYS", b"auth", b"k",
            ]),
            0,
        );
        assert!(String::from_utf8(l).unwrap().ends_with(
            "\"AUTH\" \"(redacted)\" \"auth2\" \"(redacted)\" \"(redacted)\" \"KEYS\" \"auth\" \"k\"\r\n"
        ));
        let l = line(0, "lua", &args(&[b"AUTH", b"u", b"p"]), 0);
        assert!(
            String::from_utf8(l)
                .unwrap()
                .ends_with("\"AUTH\" \"(redacted)\" \"(redacted)\"\r\n")
        );
        let l = line(
            0,
            "x",
            &args(&[b"hello", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]),
            0,
        );
        assert!(String::from_utf8(l).unwrap().ends_with(
            "\"hello\" \"3\" \"AUTH\" \"(redacted)\" \"(redacted)\" \"SETNAME\" \"n\"\r\n"
        ));
    }
}
