//! Sharded clusters through real interfaces: groups of `vigil node`s under three sentinels, the
//! cluster created with `vigil ctl cluster create`, and then what a Redis Cluster client sees —
//! `CLUSTER SLOTS` from every node, redirects and errors worded as Redis words them, replica
//! reads after `READONLY`, unchanged cluster clients (redis-py, ioredis, node-redis,
//! `redis-cli -c`), and a client following a shard's failover after a SIGKILL.

use std::process::Command;
use std::time::Duration;

use vigil_tests::client_script::Client;
use vigil_tests::sharded::{Writer, assert_each_key_once, range_of, raw_reply, start_sharded};

#[test]
fn nodes_answer_the_cluster_protocol_as_redis_does() {
    // No failover here: a longer `down_after` (and so lease) keeps a master of a loaded
    // machine from answering CLUSTERDOWN for a renewal that came late.
    let c = start_sharded(3, 2, "3s", "");
    let slots = c.wait_serving(1, &[], Duration::from_secs(60));
    let bounds: Vec<(i64, i64)> = slots.iter().map(|r| (r.start, r.end)).collect();
    assert_eq!(bounds, [(0, 5460), (5461, 10922), (10923, 16383)]);
    // Each range belongs to the group created in that order, master and replica from it.
    for (g, r) in slots.iter().enumerate() {
        assert_eq!(c.find(r.master.1).0, g, "{r:?}");
        assert_eq!(c.find(r.replicas[0].1).0, g, "{r:?}");
        assert_eq!(r.master.0, "127.0.0.1");
    }
    // `foo` hashes to 12182 (the third group), `hello` to 866 (the first).
    let owner = range_of(&slots, 12182);
    let (master, replica) = (owner.master.1, owner.replicas[0].1);
    let elsewhere = range_of(&slots, 866).master.1;
    assert_eq!(raw_reply(master, &["SET", "foo", "bar"]), "+OK\r\n");
    assert_eq!(
        raw_reply(elsewhere, &["GET", "foo"]),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(
        raw_reply(master, &["MSET", "foo", "1", "hello", "2"]),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        raw_reply(master, &["MSET", "{foo}a", "1", "{foo}b", "2"]),
        "+OK\r\n"
    );
    assert_eq!(
        raw_reply(master, &["CLUSTER", "KEYSLOT", "foo"]),
        ":12182\r\n"
    );
    assert_eq!(
        raw_reply(master, &["SELECT", "1"]),
        "-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(raw_reply(master, &["SELECT", "0"]), "+OK\r\n");
    // Scripts: each call on a key this shard serves, and in the script's one slot unless it
    // is an EVAL without a shebang or says `allow-cross-slot-keys`, as Redis checks them.
    let local = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let slot = vigil_resp::slot::key_slot(k.as_bytes());
            (owner.start..=owner.end).contains(&i64::from(slot)) && slot != 12182
        })
        .unwrap();
    let eval = |script: &str, args: &[&str]| {
        let mut a = vec!["EVAL", script];
        a.extend(args);
        raw_reply(master, &a)
    };
    let two = "redis.call('SET', KEYS[1], '1') return redis.call('SET', ARGV[1], '2')";
    for (script, args, want) in [
        (
            "return redis.call('GET', 'hello')",
            &["0"][..],
            "-ERR Script attempted to access a non local key in a cluster node",
        ),
        (
            "return redis.call('MSET', '{foo}s', '1', ARGV[1], '2')",
            &["0", &local],
            "-ERR Script attempted to access a non local key in a cluster node",
        ),
        (
            "return redis.call('SELECT', '1')",
            &["0"],
            "-ERR SELECT is not allowed in cluster mode",
        ),
        (
            "return redis.call('MOVE', KEYS[1], '1')",
            &["1", "{foo}s"],
            "-ERR MOVE is not allowed in cluster mode",
        ),
        (two, &["1", "{foo}s", &local], "+OK"),
        (
            &format!("#!lua\n{two}"),
            &["1", "{foo}s", &local],
            "-ERR Script attempted to access keys that do not hash to the same slot",
        ),
        (
            &format!("#!lua flags=allow-cross-slot-keys\n{two}"),
            &["1", "{foo}s", &local],
            "+OK",
        ),
    ] {
        let got = eval(script, args);
        assert!(
            got.starts_with(want),
            "EVAL {script:?} {args:?}: {got:?}, not {want:?}"
        );
    }
    assert_eq!(raw_reply(master, &["DEL", &local]), ":1\r\n");
    assert_eq!(raw_reply(master, &["DEL", "{foo}s"]), ":1\r\n");
    // A replica redirects to its master until READONLY, then serves reads but not writes.
    let mut r = vigil_tests::RawConn::connect(replica).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.call(&["GET", "foo"])),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(r.call(&["READONLY"]), b"+OK\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while r.call(&["GET", "foo"]) != b"$3\r\nbar\r\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never served foo"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        String::from_utf8_lossy(&r.call(&["SET", "foo", "x"])),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(r.call(&["READWRITE"]), b"+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&r.call(&["GET", "foo"])),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    // A redirected command inside MULTI fails the transaction.
    let mut m = vigil_tests::RawConn::connect(elsewhere).unwrap();
    assert_eq!(m.call(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&m.call(&["SET", "foo", "1"])),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&m.call(&["EXEC"])),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // CLUSTER INFO, MYID: every node, distinct ids matching SLOTS.
    let mut ids = Vec::new();
    for (_, _, n) in c.nodes() {
        let info = raw_reply(n.port, &["CLUSTER", "INFO"]);
        for want in [
            "cluster_state:ok\r\n",
            "cluster_slots_assigned:16384\r\n",
            "cluster_known_nodes:6\r\n",
            "cluster_size:3\r\n",
        ] {
            assert!(
                info.contains(want),
                "node {}: {want:?} not in {info:?}",
                n.port
            );
        }
        let id = raw_reply(n.port, &["CLUSTER", "MYID"]);
        let id = id.lines().nth(1).unwrap_or_default().to_string();
        assert!(
            slots
                .iter()
                .any(|r| r.master.2 == id || r.replicas.iter().any(|x| x.2 == id)),
            "MYID {id} of {} is not in CLUSTER SLOTS",
            n.port
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "ids must be distinct");
    // foo, {foo}a and {foo}b share slot 12182.
    assert_eq!(
        raw_reply(master, &["CLUSTER", "COUNTKEYSINSLOT", "12182"]),
        ":3\r\n"
    );
    let keys = raw_reply(master, &["CLUSTER", "GETKEYSINSLOT", "12182", "10"]);
    for k in ["foo", "{foo}a", "{foo}b"] {
        assert!(
            keys.contains(&format!("\r\n{k}\r\n")),
            "{k} not in {keys:?}"
        );
    }
    // PUBLISH on one node reaches the subscribers of every node, replicas included.
    let mut subs: Vec<(u16, vigil_tests::RawConn)> = c
        .nodes()
        .map(|(_, _, n)| {
            let mut s = vigil_tests::RawConn::connect(n.port).unwrap();
            assert!(s.call(&["SUBSCRIBE", "news"]).ends_with(b":1\r\n"));
            (n.port, s)
        })
        .collect();
    assert_eq!(raw_reply(elsewhere, &["PUBLISH", "news", "hi"]), ":1\r\n");
    for (port, s) in &mut subs {
        let got = s.unsolicited(Duration::from_secs(5));
        assert_eq!(
            got.as_deref(),
            Some(&b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"[..]),
            "the subscriber on {port}"
        );
    }
    // Sharded pub/sub: a shard channel is served by its slot's master and replicas (READONLY
    // or not), redirected elsewhere; SPUBLISH reaches that shard's subscribers only.
    let mut ssubs: Vec<vigil_tests::RawConn> = [master, replica]
        .iter()
        .map(|&port| {
            let mut s = vigil_tests::RawConn::connect(port).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&s.call(&["SSUBSCRIBE", "foo"])),
                "*3\r\n$10\r\nssubscribe\r\n$3\r\nfoo\r\n:1\r\n",
                "SSUBSCRIBE on {port}"
            );
            s
        })
        .collect();
    assert_eq!(
        raw_reply(elsewhere, &["SSUBSCRIBE", "foo"]),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(
        raw_reply(master, &["SSUBSCRIBE", "foo", "hello"]),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        raw_reply(elsewhere, &["SPUBLISH", "foo", "x"]),
        format!("-MOVED 12182 127.0.0.1:{master}\r\n")
    );
    assert_eq!(
        raw_reply(replica, &["SPUBLISH", "foo", "via-replica"]),
        ":1\r\n"
    );
    assert_eq!(raw_reply(master, &["SPUBLISH", "foo", "hi"]), ":1\r\n");
    // Each subscriber hears both, in either order (one crossed from node to node).
    for s in &mut ssubs {
        let mut got: Vec<String> = (0..2)
            .map(|_| {
                String::from_utf8_lossy(&s.unsolicited(Duration::from_secs(5)).unwrap_or_default())
                    .into_owned()
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = ["hi", "via-replica"]
            .iter()
            .map(|m| {
                format!(
                    "*3\r\n$8\r\nsmessage\r\n$3\r\nfoo\r\n${}\r\n{m}\r\n",
                    m.len()
                )
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }
    // Commands that reach another database are refused as Redis refuses them.
    for (args, want) in [
        (
            &["MOVE", "foo", "1"][..],
            "-ERR MOVE is not allowed in cluster mode\r\n",
        ),
        (
            &["SWAPDB", "0", "1"][..],
            "-ERR SWAPDB is not allowed in cluster mode\r\n",
        ),
        (
            &["COPY", "foo", "{foo}c", "DB", "1"][..],
            "-ERR Copying to another database is not allowed in cluster mode\r\n",
        ),
    ] {
        assert_eq!(raw_reply(master, args), want, "{args:?}");
    }
    let hello = raw_reply(master, &["HELLO", "3"]);
    assert!(hello.contains("$4\r\nmode\r\n$7\r\ncluster\r\n"), "{hello}");
    // The operator's view.
    let status = c.ctl(&["cluster", "status"], 10);
    for want in [
        "Cluster c",
        "0-5460",
        "5461-10922",
        "10923-16383",
        "g1",
        "g3",
    ] {
        assert!(status.contains(want), "{want:?} not in:\n{status}");
    }
}

#[test]
fn unchanged_cluster_clients_read_and_write_every_slot() {
    let c = start_sharded(3, 2, "1s", "");
    c.wait_serving(1, &[], Duration::from_secs(60));
    let seed = format!("127.0.0.1:{}", c.groups[1][0].port);
    Client::spawn(
        "python",
        "tests/clients/python/cluster_client.py",
        &[seed.clone(), "basic".into()],
    )
    .finish();
    Client::spawn(
        "python",
        "tests/clients/python/cluster_client.py",
        &[seed.clone(), "basic".into(), "--asyncio".into()],
    )
    .finish();
    for lib in ["ioredis", "node-redis"] {
        Client::spawn(
            "node",
            "tests/clients/node/cluster_client.js",
            &[seed.clone(), lib.into()],
        )
        .finish();
    }
    // redis-cli -c follows MOVED from any node.
    let port = c.groups[0][0].port.to_string();
    for (cmd, want) in [
        (vec!["SET", "cli:{x}", "1"], "OK"),
        (vec!["SET", "foo", "cli"], "OK"),
        (vec!["GET", "foo"], "cli"),
        (vec!["INCR", "cli:{x}"], "2"),
    ] {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &port])
            .args(&cmd)
            .output()
            .expect("redis-cli (tests/run.sh installs it)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "redis-cli -c {cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_cluster_client_follows_a_shard_failover_and_loses_no_write() {
    let c = start_sharded(3, 3, "1s", "sync_replicas = 1\n");
    let slots = c.wait_serving(2, &[], Duration::from_secs(90));
    let seed = format!("127.0.0.1:{}", c.groups[2][0].port);
    let clients = FailoverClients::start(&seed, "fo");
    // SIGKILL the master of the first shard.
    let old = slots[0].master.1;
    let (g, i) = c.find(old);
    c.groups[g][i].signal(libc::SIGKILL);
    clients.finish(&seed, "fo");
    // Every other node now names a new master for the first shard's slots.
    let after = c.wait_serving(1, &[(g, i)], Duration::from_secs(30));
    assert_ne!(after[0].master.1, old, "{after:?}");
    assert_eq!(c.find(after[0].master.1).0, g);
}

/// redis-rs' cluster clients, sync and async, with reads from replicas: every key written
/// through one is read back through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_cluster_clients_route_every_key() {
    use redis::AsyncCommands;
    use redis::cluster_read_routing::RandomReplicaStrategy;
    let c = start_sharded(3, 2, "1s", "");
    c.wait_serving(1, &[], Duration::from_secs(60));
    let seeds = vec![format!("redis://127.0.0.1:{}/", c.groups[0][1].port)];
    let sync = redis::cluster::ClusterClient::new(seeds.clone()).unwrap();
    let mut conn = sync.get_connection().expect("sync cluster connection");
    for i in 0..500 {
        let () = redis::cmd("SET")
            .arg(format!("rs:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("SET rs:{i}: {e}"));
    }
    let reader = redis::cluster::ClusterClient::builder(seeds)
        .read_routing_strategy(RandomReplicaStrategy)
        .build()
        .unwrap();
    let mut a = reader
        .get_async_connection()
        .await
        .expect("async cluster connection");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for i in 0..500 {
        loop {
            let got: Option<i64> = a.get(format!("rs:{i}")).await.unwrap();
            if got == Some(i) {
                break;
            }
            // Replicas catch up asynchronously.
            assert!(std::time::Instant::now() < deadline, "rs:{i} read {got:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let () = a.set(format!("rs2:{i}"), i).await.unwrap();
    }
    for i in 0..500 {
        let got: i64 = redis::cmd("GET")
            .arg(format!("rs2:{i}"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(got, i);
    }
}

/// Slots move between shards under a steady stream of writes (`vigil ctl cluster move-slots`):
/// every acknowledged write is read back from the new owner, every key is in exactly one
/// shard (the source deleted its copies, on its replicas too), and every node serves the new
/// map. The longest a write waited is the migration's pause as a client sees it.
#[test]
fn slots_move_between_shards_under_writes_and_nothing_is_lost() {
    let c = start_sharded(3, 2, "2s", "sync_replicas = 1\n");
    let before = c.wait_serving(1, &[], Duration::from_secs(60));
    let (g1, g2) = (before[0].master.1, before[1].master.1);
    let seed = format!("127.0.0.1:{}", c.groups[2][0].port);
    let writer = Writer::start(&seed, "mv");
    // A client blocked on a key of a slot that moves is sent after it.
    let (queue, qslot) = (0u64..)
        .map(|i| format!("queue:{i}"))
        .map(|k| (k.clone(), vigil_resp::slot::key_slot(k.as_bytes())))
        .find(|(_, s)| *s <= 2000)
        .unwrap();
    let mut blocked = vigil_tests::RawConn::connect(g1).unwrap();
    blocked
        .send_raw(&vigil_tests::RawConn::encode(&["BLPOP", &queue, "0"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let out = c.move_slots("0-2000,3000", true);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("slots moved"),
        "move-slots: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let w = writer.stop();
    assert!(
        w.errors.is_empty(),
        "writes failed during the move: {:?}",
        w.errors
    );
    assert!(w.acked.len() > 100, "only {} writes", w.acked.len());
    // Every node serves the new map.
    let after = c.wait_serving(1, &[], Duration::from_secs(30));
    for (slot, owner) in [
        (0, g2),
        (2000, g2),
        (3000, g2),
        (2001, g1),
        (2999, g1),
        (3001, g1),
    ] {
        assert_eq!(
            range_of(&after, slot).master.1,
            owner,
            "slot {slot}: {after:?}"
        );
    }
    assert_each_key_once(&seed, "mv", &w, &after);
    assert_eq!(
        String::from_utf8_lossy(
            &blocked
                .unsolicited(Duration::from_secs(5))
                .unwrap_or_default()
        ),
        format!("-MOVED {qslot} 127.0.0.1:{g2}\r\n"),
        "the client blocked on {queue}"
    );
    println!(
        "move-slots under load: written={} acked={} longest_wait_ms={}",
        w.attempted,
        w.acked.len(),
        w.longest.as_millis()
    );
}

/// A live rebalance under an unchanged redis-py `RedisCluster` client: one group leaves
/// (`remove-group`: its slots go to the others) and joins again (`add-group`: a rebalance gives
/// it a third back). The client follows on its own and every write it saw acknowledged reads
/// back; every key is in one shard; a shard-channel subscriber of a slot that left its shard is
/// told (`sunsubscribe`).
#[test]
fn a_cluster_client_follows_a_live_rebalance() {
    let c = start_sharded(3, 2, "2s", "sync_replicas = 1\n");
    let slots = c.wait_serving(1, &[], Duration::from_secs(60));
    let g3 = slots[2].master.1;
    // `foo` (slot 12182) is the third group's until it leaves.
    let mut sub = vigil_tests::RawConn::connect(g3).unwrap();
    assert!(sub.call(&["SSUBSCRIBE", "foo"]).ends_with(b":1\r\n"));
    let seed = format!("127.0.0.1:{}", c.groups[0][0].port);
    let clients = FailoverClients::start(&seed, "rb");
    let removed = c.ctl(&["cluster", "remove-group", "c", "g3"], 120);
    assert!(removed.contains("g3 left c"), "{removed}");
    assert_eq!(
        sub.unsolicited(Duration::from_secs(10)).as_deref(),
        Some(&b"*3\r\n$12\r\nsunsubscribe\r\n$3\r\nfoo\r\n:0\r\n"[..]),
        "the subscriber of a slot that left"
    );
    let status = c.ctl(&["cluster", "status", "c"], 10);
    assert!(status.contains("groups g1,g2)"), "{status}");
    // The group that left (its view file gone, so a restart comes back standalone) still
    // sends a client with an older slot map on to the slots' owners: it would otherwise take
    // writes for slots it gave away, lost to the cluster.
    let (g, i) = c.find(g3);
    let view_file = c.groups[g][i].dir.join("cluster-view.pb");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while view_file.exists() {
        assert!(std::time::Instant::now() < deadline, "g3 never left");
        std::thread::sleep(Duration::from_millis(50));
    }
    let moved = raw_reply(g3, &["SET", "foo", "x"]);
    assert!(moved.starts_with("-MOVED 12182 "), "{moved}");
    assert_eq!(raw_reply(g3, &["GET", "foo"]), moved);
    let added = c.ctl(&["cluster", "add-group", "c", "g3"], 120);
    assert!(added.contains("g3 joined c"), "{added}");
    let (acked, extra) = clients.finish(&seed, "rb");
    let after = c.wait_serving(1, &[], Duration::from_secs(30));
    let owned = |port: u16| -> i64 {
        after
            .iter()
            .filter(|r| r.master.1 == port)
            .map(|r| r.end - r.start + 1)
            .sum()
    };
    let g3_now = after
        .iter()
        .find(|r| c.find(r.master.1).0 == 2)
        .map(|r| r.master.1)
        .expect("g3 owns slots again");
    assert!((5460..=5462).contains(&owned(g3_now)), "{after:?}");
    // Each key once: the masters hold what the clients wrote (and at most the writes whose
    // reply was lost).
    let mut masters: Vec<u16> = after.iter().map(|r| r.master.1).collect();
    masters.sort_unstable();
    masters.dedup();
    let held: usize = masters
        .iter()
        .map(|&p| vigil_tests::sharded::dbsize(p))
        .sum();
    assert!(
        (acked..=acked + extra).contains(&held),
        "the masters hold {held} keys for {acked} acknowledged writes ({extra} unknown)"
    );
}

/// Unchanged cluster clients writing one key after another through a fault: redis-py,
/// ioredis, node-redis (each its own process, see their `failover` mode) and redis-rs, each
/// 10 ms between writes: four writers flat out beside a 12-node cluster on 2 cores made the
/// suite three times slower and the clients' own CPU hunger the test's subject.
struct FailoverClients {
    scripts: Vec<Client>,
    rs: Writer,
}

/// The pause between two writes of each [`FailoverClients`] writer.
const PACE: Duration = Duration::from_millis(10);

impl FailoverClients {
    /// Starts them all; returns once each has writes acknowledged.
    fn start(seed: &str, prefix: &str) -> FailoverClients {
        let mut scripts = vec![Client::spawn(
            "python",
            "tests/clients/python/cluster_client.py",
            &[seed.into(), "failover".into()],
        )];
        for lib in ["ioredis", "node-redis"] {
            scripts.push(Client::spawn(
                "node",
                "tests/clients/node/cluster_client.js",
                &[seed.into(), lib.into(), "failover".into()],
            ));
        }
        for s in &mut scripts {
            s.expect("READY");
        }
        let rs = Writer::paced(seed, &format!("{prefix}rs"), PACE);
        // The redis-rs writer's first writes before the fault.
        std::thread::sleep(Duration::from_millis(500));
        FailoverClients { scripts, rs }
    }

    /// Lets them go on after the fault and waits for their verdicts (each reads back every
    /// key it was told is written); how many writes were acknowledged in all, and how many
    /// more may have been applied without a reply.
    fn finish(mut self, seed: &str, prefix: &str) -> (usize, usize) {
        let at_fault = self.rs.attempted();
        // All of them told at once: each goes on for 10 s after it hears of the fault.
        for s in &mut self.scripts {
            s.resume();
        }
        let (mut acked, mut extra) = (0, 0);
        for s in self.scripts {
            let last = s.finish();
            acked += last
                .split_whitespace()
                .find_map(|w| w.strip_prefix("acked="))
                .and_then(|n| n.parse::<usize>().ok())
                .expect("acked=<n>");
            extra += 1;
        }
        let w = self.rs.stop();
        assert!(
            w.acked.last().is_some_and(|&i| i >= at_fault),
            "redis-rs: no write acknowledged after the fault: {:?}",
            &w.errors[w.errors.len().saturating_sub(3)..]
        );
        let client = redis::cluster::ClusterClient::new(vec![format!("redis://{seed}/")]).unwrap();
        let mut conn = client.get_connection().unwrap();
        for &i in &w.acked {
            let v: Option<u64> = redis::cmd("GET")
                .arg(format!("{prefix}rs:{i}"))
                .query(&mut conn)
                .unwrap();
            assert_eq!(v, Some(i), "redis-rs: acknowledged {prefix}rs:{i}");
        }
        eprintln!(
            "redis-rs: acked={} failed={} longest_wait_ms={}",
            w.acked.len(),
            w.errors.len(),
            w.longest.as_millis()
        );
        (acked + w.acked.len(), extra + w.errors.len())
    }
}
