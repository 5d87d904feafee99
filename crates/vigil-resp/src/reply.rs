//! Typed replies, encoded per connection as RESP2 or RESP3.
//!
//! Commands build a [`Reply`]; only the connection turns it into bytes, so the same command code
//! serves both protocols. The encoding follows redis-server byte for byte: RESP2 has distinct
//! null bulk (`$-1`) and null array (`*-1`), maps flatten to arrays, doubles become bulk strings
//! formatted like C's `%.17g`.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CmdError;

/// The protocol spoken on a connection, chosen by `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, the default.
    Resp2,
    /// RESP3 after `HELLO 3`.
    Resp3,
}

/// A reply to one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+<text>`.
    Simple(Cow<'static, str>),
    /// `-<text>`; the text carries its own prefix (`ERR`, `WRONGTYPE`, ...).
    Error(Cow<'static, str>),
    /// `:<n>`.
    Int(i64),
    /// `$<len>` + payload.
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing aggregate: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    /// `*<n>`.
    Array(Vec<Reply>),
    /// `%<n>` in RESP3, a flat key/value array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// `~<n>` in RESP3, an array in RESP2.
    Set(Vec<Reply>),
    /// `,<d>` in RESP3, a bulk string in RESP2.
    Double(f64),
    /// `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    Bool(bool),
    /// `=<len>` + `txt:` payload in RESP3, a bulk string in RESP2.
    Verbatim(Bytes),
    /// `(<digits>` in RESP3, a bulk string in RESP2 (scripts' `{big_number = "..."}`).
    BigNumber(Bytes),
    /// `><n>` in RESP3 (out-of-band pub/sub data), an array in RESP2.
    Push(Vec<Reply>),
    /// Bytes already encoded, identical in RESP2 and RESP3 (e.g. an array of bulk strings),
    /// for replies a server caches.
    Encoded(Bytes),
}

impl Reply {
    /// `+OK`.
    pub const fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// A simple string from a static text.
    pub const fn simple(s: &'static str) -> Reply {
        Reply::Simple(Cow::Borrowed(s))
    }

    /// An error reply from a full error line.
    pub fn error(s: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(s.into())
    }

    /// A bulk string copied from a slice.
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    /// A bulk string from a static text.
    pub fn bulk_static(s: &'static str) -> Reply {
        Reply::Bulk(Bytes::from_static(s.as_bytes()))
    }

    /// A bulk string from an owned string.
    pub fn bulk_string(s: String) -> Reply {
        Reply::Bulk(Bytes::from(s))
    }

    /// An array of bulk strings.
    pub fn bulks<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::bulk(b.as_ref())).collect())
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Encodes the reply for `proto` at the end of `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        let resp3 = proto == Protocol::Resp3;
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => int_line(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => aggregate(out, b'*', items, proto),
            Reply::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Reply::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Reply::Map(pairs) => {
                if resp3 {
                    int_line(out, b'%', pairs.len() as i64);
                } else {
                    int_line(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) if resp3 => line(out, b',', format_double(*d).as_bytes()),
            Reply::Double(d) => bulk(out, format_double(*d).as_bytes()),
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(b) if resp3 => {
                int_line(out, b'=', b.len() as i64 + 4);
                out.put_slice(b"txt:");
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(b) => bulk(out, b),
            Reply::BigNumber(b) if resp3 => line(out, b'(', b),
            Reply::BigNumber(b) => bulk(out, b),
            Reply::Encoded(b) => out.put_slice(b),
        }
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Self {
        Reply::Error(Cow::Owned(e.to_string()))
    }
}

impl From<Result<Reply, CmdError>> for Reply {
    fn from(r: Result<Reply, CmdError>) -> Self {
        r.unwrap_or_else(Reply::from)
    }
}

fn line(out: &mut BytesMut, tag: u8, s: &[u8]) {
    out.reserve(s.len() + 3);
    out.put_u8(tag);
    // A reply line must not contain CR or LF; Redis replaces them with spaces.
    if s.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            s.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(s);
    }
    out.put_slice(b"\r\n");
}

fn int_line(out: &mut BytesMut, tag: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_u8(tag);
    out.put_slice(buf.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    int_line(out, b'$', b.len() as i64);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, tag: u8, items: &[Reply], proto: Protocol) {
    int_line(out, tag, items.len() as i64);
    for item in items {
        item.encode(proto, out);
    }
}

/// Formats a double as redis-server 7.0 replies with it (C's `%.17g`; `inf`, `-inf`, `nan`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..P).contains(&exp) {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, d);
        trim_fraction(&fixed).to_string()
    } else {
        let m = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

/// Formats a double the way INCRBYFLOAT stores it: plain decimal, no exponent, shortest form.
pub fn format_float_value(d: f64) -> String {
    let s = format!("{d}");
    if s == "-0" { "0".into() } else { s }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> String {
        let mut b = BytesMut::new();
        r.encode(p, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn doubles_match_printf_g17() {
        let cases = [
            (0.1, "0.10000000000000001"),
            (1e30, "1e+30"),
            (3.0, "3"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (i, (d, want)) in cases.iter().enumerate() {
            assert_eq!(format_double(*d), *want, "#{i}");
        }
    }

    #[test]
    fn nulls_differ_in_resp2_and_collapse_in_resp3() {
        assert_eq!(enc(&Reply::Nil, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp3), "_\r\n");
    }

    #[test]
    fn maps_flatten_in_resp2() {
        let m = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        assert_eq!(enc(&m, Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn error_lines_never_carry_newlines() {
        let e = Reply::error("ERR bad\r\nthing");
        assert_eq!(enc(&e, Protocol::Resp2), "-ERR bad  thing\r\n");
    }
}
