//! Nodes and sentinels named by DNS names, as Kubernetes names pods: every process resolves
//! the names afresh on each connect, so a node that comes back at a new address is found
//! again; announced addresses (`announce_ip` / `announce_port`) are what the Sentinel
//! protocol, `vigil ctl status` and a master's `INFO` report.
//!
//! The names live in a hosts file private to the test's processes ([`vigil_tests::hosts`]);
//! each process binds its own loopback address (127.0.9.x), so a name that moves really
//! points somewhere else.

use std::time::{Duration, Instant};

use vigil_tests::hosts::{self, Hosts};
use vigil_tests::managed::{NODE_TOKEN, TOKEN};
use vigil_tests::{NodeProc, RawConn, SentinelProc, free_port, write_config};

const WAIT: Duration = Duration::from_secs(30);

/// One node: its name, data and admin ports, data directory.
struct Node {
    name: String,
    data: u16,
    admin: u16,
    proc: Option<NodeProc>,
}

/// Starts node `n` bound at `ip`, announcing its name to its master.
fn start_node(hosts: &Hosts, dir: &std::path::Path, n: &mut Node, ip: &str) {
    let cfg = write_config(
        dir,
        &format!("{}.toml", n.name),
        &format!(
            "bind = \"{ip}\"\nmode = \"managed\"\nannounce_ip = \"{}\"\n[admin]\nbind = \"{ip}\"\nport = {}\ntoken = \"{NODE_TOKEN}\"\n",
            host(&n.name),
            n.admin
        ),
    );
    n.proc = Some(NodeProc::start_in(
        hosts.path(),
        &dir.join(&n.name),
        n.data,
        &["--config", cfg.to_str().unwrap()],
    ));
}

fn host(name: &str) -> String {
    format!("{name}.vigil.test")
}

/// The reply to `args` from `addr` (an `ip:port`), or `None` if it cannot be reached.
fn ask(addr: &str, args: &[&str]) -> Option<String> {
    let mut c = RawConn::connect_to(addr, Duration::from_secs(2)).ok()?;
    Some(String::from_utf8_lossy(&c.call(args)).into_owned())
}

/// Asks `addr` until the reply satisfies `ok`; panics with the last reply after [`WAIT`].
fn wait_for(addr: &str, args: &[&str], what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        last = ask(addr, args);
        if let Some(r) = &last
            && ok(r)
        {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: {args:?} at {addr} last answered {last:?}");
}

/// The master the sentinel at `sentinel` names: (host, port).
fn master(sentinel: &str) -> (String, u16) {
    let r = wait_for(
        sentinel,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
        "a master",
        |r| r.starts_with("*2"),
    );
    let parts: Vec<&str> = r.split("\r\n").collect();
    (parts[2].to_string(), parts[4].parse().unwrap())
}

#[test]
fn nodes_and_sentinels_named_by_hostname_are_found_again_at_a_new_address() {
    let dir = tempfile::tempdir().unwrap();
    let node_ip = |i: usize| format!("127.0.9.{i}");
    let sentinel_ip = |i: usize| format!("127.0.9.{}", 10 + i);
    let mut entries: Vec<(String, String)> = Vec::new();
    for i in 1..=3 {
        entries.push((host(&format!("n{i}")), node_ip(i)));
        entries.push((host(&format!("s{i}")), sentinel_ip(i)));
    }
    let refs: Vec<(&str, &str)> = entries
        .iter()
        .map(|(n, a)| (n.as_str(), a.as_str()))
        .collect();
    let mut hosts = Hosts::new(&dir.path().join("hosts"), &refs);

    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| Node {
            name: format!("n{i}"),
            data: free_port(),
            admin: free_port(),
            proc: None,
        })
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        start_node(&hosts, dir.path(), n, &node_ip(i + 1));
    }
    let grpc: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                "{{ id = {i}, address = \"{}:{}\" }}",
                host(&format!("s{i}")),
                grpc[i - 1]
            )
        })
        .collect();
    let members: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{{ name = \"{}\", data = \"{}:{}\", admin = \"{}:{}\" }}",
                n.name,
                host(&n.name),
                n.data,
                host(&n.name),
                n.admin
            )
        })
        .collect();
    // Sentinel 1 announces a port of its own choosing (as behind a NAT rule); the others
    // announce their names with the port they bound.
    let announced_port = free_port();
    let sentinels: Vec<SentinelProc> = (1..=3u64)
        .map(|id| {
            let i = id as usize;
            let port_line = if id == 1 {
                format!("announce_port = {announced_port}\n")
            } else {
                String::new()
            };
            let text = format!(
                "id = {id}\ngrpc = \"{ip}:{}\"\nresp = \"{ip}:0\"\nannounce_ip = \"{}\"\n{port_line}dir = \"{}\"\ntoken = \"{TOKEN}\"\nnode_token = \"{NODE_TOKEN}\"\npeers = [{}]\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"1s\"\nnodes = [{}]\n",
                grpc[i - 1],
                host(&format!("s{i}")),
                dir.path().join(format!("s{id}")).display(),
                peers.join(", "),
                members.join(", "),
                ip = sentinel_ip(i),
            );
            let cfg = write_config(dir.path(), &format!("s{id}.toml"), &text);
            SentinelProc::start_in(Some(hosts.path()), id, &cfg)
        })
        .collect();
    let resp: Vec<String> = sentinels
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}:{}", sentinel_ip(i + 1), s.resp_port()))
        .collect();

    // The sentinels hand out the master by the name they were given, and its replicas reached
    // it by that name: its INFO lists both, under the names they announce.
    let (mhost, mport) = master(&resp[1]);
    let mi = nodes
        .iter()
        .position(|n| host(&n.name) == mhost && n.data == mport)
        .unwrap_or_else(|| panic!("the master {mhost}:{mport} is not one of the nodes"));
    let master_addr = |i: usize, nodes: &[Node]| format!("{}:{}", node_ip(i + 1), nodes[i].data);
    let info = wait_for(
        &master_addr(mi, &nodes),
        &["INFO", "replication"],
        "both replicas linked",
        |r| r.matches("state=online").count() == 2,
    );
    for (i, n) in nodes.iter().enumerate().filter(|(i, _)| *i != mi) {
        let line = format!("ip={},port={},state=online", host(&n.name), n.data);
        assert!(
            info.contains(&line),
            "replica {i} not announced as {line}: {info}"
        );
    }

    // Each sentinel knows the others by the addresses they announce.
    let others = wait_for(
        &resp[1],
        &["SENTINEL", "SENTINELS", "mymaster"],
        "the other sentinels announced",
        |r| r.contains("s1.vigil.test") && r.contains("s3.vigil.test"),
    );
    assert!(
        others.contains(&format!(
            "${}\r\n{announced_port}\r\n",
            announced_port.to_string().len()
        )),
        "sentinel 1's announced port {announced_port} missing: {others}"
    );

    // `vigil ctl`, itself resolving a sentinel's name, reports the announced addresses.
    let out = hosts::command(hosts.path())
        .args([
            "ctl",
            "--sentinel",
            &format!("{}:{}", host("s2"), grpc[1]),
            "--token",
            TOKEN,
            "status",
            "--json",
        ])
        .env_remove("VIGIL_TOKEN")
        .env_remove("VIGIL_SENTINEL")
        .output()
        .expect("run vigil ctl");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctl status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status.contains(&format!("s1.vigil.test:{announced_port}"))
            && status.contains(&format!("{}:{}", host(&nodes[mi].name), nodes[mi].data)),
        "ctl status lacks the announced addresses: {status}"
    );

    // A replica dies and comes back at another address under the same name (a pod
    // rescheduled): the sentinels and its master find it again by name, and it catches up.
    let ri = (mi + 1) % 3;
    assert_eq!(
        ask(&master_addr(mi, &nodes), &["SET", "before-move", "1"]).as_deref(),
        Some("+OK\r\n")
    );
    nodes[ri].proc.as_mut().unwrap().kill9();
    let moved_ip = format!("127.0.9.{}", 20 + ri);
    hosts.set(&host(&nodes[ri].name), &moved_ip);
    start_node(&hosts, dir.path(), &mut nodes[ri], &moved_ip);
    let moved = format!("{moved_ip}:{}", nodes[ri].data);
    assert_eq!(
        ask(&master_addr(mi, &nodes), &["SET", "after-move", "2"]).as_deref(),
        Some("+OK\r\n")
    );
    wait_for(
        &moved,
        &["GET", "after-move"],
        "the moved replica caught up",
        |r| r == "$1\r\n2\r\n",
    );
    wait_for(
        &resp[0],
        &["SENTINEL", "REPLICAS", "mymaster"],
        "the moved replica seen up",
        |r| {
            r.contains(&host(&nodes[ri].name))
                && !r.contains("s_down")
                && !r.contains("disconnected")
        },
    );

    // The master dies: the sentinels promote a replica, still by name.
    nodes[mi].proc.as_mut().unwrap().kill9();
    let deadline = Instant::now() + WAIT;
    let (nhost, nport) = loop {
        let m = master(&resp[2]);
        if m != (mhost.clone(), mport) {
            break m;
        }
        assert!(Instant::now() < deadline, "no failover away from {mhost}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let ni = nodes
        .iter()
        .position(|n| host(&n.name) == nhost && n.data == nport)
        .expect("the new master is one of the nodes");
    let ip = if ni == ri {
        moved_ip.clone()
    } else {
        node_ip(ni + 1)
    };
    wait_for(
        &format!("{ip}:{nport}"),
        &["SET", "after-failover", "3"],
        "a write on the new master",
        |r| r == "+OK\r\n",
    );
    let got = ask(
        &format!("{ip}:{nport}"),
        &["MGET", "before-move", "after-move"],
    );
    assert_eq!(got.as_deref(), Some("*2\r\n$1\r\n1\r\n$1\r\n2\r\n"));
}

/// `announce_ip` / `announce_port` are Redis' `replica-announce-ip` / `-port`: what the master
/// reports for the replica in `INFO` and `ROLE`, and what `CONFIG` shows and changes.
#[test]
fn a_replica_announces_the_address_its_master_reports() {
    let dir = tempfile::tempdir().unwrap();
    let master = NodeProc::start(&dir.path().join("m"), &[]);
    let cfg = write_config(
        dir.path(),
        "r.toml",
        &format!(
            "announce_ip = \"10.9.8.7\"\nannounce_port = 7777\n[replication]\nreplicaof = \"127.0.0.1:{}\"\n",
            master.port
        ),
    );
    let replica = NodeProc::start(&dir.path().join("r"), &["--config", cfg.to_str().unwrap()]);
    let m = format!("127.0.0.1:{}", master.port);
    let info = wait_for(&m, &["INFO", "replication"], "the replica online", |r| {
        r.contains("state=online")
    });
    assert!(
        info.contains("slave0:ip=10.9.8.7,port=7777,state=online"),
        "{info}"
    );
    let role = ask(&m, &["ROLE"]).unwrap();
    assert!(role.contains("$8\r\n10.9.8.7\r\n$4\r\n7777\r\n"), "{role}");
    let r = format!("127.0.0.1:{}", replica.port);
    assert_eq!(
        ask(&r, &["CONFIG", "GET", "replica-announce-ip"]).unwrap(),
        "*2\r\n$19\r\nreplica-announce-ip\r\n$8\r\n10.9.8.7\r\n"
    );
    assert_eq!(
        ask(&r, &["CONFIG", "GET", "slave-announce-port"]).unwrap(),
        "*2\r\n$19\r\nslave-announce-port\r\n$4\r\n7777\r\n"
    );
    // A changed announcement takes effect when the replica next connects, as in Redis.
    assert_eq!(
        ask(&r, &["CONFIG", "SET", "replica-announce-port", "7778"]).unwrap(),
        "+OK\r\n"
    );
    let mut c = RawConn::connect(master.port).unwrap();
    assert_eq!(c.call(&["CLIENT", "KILL", "TYPE", "replica"]), b":1\r\n");
    wait_for(&m, &["INFO", "replication"], "the new announcement", |r| {
        r.contains("slave0:ip=10.9.8.7,port=7778,state=online")
    });
    // Too long an address is refused as Redis refuses it.
    let long = "a".repeat(256);
    let reply = ask(&m, &["REPLCONF", "ip-address", &long]).unwrap();
    assert_eq!(
        reply,
        "-ERR REPLCONF ip-address provided by replica instance is too long: 256 bytes\r\n"
    );
}
