//! NodeAdmin requests validated into domain values, shared by every NodeAdmin server (`vigil
//! node` and `vigil agent`), so both refuse the same malformed calls with the same words.

use std::time::Duration;

use tonic::Status;

use crate::node::{ClientType, ReplicateFromRequest};

/// Longest lease a single renewal may grant.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// A request's epoch, validated: proto3 sends 0 for "unset", which is never a real epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub u64);

impl TryFrom<u64> for Epoch {
    type Error = Status;

    fn try_from(e: u64) -> Result<Epoch, Status> {
        if e == 0 {
            return Err(Status::invalid_argument("epoch must be at least 1"));
        }
        Ok(Epoch(e))
    }
}

/// A validated `ReplicateFrom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The epoch of the call.
    pub epoch: Epoch,
    /// The master's host.
    pub host: String,
    /// The master's data port.
    pub port: u16,
    /// The master's TLS data address apart from `host:port`, if it has one: where a replica
    /// with `tls_replication` connects.
    pub tls: Option<(String, u16)>,
}

impl TryFrom<ReplicateFromRequest> for Target {
    type Error = Status;

    fn try_from(r: ReplicateFromRequest) -> Result<Target, Status> {
        let port = address("host", &r.host, "port", r.port)?;
        let tls = if r.tls_host.is_empty() && r.tls_port == 0 {
            None
        } else {
            Some((
                r.tls_host.clone(),
                address("tls_host", &r.tls_host, "tls_port", r.tls_port)?,
            ))
        };
        Ok(Target {
            epoch: Epoch::try_from(r.epoch)?,
            host: r.host,
            port,
            tls,
        })
    }
}

impl Target {
    /// Where a replica connects: the TLS address when it replicates over TLS and the master
    /// has one, else `host:port` (which is then the master's TLS port, as in Redis).
    pub fn address(&self, tls_replication: bool) -> (String, u16) {
        match &self.tls {
            Some((h, p)) if tls_replication => (h.clone(), *p),
            _ => (self.host.clone(), self.port),
        }
    }
}

/// Checks a host and port pair of a request; returns the port.
fn address(host_key: &str, host: &str, port_key: &str, port: u32) -> Result<u16, Status> {
    if host.is_empty() || host.len() > 255 || host.contains(char::is_whitespace) {
        return Err(Status::invalid_argument(format!(
            "{host_key} must be a non-empty host name or address"
        )));
    }
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Status::invalid_argument(format!("{port_key} must be 1..65535, got {port}")))
}

/// When a lease of `ttl_ms` counted from the server clock reading `since_ms` (0: now) ends,
/// as a server clock reading, given the clock reads `now_ms`. Refuses a ttl of 0 or above
/// [`MAX_LEASE`], and a `since_ms` ahead of the clock (the server restarted since the caller
/// read it).
pub fn lease_end_ms(ttl_ms: u64, since_ms: u64, now_ms: u64) -> Result<u64, Status> {
    let ttl = Duration::from_millis(ttl_ms);
    if ttl.is_zero() || ttl > MAX_LEASE {
        return Err(Status::invalid_argument(format!(
            "lease ttl must be between 1 ms and {} s, got {ttl_ms} ms",
            MAX_LEASE.as_secs()
        )));
    }
    if since_ms > now_ms {
        return Err(Status::invalid_argument(format!(
            "since_node_ms {since_ms} is ahead of the node clock ({now_ms}): the node restarted; read GetStatus again"
        )));
    }
    let since = if since_ms == 0 { now_ms } else { since_ms };
    Ok(since + ttl_ms)
}

/// The client type a `KillClients` names, as Redis' `CLIENT KILL TYPE` spells it.
pub fn client_type(t: i32) -> Result<&'static str, Status> {
    match ClientType::try_from(t) {
        Ok(ClientType::Normal) => Ok("normal"),
        Ok(ClientType::Pubsub) => Ok("pubsub"),
        _ => Err(Status::invalid_argument("type must be NORMAL or PUBSUB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        assert!(Epoch::try_from(0).is_err());
        assert_eq!(Epoch::try_from(3).unwrap(), Epoch(3));
        let req = |host: &str, port| ReplicateFromRequest {
            epoch: 2,
            host: host.into(),
            port,
            ..Default::default()
        };
        for (i, (host, port, ok)) in [
            ("10.0.0.1", 6379, true),
            ("", 6379, false),
            ("a b", 6379, false),
            ("h", 0, false),
            ("h", 70000, false),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(Target::try_from(req(host, port)).is_ok(), ok, "#{i}");
        }
        // A TLS address, when given, is checked as strictly; replicas pick by their setting.
        let tls = |tls_host: &str, tls_port| ReplicateFromRequest {
            tls_host: tls_host.into(),
            tls_port,
            ..req("10.0.0.1", 6379)
        };
        assert!(Target::try_from(tls("", 6380)).is_err());
        assert!(Target::try_from(tls("10.0.0.1", 0)).is_err());
        let t = Target::try_from(tls("10.0.0.2", 6380)).unwrap();
        assert_eq!(t.address(true), ("10.0.0.2".to_string(), 6380));
        assert_eq!(t.address(false), ("10.0.0.1".to_string(), 6379));
        let plain = Target::try_from(req("10.0.0.1", 6379)).unwrap();
        assert_eq!(plain.address(true), ("10.0.0.1".to_string(), 6379));
        assert_eq!(lease_end_ms(500, 0, 1000).unwrap(), 1500);
        assert_eq!(lease_end_ms(500, 900, 1000).unwrap(), 1400);
        assert!(lease_end_ms(0, 0, 1000).is_err());
        assert!(lease_end_ms(500, 1001, 1000).is_err());
        assert!(lease_end_ms(3_600_001, 0, 1).is_err());
        assert_eq!(client_type(ClientType::Pubsub as i32).unwrap(), "pubsub");
        assert!(client_type(0).is_err());
    }
}
