//! ACL users, as Redis 7.0 has them: users with passwords and selectors, checked before every
//! command (command, keys, channels), a log of refusals, and the `ACL` command.
//!
//! The node and the sentinel share all of it through [`crate::Shared::acl`]. A connection
//! remembers its user's name and a copy of the user ([`Session`]), refreshed when the users
//! change (a generation counter), so the check costs no lock on the common path.

pub mod commands;
pub mod file;
pub mod log;
pub mod selector;
pub mod session;
pub mod universe;
pub mod user;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use thiserror::Error;

use crate::command::CommandMeta;
use crate::reply::Reply;
pub use universe::Universe;
pub use user::User;

/// Why a rule was refused; `Display` is Redis' wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RuleError {
    /// Unknown command or category.
    #[error("Unknown command or category name in ACL")]
    Unknown,
    /// Malformed.
    #[error("Syntax error")]
    Syntax,
    /// A key pattern after `allkeys`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
    )]
    AfterAllKeys,
    /// A channel pattern after `allchannels`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
    )]
    AfterAllChannels,
    /// `<pass` / `!hash` that the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` that is not 64 lowercase hex digits.
    #[error(
        "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
    )]
    BadHash,
    /// `+config|get|x`.
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSub,
}

/// Why a command was refused, with the index of the offending key or channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The command or subcommand.
    Command,
    /// A key.
    Key(usize),
    /// A channel.
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The `-NOPERM` reply a client gets.
    pub fn reply(self, meta_name: &str) -> Reply {
        Reply::error(match self {
            Denied::Command => format!(
                "NOPERM this user has no permissions to run the '{meta_name}' command"
            ),
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => {
                "NOPERM this user has no permissions to access one of the channels used as arguments".into()
            }
        })
    }

    /// The words a script's `redis.call` gets.
    pub fn script_message(self) -> &'static str {
        match self {
            Denied::Command => "The user executing the script can't run this command or subcommand",
            Denied::Key(_) => {
                "The user executing the script can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => {
                "The user executing the script can't publish to the channel mentioned in the command"
            }
        }
    }

    /// Why EXEC refuses a queued command whose rights were revoked meanwhile.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    /// `reason` in ACL LOG.
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }
}

/// The users of one server and the commands they speak about.
#[derive(Debug)]
pub struct Acl {
    /// The commands rules name.
    pub universe: Universe,
    /// Users by name (sorted, as Redis lists them).
    pub users: BTreeMap<String, Arc<User>>,
    /// Bumped on every change ([`Acl::changed`]), so connections refresh their copy; shared
    /// with [`crate::Shared::acl_generation`], read there without the lock.
    pub generation: Arc<AtomicU64>,
    /// Refusals and failed authentications.
    pub log: log::AclLog,
    /// `aclfile`: where ACL SAVE / LOAD write and read.
    pub file: Option<std::path::PathBuf>,
    /// The `requirepass` last applied.
    pub requirepass: Option<Vec<u8>>,
}

impl Default for Acl {
    fn default() -> Self {
        let universe = Universe::default();
        let mut users = BTreeMap::new();
        users.insert(
            "default".to_string(),
            Arc::new(User::default_user(&universe)),
        );
        Acl {
            universe,
            users,
            generation: Arc::new(AtomicU64::new(1)),
            log: log::AclLog::default(),
            file: None,
            requirepass: None,
        }
    }
}

impl Acl {
    /// The user named so.
    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.users.get(n))
            .cloned()
    }

    /// Replaces (or adds) a user.
    pub fn put(&mut self, user: User) {
        self.users.insert(user.name.clone(), Arc::new(user));
        self.changed();
    }

    /// Marks the users changed: connections refresh their copy before their next command.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// `requirepass`: sets the default user's password (empty: `nopass`), as Redis maps it.
    pub fn set_requirepass(&mut self, pass: Option<&[u8]>) {
        self.requirepass = pass.map(|p| p.to_vec());
        let mut d = self
            .users
            .get("default")
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::default_user(&self.universe));
        let _ = d.apply(&self.universe, b"resetpass");
        match pass {
            Some(p) if !p.is_empty() => {
                let mut op = vec![b'>'];
                op.extend_from_slice(p);
                let _ = d.apply(&self.universe, &op);
            }
            _ => {
                let _ = d.apply(&self.universe, b"nopass");
            }
        }
        self.put(d);
    }

    /// Applies a (re)configured `requirepass`, only when it changed: an unchanged setting
    /// must not undo `ACL SETUSER default` changes on every `CONFIG SET`.
    pub fn follow_requirepass(&mut self, pass: Option<&[u8]>) {
        let pass = pass.map(|p| p.to_vec());
        if self.requirepass != pass {
            self.set_requirepass(pass.as_deref());
        }
    }

    /// Applies `ACL SETUSER` modifiers to a copy of the user (a new one if absent); the error
    /// names the failing modifier, and then nothing changes.
    pub fn apply_ops(&self, name: &[u8], ops: &[Bytes]) -> Result<User, String> {
        let acl = self;
        let name = String::from_utf8_lossy(name).into_owned();
        let mut user = acl
            .users
            .get(&name)
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::new(&name));
        let raw: Vec<Vec<u8>> = ops.iter().map(|o| o.to_vec()).collect();
        let merged = user::merge_selectors(&raw).map_err(|start| {
            format!("Unmatched parenthesis in acl selector starting at '{start}'.")
        })?;
        for op in &merged {
            user.apply(&acl.universe, op).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {e}",
                    String::from_utf8_lossy(op)
                )
            })?;
        }
        Ok(user)
    }

    /// Whether a new connection starts authenticated (as `default`).
    pub fn default_open(&self) -> bool {
        self.users
            .get("default")
            .is_some_and(|d| d.nopass && d.enabled)
    }

    /// The user if the credentials are right.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
        self.user(name).filter(|u| u.password_ok(pass))
    }
}

/// A connection's user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's name (`default` until AUTH).
    pub name: Bytes,
    /// A copy of the user as of `generation`; `None` if the user no longer exists.
    pub user: Option<Arc<User>>,
    /// The ACL generation the copy is from.
    pub generation: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            name: Bytes::from_static(b"default"),
            user: None,
            generation: 0,
        }
    }
}

/// Checks a request against a user: any selector allowing it suffices; otherwise the most
/// relevant refusal (channel over key over command, later argument over earlier), as Redis.
pub fn check(
    acl: &Universe,
    user: &User,
    meta: &CommandMeta,
    args: &[Bytes],
) -> Result<(), Denied> {
    let id = acl.of_request(meta, args);
    let mut worst: Option<Denied> = None;
    for s in std::iter::once(&user.root).chain(user.selectors.iter()) {
        match s.check(acl, id, meta, args) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if worst.is_none_or(|w| d.rank() > w.rank()) {
                    worst = Some(d);
                }
            }
        }
    }
    Err(worst.unwrap_or(Denied::Command))
}

/// The name a refused command is reported under (`config|get` for a subcommand).
pub fn full_name(u: &Universe, meta: &CommandMeta, args: &[Bytes]) -> String {
    u.of_request(meta, args)
        .map(|id| u.cmds[id].name.clone())
        .unwrap_or_else(|| meta.name.to_string())
}
