//! TLS on the node's data port (issue 18): real `redis-cli --tls` and `openssl s_client`
//! clients against certificates made with rcgen ([`vigil_tests::certs`]: a CA, a server and a
//! client certificate, an expired one, and one signed by another CA).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_tests::certs::{Ca, Certs};
use vigil_tests::{KillOnDrop, NodeProc, free_port};

fn start_node(certs: &Certs, dir: &Path, tls_port: u16, extra: &[&str]) -> NodeProc {
    let mut flags = certs.node_flags(tls_port);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(|s| s.as_str()).collect();
    // Port 0 beside a TLS port would mean TLS only: the plain port is chosen here.
    NodeProc::start_on(dir, free_port(), &flags)
}

/// Runs `redis-cli --tls` with the CA and the client certificate `client` (None: no client
/// certificate); returns (success, stdout + stderr).
fn redis_cli(certs: &Certs, port: u16, client: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new("redis-cli");
    c.args([
        "-p",
        &port.to_string(),
        "--tls",
        "--cacert",
        &certs.path("ca.crt"),
    ]);
    if let Some(name) = client {
        c.args([
            "--cert",
            &certs.path(&format!("{name}.crt")),
            "--key",
            &certs.path(&format!("{name}.key")),
        ]);
    }
    let out = c.args(args).output().expect("redis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && !text.contains("Could not connect"),
        text,
    )
}

/// Waits until the node's log has a line containing `what`.
fn wait_log(node: &NodeProc, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = node.stderr();
        let hit = log
            .lines()
            .find(|l| l.to_lowercase().contains(&what.to_lowercase()));
        if let Some(line) = hit {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {what:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_cli_over_tls_set_get_beside_the_plain_port() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let node = start_node(&certs, &data.path().join("n"), tls_port, &[]);
    let (ok, out) = redis_cli(&certs, tls_port, Some("client"), &["SET", "k", "over-tls"]);
    assert!(ok && out.trim() == "OK", "{out}");
    let (ok, out) = redis_cli(&certs, tls_port, Some("client"), &["GET", "k"]);
    assert!(ok && out.trim() == "over-tls", "{out}");
    // The plain port serves the same data side by side (migration).
    let v: String = redis::cmd("GET")
        .arg("k")
        .query(&mut node.client())
        .unwrap();
    assert_eq!(v, "over-tls");
    // tls_auth_clients defaults to yes: no client certificate, no connection.
    let (ok, out) = redis_cli(&certs, tls_port, None, &["PING"]);
    assert!(!ok || !out.contains("PONG"), "{out}");
}

#[test]
fn tls_only_node_with_optional_client_certificates() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let mut flags = certs.node_flags(tls_port);
    flags.extend(["--tls-auth-clients".into(), "optional".into()]);
    let mut args: Vec<std::ffi::OsString> = vec!["node".into(), "--port".into(), "0".into()];
    args.extend(flags.iter().map(Into::into));
    args.extend(["--dir".into(), data.path().join("n").into_os_string()]);
    let mut child = Command::new(vigil_tests::vigil_bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("tls listening on 127.0.0.1:{tls_port}")
    );
    let (ok, out) = redis_cli(&certs, tls_port, None, &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn plain_text_to_the_tls_port_is_closed_and_the_node_lives() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let node = start_node(&certs, &data.path().join("n"), tls_port, &[]);
    let mut s = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = Vec::new();
    // Closed (possibly after a TLS alert), never answered with +PONG.
    let _ = s.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("PONG"));
    let pong: String = redis::cmd("PING").query(&mut node.client()).unwrap();
    assert_eq!(pong, "PONG");
    let (ok, out) = redis_cli(&certs, tls_port, Some("client"), &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
}

#[test]
fn expired_or_foreign_client_certificates_are_refused_with_a_log_line() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let node = start_node(&certs, &data.path().join("n"), tls_port, &[]);
    let (ok, out) = redis_cli(&certs, tls_port, Some("expired"), &["PING"]);
    assert!(!ok || !out.contains("PONG"), "{out}");
    let line = wait_log(&node, "certificate expired");
    assert!(line.contains("bad peer certificate"), "{line}");
    let (ok, out) = redis_cli(&certs, tls_port, Some("rogue"), &["PING"]);
    assert!(!ok || !out.contains("PONG"), "{out}");
    let line = wait_log(&node, "issuer");
    assert!(line.contains("bad peer certificate"), "{line}");
    let (ok, out) = redis_cli(&certs, tls_port, Some("client"), &["PING"]);
    assert!(ok && out.trim() == "PONG", "{out}");
}

#[test]
fn bad_tls_files_stop_start_up_naming_the_key_and_file() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let missing = certs.path("nope.crt");
    let e = match NodeProc::try_start(
        &data.path().join("n"),
        &[
            "--tls-port",
            &free_port().to_string(),
            "--tls-cert-file",
            &missing,
            "--tls-key-file",
            &certs.path("server.key"),
            "--tls-ca-cert-file",
            &certs.path("ca.crt"),
        ],
    ) {
        Ok(_) => panic!("a node started with a missing certificate file"),
        Err(e) => e,
    };
    assert!(e.contains("tls_cert_file") && e.contains("nope.crt"), "{e}");
}

/// `openssl s_client` kept open: one TLS connection that outlives a reload.
struct SClient {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl SClient {
    fn connect(certs: &Certs, port: u16, ca: &str) -> SClient {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["-CAfile", &certs.path(ca), "-verify_return_error"])
            .args(["-cert", &certs.path("client.crt")])
            .args(["-key", &certs.path("client.key")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl");
        let out = BufReader::new(child.stdout.take().unwrap());
        SClient { child, out }
    }

    fn ping(&mut self) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"PING\r\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        let _ = self.out.read_line(&mut line);
        line.trim().to_string()
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_certificates_and_keeps_connections() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let node = start_node(&certs, &data.path().join("n"), tls_port, &[]);
    let mut old = SClient::connect(&certs, tls_port, "ca.crt");
    assert_eq!(old.ping(), "+PONG");
    // A new server certificate from a new CA (that also signs the client's), over the files.
    let ca2 = Ca::new("Vigil test CA 2");
    ca2.write(&certs.dir.path().join("ca2.crt"));
    ca2.issue(certs.dir.path(), "server", "vigil-server-2", false);
    let mut both = std::fs::read_to_string(certs.path("ca.crt")).unwrap();
    both.push_str(&std::fs::read_to_string(certs.path("ca2.crt")).unwrap());
    std::fs::write(certs.path("ca.crt"), both).unwrap();
    // Before the reload, clients trusting only the new CA are refused.
    let mut probe = Command::new("redis-cli");
    probe.args([
        "-p",
        &tls_port.to_string(),
        "--tls",
        "--cacert",
        &certs.path("ca2.crt"),
    ]);
    probe.args([
        "--cert",
        &certs.path("client.crt"),
        "--key",
        &certs.path("client.key"),
    ]);
    let before = probe.arg("PING").output().unwrap();
    assert!(!String::from_utf8_lossy(&before.stdout).contains("PONG"));
    node.signal(libc::SIGHUP);
    wait_log(&node, "TLS certificates reloaded");
    let mut new = SClient::connect(&certs, tls_port, "ca2.crt");
    assert_eq!(
        new.ping(),
        "+PONG",
        "a new connection sees the new certificate"
    );
    assert_eq!(old.ping(), "+PONG", "the old connection still works");
}

/// Waits until something accepts connections on `port`.
fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three managed nodes with plain and TLS data ports, replication over TLS (so replicas follow
/// the master's `tls_data`) and NodeAdmin over mutual TLS, three
/// sentinels with a TLS port each and gRPC (Raft, client API, NodeAdmin calls) over mutual
/// TLS, that hand TLS clients the nodes' TLS addresses: `redis-cli --tls` gets the master's
/// TLS port, and redis-py with `ssl=True` follows a SIGKILL failover through them.
#[test]
fn sentinel_tls_port_hands_out_tls_addresses_through_a_failover() {
    use vigil_tests::managed::{NODE_TOKEN, TOKEN};
    use vigil_tests::{SentinelProc, sentinel_config, write_config};
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let tls_keys = |port: u16| {
        format!(
            "tls_port = {port}\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_ca_cert_file = \"{}\"\n",
            certs.path("server.crt"),
            certs.path("server.key"),
            certs.path("ca.crt")
        )
    };
    let mut nodes = Vec::new();
    let mut tls_ports = Vec::new();
    for i in 1..=3 {
        let tls_port = free_port();
        let text = format!(
            "mode = \"managed\"\ntls_admin = true\ntls_replication = true\n{}[admin]\nport = 0\ntoken = \"{NODE_TOKEN}\"\n",
            tls_keys(tls_port)
        );
        let cfg = write_config(dir.path(), &format!("n{i}.toml"), &text);
        let n = NodeProc::start_on(
            &dir.path().join(format!("n{i}")),
            free_port(),
            &["--config", cfg.to_str().unwrap()],
        );
        nodes.push(n);
        tls_ports.push(tls_port);
    }
    let list: Vec<String> = nodes
        .iter()
        .zip(&tls_ports)
        .enumerate()
        .map(|(i, (n, t))| {
            format!(
                "{{ name = \"n{}\", data = \"127.0.0.1:{}\", admin = \"127.0.0.1:{}\", tls_data = \"127.0.0.1:{t}\" }}",
                i + 1,
                n.port,
                n.admin_port()
            )
        })
        .collect();
    let grpc: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinel_tls: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinels: Vec<SentinelProc> = (1..=3u64)
        .map(|id| {
            let extra = format!(
                "tls_grpc = true\n{}node_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"1s\"\nnodes = [{}]\n",
                tls_keys(sentinel_tls[id as usize - 1]),
                list.join(", ")
            );
            let text = sentinel_config(id, &grpc, dir.path(), TOKEN, &extra);
            SentinelProc::start(id, &write_config(dir.path(), &format!("s{id}.toml"), &text))
        })
        .collect();
    let port = sentinel_tls[0];
    wait_port(port);
    // redis-cli over TLS: the master's TLS port, once a master is elected.
    let deadline = Instant::now() + Duration::from_secs(40);
    let master_tls = loop {
        let (ok, out) = redis_cli(
            &certs,
            port,
            Some("client"),
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"],
        );
        let lines: Vec<&str> = out.lines().collect();
        if ok && lines.len() == 2 {
            break lines[1].parse::<u16>().unwrap();
        }
        assert!(Instant::now() < deadline, "no master: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        tls_ports.contains(&master_tls),
        "{master_tls} is no TLS port"
    );
    // gRPC ports speak TLS only: a plain HTTP/2 client gets no HTTP/2 SETTINGS frame back.
    for p in [nodes[0].admin_port(), grpc[0]] {
        assert!(!speaks_plain_h2(p), "port {p} answered plain HTTP/2");
    }
    // `vigil ctl` reaches the sentinels with --tls-ca/--tls-cert/--tls-key, not without.
    let ctl = |tls: bool| {
        let mut c = Command::new(vigil_tests::vigil_bin());
        c.args(["ctl", "--sentinel", &format!("127.0.0.1:{}", grpc[0])])
            .args(["--token", TOKEN, "--timeout", "3s"]);
        if tls {
            c.args(["--tls-ca", &certs.path("ca.crt")])
                .args(["--tls-cert", &certs.path("client.crt")])
                .args(["--tls-key", &certs.path("client.key")]);
        }
        c.arg("status").output().unwrap()
    };
    let out = ctl(true);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("mymaster"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !ctl(false).status.success(),
        "plain gRPC reached a TLS sentinel"
    );
    // Wait until the group is settled (replicas linked) before the failover.
    let mi = tls_ports.iter().position(|p| *p == master_tls).unwrap();
    for (i, n) in nodes.iter().enumerate() {
        if i != mi {
            n.wait_info("master_link_status", |v| v == "up", "replica linked");
        }
    }
    // `+switch-master` subscribers on both ports of another sentinel.
    let plain_port = sentinels[1].resp_port().to_string();
    let (_plain_sub, plain_lines) = lines_of(Command::new("redis-cli").args([
        "-p",
        &plain_port,
        "SUBSCRIBE",
        "+switch-master",
    ]));
    let tls_port = sentinel_tls[1].to_string();
    let (_tls_sub, tls_lines) = lines_of(
        Command::new("redis-cli")
            .args(["-p", &tls_port, "--tls", "--cacert", &certs.path("ca.crt")])
            .args([
                "--cert",
                &certs.path("client.crt"),
                "--key",
                &certs.path("client.key"),
            ])
            .args(["SUBSCRIBE", "+switch-master"]),
    );
    for rx in [&plain_lines, &tls_lines] {
        // subscribe, +switch-master, 1: subscribed.
        for want in ["subscribe", "+switch-master", "1"] {
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), want);
        }
    }
    let python = repo_python();
    let mut child = KillOnDrop(
        Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/clients/python/tls_sentinel_client.py"
            ))
            .arg(format!("127.0.0.1:{port}"))
            .arg(certs.path("ca.crt"))
            .arg(certs.path("client.crt"))
            .arg(certs.path("client.key"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python"),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut read = || {
        let mut l = String::new();
        let _ = out.read_line(&mut l);
        l.trim().to_string()
    };
    assert_eq!(read(), format!("MASTER {master_tls}"));
    assert_eq!(read(), "READY");
    nodes[mi].kill9();
    child.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let done = read();
    drop(child);
    let words: Vec<&str> = done.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"FAILOVER"), "{done}");
    let new: u16 = words[2].parse().unwrap();
    assert!(new != master_tls && tls_ports.contains(&new), "{done}");
    // The TLS subscriber is told the TLS ports, the plain one the plain ports.
    let ni = tls_ports.iter().position(|p| *p == new).unwrap();
    let message = |rx: &std::sync::mpsc::Receiver<String>| {
        let got: Vec<String> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default())
            .collect();
        got.join("|")
    };
    assert_eq!(
        message(&tls_lines),
        format!("message|+switch-master|mymaster 127.0.0.1 {master_tls} 127.0.0.1 {new}")
    );
    assert_eq!(
        message(&plain_lines),
        format!(
            "message|+switch-master|mymaster 127.0.0.1 {} 127.0.0.1 {}",
            nodes[mi].port, nodes[ni].port
        )
    );
}

/// Spawns `cmd` and streams its stdout lines.
fn lines_of(cmd: &mut Command) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (KillOnDrop(child), rx)
}

/// Whether the server on `port` answers an HTTP/2 preface with a SETTINGS frame (plain gRPC).
fn speaks_plain_h2(port: u16) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0");
    let mut head = [0u8; 9];
    s.read_exact(&mut head).is_ok() && head[3] == 0x04
}

/// The test venv's python (tests/run.sh makes target/venv).
fn repo_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python")
}

#[test]
fn replication_link_over_tls() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let master_tls = free_port();
    let master = start_node(&certs, &data.path().join("m"), master_tls, &[]);
    let replicaof = format!("127.0.0.1:{master_tls}");
    let replica = start_node(
        &certs,
        &data.path().join("r"),
        free_port(),
        &["--replicaof", &replicaof, "--tls-replication"],
    );
    let (ok, out) = redis_cli(&certs, master_tls, Some("client"), &["SET", "rk", "rv"]);
    assert!(ok && out.trim() == "OK", "{out}");
    replica.wait_info("master_link_status", |v| v == "up", "link up over TLS");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: Option<String> = redis::cmd("GET")
            .arg("rk")
            .query(&mut replica.client())
            .unwrap();
        if v.as_deref() == Some("rv") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the write did not reach the replica"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The master's plain port saw no replication connection: the link is the TLS one.
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut master.client())
        .unwrap();
    assert!(info.contains("connected_slaves:1"), "{info}");
}

/// A group whose nodes serve TLS only (`port = 0`) and replicate over TLS, watched by sentinels
/// with `tls_replication` (their probes speak TLS): see [`fails_over_over_tls`].
#[test]
fn tls_only_group_fails_over_after_sigkill() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let files = certs.config_keys();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let text = format!(
            "mode = \"managed\"\ntls_port = {}\ntls_replication = true\n{files}[admin]\nport = 0\ntoken = \"{}\"\n",
            free_port(),
            vigil_tests::managed::NODE_TOKEN
        );
        let cfg = vigil_tests::write_config(dir.path(), &format!("n{i}.toml"), &text);
        let n = NodeProc::start_tls_only(
            &dir.path().join(format!("n{i}")),
            &["--config", cfg.to_str().unwrap()],
        );
        nodes.push(n);
    }
    // One address per node, its TLS one, as Redis Sentinel knows a TLS-only server.
    let list = vigil_tests::managed::node_entries(&vigil_tests::managed::addresses(&nodes));
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let group = format!("nodes = [{}]\n", list.join(", "));
    fails_over_over_tls(&certs, dir.path(), &ports, &group, |i| nodes[i].kill9());
}

/// The same with stock `redis-server`s speaking TLS (`tls-port`, `tls-replication yes`, client
/// certificates required) managed agentlessly (`driver = "resp"`): the sentinels' connections,
/// `REPLICAOF` and the replication links are all TLS.
#[test]
fn stock_tls_group_fails_over_after_sigkill() {
    let certs = Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let tls_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers = Vec::new();
    for (i, port) in tls_ports.iter().enumerate() {
        let port = port.to_string();
        let master = tls_ports[0].to_string();
        let (crt, key, ca) = (
            certs.path("server.crt"),
            certs.path("server.key"),
            certs.path("ca.crt"),
        );
        let mut args = vec![
            "--tls-port",
            &port,
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-replication",
            "yes",
        ];
        if i > 0 {
            args.extend(["--replicaof", "127.0.0.1", &master]);
        }
        servers.push(vigil_tests::RedisProc::start_with(&args));
    }
    let list: Vec<String> = tls_ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{ name = \"n{}\", data = \"127.0.0.1:{p}\" }}", i + 1))
        .collect();
    let group = format!("driver = \"resp\"\nnodes = [{}]\n", list.join(", "));
    fails_over_over_tls(&certs, dir.path(), &tls_ports, &group, |i| {
        servers[i].kill9()
    });
}

/// Three sentinels with `tls_replication` watch the group whose TLS data ports are `ports`
/// (`group`: its TOML lines): a master is chosen and seen up (the TLS probe answers), a write
/// reaches both replicas over TLS, and after `kill(i)` SIGKILLs the master a replica is promoted
/// that keeps the write and takes new ones, and the other follows it over TLS.
fn fails_over_over_tls(
    certs: &Certs,
    dir: &Path,
    ports: &[u16],
    group: &str,
    mut kill: impl FnMut(usize),
) {
    use vigil_tests::managed::{NODE_TOKEN, TOKEN};
    use vigil_tests::{SentinelProc, sentinel_config, write_config};
    let files = certs.config_keys();
    let grpc: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sentinels: Vec<SentinelProc> = (1..=3u64)
        .map(|id| {
            let extra = format!(
                "tls_replication = true\n{files}node_token = \"{NODE_TOKEN}\"\n[raft]\ntick = \"50ms\"\n[[groups]]\nname = \"mymaster\"\ndown_after = \"1s\"\n{group}"
            );
            let text = sentinel_config(id, &grpc, dir, TOKEN, &extra);
            SentinelProc::start(id, &write_config(dir, &format!("s{id}.toml"), &text))
        })
        .collect();
    let sentinel =
        redis::Client::open(format!("redis://127.0.0.1:{}/", sentinels[0].resp_port())).unwrap();
    let mut sc = sentinel.get_connection().unwrap();
    // The master the sentinels agree on, once it is up (not s_down: the TLS probe answers).
    let master = |sc: &mut redis::Connection, not: Option<u16>| -> u16 {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let m: Vec<(String, String)> = redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg("mymaster")
                .query::<Vec<String>>(sc)
                .map(|v| v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect())
                .unwrap_or_default();
            let get = |k: &str| m.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
            let port = get("port").and_then(|p| p.parse::<u16>().ok());
            if let (Some(p), Some("master")) = (port, get("flags").as_deref())
                && Some(p) != not
                && ports.contains(&p)
            {
                return p;
            }
            assert!(Instant::now() < deadline, "no master up: {m:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A node takes writes once promoted, a moment after the sentinels commit it as master.
    let write = |port: u16, key: &str, value: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (ok, out) = redis_cli(certs, port, Some("client"), &["SET", key, value]);
            if ok && out.trim() == "OK" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "master {port} refuses writes: {out}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let old = master(&mut sc, None);
    write(old, "tls-key", "kept");
    // Both replicas link up over TLS and hold the write.
    let replicas: Vec<u16> = ports.iter().copied().filter(|p| *p != old).collect();
    let wait_replica = |port: u16, master: u16| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, info) = redis_cli(certs, port, Some("client"), &["INFO", "replication"]);
            let (_, v) = redis_cli(certs, port, Some("client"), &["GET", "tls-key"]);
            if info.contains("master_link_status:up")
                && info.contains(&format!("master_port:{master}"))
                && v.trim() == "kept"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {port} not in sync with {master}: {info} {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for r in &replicas {
        wait_replica(*r, old);
    }
    kill(ports.iter().position(|p| *p == old).unwrap());
    let new = master(&mut sc, Some(old));
    assert!(replicas.contains(&new), "{new}");
    // The new master takes writes over TLS and kept the old one's.
    write(new, "after", "1");
    let (_, v) = redis_cli(certs, new, Some("client"), &["GET", "tls-key"]);
    assert_eq!(v.trim(), "kept");
    // The other replica follows the new master over TLS.
    let other = replicas.iter().copied().find(|p| *p != new).unwrap();
    wait_replica(other, new);
}
