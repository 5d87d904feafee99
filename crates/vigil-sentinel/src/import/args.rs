//! One line of a Redis config file split into arguments by Redis' own rules (`sdssplitargs` in
//! Redis' `src/sds.c`, which `vigil_resp::request::split_args` implements for inline requests
//! too), so a value reads here exactly as `redis-server` reads it: blanks
//! separate arguments; `"double quotes"` take `\n \r \t \b \a`, `\xHH` and `\<any>`
//! escapes; `'single quotes'` take only `\'`; a quote may open mid-argument (`a"b c"` is
//! `ab c`), but a closing quote must be followed by a blank or the end of the line.

/// The arguments of `line`, or `None` where Redis reports "Unbalanced quotes" (an unterminated
/// quote, or a closing quote followed by something other than a blank).
pub(super) fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let args = vigil_resp::request::split_args(line).ok()?;
    Some(args.into_iter().map(|a| a.to_vec()).collect())
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
