//! The sentinel endpoint's command table: the connection commands shared with the node
//! (`vigil_resp::builtin`), `ROLE`, `INFO`, and `SENTINEL` with its subcommands, each answered
//! in Redis Sentinel's shapes and error wording.

use vigil_resp::command::{CommandTable, unknown_subcommand, wrong_arity};
use vigil_resp::glob::matches;
use vigil_resp::{Args, CommandMeta, Flags, Reply};

use super::records::reply;
use super::{Client, Discovery, LastLookup};
use crate::controller::SwitchoverError;
use crate::state::{Command, Group, GroupSpec, NodeSpec, Settings};

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// A connection command (shared with the node).
    Conn(fn(&mut Client, Args)),
    /// Answered from this sentinel's state.
    Sentinel(fn(&Discovery, &mut Client, Args)),
    /// `SENTINEL <subcommand>`: most answer at once, a few wait for the Raft group.
    Subcommands,
}

fn meta(name: &'static str, arity: i32, flags: Flags, summary: &'static str) -> CommandMeta {
    CommandMeta {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "sentinel",
        summary,
    }
}

/// The whole table: the connection rows shared with the node, then the sentinel's own.
pub fn table() -> CommandTable<Handler> {
    use Handler::*;
    let shared = vigil_resp::connection::rows()
        .into_iter()
        .map(|(meta, f)| (meta, Conn(f)));
    CommandTable::new(
        shared
            .chain([
                (
                    meta(
                        "role",
                        1,
                        Flags(Flags::FAST.0 | Flags::STALE.0),
                        "sentinel and the monitored groups.",
                    ),
                    Sentinel(role),
                ),
                (
                    meta(
                        "info",
                        -1,
                        Flags(Flags::STALE.0),
                        "Server and sentinel information.",
                    ),
                    Sentinel(info),
                ),
                (
                    meta(
                        "sentinel",
                        -2,
                        Flags(Flags::ADMIN.0),
                        "Sentinel subcommands.",
                    ),
                    Subcommands,
                ),
            ])
            .collect(),
    )
}

fn role(d: &Discovery, conn: &mut Client, _args: Args) {
    let names: Vec<Reply> = d
        .raft
        .state
        .read()
        .groups
        .keys()
        .map(|n| Reply::bulk(n.as_bytes()))
        .collect();
    conn.reply(Reply::Array(vec![
        Reply::bulk_static("sentinel"),
        Reply::Array(names),
    ]));
}

fn info(d: &Discovery, conn: &mut Client, mut args: Args) {
    let want: Vec<String> = args
        .rest()
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_lowercase())
        .collect();
    let all = want.is_empty()
        || want
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let pick = |s: &str| all || want.iter().any(|w| w == s);
    let mut out = String::new();
    if pick("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{}\r\nredis_mode:sentinel\r\nos:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nvigil_version:{}\r\n\r\n",
            super::REDIS_VERSION,
            std::env::consts::OS,
            std::process::id(),
            d.myid,
            d.address.port(),
            d.started.elapsed().as_secs(),
            env!("CARGO_PKG_VERSION"),
        ));
    }
    if pick("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            conn.shared.clients.len()
        ));
    }
    if pick("sentinel") {
        let groups: Vec<Group> = d.raft.state.read().groups.values().cloned().collect();
        let sentinels = d.raft.status.read().voters.len();
        out.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n",
            groups.len()
        ));
        for (i, g) in groups.iter().enumerate() {
            let m = d.master_record(g);
            let field = |k: &str| {
                m.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let flags = field("flags");
            let status = if flags.contains("o_down") {
                "odown"
            } else if flags.contains("s_down") {
                "sdown"
            } else {
                "ok"
            };
            out.push_str(&format!(
                "master{i}:name={},status={status},address={}:{},slaves={},sentinels={sentinels}\r\n",
                g.spec.name,
                field("ip"),
                field("port"),
                g.spec.nodes.len().saturating_sub(1),
            ));
        }
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    conn.reply(Reply::Verbatim(out.into()));
}

/// `SENTINEL <subcommand> ...`: (name, Redis arity counting `SENTINEL` and the subcommand).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("masters", 2),
    ("master", 3),
    ("replicas", 3),
    ("slaves", 3),
    ("sentinels", 3),
    ("get-master-addr-by-name", 3),
    ("failover", 3),
    ("ckquorum", 3),
    ("myid", 2),
    ("monitor", 6),
    ("remove", 3),
    ("set", -5),
    ("reset", 3),
    ("flushconfig", 2),
    ("pending-scripts", 2),
    ("help", 2),
];

/// Subcommands that wait for the Raft group; the rest answer at once.
const LATER: &[&str] = &["failover", "monitor", "remove", "set"];

/// `SENTINEL <subcommand> ...`: answers at once, or returns the subcommand and its arguments
/// when it must wait for the Raft group ([`later`]). Kept synchronous so the per-request
/// future of the hot path (`GET-MASTER-ADDR-BY-NAME`) stays small.
pub fn sentinel(
    d: &Discovery,
    conn: &mut Client,
    mut args: Args,
) -> Option<(&'static str, Vec<String>)> {
    let raw = args.peek().map_or(&b""[..], |b| &b[..]);
    let Some(&(name, arity)) = SUBCOMMANDS
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(raw))
    else {
        conn.reply(unknown_subcommand("sentinel", raw));
        return None;
    };
    let argc = args.remaining() as i32 + 1;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        conn.reply(wrong_arity(&format!("sentinel|{name}")));
        return None;
    }
    // What clients ask most, answered without copying anything but the address.
    if name == "get-master-addr-by-name" {
        cached_master_addr(d, conn, &args.all()[2]);
        return None;
    }
    args.next();
    let rest: Vec<String> = args
        .rest()
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if LATER.contains(&name) {
        return Some((name, rest));
    }
    conn.reply(now(d, name, &rest));
    None
}

const NO_SUCH_MASTER: &str = "ERR No such master with that name";

fn group(d: &Discovery, name: &str) -> Option<Group> {
    d.raft.state.read().groups.get(name).cloned()
}

/// The subcommands that answer from this sentinel's state.
fn now(d: &Discovery, sub: &str, a: &[String]) -> Reply {
    match sub {
        "masters" => {
            let groups: Vec<Group> = d.raft.state.read().groups.values().cloned().collect();
            Reply::Array(groups.iter().map(|g| reply(d.master_record(g))).collect())
        }
        "master" => {
            group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| reply(d.master_record(&g)))
        }
        "replicas" | "slaves" => group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| {
            Reply::Array(d.replica_records(&g).into_iter().map(reply).collect())
        }),
        "sentinels" => group(d, &a[0]).map_or(Reply::error(NO_SUCH_MASTER), |g| {
            Reply::Array(d.sentinel_records(&g).into_iter().map(reply).collect())
        }),
        "ckquorum" => ckquorum(d, &a[0]),
        "myid" => Reply::bulk(d.myid.as_bytes()),
        "reset" => {
            // The state is the committed log's; there is no local view to forget. The count is
            // what clients read.
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
        "flushconfig" => Reply::ok(),
        "pending-scripts" => Reply::Array(Vec::new()),
        _ => Reply::bulks(HELP.iter().map(|l| l.as_bytes())),
    }
}

/// The subcommands that change the cluster state or start a failover (see [`LATER`]).
pub async fn later(d: &Discovery, sub: &str, a: Vec<String>) -> Reply {
    match sub {
        "failover" => failover(d, &a[0]).await,
        "monitor" => monitor(d, &a).await,
        "remove" => {
            if group(d, &a[0]).is_none() {
                return Reply::error(NO_SUCH_MASTER);
            }
            propose(
                d,
                Command::Remove {
                    group: a[0].clone(),
                },
            )
            .await
        }
        _ => set(d, &a).await,
    }
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
    let r = master_addr(d, group);
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

fn master_addr(d: &Discovery, name: &[u8]) -> Reply {
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
    match addr.and_then(|n| n.data.rsplit_once(':')) {
        Some((ip, port)) => Reply::Array(vec![
            Reply::bulk(ip.as_bytes()),
            Reply::bulk(port.as_bytes()),
        ]),
        None => Reply::NilArray,
    }
}

async fn failover(d: &Discovery, name: &str) -> Reply {
    if group(d, name).is_none() {
        return Reply::error(NO_SUCH_MASTER);
    }
    // As long as a gRPC call waits: a read lost in an election is retried, not refused.
    if d.raft
        .linearizable(crate::driver::CALL_BUDGET)
        .await
        .is_err()
    {
        return Reply::error(
            "NOQUORUM this sentinel cannot reach the sentinel majority; ask another sentinel",
        );
    }
    match crate::controller::switchover(&d.raft, &d.nodes, name, None).await {
        Ok(()) => Reply::ok(),
        Err(SwitchoverError::InProgress(_)) => Reply::error("INPROG Failover already in progress"),
        Err(SwitchoverError::NoGoodReplica(_) | SwitchoverError::NoMaster(_)) => {
            Reply::error("NOGOODSLAVE No suitable replica to promote")
        }
        Err(e) => Reply::error(format!("ERR {e}")),
    }
}

fn ckquorum(d: &Discovery, name: &str) -> Reply {
    let Some(g) = group(d, name) else {
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

async fn propose(d: &Discovery, cmd: Command) -> Reply {
    match d.raft.propose(cmd, std::time::Duration::from_secs(5)).await {
        Ok(()) => Reply::ok(),
        Err(e) => Reply::error(format!("ERR {e}")),
    }
}

async fn monitor(d: &Discovery, a: &[String]) -> Reply {
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
        }],
        settings: Settings {
            quorum: quorum as u32,
            ..Settings::default()
        },
    };
    propose(d, Command::Monitor(spec)).await
}

async fn set(d: &Discovery, a: &[String]) -> Reply {
    if group(d, &a[0]).is_none() {
        return Reply::error(NO_SUCH_MASTER);
    }
    let mut changes = Vec::new();
    for pair in a[1..].chunks(2) {
        let key = pair[0].to_lowercase();
        let known = matches!(
            key.as_str(),
            "quorum"
                | "down-after-milliseconds"
                | "failover-timeout"
                | "parallel-syncs"
                | "max-lag-on-failover"
                | "sync-replicas"
                | "min-failover-interval"
        );
        let Some(value) = pair.get(1).filter(|_| known) else {
            return Reply::error(format!(
                "ERR Unknown option or number of arguments for SENTINEL SET '{}'",
                pair[0]
            ));
        };
        let positive = matches!(
            key.as_str(),
            "quorum" | "down-after-milliseconds" | "failover-timeout" | "parallel-syncs"
        );
        match value.parse::<i64>() {
            Ok(v) if v > 0 || (v == 0 && !positive) => changes.push((key, value.clone())),
            _ => {
                return Reply::error(format!(
                    "ERR Invalid argument '{value}' for SENTINEL SET '{}'",
                    pair[0]
                ));
            }
        }
    }
    for (key, value) in changes {
        let r = propose(
            d,
            Command::SetOption {
                group: a[0].clone(),
                key,
                value,
            },
        )
        .await;
        if r.is_error() {
            return r;
        }
    }
    Reply::ok()
}
