//! `host:port` addresses as every Vigil config, record and API spells them: a hostname, an
//! IPv4 address, or an IPv6 address in brackets (`[::1]:6379`), then a port. One parser with
//! one set of rules, so a node the config accepts is an address the sentinels can dial and
//! clients can read back.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// Why a string is not a `host:port` address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddrError {
    /// No `:port` at the end.
    #[error("{0:?} has no port: write host:port, with IPv6 addresses in brackets ([::1]:6379)")]
    NoPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("{0:?} has no valid port (a number from 0 to 65535)")]
    BadPort(String),
    /// The host is empty or not a hostname / IP address.
    #[error("{0:?} has no valid host: use a hostname, an IPv4 address or a bracketed IPv6 address")]
    BadHost(String),
}

/// A host (hostname, IPv4 or IPv6 address) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// Builds one from parts; `host` is a hostname or an IP address, without brackets.
    pub fn new(host: &str, port: u16) -> Result<HostPort, AddrError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !valid_host(host) {
            return Err(AddrError::BadHost(host.to_string()));
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }

    /// The host, without brackets (what Sentinel replies carry as the `ip` field).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    if h.parse::<IpAddr>().is_ok() {
        return true;
    }
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl FromStr for HostPort {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<HostPort, AddrError> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| AddrError::BadHost(s.to_string()))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(AddrError::BadHost(s.to_string()));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddrError::NoPort(s.to_string()))?;
            (host, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| AddrError::NoPort(s.to_string()))?;
            // An IPv6 address without brackets cannot be told from its port.
            if host.contains(':') {
                return Err(AddrError::BadHost(s.to_string()));
            }
            (host, port)
        };
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrError::BadPort(s.to_string()));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| AddrError::BadPort(s.to_string()))?;
        HostPort::new(host, port).map_err(|_| AddrError::BadHost(s.to_string()))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for (i, (text, host, port)) in [
            ("127.0.0.1:6379", "127.0.0.1", 6379),
            ("redis-0.redis.svc:26379", "redis-0.redis.svc", 26379),
            ("[::1]:7000", "::1", 7000),
            ("localhost:0", "localhost", 0),
        ]
        .into_iter()
        .enumerate()
        {
            let a: HostPort = text.parse().unwrap_or_else(|e| panic!("#{i}: {e}"));
            assert_eq!((a.host(), a.port()), (host, port), "#{i}");
            assert_eq!(a.to_string(), text, "#{i}");
        }
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (i, (text, want)) in [
            ("127.0.0.1", AddrError::NoPort("127.0.0.1".into())),
            ("127.0.0.1:", AddrError::BadPort("127.0.0.1:".into())),
            (
                "127.0.0.1:65536",
                AddrError::BadPort("127.0.0.1:65536".into()),
            ),
            ("127.0.0.1:+1", AddrError::BadPort("127.0.0.1:+1".into())),
            (":6379", AddrError::BadHost(":6379".into())),
            ("::1:6379", AddrError::BadHost("::1:6379".into())),
            ("[::1]", AddrError::NoPort("[::1]".into())),
            ("[nothost]:1", AddrError::BadHost("[nothost]:1".into())),
            ("a b:1", AddrError::BadHost("a b:1".into())),
            ("host..x:1", AddrError::BadHost("host..x:1".into())),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(text.parse::<HostPort>(), Err(want), "#{i}");
        }
        assert!(
            AddrError::NoPort("x".into())
                .to_string()
                .contains("host:port")
        );
    }
}
