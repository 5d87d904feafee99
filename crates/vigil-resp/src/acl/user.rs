//! A user: flags, password hashes, the root selector and the `(...)` selectors, and the
//! rules (`ACL SETUSER` modifiers) that change them.

use sha2::{Digest, Sha256};

use super::RuleError;
use super::selector::Selector;
use super::universe::Universe;

/// One ACL user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: String,
    /// `on` (else `off`: cannot authenticate).
    pub enabled: bool,
    /// `nopass`: any password authenticates.
    pub nopass: bool,
    /// `sanitize-payload` (true) / `skip-sanitize-payload` (false), shown as set; RESTORE
    /// always checks its payload here, so it changes nothing else.
    pub sanitize: Option<bool>,
    /// SHA-256 hex digests of its passwords, in the order added.
    pub passwords: Vec<String>,
    /// The root selector (rules outside parentheses).
    pub root: Selector,
    /// The `(...)` selectors.
    pub selectors: Vec<Selector>,
}

/// The SHA-256 hex digest Redis stores for a password.
pub fn hash_password(pass: &[u8]) -> String {
    let d = Sha256::digest(pass);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl User {
    /// A new user as `ACL SETUSER` creates it: off, no passwords, no rights.
    pub fn new(name: &str) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            root: Selector::default(),
            selectors: Vec::new(),
        }
    }

    /// The `default` user of a server without ACL configuration.
    pub fn default_user(u: &Universe) -> Self {
        let mut d = User::new("default");
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = d.apply(u, op.as_bytes());
        }
        d
    }

    /// Applies one modifier.
    pub fn apply(&mut self, u: &Universe, op: &[u8]) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                for op in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "sanitize-payload",
                    "clearselectors",
                    "-@all",
                ] {
                    self.apply(u, op.as_bytes())?;
                }
            }
            _ => return self.apply_other(u, op),
        }
        Ok(())
    }

    fn apply_other(&mut self, u: &Universe, op: &[u8]) -> Result<(), RuleError> {
        match op[0] {
            b'>' | b'#' => {
                let h = if op[0] == b'>' {
                    hash_password(&op[1..])
                } else if valid_hash(&op[1..]) {
                    String::from_utf8_lossy(&op[1..]).into_owned()
                } else {
                    return Err(RuleError::BadHash);
                };
                if !self.passwords.contains(&h) {
                    self.passwords.push(h);
                }
                self.nopass = false;
            }
            b'<' | b'!' => {
                let h = if op[0] == b'<' {
                    hash_password(&op[1..])
                } else if valid_hash(&op[1..]) {
                    String::from_utf8_lossy(&op[1..]).into_owned()
                } else {
                    return Err(RuleError::BadHash);
                };
                let i = self
                    .passwords
                    .iter()
                    .position(|p| *p == h)
                    .ok_or(RuleError::NoSuchPassword)?;
                self.passwords.remove(i);
            }
            b'(' if op.ends_with(b")") && op.len() >= 2 => {
                let mut s = Selector::default();
                for part in op[1..op.len() - 1]
                    .split(|c| *c == b' ')
                    .filter(|p| !p.is_empty())
                {
                    s.apply(u, part)?;
                }
                self.selectors.push(s);
            }
            _ => self.root.apply(u, op)?,
        }
        Ok(())
    }

    /// Whether the password authenticates this user (enabled ones only).
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(pass);
        self.passwords
            .iter()
            .any(|p| vigil_base::constant_time_eq(p.as_bytes(), h.as_bytes()))
    }

    /// Whether the user may run anything (no per-command check needed).
    pub fn unrestricted(&self) -> bool {
        self.root.unrestricted()
    }

    /// The flags `ACL GETUSER` lists.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// The user as one `ACL LIST` line (without the `user name` prefix).
    pub fn describe(&self, u: &Universe) -> String {
        let mut parts: Vec<String> = self.flags().iter().map(|s| s.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        parts.push(self.root.describe(u));
        for s in &self.selectors {
            parts.push(format!("({})", s.describe(u)));
        }
        parts.join(" ")
    }
}

/// Splits modifiers into ops, joining the words of a `(...)` selector as Redis does; returns
/// the text of an unmatched selector for the error.
pub fn merge_selectors(ops: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(ops.len().min(1024));
    let mut open: Option<Vec<u8>> = None;
    for op in ops {
        if let Some(acc) = open.as_mut() {
            acc.push(b' ');
            acc.extend_from_slice(op);
            if op.ends_with(b")") {
                out.extend(open.take());
            }
            continue;
        }
        if op.first() == Some(&b'(') && !op.ends_with(b")") {
            open = Some(op.clone());
            continue;
        }
        out.push(op.clone());
    }
    match open {
        Some(acc) => Err(String::from_utf8_lossy(&acc).into_owned()),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_sha256_hex() {
        assert_eq!(
            hash_password(b"p1"),
            "f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"
        );
    }

    #[test]
    fn selectors_are_joined() {
        let ops: Vec<Vec<u8>> = ["on", "(+get", "~a)", "(-@all)"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let merged = merge_selectors(&ops).unwrap();
        assert_eq!(merged[1], b"(+get ~a)".to_vec());
        assert_eq!(merge_selectors(&ops[..2]).unwrap_err(), "(+get");
    }
}
