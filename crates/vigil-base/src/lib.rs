//! Small pieces every Vigil crate shares, each defined once: `host:port` addresses
//! ([`HostPort`]), crash-safe file replacement ([`fs`]), the persisted failover epoch
//! ([`epoch`]), the wall clock for display
//! ([`clock`]), a constant-time secret comparison, and the Redis version Vigil speaks.
//!
//! Nothing here does IO beyond the file system and nothing depends on a runtime, so every
//! crate (node, sentinel, agent, the binary, tests) can use it.
#![deny(missing_docs)]

pub mod addr;
pub mod clock;
pub mod epoch;
pub mod fs;

pub use addr::{AddrError, HostPort};

/// The Redis version Vigil's servers report (`INFO`, `HELLO`): the 7.0 behaviour they follow.
pub const REDIS_VERSION: &str = "7.0.15";

/// Compares two secrets in time that depends only on their lengths, so a token or password
/// cannot be guessed byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        for (i, (a, b, eq)) in [
            (&b"token"[..], &b"token"[..], true),
            (b"token", b"tokeN", false),
            (b"token", b"token2", false),
            (b"", b"", true),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(constant_time_eq(a, b), eq, "#{i}");
        }
    }
}
