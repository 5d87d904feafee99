//! Applying a committed command to the cluster state: validation of group specs and options,
//! and each command's rule. Deterministic — no clock, no randomness; the proposer's time
//! travels in the entry — and a rejection leaves the state unchanged (beyond `applied`).

use super::{
    Change, ClusterState, Command, Driver, Failover, Group, GroupSpec, HISTORY, Proposal, Rejected,
    Step, is_host_port,
};

fn too_large(what: &str) -> Rejected {
    Rejected::Invalid(format!("{what} too large"))
}

/// Checks a group spec as `Monitor` and `Update` do (name, nodes, addresses, settings).
pub fn validate(spec: &GroupSpec) -> Result<(), Rejected> {
    if spec.name.is_empty() || spec.name.len() > 200 || spec.name.contains(char::is_whitespace) {
        return Err(Rejected::Invalid(
            "group name must be 1-200 characters without spaces".into(),
        ));
    }
    if spec.nodes.is_empty() {
        return Err(Rejected::Invalid(format!(
            "group {} has no nodes",
            spec.name
        )));
    }
    let mut names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Rejected::Invalid(format!(
            "group {} names a node twice",
            spec.name
        )));
    }
    for n in &spec.nodes {
        let tls = (!n.tls_data.is_empty()).then_some(("tls_data", &n.tls_data));
        for (what, addr) in [("data", &n.data), ("admin", &n.admin)]
            .into_iter()
            .chain(tls)
        {
            if !is_host_port(addr) {
                return Err(Rejected::Invalid(format!(
                    "node {}: {what} address {addr:?} is not host:port",
                    n.name
                )));
            }
        }
        if spec.driver == Driver::Resp && n.admin != n.data {
            return Err(Rejected::Invalid(format!(
                "node {}: with driver \"resp\" the sentinels manage the server at its data address: admin must be absent or equal to data",
                n.name
            )));
        }
    }
    validate_resp_access(spec)?;
    let s = &spec.settings;
    if s.quorum == 0 {
        return Err(Rejected::Invalid("quorum must be at least 1".into()));
    }
    if s.down_after_ms == 0 || s.failover_timeout_ms == 0 || s.parallel_syncs == 0 {
        return Err(Rejected::Invalid(
            "down_after, failover_timeout and parallel_syncs must be positive".into(),
        ));
    }
    Ok(())
}

/// Credentials and renamed commands: only for `resp` groups (a `grpc` node's server
/// credentials are its agent's business), and every name a single RESP argument.
fn validate_resp_access(spec: &GroupSpec) -> Result<(), Rejected> {
    let used = !spec.auth_user.is_empty()
        || !spec.auth_pass.is_empty()
        || !spec.rename_commands.is_empty();
    if spec.driver != Driver::Resp && used {
        return Err(Rejected::Invalid(format!(
            "group {}: auth_user, auth_pass and rename_commands apply to driver \"resp\" only",
            spec.name
        )));
    }
    if !spec.auth_user.is_empty() && spec.auth_pass.is_empty() {
        return Err(Rejected::Invalid(format!(
            "group {}: auth_user needs auth_pass",
            spec.name
        )));
    }
    if spec.auth_user.len() > 1024 || spec.auth_pass.len() > 1024 {
        return Err(too_large("auth_user or auth_pass"));
    }
    if spec.rename_commands.len() > 256 {
        return Err(too_large("rename_commands"));
    }
    let word = |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    for (from, to) in &spec.rename_commands {
        if !word(from) || from.bytes().any(|b| b.is_ascii_lowercase()) || !word(to) {
            return Err(Rejected::Invalid(format!(
                "group {}: rename_commands {from:?} = {to:?}: both names must be 1-128 printable characters without spaces, the command upper-case",
                spec.name
            )));
        }
    }
    Ok(())
}

impl ClusterState {
    /// Applies the committed entry `index`. `Err` is a deterministic rejection: the state did
    /// not change (beyond `applied`).
    pub fn apply(&mut self, index: u64, p: &Proposal) -> Result<(), Rejected> {
        self.applied = index;
        let (group, what) = self.apply_cmd(p)?;
        let epoch = self.groups.get(&group).map_or(0, |g| g.epoch);
        self.history.push_back(Change {
            index,
            at_ms: p.at_ms,
            by: p.by,
            group,
            epoch,
            what,
        });
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        Ok(())
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut Group, Rejected> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| Rejected::NoGroup(name.to_string()))
    }

    fn apply_cmd(&mut self, p: &Proposal) -> Result<(String, String), Rejected> {
        match &p.cmd {
            Command::SetSentinel { id, address } => {
                if *id == 0 || !is_host_port(address) {
                    return Err(Rejected::Invalid(format!(
                        "sentinel {id}: address {address:?} is not host:port (ids start at 1)"
                    )));
                }
                self.sentinels.insert(*id, address.clone());
                Ok((String::new(), format!("sentinel {id} at {address}")))
            }
            Command::SetSentinelResp { id, address } => {
                if *id == 0 || !is_host_port(address) {
                    return Err(Rejected::Invalid(format!(
                        "sentinel {id}: RESP address {address:?} is not host:port (ids start at 1)"
                    )));
                }
                self.sentinel_resp.insert(*id, address.clone());
                Ok((
                    String::new(),
                    format!("sentinel {id} serves RESP at {address}"),
                ))
            }
            Command::ForgetSentinel { id } => {
                self.sentinels.remove(id);
                self.sentinel_resp.remove(id);
                Ok((String::new(), format!("sentinel {id} forgotten")))
            }
            Command::Monitor(spec) => {
                validate(spec)?;
                if self.groups.contains_key(&spec.name) {
                    return Err(Rejected::AlreadyMonitored(spec.name.clone()));
                }
                self.removed.remove(&spec.name);
                self.groups.insert(
                    spec.name.clone(),
                    Group {
                        spec: spec.clone(),
                        epoch: 0,
                        master: None,
                        failover: None,
                        last_failover_ms: 0,
                        deposed: None,
                        lease_ms: 0,
                    },
                );
                Ok((spec.name.clone(), "monitor".into()))
            }
            Command::Update(spec) => {
                validate(spec)?;
                let g = self.group_mut(&spec.name)?;
                if let Some(m) = &g.master
                    && !spec.nodes.iter().any(|n| &n.name == m)
                {
                    return Err(Rejected::Conflict(format!(
                        "the update removes the current master {m}"
                    )));
                }
                if let Some(f) = &g.failover
                    && !spec.nodes.iter().any(|n| n.name == f.candidate)
                {
                    return Err(Rejected::Conflict(
                        "the update removes the failover candidate".into(),
                    ));
                }
                g.spec = spec.clone();
                Ok((spec.name.clone(), "update".into()))
            }
            Command::CreateCluster { name, groups } => self.create_cluster(name, groups),
            Command::QueueMigrations {
                cluster,
                expected_epoch,
                moves,
            } => self.queue_migrations(cluster, *expected_epoch, moves),
            Command::MigrationStep { cluster, id, step } => self.migration_step(cluster, *id, step),
            Command::AddClusterGroup { cluster, group } => self.add_cluster_group(cluster, group),
            Command::RemoveClusterGroup { cluster, group } => {
                self.remove_cluster_group(cluster, group)
            }
            Command::Remove { group } => {
                if let Some(c) = self.cluster_of(group) {
                    return Err(Rejected::Conflict(format!(
                        "group {group} is a shard of cluster {}: move its slots away and remove it from the cluster first",
                        c.name
                    )));
                }
                self.groups
                    .remove(group)
                    .ok_or_else(|| Rejected::NoGroup(group.clone()))?;
                self.removed.insert(group.clone());
                Ok((group.clone(), "remove".into()))
            }
            Command::SetOption { group, key, value } => {
                let g = self.group_mut(group)?;
                let mut s = g.spec.settings.clone();
                let num = || {
                    value.parse::<u64>().map_err(|_| {
                        Rejected::Invalid(format!(
                            "{key} needs a non-negative integer, got {value:?}"
                        ))
                    })
                };
                match key.as_str() {
                    "quorum" => {
                        s.quorum = u32::try_from(num()?).map_err(|_| too_large("quorum"))?
                    }
                    "down-after-milliseconds" => s.down_after_ms = num()?,
                    "failover-timeout" => s.failover_timeout_ms = num()?,
                    "parallel-syncs" => {
                        s.parallel_syncs =
                            u32::try_from(num()?).map_err(|_| too_large("parallel-syncs"))?
                    }
                    "max-lag-on-failover" => s.max_lag_on_failover = num()?,
                    "sync-replicas" => {
                        s.sync_replicas =
                            u32::try_from(num()?).map_err(|_| too_large("sync-replicas"))?
                    }
                    "min-failover-interval" => s.min_failover_interval_ms = num()?,
                    _ => return Err(Rejected::Invalid(format!("unknown option {key:?}"))),
                }
                let mut spec = g.spec.clone();
                spec.settings = s;
                validate(&spec)?;
                g.spec = spec;
                Ok((group.clone(), format!("set {key} {value}")))
            }
            Command::SetLease { group, lease_ms } => {
                if *lease_ms == 0 {
                    return Err(Rejected::Invalid("a lease must be positive".into()));
                }
                let g = self.group_mut(group)?;
                g.lease_ms = *lease_ms;
                Ok((group.clone(), format!("lease {lease_ms} ms")))
            }
            Command::AssignMaster {
                group,
                expected_epoch,
                node,
            } => {
                let g = self.group_mut(group)?;
                if g.epoch != *expected_epoch || g.master.is_some() || g.failover.is_some() {
                    return Err(Rejected::Conflict(format!(
                        "group {group} moved on (epoch {}, master {:?})",
                        g.epoch, g.master
                    )));
                }
                if !g.has_node(node) {
                    return Err(Rejected::Conflict(format!(
                        "{node} is not a node of {group}"
                    )));
                }
                g.epoch += 1;
                g.master = Some(node.clone());
                Ok((group.clone(), format!("assign master {node}")))
            }
            Command::BeginFailover {
                group,
                expected_epoch,
                new_epoch,
                old,
                candidate,
                min_offset,
                manual,
            } => {
                let g = self.group_mut(group)?;
                if g.epoch != *expected_epoch {
                    return Err(Rejected::Conflict(format!(
                        "group {group} is at epoch {}, not {expected_epoch}",
                        g.epoch
                    )));
                }
                if g.failover.is_some() {
                    return Err(Rejected::Conflict(format!(
                        "a failover of {group} is already in flight"
                    )));
                }
                if *new_epoch <= g.epoch {
                    return Err(Rejected::Conflict("the new epoch must be greater".into()));
                }
                if !g.has_node(candidate) || old.as_ref() == Some(candidate) {
                    return Err(Rejected::Conflict(format!(
                        "{candidate} cannot be the candidate"
                    )));
                }
                g.epoch = *new_epoch;
                g.failover = Some(Failover {
                    epoch: *new_epoch,
                    old: old.clone(),
                    candidate: candidate.clone(),
                    min_offset: *min_offset,
                    started_ms: p.at_ms,
                    step: Step::Begun,
                    manual: *manual,
                });
                Ok((
                    group.clone(),
                    format!("begin failover to {candidate} (min offset {min_offset})"),
                ))
            }
            Command::Promoted { group, epoch } => {
                let g = self.group_mut(group)?;
                let f = g
                    .failover
                    .as_mut()
                    .filter(|f| f.epoch == *epoch)
                    .ok_or_else(|| {
                        Rejected::Conflict(format!("no failover of {group} at epoch {epoch}"))
                    })?;
                f.step = Step::Promoted;
                let c = f.candidate.clone();
                g.deposed = f.old.clone();
                g.master = Some(c.clone());
                Ok((group.clone(), format!("promoted {c}")))
            }
            Command::CompleteFailover { group, epoch } => {
                let g = self.group_mut(group)?;
                let f = g
                    .failover
                    .take_if(|f| f.epoch == *epoch && f.step == Step::Promoted)
                    .ok_or_else(|| {
                        Rejected::Conflict(format!(
                            "no promoted failover of {group} at epoch {epoch}"
                        ))
                    })?;
                g.last_failover_ms = p.at_ms;
                Ok((
                    group.clone(),
                    format!("failover to {} complete", f.candidate),
                ))
            }
            Command::AbortFailover {
                group,
                epoch,
                reason,
                ..
            } => {
                let g = self.group_mut(group)?;
                let f = g.failover.take_if(|f| f.epoch == *epoch).ok_or_else(|| {
                    Rejected::Conflict(format!("no failover of {group} at epoch {epoch}"))
                })?;
                if f.step == Step::Promoted {
                    // The candidate is master already: keep it, the failover just ends.
                    g.last_failover_ms = p.at_ms;
                }
                Ok((group.clone(), format!("abort failover: {reason}")))
            }
        }
    }

    /// The snapshot bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From snapshot bytes (empty: the initial state).
    pub fn from_bytes(b: &[u8]) -> Result<ClusterState, String> {
        if b.is_empty() {
            return Ok(ClusterState::default());
        }
        serde_json::from_slice(b).map_err(|e| format!("bad state snapshot: {e}"))
    }
}
