//! Health checks as Patroni serves them, on the operations endpoint: `/primary` only on a
//! master that may acknowledge writes, `/replica` (`?lag=`), `/health`, `/liveness`,
//! `/readiness`; HEAD and OPTIONS; 404 elsewhere; garbage does not hurt the process.

use std::io::{Read, Write};

use vigil_tests::ops_http::{get, request};
use vigil_tests::{NodeProc, free_port};

#[test]
fn standalone_master_and_replica_answer_as_patroni() {
    let dir = tempfile::tempdir().unwrap();
    let (mp, rp) = (free_port(), free_port());
    let m = NodeProc::start(
        &dir.path().join("m"),
        &["--admin-port", "0", "--metrics", &format!("127.0.0.1:{mp}")],
    );
    let master = format!("127.0.0.1:{}", m.port);
    let r = NodeProc::start(
        &dir.path().join("r"),
        &[
            "--admin-port",
            "0",
            "--metrics",
            &format!("127.0.0.1:{rp}"),
            "--replicaof",
            &master,
        ],
    );
    r.wait_info("master_link_status", |s| s == "up", "replica link");
    for path in [
        "/primary",
        "/master",
        "/read-write",
        "/read-only",
        "/health",
        "/liveness",
        "/readiness",
    ] {
        assert_eq!(get(mp, path).status, 200, "master {path}");
    }
    for path in ["/replica", "/replica?lag=10MB", "/replica?lag=1s"] {
        assert_eq!(get(mp, path).status, 503, "master {path}");
    }
    for path in [
        "/replica",
        "/replica?lag=16kB",
        "/replica?lag=10s",
        "/read-only",
        "/health",
        "/readiness",
    ] {
        assert_eq!(get(rp, path).status, 200, "replica {path}");
    }
    for path in ["/primary", "/master", "/read-write"] {
        assert_eq!(get(rp, path).status, 503, "replica {path}");
    }
    assert_eq!(get(rp, "/replica?lag=lots").status, 400);
    let body = get(mp, "/primary").body;
    assert!(
        body.contains("\"role\":\"master\"") && body.contains("\"epoch\":0"),
        "{body}"
    );
    let body = get(rp, "/replica").body;
    assert!(
        body.contains("\"role\":\"slave\"") && body.contains("\"master_link_status\":\"up\""),
        "{body}"
    );
    // HEAD and OPTIONS: GET's status, no body.
    for method in ["HEAD", "OPTIONS"] {
        let h = request(mp, method, "/primary").unwrap();
        assert_eq!((h.status, h.body.as_str()), (200, ""), "{method}");
        let h = request(rp, method, "/primary").unwrap();
        assert_eq!((h.status, h.body.as_str()), (503, ""), "{method}");
    }
    assert_eq!(request(mp, "POST", "/primary").unwrap().status, 405);
    assert_eq!(get(mp, "/no-such-check").status, 404);
    // When the master goes, the replica's link is down: no longer a healthy replica.
    drop(m);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(rp, "/replica").status != 503 {
        assert!(
            std::time::Instant::now() < deadline,
            "a replica without a master stayed healthy"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn garbage_on_the_metrics_port_does_not_hurt_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let mp = free_port();
    let n = NodeProc::start(
        &dir.path().join("n"),
        &["--admin-port", "0", "--metrics", &format!("127.0.0.1:{mp}")],
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = vec![0u8; 256 * 1024];
    for b in noise.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    // Random bytes, an endless header, a huge request line.
    let long_header = format!("GET /health HTTP/1.1\r\nX: {}\r\n", "a".repeat(1 << 20));
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "p".repeat(1 << 20));
    for junk in [&noise[..], long_header.as_bytes(), long_line.as_bytes()] {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", mp)) {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let _ = s.write_all(junk);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
    let health = request(mp, "GET", "/health").unwrap_or_else(|e| {
        panic!(
            "GET /health on {mp} after the garbage: {e}; the node's log:\n{}",
            n.stderr()
        )
    });
    assert_eq!(health.status, 200);
    let mut c = n.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_bad_metrics_address_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = NodeProc::try_start(&dir.path().join("n"), &["--metrics", "nowhere"])
        .err()
        .expect("a node with a bad metrics address must not start");
    assert!(e.contains("`metrics`"), "{e}");
    let cfg = vigil_tests::write_config(dir.path(), "n.toml", "metrics = 9121\n");
    let e = NodeProc::try_start(&dir.path().join("m"), &["--config", cfg.to_str().unwrap()])
        .err()
        .expect("a non-string metrics key must be refused");
    assert!(e.contains("metrics"), "{e}");
}
