//! DEBUG: the subcommands Redis' test suite and tools use — SLEEP, RELOAD (through the
//! snapshot codec), OBJECT, SET-ACTIVE-EXPIRE, DIGEST and DIGEST-VALUE (Redis' own digest),
//! PROTOCOL, CHANGE-REPL-ID, STRINGMATCH-TEST/-LEN, QUICKLIST-PACKED-THRESHOLD, LISTPACK,
//! HELP (JMAP is gone from Redis 7.0, and so answers as unknown). Crash and memory-tuning subcommands are not offered.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use vigil_resp::args::lossy_lower;
use vigil_resp::{Args, CommandMeta, Conn, Protocol, Reply};

use crate::db::digest::{dataset_digest, hex, key_digest};
use crate::db::{Store, Value};
use crate::node::{Handler, Node, row};
use crate::persist::snapshot;
use crate::session::ConnState;

/// The DEBUG row.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![row!(
        "debug",
        -2,
        [ADMIN, NOSCRIPT, STALE],
        0,
        0,
        0,
        "server",
        "Testing and inspection helpers.",
        Node(debug)
    )]
}

const HELP: &[&str] = &[
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "LISTPACK <key>",
    "    Show low level info about the listpack encoding of <key>.",
    "LOADAOF",
    "    Write the append log out and reload the dataset from the files (the snapshot and",
    "    the logs), as a restart loads it.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Sets the threshold for elements to be inserted as plain vs packed nodes",
    "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    "RELOAD [option ...]",
    "    Save the snapshot on disk and reload the dataset through it. Options MERGE,",
    "    NOFLUSH, NOSAVE are accepted; NOSAVE skips writing the file.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "STRINGMATCH-TEST",
    "    Run a fuzz tester against the glob matcher.",
];

fn debug(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let rest = args.rest();
    let resp3 = conn.proto == Protocol::Resp3;
    let r = match (lossy_lower(&raw).as_str(), rest.len()) {
        ("help", 0) => crate::cmd::slowlog::help("DEBUG", HELP),
        ("sleep", 1) => {
            let secs = vigil_resp::args::parse_float(&rest[0]).unwrap_or(0.0);
            // The whole dataset waits, as Redis' single thread would.
            let _store = node.store.lock();
            let d = Duration::from_secs_f64(secs.clamp(0.0, 1e6));
            tokio::task::block_in_place(|| std::thread::sleep(d));
            Reply::ok()
        }
        ("reload", _) => reload(node, &rest),
        ("loadaof", 0) => load_aof(node),
        ("object", 1) => object(&mut node.store.lock(), conn.db, &rest[0]),
        ("set-active-expire", 1) => {
            let on = vigil_resp::args::parse_int(&rest[0]).unwrap_or(0) != 0;
            node.active_expire.store(on, Ordering::Relaxed);
            Reply::ok()
        }
        ("change-repl-id", 0) => Reply::ok(),
        ("digest", 0) => Reply::Simple(hex(&dataset_digest(&node.store.lock())).into()),
        ("digest-value", _) => {
            let store = node.store.lock();
            let db = &store.dbs[conn.db];
            Reply::Array(
                rest.iter()
                    .map(|k| Reply::Simple(hex(&key_digest(db, k)).into()))
                    .collect(),
            )
        }
        ("protocol", 1) => {
            if let Some(prefix) = protocol(&rest[0], resp3) {
                conn.reply(prefix);
            }
            protocol_reply(&rest[0], resp3)
        }
        ("stringmatch-test" | "stringmatch-len", 0) => {
            Reply::simple("Apparently Redis did not crash: test passed")
        }
        ("quicklist-packed-threshold", 1) => {
            match crate::config::parse_size(&String::from_utf8_lossy(&rest[0])) {
                Some(n) if n < 4 * 1024 * 1024 * 1024 => Reply::ok(),
                _ => Reply::error(
                    "ERR argument must be a memory value bigger than 1 and smaller than 4gb",
                ),
            }
        }
        ("listpack" | "ziplist", 1) => {
            let store = node.store.lock();
            match store.dbs[conn.db].keys.get(&rest[0][..]) {
                None => Reply::error("ERR no such key"),
                Some(v) if store.thresholds.encoding(v) == "listpack" => {
                    Reply::simple("Listpack structure printed on stdout")
                }
                Some(_) => Reply::error("ERR Not a listpack encoded object."),
            }
        }
        _ => Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&raw)
        )),
    };
    conn.reply(r);
}

/// What comes before PROTOCOL's reply: RESP3 attributes (written raw: they are no reply of
/// their own) and push messages.
fn protocol(name: &[u8], resp3: bool) -> Option<Reply> {
    match (&lossy_lower(name)[..], resp3) {
        ("attrib", true) => Some(Reply::Encoded(Bytes::from_static(
            b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n",
        ))),
        ("push", true) => Some(Reply::Push(vec![
            Reply::bulk_static("server-cpu-usage"),
            Reply::Int(42),
        ])),
        _ => None,
    }
}

fn protocol_reply(name: &[u8], resp3: bool) -> Reply {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    match &lossy_lower(name)[..] {
        "string" => Reply::bulk_static("Hello World"),
        "integer" => Reply::Int(12345),
        // Redis' fixed test value, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        "double" => Reply::Double(3.141),
        "bignum" => Reply::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        "null" => Reply::Nil,
        "array" => Reply::Array(ints()),
        "set" => Reply::Set(ints()),
        "map" => Reply::Map(
            (0..3)
                .map(|j| (Reply::Int(j), Reply::Bool(j == 1)))
                .collect(),
        ),
        "attrib" => Reply::bulk_static("Some real reply following the attribute"),
        "push" if !resp3 => Reply::error("ERR RESP2 is not supported by this command"),
        "push" => Reply::bulk_static("Some real reply following the push reply"),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        "verbatim" => Reply::Verbatim(Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Reply::error(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}

/// RELOAD: write the snapshot (unless NOSAVE), then replace the dataset by its round trip
/// through the snapshot codec, under one hold of the store lock. Blocked clients and WATCHes
/// live beside the data and stay.
fn reload(node: &Node, opts: &[Bytes]) -> Reply {
    let mut save = true;
    for o in opts {
        match &lossy_lower(o)[..] {
            "nosave" => save = false,
            "merge" | "noflush" => {}
            _ => {
                return Reply::error(
                    "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                );
            }
        }
    }
    if save && let Err(e) = node.save() {
        return Reply::error(format!("ERR Error trying to save the DB: {e}"));
    }
    let mut store = node.store.lock();
    let bytes = snapshot::encode(&store, &snapshot::Header::default());
    match snapshot::decode(&bytes, store.dbs.len(), &store.thresholds) {
        Ok((_, fresh)) => {
            replace_data(&mut store, fresh);
            Reply::ok()
        }
        Err(e) => Reply::error(format!("ERR Error trying to load the snapshot: {e}")),
    }
}

/// LOADAOF: the dataset again from the files, as a restart loads it (the snapshot, then the
/// logs), once everything appended so far is written. Nothing is propagated: the log already
/// holds it.
fn load_aof(node: &Node) -> Reply {
    let Some(aof) = &node.persist.aof else {
        return Reply::error("ERR DEBUG LOADAOF needs the append log (appendonly yes)");
    };
    if let Some(e) = aof.last_error() {
        return Reply::error(format!("ERR Error writing the append log: {e}"));
    }
    // A compaction deletes the logs its snapshot covers as it ends: not while they are read.
    if !node.persist.try_begin() {
        return Reply::error(
            "ERR Background append only file rewriting in progress: try DEBUG LOADAOF again once it ends",
        );
    }
    let reply = reload_from_files(node, aof);
    node.persist.release();
    reply
}

fn reload_from_files(node: &Node, aof: &crate::persist::aof::Aof) -> Reply {
    let mut store = node.store.lock();
    if !aof.drain() {
        return Reply::error(format!(
            "ERR Error writing the append log: {}",
            aof.last_error().unwrap_or_default()
        ));
    }
    let limits = {
        let c = node.config.read();
        let l = &c.limits;
        (l.proto_max_bulk_len as usize, l.max_multibulk_len as usize)
    };
    let dir = &node.persist.dir;
    let loaded =
        crate::persist::read_dir(dir, store.dbs.len(), &store.thresholds).and_then(|mut rec| {
            rec.store.limits = store.limits;
            let mut pos = crate::persist::replay::ReplPos {
                replid: rec.repl.0,
                offset: rec.repl.1,
                data_offset: rec.repl.1,
                db: None,
            };
            let now = vigil_base::clock::unix_ms();
            crate::replay::replay_logs(
                &node.table,
                &mut rec.store,
                &rec.logs,
                &mut pos,
                limits,
                now,
            )?;
            Ok(rec.store)
        });
    match loaded {
        Ok(fresh) => {
            replace_data(&mut store, fresh);
            Reply::ok()
        }
        Err(e) => Reply::error(format!("ERR Error trying to load the append log: {e}")),
    }
}

/// Puts a loaded dataset in place of the current one, which is flushed first as Redis empties
/// it: WATCHes of its keys fail, tracking clients are told, stream readers look again.
fn replace_data(store: &mut Store, fresh: Store) {
    let policy = store.access_policy();
    let track = store.notify.wants(crate::db::notify::NEW);
    for (db, new) in store.dbs.iter_mut().zip(fresh.dbs) {
        let by_slot = db.keys.slots_indexed();
        db.clear();
        db.keys = new.keys;
        db.keys.set_policy(policy);
        db.keys.track_created(track);
        if by_slot {
            db.keys.index_slots();
        }
        db.expires = new.expires;
        db.edited = new.edited;
    }
    store.functions = fresh.functions;
}

/// OBJECT: Redis' one-line report, with the key's access stamp; the serialized length is the
/// value's estimated size (MEMORY USAGE).
fn object(store: &mut Store, db: usize, key: &[u8]) -> Reply {
    let Some(v) = store.dbs[db].keys.get(key) else {
        return Reply::error("ERR no such key");
    };
    let e = store.thresholds.encoding(v);
    let size = crate::cmd::memory::value_bytes(v);
    let extra = match v {
        Value::List(l) => {
            let bytes: usize = l.iter().map(|e| e.len() + 2).sum();
            let nodes = (l.len().max(1)).div_ceil(128);
            format!(
                " ql_nodes:{nodes} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:0 ql_uncompressed_size:{bytes}",
                l.len() as f64 / nodes as f64,
                store.thresholds.list_max_listpack_size
            )
        }
        _ => String::new(),
    };
    let keys = &store.dbs[db].keys;
    let lru = keys.stamp(key).unwrap_or(0);
    let idle = keys.idle_secs(key).unwrap_or(0);
    Reply::Simple(
        format!(
            "Value at:{:p} refcount:1 encoding:{e} serializedlength:{size} lru:{lru} lru_seconds_idle:{idle}{extra}",
            v as *const Value
        )
        .into(),
    )
}
