//! In-process storage nodes behind [`NodeAdmin`]: each keeps a role, an epoch, an offset, a
//! fence and a lease the way a real node does (a lease counts from the node's own clock reading
//! the sentinel sent), can die and come back, and every call that changes it is logged in
//! order, so a test can check what the controller did and when.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tonic::Status;
use vigil_proto::node::{
    FenceRequest, KillClientsRequest, LinkStatus, NodeStatus, PromoteRequest, RenewLeaseRequest,
    ReplicateFromRequest, Role,
};
use vigil_sentinel::nodes::NodeAdmin;
use vigil_sentinel::state::NodeSpec;

/// One fake node.
#[derive(Debug, Clone)]
pub struct Fake {
    pub name: String,
    pub data: String,
    pub alive: bool,
    pub role: Role,
    pub epoch: u64,
    pub offset: u64,
    pub fenced: bool,
    pub master: Option<(String, u32)>,
    /// When its write lease ends (none: no lease).
    pub lease_until: Option<Instant>,
    /// How long it takes to answer a status request (a real node's is a network round trip).
    pub answers_after: Duration,
}

/// What was done to a node, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Promoted at an epoch.
    Promote(String, u64),
    /// Fenced at an epoch.
    Fence(String, u64),
    /// Pointed at a master (`host:port`) at an epoch.
    Follow(String, String, u64),
    /// Leased (renewal or with a promotion) until the instant logged beside it.
    Lease(String),
    /// Its clients disconnected.
    KillClients(String),
}

/// The fake nodes of one test, keyed by admin address.
pub struct FakeNodes {
    base: Instant,
    nodes: Mutex<HashMap<String, Fake>>,
    log: Mutex<Vec<(Instant, Op)>>,
}

impl FakeNodes {
    /// Nodes `names` (all alive, unassigned, at `offset`) and their specs.
    pub fn new(names: &[&str], offset: u64) -> (FakeNodes, Vec<NodeSpec>) {
        let mut nodes = HashMap::new();
        let mut specs = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let spec = NodeSpec {
                name: n.to_string(),
                data: format!("127.0.0.1:{}", 7000 + i),
                admin: format!("127.0.0.1:{}", 17000 + i),
                priority: 100,
                tls_data: String::new(),
            };
            nodes.insert(
                spec.admin.clone(),
                Fake {
                    name: n.to_string(),
                    data: spec.data.clone(),
                    alive: true,
                    role: Role::Unassigned,
                    epoch: 0,
                    offset,
                    fenced: false,
                    master: None,
                    lease_until: None,
                    answers_after: Duration::ZERO,
                },
            );
            specs.push(spec);
        }
        let f = FakeNodes {
            base: Instant::now(),
            nodes: Mutex::new(nodes),
            log: Mutex::default(),
        };
        (f, specs)
    }

    /// Changes node `name`.
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&mut Fake) -> R) -> R {
        let mut nodes = self.nodes.lock();
        let n = nodes
            .values_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no fake node {name}"));
        f(n)
    }

    /// A copy of node `name`.
    pub fn get(&self, name: &str) -> Fake {
        self.with(name, |n| n.clone())
    }

    /// Everything done so far, in order.
    pub fn log(&self) -> Vec<(Instant, Op)> {
        self.log.lock().clone()
    }

    fn note(&self, op: Op) {
        self.log.lock().push((Instant::now(), op));
    }

    /// Runs `f` on the live node at `admin`.
    fn call<R>(
        &self,
        admin: &str,
        f: impl FnOnce(&mut Fake) -> Result<R, Status>,
    ) -> Result<R, Status> {
        let mut nodes = self.nodes.lock();
        match nodes.get_mut(admin) {
            Some(n) if n.alive => f(n),
            Some(_) => Err(Status::unavailable("node down")),
            None => Err(Status::unavailable("no such node")),
        }
    }

    fn status_of(&self, n: &Fake) -> NodeStatus {
        let (master_host, master_port) = n.master.clone().unwrap_or_default();
        let leased = n.lease_until.is_some_and(|t| t > Instant::now());
        NodeStatus {
            role: n.role as i32,
            epoch: n.epoch,
            run_id: format!("run-{}", n.name),
            replid: "history".into(),
            offset: n.offset,
            master_host,
            master_port,
            link: if n.role == Role::Replica {
                LinkStatus::Up as i32
            } else {
                LinkStatus::Unspecified as i32
            },
            managed: true,
            fenced: n.fenced,
            writable: n.role == Role::Master && !n.fenced && leased,
            node_clock_ms: self.base.elapsed().as_millis() as u64,
            priority: 100,
            ..NodeStatus::default()
        }
    }

    /// A lease of `ttl_ms` counted from the node's clock reading `since_ms`.
    fn lease_end(&self, since_ms: u64, ttl_ms: u64) -> Instant {
        self.base + Duration::from_millis(since_ms + ttl_ms)
    }
}

#[tonic::async_trait]
impl NodeAdmin for FakeNodes {
    async fn status(&self, admin: &str, timeout: Duration) -> Result<NodeStatus, Status> {
        let after = self
            .nodes
            .lock()
            .get(admin)
            .map_or(Duration::ZERO, |n| n.answers_after);
        if after > timeout {
            tokio::time::sleep(timeout).await;
            return Err(Status::deadline_exceeded("status timed out"));
        }
        // A short wait yields until then rather than sleeping: a timer rounds up to whole
        // milliseconds, and other tasks run meanwhile. A long one sleeps, leaving the CPU to
        // the sentinels.
        if after >= Duration::from_millis(20) {
            tokio::time::sleep(after).await;
        } else {
            let until = std::time::Instant::now() + after;
            while std::time::Instant::now() < until {
                tokio::task::yield_now().await;
            }
        }
        self.call(admin, |n| Ok(n.clone()))
            .map(|n| self.status_of(&n))
    }

    async fn ping(&self, data: &str, _timeout: Duration) -> bool {
        self.nodes
            .lock()
            .values()
            .any(|n| n.data == data && n.alive)
    }

    async fn promote(&self, admin: &str, req: PromoteRequest) -> Result<NodeStatus, Status> {
        let end = self.lease_end(req.lease_since_node_ms, req.lease_ttl_ms);
        let n = self.call(admin, |n| {
            if req.epoch < n.epoch {
                return Err(Status::failed_precondition("stale epoch"));
            }
            if n.offset < req.min_offset {
                return Err(Status::failed_precondition("below min_offset"));
            }
            n.role = Role::Master;
            n.epoch = req.epoch;
            n.fenced = false;
            n.master = None;
            n.lease_until = Some(end);
            Ok(n.clone())
        })?;
        self.note(Op::Promote(n.name.clone(), req.epoch));
        self.note(Op::Lease(n.name.clone()));
        Ok(self.status_of(&n))
    }

    async fn replicate_from(
        &self,
        admin: &str,
        req: ReplicateFromRequest,
    ) -> Result<NodeStatus, Status> {
        let n = self.call(admin, |n| {
            if req.epoch < n.epoch {
                return Err(Status::failed_precondition("stale epoch"));
            }
            n.role = Role::Replica;
            n.epoch = req.epoch;
            n.fenced = false;
            n.lease_until = None;
            n.master = Some((req.host.clone(), req.port));
            Ok(n.clone())
        })?;
        let to = format!("{}:{}", req.host, req.port);
        self.note(Op::Follow(n.name.clone(), to, req.epoch));
        Ok(self.status_of(&n))
    }

    async fn fence(&self, admin: &str, req: FenceRequest) -> Result<NodeStatus, Status> {
        let n = self.call(admin, |n| {
            n.epoch = n.epoch.max(req.epoch);
            n.fenced = true;
            n.lease_until = None;
            Ok(n.clone())
        })?;
        self.note(Op::Fence(n.name.clone(), req.epoch));
        Ok(self.status_of(&n))
    }

    async fn renew_lease(&self, admin: &str, req: RenewLeaseRequest) -> Result<(), Status> {
        let end = self.lease_end(req.since_node_ms, req.ttl_ms);
        let name = self.call(admin, |n| {
            if n.role != Role::Master || n.fenced || req.epoch != n.epoch {
                return Err(Status::failed_precondition("not the master at that epoch"));
            }
            n.lease_until = Some(n.lease_until.map_or(end, |t| t.max(end)));
            Ok(n.name.clone())
        })?;
        self.note(Op::Lease(name));
        Ok(())
    }

    async fn kill_clients(&self, admin: &str, _req: KillClientsRequest) -> Result<(), Status> {
        let name = self.call(admin, |n| Ok(n.name.clone()))?;
        self.note(Op::KillClients(name));
        Ok(())
    }
}
