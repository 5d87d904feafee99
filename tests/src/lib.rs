//! Helpers for the end-to-end suites, by concept:
//!
//! - [`procs`]: real `vigil node` / `vigil sentinel` / `redis-server` processes on free
//!   ports, killed on drop (even when a test fails).
//! - [`raw`]: a raw RESP connection that returns each reply's exact bytes.
//! - [`diff`]: the differential comparison with redis-server and its script grammar.
//! - [`seeded`]: the seeded random generator of the random differential sequences.
//! - [`sessions`]: the differential comparison over several connections and pushed messages.
//! - [`certs`]: test certificates (a CA, server, client, expired and foreign ones).
//! - [`client_script`]: a Python or Node client program driven by a test.
//! - [`grpc`]: clients of the sentinels' gRPC API and sentinel configs.
//! - [`agents`]: `vigil agent` processes owning real `redis-server`s, and a group of them.
//! - [`agentless`]: stock `redis-server`s under sentinels with a `driver = "resp"` group.
//! - [`backends`]: one group under the sentinels, of `vigil node`s or of agents.
//! - [`managed`]: a managed cluster (three nodes, three sentinels) and its workloads.
//! - [`netns`]: network namespaces for partition tests.
//! - [`reference`]: Redis Sentinel deployed as its users run it, for the benchmarks.
//!
//! [`heavy_turn`] makes the tests that keep both cores busy take turns.
//!
//! Everything a suite uses is re-exported here, so `vigil_tests::NodeProc` and the like keep
//! their short paths. This file holds the small helpers that fit no process or protocol.

use std::path::{Path, PathBuf};

pub mod agentless;
pub mod agents;
pub mod backends;
pub mod certs;
pub mod client_script;
pub mod content;
pub mod diff;
pub mod grpc;
pub mod hosts;
pub mod managed;
pub mod netns;
pub mod ops_http;
pub mod procs;
pub mod raw;
pub mod reference;
pub mod seeded;
pub mod sessions;
pub mod sharded;

pub use grpc::{
    AdminClient, SentinelClient, admin_client, agreed_leader, monitor_request, sentinel_client,
    sentinel_client_at, sentinel_config,
};
pub use procs::{
    KillOnDrop, NodeProc, RedisProc, RedisSentinelProc, SentinelProc, free_port, free_port_block,
    vigil_bin,
};
pub use raw::RawConn;

/// The port of a `host:port` address (as the sentinels report masters).
pub fn port_of(address: &str) -> u16 {
    address
        .parse::<vigil_base::HostPort>()
        .unwrap_or_else(|e| panic!("{e}"))
        .port()
}

/// A field of the `INFO` of the server on `port` (no password), if it answers.
pub fn info_field(port: u16, field: &str) -> Option<String> {
    let mut c = RawConn::connect(port).ok()?;
    c.send_raw(&RawConn::encode(&["INFO", "everything"])).ok()?;
    let info = String::from_utf8_lossy(&c.read_reply()?).into_owned();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// Wall-clock milliseconds (to line a test's moments up with events' `at_ms`).
pub fn wall_ms() -> u64 {
    u64::try_from(vigil_base::clock::unix_ms()).unwrap_or(0)
}

/// Writes a config file into `dir` and returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("config dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

/// Every key of every database with its type, value and absolute expiry, read through RESP:
/// two nodes with equal dumps hold the same data.
pub fn dump_dataset(c: &mut redis::Connection, databases: usize) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..databases {
        let _: () = redis::cmd("SELECT").arg(db).query(c).expect("select");
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).expect("keys");
        keys.sort();
        for k in keys {
            let kind: String = redis::cmd("TYPE").arg(&k).query(c).expect("type");
            let value: redis::Value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&k).query(c),
                "list" => redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(c),
                "hash" => redis::cmd("HGETALL").arg(&k).query(c),
                "set" => redis::cmd("SMEMBERS").arg(&k).query(c),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(c),
                _ => Ok(redis::Value::Nil),
            }
            .expect("value");
            let value = match (kind.as_str(), value) {
                // Set and hash order is the node's own business.
                ("set" | "hash", redis::Value::Array(items)) => {
                    let mut v: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
                    if kind == "hash" {
                        let mut pairs: Vec<String> = v.chunks(2).map(|p| p.join("=")).collect();
                        pairs.sort();
                        v = pairs;
                    } else {
                        v.sort();
                    }
                    v.join(",")
                }
                (_, v) => format!("{v:?}"),
            };
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&k)
                .query(c)
                .expect("pexpiretime");
            out.push(format!(
                "db{db} {} {kind} {value} expires={at}",
                String::from_utf8_lossy(&k)
            ));
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query(c).expect("select");
    out
}

/// A test's turn at the machine, for the tests that keep both cores busy on their own (the
/// BullMQ runs): side by side, 10,000 jobs starve the other's cluster (down_after 500 ms),
/// whose extra failovers make BullMQ give up on stalled jobs. Held until dropped.
pub struct HeavyTurn(());

static HEAVY_BUSY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
static HEAVY_FREED: std::sync::Condvar = std::sync::Condvar::new();

/// Waits for the [`HeavyTurn`].
pub fn heavy_turn() -> HeavyTurn {
    let mut busy = HEAVY_BUSY.lock().unwrap_or_else(|e| e.into_inner());
    while *busy {
        busy = HEAVY_FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
    }
    *busy = true;
    HeavyTurn(())
}

impl Drop for HeavyTurn {
    fn drop(&mut self) {
        *HEAVY_BUSY.lock().unwrap_or_else(|e| e.into_inner()) = false;
        HEAVY_FREED.notify_one();
    }
}
