//! The agent's side of the operations endpoint (`metrics = "host:port"`, served by
//! [`vigil_proto::ops`]): whether the supervised server answers (`redis_up`, as
//! redis_exporter names it), the role it runs as, and what the agent enforces on it (the
//! role the sentinels assigned, epoch, fence, lease); plus the health checks a load
//! balancer asks (`/primary`: the server is master and may take writes under a valid lease;
//! `/replica`: it runs as a replica; `/health`, `/liveness`, `/readiness`).
//!
//! Everything is read from what the keeper last observed, so a scrape never waits on the
//! server.

use std::sync::Arc;
use std::time::Instant;

use vigil_proto::ops::{Check, OpsSource, Text, json_str};

use crate::agent::Agent;
use crate::authority::Assigned;

/// The agent as an [`OpsSource`].
pub struct AgentOps {
    /// The agent whose server is reported.
    pub agent: Arc<Agent>,
}

/// A snapshot of what the endpoint reports.
struct View {
    up: bool,
    role: &'static str,
    assigned: &'static str,
    epoch: u64,
    fenced: bool,
    lease_ms: u64,
    writable: bool,
}

impl AgentOps {
    fn view(&self) -> View {
        let now = Instant::now();
        let (up, master, run) = {
            let s = self.agent.seen.lock();
            (s.up, s.master, !s.run_id.is_empty())
        };
        let a = self.agent.authority.lock().clone();
        View {
            up,
            role: match (up && run, master) {
                (false, _) => "unknown",
                (true, true) => "master",
                (true, false) => "slave",
            },
            assigned: match a.role {
                Assigned::Master => "master",
                Assigned::Replica { .. } => "slave",
                Assigned::Unassigned => "none",
            },
            epoch: a.epoch,
            fenced: a.fenced,
            lease_ms: a.lease_remaining(now).as_millis() as u64,
            writable: up && a.open(now, master),
        }
    }
}

impl OpsSource for AgentOps {
    fn metrics(&self) -> String {
        let v = self.view();
        let mut t = Text::new();
        let port = self.agent.config.server_port().to_string();
        t.gauge(
            "redis_up",
            "Whether the supervised server answered the agent's last check",
            v.up as u8 as f64,
        );
        t.family(
            "redis_instance_info",
            "gauge",
            "Information about the Redis instance",
        );
        t.sample(
            "redis_instance_info",
            &[
                ("role", v.role),
                ("tcp_port", &port),
                ("vigil_version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        );
        t.gauge(
            "vigil_agent_uptime_in_seconds",
            "Seconds since the agent started",
            self.agent.started.elapsed().as_secs() as f64,
        );
        t.family(
            "vigil_agent_assigned_role",
            "gauge",
            "The role the sentinels assigned (label role: master, slave, none)",
        );
        t.sample("vigil_agent_assigned_role", &[("role", v.assigned)], 1.0);
        t.gauge(
            "vigil_epoch",
            "The highest epoch the agent accepted",
            v.epoch as f64,
        );
        t.gauge(
            "vigil_fenced",
            "Whether the server is fenced",
            v.fenced as u8 as f64,
        );
        t.gauge(
            "vigil_lease_remaining_seconds",
            "Write lease left (0: none or expired)",
            v.lease_ms as f64 / 1000.0,
        );
        t.gauge(
            "vigil_writable",
            "Whether the agent lets the server take writes now",
            v.writable as u8 as f64,
        );
        t.finish()
    }

    fn check(&self, path: &str, _query: &str) -> Option<Check> {
        let v = self.view();
        let pass = match path {
            "/primary" | "/master" | "/read-write" => v.role == "master" && v.writable,
            "/replica" => v.role == "slave" && v.assigned == "slave",
            "/read-only" => v.up && v.role != "unknown",
            "/liveness" => true,
            "/health" | "/readiness" => v.up,
            _ => return None,
        };
        Some(Check {
            status: if pass { 200 } else { 503 },
            body: format!(
                "{{\"state\":{},\"role\":{},\"assigned\":{},\"epoch\":{},\"fenced\":{},\"lease_remaining_ms\":{},\"writable\":{}}}",
                json_str(if v.up { "running" } else { "unreachable" }),
                json_str(v.role),
                json_str(v.assigned),
                v.epoch,
                v.fenced,
                v.lease_ms,
                v.writable
            ),
        })
    }
}
