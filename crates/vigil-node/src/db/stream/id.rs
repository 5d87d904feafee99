//! Stream entry ids (`ms-seq`) and their parsing, worded as Redis words its errors.

use bytes::Bytes;
use vigil_resp::CmdError;

/// An entry id: milliseconds and a sequence number, ordered as a 128-bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

/// Redis' error for an id that does not parse.
pub fn invalid_id() -> CmdError {
    CmdError::msg("ERR Invalid stream ID specified as stream command argument")
}

/// Parses an unsigned decimal as Redis' `string2ull` does (canonical integers, else `strtoull`
/// with its leading blanks and sign).
fn parse_u64(b: &[u8]) -> Option<u64> {
    if let Ok(v) = vigil_resp::args::parse_int(b) {
        return (v >= 0).then_some(v as u64);
    }
    let s = std::str::from_utf8(b).ok()?;
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

impl StreamId {
    /// 0-0.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The greatest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The next id, `None` after the greatest.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq + 1,
            })
        } else if self.ms < u64::MAX {
            Some(StreamId {
                ms: self.ms + 1,
                seq: 0,
            })
        } else {
            None
        }
    }

    /// The previous id, `None` before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq - 1,
            })
        } else if self.ms > 0 {
            Some(StreamId {
                ms: self.ms - 1,
                seq: u64::MAX,
            })
        } else {
            None
        }
    }

    /// Parses `ms[-seq]`, `-` and `+` (not in strict mode); a missing sequence is
    /// `missing_seq`. With `allow_auto_seq`, `ms-*` gives `Ok((id, false))` (sequence to be
    /// generated); otherwise the bool is always true.
    pub fn parse_full(
        b: &[u8],
        strict: bool,
        missing_seq: u64,
        allow_auto_seq: bool,
    ) -> Result<(StreamId, bool), CmdError> {
        if b.len() > 127 || b.contains(&0) {
            return Err(invalid_id());
        }
        match b {
            b"-" | b"+" if strict => return Err(invalid_id()),
            b"-" => return Ok((StreamId::MIN, true)),
            b"+" => return Ok((StreamId::MAX, true)),
            _ => {}
        }
        let (ms, seq) = match b.iter().position(|&c| c == b'-') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        };
        let ms = parse_u64(ms).ok_or_else(invalid_id)?;
        let (seq, given) = match seq {
            Some(b"*") if allow_auto_seq => (0, false),
            Some(s) => (parse_u64(s).ok_or_else(invalid_id)?, true),
            None => (missing_seq, true),
        };
        Ok((StreamId { ms, seq }, given))
    }

    /// A strict id (no `-`/`+`), missing sequence 0.
    pub fn parse_strict(b: &[u8]) -> Result<StreamId, CmdError> {
        Ok(Self::parse_full(b, true, 0, false)?.0)
    }

    /// An id that may be `-`/`+`, missing sequence `missing_seq`.
    pub fn parse(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
        Ok(Self::parse_full(b, false, missing_seq, false)?.0)
    }

    /// A range bound: `(id` is exclusive. Returns the inclusive bound, or the error Redis gives
    /// when stepping past the end (`start`: incremented; otherwise decremented).
    pub fn parse_interval(b: &[u8], start: bool) -> Result<StreamId, CmdError> {
        let missing = if start { 0 } else { u64::MAX };
        if b.len() > 1 && b[0] == b'(' {
            let id = Self::parse_full(&b[1..], true, missing, false)?.0;
            if start {
                id.incr()
                    .ok_or_else(|| CmdError::msg("ERR invalid start ID for the interval"))
            } else {
                id.decr()
                    .ok_or_else(|| CmdError::msg("ERR invalid end ID for the interval"))
            }
        } else {
            Self::parse(b, missing)
        }
    }

    /// `ms-seq` as an argument or reply.
    pub fn to_bytes(self) -> Bytes {
        let mut b = itoa::Buffer::new();
        let mut s = String::with_capacity(24);
        s.push_str(b.format(self.ms));
        s.push('-');
        s.push_str(b.format(self.seq));
        Bytes::from(s)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_redis() {
        let id = |ms, seq| StreamId { ms, seq };
        let cases: &[(&str, Option<StreamId>)] = &[
            ("1-2", Some(id(1, 2))),
            ("5", Some(id(5, 0))),
            (
                "18446744073709551615-18446744073709551615",
                Some(StreamId::MAX),
            ),
            ("18446744073709551616", None),
            ("-1", None),
            ("a-1", None),
            ("1-", None),
            ("", None),
            ("1-2-3", None),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(StreamId::parse_strict(s.as_bytes()).ok(), *want, "#{i} {s}");
        }
        assert!(StreamId::parse_strict(b"-").is_err());
        assert_eq!(StreamId::parse(b"+", 0).unwrap(), StreamId::MAX);
        assert_eq!(StreamId::parse(b"7", u64::MAX).unwrap(), id(7, u64::MAX));
        assert_eq!(
            StreamId::parse_full(b"3-*", true, 0, true).unwrap(),
            (id(3, 0), false)
        );
        assert_eq!(StreamId::parse_interval(b"(1-1", true).unwrap(), id(1, 2));
        assert_eq!(
            StreamId::parse_interval(b"(1-0", false).unwrap(),
            id(0, u64::MAX)
        );
        assert!(StreamId::parse_interval(b"(0-0", false).is_err());
    }
}
