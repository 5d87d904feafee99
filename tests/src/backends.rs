//! One group of three storage nodes under three sentinels, whatever the nodes are: `vigil
//! node`s ([`Managed`]), stock `redis-server`s owned by `vigil agent`s ([`Stock`]), or stock
//! `redis-server`s managed agentless ([`Agentless`]), so a suite (the client libraries,
//! redis-rs discovery) runs once against each backend.

use std::time::Duration;

use crate::agentless::{Agentless, start_agentless};
use crate::agents::{Stock, start_stock};
use crate::managed::{Managed, master_and_followers_at, master_of, start_managed};

/// What the group's nodes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `vigil node`.
    Vigil,
    /// `redis-server` owned by `vigil agent`.
    RedisServer,
    /// `redis-server` managed over RESP (`driver = "resp"`).
    RedisResp,
}

/// A running group.
pub enum Group {
    /// `vigil node`s.
    Vigil(Managed),
    /// Agents and their servers.
    RedisServer(Stock),
    /// Stock servers, agentless.
    RedisResp(Agentless),
}

impl Group {
    /// Starts a group of `backend` with `down_after`.
    pub fn start(backend: Backend, down_after: &str) -> Group {
        match backend {
            Backend::Vigil => Group::Vigil(start_managed(down_after)),
            Backend::RedisServer => Group::RedisServer(start_stock(down_after)),
            Backend::RedisResp => Group::RedisResp(start_agentless(down_after, &[], "")),
        }
    }

    /// The sentinels' gRPC ports.
    pub fn ports(&self) -> &[u16] {
        match self {
            Group::Vigil(m) => &m.ports,
            Group::RedisServer(s) => &s.ports,
            Group::RedisResp(a) => &a.ports,
        }
    }

    /// The sentinels' Redis Sentinel protocol ports.
    pub fn resp_ports(&self) -> Vec<u16> {
        let s = match self {
            Group::Vigil(m) => &m.sentinels,
            Group::RedisServer(s) => &s.sentinels,
            Group::RedisResp(a) => &a.sentinels,
        };
        s.iter().map(|s| s.resp_port()).collect()
    }

    /// The master at `min_epoch` or later.
    pub async fn master(
        &self,
        min_epoch: u64,
        within: Duration,
    ) -> vigil_proto::sentinel::MasterInfo {
        master_of(self.ports(), min_epoch, within).await
    }

    /// The master and its index, once both others follow it with their links up.
    pub async fn master_and_followers(&self) -> (vigil_proto::sentinel::MasterInfo, usize) {
        match self {
            Group::Vigil(m) => m.master_and_followers().await,
            Group::RedisServer(s) => s.master_and_followers().await,
            Group::RedisResp(a) => {
                let data: Vec<u16> = a.servers.iter().map(|s| s.port).collect();
                master_and_followers_at(&a.ports, &data).await
            }
        }
    }

    /// SIGKILLs node `i`'s data server (a `vigil node`; a `redis-server`, which its agent
    /// restarts).
    pub fn kill(&mut self, i: usize) {
        match self {
            Group::Vigil(m) => m.nodes[i].kill9(),
            Group::RedisServer(s) => signal(s.agents[i].server_pid(), libc::SIGKILL),
            Group::RedisResp(a) => a.servers[i].kill9(),
        }
    }

    /// SIGSTOPs node `i`'s data server.
    pub fn pause(&mut self, i: usize) {
        match self {
            Group::Vigil(m) => m.nodes[i].pause(),
            Group::RedisServer(s) => {
                let pid = s.agents[i].server_pid();
                s.stopped.push(pid);
                signal(pid, libc::SIGSTOP);
            }
            Group::RedisResp(a) => a.servers[i].signal(libc::SIGSTOP),
        }
    }

    /// SIGCONTs node `i`'s data server.
    pub fn resume(&mut self, i: usize) {
        match self {
            Group::Vigil(m) => m.nodes[i].signal(libc::SIGCONT),
            Group::RedisServer(s) => {
                for pid in s.stopped.drain(..) {
                    signal(pid, libc::SIGCONT);
                }
            }
            Group::RedisResp(a) => a.servers[i].signal(libc::SIGCONT),
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a redis-server this suite's agent started (it lives until the agent
    // restarts it, which only happens after it exited).
    unsafe { libc::kill(pid, sig) };
}
