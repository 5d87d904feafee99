//! Where the parameters that mean something in Vigil live in its TOML config: how `CONFIG GET`
//! reads them, how `CONFIG SET` writes them (the value already checked by its
//! [`super::params::Kind`]) and what `CONFIG REWRITE` writes back.

use std::time::Duration;

use toml_edit::Value;

use super::{AppendFsync, NodeConfig};

/// Reads a parameter from the config.
pub type Get = fn(&NodeConfig) -> String;
/// Writes a checked value into the config.
pub type Set = fn(&mut NodeConfig, &str) -> Result<(), String>;

/// A parameter's place in the TOML config.
#[derive(Debug)]
pub struct Binding {
    /// Its key: `table.key` or a top-level `key`.
    pub toml: &'static str,
    /// Its value as `CONFIG GET` shows it.
    pub get: Get,
    /// `None`: fixed while the node runs.
    pub set: Option<Set>,
    /// Its value as the config file spells it.
    pub value: fn(&NodeConfig) -> Value,
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::from(n.try_into().unwrap_or(i64::MAX))
}

fn secs(d: Duration) -> Value {
    Value::from(humantime::format_duration(d).to_string())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// `bind`.
pub const BIND: Binding = Binding {
    toml: "bind",
    get: |c| c.bind.clone(),
    set: None,
    value: |c| Value::from(c.bind.as_str()),
};
/// `port`.
pub const PORT: Binding = Binding {
    toml: "port",
    get: |c| c.port.to_string(),
    set: None,
    value: |c| int(c.port),
};
/// `dir`: absolute, as Redis shows its working directory.
pub const DIR: Binding = Binding {
    toml: "dir",
    get: |c| {
        std::fs::canonicalize(&c.dir)
            .unwrap_or(c.dir.clone())
            .display()
            .to_string()
    },
    set: None,
    value: |c| Value::from(c.dir.display().to_string()),
};
/// `databases`.
pub const DATABASES: Binding = Binding {
    toml: "databases",
    get: |c| c.databases.to_string(),
    set: None,
    value: |c| int(c.databases),
};
/// `requirepass`.
pub const REQUIREPASS: Binding = Binding {
    toml: "requirepass",
    get: |c| c.requirepass.clone(),
    set: Some(|c, v| {
        c.requirepass = v.into();
        Ok(())
    }),
    value: |c| Value::from(c.requirepass.as_str()),
};
/// `maxclients`.
pub const MAXCLIENTS: Binding = Binding {
    toml: "maxclients",
    get: |c| c.maxclients.to_string(),
    set: Some(|c, v| {
        c.maxclients = num(v)?;
        Ok(())
    }),
    value: |c| int(c.maxclients),
};
/// `timeout` (seconds).
pub const TIMEOUT: Binding = Binding {
    toml: "timeout",
    get: |c| c.timeout.as_secs().to_string(),
    set: Some(|c, v| {
        c.timeout = Duration::from_secs(num(v)?);
        Ok(())
    }),
    value: |c| secs(c.timeout),
};
/// `busy-reply-threshold` (milliseconds).
pub const BUSY: Binding = Binding {
    toml: "busy_reply_threshold",
    get: |c| c.busy_reply_threshold.as_millis().to_string(),
    set: Some(|c, v| {
        c.busy_reply_threshold = Duration::from_millis(num(v)?);
        Ok(())
    }),
    value: |c| secs(c.busy_reply_threshold),
};
/// `appendonly`: the log is opened at start-up.
pub const APPENDONLY: Binding = Binding {
    toml: "persistence.appendonly",
    get: |c| yes_no(c.persistence.appendonly),
    set: None,
    value: |c| Value::from(c.persistence.appendonly),
};
/// `appendfsync`.
pub const APPENDFSYNC: Binding = Binding {
    toml: "persistence.appendfsync",
    get: |c| c.persistence.appendfsync.as_str().into(),
    set: Some(|c, v| {
        c.persistence.appendfsync = AppendFsync::parse(v).ok_or("bad appendfsync")?;
        Ok(())
    }),
    value: |c| Value::from(c.persistence.appendfsync.as_str()),
};
/// `auto-aof-rewrite-min-size`: when the log is compacted.
pub const COMPACT_MIN: Binding = Binding {
    toml: "persistence.auto_compact_min_size",
    get: |c| c.persistence.auto_compact_min_size.to_string(),
    set: Some(|c, v| {
        c.persistence.auto_compact_min_size = num(v)?;
        Ok(())
    }),
    value: |c| int(c.persistence.auto_compact_min_size),
};
/// `auto-aof-rewrite-percentage`.
pub const COMPACT_PCT: Binding = Binding {
    toml: "persistence.auto_compact_percentage",
    get: |c| c.persistence.auto_compact_percentage.to_string(),
    set: Some(|c, v| {
        c.persistence.auto_compact_percentage = num(v)?;
        Ok(())
    }),
    value: |c| int(c.persistence.auto_compact_percentage),
};
/// `proto-max-bulk-len`.
pub const BULK: Binding = Binding {
    toml: "limits.proto_max_bulk_len",
    get: |c| c.limits.proto_max_bulk_len.to_string(),
    set: Some(|c, v| {
        c.limits.proto_max_bulk_len = num(v)?;
        Ok(())
    }),
    value: |c| int(c.limits.proto_max_bulk_len),
};
/// `client-query-buffer-limit`.
pub const QUERYBUF: Binding = Binding {
    toml: "limits.client_query_buffer_limit",
    get: |c| c.limits.client_query_buffer_limit.to_string(),
    set: Some(|c, v| {
        c.limits.client_query_buffer_limit = num(v)?;
        Ok(())
    }),
    value: |c| int(c.limits.client_query_buffer_limit),
};
/// `replica-priority`.
pub const PRIORITY: Binding = Binding {
    toml: "replication.priority",
    get: |c| c.replication.priority.to_string(),
    set: Some(|c, v| {
        c.replication.priority = num(v)?;
        Ok(())
    }),
    value: |c| int(c.replication.priority),
};
/// `replica-announce-ip`.
pub const ANNOUNCE_IP: Binding = Binding {
    toml: "announce_ip",
    get: |c| c.announce_ip.clone(),
    set: Some(|c, v| {
        if !v.is_empty() && vigil_base::HostPort::new(v, 0).is_err() {
            return Err("not a hostname or an IP address".into());
        }
        c.announce_ip = v.into();
        Ok(())
    }),
    value: |c| Value::from(c.announce_ip.as_str()),
};
/// `replica-announce-port`.
pub const ANNOUNCE_PORT: Binding = Binding {
    toml: "announce_port",
    get: |c| c.announce_port.to_string(),
    set: Some(|c, v| {
        c.announce_port = num(v)?;
        Ok(())
    }),
    value: |c| int(c.announce_port),
};
/// `replica-serve-stale-data`.
pub const STALE: Binding = Binding {
    toml: "replication.serve_stale_data",
    get: |c| yes_no(c.replication.serve_stale_data),
    set: Some(|c, v| {
        c.replication.serve_stale_data = v == "yes";
        Ok(())
    }),
    value: |c| Value::from(c.replication.serve_stale_data),
};
/// `repl-backlog-size`: the backlog is sized at start-up.
pub const BACKLOG: Binding = Binding {
    toml: "replication.backlog_size",
    get: |c| c.replication.backlog_size.to_string(),
    set: None,
    value: |c| int(c.replication.backlog_size),
};
/// `min-replicas-to-write`.
pub const MIN_REPLICAS: Binding = Binding {
    toml: "replication.min_replicas_to_write",
    get: |c| c.replication.min_replicas_to_write.to_string(),
    set: Some(|c, v| {
        c.replication.min_replicas_to_write = num(v)?;
        Ok(())
    }),
    value: |c| int(c.replication.min_replicas_to_write),
};
/// `min-replicas-max-lag` (seconds).
pub const MIN_LAG: Binding = Binding {
    toml: "replication.min_replicas_max_lag",
    get: |c| c.replication.min_replicas_max_lag.as_secs().to_string(),
    set: Some(|c, v| {
        c.replication.min_replicas_max_lag = Duration::from_secs(num(v)?);
        Ok(())
    }),
    value: |c| secs(c.replication.min_replicas_max_lag),
};
/// `repl-timeout` (seconds).
pub const REPL_TIMEOUT: Binding = Binding {
    toml: "replication.timeout",
    get: |c| c.replication.timeout.as_secs().to_string(),
    // Read when a replica (re)connects.
    set: Some(|c, v| {
        c.replication.timeout = Duration::from_secs(num(v)?);
        Ok(())
    }),
    value: |c| secs(c.replication.timeout),
};
/// `repl-ping-replica-period` (seconds).
pub const PING_PERIOD: Binding = Binding {
    toml: "replication.ping_period",
    get: |c| c.replication.ping_period.as_secs().to_string(),
    // Read by the ping task at every tick.
    set: Some(|c, v| {
        c.replication.ping_period = Duration::from_secs(num(v)?);
        Ok(())
    }),
    value: |c| secs(c.replication.ping_period),
};
/// `masterauth`.
pub const MASTERAUTH: Binding = Binding {
    toml: "replication.masterauth",
    get: |c| c.replication.masterauth.clone(),
    set: Some(|c, v| {
        c.replication.masterauth = v.into();
        Ok(())
    }),
    value: |c| Value::from(c.replication.masterauth.as_str()),
};
/// `masteruser`.
pub const MASTERUSER: Binding = Binding {
    toml: "replication.masteruser",
    get: |c| c.replication.masteruser.clone(),
    set: Some(|c, v| {
        c.replication.masteruser = v.into();
        Ok(())
    }),
    value: |c| Value::from(c.replication.masteruser.as_str()),
};
/// `aclfile` (fixed at start).
pub const ACLFILE: Binding = Binding {
    toml: "aclfile",
    get: |c| c.aclfile.clone(),
    set: None,
    value: |c| Value::from(c.aclfile.as_str()),
};
/// `replicaof`: `host port`, as Redis shows it.
pub const REPLICAOF: Binding = Binding {
    toml: "replication.replicaof",
    get: |c| match super::parse_host_port(&c.replication.replicaof) {
        Some(h) => format!("{} {}", h.host(), h.port()),
        None => String::new(),
    },
    set: None,
    value: |c| Value::from(c.replication.replicaof.as_str()),
};
