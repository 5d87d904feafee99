//! A cursor over a request's arguments with the conversions commands need.

use bytes::Bytes;

use crate::error::CmdError;
use crate::request::parse_i64;

/// The arguments after the command name.
#[derive(Debug, Clone)]
pub struct Args {
    items: Vec<Bytes>,
    pos: usize,
}

impl Args {
    /// Wraps a request; `items[0]` is the command name, which [`Args::next`] skips.
    pub fn new(items: Vec<Bytes>) -> Self {
        Args { items, pos: 1 }
    }

    /// The command name as sent.
    pub fn name(&self) -> &[u8] {
        self.items.first().map(|b| &b[..]).unwrap_or(b"")
    }

    /// All items, the command name included.
    pub fn all(&self) -> &[Bytes] {
        &self.items
    }

    /// Consumes the cursor, returning all items.
    pub fn into_vec(self) -> Vec<Bytes> {
        self.items
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.items.len().saturating_sub(self.pos)
    }

    /// Whether no argument is left.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next argument, if any.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Bytes> {
        let b = self.items.get(self.pos).cloned();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    /// The next argument without consuming it.
    pub fn peek(&self) -> Option<&Bytes> {
        self.items.get(self.pos)
    }

    /// The remaining arguments, consumed.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let r = self.items[self.pos.min(self.items.len())..].to_vec();
        self.pos = self.items.len();
        r
    }

    /// The next argument, or a syntax error.
    pub fn bytes(&mut self) -> Result<Bytes, CmdError> {
        self.next().ok_or(CmdError::Syntax)
    }

    /// The next argument, borrowed (no reference count taken: for an argument only read, such
    /// as a key looked up), or a syntax error.
    pub fn slice(&mut self) -> Result<&[u8], CmdError> {
        let b = self.items.get(self.pos).ok_or(CmdError::Syntax)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next argument as an integer.
    pub fn i64(&mut self) -> Result<i64, CmdError> {
        parse_int(self.slice()?)
    }

    /// The next argument as a float.
    pub fn f64(&mut self) -> Result<f64, CmdError> {
        parse_float(self.slice()?).ok_or(CmdError::NotFloat)
    }

    /// Consumes the next argument if it equals `word`, ignoring case.
    pub fn eat(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(b) if b.eq_ignore_ascii_case(word.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CmdError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// Parses an integer argument as Redis does.
pub fn parse_int(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).ok_or(CmdError::NotInteger)
}

/// Parses a float argument as Redis' `strtold`-based parsing: decimal or exponent notation,
/// `inf`/`-inf`/`+inf`; no spaces, no NaN.
pub fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ if lower.contains("inf") || lower.contains("nan") => return None,
        _ => s.parse::<f64>().ok()?,
    };
    if v.is_nan() { None } else { Some(v) }
}

/// Lower-cases a command or option name into a `String` for messages.
pub fn lossy_lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_lowercase()
}
