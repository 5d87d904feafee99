//! A managed group brought up by the sentinels alone: three storage nodes in managed mode boot
//! read-only; the sentinels' leader assigns the first master (a compare-and-swap in the log),
//! promotes it with a lease, points the others at it, and keeps the lease renewed, so writes
//! keep being acknowledged long after the first lease would have run out.

use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::{
    NodeProc, RawConn, SentinelProc, agreed_leader, free_port, sentinel_client, write_config,
};

const TOKEN: &str = "cluster-token";
const NODE_TOKEN: &str = "node-token";

/// Three managed nodes and three sentinels monitoring them as `mymaster`.
struct Managed {
    nodes: Vec<NodeProc>,
    _sentinels: Vec<SentinelProc>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

fn start_managed(down_after: &str) -> Managed {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let cfg = write_config(
                dir.path(),
                &format!("n{i}.toml"),
                &format!("mode = \"managed\"\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n"),
            );
            NodeProc::start(
                &dir.path().join(format!("n{i}")),
                &["--config", cfg.to_str().unwrap()],
            )
        })
        .collect();
    let node_list: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{ name = \"n{}\", data = \"127.0.0.1:{}\", admin = \"127.0.0.1:{}\" }}",
                i + 1,
                n.port,
                n.admin_port()
            )
        })
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ id = {}, address = \"127.0.0.1:{p}\" }}", i + 1))
        .collect();
    let sentinels = (1..=3u64)
        .map(|id| {
            let text = format!(
                "id = {id}\ngrpc = \"127.0.0.1:{}\"\ndir = \"{}\"\ntoken = \"{TOKEN}\"\nnode_token = \"{NODE_TOKEN}\"\npeers = [{}]\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"{down_after}\"\nnodes = [{}]\n",
                ports[id as usize - 1],
                dir.path().join(format!("s{id}")).display(),
                peers.join(", "),
                node_list.join(", ")
            );
            let cfg = write_config(dir.path(), &format!("s{id}.toml"), &text);
            SentinelProc::start(id, &cfg)
        })
        .collect();
    Managed {
        nodes,
        _sentinels: sentinels,
        ports,
        dir,
    }
}

impl Managed {
    /// The master the sentinels answer with, once it has one at `epoch` or later.
    async fn master(&self, min_epoch: u64, within: Duration) -> vigil_proto::sentinel::MasterInfo {
        let deadline = Instant::now() + within;
        loop {
            let r = sentinel_client(self.ports[0], TOKEN)
                .get_master(GetMasterRequest {
                    group: "mymaster".into(),
                })
                .await;
            if let Ok(m) = r.map(|r| r.into_inner())
                && m.status == "ok"
                && m.epoch >= min_epoch
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no master at epoch {min_epoch} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn node_at(&self, address: &str) -> usize {
        let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }
}

async fn set_until_ok(port: u16, key: &str, value: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut c) = RawConn::connect(port)
            && c.call(&["SET", key, value]) == b"+OK\r\n"
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no write acknowledged on {port} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_assign_a_master_and_keep_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<NodeProc> = (1..=3)
        .map(|i| {
            let cfg = write_config(
                dir.path(),
                &format!("n{i}.toml"),
                &format!("mode = \"managed\"\n[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n"),
            );
            NodeProc::start(
                &dir.path().join(format!("n{i}")),
                &["--config", cfg.to_str().unwrap()],
            )
        })
        .collect();
    // Read-only until the sentinels speak.
    let mut c = RawConn::connect(nodes[0].port).unwrap();
    assert!(c.call(&["SET", "k", "v"]).starts_with(b"-READONLY"));
    let node_list: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{{ name = \"n{}\", data = \"127.0.0.1:{}\", admin = \"127.0.0.1:{}\" }}",
                i + 1,
                n.port,
                n.admin_port()
            )
        })
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ id = {}, address = \"127.0.0.1:{p}\" }}", i + 1))
        .collect();
    let _sentinels: Vec<SentinelProc> = (1..=3u64)
        .map(|id| {
            let text = format!(
                "id = {id}\ngrpc = \"127.0.0.1:{}\"\ndir = \"{}\"\ntoken = \"{TOKEN}\"\nnode_token = \"{NODE_TOKEN}\"\npeers = [{}]\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\nnodes = [{}]\n",
                ports[id as usize - 1],
                dir.path().join(format!("s{id}")).display(),
                peers.join(", "),
                node_list.join(", ")
            );
            let cfg = write_config(dir.path(), &format!("s{id}.toml"), &text);
            SentinelProc::start(id, &cfg)
        })
        .collect();
    let all: Vec<(u64, u16)> = (1..=3u64).zip(ports.iter().copied()).collect();
    agreed_leader(&all, TOKEN, Duration::from_secs(20))
        .await
        .expect("leader");
    // The group gets a master.
    let deadline = Instant::now() + Duration::from_secs(20);
    let master = loop {
        let r = sentinel_client(ports[0], TOKEN)
            .get_master(GetMasterRequest {
                group: "mymaster".into(),
            })
            .await;
        if let Ok(m) = r.map(|r| r.into_inner())
            && m.status == "ok"
        {
            assert_eq!(m.epoch, 1);
            break m;
        }
        assert!(Instant::now() < deadline, "no master assigned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every sentinel gives the same answer.
    for &(_, p) in &all {
        let m = sentinel_client(p, TOKEN)
            .get_master(GetMasterRequest {
                group: "mymaster".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((m.address.as_str(), m.epoch), (master.address.as_str(), 1));
    }
    let mport: u16 = master.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut m = RawConn::connect(mport).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.call(&["SET", "k", "1"]) != b"+OK\r\n" {
        assert!(Instant::now() < deadline, "the master never took writes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The replicas follow it.
    for n in nodes.iter().filter(|n| n.port != mport) {
        n.wait_info("master_link_status", |s| s == "up", "replica link");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut r = RawConn::connect(n.port).unwrap();
        while r.call(&["GET", "k"]) != b"$1\r\n1\r\n" {
            assert!(Instant::now() < deadline, "replica never got the write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(r.call(&["SET", "k", "2"]).starts_with(b"-READONLY"));
    }
    // Past the first lease (1 s): still writable, because the leader keeps renewing it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(m.call(&["SET", "k", "3"]), b"+OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_and_rejoins_as_a_replica() {
    let mut c = start_managed("500ms");
    let first = c.master(1, Duration::from_secs(20)).await;
    let old = c.node_at(&first.address);
    let old_port = c.nodes[old].port;
    let old_admin = c.nodes[old].admin_port();
    set_until_ok(old_port, "before", "1", Duration::from_secs(10)).await;
    // Both replicas have it before the kill (async mode: that is what makes it survive).
    for (i, n) in c.nodes.iter().enumerate() {
        if i != old {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut r = RawConn::connect(n.port).unwrap();
            while r.call(&["GET", "before"]) != b"$1\r\n1\r\n" {
                assert!(Instant::now() < deadline, "replica {i} never got the write");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let t = Instant::now();
    c.nodes[old].kill9();
    let second = c.master(2, Duration::from_secs(20)).await;
    assert_ne!(second.address, first.address);
    let new = c.node_at(&second.address);
    set_until_ok(c.nodes[new].port, "after", "2", Duration::from_secs(10)).await;
    eprintln!(
        "master SIGKILL -> first write on the new master: {:?}",
        t.elapsed()
    );
    let mut r = RawConn::connect(c.nodes[new].port).unwrap();
    assert_eq!(r.call(&["GET", "before"]), b"$1\r\n1\r\n");
    // The old master comes back (managed: read-only) and is made a replica of the new one.
    let dir = c.nodes[old].dir.clone();
    let cfg = c.dir.path().join(format!("n{}.toml", old + 1));
    let admin = old_admin.to_string();
    let back = NodeProc::start_on(
        &dir,
        old_port,
        &["--config", cfg.to_str().unwrap(), "--admin-port", &admin],
    );
    back.wait_info(
        "master_link_status",
        |s| s == "up",
        "old master rejoins as a replica",
    );
    let port_line = back.info_field("master_port").unwrap();
    assert_eq!(port_line, c.nodes[new].port.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = RawConn::connect(back.port).unwrap();
    while b.call(&["GET", "after"]) != b"$1\r\n2\r\n" {
        assert!(Instant::now() < deadline, "the old master never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
