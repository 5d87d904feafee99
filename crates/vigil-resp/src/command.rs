//! Command metadata shared by every command table: name, arity, flags and key positions.
//!
//! One table per server drives dispatch, the arity error and the `COMMAND` reply, so a command
//! is named in exactly one place.

use std::collections::HashMap;

use bytes::Bytes;

use crate::args::lossy_lower;
use crate::keys::{KeyFinder, KeyRef, KeysError, fixed_flags};
use crate::reply::Reply;

/// Command flags, a bit set with Redis' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

impl Flags {
    /// Modifies the dataset.
    pub const WRITE: Flags = Flags(1);
    /// Only reads the dataset.
    pub const READONLY: Flags = Flags(1 << 1);
    /// May grow memory.
    pub const DENYOOM: Flags = Flags(1 << 2);
    /// Administrative.
    pub const ADMIN: Flags = Flags(1 << 3);
    /// Pub/sub related.
    pub const PUBSUB: Flags = Flags(1 << 4);
    /// Allowed before authentication.
    pub const NO_AUTH: Flags = Flags(1 << 5);
    /// O(1) or O(log N).
    pub const FAST: Flags = Flags(1 << 6);
    /// May block the client.
    pub const BLOCKING: Flags = Flags(1 << 7);
    /// Allowed in RESP2 subscribed mode.
    pub const SUBSCRIBED: Flags = Flags(1 << 8);
    /// Refused inside MULTI (`-ERR Command not allowed inside a transaction`, and the EXEC
    /// aborts), as Redis' `no-multi`: SAVE, SHUTDOWN, PSYNC, SYNC.
    pub const NO_MULTI: Flags = Flags(1 << 9);
    /// Allowed while loading and on stale replicas.
    pub const STALE: Flags = Flags(1 << 10);
    /// Runs at once inside MULTI instead of being queued: the commands that drive the
    /// transaction or end the connection (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET). Not a
    /// Redis flag (Redis names these commands in `processCommand`), so `COMMAND` never shows it.
    pub const UNQUEUED: Flags = Flags(1 << 12);
    /// Refused from scripts (`-ERR This Redis command is not allowed from script`), as Redis'
    /// `noscript`: the blocking pops among data commands.
    pub const NOSCRIPT: Flags = Flags(1 << 13);
    /// Key positions depend on the arguments (the row has a key finder), as Redis'
    /// `movablekeys`.
    pub const MOVABLEKEYS: Flags = Flags(1 << 14);

    const NAMES: [(Flags, &'static str); 12] = [
        (Flags::WRITE, "write"),
        (Flags::READONLY, "readonly"),
        (Flags::DENYOOM, "denyoom"),
        (Flags::ADMIN, "admin"),
        (Flags::PUBSUB, "pubsub"),
        (Flags::NOSCRIPT, "noscript"),
        (Flags::NO_AUTH, "no_auth"),
        (Flags::FAST, "fast"),
        (Flags::BLOCKING, "blocking"),
        (Flags::NO_MULTI, "no_multi"),
        (Flags::STALE, "stale"),
        (Flags::MOVABLEKEYS, "movablekeys"),
    ];

    /// Whether every bit of `other` is set.
    pub const fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Redis' names of the set flags, for `COMMAND`.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

/// What a command table knows about one command.
#[derive(Debug, Clone, Copy)]
pub struct CommandMeta {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: exact count including the name if positive, minimum if negative.
    pub arity: i32,
    /// Flags.
    pub flags: Flags,
    /// Position of the first key (0: none).
    pub first_key: i32,
    /// Position of the last key (-1: the last argument, -2: the one before).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Finds the keys when their positions depend on the arguments (numkeys, STORE, STREAMS,
    /// subcommands); overrides first/last/step.
    pub find_keys: Option<KeyFinder>,
    /// The command group, for `COMMAND DOCS`.
    pub group: &'static str,
    /// One line of help, for `COMMAND DOCS`.
    pub summary: &'static str,
    /// Its position in the [`CommandTable`] that holds it, set there
    /// ([`CommandMeta::UNLISTED`] for a description made elsewhere): what a command keeps
    /// beside the table is a vector indexed by it.
    pub index: u16,
}

impl CommandMeta {
    /// The [`CommandMeta::index`] of a description that no table holds (a write gate's view of
    /// a script, say): it finds nothing kept beside a table.
    pub const UNLISTED: u16 = u16::MAX;

    /// A command that takes no keys (connection, server and sentinel commands).
    pub const fn keyless(
        name: &'static str,
        arity: i32,
        flags: Flags,
        group: &'static str,
        summary: &'static str,
    ) -> CommandMeta {
        CommandMeta {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            find_keys: None,
            group,
            summary,
            index: CommandMeta::UNLISTED,
        }
    }

    /// Whether `argc` (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = self.arity as i64;
        if a >= 0 { argc == a } else { argc >= -a }
    }

    /// Positions of the key arguments in a request of `argc` items.
    fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> + use<> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            (argc as i64 + self.last_key as i64).max(0) as usize
        } else {
            (self.last_key as usize).min(argc.saturating_sub(1))
        };
        let step = self.step.max(1) as usize;
        let active = self.first_key > 0;
        (first..=last).step_by(step).filter(move |_| active)
    }

    /// The positions of a request's keys, as [`CommandMeta::keys`] finds them but without the
    /// flags it works out for each: cluster routing asks this of every command, and it
    /// allocates nothing for the commands whose keys sit at fixed positions.
    pub fn key_positions_in(&self, args: &[Bytes]) -> impl Iterator<Item = usize> + use<> {
        let (found, fixed) = match self.find_keys {
            Some(find) => (find(args).unwrap_or_default(), None),
            None if self.first_key > 0 && (self.first_key as usize) < args.len() => {
                (Vec::new(), Some(self.key_positions(args.len())))
            }
            None => (Vec::new(), None),
        };
        found
            .into_iter()
            .map(|k| k.pos)
            .chain(fixed.into_iter().flatten())
    }

    /// The keys of a request (`args[0]` is the command name), with their key-spec flags: the
    /// one place every caller (GETKEYS, client tracking) asks.
    pub fn keys(&self, args: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
        if let Some(find) = self.find_keys {
            return find(args);
        }
        if self.first_key <= 0 {
            return Err(KeysError::NoKeyArguments);
        }
        if self.first_key as usize >= args.len() {
            return Err(KeysError::Invalid);
        }
        let write = !self.flags.has(Flags::READONLY);
        Ok(self
            .key_positions(args.len())
            .enumerate()
            .map(|(nth, pos)| KeyRef {
                pos,
                flags: fixed_flags(self.name, write, args, nth),
            })
            .collect())
    }

    /// The `COMMAND INFO` record.
    pub fn info_reply(&self) -> Reply {
        Reply::Array(vec![
            Reply::bulk_static(self.name),
            Reply::Int(self.arity as i64),
            Reply::Set(self.flags.names().into_iter().map(Reply::simple).collect()),
            Reply::Int(self.first_key as i64),
            Reply::Int(self.last_key as i64),
            Reply::Int(self.step as i64),
            Reply::Set(vec![Reply::simple(group_category(self.group))]),
            Reply::Array(vec![]),
            Reply::Array(vec![]),
            Reply::Array(vec![]),
        ])
    }

    /// The `COMMAND DOCS` entry (name, then a map).
    pub fn docs_reply(&self) -> (Reply, Reply) {
        (
            Reply::bulk_static(self.name),
            Reply::Map(vec![
                (
                    Reply::bulk_static("summary"),
                    Reply::bulk_static(self.summary),
                ),
                (Reply::bulk_static("since"), Reply::bulk_static("1.0.0")),
                (Reply::bulk_static("group"), Reply::bulk_static(self.group)),
            ]),
        )
    }
}

fn group_category(group: &str) -> &'static str {
    match group {
        "string" => "@string",
        "list" => "@list",
        "hash" => "@hash",
        "set" => "@set",
        "sorted-set" => "@sortedset",
        "geo" => "@geo",
        "generic" => "@keyspace",
        "pubsub" => "@pubsub",
        "transactions" => "@transaction",
        "connection" => "@connection",
        "bitmap" => "@bitmap",
        "hyperloglog" => "@hyperloglog",
        _ => "@admin",
    }
}

/// A name → entry table, looked up case-insensitively.
pub struct CommandTable<H> {
    entries: Vec<(CommandMeta, H)>,
    index: HashMap<Vec<u8>, usize, ahash::RandomState>,
}

impl<H> CommandTable<H> {
    /// Builds a table; panics at start-up on a duplicate name (a programming error).
    pub fn new(mut entries: Vec<(CommandMeta, H)>) -> Self {
        assert!(
            entries.len() < CommandMeta::UNLISTED as usize,
            "too many commands"
        );
        let mut index = HashMap::with_hasher(ahash::RandomState::new());
        for (i, (meta, _)) in entries.iter_mut().enumerate() {
            meta.index = i as u16;
            let dup = index.insert(meta.name.as_bytes().to_vec(), i);
            assert!(dup.is_none(), "command {} registered twice", meta.name);
        }
        CommandTable { entries, index }
    }

    /// Looks a command up by the name a client sent.
    pub fn get(&self, name: &[u8]) -> Option<&(CommandMeta, H)> {
        if name.len() > 32 {
            return None;
        }
        let mut lower = [0u8; 32];
        let lower = &mut lower[..name.len()];
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        self.index.get(&lower[..]).map(|&i| &self.entries[i])
    }

    /// Every entry, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &(CommandMeta, H)> {
        self.entries.iter()
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `COMMAND` family: COUNT, INFO, DOCS, LIST, or the full listing.
    pub fn command_reply(&self, args: &[Bytes]) -> Reply {
        let sub = args.get(1).map(|s| lossy_lower(s));
        match sub.as_deref() {
            None => Reply::Array(self.entries.iter().map(|(m, _)| m.info_reply()).collect()),
            Some("count") if args.len() == 2 => Reply::Int(self.entries.len() as i64),
            Some("info") => {
                if args.len() == 2 {
                    return Reply::Array(
                        self.entries.iter().map(|(m, _)| m.info_reply()).collect(),
                    );
                }
                Reply::Array(
                    args[2..]
                        .iter()
                        .map(|n| {
                            self.get(n)
                                .map(|(m, _)| m.info_reply())
                                .unwrap_or(Reply::NilArray)
                        })
                        .collect(),
                )
            }
            Some("docs") => {
                let metas: Vec<&CommandMeta> = if args.len() == 2 {
                    self.entries.iter().map(|(m, _)| m).collect()
                } else {
                    args[2..]
                        .iter()
                        .filter_map(|n| self.get(n).map(|(m, _)| m))
                        .collect()
                };
                Reply::Map(metas.into_iter().map(|m| m.docs_reply()).collect())
            }
            Some(sub @ ("getkeys" | "getkeysandflags")) => {
                if args.len() < 4 {
                    return wrong_arity(&format!("command|{sub}"));
                }
                self.getkeys(&args[3..], &args[2], sub == "getkeysandflags")
            }
            Some("list") => self.list(args),
            Some("help") => Reply::Array(
                [
                    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands in this server.",
                    "LIST",
                    "    Return a list of all commands in this server.",
                    "INFO [<command-name> ...]",
                    "    Return details about multiple commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentation details about multiple commands.",
                    "GETKEYS <full-command>",
                    "    Return the keys from a full command.",
                    "GETKEYSANDFLAGS <full-command>",
                    "    Return the keys and the access flags from a full command.",
                    "HELP",
                    "    Print this help.",
                ]
                .into_iter()
                .map(Reply::simple)
                .collect(),
            ),
            Some(_) => bad_subcommand(
                "command",
                &args[1],
                &[
                    "count",
                    "list",
                    "info",
                    "docs",
                    "getkeys",
                    "getkeysandflags",
                    "help",
                ],
            ),
        }
    }
}

impl<H> CommandTable<H> {
    /// `COMMAND GETKEYS[ANDFLAGS] name args…`, checked in Redis' order: known command, takes
    /// keys, argument count, then the keys themselves.
    fn getkeys(&self, rest: &[Bytes], name: &Bytes, with_flags: bool) -> Reply {
        let Some((m, _)) = self.get(name) else {
            return Reply::error(KeysError::InvalidCommand.to_string());
        };
        let mut cmd = Vec::with_capacity(rest.len() + 1);
        cmd.push(name.clone());
        cmd.extend_from_slice(rest);
        let found = m.keys(&cmd);
        if let Err(e @ (KeysError::InvalidCommand | KeysError::NoKeyArguments)) = found {
            return Reply::error(e.to_string());
        }
        if !m.arity_ok(cmd.len()) {
            return Reply::error(KeysError::Arity.to_string());
        }
        match found {
            Ok(keys) => Reply::Array(
                keys.into_iter()
                    .map(|k| {
                        let key = Reply::Bulk(cmd[k.pos].clone());
                        if !with_flags {
                            return key;
                        }
                        let flags = k.flags.iter().map(|f| Reply::simple(f)).collect();
                        Reply::Array(vec![key, Reply::Set(flags)])
                    })
                    .collect(),
            ),
            Err(e) => Reply::error(e.to_string()),
        }
    }

    /// `COMMAND LIST [FILTERBY MODULE m|ACLCAT c|PATTERN p]`.
    fn list(&self, args: &[Bytes]) -> Reply {
        let filter = match args.get(2..) {
            Some([]) | None => None,
            Some([by, kind, arg]) if by.eq_ignore_ascii_case(b"filterby") => {
                match lossy_lower(kind).as_str() {
                    // No modules here: nothing belongs to any.
                    "module" => return Reply::Array(vec![]),
                    k @ ("aclcat" | "pattern") => Some((k == "pattern", arg)),
                    _ => return Reply::from(crate::CmdError::Syntax),
                }
            }
            _ => return Reply::from(crate::CmdError::Syntax),
        };
        let mut out = Vec::new();
        for (m, _) in &self.entries {
            // A container's subcommands follow it, in its ACL categories.
            let subs = crate::subcommands::SUBCOMMANDS
                .iter()
                .find(|(c, _)| *c == m.name)
                .map_or(&[][..], |(_, s)| *s);
            let names = std::iter::once(m.name.to_string())
                .chain(subs.iter().map(|s| format!("{}|{s}", m.name)));
            for name in names {
                let keep = match filter {
                    None => true,
                    Some((true, p)) => crate::glob::matches_nocase(p, name.as_bytes()),
                    Some((false, cat)) => m.in_category(&lossy_lower(cat)),
                };
                if keep {
                    out.push(Reply::Bulk(Bytes::from(name)));
                }
            }
        }
        Reply::Array(out)
    }
}

impl CommandMeta {
    /// Whether the command is in an ACL category (`read`, `keyspace`, …): its group's category
    /// and those its flags imply, an approximation of Redis' per-command lists.
    pub(crate) fn in_category(&self, cat: &str) -> bool {
        let f = self.flags;
        match cat {
            "read" => f.has(Flags::READONLY),
            "write" => f.has(Flags::WRITE),
            "fast" => f.has(Flags::FAST),
            "slow" => !f.has(Flags::FAST),
            "admin" | "dangerous" => f.has(Flags::ADMIN),
            "blocking" => f.has(Flags::BLOCKING),
            "pubsub" => f.has(Flags::PUBSUB) || self.group == "pubsub",
            "scripting" => self.group == "scripting",
            "stream" => self.group == "stream",
            _ => group_category(self.group).strip_prefix('@') == Some(cat),
        }
    }
}

/// The error for an unknown command, worded exactly as Redis (clients key on it).
pub fn unknown_command(args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(args.first().map(|b| &b[..]).unwrap_or(b""));
    let mut list = String::new();
    for a in args.iter().skip(1) {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        let a = String::from_utf8_lossy(a);
        let a: String = a.chars().take(room).collect();
        list.push('\'');
        list.push_str(&a);
        list.push_str("' ");
    }
    let name: String = name.chars().take(128).collect();
    Reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {list}"
    ))
}

/// The error for an unknown subcommand, with the name as the client sent it.
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        command.to_uppercase()
    ))
}

/// The reply for a subcommand: known names with a wrong argument count get the arity error
/// (`'config|get'`), others the unknown-subcommand error.
pub fn bad_subcommand(command: &str, sub: &[u8], known: &[&str]) -> Reply {
    let lower = String::from_utf8_lossy(sub).to_lowercase();
    if known.contains(&lower.as_str()) {
        wrong_arity(&format!("{command}|{lower}"))
    } else {
        unknown_subcommand(command, sub)
    }
}

/// The error for a wrong argument count.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first: i32, last: i32, step: i32) -> CommandMeta {
        CommandMeta {
            name: "x",
            arity: -2,
            flags: Flags::default(),
            first_key: first,
            last_key: last,
            step,
            find_keys: None,
            group: "generic",
            summary: "",
            index: CommandMeta::UNLISTED,
        }
    }

    #[test]
    fn key_positions() {
        assert_eq!(meta(1, 1, 1).key_positions(3).collect::<Vec<_>>(), vec![1]);
        assert_eq!(
            meta(1, -1, 2).key_positions(5).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(
            meta(1, -2, 1).key_positions(4).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(meta(0, 0, 0).key_positions(4).count(), 0);
    }

    #[test]
    fn key_positions_in_finds_what_keys_finds() {
        let sort = CommandMeta {
            find_keys: Some(crate::keys::sort),
            ..meta(1, 1, 1)
        };
        let cases = [
            (meta(1, 1, 1), "get a"),
            (meta(1, 1, 1), "get"),
            (meta(1, -1, 2), "mset a 1 b 2"),
            (meta(1, -1, 1), "del a b c"),
            (meta(0, 0, 0), "ping"),
            (sort, "sort a store b"),
            (sort, "sort a limit store b store c"),
        ];
        for (m, req) in cases {
            let args: Vec<Bytes> = req.split(' ').map(|w| Bytes::from(w.to_string())).collect();
            let want: Vec<usize> = m
                .keys(&args)
                .map(|ks| ks.into_iter().map(|k| k.pos).collect())
                .unwrap_or_default();
            assert_eq!(m.key_positions_in(&args).collect::<Vec<_>>(), want, "{req}");
        }
    }

    #[test]
    fn unknown_command_wording() {
        let r = unknown_command(&[Bytes::from("foo"), Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(
            r,
            Reply::error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
    }
}
