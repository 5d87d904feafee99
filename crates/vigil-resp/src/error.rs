//! Error types: command errors (sent to the client, connection kept) and protocol errors (sent,
//! then the connection is closed).

use thiserror::Error;

/// A command failed; its `Display` is the exact Redis error line (without `-` and CRLF).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CmdError {
    /// Malformed options.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be an integer is not one, or overflows.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument that must be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// Wrong argument count for the named command.
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    /// The key does not exist (RENAME, LSET).
    #[error("ERR no such key")]
    NoSuchKey,
    /// Index out of range (LSET).
    #[error("ERR index out of range")]
    IndexOutOfRange,
    /// INCR family overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// Authentication required.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// Wrong password.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// Any other error, already worded as Redis words it (including its prefix).
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    /// An error with a fully formatted message, e.g. `ERR invalid expire time in 'set' command`.
    pub fn msg(s: impl Into<String>) -> Self {
        CmdError::Other(s.into())
    }
}

/// The request stream is malformed; the connection gets this error and is then closed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProtocolError {
    /// `*<n>` with a bad or too large count.
    #[error("ERR Protocol error: invalid multibulk length")]
    MultibulkLength,
    /// `$<n>` with a bad or too large length.
    #[error("ERR Protocol error: invalid bulk length")]
    BulkLength,
    /// An unauthenticated client sent a large multibulk count.
    #[error("ERR Protocol error: unauthenticated multibulk length")]
    UnauthMultibulk,
    /// An unauthenticated client sent a large bulk.
    #[error("ERR Protocol error: unauthenticated bulk length")]
    UnauthBulk,
    /// Something other than `$` where a bulk string header was expected.
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    /// An inline request longer than the inline limit.
    #[error("ERR Protocol error: too big inline request")]
    InlineTooBig,
    /// A multibulk or bulk header longer than any valid header.
    #[error("ERR Protocol error: too big mbulk count string")]
    HeaderTooBig,
    /// Unbalanced quotes in an inline request.
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// The bulk payload was not followed by CRLF.
    #[error("ERR Protocol error: bulk string not terminated by CRLF")]
    MissingCrlf,
    /// The client's unparsed input exceeded the query buffer limit.
    #[error("ERR Protocol error: query buffer limit exceeded")]
    QueryBufferLimit,
}
