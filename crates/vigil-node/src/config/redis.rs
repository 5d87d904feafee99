//! The Redis-side view of the node's configuration: a parameter's value wherever it lives
//! (its own TOML key, or the `[redis]` table), storing a checked value, and the encoding
//! thresholds the store reads ([`crate::db::encoding::Thresholds`]).

use super::NodeConfig;
use super::params::{self, Param};

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

    /// The `notify-keyspace-events` classes (empty: notifications off).
    pub fn notify_classes(&self) -> &str {
        self.redis
            .get("notify-keyspace-events")
            .map_or("", String::as_str)
    }

    /// How the store records key access: an LFU counter under the `*-lfu` maxmemory
    /// policies, an LRU clock otherwise.
    pub fn access_policy(&self) -> crate::db::AccessPolicy {
        let policy = self
            .redis
            .get("maxmemory-policy")
            .map_or("noeviction", String::as_str);
        crate::db::AccessPolicy {
            lfu: policy.to_ascii_lowercase().ends_with("-lfu"),
            log_factor: self.redis_int("lfu-log-factor").clamp(0, u32::MAX.into()) as u32,
            decay_minutes: self.redis_int("lfu-decay-time").clamp(0, u32::MAX.into()) as u32,
        }
    }

    /// The encoding thresholds now configured, for the store.
    pub fn thresholds(&self) -> crate::db::encoding::Thresholds {
        let n = |name: &str| self.redis_int(name).max(0) as usize;
        crate::db::encoding::Thresholds {
            hash_max_listpack_entries: n("hash-max-listpack-entries"),
            hash_max_listpack_value: n("hash-max-listpack-value"),
            zset_max_listpack_entries: n("zset-max-listpack-entries"),
            zset_max_listpack_value: n("zset-max-listpack-value"),
            set_max_intset_entries: n("set-max-intset-entries"),
            list_max_listpack_size: self.redis_int("list-max-listpack-size"),
            stream_node_max_bytes: n("stream-node-max-bytes") as u64,
            stream_node_max_entries: n("stream-node-max-entries") as u64,
        }
    }
}
