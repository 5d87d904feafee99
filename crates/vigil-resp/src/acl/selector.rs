//! A selector: which commands, keys and channels one set of rules allows (Redis 7's
//! acl-v2). A user has a root selector and any number of `(...)` selectors; a command runs if
//! any of them allows it.

use std::collections::HashMap;

use bytes::Bytes;

use super::universe::{CATEGORIES, Universe, is_category};
use super::{Denied, RuleError};
use crate::command::CommandMeta;
use crate::glob;

/// A key pattern and the access it grants (`~` both, `%R~` read, `%W~` write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    /// The glob pattern.
    pub pattern: Bytes,
    /// Grants reads.
    pub read: bool,
    /// Grants writes.
    pub write: bool,
}

/// Allowed command ids; ids past the stored words take `future` (Redis' reserved bit, set
/// only by `+@all`, which is what lets such a user run commands added later).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bits {
    words: Vec<u64>,
    future: bool,
}

impl Bits {
    fn get(&self, id: usize) -> bool {
        self.words
            .get(id / 64)
            .map_or(self.future, |w| w & (1 << (id % 64)) != 0)
    }

    fn set(&mut self, id: usize, v: bool) {
        let fill = if self.future { u64::MAX } else { 0 };
        while self.words.len() <= id / 64 {
            self.words.push(fill);
        }
        if v {
            self.words[id / 64] |= 1 << (id % 64);
        } else {
            self.words[id / 64] &= !(1 << (id % 64));
        }
    }

    fn fill(&mut self, v: bool) {
        self.words.clear();
        self.future = v;
    }
}

/// One selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    allkeys: bool,
    allchannels: bool,
    allcommands: bool,
    keys: Vec<KeyPattern>,
    channels: Vec<Bytes>,
    bits: Bits,
    /// Allowed first arguments of otherwise blocked commands without subcommands (`+select|0`).
    firstargs: HashMap<usize, Vec<String>>,
}

impl Selector {
    /// Whether it allows everything (the default user's usual state): no check needed.
    pub fn unrestricted(&self) -> bool {
        self.allkeys && self.allchannels && self.allcommands
    }

    /// Applies one rule (`+get`, `~k*`, `allchannels` …).
    pub fn apply(&mut self, u: &Universe, op: &[u8]) -> Result<(), RuleError> {
        let text = String::from_utf8_lossy(op);
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.allkeys = true;
                self.keys.clear();
            }
            "resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
            }
            "allchannels" | "&*" => {
                self.allchannels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => {
                self.bits.fill(true);
                self.allcommands = true;
                self.firstargs.clear();
            }
            "nocommands" | "-@all" => {
                self.bits.fill(false);
                self.allcommands = false;
                self.firstargs.clear();
            }
            _ => return self.apply_pattern_or_command(u, op, &lower),
        }
        Ok(())
    }

    fn apply_pattern_or_command(
        &mut self,
        u: &Universe,
        op: &[u8],
        lower: &str,
    ) -> Result<(), RuleError> {
        match op.first() {
            Some(b'~' | b'%') => self.add_key_pattern(op),
            Some(b'&') => {
                if self.allchannels {
                    return Err(RuleError::AfterAllChannels);
                }
                let pat = &op[1..];
                if has_spaces(pat) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|c| c[..] == *pat) {
                    self.channels.push(Bytes::copy_from_slice(pat));
                }
                self.allchannels = false;
                Ok(())
            }
            Some(&sign @ (b'+' | b'-')) if lower.as_bytes().get(1) == Some(&b'@') => {
                let cat = &lower[2..];
                if !is_category(cat) {
                    return Err(RuleError::Unknown);
                }
                for id in 0..u.cmds.len() {
                    if u.in_category(id, cat) {
                        self.set_command(u, id, sign == b'+', false);
                    }
                }
                Ok(())
            }
            Some(b'+') => self.allow_command(u, &lower[1..]),
            Some(b'-') => {
                let id = u.lookup(&lower[1..]).ok_or(RuleError::Unknown)?;
                self.set_command(u, id, false, true);
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.allkeys {
            return Err(RuleError::AfterAllKeys);
        }
        let (mut read, mut write) = (false, false);
        let mut offset = 1;
        if op[0] == b'%' {
            loop {
                match op.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if !read => read = true,
                    Some(b'W') if !write => write = true,
                    Some(b'~') => {
                        offset += 1;
                        break;
                    }
                    // Redis stops at the end without a `~` and takes the rest (nothing) as
                    // the pattern.
                    None => break,
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
        } else {
            (read, write) = (true, true);
        }
        let pat = &op[offset.min(op.len())..];
        if has_spaces(pat) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern[..] == *pat) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => self.keys.push(KeyPattern {
                pattern: Bytes::copy_from_slice(pat),
                read,
                write,
            }),
        }
        self.allkeys = false;
        Ok(())
    }

    fn allow_command(&mut self, u: &Universe, name: &str) -> Result<(), RuleError> {
        let Some((parent, sub)) = name.rsplit_once('|') else {
            let id = u.lookup(name).ok_or(RuleError::Unknown)?;
            self.set_command(u, id, true, true);
            return Ok(());
        };
        let pid = u.lookup(parent).ok_or(RuleError::Unknown)?;
        if u.cmds[pid].is_sub {
            return Err(RuleError::FirstArgOfSub);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !u.cmds[pid].subs.is_empty() {
            let id = u.lookup(name).ok_or(RuleError::Unknown)?;
            self.set_command(u, id, true, true);
        } else {
            let list = self.firstargs.entry(pid).or_default();
            if !list.iter().any(|a| a == sub) {
                list.push(sub.to_string());
            }
        }
        Ok(())
    }

    /// Sets a command's bit and its subcommands' (Redis' `ACLChangeSelectorPerm`).
    fn set_command(&mut self, u: &Universe, id: usize, allow: bool, _explicit: bool) {
        self.set_bit(id, allow);
        self.firstargs.remove(&id);
        for &s in &u.cmds[id].subs {
            self.set_bit(s, allow);
        }
    }

    fn set_bit(&mut self, id: usize, v: bool) {
        self.bits.set(id, v);
        if !v {
            self.allcommands = false;
        }
    }

    /// Whether the selector may run the request; on refusal, why and at which argument.
    pub fn check(
        &self,
        u: &Universe,
        id: Option<usize>,
        meta: &CommandMeta,
        args: &[Bytes],
    ) -> Result<(), Denied> {
        if !self.allcommands && !meta.flags.has(crate::Flags::NO_AUTH) {
            let id = id.unwrap_or(usize::MAX);
            if !self.bits.get(id) && !self.first_arg_allowed(u, id, args) {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys
            && let Ok(keys) = meta.keys(args)
        {
            for k in keys.iter().filter(|k| !k.flags.contains(&"not_key")) {
                let read = k.flags.contains(&"access");
                let write = k
                    .flags
                    .iter()
                    .any(|f| matches!(*f, "insert" | "delete" | "update"));
                if !self.key_allowed(&args[k.pos], read, write) {
                    return Err(Denied::Key(k.pos));
                }
            }
        }
        if !self.allchannels {
            for (pos, pattern) in channels_of(meta.name, args) {
                if !self.channel_allowed(&args[pos], pattern) {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }

    fn first_arg_allowed(&self, u: &Universe, id: usize, args: &[Bytes]) -> bool {
        let Some(list) = self.firstargs.get(&id) else {
            return false;
        };
        let idx = if u.cmds.get(id).is_some_and(|c| c.is_sub) {
            2
        } else {
            1
        };
        args.get(idx)
            .is_some_and(|a| list.iter().any(|l| a.eq_ignore_ascii_case(l.as_bytes())))
    }

    /// Whether every key may be read (`allkeys`, or a read pattern that is exactly `*`).
    pub fn reads_every_key(&self) -> bool {
        self.allkeys || self.keys.iter().any(|k| k.read && &k.pattern[..] == b"*")
    }

    /// Whether a key may be accessed for reading and/or writing.
    pub fn key_allowed(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.allkeys
            || self
                .keys
                .iter()
                .any(|p| (p.read || !read) && (p.write || !write) && glob::matches(&p.pattern, key))
    }

    /// Whether a channel (or, literally, a subscription pattern) is allowed.
    pub fn channel_allowed(&self, ch: &[u8], pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|c| {
                if pattern {
                    c[..] == *ch
                } else {
                    glob::matches(c, ch)
                }
            })
    }

    /// The key patterns as rules (`~k* %R~r*`, or `~*`).
    pub fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let mut parts = Vec::new();
        for k in &self.keys {
            let prefix = match (k.read, k.write) {
                (true, true) => "~".to_string(),
                (true, false) => "%R~".into(),
                (false, true) => "%W~".into(),
                (false, false) => "%~".into(),
            };
            parts.push(format!("{prefix}{}", String::from_utf8_lossy(&k.pattern)));
        }
        parts.join(" ")
    }

    /// The channel patterns as rules (`&ch`, or `&*`), without `resetchannels`.
    pub fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let parts: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        parts.join(" ")
    }

    /// The command rules, found as Redis finds them: start from `+@all` or `-@all`, apply the
    /// best-fitting categories, then single commands until the bitmaps agree.
    pub fn describe_commands(&self, u: &Universe) -> String {
        let additive = !self.bits.future;
        let mut fake = Selector::default();
        let mut rules = vec![if additive { "-@all" } else { "+@all" }.to_string()];
        fake.bits.fill(!additive);
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, cat) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0, 0);
                for id in 0..u.cmds.len() {
                    if u.in_category(id, cat) {
                        if temp.bits.get(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            let cat = CATEGORIES[j];
            let (op, inv) = if additive { ('+', '-') } else { ('-', '+') };
            let _ = fake.apply(u, format!("{op}@{cat}").as_bytes());
            let _ = temp.apply(u, format!("{inv}@{cat}").as_bytes());
            rules.push(format!("{op}@{cat}"));
            applied[j] = true;
        }
        for (id, cmd) in u.cmds.iter().enumerate() {
            let (mine, theirs) = (self.bits.get(id), fake.bits.get(id));
            if mine != theirs {
                rules.push(format!("{}{}", if mine { '+' } else { '-' }, cmd.name));
                fake.set_command(u, id, mine, true);
            }
            if !mine && let Some(list) = self.firstargs.get(&id) {
                for a in list {
                    rules.push(format!("+{}|{a}", cmd.name));
                }
            }
        }
        rules.join(" ")
    }

    /// The whole selector as rules: keys, `resetchannels` and channels, commands.
    pub fn describe(&self, u: &Universe) -> String {
        let mut parts = Vec::new();
        let keys = self.describe_keys();
        if !keys.is_empty() {
            parts.push(keys);
        }
        if !self.allchannels {
            parts.push("resetchannels".into());
        }
        let chans = self.describe_channels();
        if !chans.is_empty() {
            parts.push(chans);
        }
        parts.push(self.describe_commands(u));
        parts.join(" ")
    }
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|c| c.is_ascii_whitespace())
}

/// The channels a request publishes or subscribes to: (argument index, is a pattern).
/// Unsubscribing is never checked, as in Redis.
pub fn channels_of(name: &str, args: &[Bytes]) -> Vec<(usize, bool)> {
    match name {
        "publish" | "spublish" if args.len() > 1 => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..args.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}
