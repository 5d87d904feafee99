//! `vigil agent`'s operations endpoint with a real `redis-server` under it: `redis_up` and
//! the role of the supervised server, the epoch, fence and lease the agent enforces, and the
//! health checks following them (`/primary` only on a master with a valid lease).

use std::time::{Duration, Instant};

use vigil_proto::node::{FenceRequest, PromoteRequest, ReplicateFromRequest};
use vigil_tests::agents::AgentProc;
use vigil_tests::managed::NODE_TOKEN;
use vigil_tests::ops_http::{get, parse_metrics, value};
use vigil_tests::{admin_client, free_port};

/// Waits until `f` holds, or panics with `what`.
fn wait(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn metric(port: u16, name: &str, labels: &str) -> Option<f64> {
    value(&parse_metrics(&get(port, "/metrics").body), name, labels)
}

fn status(port: u16, path: &str) -> u16 {
    get(port, path).status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_serves_metrics_and_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (ha, hb) = (free_port(), free_port());
    let a = AgentProc::start(
        &dir.path().join("a"),
        &format!("metrics = \"127.0.0.1:{ha}\"\n"),
    );
    let b = AgentProc::start(
        &dir.path().join("b"),
        &format!("metrics = \"127.0.0.1:{hb}\"\n"),
    );
    let a_port = a.port.to_string();

    // Before any role: the server is up, held as a replica of nothing, and no load balancer
    // check but the liveness ones passes.
    wait("redis_up 1", Duration::from_secs(10), || {
        metric(ha, "redis_up", "") == Some(1.0)
    });
    let page = get(ha, "/metrics");
    assert_eq!(page.status, 200);
    let s = parse_metrics(&page.body);
    assert_eq!(
        value(&s, "vigil_agent_assigned_role", "role=\"none\""),
        Some(1.0)
    );
    assert_eq!(value(&s, "vigil_epoch", ""), Some(0.0));
    assert_eq!(value(&s, "vigil_writable", ""), Some(0.0));
    assert_eq!(status(ha, "/primary"), 503);
    assert_eq!(status(ha, "/replica"), 503);
    for p in ["/health", "/liveness", "/readiness"] {
        assert_eq!(status(ha, p), 200, "{p}");
    }
    assert_eq!(status(ha, "/nope"), 404);

    // Promoted with a lease: /primary passes, the metrics show the role, epoch and lease.
    let mut ca = admin_client(a.admin_port, Some(NODE_TOKEN)).await;
    let mut cb = admin_client(b.admin_port, Some(NODE_TOKEN)).await;
    ca.promote(PromoteRequest {
        epoch: 1,
        min_offset: 0,
        lease_ttl_ms: 60_000,
        lease_since_node_ms: 0,
    })
    .await
    .unwrap();
    wait(
        "/primary on the promoted server",
        Duration::from_secs(10),
        || status(ha, "/primary") == 200,
    );
    let s = parse_metrics(&get(ha, "/metrics").body);
    let info = format!(
        "role=\"master\",tcp_port=\"{a_port}\",vigil_version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&s, "redis_instance_info", &info), Some(1.0), "{s:?}");
    assert_eq!(
        value(&s, "vigil_agent_assigned_role", "role=\"master\""),
        Some(1.0)
    );
    assert_eq!(value(&s, "vigil_epoch", ""), Some(1.0));
    assert_eq!(value(&s, "vigil_writable", ""), Some(1.0));
    assert!(value(&s, "vigil_lease_remaining_seconds", "").unwrap() > 30.0);
    assert_eq!(status(ha, "/replica"), 503);

    // b follows a: /replica passes there, /primary does not.
    cb.replicate_from(ReplicateFromRequest {
        epoch: 1,
        host: "127.0.0.1".into(),
        port: a.port.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    wait("/replica on the follower", Duration::from_secs(10), || {
        status(hb, "/replica") == 200
    });
    assert_eq!(status(hb, "/primary"), 503);

    // Fenced: a stops passing /primary at once, though its lease has time left.
    ca.fence(FenceRequest { epoch: 2 }).await.unwrap();
    assert_eq!(status(ha, "/primary"), 503);
    assert_eq!(metric(ha, "vigil_fenced", ""), Some(1.0));
    assert_eq!(metric(ha, "vigil_epoch", ""), Some(2.0));

    // b promoted with a short lease that is never renewed: /primary passes until it ends.
    cb.promote(PromoteRequest {
        epoch: 2,
        min_offset: 0,
        lease_ttl_ms: 1_500,
        lease_since_node_ms: 0,
    })
    .await
    .unwrap();
    wait("/primary on b", Duration::from_secs(5), || {
        status(hb, "/primary") == 200
    });
    wait(
        "/primary ends with the lease",
        Duration::from_secs(5),
        || status(hb, "/primary") == 503,
    );
    // (Writes stop a safety margin before the lease itself runs out.)
    assert_eq!(metric(hb, "vigil_writable", ""), Some(0.0));
    wait("the lease runs out", Duration::from_secs(2), || {
        metric(hb, "vigil_lease_remaining_seconds", "") == Some(0.0)
    });

    // A server that stops answering (SIGSTOP) is redis_up 0 and fails /health.
    let pid = a.server_pid();
    // SAFETY: kill(2) on the pid of the server our agent child owns.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = std::panic::catch_unwind(|| {
        wait("redis_up 0", Duration::from_secs(10), || {
            metric(ha, "redis_up", "") == Some(0.0)
        });
        assert_eq!(status(ha, "/health"), 503);
        assert_eq!(status(ha, "/liveness"), 200);
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    if let Err(e) = stopped {
        std::panic::resume_unwind(e);
    }
    wait("redis_up 1 again", Duration::from_secs(10), || {
        metric(ha, "redis_up", "") == Some(1.0)
    });
}
