//! The sentinel endpoint's command table: the connection commands shared with the node
//! (`vigil_resp::connection`), `ROLE`, `INFO`, and `SENTINEL`, whose subcommands have a table
//! of their own ([`super::subcommands`]), each answered in Redis Sentinel's shapes and error
//! wording.

use vigil_resp::command::CommandTable;
use vigil_resp::{Args, CommandMeta, Flags, Reply};

use super::{Client, Discovery};
use crate::state::Group;

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
    CommandMeta::keyless(name, arity, flags, "sentinel", summary)
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
            vigil_base::REDIS_VERSION,
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
        let tilt = d.health.tilt();
        out.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\nsentinel_tilt_since_seconds:{}\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n",
            groups.len(),
            tilt.is_some() as u8,
            tilt.map_or(-1, |t| t.as_secs() as i64),
        ));
        for (i, g) in groups.iter().enumerate() {
            let m = d.master_record(g, conn.tls);
            let field = |k: &str| super::records::field(&m, k);
            let status = super::records::master_status(&m);
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
