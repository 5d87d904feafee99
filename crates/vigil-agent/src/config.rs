//! Agent configuration: a TOML file (`config/agent.toml`). Unknown keys are errors; durations
//! are humantime strings (`"100ms"`, `"5s"`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::AgentError;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The server's data address (`host:port`, loopback), as the sentinels and clients know it.
    pub server: String,
    /// ACL user the agent logs in as (empty: `default`).
    #[serde(default)]
    pub auth_user: String,
    /// Its password (the server's `requirepass` for `default`; empty: none).
    #[serde(default)]
    pub auth_pass: String,
    /// Redis' `rename-command` map of the server (`CONFIG = "XCONFIG"`).
    #[serde(default)]
    pub rename_commands: HashMap<String, String>,
    /// The agent's own directory (the persisted epoch; the server's start-up socket).
    pub dir: PathBuf,
    /// Start and own the server with this command line (the server dies with the agent).
    /// Empty: attach to a server already running at `server`.
    #[serde(default)]
    pub exec: Vec<String>,
    /// Failover preference reported to the sentinels: lower is preferred, 0 = never promote.
    /// (The server's own `replica-priority` is not used.)
    #[serde(default = "defaults::priority")]
    pub priority: u32,
    /// Best-effort synchronous mode: the server refuses writes unless this many replicas are
    /// connected within `min_replicas_max_lag` (`min-replicas-to-write`), and reports the
    /// offset they acknowledged so the sentinels promote none below it (0: off).
    #[serde(default)]
    pub sync_replicas: u32,
    /// `min-replicas-max-lag` (whole seconds, at least 1).
    #[serde(default = "defaults::max_lag", deserialize_with = "duration")]
    pub min_replicas_max_lag: Duration,
    /// How long one call to the server may take.
    #[serde(default = "defaults::timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How often the agent checks its server (role, restart) and re-asserts the pause.
    #[serde(default = "defaults::check", deserialize_with = "duration")]
    pub check_interval: Duration,
    /// Serve `/metrics` and the health checks (`/primary`, `/replica`, `/health`...) over
    /// HTTP on this address (`"127.0.0.1:9121"`; empty: not served).
    #[serde(default)]
    pub metrics: String,
    /// The NodeAdmin endpoint.
    #[serde(default)]
    pub admin: AdminConfig,
}

/// `[admin]`: the NodeAdmin gRPC endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to listen on.
    pub bind: String,
    /// Port (0: any free port, printed at start-up).
    pub port: u16,
    /// The token every call must carry.
    pub token: String,
    /// A file whose first line is the token, instead of `token`.
    pub token_file: PathBuf,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: "127.0.0.1".into(),
            port: 16379,
            token: String::new(),
            token_file: PathBuf::new(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn priority() -> u32 {
        100
    }
    pub fn max_lag() -> Duration {
        Duration::from_secs(10)
    }
    pub fn timeout() -> Duration {
        Duration::from_millis(500)
    }
    pub fn check() -> Duration {
        Duration::from_millis(50)
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration {s:?} ({e}); use e.g. \"500ms\" or \"5s\""
        ))
    })
}

impl AgentConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
            file: file.clone(),
            message: format!("cannot read it: {e}"),
        })?;
        let mut config: AgentConfig = toml::from_str(&text).map_err(|e| AgentError::Config {
            file: file.clone(),
            message: e.to_string(),
        })?;
        config.resolve_token(&file)?;
        config.validate(&file)?;
        Ok(config)
    }

    fn resolve_token(&mut self, file: &str) -> Result<(), AgentError> {
        let err = |message: String| AgentError::Config {
            file: file.to_string(),
            message,
        };
        if self.admin.token_file.as_os_str().is_empty() {
            return Ok(());
        }
        if !self.admin.token.is_empty() {
            return Err(err("set admin.token or admin.token_file, not both".into()));
        }
        let text = std::fs::read_to_string(&self.admin.token_file).map_err(|e| {
            err(format!(
                "admin.token_file {}: {e}",
                self.admin.token_file.display()
            ))
        })?;
        self.admin.token = text.lines().next().unwrap_or_default().trim().to_string();
        Ok(())
    }

    /// Checks values that parse but cannot work, naming the key.
    pub fn validate(&self, file: &str) -> Result<(), AgentError> {
        let err = |message: String| {
            Err(AgentError::Config {
                file: file.to_string(),
                message,
            })
        };
        if let Err(e) = self.server.parse::<vigil_base::HostPort>() {
            return err(format!("server: {e}"));
        }
        if self.admin.token.is_empty() {
            return err(
                "admin.token (or admin.token_file) is required: the sentinels present it on every call"
                    .into(),
            );
        }
        if self.admin.token.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return err("admin.token must be printable ASCII".into());
        }
        if self.exec.first().is_some_and(|p| p.is_empty()) {
            return err("exec: the first element is the program to run".into());
        }
        if self.min_replicas_max_lag < Duration::from_secs(1) {
            return err(
                "min_replicas_max_lag: Redis counts it in whole seconds; at least \"1s\"".into(),
            );
        }
        if self.timeout.is_zero() || self.check_interval.is_zero() {
            return err("timeout and check_interval must be above zero".into());
        }
        for (from, to) in &self.rename_commands {
            if from.is_empty() || to.contains(char::is_whitespace) {
                return err(format!("rename_commands: bad entry {from:?} = {to:?}"));
            }
        }
        Ok(())
    }

    /// The server's data port.
    pub fn server_port(&self) -> u16 {
        self.server
            .parse::<vigil_base::HostPort>()
            .map_or(0, |h| h.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, String> {
        let c: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate("t.toml").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn the_example_parses() {
        let text = include_str!("../../../config/agent.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.server_port(), 6379);
        assert_eq!(c.priority, 100);
    }

    #[test]
    fn errors_name_the_key() {
        let base = "server = \"127.0.0.1:6379\"\ndir = \"d\"\n";
        for (i, (extra, want)) in [
            ("", "admin.token"),
            ("[admin]\ntoken = \"t\"\nport = 70000\n", "port"),
            ("bogus = 1\n[admin]\ntoken = \"t\"\n", "bogus"),
            (
                "min_replicas_max_lag = \"10ms\"\n[admin]\ntoken = \"t\"\n",
                "min_replicas_max_lag",
            ),
            ("exec = [\"\"]\n[admin]\ntoken = \"t\"\n", "exec"),
            (
                "timeout = \"soon\"\n[admin]\ntoken = \"t\"\n",
                "invalid duration",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(want), "#{i}: {e}");
        }
        let e = parse("server = \"nope\"\ndir = \"d\"\n[admin]\ntoken = \"t\"\n").unwrap_err();
        assert!(e.contains("server"), "{e}");
    }
}
