//! Redis Cluster's key → hash slot function: CRC16/XMODEM of the key (or of its hash tag),
//! modulo 16384. Clients compute the same to pick the node a key lives on, so it must match
//! Redis bit for bit (`keyHashSlot` in Redis' cluster.c).

/// The number of hash slots.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`: CRC16/XMODEM `& 0x3FFF` of the whole key, or only of its hash tag
/// when it has one — the bytes between the first `{` and the first `}` after it, if there is at
/// least one byte between them (so `{user1}.a` and `{user1}.b` share a slot).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) & (SLOTS - 1)
}

/// The part of `key` that is hashed.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of Redis' cluster specification and the hash-tag edge cases it defines.
    #[test]
    fn slots_match_redis() {
        let cases: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"hello", 866),
            (b"user1000", 3443),
            (b"{user1000}.x", 3443),
            (b"{user1000}.following", 3443),
            (b"", 0),
            // `{}`: nothing between the braces, the whole key is hashed.
            (b"{}", 15257),
            (b"foo{}{bar}", 8363),
            // The tag is `{bar`: from the first `{` to the first `}` after it.
            (b"foo{{bar}}zap", 4015),
            (b"{bar", 4015),
            // Only the first tag counts.
            (b"{a}{b}", 15495),
            (b"a", 15495),
            (b"{bar}", 5061),
        ];
        for (i, (key, want)) in cases.iter().enumerate() {
            assert_eq!(
                key_slot(key),
                *want,
                "#{i} {:?}",
                String::from_utf8_lossy(key)
            );
        }
        // The CRC16/XMODEM check value.
        assert_eq!(
            crc16::State::<crc16::XMODEM>::calculate(b"123456789"),
            0x31C3
        );
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 0x3FFF);
    }
}
