//! Redis' internal encodings: the one place that decides, from a value's size and the
//! [`Thresholds`], which encoding redis-server 7.0 would hold it in. `OBJECT ENCODING` answers
//! with it and the RDB writer picks the matching serialization.
//!
//! Redis converts a small encoding to the big one when a write crosses a threshold and never
//! back. Hashes, sets and sorted sets hold their form themselves ([`hash::Hash::is_packed`],
//! [`super::Set::is_intset`], [`zset::ZSet::is_packed`]), so theirs is exact. Strings edited in
//! place are remembered per database (`Db::edited`), as Redis keeps those `raw`.

use super::{Value, hash, zset};

/// The size thresholds between encodings, with Redis' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_max_listpack_value: usize,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_max_listpack_value: usize,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: usize,
    /// `list-max-listpack-size` (negative: a byte limit of 4 KB << (-n - 1)).
    pub list_max_listpack_size: i64,
    /// `stream-node-max-bytes`.
    pub stream_node_max_bytes: u64,
    /// `stream-node-max-entries`.
    pub stream_node_max_entries: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            list_max_listpack_size: -2,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

impl Thresholds {
    /// When a stream's node is full.
    pub fn stream_nodes(&self) -> super::stream::NodeLimits {
        super::stream::NodeLimits {
            bytes: self.stream_node_max_bytes,
            entries: self.stream_node_max_entries,
        }
    }
}

/// Strings up to this length are `embstr` (one allocation with the object header).
pub const EMBSTR_MAX: usize = 44;

/// The integer a string holds, if Redis would store it as one (`string2l`: canonical decimal,
/// at most 20 bytes).
pub fn string_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(v).as_bytes() == s).then_some(v)
}

impl Thresholds {
    /// The limits of a hash's compact form.
    pub fn hash(&self) -> hash::Limits {
        hash::Limits {
            entries: self.hash_max_listpack_entries,
            value: self.hash_max_listpack_value,
        }
    }

    /// The limits of a sorted set's compact form.
    pub fn zset(&self) -> zset::Limits {
        zset::Limits {
            entries: self.zset_max_listpack_entries,
            value: self.zset_max_listpack_value,
        }
    }

    /// Most members of an intset (`set-max-intset-entries`, capped as Redis caps it).
    pub fn set_max(&self) -> usize {
        self.set_max_intset_entries.min(1 << 30)
    }

    /// The byte limit of one list node (`list-max-listpack-size` negative), or `None` when the
    /// limit is a count.
    pub fn list_node_bytes(&self) -> Option<usize> {
        match self.list_max_listpack_size {
            n @ -5..=-1 => Some(4096 << (-n - 1)),
            n if n < -5 => Some(4096),
            _ => None,
        }
    }

    /// The encoding name `OBJECT ENCODING` gives (strings: see [`string_encoding`]).
    pub fn encoding(&self, v: &Value) -> &'static str {
        match v {
            Value::Str(s) => string_encoding(s, false),
            Value::List(_) => "quicklist",
            Value::Hash(h) if h.is_packed() => "listpack",
            Value::Hash(_) => "hashtable",
            Value::Set(s) if s.is_intset() => "intset",
            Value::Set(_) => "hashtable",
            Value::ZSet(z) if z.is_packed() => "listpack",
            Value::ZSet(_) => "skiplist",
            Value::Stream(_) => "stream",
        }
    }
}

/// A string's encoding: `int` for integers, `embstr` up to 44 bytes, else `raw`; `raw` always
/// for a string last written in place (APPEND, SETRANGE), as Redis unshares it to edit it.
pub fn string_encoding(s: &[u8], edited: bool) -> &'static str {
    if edited {
        "raw"
    } else if string_int(s).is_some() {
        "int"
    } else if s.len() <= EMBSTR_MAX {
        "embstr"
    } else {
        "raw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Hash, Set};

    #[test]
    fn thresholds_decide_encodings() {
        let t = Thresholds::default();
        let cases: [(&[u8], &str); 6] = [
            (b"12", "int"),
            (b"-9223372036854775808", "int"),
            (b"012", "embstr"),
            (b"9223372036854775808", "embstr"),
            (&[b'a'; 44], "embstr"),
            (&[b'a'; 45], "raw"),
        ];
        for (i, (s, e)) in cases.iter().enumerate() {
            assert_eq!(string_encoding(s, false), *e, "#{i}");
        }
        let mut h = Hash::default();
        h.insert(b"f", &[b'v'; 64], t.hash());
        assert_eq!(t.encoding(&Value::Hash(h.clone())), "listpack");
        h.insert(b"g", &[b'v'; 65], t.hash());
        assert_eq!(t.encoding(&Value::Hash(h)), "hashtable");
        let mut s = Set::default();
        s.insert(b"1", t.set_max());
        assert_eq!(t.encoding(&Value::Set(s.clone())), "intset");
        s.insert(b"x", t.set_max());
        assert_eq!(t.encoding(&Value::Set(s)), "hashtable");
        assert_eq!(t.list_node_bytes(), Some(8192));
    }
}
