//! The keeper: one task that watches the server and keeps its writes paused whenever the
//! agent's authority does not allow them. It wakes every `check_interval` (to read `INFO`: a
//! restart or a drifted role), when the authority changes, and at the instant the lease runs
//! out, when it pauses the server's writes ([`crate::authority::margin`] before the lease
//! ends, so the pause is in force when the sentinels count the lease over).

use std::sync::Arc;
use std::time::Instant;

use crate::agent::{Agent, Observed, REASSERT};

/// Reads `INFO` (on the query connection, never queued ahead of a pause): a restart, a
/// drifted role.
async fn check(agent: &Agent, unreachable_logged: &mut bool) {
    match agent.query.info().await {
        Ok(info) => {
            agent.seen.lock().up = true;
            if *unreachable_logged {
                tracing::info!("server reachable again");
                *unreachable_logged = false;
            }
            if let Observed::New { .. } = agent.observe(&info)
                && let Err(e) = agent.set_up().await
            {
                tracing::warn!(error = %e, "server not set up; retrying");
                agent.seen.lock().run_id.clear();
            }
            if let Err(e) = agent.reconcile().await {
                tracing::warn!(error = %e, "server not pointed at its master");
            }
        }
        Err(e) => {
            agent.seen.lock().up = false;
            if !*unreachable_logged {
                tracing::warn!(error = %e, "server unreachable");
                *unreachable_logged = true;
            }
        }
    }
}

/// Runs until the agent shuts down.
pub async fn run(agent: Arc<Agent>) {
    let mut next_check = Instant::now();
    let mut unreachable_logged = false;
    loop {
        let now = Instant::now();
        if now >= next_check {
            next_check = now + agent.config.check_interval;
            // A slow answer (a stopped or stuck server) must not hold up the pause at the
            // lease's end: the check gives way to it (cancelling a call is safe).
            let lapse = agent.authority.lock().writes_until.filter(|&t| t > now);
            let until = lapse.unwrap_or(now + agent.config.timeout * 2);
            tokio::select! {
                biased;
                _ = check(&agent, &mut unreachable_logged) => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
        // A lapse the server must confirm before the lease ends: an owned server that does
        // not (stopped, stuck) is killed then, so it can never take a write after its lease
        // (`Agent::stonith`). Armed only while the lease still runs.
        let now = Instant::now();
        let lease_until = agent.authority.lock().lease_until;
        let kill_at = lease_until
            .filter(|&t| t > now)
            .filter(|_| agent.owns_server() && !agent.open(now) && !agent.pause_confirmed());
        let enforced = match kill_at {
            Some(t) => {
                tokio::select! {
                    biased;
                    r = agent.enforce() => r,
                    _ = tokio::time::sleep_until(t.into()) => {
                        agent.stonith();
                        Err(crate::stock::StockError::Unreachable {
                            addr: agent.config.server.clone(),
                            reason: "killed: no write pause before the lease ended".into(),
                        })
                    }
                }
            }
            None => agent.enforce().await,
        };
        let open = match enforced {
            Ok(open) => Some(open),
            Err(e) => {
                tracing::debug!(error = %e, "pause not applied");
                None
            }
        };
        let mut wake = next_check;
        match open {
            Some(true) => {
                if let Some(t) = agent.authority.lock().writes_until {
                    wake = wake.min(t);
                }
            }
            Some(false) => wake = wake.min(Instant::now() + REASSERT),
            None => {}
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = agent.changed.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}
