//! The container commands' subcommands, by Redis' names (`config|get`).

/// The subcommands of each container command, as Redis names them (`config|get`): listed by
/// COMMAND LIST and counted apart in the per-command statistics.
pub const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "acl",
        &[
            "cat", "deluser", "dryrun", "genpass", "getuser", "help", "list", "load", "log",
            "save", "setuser", "users", "whoami",
        ],
    ),
    (
        "client",
        &[
            "caching",
            "getname",
            "getredir",
            "help",
            "id",
            "info",
            "kill",
            "list",
            "no-evict",
            "no-touch",
            "pause",
            "reply",
            "setinfo",
            "setname",
            "tracking",
            "trackinginfo",
            "unblock",
            "unpause",
        ],
    ),
    (
        "command",
        &[
            "count",
            "docs",
            "getkeys",
            "getkeysandflags",
            "help",
            "info",
            "list",
        ],
    ),
    ("config", &["get", "help", "resetstat", "rewrite", "set"]),
    (
        "function",
        &[
            "delete", "dump", "flush", "help", "kill", "list", "load", "restore", "stats",
        ],
    ),
    (
        "latency",
        &[
            "doctor",
            "graph",
            "help",
            "histogram",
            "history",
            "latest",
            "reset",
        ],
    ),
    (
        "memory",
        &["doctor", "help", "malloc-stats", "purge", "stats", "usage"],
    ),
    (
        "object",
        &["encoding", "freq", "help", "idletime", "refcount"],
    ),
    (
        "pubsub",
        &[
            "channels",
            "help",
            "numpat",
            "numsub",
            "shardchannels",
            "shardnumsub",
        ],
    ),
    (
        "script",
        &["debug", "exists", "flush", "help", "kill", "load"],
    ),
    ("slowlog", &["get", "help", "len", "reset"]),
    (
        "xgroup",
        &[
            "create",
            "createconsumer",
            "delconsumer",
            "destroy",
            "help",
            "setid",
        ],
    ),
    ("xinfo", &["consumers", "groups", "help", "stream"]),
];
