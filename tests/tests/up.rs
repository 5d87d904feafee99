//! `vigil up`: a whole local cluster from one command — three managed nodes and three
//! sentinels as its children, a master assigned by the sentinels, everything stopped on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_proto::sentinel::GetMasterRequest;
use vigil_tests::{RawConn, sentinel_client, vigil_bin, write_config};

/// A port p with p, p+1, p+2 all free right now (below the ephemeral range, see
/// `free_port`).
fn three_free_ports() -> u16 {
    loop {
        let p = vigil_tests::free_port();
        if p < 32000
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 2)).is_ok()
        {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_cluster_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, admin, grpc, resp) = (
        three_free_ports(),
        three_free_ports(),
        three_free_ports(),
        three_free_ports(),
    );
    let cfg = write_config(
        dir.path(),
        "local.toml",
        &format!(
            "dir = \"{}\"\nbase_port = {data}\nadmin_base_port = {admin}\ngrpc_base_port = {grpc}\nresp_base_port = {resp}\ngroup = \"mymaster\"\ndown_after = \"1s\"\nsync_replicas = 0\ntoken = \"t\"\nnode_token = \"n\"\n",
            dir.path().join("cluster").display()
        ),
    );
    let mut up = Command::new(vigil_bin())
        .args(["up", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        banner.push_str(&line);
        banner.push('\n');
    }
    assert!(
        banner.contains(&format!("redis://127.0.0.1:{data}")),
        "{banner}"
    );
    // The sentinels give the group a master, which takes writes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let master = loop {
        let r = sentinel_client(grpc, "t")
            .get_master(GetMasterRequest {
                group: "mymaster".into(),
            })
            .await;
        if let Ok(m) = r.map(|r| r.into_inner())
            && m.status == "ok"
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no master within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let port: u16 = master.address.rsplit(':').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while RawConn::connect(port).unwrap().call(&["SET", "k", "v"]) != b"+OK\r\n" {
        assert!(Instant::now() < deadline, "master took no write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM stops the whole cluster.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "vigil up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for p in [data, data + 1, data + 2, grpc, grpc + 1, grpc + 2] {
        assert!(
            TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} still served after vigil up stopped"
        );
    }
}
