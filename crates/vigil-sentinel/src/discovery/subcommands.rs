//! `SENTINEL <subcommand> …`: a table of (name, Redis arity, how it runs) drives lookup, the
//! arity error and dispatch. Most subcommands answer at once from this sentinel's applied
//! state; those that change the cluster state or start a switchover go through the shared
//! operations ([`crate::ops`]) and reply in Redis Sentinel's wording.

use std::future::Future;
use std::pin::Pin;

use vigil_resp::command::{unknown_subcommand, wrong_arity};
use vigil_resp::glob::matches;
use vigil_resp::{Args, Reply};

use super::records::reply;
use super::{Client, Discovery, LastLookup};
use crate::controller::SwitchoverError;
use crate::ops::OpError;
use crate::state::{GroupSpec, NodeSpec, OPTIONS, Settings};

/// A subcommand that waits for the Raft group: its future, boxed so the future of every
/// request (the lookups' hot path included) stays small.
pub type Later =
    for<'a> fn(&'a Discovery, Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// How a subcommand runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// Answered at once from this sentinel's state (arguments after the subcommand).
    Now(fn(&Discovery, &[String]) -> Reply),
    /// Answered at once with the addresses this client uses (`true`: it came over TLS).
    Addrs(fn(&Discovery, &[String], bool) -> Reply),
    /// Waits for the Raft group.
    Later(Later),
    /// `GET-MASTER-ADDR-BY-NAME`: answered from the connection's cache.
    Lookup,
}

/// One subcommand: its name, its Redis arity (counting `SENTINEL` and the subcommand; negative:
/// at least that many), and how it runs.
pub struct Sub {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity.
    pub arity: i32,
    /// How it runs.
    pub run: Run,
}

const fn sub(name: &'static str, arity: i32, run: Run) -> Sub {
    Sub { name, arity, run }
}

/// Every subcommand.
pub const SUBCOMMANDS: &[Sub] = &[
    sub("masters", 2, Run::Addrs(masters)),
    sub("master", 3, Run::Addrs(master)),
    sub("replicas", 3, Run::Addrs(replicas)),
    sub("slaves", 3, Run::Addrs(replicas)),
    sub("sentinels", 3, Run::Now(sentinels)),
    sub("get-master-addr-by-name", 3, Run::Lookup),
    sub("failover", 3, Run::Later(failover)),
    sub("ckquorum", 3, Run::Now(ckquorum)),
    sub("myid", 2, Run::Now(myid)),
    sub("monitor", 6, Run::Later(monitor)),
    sub("remove", 3, Run::Later(remove)),
    sub("set", -5, Run::Later(set)),
    sub("reset", 3, Run::Now(reset)),
    sub("flushconfig", 2, Run::Now(|_, _| Reply::ok())),
    sub(
        "pending-scripts",
        2,
        Run::Now(|_, _| Reply::Array(Vec::new())),
    ),
    sub(
        "help",
        2,
        Run::Now(|_, _| Reply::bulks(HELP.iter().map(|l| l.as_bytes()))),
    ),
];

/// `SENTINEL <subcommand> ...`: answers at once, or returns the subcommand's [`Later`] and its
/// arguments when it must wait for the Raft group. Kept synchronous so the per-request future
/// of the hot path (`GET-MASTER-ADDR-BY-NAME`) stays small.
pub fn sentinel(d: &Discovery, conn: &mut Client, mut args: Args) -> Option<(Later, Vec<String>)> {
    let raw = args.peek().map_or(&b""[..], |b| &b[..]);
    let Some(s) = SUBCOMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(raw))
    else {
        conn.reply(unknown_subcommand("sentinel", raw));
        return None;
    };
    let argc = args.remaining() as i32 + 1;
    if (s.arity > 0 && argc != s.arity) || (s.arity < 0 && argc < -s.arity) {
        conn.reply(wrong_arity(&format!("sentinel|{}", s.name)));
        return None;
    }
    // What clients ask most, answered without copying anything but the address.
    if let Run::Lookup = s.run {
        cached_master_addr(d, conn, &args.all()[2]);
        return None;
    }
    args.next();
    let rest: Vec<String> = args
        .rest()
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match s.run {
        Run::Now(f) => {
            conn.reply(f(d, &rest));
            None
        }
        Run::Addrs(f) => {
            conn.reply(f(d, &rest, conn.tls));
            None
        }
        Run::Later(f) => Some((f, rest)),
        Run::Lookup => None,
    }
}

const NO_SUCH_MASTER: &str = "ERR No such master with that name";

fn group(d: &Discovery, name: &str) -> Option<crate::state::Group> {
    d.raft.state.read().groups.get(name).cloned()
}

fn masters(d: &Discovery, _: &[String], tls: bool) -> Reply {
    let groups: Vec<crate::state::Group> = d.raft.state.read().groups.values().cloned().collect();
    Reply::Array(
        groups
            .iter()
            .map(|g| reply(d.master_record(g, tls)))
            .collect(),
    )
}

fn master(d: &Discovery, a: &[String], tls: bool) -> Reply {
    group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| {
        reply(d.master_record(&g, tls))
    })
}

fn replicas(d: &Discovery, a: &[String], tls: bool) -> Reply {
    group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| {
        Reply::Array(d.replica_records(&g, tls).into_iter().map(reply).collect())
    })
}

fn sentinels(d: &Discovery, a: &[String]) -> Reply {
    group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| {
        Reply::Array(d.sentinel_records(&g).into_iter().map(reply).collect())
    })
}

fn myid(d: &Discovery, _: &[String]) -> Reply {
    Reply::bulk(d.myid.as_bytes())
}

fn reset(d: &Discovery, a: &[String]) -> Reply {
    // The state is the committed log's; there is no local view to forget. The count is what
    // clients read.
    let n = d
        .raft
        .state
        .read()
        .groups
        .keys()
        .filter(|g| matches(a[0].as_bytes(), g.as_bytes()))
        .count();
    Reply::Int(n as i64)
}

const HELP: &[&str] = &[
    "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CKQUORUM <master-name>",
    "    Check if the current Sentinel configuration is able to reach the quorum needed",
    "    to failover a master and the majority needed to authorize the failover.",
    "GET-MASTER-ADDR-BY-NAME <master-name>",
    "    Return the ip and port number of the master with that name.",
    "FAILOVER <master-name>",
    "    Manually failover a master node without asking for agreement from other",
    "    Sentinels (a Vigil switchover: zero loss).",
    "MASTER <master-name>",
    "    Show the state and info of the specified master.",
    "MASTERS",
    "    Show a list of monitored masters and their state.",
    "MONITOR <name> <ip> <port> <quorum>",
    "    Start monitoring a new master (its admin port is the data port + 10000).",
    "MYID",
    "    Return the ID of the Sentinel instance.",
    "REMOVE <master-name>",
    "    Remove master from Sentinel's monitor list.",
    "REPLICAS <master-name>",
    "    Show a list of replicas for this master and their state.",
    "RESET <pattern>",
    "    Reset masters for specific master name matching this pattern.",
    "SENTINELS <master-name>",
    "    Show a list of Sentinel instances for this master and their state.",
    "SET <master-name> <option> <value> [<option> <value> ...]",
    "    Set configuration parameters for certain masters.",
];

/// [`master_addr`] through the cache: the same bytes until the next applied entry.
fn cached_master_addr(d: &Discovery, conn: &mut Client, group: &[u8]) {
    let version = d.raft.version.load(std::sync::atomic::Ordering::Acquire);
    let last = &conn.state;
    if last.version == Some(version) && last.group == group {
        conn.out.extend_from_slice(&last.reply);
        return;
    }
    let r = master_addr(d, group, conn.tls);
    // Arrays of bulk strings are the same bytes in both protocols; only the null differs.
    if let Reply::Array(_) = r {
        let mut out = bytes::BytesMut::new();
        r.encode(vigil_resp::Protocol::Resp2, &mut out);
        conn.state = LastLookup {
            version: Some(version),
            group: bytes::Bytes::copy_from_slice(group),
            reply: out.freeze(),
        };
    }
    conn.reply(r);
}

fn master_addr(d: &Discovery, name: &[u8], tls: bool) -> Reply {
    // Cut off from the majority: say nothing rather than something stale; clients ask the
    // next sentinel.
    if !d.connected() {
        return Reply::NilArray;
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return Reply::NilArray;
    };
    let st = d.raft.state.read();
    let addr = st.groups.get(name).and_then(|g| {
        let m = g.master.as_ref()?;
        g.spec.nodes.iter().find(|n| &n.name == m)
    });
    match addr.and_then(|n| n.client_addr(tls).parse::<vigil_base::HostPort>().ok()) {
        Some(a) => Reply::Array(vec![
            Reply::bulk(a.host().as_bytes()),
            Reply::bulk(a.port().to_string().as_bytes()),
        ]),
        None => Reply::NilArray,
    }
}

fn failover(d: &Discovery, a: Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
    Box::pin(async move {
        let name = &a[0];
        if group(d, name).is_none() {
            return Reply::error(NO_SUCH_MASTER);
        }
        match d.ops.failover(name, None).await {
            Ok(_) => Reply::ok(),
            Err(OpError::NoQuorum(_)) => Reply::error(
                "NOQUORUM this sentinel cannot reach the sentinel majority; ask another sentinel",
            ),
            Err(OpError::Switchover(SwitchoverError::InProgress(_))) => {
                Reply::error("INPROG Failover already in progress")
            }
            Err(OpError::Switchover(
                SwitchoverError::NoGoodReplica(_) | SwitchoverError::NoMaster(_),
            )) => Reply::error("NOGOODSLAVE No suitable replica to promote"),
            Err(e) => Reply::error(format!("ERR {e}")),
        }
    })
}

fn remove(d: &Discovery, a: Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
    Box::pin(async move {
        if group(d, &a[0]).is_none() {
            return Reply::error(NO_SUCH_MASTER);
        }
        done(d.ops.remove(&a[0]).await)
    })
}

fn monitor(d: &Discovery, a: Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
    Box::pin(monitor_group(d, a))
}

fn set(d: &Discovery, a: Vec<String>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
    Box::pin(set_options(d, a))
}

/// `+OK`, or the operation's error as Redis Sentinel words a refused command.
fn done(r: Result<u64, OpError>) -> Reply {
    match r {
        Ok(_) => Reply::ok(),
        Err(e) => Reply::error(format!("ERR {e}")),
    }
}

fn ckquorum(d: &Discovery, a: &[String]) -> Reply {
    let Some(g) = group(d, &a[0]) else {
        return Reply::error(NO_SUCH_MASTER);
    };
    let (usable, voters) = {
        let s = d.raft.status.read();
        let usable = if s.is_leader {
            s.progress.iter().filter(|p| p.2 || p.0 == s.id).count()
        } else if s.leader != 0 {
            // A follower in touch with a leader: the leader holds a majority.
            s.voters.len()
        } else {
            1
        };
        (usable, s.voters.len())
    };
    let majority = voters / 2 + 1;
    if usable < g.spec.settings.quorum as usize {
        Reply::error(format!(
            "NOQUORUM {usable} usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master"
        ))
    } else if usable < majority {
        Reply::error(format!(
            "NOQUORUM {usable} usable Sentinels. Not enough available Sentinels to reach the majority and authorize a failover"
        ))
    } else {
        Reply::Simple(
            format!(
                "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
            )
            .into(),
        )
    }
}

async fn monitor_group(d: &Discovery, a: Vec<String>) -> Reply {
    let (name, ip) = (&a[0], &a[1]);
    let Ok(quorum) = a[3].parse::<i64>() else {
        return Reply::error("ERR Invalid quorum");
    };
    let Ok(port) = a[2].parse::<i64>() else {
        return Reply::error("ERR Invalid port");
    };
    if quorum <= 0 {
        return Reply::error("ERR Quorum must be 1 or greater.");
    }
    if !(1..=65535).contains(&port) {
        return Reply::error("ERR Invalid port number");
    }
    if port > 55535 {
        return Reply::error(
            "ERR the node's admin port would be its port + 10000, above 65535: add this group with the gRPC Monitor call or the config, which name the admin address",
        );
    }
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Reply::error("ERR Invalid IP address or hostname specified");
    }
    if group(d, name).is_some() {
        return Reply::error("ERR Duplicate master name.");
    }
    let spec = GroupSpec {
        name: name.clone(),
        nodes: vec![NodeSpec {
            name: format!("{ip}:{port}"),
            data: format!("{ip}:{port}"),
            admin: format!("{ip}:{}", port + 10000),
            priority: 100,
            tls_data: String::new(),
        }],
        settings: Settings {
            quorum: quorum as u32,
            ..Settings::default()
        },
        // A Vigil-managed node (admin port = data port + 10000): SENTINEL MONITOR carries no
        // driver, and a stock server's credentials and renamed commands have no place in it;
        // add `resp` groups with the config or the gRPC Monitor call.
        ..GroupSpec::default()
    };
    done(d.ops.monitor(spec).await)
}

async fn set_options(d: &Discovery, a: Vec<String>) -> Reply {
    if group(d, &a[0]).is_none() {
        return Reply::error(NO_SUCH_MASTER);
    }
    let mut changes = Vec::new();
    for pair in a[1..].chunks(2) {
        let key = pair[0].to_lowercase();
        let option = OPTIONS.iter().find(|o| o.0 == key);
        let Some(value) = pair.get(1).filter(|_| option.is_some()) else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for SENTINEL SET '{}'",
                pair[0]
            ));
        };
        match value.parse::<i64>() {
            Ok(v) if v > 0 || (v == 0 && !option.is_some_and(|o| o.1)) => {
                changes.push((key, value.clone()))
            }
            _ => {
                return Reply::error(format!(
                    "ERR Invalid argument '{value}' for SENTINEL SET '{}'",
                    pair[0]
                ));
            }
        }
    }
    done(d.ops.set_options(&a[0], &changes).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcommand_table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (i, s) in SUBCOMMANDS.iter().enumerate() {
            assert!(seen.insert(s.name), "#{i} {} twice", s.name);
            assert_eq!(s.name, s.name.to_lowercase(), "#{i}");
            assert!(s.arity >= 2 || s.arity <= -2, "#{i} {}", s.name);
            // Every subcommand but the aliases and the silent ones is in HELP.
            let documented = HELP.iter().any(|l| l.to_lowercase().starts_with(s.name));
            let quiet = ["slaves", "flushconfig", "pending-scripts", "help"];
            assert!(
                documented || quiet.contains(&s.name),
                "#{i} {} not in HELP",
                s.name
            );
        }
        // The SET options Redis' wording refers to are the state machine's.
        assert!(OPTIONS.iter().any(|o| o.0 == "quorum" && o.1));
    }
}
