//! The differential comparison: the same script of commands goes to a real `redis-server` and
//! to `vigil node`, and the replies must be identical byte for byte (or, for commands whose
//! element order Redis leaves unspecified, identical as multisets).
//!
//! A script has one command a line, split into arguments as `redis-cli` splits them: on
//! spaces, with `"…"` (escapes `\n \r \t \\ \" \xHH`) and `'…'` (escape `\'`) quoting
//! arguments that hold spaces — Lua code, for instance. A leading `~` compares the reply's
//! top-level elements order-insensitively; a leading `!` runs the command on both without
//! comparing (replies that carry ids, times or versions). Blank lines and lines starting with
//! `#` are skipped. `HELLO 3` switches the comparison of what follows to RESP3.

use crate::{NodeProc, RawConn, RedisProc};

/// How one line's replies are compared.
#[derive(Debug, PartialEq)]
pub enum Mode {
    /// Byte for byte.
    Exact,
    /// Top-level elements as a multiset.
    Unordered,
    /// Not compared.
    Skip,
}

/// Splits a script into its commands.
pub fn parse_script(s: &str) -> Vec<(Mode, Vec<Vec<u8>>)> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (mode, rest) = match l.as_bytes()[0] {
                b'~' => (Mode::Unordered, &l[1..]),
                b'!' => (Mode::Skip, &l[1..]),
                _ => (Mode::Exact, l),
            };
            let args = split_args(rest).unwrap_or_else(|| panic!("unbalanced quotes: {l}"));
            (mode, args)
        })
        .collect()
}

/// Splits a line into arguments as `redis-cli` does (`sdssplitargs`); `None` on unbalanced
/// quotes.
pub fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            if i == b.len() {
                if quote.is_some() {
                    return None;
                }
                break;
            }
            let c = b[i];
            match quote {
                Some(b'"') if c == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(v) => {
                            cur.push(v);
                            i += 3;
                        }
                        None => cur.push(c),
                    }
                }
                Some(b'"') if c == b'\\' && i + 1 < b.len() => {
                    i += 1;
                    cur.push(match b[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                }
                Some(b'\'') if c == b'\\' && i + 1 < b.len() && b[i + 1] == b'\'' => {
                    i += 1;
                    cur.push(b'\'');
                }
                Some(q) if c == q => {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                }
                Some(_) => cur.push(c),
                None if c.is_ascii_whitespace() => break,
                None if (c == b'"' || c == b'\'') && cur.is_empty() => quote = Some(c),
                None => cur.push(c),
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Splits a reply into its header line and its top-level element encodings, sorted.
pub fn unordered(reply: &[u8], resp3: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let nl = reply
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(reply.len() - 1)
        + 1;
    let (head, mut rest) = reply.split_at(nl);
    let mut items = Vec::new();
    while !rest.is_empty() {
        let n = if resp3 {
            redis_protocol::resp3::decode::complete::decode(rest)
                .unwrap()
                .unwrap()
                .1
        } else {
            redis_protocol::resp2::decode::decode(rest)
                .unwrap()
                .unwrap()
                .1
        };
        items.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    items.sort();
    (head.to_vec(), items)
}

/// Runs `script` on both connections; returns one description per differing reply.
pub fn compare(script: &str, redis: &mut RawConn, vigil: &mut RawConn) -> Vec<String> {
    let mut failures = Vec::new();
    let mut resp3 = false;
    for (i, (mode, cmd)) in parse_script(script).into_iter().enumerate() {
        let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        if args[0].eq_ignore_ascii_case(b"hello") && args.len() > 1 {
            resp3 = args[1] == b"3";
        }
        let want = redis.call_bytes(&args);
        let got = vigil.call_bytes(&args);
        let same = match mode {
            Mode::Exact => want == got,
            Mode::Unordered => unordered(&want, resp3) == unordered(&got, resp3),
            Mode::Skip => true,
        };
        if !same {
            let line: Vec<String> = cmd
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            failures.push(format!(
                "#{i} {}\n   redis: {:?}\n   vigil: {:?}",
                line.join(" "),
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    failures
}

/// A redis-server and a `vigil node` side by side, with a connection to each.
pub struct Pair {
    /// The reference server.
    pub redis: RedisProc,
    /// The node under test.
    pub node: NodeProc,
    /// A connection to the reference.
    pub r: RawConn,
    /// A connection to the node.
    pub v: RawConn,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// Starts both servers and connects to each.
    pub fn start() -> Pair {
        Self::start_with(&[])
    }

    /// Starts both servers (redis-server with extra flags, e.g. `--enable-debug-command yes`)
    /// and connects to each.
    pub fn start_with(redis_args: &[&str]) -> Pair {
        let redis = RedisProc::start_with(redis_args);
        let dir = tempfile::tempdir().unwrap();
        let node = NodeProc::start(&dir.path().join("node"), &[]);
        let r = RawConn::connect(redis.port).unwrap();
        let v = RawConn::connect(node.port).unwrap();
        Pair {
            redis,
            node,
            r,
            v,
            _dir: dir,
        }
    }

    /// Runs `script` in RESP2, then again after `HELLO 3`, each time on an empty dataset.
    pub fn both_protocols(&mut self, script: &str) -> Vec<String> {
        let mut f = self.compare(&format!("FLUSHALL\n{script}"));
        f.extend(self.compare(&format!("FLUSHALL\n!HELLO 3\n{script}\n!HELLO 2")));
        f
    }

    /// Runs `script` on both ([`compare`]).
    pub fn compare(&mut self, script: &str) -> Vec<String> {
        compare(script, &mut self.r, &mut self.v)
    }
}

/// Fails the test with every differing reply.
pub fn assert_none(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} replies differ from redis-server:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs `script` on a fresh redis-server and a fresh node; fails the test where they differ.
pub fn assert_matches_redis(script: &str) {
    assert_none(&Pair::start().compare(script));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_redis_cli() {
        let s = |l: &str| {
            split_args(l).map(|v| {
                v.into_iter()
                    .map(|a| String::from_utf8(a).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(s("SET k v").unwrap(), ["SET", "k", "v"]);
        assert_eq!(
            s(r#"EVAL "return redis.call('get', KEYS[1])" 1 k"#).unwrap(),
            ["EVAL", "return redis.call('get', KEYS[1])", "1", "k"]
        );
        assert_eq!(s(r#"SET k "a\nb\x41""#).unwrap(), ["SET", "k", "a\nbA"]);
        assert_eq!(s(r"SET k 'it\'s'").unwrap(), ["SET", "k", "it's"]);
        assert_eq!(s(r#"SET k """#).unwrap(), ["SET", "k", ""]);
        assert!(s(r#"SET k "open"#).is_none());
        assert!(s(r#"SET k "a"b"#).is_none());
    }
}
