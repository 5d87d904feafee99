//! [`RespNodes`]: [`NodeAdmin`](super::NodeAdmin) for the stock `redis-server` / Valkey nodes
//! of `driver = "resp"` groups, over RESP at each node's data address (agentless mode), as
//! Redis Sentinel manages them: `INFO` for the status, `PING` for the probe, and every role
//! change as one `MULTI` / `REPLICAOF` / `CONFIG REWRITE` / `CLIENT KILL TYPE normal|pubsub` /
//! `EXEC` transaction (Redis Sentinel's `sentinelSendSlaveOf`; replies inside it are not
//! required to succeed except `REPLICAOF`'s, so a server without a config file still
//! changes role). A switchover is the server's own `FAILOVER TO host port TIMEOUT ms`.
//!
//! Invariants kept here:
//! - One connection per node ([`Server`]), logged in with the group's `auth_user` /
//!   `auth_pass`, commands renamed through its `rename_commands`; rebuilt when either changes
//!   in the committed state.
//! - **Epochs.** A stock server keeps none, so this sentinel reports one from what it saw
//!   ([`Mark`]): an incarnation of the server (its `run_id`) is at the group's committed epoch
//!   once this sentinel has seen it in the role the committed state gives it (master, or a
//!   replica of the committed master), or once this sentinel promoted / repointed / fenced it
//!   at an epoch; otherwise it reports what it last confirmed, below the group's epoch. A
//!   server that restarted as a master (new `run_id`) after this sentinel saw it reports 0
//!   until this sentinel promotes or repoints it: so a master that restarted (maybe empty)
//!   is not "serving at the group's epoch", and the controller fails over from it if it is
//!   behind its replicas instead of letting them resync from it. (A restarted replica is
//!   judged by whom it follows, like any replica.)
//! - **No lease.** `renew_lease` only keeps the master's write guard: `min-replicas-to-write`
//!   (the group's `sync_replicas`, at least 1, at most the replicas it has online when a
//!   sentinel last read its `INFO`) and `min-replicas-max-lag` (`down_after` in seconds, at
//!   least 2), so a master cut off from its replicas and the sentinels stops accepting writes
//!   on its own, while a master just promoted takes writes before its replicas are back.
//! - **Fence** is `CLIENT PAUSE <failover_timeout> WRITE`: the server's offset is final while
//!   it lasts; a later promotion or demotion lifts it (`CLIENT UNPAUSE`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis_protocol::resp2::types::BytesFrame;
use tonic::Status;
use vigil_agent::stock::{Access, Endpoint, Info, Server, StockError};
use vigil_proto::node::{
    FenceRequest, KillClientsRequest, NodeStatus, PromoteRequest, ReplicateFromRequest,
};

use super::HandOver;
use crate::state::{ClusterState, Driver, Group, NodeSpec};

/// Longest any one RESP exchange with a node may take (the callers' own deadlines are
/// shorter for probes).
const EXCHANGE: Duration = Duration::from_secs(1);
/// How often a hand-over in progress is looked at.
const HAND_OVER_POLL: Duration = Duration::from_millis(10);

/// What this sentinel confirmed about one incarnation of a stock server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The incarnation (`run_id`); empty: never seen.
    run_id: String,
    /// The highest epoch it was confirmed at.
    epoch: u64,
    /// Until when this sentinel's `CLIENT PAUSE … WRITE` holds its writes.
    paused_until: Option<Instant>,
    /// The incarnation the write guard (`min-replicas-to-write`) was set on, and its value.
    guarded: Option<(String, u32)>,
    /// Replicas the server reported online at the last `INFO` this sentinel read.
    online: u32,
}

impl Mark {
    /// Whether this sentinel's fence holds incarnation `run_id` now.
    fn paused(&self, run_id: &str, now: Instant) -> bool {
        self.run_id == run_id && self.paused_until.is_some_and(|t| now < t)
    }

    /// Records that this sentinel set incarnation `run_id` at `epoch` (a promotion, a
    /// repointing, a hand-over): the fence it may have set is lifted.
    fn set(&mut self, run_id: &str, epoch: u64) {
        if self.run_id != run_id {
            *self = Mark {
                run_id: run_id.to_string(),
                ..Mark::default()
            };
        }
        self.epoch = self.epoch.max(epoch);
        self.paused_until = None;
    }

    /// The epoch and fence to report for `node` of `g`, read as `info`; learns what the reading
    /// confirms (see the module doc).
    fn reckon(&mut self, g: &Group, node: &NodeSpec, info: &Info, now: Instant) -> (u64, bool) {
        if self.run_id.is_empty() || (self.run_id != info.run_id && !info.master) {
            // First seen, or a replica restarted: a replica's epoch only says whom it follows
            // (checked against the committed master below).
            *self = Mark {
                run_id: info.run_id.clone(),
                ..Mark::default()
            };
        } else if self.run_id != info.run_id {
            // A master restarted since this sentinel confirmed it (maybe empty): nothing is
            // known of this incarnation until this sentinel promotes or repoints it.
            return (0, false);
        }
        if in_role(g, node, info) {
            self.epoch = self.epoch.max(g.epoch);
        }
        (self.epoch, self.paused(&info.run_id, now))
    }
}

/// Whether `info` shows `node` in the role the committed state of `g` gives it.
fn in_role(g: &Group, node: &NodeSpec, info: &Info) -> bool {
    let Some(master) = g.master.as_deref() else {
        return false;
    };
    if master == node.name {
        return info.master;
    }
    let Some(m) = g.spec.nodes.iter().find(|n| n.name == master) else {
        return false;
    };
    !info.master && follows(info, &m.data)
}

/// Whether a replica read as `info` follows the server at `data` (`host:port`).
fn follows(info: &Info, data: &str) -> bool {
    data.parse::<vigil_base::HostPort>()
        .is_ok_and(|a| a.host() == info.master_host && a.port() == info.master_port)
}

/// `min-replicas-to-write` and `min-replicas-max-lag` (seconds) for the master of `g` that
/// has `online` replicas now: never more replicas than it has, so a master just promoted (its
/// replicas still being repointed) takes writes at once and is guarded from its first replica
/// on. Only a sentinel that reaches the master lowers it: a master cut off from the sentinels
/// keeps the guard it had.
pub(crate) fn write_guard(g: &Group, online: u32) -> (u32, u64) {
    let replicas = g.spec.nodes.len().saturating_sub(1) as u32;
    let s = &g.spec.settings;
    let to_write = s.sync_replicas.max(1).min(replicas).min(online);
    let lag = s.down_after_ms.div_ceil(1000).max(2);
    (to_write, lag)
}

/// One node's connection and what this sentinel confirmed about it.
struct Entry {
    /// The endpoint, user, password and renames it was made with.
    access: (
        String,
        String,
        String,
        std::collections::BTreeMap<String, String>,
    ),
    server: Server,
    mark: Mutex<Mark>,
    /// A refused login was logged (once per connection settings).
    refused: std::sync::atomic::AtomicBool,
}

/// A node of a `resp` group, as the committed state has it now.
pub struct Ctx {
    group: Group,
    node: usize,
    entry: Arc<Entry>,
}

impl Ctx {
    fn node(&self) -> &NodeSpec {
        &self.group.spec.nodes[self.node]
    }

    fn server(&self) -> &Server {
        &self.entry.server
    }

    /// Whether the servers know `CONFIG` (it is not renamed to "").
    fn has_config(&self) -> bool {
        !self.group.spec.command_name("CONFIG").is_empty()
    }
}

/// The agentless driver (see the module doc).
pub struct RespNodes {
    state: Arc<RwLock<ClusterState>>,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// With `tls_replication`: servers are reached over TLS at their TLS address (`tls_data`,
    /// else `data`), and told to follow the master's.
    tls: Option<Arc<vigil_resp::tls::ServerTls>>,
}

fn to_status(e: StockError) -> Status {
    match e {
        StockError::Unreachable { .. } => Status::unavailable(e.to_string()),
        StockError::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// Runs `cmds` as one transaction; an error reply to the first one fails it (the others'
/// errors are logged: they do not undo the first).
async fn transaction(s: &Server, cmds: &[Vec<String>]) -> Result<Vec<BytesFrame>, Status> {
    let args: Vec<Vec<&str>> = cmds
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let refs: Vec<&[&str]> = args.iter().map(Vec::as_slice).collect();
    let replies = s.transaction(&refs).await.map_err(to_status)?;
    if let Some(BytesFrame::Error(e)) = replies.first() {
        return Err(Status::internal(format!("{} refused: {e}", cmds[0][0])));
    }
    for (c, r) in cmds.iter().zip(&replies).skip(1) {
        if let BytesFrame::Error(e) = r {
            // As Redis Sentinel: the role change stands (CONFIG REWRITE fails on a server
            // started without a config file).
            tracing::debug!(command = %c.join(" "), error = %e, "part of a role change refused");
        }
    }
    Ok(replies)
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

impl RespNodes {
    /// A driver for the `resp` groups of `state`, reaching the servers over TLS with `tls`.
    pub fn new(
        state: Arc<RwLock<ClusterState>>,
        tls: Option<Arc<vigil_resp::tls::ServerTls>>,
    ) -> RespNodes {
        RespNodes {
            state,
            entries: Mutex::new(HashMap::new()),
            tls,
        }
    }

    /// The node of a `resp` group at `addr` (its data address, which is also its admin one),
    /// or `None` when no committed `resp` group has it.
    pub fn context(&self, addr: &str) -> Option<Ctx> {
        let (group, node) = {
            let st = self.state.read();
            st.groups
                .values()
                .filter(|g| g.spec.driver == Driver::Resp)
                .find_map(|g| {
                    let i =
                        g.spec.nodes.iter().position(|n| {
                            n.data == addr || n.admin == addr || n.tls_data == addr
                        })?;
                    Some((g.clone(), i))
                })?
        };
        let spec = &group.spec;
        let access = (
            spec.nodes[node].client_addr(self.tls.is_some()).to_string(),
            spec.auth_user.clone(),
            spec.auth_pass.clone(),
            spec.rename_commands.clone(),
        );
        let mut entries = self.entries.lock();
        let entry = match entries.get(addr) {
            Some(e) if e.access == access => e.clone(),
            _ => {
                let server = Server::new(
                    Endpoint::Tcp(access.0.clone()),
                    Access {
                        user: access.1.clone(),
                        pass: access.2.clone(),
                        renames: access.3.clone().into_iter().collect(),
                        tls: self.tls.clone().map(|t| {
                            vigil_agent::stock::TlsClient(Arc::new(move || t.client_config()))
                        }),
                    },
                    EXCHANGE,
                );
                let e = Arc::new(Entry {
                    access,
                    server,
                    mark: Mutex::new(Mark::default()),
                    refused: Default::default(),
                });
                entries.insert(addr.to_string(), e.clone());
                e
            }
        };
        Some(Ctx { group, node, entry })
    }

    /// What NodeAdmin reports for the server read as `info`.
    fn report(&self, c: &Ctx, info: &Info) -> NodeStatus {
        let (epoch, fenced) = c
            .entry
            .mark
            .lock()
            .reckon(&c.group, c.node(), info, Instant::now());
        let mut st = info.status();
        st.epoch = epoch;
        st.fenced = fenced;
        st.managed = true;
        st.writable = info.master && !fenced && !info.loading;
        let sync = c.group.spec.settings.sync_replicas;
        if info.master && sync > 0 {
            st.sync_replicas = sync;
            st.acked_offset = info.acked_by(sync as usize);
        }
        st
    }

    async fn info(&self, c: &Ctx) -> Result<Info, Status> {
        match c.server().info().await {
            Ok(i) => {
                let online = i.replicas.iter().filter(|r| r.state == "online").count();
                c.entry.mark.lock().online = online as u32;
                Ok(i)
            }
            Err(e) => {
                // A wrong auth_user / auth_pass (or an ACL user without INFO) keeps the node
                // down for good: say so once, not at every probe.
                if e.answered()
                    && !c
                        .entry
                        .refused
                        .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(group = %c.group.spec.name, node = %c.node().name, error = %e, "the server refuses this sentinel: check the group's auth_user, auth_pass and rename_commands");
                }
                Err(to_status(e))
            }
        }
    }

    /// `INFO`, within `timeout`.
    pub async fn status(&self, c: &Ctx, timeout: Duration) -> Result<NodeStatus, Status> {
        let info = tokio::time::timeout(timeout, self.info(c))
            .await
            .map_err(|_| Status::deadline_exceeded("INFO timed out"))??;
        Ok(self.report(c, &info))
    }

    /// `PING`: any answer, an error too (`-NOAUTH`, `-LOADING`), means alive.
    pub async fn ping(&self, c: &Ctx, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, c.server().call(&["PING"])).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => e.answered(),
            Err(_) => false,
        }
    }

    /// The write guard commands for the master of `c`'s group with `online` replicas (none
    /// without `CONFIG`).
    fn guard_commands(&self, c: &Ctx, online: u32) -> Vec<Vec<String>> {
        if !c.has_config() {
            return Vec::new();
        }
        let (n, lag) = write_guard(&c.group, online);
        vec![
            words(&["CONFIG", "SET", "min-replicas-to-write", &n.to_string()]),
            words(&["CONFIG", "SET", "min-replicas-max-lag", &lag.to_string()]),
        ]
    }

    /// A role change as Redis Sentinel sends it: `REPLICAOF …`, then (one transaction)
    /// `CONFIG REWRITE`, `CLIENT UNPAUSE` when this sentinel paused it, and the clients'
    /// disconnection so they ask the sentinels again.
    async fn change_role(
        &self,
        c: &Ctx,
        replicaof: Vec<String>,
        extra: Vec<Vec<String>>,
        unpause: bool,
    ) -> Result<(), Status> {
        let mut cmds = vec![replicaof];
        cmds.extend(extra);
        if c.has_config() {
            cmds.push(words(&["CONFIG", "REWRITE"]));
        }
        if unpause {
            cmds.push(words(&["CLIENT", "UNPAUSE"]));
        }
        cmds.push(words(&["CLIENT", "KILL", "TYPE", "normal"]));
        cmds.push(words(&["CLIENT", "KILL", "TYPE", "pubsub"]));
        transaction(c.server(), &cmds).await.map(|_| ())
    }

    /// `REPLICAOF NO ONE` with the write guard, unless it is master already (then only the
    /// guard and the fence lifted); refused below `min_offset`.
    pub async fn promote(&self, c: &Ctx, req: PromoteRequest) -> Result<NodeStatus, Status> {
        let info = self.info(c).await?;
        if info.offset < req.min_offset {
            return Err(Status::failed_precondition(format!(
                "offset {} is below min_offset {}",
                info.offset, req.min_offset
            )));
        }
        let paused = c.entry.mark.lock().paused(&info.run_id, Instant::now());
        let online = info.replicas.iter().filter(|r| r.state == "online").count() as u32;
        if !info.master {
            let guard = self.guard_commands(c, online);
            self.change_role(c, words(&["REPLICAOF", "NO", "ONE"]), guard, paused)
                .await?;
            tracing::info!(node = %c.node().name, epoch = req.epoch, "promoted (REPLICAOF NO ONE)");
        } else {
            let mut cmds = self.guard_commands(c, online);
            if paused {
                cmds.push(words(&["CLIENT", "UNPAUSE"]));
            }
            if !cmds.is_empty() {
                transaction(c.server(), &cmds).await?;
            }
        }
        let info = self.info(c).await?;
        {
            let mut m = c.entry.mark.lock();
            m.set(&info.run_id, req.epoch);
            m.guarded = Some((info.run_id.clone(), write_guard(&c.group, online).0));
        }
        Ok(self.report(c, &info))
    }

    /// `REPLICAOF host port` (unless it follows that master already), lifting this
    /// sentinel's fence.
    pub async fn replicate_from(
        &self,
        c: &Ctx,
        req: ReplicateFromRequest,
    ) -> Result<NodeStatus, Status> {
        let t = vigil_proto::admin::Target::try_from(req.clone())?;
        // A replica with `tls-replication` must be given the master's TLS port (as in Redis).
        let (host, port) = t.address(self.tls.is_some());
        let info = self.info(c).await?;
        let paused = c.entry.mark.lock().paused(&info.run_id, Instant::now());
        let there = !info.master && info.master_host == host && info.master_port == port;
        if !there || paused {
            let port = port.to_string();
            let replicaof = words(&["REPLICAOF", &host, &port]);
            self.change_role(c, replicaof, Vec::new(), paused).await?;
            tracing::info!(node = %c.node().name, epoch = req.epoch, master = %format!("{host}:{port}"), "repointed (REPLICAOF)");
        }
        let info = self.info(c).await?;
        c.entry.mark.lock().set(&info.run_id, req.epoch);
        Ok(self.report(c, &info))
    }

    /// `CLIENT PAUSE <failover_timeout> WRITE`: the server takes no write (its offset is
    /// final) until then, or until a promotion or demotion lifts it.
    pub async fn fence(&self, c: &Ctx, req: FenceRequest) -> Result<NodeStatus, Status> {
        let ms = c.group.spec.settings.failover_timeout_ms.max(1000);
        let until = Instant::now() + Duration::from_millis(ms);
        c.server()
            .call(&["CLIENT", "PAUSE", &ms.to_string(), "WRITE"])
            .await
            .map_err(to_status)?;
        let info = self.info(c).await?;
        {
            let mut m = c.entry.mark.lock();
            if m.run_id != info.run_id {
                *m = Mark {
                    run_id: info.run_id.clone(),
                    ..Mark::default()
                };
            }
            m.epoch = m.epoch.max(req.epoch);
            m.paused_until = Some(until);
        }
        tracing::info!(node = %c.node().name, epoch = req.epoch, ms, "fenced (CLIENT PAUSE WRITE)");
        Ok(self.report(c, &info))
    }

    /// No lease exists in this mode: keeps the master's write guard at what its replicas now
    /// allow ([`write_guard`], from the last `INFO` read), set again only when that changes.
    pub async fn renew_lease(&self, c: &Ctx) -> Result<(), Status> {
        let (run_id, online) = {
            let m = c.entry.mark.lock();
            let want = write_guard(&c.group, m.online).0;
            if m.run_id.is_empty()
                || m.guarded
                    .as_ref()
                    .is_some_and(|(r, n)| *r == m.run_id && *n == want)
            {
                return Ok(());
            }
            (m.run_id.clone(), m.online)
        };
        let cmds = self.guard_commands(c, online);
        if !cmds.is_empty()
            && let Err(e) = transaction(c.server(), &cmds).await
        {
            tracing::warn!(node = %c.node().name, error = %e, "min-replicas-to-write not set on the master");
            return Ok(());
        }
        c.entry.mark.lock().guarded = Some((run_id, write_guard(&c.group, online).0));
        Ok(())
    }

    /// `CLIENT KILL TYPE normal|pubsub`.
    pub async fn kill_clients(&self, c: &Ctx, req: KillClientsRequest) -> Result<(), Status> {
        let kind = vigil_proto::admin::client_type(req.r#type)?;
        c.server()
            .call(&["CLIENT", "KILL", "TYPE", kind])
            .await
            .map(|_| ())
            .map_err(to_status)
    }

    /// `INFO replication` and its `master_failover_state`.
    async fn failover_state(&self, c: &Ctx) -> Result<(Info, String), Status> {
        let text = c
            .server()
            .call_text(&["INFO", "replication"])
            .await
            .map_err(to_status)?;
        let state = text
            .lines()
            .find_map(|l| l.strip_prefix("master_failover_state:"))
            .unwrap_or("no-failover")
            .trim()
            .to_string();
        Ok((Info::parse(&text), state))
    }

    /// `FAILOVER TO host port TIMEOUT ms` on the master, waited for; `Ok(false)` when the
    /// server cannot (not a master, the target is not its online replica, fenced by this
    /// sentinel, the command refused, or it gave up and is master again).
    pub async fn hand_over(&self, c: &Ctx, mut req: HandOver) -> Result<bool, Status> {
        // Over TLS the master knows its replicas by their TLS ports (they announce them).
        if let Some((host, port)) = req.tls.take().filter(|_| self.tls.is_some()) {
            (req.host, req.port) = (host, port);
        }
        let (info, state) = self.failover_state(c).await?;
        let done = |i: &Info| {
            !i.master && i.master_host == req.host && u32::from(i.master_port) == req.port
        };
        if done(&info) {
            c.entry.mark.lock().set(&info.run_id, req.epoch);
            return Ok(true);
        }
        if !info.master {
            return Ok(false);
        }
        if state == "no-failover" {
            let online = info
                .replicas
                .iter()
                .any(|r| r.ip == req.host && u32::from(r.port) == req.port && r.state == "online");
            if !online || c.entry.mark.lock().paused(&info.run_id, Instant::now()) {
                return Ok(false);
            }
            let (port, ms) = (req.port.to_string(), req.timeout.as_millis().to_string());
            let cmd = ["FAILOVER", "TO", &req.host, &port, "TIMEOUT", &ms];
            if let Err(e) = c.server().call(&cmd).await {
                tracing::warn!(node = %c.node().name, error = %e, "FAILOVER refused: switching over by fence and promotion");
                return Ok(false);
            }
            tracing::info!(node = %c.node().name, to = %format!("{}:{port}", req.host), "switchover: FAILOVER sent");
        }
        let deadline = Instant::now() + req.timeout + Duration::from_secs(2);
        loop {
            tokio::time::sleep(HAND_OVER_POLL).await;
            let (info, state) = self.failover_state(c).await?;
            if state != "no-failover" {
                if Instant::now() > deadline {
                    return Err(Status::unavailable(format!(
                        "FAILOVER still in progress ({state})"
                    )));
                }
                continue;
            }
            if !done(&info) {
                tracing::warn!(node = %c.node().name, "FAILOVER did not complete (the replica did not catch up in time): switching over by fence and promotion");
                return Ok(false);
            }
            // Demoted by the server itself: persist it and send its clients to the new
            // master, as a demotion by REPLICAOF does.
            let mut cmds = vec![
                words(&["CLIENT", "KILL", "TYPE", "normal"]),
                words(&["CLIENT", "KILL", "TYPE", "pubsub"]),
            ];
            if c.has_config() {
                cmds.push(words(&["CONFIG", "REWRITE"]));
            }
            if let Err(e) = transaction(c.server(), &cmds).await {
                tracing::warn!(node = %c.node().name, error = %e, "old master's clients not disconnected");
            }
            c.entry.mark.lock().set(&info.run_id, req.epoch);
            tracing::info!(node = %c.node().name, epoch = req.epoch, "switchover: FAILOVER completed");
            return Ok(true);
        }
    }
}

#[cfg(test)]
#[path = "resp_tests.rs"]
mod tests;
