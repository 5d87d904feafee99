//! The request parser: RESP multibulk (`*N` of `$len` strings) and inline commands, resumable
//! across reads, with every size bounded before anything is allocated.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;

/// Size limits applied while parsing (Redis names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest bulk string (`proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Largest argument count of one request.
    pub max_multibulk_len: usize,
    /// Longest inline request line.
    pub max_inline_len: usize,
    /// Most unparsed bytes one client may have buffered (`client-query-buffer-limit`).
    pub max_query_buffer: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as usize,
            max_inline_len: 64 * 1024,
            max_query_buffer: 1024 * 1024 * 1024,
        }
    }
}

impl ParseLimits {
    /// For input that does not come from a client: the append log and a master's replication
    /// stream. Multibulk commands with announced sizes bounded by the caller (the log by its
    /// file's size, the stream by `proto-max-bulk-len`), so neither a damaged file nor a rogue
    /// peer can make the node allocate more than it could ever need. No query buffer limit (a
    /// master is exempt, as in Redis): the buffer only holds bytes that actually arrived.
    pub fn peer(max_bulk_len: usize, max_multibulk_len: usize) -> ParseLimits {
        ParseLimits {
            max_bulk_len,
            max_multibulk_len,
            max_inline_len: 0,
            max_query_buffer: usize::MAX,
        }
    }
}

/// Redis refuses larger requests from unauthenticated clients, so that a port scanner cannot
/// make the server allocate.
const UNAUTH_MAX_MULTIBULK: usize = 10;
const UNAUTH_MAX_BULK: usize = 16 * 1024;
/// Longest `*N` / `$N` header line accepted while looking for its CRLF.
const MAX_HEADER: usize = 64 * 1024;
/// Never preallocate more argument slots than this, whatever `*N` claims.
const PREALLOC_ARGS: usize = 1024;
/// Never reserve more than this ahead of the bytes received for a bulk string, whatever `$N`
/// claims: the buffer then grows with what arrives (doubling, so a large value is still copied
/// only a few times).
const PREALLOC_BULK: usize = 1024 * 1024;

/// A resumable parser; one per connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still expected in the current multibulk request (0 = between requests).
    remaining: usize,
    /// Arguments of the current multibulk request parsed so far.
    args: Vec<Bytes>,
    /// Bytes held by `args`, counted against the query buffer limit.
    held: usize,
}

impl RequestParser {
    /// A parser between requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next complete request from `buf`, consuming its bytes.
    ///
    /// `Ok(None)` means more input is needed. An empty request (blank inline line, `*0`) yields
    /// `Some(vec![])`, which the caller skips, as Redis does.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &ParseLimits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return parse_inline(buf, limits);
            }
            let Some(n) = header(buf, 1)? else {
                return self.check_limit(buf, limits);
            };
            let count = match n.value {
                Some(c) if c <= limits.max_multibulk_len as i64 => c,
                _ => return Err(ProtocolError::MultibulkLength),
            };
            if !authenticated && count > UNAUTH_MAX_MULTIBULK as i64 {
                return Err(ProtocolError::UnauthMultibulk);
            }
            buf.advance(n.consumed);
            if count <= 0 {
                return Ok(Some(Vec::new()));
            }
            self.remaining = count as usize;
            self.args = Vec::with_capacity(self.remaining.min(PREALLOC_ARGS));
            self.held = 0;
        }
        while self.remaining > 0 {
            if buf.is_empty() {
                return self.check_limit(buf, limits);
            }
            if buf[0] != b'$' {
                return Err(ProtocolError::ExpectedDollar(buf[0] as char));
            }
            let Some(h) = header(buf, 1)? else {
                return self.check_limit(buf, limits);
            };
            let len = match h.value {
                Some(l) if l >= 0 && l <= limits.max_bulk_len as i64 => l as usize,
                _ => return Err(ProtocolError::BulkLength),
            };
            if !authenticated && len > UNAUTH_MAX_BULK {
                return Err(ProtocolError::UnauthBulk);
            }
            // No overflow: `len` is at most `max_bulk_len`, checked above, and `consumed` at most
            // `MAX_HEADER`; saturating all the same, as the limit comes from the caller.
            let need = h.consumed.saturating_add(len).saturating_add(2);
            if buf.len() < need {
                // Room for the rest of the bulk, so a large value is not copied on every read;
                // capped, as the length is only what the sender claims.
                buf.reserve((need - buf.len()).min(PREALLOC_BULK));
                return self.check_limit(buf, limits);
            }
            buf.advance(h.consumed);
            let arg = buf.split_to(len).freeze();
            if &buf[..2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            buf.advance(2);
            self.held += arg.len();
            self.args.push(arg);
            self.remaining -= 1;
        }
        self.held = 0;
        Ok(Some(std::mem::take(&mut self.args)))
    }

    fn check_limit(
        &self,
        buf: &BytesMut,
        limits: &ParseLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if buf.len().saturating_add(self.held) > limits.max_query_buffer {
            return Err(ProtocolError::QueryBufferLimit);
        }
        Ok(None)
    }
}

struct Header {
    value: Option<i64>,
    consumed: usize,
}

/// Reads `<tag><integer>\r\n` at the start of `buf`; `value` is `None` if not a valid integer.
fn header(buf: &BytesMut, skip: usize) -> Result<Option<Header>, ProtocolError> {
    let Some(cr) = memchr(b'\r', &buf[skip..]) else {
        if buf.len() > MAX_HEADER {
            return Err(ProtocolError::HeaderTooBig);
        }
        return Ok(None);
    };
    let end = skip + cr;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    let value = parse_i64(&buf[skip..end]);
    Ok(Some(Header {
        value,
        consumed: end + 2,
    }))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Strict integer parsing as Redis' `string2ll`: optional `-`, digits, no leading zeros or `+`.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

fn parse_inline(
    buf: &mut BytesMut,
    limits: &ParseLimits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > limits.max_inline_len {
            return Err(ProtocolError::InlineTooBig);
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line).map(Some)
}

/// Splits an inline request like Redis' `sdssplitargs`: spaces separate, `"..."` with escapes
/// (`\n`, `\xHH`, ...) and `'...'` quote.
pub fn split_args(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        // A NUL ends the line, as it ends the C string in Redis' parser.
        if i >= n || line[i] == 0 {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(Bytes::from(cur));
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], auth: bool) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = p.parse(&mut buf, &ParseLimits::default(), auth)? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let r = parse_all(
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\r\n",
            true,
        )
        .unwrap();
        assert_eq!(r[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(r[1], vec![Bytes::from("PING")]);
        assert_eq!(
            r[2],
            vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]
        );
    }

    #[test]
    fn resumes_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for (i, b) in input.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            if let Some(r) = p.parse(&mut buf, &ParseLimits::default(), true).unwrap() {
                assert_eq!(i, input.len() - 1, "completed early");
                got = Some(r);
            }
        }
        assert_eq!(got.unwrap().len(), 3);
    }

    #[test]
    fn bounds_are_enforced() {
        let cases: [(&[u8], ProtocolError); 6] = [
            (b"*abc\r\n", ProtocolError::MultibulkLength),
            (b"*1\r\n$-5\r\n", ProtocolError::BulkLength),
            (b"*1\r\n$999999999999\r\n", ProtocolError::BulkLength),
            (b"*1\r\nxyz\r\n", ProtocolError::ExpectedDollar('x')),
            (b"*100\r\n", ProtocolError::UnauthMultibulk),
            (b"*1\r\n$20000\r\n", ProtocolError::UnauthBulk),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            let auth = i < 4;
            assert_eq!(parse_all(input, auth).unwrap_err(), *want, "#{i}");
        }
        let long = vec![b'a'; 70 * 1024];
        assert_eq!(
            parse_all(&long, true).unwrap_err(),
            ProtocolError::InlineTooBig
        );
    }

    /// A peer's stream or a damaged log announcing an absurd size: refused beyond the limit,
    /// and below it nothing is reserved for bytes that have not arrived.
    #[test]
    fn announced_sizes_allocate_nothing() {
        let limits = ParseLimits::peer(1 << 20, 1000);
        for (i, (input, want)) in [
            (&b"*1\r\n$99999999999\r\n"[..], ProtocolError::BulkLength),
            (&b"*1\r\n$1048577\r\n"[..], ProtocolError::BulkLength),
            (&b"*99999999999\r\n"[..], ProtocolError::MultibulkLength),
            (&b"*1001\r\n"[..], ProtocolError::MultibulkLength),
        ]
        .iter()
        .enumerate()
        {
            let mut buf = BytesMut::from(*input);
            let got = RequestParser::new().parse(&mut buf, &limits, true);
            assert_eq!(got.unwrap_err(), *want, "#{i}");
        }
        let limits = ParseLimits::peer(usize::MAX / 4, usize::MAX / 4);
        let mut buf = BytesMut::from(&b"*1\r\n$99999999999\r\nabc"[..]);
        let mut p = RequestParser::new();
        assert_eq!(p.parse(&mut buf, &limits, true).unwrap(), None);
        assert!(
            buf.capacity() <= 2 * PREALLOC_BULK,
            "reserved {} bytes for a claimed size",
            buf.capacity()
        );
    }

    #[test]
    fn strict_integers() {
        for (i, (s, want)) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("007", None),
            ("+1", None),
            ("-0", None),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
            ("", None),
            ("1a", None),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(parse_i64(s.as_bytes()), *want, "#{i} {s}");
        }
    }

    /// Random request streams: whatever redis-protocol (an independent decoder) reads as a
    /// multibulk of bulk strings, this parser must read identically; garbage must never panic.
    #[test]
    fn agrees_with_redis_protocol_and_survives_garbage() {
        use rand::RngExt;
        let mut rng = rand::rng();
        for round in 0..2000 {
            let nargs = rng.random_range(1..6);
            let mut input = format!("*{nargs}\r\n").into_bytes();
            let mut want = Vec::new();
            for _ in 0..nargs {
                let len = rng.random_range(0..40);
                let arg: Vec<u8> = (0..len).map(|_| rng.random::<u8>()).collect();
                input.extend_from_slice(format!("${len}\r\n").as_bytes());
                input.extend_from_slice(&arg);
                input.extend_from_slice(b"\r\n");
                want.push(Bytes::from(arg));
            }
            let reference =
                redis_protocol::resp2::decode::decode_bytes_mut(&mut BytesMut::from(&input[..]))
                    .unwrap()
                    .unwrap()
                    .0;
            let redis_protocol::resp2::types::BytesFrame::Array(items) = reference else {
                panic!("#{round}: reference did not decode an array");
            };
            assert_eq!(items.len(), want.len(), "#{round}");
            assert_eq!(parse_all(&input, true).unwrap(), vec![want], "#{round}");
            // Corrupt one byte: the parser may error or wait, never panic.
            let pos = rng.random_range(0..input.len());
            input[pos] = rng.random();
            let _ = parse_all(&input, rng.random());
        }
    }
}
