//! Client discovery over the Redis Sentinel protocol: the RESP endpoint every sentinel serves
//! (default port 26379), so client libraries written for Redis Sentinel find the master
//! unchanged.
//!
//! - [`commands`]: the command table (connection commands shared with the node, `ROLE`, `INFO`,
//!   `SENTINEL`).
//! - [`subcommands`]: the `SENTINEL …` subcommand table.
//! - [`records`]: the master / replica / sentinel records of `SENTINEL MASTERS` and friends.
//! - [`publish`]: events published on channels named after them, in Redis' payload formats.
//!
//! Answers come from this sentinel's applied copy of the committed state, so every sentinel
//! gives the same answer. A sentinel that knows no Raft leader (cut off from the majority)
//! says so: its records carry `s_down,disconnected` and `GET-MASTER-ADDR-BY-NAME` answers null,
//! which makes every client library ask the next sentinel instead of trusting a stale master.

pub mod commands;
pub mod publish;
pub mod records;
pub mod subcommands;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use vigil_resp::builtin::precheck;
use vigil_resp::command::CommandTable;
use vigil_resp::{Conn, Service};

use crate::controller::Conditions;
use crate::driver::Handle;
use crate::monitor::Health;
use crate::nodes::NodeAdmin;
use crate::ops::Ops;

pub use commands::Handler;

/// The RESP endpoint's service.
pub struct Discovery {
    /// The Raft driver (applied state, status).
    pub raft: Handle,
    /// This sentinel's probes.
    pub health: Arc<Health>,
    /// The operator's operations (`SENTINEL MONITOR`, `REMOVE`, `SET`, `FAILOVER`).
    pub ops: Ops,
    /// What the leader is doing about each group.
    pub conditions: Conditions,
    /// This sentinel's id, 40 hex digits as Redis spells run ids (`SENTINEL MYID`).
    pub myid: String,
    /// The address this endpoint listens on.
    pub address: std::net::SocketAddr,
    /// When the process started (`INFO uptime`).
    pub started: Instant,
    table: CommandTable<Handler>,
}

/// A client connection of the endpoint.
pub type Client = Conn<LastLookup>;

/// The last `GET-MASTER-ADDR-BY-NAME` answer of a connection, encoded, valid while the
/// driver's [`Handle::version`] is the one stored with it. Clients ask for the same group over
/// and over (it is the hot path of every client library); kept per connection, a repeated
/// lookup takes no lock and copies nothing but the reply bytes.
#[derive(Debug, Default)]
pub struct LastLookup {
    version: Option<u64>,
    group: Bytes,
    reply: Bytes,
}

impl Discovery {
    /// The service for sentinel `id` listening on `address`.
    pub fn new(
        raft: Handle,
        health: Arc<Health>,
        nodes: Arc<dyn NodeAdmin>,
        conditions: Conditions,
        address: std::net::SocketAddr,
    ) -> Discovery {
        let id = raft.status.read().id;
        Discovery {
            ops: Ops {
                raft: raft.clone(),
                nodes,
                budget: crate::driver::PROPOSAL_BUDGET,
            },
            raft,
            health,
            conditions,
            myid: run_id(id),
            address,
            started: Instant::now(),
            table: commands::table(),
        }
    }

    /// Whether this sentinel is in touch with a Raft leader (and so with the majority).
    pub fn connected(&self) -> bool {
        self.raft.status.read().leader != 0
    }
}

/// Sentinel `id` as a 40-hex-digit run id.
pub fn run_id(id: u64) -> String {
    format!("{id:040x}")
}

impl Service for Discovery {
    type State = LastLookup;

    async fn call(&self, conn: &mut Client, args: Vec<Bytes>) {
        let entry = self.table.get(&args[0]);
        if let Err(r) = precheck(conn, entry.map(|e| &e.0), &args) {
            conn.reply(r);
            return;
        }
        let Some(&(_, handler)) = entry else {
            return;
        };
        let args = vigil_resp::Args::new(args);
        match handler {
            Handler::Conn(f) => f(conn, args),
            Handler::Sentinel(f) => f(self, conn, args),
            Handler::Subcommands => {
                if let Some((later, rest)) = subcommands::sentinel(self, conn, args) {
                    // Boxed by the subcommand: the Raft calls' future would otherwise make
                    // every request's future large.
                    let r = later(self, rest).await;
                    conn.reply(r);
                }
            }
        }
    }
}
