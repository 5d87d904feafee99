//! The commands ACL rules speak about: every command of the server's table and the
//! subcommands of its containers, each with a stable id for the selectors' bitmaps.

use std::collections::HashMap;

use crate::command::CommandMeta;
use crate::subcommands::SUBCOMMANDS;

/// Redis' ACL categories, in Redis' order (`ACL CAT`, and the order rules are described in).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Subcommands of `@admin` containers that are neither `@admin` nor `@dangerous` in Redis.
const HARMLESS_SUBS: &[&str] = &[
    "acl|cat",
    "acl|genpass",
    "acl|help",
    "acl|whoami",
    "client|caching",
    "client|getname",
    "client|getredir",
    "client|help",
    "client|id",
    "client|info",
    "client|reply",
    "client|setname",
    "client|tracking",
    "client|trackinginfo",
    "config|help",
];

/// Where Redis' per-command category lists differ from what the table's flags and groups
/// imply: (commands, category, member).
const OVERRIDES: &[(&[&str], &str, bool)] = &[
    (
        &[
            "failover",
            "flushall",
            "flushdb",
            "info",
            "keys",
            "lastsave",
            "migrate",
            "restore",
            "restore-asking",
            "role",
            "sort",
            "sort_ro",
            "swapdb",
        ],
        "dangerous",
        true,
    ),
    (&["failover", "lastsave", "role"], "admin", true),
    (
        &["dbsize", "flushall", "flushdb", "swapdb"],
        "keyspace",
        true,
    ),
    (&["sort", "sort_ro", "wait"], "keyspace", false),
    (&["sort", "sort_ro"], "set", true),
    (&["sort", "sort_ro"], "sortedset", true),
    (&["sort", "sort_ro"], "list", true),
    (&["spublish", "ssubscribe", "sunsubscribe"], "pubsub", true),
    (
        &["asking", "command", "readonly", "readwrite", "wait"],
        "connection",
        true,
    ),
    (&["asking", "lolwut", "spublish"], "fast", true),
    (&["asking", "lolwut", "spublish"], "slow", false),
    (
        &["failover", "ssubscribe", "sunsubscribe", "restore-asking"],
        "slow",
        true,
    ),
    (&["lolwut"], "read", true),
    (&["restore-asking"], "write", true),
];

/// One command or subcommand.
#[derive(Debug, Clone)]
pub struct Cmd {
    /// `get`, or `config|get` for a subcommand.
    pub name: String,
    /// The table entry (a subcommand's is its container's).
    pub meta: CommandMeta,
    /// Ids of the subcommands (a container's).
    pub subs: Vec<usize>,
    /// Whether this is a subcommand.
    pub is_sub: bool,
}

/// All commands, containers followed by their subcommands.
#[derive(Debug, Clone, Default)]
pub struct Universe {
    /// By id.
    pub cmds: Vec<Cmd>,
    by_name: HashMap<String, usize>,
}

impl Universe {
    /// The universe of a command table.
    pub fn new<'a>(metas: impl Iterator<Item = &'a CommandMeta>) -> Self {
        Self::with_subcommands(metas, &[])
    }

    /// The universe of a command table whose server has more containers than the shared
    /// [`SUBCOMMANDS`] (the sentinel's `SENTINEL …`).
    pub fn with_subcommands<'a>(
        metas: impl Iterator<Item = &'a CommandMeta>,
        extra: &[(&str, Vec<&str>)],
    ) -> Self {
        let mut u = Universe::default();
        for m in metas {
            let id = u.push(m.name.to_string(), *m, false);
            let subs: Vec<&str> = SUBCOMMANDS
                .iter()
                .find(|(c, _)| *c == m.name)
                .map(|(_, s)| s.to_vec())
                .or_else(|| {
                    extra
                        .iter()
                        .find(|(c, _)| *c == m.name)
                        .map(|(_, s)| s.clone())
                })
                .unwrap_or_default();
            for s in subs {
                let sid = u.push(format!("{}|{s}", m.name), *m, true);
                u.cmds[id].subs.push(sid);
            }
        }
        u
    }

    fn push(&mut self, name: String, meta: CommandMeta, is_sub: bool) -> usize {
        let id = self.cmds.len();
        self.by_name.insert(name.clone(), id);
        self.cmds.push(Cmd {
            name,
            meta,
            subs: Vec::new(),
            is_sub,
        });
        id
    }

    /// The id of `get` or `config|get` (case-insensitive).
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The id a request runs as: its subcommand's when it names a known one.
    pub fn of_request(&self, meta: &CommandMeta, args: &[bytes::Bytes]) -> Option<usize> {
        let id = self.by_name.get(meta.name).copied()?;
        if !self.cmds[id].subs.is_empty()
            && let Some(sub) = args.get(1)
        {
            let full = format!("{}|{}", meta.name, crate::args::lossy_lower(sub));
            if let Some(&sid) = self.by_name.get(&full) {
                return Some(sid);
            }
        }
        Some(id)
    }

    /// Whether a request names a command that exists: not a container's unknown subcommand
    /// (Redis' `lookupCommand`, as `redis.acl_check_cmd` asks it).
    pub fn knows(&self, meta: &CommandMeta, args: &[bytes::Bytes]) -> bool {
        let Some(id) = self.by_name.get(meta.name).copied() else {
            return false;
        };
        self.cmds[id].subs.is_empty() || args.len() < 2 || self.of_request(meta, args) != Some(id)
    }

    /// Whether a command is in a category.
    pub fn in_category(&self, id: usize, cat: &str) -> bool {
        let c = &self.cmds[id];
        if cat == "all" {
            return true;
        }
        // Subcommands of administrative containers that Redis does not count as such.
        if matches!(cat, "admin" | "dangerous")
            && c.is_sub
            && HARMLESS_SUBS.contains(&c.name.as_str())
        {
            return false;
        }
        // A container is only `@slow` itself, as in Redis; its subcommands carry the rest.
        if !c.is_sub && !c.subs.is_empty() {
            return cat == "slow";
        }
        if let Some((_, _, v)) = OVERRIDES
            .iter()
            .find(|(n, k, _)| *k == cat && n.contains(&c.name.as_str()))
        {
            return *v;
        }
        c.meta.in_category(cat)
    }
}

/// Whether a category name is known (`all` included).
pub fn is_category(name: &str) -> bool {
    name == "all" || CATEGORIES.contains(&name)
}
