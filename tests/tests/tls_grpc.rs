//! TLS on the sentinels' gRPC port (`tls_grpc`: Raft traffic and the client API): three real
//! sentinels with certificates made by [`vigil_tests::certs`]. A client with an expired or a
//! foreign certificate is refused and the sentinel logs a warning naming it and the reason;
//! SIGHUP makes new handshakes present a new certificate while an open gRPC stream and the Raft
//! group carry on.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::AsyncReadExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::sentinel::sentinel_service_client::SentinelServiceClient;
use vigil_proto::sentinel::{ClusterStatusRequest, WatchRequest};
use vigil_resp::tls::{AuthClients, TlsFiles};
use vigil_tests::certs::Certs;
use vigil_tests::{
    SentinelClient, SentinelProc, free_port, monitor_request, sentinel_config, write_config,
};

const TOKEN: &str = "cluster-token";

/// Three sentinels with `tls_grpc`, all presenting `server.crt` (mutual TLS).
struct Cluster {
    certs: Certs,
    procs: Vec<SentinelProc>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let certs = Certs::new();
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let extra = format!(
            "tls_grpc = true\n{}[raft]\ntick = \"50ms\"\n",
            certs.config_keys()
        );
        let procs = (1..=3u64)
            .map(|id| {
                let text = sentinel_config(id, &ports, dir.path(), TOKEN, &extra);
                SentinelProc::start(id, &write_config(dir.path(), &format!("s{id}.toml"), &text))
            })
            .collect();
        Cluster {
            certs,
            procs,
            ports,
            _dir: dir,
        }
    }

    /// `vigil ctl status` against sentinel `i` (0-based) presenting certificate `client`.
    fn ctl_status(&self, i: usize, client: &str) -> Output {
        Command::new(vigil_tests::vigil_bin())
            .args(["ctl", "--sentinel", &format!("127.0.0.1:{}", self.ports[i])])
            .args(["--token", TOKEN, "--timeout", "3s"])
            .args(["--tls-ca", &self.certs.path("ca.crt")])
            .args(["--tls-cert", &self.certs.path(&format!("{client}.crt"))])
            .args(["--tls-key", &self.certs.path(&format!("{client}.key"))])
            .arg("status")
            .output()
            .unwrap()
    }

    /// Waits until `vigil ctl status` with the good client certificate succeeds (a leader
    /// serves the linearizable read, so Raft works over TLS).
    fn wait_status_ok(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ctl_status(i, "client");
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.contains("Raft leader") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ctl status never succeeded: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A gRPC client of sentinel `i` with its own TLS configuration (the CA, `client.crt`),
    /// not the process-wide one: tests in this binary run side by side with different CAs.
    fn client(&self, i: usize) -> SentinelClient {
        let read = |name: &str| std::fs::read(self.certs.path(name)).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.crt")))
            .identity(Identity::from_pem(read("client.crt"), read("client.key")));
        let channel = Endpoint::from_shared(format!("https://127.0.0.1:{}", self.ports[i]))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let bearer = vigil_proto::auth::Bearer::new(TOKEN).unwrap();
        SentinelServiceClient::with_interceptor(channel, bearer)
    }

    /// A raw TLS handshake with sentinel `i` presenting `client`, offering ALPN `h2`: the local
    /// address, then the server's certificate and the protocol agreed, or why the connection
    /// failed. A client certificate is refused after the client's side of the TLS 1.3
    /// handshake, so the first read tells.
    async fn handshake(
        &self,
        i: usize,
        client: &str,
    ) -> (std::net::SocketAddr, Result<(Vec<u8>, Vec<u8>), String>) {
        let files = TlsFiles {
            cert_file: self.certs.path(&format!("{client}.crt")).into(),
            key_file: self.certs.path(&format!("{client}.key")).into(),
            ca_cert_file: self.certs.path("ca.crt").into(),
            auth_clients: AuthClients::No,
        };
        let mut config = std::sync::Arc::unwrap_or_clone(files.client_config().unwrap());
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.ports[i]))
            .await
            .unwrap();
        let local = tcp.local_addr().unwrap();
        let r = async {
            let mut s = vigil_resp::tls::connect(config.into(), "localhost", tcp)
                .await
                .map_err(|e| e.to_string())?;
            // An accepted HTTP/2 server speaks first (its SETTINGS frame).
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                other => return Err(format!("no HTTP/2 from the server: {other:?}")),
            }
            let (_, conn) = s.get_ref();
            let cert = conn.peer_certificates().unwrap()[0].to_vec();
            Ok((cert, conn.alpn_protocol().unwrap_or_default().to_vec()))
        }
        .await;
        (local, r)
    }

    /// The DER of the certificate file `name`.
    fn der(&self, name: &str) -> Vec<u8> {
        CertificateDer::from_pem_file(self.certs.path(name))
            .unwrap()
            .to_vec()
    }
}

/// Waits until sentinel `p`'s log has a line containing every one of `needles`.
fn wait_line(p: &SentinelProc, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = p.stderr();
        if let Some(l) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_foreign_grpc_clients_are_refused_and_logged_by_address() {
    let c = Cluster::start();
    c.wait_status_ok(0);
    for bad in ["expired", "rogue"] {
        let out = c.ctl_status(0, bad);
        assert!(
            !out.status.success(),
            "ctl with the {bad} certificate got: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The same refusals from a client whose address is known: the warning names it.
    for (bad, reason) in [
        ("expired", "certificate expired"),
        ("rogue", "UnknownIssuer"),
    ] {
        let (local, r) = c.handshake(0, bad).await;
        assert!(r.is_err(), "the {bad} certificate was accepted");
        let line = wait_line(&c.procs[0], &[&local.to_string(), reason]);
        assert!(
            line.contains("WARN") && line.contains("bad peer certificate"),
            "{line}"
        );
    }
    // A good client is served: HTTP/2 agreed by ALPN, the sentinel's certificate presented.
    let (_, r) = c.handshake(0, "client").await;
    let (cert, alpn) = r.expect("the good certificate was refused");
    assert_eq!(alpn, b"h2");
    assert_eq!(cert, c.der("server.crt"));
    c.wait_status_ok(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_grpc_certificates_keeping_open_streams() {
    let mut c = Cluster::start();
    c.wait_status_ok(0);
    let old = c.der("server.crt");
    let (_, r) = c.handshake(0, "client").await;
    assert_eq!(r.unwrap().0, old);
    // A stream open across the reload: it must deliver what is committed afterwards.
    let mut watcher = c.client(0);
    let mut events = watcher
        .watch_topology(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    // A new server certificate from the same CA over the files, then SIGHUP everywhere.
    c.certs
        .ca
        .issue(c.certs.dir.path(), "server", "vigil-server-2", false);
    let new = c.der("server.crt");
    assert_ne!(new, old);
    for p in &c.procs {
        p.signal(libc::SIGHUP);
        wait_line(p, &["TLS certificates reloaded", "gRPC"]);
    }
    let (_, r) = c.handshake(0, "client").await;
    assert_eq!(
        r.unwrap().0,
        new,
        "a new handshake sees the new certificate"
    );
    // Written through sentinel 2 (forwarded to the leader over TLS if it is a follower).
    monitor(&c.client(1), "after-reload").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.message())
            .await
            .expect("the stream opened before the reload carried no event of the new group")
            .expect("the stream opened before the reload broke")
            .expect("the stream opened before the reload ended");
        if ev.group == "after-reload" {
            break;
        }
    }
    c.wait_status_ok(2);
    // The group still elects: the leader dies, the two others choose one and commit.
    let status = c.client(0).cluster_status(ClusterStatusRequest {}).await;
    let leader = status.unwrap().into_inner().leader as usize;
    assert!((1..=3).contains(&leader), "leader {leader}");
    c.procs[leader - 1].kill9();
    let other = (0..3).find(|i| *i != leader - 1).unwrap();
    monitor(&c.client(other), "after-election").await;
    c.wait_status_ok(other);
}

/// Adds group `name` through `client`, retrying while there is no leader (an election).
async fn monitor(client: &SentinelClient, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = client.clone().monitor(monitor_request(name)).await {
        assert!(Instant::now() < deadline, "monitor {name}: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
