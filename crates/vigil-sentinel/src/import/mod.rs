//! `vigil sentinel --import-redis-sentinel FILE`: a Redis Sentinel config file, as
//! `redis-sentinel` writes it, converted to the equivalent Vigil `[[groups]]` (driver `resp`),
//! so a team swaps its sentinels without retyping its masters.
//!
//! Lines are read by Redis' rules ([`args`]); `sentinel monitor` lines are taken first, then the
//! rest in any order (Redis loads them in that order too). What does not map to a group
//! (the sentinels' own identity, epochs and settings, scripts) is listed in the output's
//! leading comment with the reason; a line Redis itself would refuse is an error naming the
//! file and the line.
//!
//! Invariant: the text [`convert`] returns parses as sentinel groups
//! ([`crate::config::parse_groups`]); it checks that before returning.

mod args;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use thiserror::Error;
use vigil_base::HostPort;

/// Why a file could not be converted.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("cannot read {file}: {error}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        error: std::io::Error,
    },
    /// A line Redis would refuse, or one this converter does not know.
    #[error("{file}, line {line}: {message}")]
    Line {
        /// The file.
        file: String,
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file monitors no master.
    #[error("{file}: no `sentinel monitor` line: nothing to import")]
    Empty {
        /// The file.
        file: String,
    },
    /// The converted groups do not validate (e.g. a master name Vigil refuses).
    #[error("{0}")]
    Invalid(#[from] crate::config::ConfigError),
}

/// Redis Sentinel's defaults, written out because Vigil's differ.
const REDIS_DOWN_AFTER_MS: u64 = 30_000;
const REDIS_FAILOVER_TIMEOUT_MS: u64 = 180_000;

/// One `sentinel monitor` and what the other lines say about it.
#[derive(Debug)]
struct Master {
    name: String,
    addr: HostPort,
    quorum: u32,
    down_after_ms: Option<u64>,
    failover_timeout_ms: Option<u64>,
    parallel_syncs: Option<u32>,
    auth_user: Option<String>,
    auth_pass: Option<String>,
    replicas: Vec<HostPort>,
    renames: Vec<(String, String)>,
}

/// Reads `path` and converts it (see [`convert`]).
pub fn convert_file(path: &Path) -> Result<String, ImportError> {
    let file = path.display().to_string();
    let text = std::fs::read(path).map_err(|error| ImportError::Read {
        file: file.clone(),
        error,
    })?;
    convert(&text, &file)
}

/// Converts a Redis Sentinel config file's text to Vigil `[[groups]]` TOML, with a leading
/// comment saying where it came from and what was not carried over; `file` names it there
/// and in errors.
pub fn convert(text: &[u8], file: &str) -> Result<String, ImportError> {
    let err = |line: usize, message: String| ImportError::Line {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        let argv = args::split(trimmed)
            .ok_or_else(|| err(i + 1, "unbalanced quotes in configuration line".into()))?;
        let argv = argv
            .into_iter()
            .map(String::from_utf8)
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| err(i + 1, "not UTF-8 (Vigil's config is TOML text)".into()))?;
        if !argv.is_empty() {
            lines.push((i + 1, argv));
        }
    }
    let mut masters: Vec<Master> = Vec::new();
    // Monitors first: the other lines name them wherever they stand.
    for (n, argv) in &lines {
        if argv[0].eq_ignore_ascii_case("sentinel")
            && argv
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case("monitor"))
        {
            let m = monitor(&argv[2..]).map_err(|m| err(*n, m))?;
            if masters.iter().any(|o| o.name == m.name) {
                return Err(err(*n, format!("master {:?} is monitored twice", m.name)));
            }
            masters.push(m);
        }
    }
    if masters.is_empty() {
        return Err(ImportError::Empty {
            file: file.to_string(),
        });
    }
    let mut notes = Notes::default();
    for (n, argv) in &lines {
        let directive = argv[0].to_ascii_lowercase();
        if directive == "sentinel" {
            sentinel_line(&mut masters, &mut notes, &argv[1..]).map_err(|m| err(*n, m))?;
        } else {
            server_line(&mut notes, &directive, argv).map_err(|m| err(*n, m))?;
        }
    }
    let out = render(file, &masters, &notes);
    crate::config::parse_groups(&out, &format!("the groups converted from {file}"))?;
    Ok(out)
}

/// What was not carried over, for the leading comment.
#[derive(Debug, Default)]
struct Notes {
    port: Option<String>,
    requirepass: bool,
    sentinel_auth: bool,
    /// `<directive> of <name as {:?}>`: one line, whatever the name holds.
    scripts: BTreeSet<String>,
    reboot_down_after: BTreeSet<String>,
    announce: BTreeSet<String>,
    server: BTreeSet<String>,
}

fn monitor(a: &[String]) -> Result<Master, String> {
    let [name, host, port, quorum] = a else {
        return Err("`sentinel monitor` takes <name> <ip> <port> <quorum>".into());
    };
    let quorum = match quorum.parse::<u32>() {
        Ok(q) if q > 0 => q,
        _ => return Err(format!("quorum must be 1 or greater, got {quorum:?}")),
    };
    Ok(Master {
        name: name.clone(),
        addr: address(host, port)?,
        quorum,
        down_after_ms: None,
        failover_timeout_ms: None,
        parallel_syncs: None,
        auth_user: None,
        auth_pass: None,
        replicas: Vec::new(),
        renames: Vec::new(),
    })
}

fn address(host: &str, port: &str) -> Result<HostPort, String> {
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("invalid port {port:?}")),
    };
    HostPort::new(host, port).map_err(|e| e.to_string())
}

fn positive(v: &str, what: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{what} must be a positive number, got {v:?}")),
    }
}

/// A `sentinel <directive> ...` line other than `monitor` (`a` starts at the directive).
fn sentinel_line(masters: &mut [Master], notes: &mut Notes, a: &[String]) -> Result<(), String> {
    let Some(directive) = a.first().map(|d| d.to_ascii_lowercase()) else {
        return Err("`sentinel` without a directive".into());
    };
    let a = &a[1..];
    // Directives that name a master, with their argument count after the name.
    let per_master: Option<usize> = match directive.as_str() {
        "monitor" => return Ok(()),
        "down-after-milliseconds"
        | "failover-timeout"
        | "parallel-syncs"
        | "auth-pass"
        | "auth-user"
        | "notification-script"
        | "client-reconfig-script"
        | "config-epoch"
        | "leader-epoch"
        | "master-reboot-down-after-period" => Some(1),
        "known-slave" | "known-replica" | "rename-command" => Some(2),
        // Old form without the run id, or with it.
        "known-sentinel" if a.len() == 3 || a.len() == 4 => Some(a.len() - 1),
        "known-sentinel" => Some(3),
        "current-epoch"
        | "myid"
        | "announce-ip"
        | "announce-port"
        | "deny-scripts-reconfig"
        | "sentinel-user"
        | "sentinel-pass"
        | "resolve-hostnames"
        | "announce-hostnames" => None,
        _ => return Err(format!("unknown directive `sentinel {directive}`")),
    };
    let Some(count) = per_master else {
        if a.len() != 1 {
            return Err(format!("`sentinel {directive}` takes one argument"));
        }
        match directive.as_str() {
            "sentinel-user" | "sentinel-pass" => notes.sentinel_auth = true,
            "announce-ip" | "announce-port" | "resolve-hostnames" | "announce-hostnames" => {
                notes.announce.insert(directive);
            }
            _ => {}
        }
        return Ok(());
    };
    if a.len() != count + 1 {
        return Err(format!(
            "`sentinel {directive}` takes <master-name> and {count} more argument(s)"
        ));
    }
    let Some(m) = masters.iter_mut().find(|m| m.name == a[0]) else {
        return Err(format!(
            "`sentinel {directive}` names {:?}, which no `sentinel monitor` line declares",
            a[0]
        ));
    };
    let v = &a[1];
    match directive.as_str() {
        "down-after-milliseconds" => m.down_after_ms = Some(positive(v, &directive)?),
        "failover-timeout" => m.failover_timeout_ms = Some(positive(v, &directive)?),
        "parallel-syncs" => {
            let n = positive(v, &directive)?;
            m.parallel_syncs = Some(u32::try_from(n).map_err(|_| "parallel-syncs too large")?);
        }
        "auth-pass" => m.auth_pass = Some(v.clone()),
        "auth-user" => m.auth_user = Some(v.clone()),
        "known-slave" | "known-replica" => {
            let r = address(v, &a[2])?;
            if r != m.addr && !m.replicas.contains(&r) {
                m.replicas.push(r);
            }
        }
        "rename-command" => {
            if m.renames.iter().any(|(c, _)| c.eq_ignore_ascii_case(v)) {
                return Err("same command renamed multiple times with rename-command".into());
            }
            m.renames.push((v.to_ascii_uppercase(), a[2].clone()));
        }
        "notification-script" | "client-reconfig-script" => {
            notes.scripts.insert(format!("{directive} of {:?}", m.name));
        }
        "master-reboot-down-after-period" => {
            notes.reboot_down_after.insert(m.name.clone());
        }
        // config-epoch, leader-epoch, known-sentinel: the Redis sentinels' own state.
        _ => {}
    }
    Ok(())
}

/// A directive of the sentinel process itself (not `sentinel ...`).
fn server_line(notes: &mut Notes, directive: &str, argv: &[String]) -> Result<(), String> {
    let word = directive
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && directive
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !word {
        return Err(format!("{:?} is not a Redis config directive", argv[0]));
    }
    match directive {
        "include" => Err(
            "`include` is not followed: import the included file separately (or inline it)".into(),
        ),
        "port" => {
            notes.port = argv.get(1).cloned();
            Ok(())
        }
        "requirepass" => {
            notes.requirepass = true;
            Ok(())
        }
        _ => {
            notes.server.insert(directive.to_string());
            Ok(())
        }
    }
}

/// A TOML string literal.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A duration as the config writes it (`"30s"`, `"1500ms"`).
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("\"{}s\"", ms / 1000)
    } else {
        format!("\"{ms}ms\"")
    }
}

fn render(file: &str, masters: &[Master], notes: &Notes) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Converted from the Redis Sentinel config {file:?} by `vigil sentinel --import-redis-sentinel`."
    );
    o.push_str(
        "# Add these [[groups]] to every Vigil sentinel's config (see config/sentinel.toml).\n\
         # down_after / failover_timeout the file left at Redis Sentinel's defaults (30s, 3m)\n\
         # are written out: Vigil's own defaults are 1s and 10s.\n\
         #\n\
         # Not carried over:\n\
         # - the Redis sentinels themselves (known-sentinel, myid, current/config/leader-epoch):\n\
         #   Vigil's sentinels form a Raft group; give each its `id`, `peers` and the cluster `token`.\n",
    );
    if let Some(p) = &notes.port {
        let _ = writeln!(
            o,
            "# - port {}: where clients reached this sentinel; set `resp` (e.g. \"0.0.0.0:{}\") in each\n\
             #   Vigil sentinel's config so they keep reaching it with the same Sentinel protocol.",
            p.escape_debug(),
            p.escape_debug()
        );
    }
    if notes.requirepass {
        o.push_str("# - requirepass: the sentinel's own client password; set `password` in each sentinel's config.\n");
    }
    if notes.sentinel_auth {
        o.push_str("# - sentinel-user / sentinel-pass: Vigil's sentinels authenticate each other with the cluster `token`.\n");
    }
    for s in &notes.scripts {
        let _ = writeln!(
            o,
            "# - {s}: Vigil runs no scripts; follow `vigil ctl events` or the WatchTopology stream."
        );
    }
    for m in &notes.reboot_down_after {
        let _ = writeln!(
            o,
            "# - master-reboot-down-after-period of {:?}: Vigil has no such setting.",
            m
        );
    }
    if !notes.announce.is_empty() {
        let names: Vec<&str> = notes.announce.iter().map(String::as_str).collect();
        let _ = writeln!(
            o,
            "# - sentinel {}: a Vigil sentinel announces its `resp` address; hostnames are always accepted.",
            names.join(", ")
        );
    }
    if !notes.server.is_empty() {
        let names: Vec<&str> = notes.server.iter().map(String::as_str).collect();
        let _ = writeln!(
            o,
            "# - the Redis sentinel process's own settings: {}.",
            names.join(", ")
        );
    }
    for m in masters {
        o.push('\n');
        o.push_str("[[groups]]\n");
        let _ = writeln!(o, "name = {}", quote(&m.name));
        o.push_str("driver = \"resp\"\n");
        let _ = writeln!(o, "quorum = {}", m.quorum);
        let _ = writeln!(
            o,
            "down_after = {}",
            duration(m.down_after_ms.unwrap_or(REDIS_DOWN_AFTER_MS))
        );
        let _ = writeln!(
            o,
            "failover_timeout = {}",
            duration(m.failover_timeout_ms.unwrap_or(REDIS_FAILOVER_TIMEOUT_MS))
        );
        let _ = writeln!(o, "parallel_syncs = {}", m.parallel_syncs.unwrap_or(1));
        if let Some(u) = &m.auth_user {
            let _ = writeln!(o, "auth_user = {}", quote(u));
        }
        if let Some(p) = &m.auth_pass {
            let _ = writeln!(o, "auth_pass = {}", quote(p));
        }
        if !m.renames.is_empty() {
            let pairs: Vec<String> = m
                .renames
                .iter()
                .map(|(from, to)| format!("{} = {}", key(from), quote(to)))
                .collect();
            let _ = writeln!(o, "rename_commands = {{ {} }}", pairs.join(", "));
        }
        o.push_str("nodes = [\n");
        for (i, a) in std::iter::once(&m.addr).chain(&m.replicas).enumerate() {
            let a = quote(&a.to_string());
            let _ = write!(o, "  {{ name = {a}, data = {a} }},");
            o.push_str(if i == 0 {
                " # the master when the file was written\n"
            } else {
                "\n"
            });
        }
        o.push_str("]\n");
    }
    o
}
