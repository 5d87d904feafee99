//! One line of a Redis config file split into arguments by Redis' own rules (`sdssplitargs` in
//! Redis' `src/sds.c`), so a value reads here exactly as `redis-server` reads it: blanks
//! separate arguments; `"double quotes"` take `\n \r \t \b \a`, `\xHH` and `\<any>`
//! escapes; `'single quotes'` take only `\'`; a quote may open mid-argument (`a"b c"` is
//! `ab c`), but a closing quote must be followed by a blank or the end of the line.

/// The arguments of `line`, or `None` where Redis reports "Unbalanced quotes" (an unterminated
/// quote, or a closing quote followed by something other than a blank).
pub(super) fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut p = 0;
    // Redis' isspace: blank, \t, \n, \v, \f, \r.
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    loop {
        while p < line.len() && space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = line.get(p).copied();
            let next = line.get(p + 1).copied();
            if dq {
                match (c, next) {
                    (None, _) => return None,
                    (Some(b'\\'), Some(b'x'))
                        if hex(line.get(p + 2)).is_some() && hex(line.get(p + 3)).is_some() =>
                    {
                        let hi = hex(line.get(p + 2)).unwrap_or(0);
                        let lo = hex(line.get(p + 3)).unwrap_or(0);
                        cur.push(hi * 16 + lo);
                        p += 4;
                    }
                    (Some(b'\\'), Some(e)) => {
                        cur.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 2;
                    }
                    (Some(b'"'), n) => {
                        if n.is_some_and(|n| !space(n)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    (Some(b), _) => {
                        cur.push(b);
                        p += 1;
                    }
                }
            } else if sq {
                match (c, next) {
                    (None, _) => return None,
                    (Some(b'\\'), Some(b'\'')) => {
                        cur.push(b'\'');
                        p += 2;
                    }
                    (Some(b'\''), n) => {
                        if n.is_some_and(|n| !space(n)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    (Some(b), _) => {
                        cur.push(b);
                        p += 1;
                    }
                }
            } else {
                match c {
                    None => break,
                    Some(b' ' | b'\n' | b'\r' | b'\t') => {
                        p += 1;
                        break;
                    }
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(b) => cur.push(b),
                }
                p += 1;
            }
        }
        out.push(cur);
    }
}

fn hex(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_as_redis_does() {
        let s = |v: &[&str]| -> Option<Vec<Vec<u8>>> {
            Some(v.iter().map(|a| a.as_bytes().to_vec()).collect())
        };
        for (i, (line, want)) in [
            (
                "sentinel monitor m 127.0.0.1 6379 2",
                s(&["sentinel", "monitor", "m", "127.0.0.1", "6379", "2"]),
            ),
            ("  a \t b  ", s(&["a", "b"])),
            ("", s(&[])),
            (r#"dir "/tmp/x y""#, s(&["dir", "/tmp/x y"])),
            (r#"a "q\"uo\\te\n\x41""#, s(&["a", "q\"uo\\te\nA"])),
            (r#"a "\xzz""#, s(&["a", "xzz"])),
            (r"a 'it\'s' 'x\n'", s(&["a", "it's", "x\\n"])),
            (r#"a"b c" d"#, s(&["ab c", "d"])),
            (r#"a """#, s(&["a", ""])),
            (r#"a "unterminated"#, None),
            (r#"a "x"y"#, None),
            ("a 'x", None),
            ("a 'x'y", None),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(split(line.as_bytes()), want, "#{i}: {line}");
        }
    }
}
