//! Every parameter `CONFIG GET *` lists on redis-server 7.0.15, one row each: its name, alias,
//! flags, type (which decides how a value is checked and shown, with Redis' error wording) and
//! default. Parameters with meaning in Vigil carry a [`Binding`] to their key in the TOML
//! config; the rest are stored as text in the `[redis]` table ([`super::NodeConfig::redis`]),
//! so `CONFIG SET` accepts what Redis accepts and a restart keeps it.

use super::bindings::{self as b, Binding};

/// Changeable at run time (Redis' `MODIFIABLE_CONFIG`).
pub const M: u8 = 0;
/// Fixed at start-up.
pub const I: u8 = 1;
/// Refused by `CONFIG SET` unless protected configs are enabled (they never are here).
pub const P: u8 = 2;
/// Listed only when asked for by exact name.
pub const H: u8 = 4;
/// Holds a secret.
pub const S: u8 = 8;
/// The value is several space-separated arguments.
pub const MULTI: u8 = 16;

const I32: i128 = i32::MAX as i128;
const U32: i128 = u32::MAX as i128;
const I64: i128 = i64::MAX as i128;
const U64: i128 = u64::MAX as i128;

const SUPERVISED: &[&str] = &["upstart", "systemd", "auto", "no"];
const SYSLOG: &[&str] = &[
    "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
const DISKLESS_LOAD: &[&str] = &["disabled", "on-empty-db", "swapdb"];
const LOGLEVEL: &[&str] = &["debug", "verbose", "notice", "warning"];
const MAXMEMORY_POLICY: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const APPENDFSYNC: &[&str] = &["everysec", "always", "no"];
/// `relative` is a synonym of `yes`, which is what Redis shows for it.
pub(super) const OOM_ADJ: &[&str] = &["no", "yes", "relative", "absolute"];
const ACL_PUBSUB: &[&str] = &["allchannels", "resetchannels"];
const SANITIZE: &[&str] = &["no", "yes", "clients"];
const PROTECTED: &[&str] = &["no", "yes", "local"];
const ENDPOINT: &[&str] = &["ip", "hostname", "unknown-endpoint"];
const PROPAGATION_ERR: &[&str] = &["ignore", "panic", "panic-on-replicas"];
const SHUTDOWN_SIG: &[&str] = &["default", "save", "nosave", "now", "force"];
const TLS_AUTH: &[&str] = &["no", "yes", "optional"];

/// How a value is checked and shown.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `yes` or `no`.
    Bool,
    /// An integer within bounds; `mem`: memory units (`1kb`...) accepted; `pct`: `N%` too;
    /// `octal`: written in base 8.
    Num {
        /// Lowest value.
        min: i128,
        /// Highest value.
        max: i128,
        /// Memory units.
        mem: bool,
        /// Percentages.
        pct: bool,
        /// Base 8.
        octal: bool,
    },
    /// One of the names.
    Enum(&'static [&'static str]),
    /// Any combination of the names (space-separated).
    Flags(&'static [&'static str]),
    /// Free text.
    Str,
    /// `dir`.
    Dir,
    /// `save`: pairs of seconds and changes.
    Save,
    /// `client-output-buffer-limit`: class, hard, soft, seconds (repeated).
    ObufLimits,
    /// `oom-score-adj-values`: three integers.
    OomValues,
    /// `notify-keyspace-events`: event class letters.
    Notify,
    /// `latency-tracking-info-percentiles`: numbers from 0 to 100.
    Percentiles,
}

impl Kind {
    const fn int(min: i128, max: i128) -> Kind {
        Kind::Num {
            min,
            max,
            mem: false,
            pct: false,
            octal: false,
        }
    }
    const fn mem(min: i128, max: i128) -> Kind {
        Kind::Num {
            min,
            max,
            mem: true,
            pct: false,
            octal: false,
        }
    }
    const fn mem_pct(min: i128, max: i128) -> Kind {
        Kind::Num {
            min,
            max,
            mem: true,
            pct: true,
            octal: false,
        }
    }
    const fn octal(min: i128, max: i128) -> Kind {
        Kind::Num {
            min,
            max,
            mem: false,
            pct: false,
            octal: true,
        }
    }
}

/// One configuration parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// The older name Redis still answers to (and lists).
    pub alias: Option<&'static str>,
    /// [`I`], [`P`], [`H`], [`S`], [`MULTI`].
    pub flags: u8,
    /// How values are checked and shown.
    pub kind: Kind,
    /// redis-server's default, as `CONFIG GET` shows it.
    pub default: &'static str,
    /// Where Vigil keeps it, if it means something here.
    pub bound: Option<&'static Binding>,
}

impl Param {
    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    const fn to(self, b: &'static Binding) -> Param {
        Param {
            bound: Some(b),
            ..self
        }
    }
}

const fn p(
    name: &'static str,
    alias: Option<&'static str>,
    flags: u8,
    kind: Kind,
    default: &'static str,
) -> Param {
    Param {
        name,
        alias,
        flags,
        kind,
        default,
        bound: None,
    }
}

/// The table.
#[rustfmt::skip]
pub const PARAMS: &[Param] = &[
    p("rdbchecksum", None, I, Kind::Bool, "yes"),
    p("daemonize", None, I, Kind::Bool, "no"),
    p("io-threads-do-reads", None, I, Kind::Bool, "no"),
    p("always-show-logo", None, I, Kind::Bool, "no"),
    p("protected-mode", None, M, Kind::Bool, "yes"),
    p("rdbcompression", None, M, Kind::Bool, "yes"),
    p("rdb-del-sync-files", None, M, Kind::Bool, "no"),
    p("activerehashing", None, M, Kind::Bool, "yes"),
    p("stop-writes-on-bgsave-error", None, M, Kind::Bool, "yes"),
    p("set-proc-title", None, I, Kind::Bool, "yes"),
    p("dynamic-hz", None, M, Kind::Bool, "yes"),
    p("lazyfree-lazy-eviction", None, M, Kind::Bool, "no"),
    p("lazyfree-lazy-expire", None, M, Kind::Bool, "no"),
    p("lazyfree-lazy-server-del", None, M, Kind::Bool, "no"),
    p("lazyfree-lazy-user-del", None, M, Kind::Bool, "no"),
    p("lazyfree-lazy-user-flush", None, M, Kind::Bool, "no"),
    p("repl-disable-tcp-nodelay", None, M, Kind::Bool, "no"),
    p("repl-diskless-sync", None, M, Kind::Bool, "yes"),
    p("aof-rewrite-incremental-fsync", None, M, Kind::Bool, "yes"),
    p("no-appendfsync-on-rewrite", None, M, Kind::Bool, "no"),
    p("cluster-require-full-coverage", None, M, Kind::Bool, "yes"),
    p("rdb-save-incremental-fsync", None, M, Kind::Bool, "yes"),
    p("aof-load-truncated", None, M, Kind::Bool, "yes"),
    p("aof-use-rdb-preamble", None, M, Kind::Bool, "yes"),
    p("aof-timestamp-enabled", None, M, Kind::Bool, "no"),
    p("cluster-replica-no-failover", Some("cluster-slave-no-failover"), M, Kind::Bool, "no"),
    p("replica-lazy-flush", Some("slave-lazy-flush"), M, Kind::Bool, "no"),
    p("replica-serve-stale-data", Some("slave-serve-stale-data"), M, Kind::Bool, "yes").to(&b::STALE),
    p("replica-read-only", Some("slave-read-only"), M, Kind::Bool, "yes"),
    p("replica-ignore-maxmemory", Some("slave-ignore-maxmemory"), M, Kind::Bool, "yes"),
    p("jemalloc-bg-thread", None, M, Kind::Bool, "yes"),
    p("activedefrag", None, M, Kind::Bool, "no"),
    p("syslog-enabled", None, I, Kind::Bool, "no"),
    p("cluster-enabled", None, I, Kind::Bool, "no"),
    p("appendonly", None, M, Kind::Bool, "no").to(&b::APPENDONLY),
    p("cluster-allow-reads-when-down", None, M, Kind::Bool, "no"),
    p("cluster-allow-pubsubshard-when-down", None, M, Kind::Bool, "yes"),
    p("crash-log-enabled", None, M, Kind::Bool, "yes"),
    p("crash-memcheck-enabled", None, M, Kind::Bool, "yes"),
    p("use-exit-on-panic", None, H, Kind::Bool, "no"),
    p("disable-thp", None, I, Kind::Bool, "yes"),
    p("cluster-allow-replica-migration", None, M, Kind::Bool, "yes"),
    p("replica-announced", None, M, Kind::Bool, "yes"),
    p("latency-tracking", None, M, Kind::Bool, "yes"),
    p("aof-disable-auto-gc", None, M, Kind::Bool, "no"),
    p("replica-ignore-disk-write-errors", None, M, Kind::Bool, "no"),
    p("aclfile", None, I, Kind::Str, "").to(&b::ACLFILE),
    p("unixsocket", None, I, Kind::Str, ""),
    p("pidfile", None, I, Kind::Str, ""),
    p("replica-announce-ip", Some("slave-announce-ip"), M, Kind::Str, "").to(&b::ANNOUNCE_IP),
    p("masteruser", None, S, Kind::Str, "").to(&b::MASTERUSER),
    p("cluster-announce-ip", None, M, Kind::Str, ""),
    p("cluster-config-file", None, I, Kind::Str, "nodes.conf"),
    p("cluster-announce-hostname", None, M, Kind::Str, ""),
    p("syslog-ident", None, I, Kind::Str, "redis"),
    p("dbfilename", None, P, Kind::Str, "dump.rdb"),
    p("appendfilename", None, I, Kind::Str, "appendonly.aof"),
    p("appenddirname", None, I, Kind::Str, "appendonlydir"),
    p("server_cpulist", None, I, Kind::Str, ""),
    p("bio_cpulist", None, I, Kind::Str, ""),
    p("aof_rewrite_cpulist", None, I, Kind::Str, ""),
    p("bgsave_cpulist", None, I, Kind::Str, ""),
    p("ignore-warnings", None, M, Kind::Str, ""),
    p("proc-title-template", None, M, Kind::Str, "{title} {listen-addr} {server-mode}"),
    p("bind-source-addr", None, M, Kind::Str, ""),
    p("logfile", None, I, Kind::Str, ""),
    p("masterauth", None, S, Kind::Str, "").to(&b::MASTERAUTH),
    p("requirepass", None, S, Kind::Str, "").to(&b::REQUIREPASS),
    p("supervised", None, I, Kind::Enum(SUPERVISED), "no"),
    p("syslog-facility", None, I, Kind::Enum(SYSLOG), "local0"),
    p("repl-diskless-load", None, M, Kind::Enum(DISKLESS_LOAD), "disabled"),
    p("loglevel", None, M, Kind::Enum(LOGLEVEL), "notice"),
    p("maxmemory-policy", None, M, Kind::Enum(MAXMEMORY_POLICY), "noeviction"),
    p("appendfsync", None, M, Kind::Enum(APPENDFSYNC), "everysec").to(&b::APPENDFSYNC),
    p("oom-score-adj", None, M, Kind::Enum(OOM_ADJ), "no"),
    p("acl-pubsub-default", None, M, Kind::Enum(ACL_PUBSUB), "resetchannels"),
    p("sanitize-dump-payload", None, M, Kind::Enum(SANITIZE), "no"),
    p("enable-protected-configs", None, I, Kind::Enum(PROTECTED), "no"),
    p("enable-debug-command", None, I, Kind::Enum(PROTECTED), "no"),
    p("enable-module-command", None, I, Kind::Enum(PROTECTED), "no"),
    p("cluster-preferred-endpoint-type", None, M, Kind::Enum(ENDPOINT), "ip"),
    p("propagation-error-behavior", None, M, Kind::Enum(PROPAGATION_ERR), "ignore"),
    p("shutdown-on-sigint", None, MULTI, Kind::Flags(SHUTDOWN_SIG), "default"),
    p("shutdown-on-sigterm", None, MULTI, Kind::Flags(SHUTDOWN_SIG), "default"),
    p("databases", None, I, Kind::int(1, I32), "16").to(&b::DATABASES),
    p("port", None, M, Kind::int(0, 65535), "6379").to(&b::PORT),
    p("io-threads", None, I, Kind::int(1, 128), "1"),
    p("auto-aof-rewrite-percentage", None, M, Kind::int(0, I32), "100").to(&b::COMPACT_PCT),
    p("cluster-replica-validity-factor", Some("cluster-slave-validity-factor"), M, Kind::int(0, I32), "10"),
    p("list-max-listpack-size", Some("list-max-ziplist-size"), M, Kind::int(-I32-1, I32), "-2"),
    p("tcp-keepalive", None, M, Kind::int(0, I32), "300"),
    p("cluster-migration-barrier", None, M, Kind::int(0, I32), "1"),
    p("active-defrag-cycle-min", None, M, Kind::int(1, 99), "1"),
    p("active-defrag-cycle-max", None, M, Kind::int(1, 99), "25"),
    p("active-defrag-threshold-lower", None, M, Kind::int(0, 1000), "10"),
    p("active-defrag-threshold-upper", None, M, Kind::int(0, 1000), "100"),
    p("lfu-log-factor", None, M, Kind::int(0, I32), "10"),
    p("lfu-decay-time", None, M, Kind::int(0, I32), "1"),
    p("replica-priority", Some("slave-priority"), M, Kind::int(0, I32), "100").to(&b::PRIORITY),
    p("repl-diskless-sync-delay", None, M, Kind::int(0, I32), "5"),
    p("maxmemory-samples", None, M, Kind::int(1, I32), "5"),
    p("maxmemory-eviction-tenacity", None, M, Kind::int(0, 100), "10"),
    p("timeout", None, M, Kind::int(0, I32), "0").to(&b::TIMEOUT),
    p("replica-announce-port", Some("slave-announce-port"), M, Kind::int(0, 65535), "0")
        .to(&b::ANNOUNCE_PORT),
    p("tcp-backlog", None, I, Kind::int(0, I32), "511"),
    p("cluster-port", None, I, Kind::int(0, 65535), "0"),
    p("cluster-announce-bus-port", None, M, Kind::int(0, 65535), "0"),
    p("cluster-announce-port", None, M, Kind::int(0, 65535), "0"),
    p("cluster-announce-tls-port", None, M, Kind::int(0, 65535), "0"),
    p("repl-timeout", None, M, Kind::int(1, I32), "60").to(&b::REPL_TIMEOUT),
    p("repl-ping-replica-period", Some("repl-ping-slave-period"), M, Kind::int(1, I32), "10").to(&b::PING_PERIOD),
    p("list-compress-depth", None, M, Kind::int(0, I32), "0"),
    p("rdb-key-save-delay", None, H, Kind::int(-I32 - 1, I32), "0"),
    p("key-load-delay", None, H, Kind::int(-I32 - 1, I32), "0"),
    p("active-expire-effort", None, M, Kind::int(1, 10), "1"),
    p("hz", None, M, Kind::int(0, I32), "10"),
    p("min-replicas-to-write", Some("min-slaves-to-write"), M, Kind::int(0, I32), "0").to(&b::MIN_REPLICAS),
    p("min-replicas-max-lag", Some("min-slaves-max-lag"), M, Kind::int(0, I32), "10").to(&b::MIN_LAG),
    p("watchdog-period", None, H, Kind::int(0, I32), "0"),
    p("shutdown-timeout", None, M, Kind::int(0, I32), "10"),
    p("repl-diskless-sync-max-replicas", None, M, Kind::int(0, I32), "0"),
    p("maxclients", None, M, Kind::int(1, U32), "10000").to(&b::MAXCLIENTS),
    p("unixsocketperm", None, I, Kind::octal(0, 0o777), "0"),
    p("socket-mark-id", None, I, Kind::int(0, U32), "0"),
    p("active-defrag-max-scan-fields", None, M, Kind::int(1, I64), "1000"),
    p("slowlog-max-len", None, M, Kind::int(0, I64), "128"),
    p("acllog-max-len", None, M, Kind::int(0, I64), "128"),
    p("busy-reply-threshold", Some("lua-time-limit"), M, Kind::int(0, I64), "5000").to(&b::BUSY),
    p("cluster-node-timeout", None, M, Kind::int(0, I64), "15000"),
    p("slowlog-log-slower-than", None, M, Kind::int(-1, I64), "10000"),
    p("latency-monitor-threshold", None, M, Kind::int(0, I64), "0"),
    p("proto-max-bulk-len", None, M, Kind::mem(1024*1024, I64), "536870912").to(&b::BULK),
    p("stream-node-max-entries", None, M, Kind::int(0, I64), "100"),
    p("repl-backlog-size", None, M, Kind::mem(1, I64), "1048576").to(&b::BACKLOG),
    p("maxmemory", None, M, Kind::mem(0, U64), "0"),
    p("cluster-link-sendbuf-limit", None, M, Kind::mem(0, U64), "0"),
    p("hash-max-listpack-entries", Some("hash-max-ziplist-entries"), M, Kind::int(0, I64), "512"),
    p("set-max-intset-entries", None, M, Kind::int(0, I64), "512"),
    p("zset-max-listpack-entries", Some("zset-max-ziplist-entries"), M, Kind::int(0, I64), "128"),
    p("active-defrag-ignore-bytes", None, M, Kind::mem(1, I64), "104857600"),
    p("hash-max-listpack-value", Some("hash-max-ziplist-value"), M, Kind::mem(0, I64), "64"),
    p("stream-node-max-bytes", None, M, Kind::mem(0, I64), "4096"),
    p("zset-max-listpack-value", Some("zset-max-ziplist-value"), M, Kind::mem(0, I64), "64"),
    p("hll-sparse-max-bytes", None, M, Kind::mem(0, I64), "3000"),
    p("tracking-table-max-keys", None, M, Kind::int(0, I64), "1000000"),
    p("client-query-buffer-limit", None, M, Kind::mem(1024*1024, I64), "1073741824").to(&b::QUERYBUF),
    p("maxmemory-clients", None, M, Kind::mem_pct(-100, I64), "0"),
    p("repl-backlog-ttl", None, M, Kind::int(0, I64), "3600"),
    p("auto-aof-rewrite-min-size", None, M, Kind::mem(0, I64), "67108864").to(&b::COMPACT_MIN),
    p("loading-process-events-interval-bytes", None, H, Kind::int(1024, I32), "2097152"),
    p("tls-port", None, M, Kind::int(0, 65535), "0"),
    p("tls-session-cache-size", None, M, Kind::int(0, I32), "20480"),
    p("tls-session-cache-timeout", None, M, Kind::int(0, I32), "300"),
    p("tls-cluster", None, M, Kind::Bool, "no"),
    p("tls-replication", None, M, Kind::Bool, "no"),
    p("tls-auth-clients", None, M, Kind::Enum(TLS_AUTH), "yes"),
    p("tls-prefer-server-ciphers", None, M, Kind::Bool, "no"),
    p("tls-session-caching", None, M, Kind::Bool, "yes"),
    p("tls-cert-file", None, M, Kind::Str, ""),
    p("tls-key-file", None, M, Kind::Str, ""),
    p("tls-key-file-pass", None, M, Kind::Str, ""),
    p("tls-client-cert-file", None, M, Kind::Str, ""),
    p("tls-client-key-file", None, M, Kind::Str, ""),
    p("tls-client-key-file-pass", None, M, Kind::Str, ""),
    p("tls-dh-params-file", None, M, Kind::Str, ""),
    p("tls-ca-cert-file", None, M, Kind::Str, ""),
    p("tls-ca-cert-dir", None, M, Kind::Str, ""),
    p("tls-protocols", None, M, Kind::Str, ""),
    p("tls-ciphers", None, M, Kind::Str, ""),
    p("tls-ciphersuites", None, M, Kind::Str, ""),
    p("dir", None, P, Kind::Dir, "").to(&b::DIR),
    p("save", None, MULTI, Kind::Save, ""),
    p("client-output-buffer-limit", None, MULTI, Kind::ObufLimits, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
    p("oom-score-adj-values", None, MULTI, Kind::OomValues, "0 200 800"),
    p("notify-keyspace-events", None, M, Kind::Notify, ""),
    p("bind", None, MULTI, Kind::Str, "* -::*").to(&b::BIND),
    p("replicaof", Some("slaveof"), I | MULTI, Kind::Str, "").to(&b::REPLICAOF),
    p("latency-tracking-info-percentiles", None, MULTI, Kind::Percentiles, "50 99 99.9"),
];

/// The parameter called `name` (or aliased so), case-insensitively.
pub fn lookup(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.alias.is_some_and(|a| a.eq_ignore_ascii_case(name))
    })
}
