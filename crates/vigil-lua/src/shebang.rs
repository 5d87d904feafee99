//! The first line of a script or a library: `#!lua flags=…` of an EVAL script, `#!lua name=…`
//! of a FUNCTION library, parsed and worded as Redis 7.0 parses and words them.

/// Flags a function declares (`redis.register_function{flags = ...}`) or a script its shebang.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// `no-writes`.
    pub no_writes: bool,
    /// `allow-oom`.
    pub allow_oom: bool,
    /// `allow-stale`.
    pub allow_stale: bool,
    /// `no-cluster`.
    pub no_cluster: bool,
    /// `allow-cross-slot-keys`.
    pub allow_cross_slot: bool,
}

impl ScriptFlags {
    /// Sets the flag named `name`; `false` if there is no such flag.
    pub fn set(&mut self, name: &[u8]) -> bool {
        match name {
            b"no-writes" => self.no_writes = true,
            b"allow-oom" => self.allow_oom = true,
            b"allow-stale" => self.allow_stale = true,
            b"no-cluster" => self.no_cluster = true,
            b"allow-cross-slot-keys" => self.allow_cross_slot = true,
            _ => return false,
        }
        true
    }

    /// The names of the flags set, in Redis' order.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot, "allow-cross-slot-keys"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}

/// An EVAL script's `#!lua flags=...` line: its flags (`None` without a shebang) and where
/// the code starts (at the line's newline, so error lines count from the shebang).
pub fn parse_shebang(body: &[u8]) -> Result<(Option<ScriptFlags>, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((None, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let Some(parts) = words(&body[..end]) else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    let engine = parts.first().map_or("", String::as_str);
    if engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags::default();
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {p}"));
        };
        // `flags=` names none; otherwise every comma-separated piece must be a flag.
        for f in list.split(',').filter(|_| !list.is_empty()) {
            if !flags.set(f.as_bytes()) {
                return Err(format!("ERR Unexpected flag in script shebang: {f}"));
            }
        }
    }
    Ok((Some(flags), end))
}

/// A first line's words as Redis splits it (`sdssplitargs`: quotes group and are removed, so
/// `name="foo"` is `name=foo`); `None` for unbalanced quotes.
fn words(line: &[u8]) -> Option<Vec<String>> {
    let parts = vigil_resp::request::split_args(line).ok()?;
    Some(
        parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    )
}

/// A library's name and where its code starts, from its `#!<engine> name=<name>` first line.
/// The code keeps the line's newline, so error lines count from the shebang.
pub fn parse_metadata(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&c| c == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let Some(parts) = words(&code[..end]).filter(|p| !p.is_empty()) else {
        return Err("ERR Invalid library metadata".into());
    };
    let engine = &parts[0][2..];
    let mut name: Option<String> = None;
    for p in &parts[1..] {
        // `name=` in any case, as Redis compares it.
        if p.len() >= 5 && p.as_bytes()[..5].eq_ignore_ascii_case(b"name=") {
            let n = &p[5..];
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(n.to_owned());
        } else {
            return Err(format!("ERR Invalid metadata value given: {p}"));
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    if !valid_name(name.as_bytes()) {
        return Err(NAME_ERR.into());
    }
    Ok((name, end))
}

pub(crate) const NAME_ERR: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

pub(crate) fn valid_name(n: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}
