//! The ACL file (`aclfile`): one `user <name> <rules…>` line per user, as `ACL LIST` shows
//! them. Loading is all or nothing: any bad line names itself and nothing changes. Saving
//! writes a temporary file, syncs it and renames it over the old one.

use std::path::Path;

use super::{Acl, User};

/// Most bytes read from an ACL file: a bound on what a bad path can make the server read.
pub const MAX_FILE: u64 = 64 << 20;

/// Reads the users of an ACL file, with Redis' error text on failure (`file:line: …`).
pub fn read(acl: &Acl, path: &Path) -> Result<Vec<User>, String> {
    let shown = path.display();
    let text = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => {
            return Err(format!("Error loading ACLs, file '{shown}' is too large"));
        }
        _ => std::fs::read(path)
            .map_err(|e| format!("Error loading ACLs, opening file '{shown}': {e}"))?,
    };
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    // Users are built against an empty set, so a file's line never sees the old users.
    let fresh = Acl {
        universe: acl.universe.clone(),
        users: Default::default(),
        generation: Default::default(),
        log: Default::default(),
        file: None,
        requirepass: None,
    };
    for (i, line) in text.split(|c| *c == b'\n').enumerate() {
        let n = i + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        // Quoted words as in redis.conf (Redis' `sdssplitargs`).
        let Ok(words) = crate::request::split_args(line) else {
            errors.push_str(&format!("{shown}:{n}: unbalanced quotes in acl line. "));
            continue;
        };
        if words.len() < 2 || &words[0][..] != b"user" {
            errors.push_str(&format!(
                "{shown}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = String::from_utf8_lossy(&words[1]).into_owned();
        if users.iter().any(|u| u.name == name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name}' found on line {n}. "
            ));
            continue;
        }
        match fresh.apply_ops(&words[1], &words[2..]) {
            Ok(u) => users.push(u),
            Err(e) => errors.push_str(&format!("{shown}:{n}: {e}. ")),
        }
    }
    if !errors.is_empty() {
        return Err(errors.trim_end().to_string());
    }
    if !users.iter().any(|u| u.name == "default") {
        users.push(User::default_user(&acl.universe));
    }
    Ok(users)
}

/// Writes every user to the file: temporary file, fsync, rename, fsync of the directory.
pub fn save(acl: &Acl, path: &Path) -> std::io::Result<()> {
    let mut text = String::new();
    for u in acl.users.values() {
        text.push_str(&format!("user {} {}\n", u.name, u.describe(&acl.universe)));
    }
    vigil_base::fs::write_durable(path, text.as_bytes())
}

/// Sets up a server's ACL at start: its commands, and the users of `aclfile` (empty: none),
/// whose errors stop start-up, naming the line.
pub fn install<'a>(
    shared: &crate::Shared,
    commands: impl Iterator<Item = &'a crate::CommandMeta>,
    aclfile: &str,
) -> Result<(), String> {
    install_with(shared, super::Universe::new(commands), aclfile)
}

/// [`install`] with a prepared command universe.
pub fn install_with(
    shared: &crate::Shared,
    universe: super::Universe,
    aclfile: &str,
) -> Result<(), String> {
    let mut acl = shared.acl.write();
    acl.universe = universe;
    if aclfile.is_empty() {
        return Ok(());
    }
    let path = std::path::PathBuf::from(aclfile);
    acl.file = Some(path.clone());
    let users = read(&acl, &path)?;
    acl.users = users
        .into_iter()
        .map(|u| (u.name.clone(), std::sync::Arc::new(u)))
        .collect();
    acl.changed();
    Ok(())
}
