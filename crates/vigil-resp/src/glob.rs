//! Redis glob matching (`stringmatchlen`): `*`, `?`, `[...]` with ranges and `^`, `\` escapes.

/// Whether `s` matches `pattern`, byte for byte as Redis' KEYS, SCAN MATCH and PSUBSCRIBE do.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    match_inner(pattern, s, false, 0, &mut false)
}

/// Same, ignoring ASCII case.
pub fn matches_nocase(pattern: &[u8], s: &[u8]) -> bool {
    match_inner(pattern, s, true, 0, &mut false)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// `skip` is set when the rest of the pattern after a `*` matched no suffix at all: then no
/// earlier `*` can help by taking more, and the search stops (without it, "a*a*...*b" against a
/// long run of "a" takes exponential time, as it did in Redis before 7.0).
fn match_inner(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize, skip: &mut bool) -> bool {
    // Bound recursion on patterns like "*****...": Redis does the same since 7.0.
    if depth > 1000 {
        return false;
    }
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..=s.len() {
                    if match_inner(&p[1..], &s[i..], nocase, depth + 1, skip) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                }
                *skip = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = p.first() == Some(&b'^');
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if eq(p[0], s[0], nocase) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        let mut c = s[0];
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = start.to_ascii_lowercase();
                            end = end.to_ascii_lowercase();
                            c = c.to_ascii_lowercase();
                        }
                        p = &p[2..];
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if eq(p[0], s[0], nocase) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s = &s[1..];
                if p.is_empty() {
                    // Unterminated class: Redis treats the pattern as ended here.
                    return s.is_empty();
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if !eq(c, s[0], nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    if s.is_empty() {
        while p.first() == Some(&b'*') {
            p = &p[1..];
        }
    }
    p.is_empty() && s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn nested_stars_fail_fast() {
        let s = vec![b'a'; 130];
        let p = "a*".repeat(33) + "b";
        let t = std::time::Instant::now();
        assert!(!matches(p.as_bytes(), &s));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(matches(b"a*a*b", b"aaab"));
        assert!(matches(b"*x*y", b"axbxy"));
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("__sentinel__:*", "__sentinel__:hello", true),
            ("+*", "+switch-master", true),
            ("a*b", "ab", true),
            ("a*b", "acb", true),
            ("a*b", "acbd", false),
            ("abc", "ab", false),
            ("ab", "abc", false),
        ];
        for (i, (p, s, want)) in cases.iter().enumerate() {
            assert_eq!(matches(p.as_bytes(), s.as_bytes()), *want, "#{i} {p} {s}");
        }
    }
}
