//! `CLUSTER`: the cluster protocol's read side, answered from the view the sentinels push
//! ([`crate::cluster`]): SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT, COUNTKEYSINSLOT,
//! GETKEYSINSLOT, LINKS, REPLICAS, HELP.
//!
//! # Format
//! `CLUSTER <subcommand> [<arg> ...]`
//!
//! The reply builders are pure functions of the view, so their shapes are tested without IO.
//! Subcommands that change the topology in Redis (MEET, ADDSLOTS, SETSLOT, FAILOVER…) are
//! refused: the sentinels own the slot map. Without a view every subcommand answers Redis'
//! `cluster support disabled` error.

use bytes::Bytes;
use vigil_base::clock::unix_ms;
use vigil_resp::args::{lossy_lower, parse_int};
use vigil_resp::command::{unknown_subcommand, wrong_arity};
use vigil_resp::slot::{SLOTS, key_slot};
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use super::stream_groups::help;
use crate::cluster::{Member, View};
use crate::db::Db;
use crate::node::{Handler, Node, row};
use crate::session::ConnState;

/// The row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "cluster",
        -2,
        [STALE],
        0,
        0,
        0,
        "cluster",
        "A container for Redis Cluster commands.",
        Node(cluster)
    )]
}

/// Redis 7.0's subcommands and their arity (negative: at least).
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("addslots", -3),
    ("addslotsrange", -4),
    ("bumpepoch", 2),
    ("count-failure-reports", 3),
    ("countkeysinslot", 3),
    ("delslots", -3),
    ("delslotsrange", -4),
    ("failover", -2),
    ("flushslots", 2),
    ("forget", 3),
    ("getkeysinslot", 4),
    ("help", 2),
    ("info", 2),
    ("keyslot", 3),
    ("links", 2),
    ("meet", -4),
    ("myid", 2),
    ("nodes", 2),
    ("replicas", 3),
    ("replicate", 3),
    ("reset", -2),
    ("saveconfig", 2),
    ("set-config-epoch", 3),
    ("setslot", -4),
    ("shards", 2),
    ("slaves", 3),
    ("slots", 2),
];

/// The subcommands that change the topology in Redis; here the sentinels do.
const MANAGED: &[&str] = &[
    "addslots",
    "addslotsrange",
    "bumpepoch",
    "delslots",
    "delslotsrange",
    "failover",
    "flushslots",
    "forget",
    "meet",
    "replicate",
    "reset",
    "saveconfig",
    "set-config-epoch",
    "setslot",
];

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "The slot map is managed by the Vigil sentinels (`vigil ctl cluster ...`): MEET, ADDSLOTS,",
    "SETSLOT, FAILOVER and the other subcommands that change it are refused.",
    "HELP",
    "    Prints this help.",
];

fn cluster(node: &Node, conn: &mut Conn<ConnState>, args: Args) {
    let args = args.all();
    let sub = lossy_lower(&args[1]);
    let Some(&(name, arity)) = SUBCOMMANDS.iter().find(|(n, _)| *n == sub) else {
        conn.reply(unknown_subcommand("cluster", &args[1]));
        return;
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
        conn.reply(wrong_arity(&format!("cluster|{name}")));
        return;
    }
    let Some(view) = node.cluster_view() else {
        conn.reply(Reply::error(
            "ERR This instance has cluster support disabled",
        ));
        return;
    };
    let reply = match name {
        "help" => help(HELP),
        "slots" => slots(&view, conn.tls),
        "shards" => shards(&view, node.offset()),
        "nodes" => Reply::Verbatim(Bytes::from(nodes(&view, conn.tls))),
        "info" => Reply::Verbatim(Bytes::from(info(&view))),
        "myid" => Reply::bulk(view.my_id.as_bytes()),
        "links" => Reply::Array(Vec::new()),
        "keyslot" => Reply::Int(key_slot(&args[2]) as i64),
        "countkeysinslot" => match slot_arg(&args[2]) {
            Ok(slot) => Reply::Int(keys_in_slot(node, slot, usize::MAX).len() as i64),
            Err(r) => r,
        },
        "getkeysinslot" => getkeysinslot(node, &args[2], &args[3]),
        "replicas" | "slaves" => replicas(&view, &args[2], conn.tls),
        "count-failure-reports" => Reply::Int(0),
        m if MANAGED.contains(&m) => Reply::error(format!(
            "ERR CLUSTER {} is not available: the slot map of a Vigil cluster is managed by the sentinels, use `vigil ctl cluster ...`",
            m.to_uppercase()
        )),
        _ => unknown_subcommand("cluster", &args[1]),
    };
    conn.reply(reply);
}

/// A slot argument (Redis 7.0's errors).
fn slot_arg(a: &[u8]) -> Result<u16, Reply> {
    match parse_int(a) {
        Err(_) => Err(Reply::error("ERR value is not an integer or out of range")),
        Ok(s) if !(0..SLOTS as i64).contains(&s) => Err(Reply::error("ERR Invalid slot")),
        Ok(s) => Ok(s as u16),
    }
}

fn getkeysinslot(node: &Node, slot: &[u8], count: &[u8]) -> Reply {
    let (Ok(slot), Ok(count)) = (parse_int(slot), parse_int(count)) else {
        return Reply::error("ERR value is not an integer or out of range");
    };
    if !(0..SLOTS as i64).contains(&slot) || count < 0 {
        return Reply::error("ERR Invalid slot or number of keys");
    }
    let keys = keys_in_slot(node, slot as u16, count as usize);
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}

/// Up to `max` live keys of database 0 in `slot`.
fn keys_in_slot(node: &Node, slot: u16, max: usize) -> Vec<Bytes> {
    let mut store = node.store.lock();
    store.dbs[0].keys.index_slots();
    slot_keys(&store.dbs[0], unix_ms(), slot, max)
}

/// Up to `max` keys of `db` in `slot`, expired ones left out (through the slot index).
fn slot_keys(db: &Db, now: i64, slot: u16, max: usize) -> Vec<Bytes> {
    db.keys
        .in_slot(slot)
        .filter(|(k, _)| !db.is_expired(&k[..], now))
        .take(max)
        .map(|(k, _)| Bytes::copy_from_slice(&k[..]))
        .collect()
}

/// A node entry of CLUSTER SLOTS: `[endpoint, port, id, metadata]`.
fn slots_node(m: &Member, tls: bool) -> Reply {
    let (host, port) = m.endpoint(tls);
    Reply::Array(vec![
        Reply::bulk(host.as_bytes()),
        Reply::Int(port as i64),
        Reply::bulk(m.id.as_bytes()),
        Reply::Map(Vec::new()),
    ])
}

/// `CLUSTER SLOTS`: per maximal run of slots of one shard, ascending, `[start, end, master,
/// replica…]`; runs of a shard without a master are left out (clients must not be sent there).
pub fn slots(view: &View, tls: bool) -> Reply {
    let mut out = Vec::new();
    for (start, end, i) in view.runs() {
        let shard = &view.shards[i];
        let Some(master) = &shard.master else {
            continue;
        };
        let mut entry = vec![
            Reply::Int(start as i64),
            Reply::Int(end as i64),
            slots_node(master, tls),
        ];
        entry.extend(shard.replicas.iter().map(|r| slots_node(r, tls)));
        out.push(Reply::Array(entry));
    }
    Reply::Array(out)
}

fn field(name: &'static str, value: Reply) -> (Reply, Reply) {
    (Reply::bulk_static(name), value)
}

/// `CLUSTER SHARDS`: every shard with its slot ranges and nodes; `my_offset` is this node's
/// replication offset (others are reported as 0).
pub fn shards(view: &View, my_offset: u64) -> Reply {
    let node = |m: &Member, role: &'static str| {
        let mut f = vec![
            field("id", Reply::bulk(m.id.as_bytes())),
            field("port", Reply::Int(m.port as i64)),
        ];
        if m.tls_port != 0 {
            f.push(field("tls-port", Reply::Int(m.tls_port as i64)));
        }
        let offset = if m.id == view.my_id { my_offset } else { 0 };
        f.extend([
            field("ip", Reply::bulk(m.host.as_bytes())),
            field("endpoint", Reply::bulk(m.host.as_bytes())),
            field("role", Reply::bulk_static(role)),
            field("replication-offset", Reply::Int(offset as i64)),
            field("health", Reply::bulk_static("online")),
        ]);
        Reply::Map(f)
    };
    let out = view
        .shards
        .iter()
        .map(|s| {
            let slots = s
                .ranges
                .iter()
                .flat_map(|&(a, b)| [Reply::Int(a as i64), Reply::Int(b as i64)])
                .collect();
            let nodes = s
                .master
                .iter()
                .map(|m| node(m, "master"))
                .chain(s.replicas.iter().map(|r| node(r, "replica")))
                .collect();
            Reply::Map(vec![
                field("slots", Reply::Array(slots)),
                field("nodes", Reply::Array(nodes)),
            ])
        })
        .collect();
    Reply::Array(out)
}

/// One CLUSTER NODES line, without its newline: `of` is `Some(master id or "-")` for a
/// replica, `None` for a master.
fn node_line(
    view: &View,
    m: &Member,
    of: Option<&str>,
    epoch: u64,
    tls: bool,
    ranges: &[(u16, u16)],
) -> String {
    use std::fmt::Write as _;
    let (host, port) = m.endpoint(tls);
    let me = if m.id == view.my_id { "myself," } else { "" };
    let role = if of.is_some() { "slave" } else { "master" };
    let of = of.unwrap_or("-");
    let mut line = format!(
        "{} {host}:{port}@0 {me}{role} {of} 0 0 {epoch} connected",
        m.id
    );
    for &(a, b) in ranges {
        let _ = if a == b {
            write!(line, " {a}")
        } else {
            write!(line, " {a}-{b}")
        };
    }
    line
}

/// `CLUSTER NODES`: one line per node, masters with their slot ranges.
pub fn nodes(view: &View, tls: bool) -> String {
    let mut out = String::new();
    for s in &view.shards {
        if let Some(m) = &s.master {
            out.push_str(&node_line(view, m, None, s.epoch, tls, &s.ranges));
            out.push('\n');
        }
        let of = s.master.as_ref().map_or("-", |m| m.id.as_str());
        for r in &s.replicas {
            out.push_str(&node_line(view, r, Some(of), s.epoch, tls, &[]));
            out.push('\n');
        }
    }
    out
}

/// `CLUSTER INFO`, Redis' fields.
pub fn info(view: &View) -> String {
    let (assigned, ok) = view.slot_counts();
    let state = if ok == SLOTS as usize { "ok" } else { "fail" };
    let known: usize = view
        .shards
        .iter()
        .map(|s| s.replicas.len() + usize::from(s.master.is_some()))
        .sum();
    let size = view.shards.iter().filter(|s| !s.ranges.is_empty()).count();
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{known}\r\ncluster_size:{size}\r\ncluster_current_epoch:{e}\r\ncluster_my_epoch:{e}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
        assigned - ok,
        e = view.epoch
    )
}

/// `CLUSTER REPLICAS <node-id>`: the NODES lines of a master's replicas.
fn replicas(view: &View, id: &[u8], tls: bool) -> Reply {
    let id = String::from_utf8_lossy(id);
    let Some(shard) = view
        .shards
        .iter()
        .find(|s| s.master.iter().chain(&s.replicas).any(|m| m.id == id))
    else {
        return Reply::error(format!("ERR Unknown node {id}"));
    };
    let Some(master) = shard.master.as_ref().filter(|m| m.id == id) else {
        return Reply::error("ERR The specified node is not a master");
    };
    let lines = shard
        .replicas
        .iter()
        .map(|r| {
            let line = node_line(view, r, Some(&master.id), shard.epoch, tls, &[]);
            Reply::bulk_string(line)
        })
        .collect();
    Reply::Array(lines)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use vigil_resp::Protocol;

    use super::*;
    use crate::cluster::tests::{id, view};

    fn resp(r: &Reply, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        r.encode(proto, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn node(port: u16, n: u8) -> String {
        format!("*4\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n", id(n))
    }

    #[test]
    fn slots_reply_is_redis_7_shaped() {
        let v = view(1, "a");
        let want = format!(
            "*3\r\n*4\r\n:0\r\n:5460\r\n{}*0\r\n{}*0\r\n*4\r\n:5461\r\n:10922\r\n{}*0\r\n{}*0\r\n*3\r\n:10923\r\n:16383\r\n{}*0\r\n",
            node(7001, 1),
            node(7002, 2),
            node(7003, 3),
            node(7004, 4),
            node(7005, 5)
        );
        assert_eq!(resp(&slots(&v, false), Protocol::Resp2), want);
        // RESP3: the metadata is an empty map; a TLS client sees TLS ports where there are.
        let r3 = resp(&slots(&v, true), Protocol::Resp3);
        assert!(
            r3.contains(&format!(
                "*4\r\n$9\r\n127.0.0.1\r\n:8005\r\n$40\r\n{}\r\n%0\r\n",
                id(5)
            )),
            "{r3}"
        );
        assert!(r3.contains(":7003\r\n"), "{r3}");
    }

    #[test]
    fn slots_merge_adjacent_ranges_and_skip_headless_shards() {
        let mut pv = crate::cluster::tests::pb_view(1, "a");
        pv.shards[0].slots = vec![
            vigil_proto::node::SlotRange { start: 0, end: 99 },
            vigil_proto::node::SlotRange {
                start: 100,
                end: 200,
            },
            vigil_proto::node::SlotRange {
                start: 300,
                end: 5460,
            },
        ];
        pv.shards[1].master = None;
        let v = View::from_proto(&pv, String::new()).unwrap();
        let Reply::Array(entries) = slots(&v, false) else {
            panic!()
        };
        let bounds: Vec<(i64, i64)> = entries
            .iter()
            .map(|e| match e {
                Reply::Array(x) => match (&x[0], &x[1]) {
                    (Reply::Int(a), Reply::Int(b)) => (*a, *b),
                    _ => panic!(),
                },
                _ => panic!(),
            })
            .collect();
        assert_eq!(bounds, [(0, 200), (300, 5460), (10923, 16383)]);
        assert!(info(&v).starts_with("cluster_state:fail\r\ncluster_slots_assigned:16285\r\ncluster_slots_ok:10823\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:5462\r\n"), "{}", info(&v));
    }

    #[test]
    fn nodes_lines() {
        let v = view(2, "a");
        let e = |n: u8| id(n);
        let want = format!(
            "{} 127.0.0.1:7001@0 master - 0 0 1 connected 0-5460\n\
             {} 127.0.0.1:7002@0 myself,slave {} 0 0 1 connected\n\
             {} 127.0.0.1:7003@0 master - 0 0 1 connected 5461-10922\n\
             {} 127.0.0.1:7004@0 slave {} 0 0 1 connected\n\
             {} 127.0.0.1:7005@0 master - 0 0 1 connected 10923-16383\n",
            e(1),
            e(2),
            e(1),
            e(3),
            e(4),
            e(3),
            e(5)
        );
        assert_eq!(nodes(&v, false), want);
        let mut pv = crate::cluster::tests::pb_view(1, "a");
        pv.shards[0].slots = vec![
            vigil_proto::node::SlotRange { start: 7, end: 7 },
            vigil_proto::node::SlotRange { start: 0, end: 5 },
        ];
        pv.shards[1].master = None;
        let v = View::from_proto(&pv, String::new()).unwrap();
        let text = nodes(&v, true);
        assert!(
            text.starts_with(&format!(
                "{} 127.0.0.1:7001@0 myself,master - 0 0 1 connected 0-5 7\n",
                e(1)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{} 127.0.0.1:7004@0 slave - 0 0 1 connected\n",
                e(4)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 127.0.0.1:8005@0 master", e(5))),
            "{text}"
        );
    }

    #[test]
    fn info_and_shards() {
        let v = view(1, "a");
        assert_eq!(
            info(&v),
            "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:5\r\ncluster_size:3\r\ncluster_current_epoch:3\r\ncluster_my_epoch:3\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        let r3 = resp(&shards(&v, 42), Protocol::Resp3);
        let first = format!(
            "*3\r\n%2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n%7\r\n$2\r\nid\r\n$40\r\n{}\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:42\r\n$6\r\nhealth\r\n$6\r\nonline\r\n%7\r\n",
            id(1)
        );
        assert!(r3.starts_with(&first), "{r3}");
        assert!(
            r3.contains("$7\r\nreplica\r\n$18\r\nreplication-offset\r\n:0\r\n"),
            "{r3}"
        );
        // The TLS master lists its tls-port (8 fields); RESP2 flattens the maps.
        assert!(r3.contains("%8\r\n"), "{r3}");
        assert!(resp(&shards(&v, 0), Protocol::Resp2).starts_with("*3\r\n*4\r\n$5\r\nslots\r\n"));
    }

    #[test]
    fn keys_in_a_slot() {
        let mut store = crate::db::Store::new(1);
        // Kept from before the first key: the index follows every change.
        store.dbs[0].keys.index_slots();
        let mut props = Vec::new();
        let mut ctx = crate::ctx::Ctx::new(&mut store, 0, 1_000, &mut props);
        let table = crate::cmd::table();
        let Some((_, Handler::Data(f))) = table.get(b"set") else {
            panic!("SET is a data command")
        };
        let set = |ctx: &mut crate::ctx::Ctx, a: &[&str]| {
            let mut args = Args::new(a.iter().map(|w| Bytes::from(w.to_string())).collect());
            f(ctx, &mut args).unwrap();
        };
        for k in ["{user1000}.a", "user1000", "foo", "{user1000}.b"] {
            set(&mut ctx, &["set", k, "v"]);
        }
        set(&mut ctx, &["set", "{user1000}.gone", "v", "px", "1"]);
        drop(ctx);
        // The newest first, as Redis lists them.
        let got = slot_keys(&store.dbs[0], 5_000, 3443, usize::MAX);
        assert_eq!(got, ["{user1000}.b", "user1000", "{user1000}.a"]);
        assert_eq!(slot_keys(&store.dbs[0], 5_000, 3443, 2).len(), 2);
        assert_eq!(slot_keys(&store.dbs[0], 5_000, 12182, 9), ["foo"]);
        assert!(slot_keys(&store.dbs[0], 5_000, 0, 9).is_empty());
    }

    #[test]
    fn replicas_and_slot_arguments() {
        let v = view(1, "a");
        assert_eq!(
            resp(&replicas(&v, id(3).as_bytes(), false), Protocol::Resp2),
            {
                let l = format!("{} 127.0.0.1:7004@0 slave {} 0 0 1 connected", id(4), id(3));
                format!("*1\r\n${}\r\n{l}\r\n", l.len())
            }
        );
        assert_eq!(
            resp(&replicas(&v, id(4).as_bytes(), false), Protocol::Resp2),
            "-ERR The specified node is not a master\r\n"
        );
        assert!(
            resp(&replicas(&v, b"zz", false), Protocol::Resp2).starts_with("-ERR Unknown node zz")
        );
        let cases: &[(&[u8], Result<u16, &str>)] = &[
            (b"0", Ok(0)),
            (b"16383", Ok(16383)),
            (b"16384", Err("-ERR Invalid slot\r\n")),
            (b"-1", Err("-ERR Invalid slot\r\n")),
            (
                b"x",
                Err("-ERR value is not an integer or out of range\r\n"),
            ),
        ];
        for (i, (arg, want)) in cases.iter().enumerate() {
            let got = slot_arg(arg).map_err(|r| resp(&r, Protocol::Resp2));
            assert_eq!(got, want.map_err(String::from), "#{i}");
        }
    }
}
