//! Replays `tests/diff/lua_libs.txt` (the lead's differential script for the embedded
//! libraries) on a bare Lua state with `vigil_lua::libs` installed, and compares each reply with
//! the one redis-server 7.0.15 gave, captured by `capture.py` into `captured/lua_libs.resp`.
//!
//! Scripts run as `EVAL` runs them (a chunk named `@user_script`), and their results become
//! RESP2 replies by Redis' rules; an error is compared by its message, before Redis' ` script: …`
//! suffix.

use mlua::{Lua, MultiValue, Value};

const SCRIPT: &str = include_str!("../../../tests/diff/lua_libs.txt");
const CAPTURED: &str = include_str!("captured/lua_libs.resp");

#[test]
fn libraries_reply_as_redis_did() {
    let commands: Vec<_> = SCRIPT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let expected: Vec<_> = CAPTURED.lines().collect();
    assert_eq!(
        commands.len(),
        expected.len(),
        "capture is stale: rerun capture.py"
    );
    let lua = Lua::new();
    vigil_lua::libs::install(&lua).unwrap();
    let mut failures = Vec::new();
    for (i, (line, want)) in commands.iter().zip(&expected).enumerate() {
        let args = split_args(line).unwrap_or_else(|| panic!("#{i}: bad quoting: {line}"));
        assert!(
            args[0].eq_ignore_ascii_case(b"EVAL"),
            "#{i}: not an EVAL: {line}"
        );
        let got = escape(&eval(&lua, &args[1]));
        let want = unescape(want);
        let ok = match want.strip_prefix(b"-") {
            Some(_) => {
                let cut = find(&want, b" script: ").unwrap_or(want.len());
                got.as_bytes() == escape(&want[..cut]).as_bytes()
            }
            None => got == escape(&want),
        };
        if !ok {
            failures.push(format!(
                "#{i} {line}\n  redis: {}\n  vigil: {got}",
                escape(&want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs an EVAL body; its first result as Redis would reply it, or `-ERR <message>`.
fn eval(lua: &Lua, body: &[u8]) -> Vec<u8> {
    let f = match lua.load(body).set_name("@user_script").into_function() {
        Ok(f) => f,
        Err(e) => return format!("-ERR compile: {e}").into_bytes(),
    };
    match f.call::<MultiValue>(()) {
        Ok(vals) => {
            let mut out = Vec::new();
            reply(vals.front().unwrap_or(&Value::Nil), &mut out, 0);
            out
        }
        Err(mlua::Error::RuntimeError(msg)) => {
            // mlua appends a traceback; Redis does not.
            let msg = msg.split("\nstack traceback:").next().unwrap_or("");
            format!("-ERR {msg}").into_bytes()
        }
        Err(e) => format!("-ERR other: {e}").into_bytes(),
    }
}

/// Redis 7.0's Lua → RESP2 conversion for the values these tests return.
fn reply(v: &Value, out: &mut Vec<u8>, depth: usize) {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(&b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Boolean(true) => out.extend_from_slice(b":1\r\n"),
        Value::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Value::Number(n) => {
            let n = if n.is_nan() || *n >= 9.223372036854776e18 || *n < -9.223372036854776e18 {
                i64::MIN
            } else {
                *n as i64
            };
            out.extend_from_slice(format!(":{n}\r\n").as_bytes())
        }
        Value::Table(t) if depth < 100 => {
            if let Ok(Value::String(e)) = t.get::<Value>("err") {
                out.push(b'-');
                out.extend_from_slice(&e.as_bytes());
                out.extend_from_slice(b"\r\n");
                return;
            }
            if let Ok(Value::String(e)) = t.get::<Value>("ok") {
                out.push(b'+');
                out.extend_from_slice(&e.as_bytes());
                out.extend_from_slice(b"\r\n");
                return;
            }
            let mut items = Vec::new();
            for j in 1.. {
                match t.raw_get::<Value>(j) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(v),
                }
            }
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for v in &items {
                reply(v, out, depth + 1);
            }
        }
        _ => out.extend_from_slice(b"$-1\r\n"),
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &x in b {
        match x {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(x as char),
            _ => s.push_str(&format!("\\x{x:02x}")),
        }
    }
    s
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// `redis-cli`'s argument splitting (as tests/src/diff.rs does it).
fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        match b[i] {
            b'"' => {
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\\'
                            if b.get(i + 1) == Some(&b'x')
                                && b.len() > i + 3
                                && b[i + 2].is_ascii_hexdigit()
                                && b[i + 3].is_ascii_hexdigit() =>
                        {
                            cur.push(u8::from_str_radix(&line[i + 2..i + 4], 16).ok()?);
                            i += 4;
                        }
                        b'\\' => {
                            cur.push(match *b.get(i + 1)? {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                c => c,
                            });
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            break;
                        }
                        c => {
                            cur.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'\\' if b.get(i + 1) == Some(&b'\'') => {
                            cur.push(b'\'');
                            i += 2;
                        }
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        c => {
                            cur.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    cur.push(b[i]);
                    i += 1;
                }
            }
        }
        out.push(cur);
    }
}
