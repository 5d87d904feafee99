//! The Redis-side view of the node's configuration: a parameter's value wherever it lives
//! (its own TOML key, or the `[redis]` table), storing a checked value, and the encoding
//! thresholds the store reads.

use super::NodeConfig;
use super::params::{self, Param};

/// The encoding thresholds, for the store (which decides how values are laid out by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: i64,
    /// `hash-max-listpack-value`.
    pub hash_max_listpack_value: i64,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: i64,
    /// `zset-max-listpack-value`.
    pub zset_max_listpack_value: i64,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: i64,
    /// `list-max-listpack-size`.
    pub list_max_listpack_size: i64,
    /// `stream-node-max-bytes`.
    pub stream_node_max_bytes: i64,
    /// `stream-node-max-entries`.
    pub stream_node_max_entries: i64,
    /// `hll-sparse-max-bytes`.
    pub hll_sparse_max_bytes: i64,
}

impl Default for Encoding {
    fn default() -> Self {
        NodeConfig::default().encoding()
    }
}

impl NodeConfig {
    /// A parameter's value as `CONFIG GET` shows it.
    pub fn param(&self, p: &Param) -> String {
        match p.bound {
            Some(b) => (b.get)(self),
            None => self
                .redis
                .get(p.name)
                .cloned()
                .unwrap_or_else(|| p.default.to_string()),
        }
    }

    /// A numeric parameter of the `[redis]` table (its default if unset or not a number).
    pub fn redis_int(&self, name: &str) -> i64 {
        let p = params::lookup(name);
        let v = self
            .redis
            .get(name)
            .map(String::as_str)
            .or(p.map(|p| p.default));
        v.and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Stores a checked value: into its key, or the `[redis]` table.
    pub fn set_param(&mut self, p: &Param, value: String) -> Result<(), String> {
        match p.bound {
            Some(b) => match b.set {
                Some(set) => set(self, &value),
                None => Err("can't set immutable config".into()),
            },
            None => {
                if value == p.default {
                    self.redis.remove(p.name);
                } else {
                    self.redis.insert(p.name.to_string(), value);
                }
                Ok(())
            }
        }
    }

    /// The encoding thresholds now configured.
    pub fn encoding(&self) -> Encoding {
        Encoding {
            hash_max_listpack_entries: self.redis_int("hash-max-listpack-entries"),
            hash_max_listpack_value: self.redis_int("hash-max-listpack-value"),
            zset_max_listpack_entries: self.redis_int("zset-max-listpack-entries"),
            zset_max_listpack_value: self.redis_int("zset-max-listpack-value"),
            set_max_intset_entries: self.redis_int("set-max-intset-entries"),
            list_max_listpack_size: self.redis_int("list-max-listpack-size"),
            stream_node_max_bytes: self.redis_int("stream-node-max-bytes"),
            stream_node_max_entries: self.redis_int("stream-node-max-entries"),
            hll_sparse_max_bytes: self.redis_int("hll-sparse-max-bytes"),
        }
    }
}
