//! NodeAdmin end to end: a real `vigil node` in managed mode driven over gRPC. Tokens are
//! checked before anything changes, malformed requests are INVALID_ARGUMENT, stale epochs are
//! refused, a managed node boots read-only, and an expired lease (SIGSTOP past it) stops write
//! acknowledgements and reads (lease reads) until it is renewed.

use std::time::{Duration, Instant};

use tonic::Code;
use vigil_proto::node::{
    ClientType, FenceRequest, GetStatusRequest, KillClientsRequest, NodeStatus, PromoteRequest,
    RenewLeaseRequest, ReplicateFromRequest, Role,
};
use vigil_tests::{NodeProc, RawConn, write_config};

const TOKEN: &str = "s3cret-admin-token";

type Client = vigil_tests::AdminClient;

async fn admin(port: u16, token: Option<&str>) -> Client {
    vigil_tests::admin_client(port, token).await
}

fn managed(dir: &std::path::Path, name: &str) -> NodeProc {
    managed_with(dir, name, "")
}

/// A managed node; `replication` is extra `[replication]` settings.
fn managed_with(dir: &std::path::Path, name: &str, replication: &str) -> NodeProc {
    managed_config(dir, name, "", replication)
}

/// A managed node; `top` is extra top-level settings, `replication` extra `[replication]` ones.
fn managed_config(dir: &std::path::Path, name: &str, top: &str, replication: &str) -> NodeProc {
    let cfg = write_config(
        dir,
        &format!("{name}.toml"),
        &format!(
            "mode = \"managed\"\n{top}[persistence]\nappendfsync = \"always\"\n[admin]\nport = 0\ntoken = \"{TOKEN}\"\n[replication]\n{replication}"
        ),
    );
    NodeProc::start(&dir.join(name), &["--config", cfg.to_str().unwrap()])
}

/// Promotes `a` at epoch 1 (with a lease of `lease_ttl_ms`; 0: none) and points `b` at it;
/// their admin clients.
async fn promote_and_follow(a: &NodeProc, b: &NodeProc, lease_ttl_ms: u64) -> (Client, Client) {
    let mut ca = admin(a.admin_port(), Some(TOKEN)).await;
    let mut cb = admin(b.admin_port(), Some(TOKEN)).await;
    ca.promote(PromoteRequest {
        epoch: 1,
        lease_ttl_ms,
        ..Default::default()
    })
    .await
    .unwrap();
    cb.replicate_from(ReplicateFromRequest {
        epoch: 1,
        host: "127.0.0.1".into(),
        port: a.port as u32,
        ..Default::default()
    })
    .await
    .unwrap();
    (ca, cb)
}

async fn status(c: &mut Client) -> NodeStatus {
    c.get_status(GetStatusRequest::default())
        .await
        .unwrap()
        .into_inner()
}

const READONLY: &[u8] = b"-READONLY You can't write against a read only replica.\r\n";

/// A refused read: `-READONLY` (clients re-resolve the master on that prefix) with its reason.
fn refused_read(reply: &[u8]) -> bool {
    reply.starts_with(b"-READONLY This node holds no valid master lease")
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let port = node.admin_port();
    for token in [None, Some("wrong"), Some("")] {
        let mut c = admin(port, token).await;
        let e = c.get_status(GetStatusRequest::default()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e}");
        assert!(e.message().contains("token"), "{}", e.message());
        let e = c
            .promote(PromoteRequest {
                epoch: 9,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = c.fence(FenceRequest { epoch: 9 }).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    let mut c = admin(port, Some(TOKEN)).await;
    let s = status(&mut c).await;
    assert_eq!(
        (s.role, s.epoch, s.fenced),
        (Role::Unassigned as i32, 0, false)
    );
    assert!(!node.dir.join("epoch").exists(), "no epoch was persisted");
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let bad_replicate = [
        ("", 6379),
        ("127.0.0.1", 0),
        ("127.0.0.1", 70000),
        ("a b", 6379),
    ];
    for (host, port) in bad_replicate {
        let e = c
            .replicate_from(ReplicateFromRequest {
                epoch: 1,
                host: host.into(),
                port,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{host}:{port}: {e}");
    }
    let e = c.fence(FenceRequest { epoch: 0 }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    for (ttl, since) in [(0, 0), (10_000_000, 0), (1000, u64::MAX / 2)] {
        let e = c
            .renew_lease(RenewLeaseRequest {
                epoch: 1,
                ttl_ms: ttl,
                since_node_ms: since,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "ttl {ttl} since {since}");
    }
    let e = c
        .kill_clients(KillClientsRequest { r#type: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .kill_clients(KillClientsRequest { r#type: 77 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let s = status(&mut c).await;
    assert_eq!(
        (s.role, s.epoch),
        (Role::Unassigned as i32, 0),
        "nothing changed"
    );
}

#[tokio::test]
async fn managed_node_boots_read_only_and_writes_only_under_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = managed(dir.path(), "n");
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "1"]), READONLY, "boots read-only");
    assert!(refused_read(&r.call(&["GET", "a"])), "and serves no reads");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let s = c
        .promote(PromoteRequest {
            epoch: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.role, s.epoch, s.writable),
        (Role::Master as i32, 3, false)
    );
    assert_eq!(
        r.call(&["SET", "a", "1"]),
        READONLY,
        "a master without a lease"
    );
    let l = c
        .renew_lease(RenewLeaseRequest {
            epoch: 3,
            ttl_ms: 1000,
            since_node_ms: s.node_clock_ms,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        l.lease_remaining_ms > 0 && l.lease_remaining_ms <= 1000,
        "{l:?}"
    );
    assert_eq!(r.call(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n1\r\n");
    // Past its lease (the process is frozen, so nothing on it can help), the node refuses
    // writes and reads, and closes its clients so they ask the sentinels again.
    node.pause();
    std::thread::sleep(Duration::from_millis(1300));
    node.signal(libc::SIGCONT);
    assert!(r.is_closed(), "a lapsed lease closes the normal clients");
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "2"]), READONLY, "lease expired");
    assert!(refused_read(&r.call(&["GET", "a"])));
    assert!(!status(&mut c).await.writable);
    c.renew_lease(RenewLeaseRequest {
        epoch: 3,
        ttl_ms: 5000,
        since_node_ms: 0,
    })
    .await
    .unwrap();
    assert_eq!(r.call(&["SET", "a", "3"]), b"+OK\r\n");
    assert_eq!(
        r.call(&["GET", "a"]),
        b"$1\r\n3\r\n",
        "renewed: reads again"
    );
    // The epoch survives SIGKILL; the role does not: back to read-only.
    node.kill9();
    let node = NodeProc::start(
        &node.dir.clone(),
        &["--config", dir.path().join("n.toml").to_str().unwrap()],
    );
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let s = status(&mut c).await;
    assert_eq!((s.role, s.epoch), (Role::Unassigned as i32, 3));
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "4"]), READONLY);
    // Unassigned, it reports itself as a master: it may not serve its (possibly stale) data.
    assert!(refused_read(&r.call(&["GET", "a"])));
    assert_eq!(s.keys, 1);
    c.promote(PromoteRequest {
        epoch: 3,
        lease_ttl_ms: 10_000,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n3\r\n");
}

/// A renewal that comes late (a busy sentinel leader, an election) is a pause, not an error:
/// a command sent just after the lease ran out waits for the renewal and runs. Without one,
/// it is refused one lease length after the lapse, as any command of a deposed master.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_waits_for_a_late_lease_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let s = c
        .promote(PromoteRequest {
            epoch: 1,
            lease_ttl_ms: 2000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.writable, "{s:?}");
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "1"]), b"+OK\r\n");
    // Past the lease, inside the hold (another lease length).
    let lapsed = loop {
        let s = status(&mut c).await;
        if !s.writable {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut r = RawConn::connect(node.port).unwrap();
    let sent = Instant::now();
    r.send_raw(&RawConn::encode(&["SET", "a", "2"])).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.renew_lease(RenewLeaseRequest {
        epoch: 1,
        ttl_ms: 3000,
        since_node_ms: lapsed.node_clock_ms,
    })
    .await
    .unwrap();
    let reply = tokio::task::block_in_place(|| r.read_reply());
    assert_eq!(reply.as_deref(), Some(&b"+OK\r\n"[..]), "held, then run");
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "answered before the renewal: {:?}",
        sent.elapsed()
    );
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n2\r\n");
    // No renewal this time: refused once the hold is over, the value unchanged.
    while status(&mut c).await.writable {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut r = RawConn::connect(node.port).unwrap();
    let reply = tokio::task::block_in_place(|| {
        r.send_raw(&RawConn::encode(&["SET", "a", "3"])).unwrap();
        r.read_reply()
    });
    // Refused as the hold ends, or closed with the other clients at that moment.
    assert!(
        reply.as_deref().is_none_or(|r| r == READONLY),
        "{:?}",
        reply.map(|r| String::from_utf8_lossy(&r).into_owned())
    );
    // Past the hold the normal clients are closed, and a new one is refused at once.
    assert!(tokio::task::block_in_place(|| r.is_closed()));
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "3"]), READONLY);
    assert!(refused_read(&r.call(&["GET", "a"])));
    c.renew_lease(RenewLeaseRequest {
        epoch: 1,
        ttl_ms: 5000,
        since_node_ms: 0,
    })
    .await
    .unwrap();
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n2\r\n");
}

/// `lease_reads = false` keeps Redis' behaviour: reads are served without a lease and after a
/// fence, and nothing closes the clients; writes still need the lease.
#[tokio::test]
async fn without_lease_reads_a_master_serves_reads_whatever_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed_config(dir.path(), "n", "lease_reads = false\n", "");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["GET", "a"]), b"$-1\r\n", "unassigned");
    c.promote(PromoteRequest {
        epoch: 1,
        lease_ttl_ms: 300,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(r.call(&["SET", "a", "1"]), b"+OK\r\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.call(&["SET", "a", "2"]), READONLY, "lease expired");
    assert_eq!(
        r.call(&["GET", "a"]),
        b"$1\r\n1\r\n",
        "same connection, still open"
    );
    c.fence(FenceRequest { epoch: 2 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.call(&["GET", "a"]), b"$1\r\n1\r\n");
}

#[tokio::test]
async fn stale_epochs_and_fencing() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let s = c
        .promote(PromoteRequest {
            epoch: 5,
            lease_ttl_ms: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.writable, "{s:?}");
    let e = c
        .promote(PromoteRequest {
            epoch: 4,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("stale epoch 4"), "{}", e.message());
    let e = c
        .replicate_from(ReplicateFromRequest {
            epoch: 4,
            host: "127.0.0.1".into(),
            port: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = c.fence(FenceRequest { epoch: 1 }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let s = status(&mut c).await;
    assert_eq!(
        (s.role, s.epoch, s.writable),
        (Role::Master as i32, 5, true)
    );
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "1"]), b"+OK\r\n");
    // Fence: no writes or reads at once, clients closed, and a lease renewal at the same epoch
    // does not lift it.
    c.fence(FenceRequest { epoch: 6 }).await.unwrap();
    assert!(r.is_closed(), "a fence closes the normal clients");
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "a", "2"]), READONLY);
    assert!(refused_read(&r.call(&["GET", "a"])));
    let e = c
        .renew_lease(RenewLeaseRequest {
            epoch: 6,
            ttl_ms: 1000,
            since_node_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(r.call(&["SET", "a", "2"]), READONLY);
    assert_eq!(
        std::fs::read_to_string(node.dir.join("epoch"))
            .unwrap()
            .trim(),
        "6"
    );
}

#[tokio::test]
async fn promote_refuses_below_min_offset_and_replicas_refuse_stale_masters() {
    let dir = tempfile::tempdir().unwrap();
    let a = managed(dir.path(), "a");
    let b = managed(dir.path(), "b");
    let mut ca = admin(a.admin_port(), Some(TOKEN)).await;
    let mut cb = admin(b.admin_port(), Some(TOKEN)).await;
    ca.promote(PromoteRequest {
        epoch: 1,
        lease_ttl_ms: 60_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ra = RawConn::connect(a.port).unwrap();
    assert_eq!(ra.call(&["SET", "k", "v"]), b"+OK\r\n");
    // b was told about epoch 2; a is still at 1: b must not follow it.
    cb.replicate_from(ReplicateFromRequest {
        epoch: 2,
        host: "127.0.0.1".into(),
        port: a.port as u32,
        ..Default::default()
    })
    .await
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let s = status(&mut cb).await;
    assert_eq!(s.role, Role::Replica as i32);
    assert_ne!(s.link, vigil_proto::node::LinkStatus::Up as i32, "{s:?}");
    assert_eq!(s.keys, 0, "nothing copied from a stale master");
    assert!(b.stderr().contains("STALEEPOCH"), "{}", b.stderr());
    // a reaches epoch 2: b follows it now.
    ca.promote(PromoteRequest {
        epoch: 2,
        lease_ttl_ms: 60_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&mut cb).await;
        if s.keys == 1 && s.link == vigil_proto::node::LinkStatus::Up as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "b never synced: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // b's offset is a's; asking for more refuses and leaves b a replica.
    let offset = status(&mut ca).await.offset;
    let e = cb
        .promote(PromoteRequest {
            epoch: 3,
            min_offset: offset + 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("min_offset"), "{}", e.message());
    let s = status(&mut cb).await;
    assert_eq!((s.role, s.epoch), (Role::Replica as i32, 2));
    let s = cb
        .promote(PromoteRequest {
            epoch: 3,
            min_offset: s.offset,
            lease_ttl_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.role, s.writable), (Role::Master as i32, true));
    assert_eq!(
        s.replid2,
        status(&mut ca).await.replid,
        "kept a's history as replid2"
    );
}

#[tokio::test]
async fn kill_clients_by_type() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    let mut normal = RawConn::connect(node.port).unwrap();
    assert_eq!(normal.call(&["PING"]), b"+PONG\r\n");
    let mut sub = RawConn::connect(node.port).unwrap();
    assert!(sub.call(&["SUBSCRIBE", "ch"]).starts_with(b"*3"));
    let k = c
        .kill_clients(KillClientsRequest {
            r#type: ClientType::Normal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k.killed, 1);
    assert!(normal.is_closed());
    let k = c
        .kill_clients(KillClientsRequest {
            r#type: ClientType::Pubsub as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k.killed, 1);
    assert!(sub.is_closed());
}

/// A managed master with one worker thread (as `vigil up` runs them) holding the key `k`, and
/// a script looping on it past `busy-reply-threshold` (the node answers `-BUSY`): its admin
/// client, a connection for commands, and the thread that sent the script (its reply).
/// `before` runs on a connection of its own just before the script starts.
async fn busy_one_worker_master(
    dir: &std::path::Path,
    before: impl FnOnce(u16) -> Option<RawConn>,
) -> (
    NodeProc,
    Client,
    RawConn,
    Option<RawConn>,
    std::thread::JoinHandle<Vec<u8>>,
) {
    let node = managed_config(dir, "n", "threads = 1\n", "");
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    c.promote(PromoteRequest {
        epoch: 1,
        lease_ttl_ms: 60_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(status(&mut c).await.keys, 1);
    let kept = before(node.port);
    let looping = loop_script(node.port, &mut r, "EVAL").await;
    (node, c, r, kept, looping)
}

/// Starts a script looping for ever (`verb`: EVAL or EVAL_RO) on the node at `port`, past a
/// 100 ms `busy-reply-threshold`, and waits until `r` gets `-BUSY`; the thread that sent it
/// returns its reply.
async fn loop_script(
    port: u16,
    r: &mut RawConn,
    verb: &'static str,
) -> std::thread::JoinHandle<Vec<u8>> {
    assert_eq!(
        r.call(&["CONFIG", "SET", "busy-reply-threshold", "100"]),
        b"+OK\r\n"
    );
    let looping = std::thread::spawn(move || {
        let addr = format!("127.0.0.1:{port}");
        let mut c = RawConn::connect_to(&addr, Duration::from_secs(60)).unwrap();
        c.call(&[verb, "while true do end", "0"])
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.call(&["PING"]).starts_with(b"-BUSY") {
        assert!(Instant::now() < deadline, "the script never turned busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    looping
}

/// `SCRIPT KILL` ends the busy script, sent on a connection that gives up after 2 s (a node
/// whose only worker waits for the store would never answer it).
fn kill_script(port: u16, looping: std::thread::JoinHandle<Vec<u8>>) {
    let mut k = RawConn::connect_to(&format!("127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
    assert!(k.call(&["PING"]).starts_with(b"-BUSY"));
    assert_eq!(k.call(&["SCRIPT", "KILL"]), b"+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.join().unwrap()).into_owned();
    assert!(killed.starts_with("-ERR Script killed by user"), "{killed}");
}

/// A node with one worker thread keeps answering `GetStatus` while a script runs past
/// `busy-reply-threshold`, and `SCRIPT KILL` still reaches it: a status call that waited for
/// the store would hold the only worker until the script ended, and the sentinels would take
/// the node for dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_a_script_runs_on_a_one_worker_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, mut c, mut r, _, looping) = busy_one_worker_master(dir.path(), |_| None).await;
    for i in 0..5 {
        let st = tokio::time::timeout(Duration::from_secs(2), status(&mut c))
            .await
            .unwrap_or_else(|_| panic!("#{i}: GetStatus waited for the script"));
        assert_eq!(st.keys, 1, "#{i}: the count from before the script");
    }
    kill_script(node.port, looping);
    assert_eq!(status(&mut c).await.keys, 1);
    assert_eq!(r.call(&["PING"]), b"+PONG\r\n");
}

/// A fence sent while a script runs waits for the script (whose writes passed the role check
/// before it) without taking the only worker: `SCRIPT KILL` still runs, and the fence then
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_during_a_script_waits_for_it_and_script_kill_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _c, _r, _, looping) = busy_one_worker_master(dir.path(), |_| None).await;
    let mut fc = admin(node.admin_port(), Some(TOKEN)).await;
    let fence = tokio::spawn(async move { fc.fence(FenceRequest { epoch: 1 }).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !fence.is_finished(),
        "the fence waits for the running script"
    );
    kill_script(node.port, looping);
    let st = tokio::time::timeout(Duration::from_secs(5), fence)
        .await
        .expect("the fence completes once the script ends")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(st.fenced, "{st:?}");
    // The fence closed the clients' connections; a new one is answered.
    let mut r = RawConn::connect(node.port).unwrap();
    assert_eq!(r.call(&["PING"]), b"+PONG\r\n");
}

/// A client with `WATCH`es and tracking that disconnects while a script runs does not take
/// the only worker to clean up after it: the node keeps answering `-BUSY` and `SCRIPT KILL`,
/// and a transaction watching the same key afterwards runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_client_leaving_during_a_script_does_not_stop_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _c, mut r, tracking, looping) = busy_one_worker_master(dir.path(), |port| {
        let mut t = RawConn::connect(port).unwrap();
        t.call(&["HELLO", "3"]);
        assert_eq!(t.call(&["CLIENT", "TRACKING", "ON"]), b"+OK\r\n");
        assert_eq!(t.call(&["GET", "k"]), b"$1\r\nv\r\n");
        assert_eq!(t.call(&["WATCH", "k"]), b"+OK\r\n");
        Some(t)
    })
    .await;
    drop(tracking);
    tokio::time::sleep(Duration::from_millis(200)).await;
    kill_script(node.port, looping);
    assert_eq!(r.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(r.call(&["WATCH", "k"]), b"+OK\r\n");
    assert_eq!(r.call(&["MULTI"]), b"+OK\r\n");
    assert_eq!(r.call(&["SET", "k", "w"]), b"+QUEUED\r\n");
    assert_eq!(r.call(&["EXEC"]), b"*1\r\n+OK\r\n");
}

/// A replica with one worker thread running a long read-only script while its master keeps
/// writing: the replication stream waits for the script without taking the only worker, so
/// the replica answers `-BUSY` and `SCRIPT KILL`, then catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_running_a_script_still_answers_while_its_stream_waits() {
    let dir = tempfile::tempdir().unwrap();
    let a = managed(dir.path(), "a");
    let b = managed_config(dir.path(), "b", "threads = 1\n", "");
    let (_ca, mut cb) = promote_and_follow(&a, &b, 60_000).await;
    let mut w = RawConn::connect(a.port).unwrap();
    assert_eq!(w.call(&["SET", "k", "1"]), b"+OK\r\n");
    let mut r = RawConn::connect(b.port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.call(&["GET", "k"]) != b"$1\r\n1\r\n" {
        assert!(Instant::now() < deadline, "the replica never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let looping = loop_script(b.port, &mut r, "EVAL_RO").await;
    for i in 2..50 {
        assert_eq!(w.call(&["SET", "k", &i.to_string()]), b"+OK\r\n");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = tokio::time::timeout(Duration::from_secs(2), status(&mut cb))
        .await
        .expect("GetStatus answers during the script");
    assert_eq!(st.role, Role::Replica as i32);
    kill_script(b.port, looping);
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.call(&["GET", "k"]) != b"$2\r\n49\r\n" {
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message whose field 2 is a number where ReplicateFrom has its `host` string.
#[derive(Clone, PartialEq, prost::Message)]
struct Bogus {
    #[prost(uint64, tag = "2")]
    host: u64,
}

#[tokio::test]
async fn undecodable_requests_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let node = managed(dir.path(), "n");
    let channel =
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", node.admin_port()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(Bogus { host: 7 });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/vigil.node.v1.NodeAdmin/ReplicateFrom",
    );
    let codec = tonic_prost::ProstCodec::<Bogus, NodeStatus>::default();
    let e = grpc.unary(req, path, codec).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.message().contains("malformed"), "{}", e.message());
    let mut c = admin(node.admin_port(), Some(TOKEN)).await;
    assert_eq!(status(&mut c).await.role, Role::Unassigned as i32);
}

/// The lease is judged when the reply leaves, not when the write ran: a synchronous write whose
/// replica acknowledges only after the lease ran out is never answered +OK. Nor with an error
/// that clients read as "not run" (it did run, and reached the replica): the connection closes
/// without a reply, an unknown outcome.
#[tokio::test]
async fn a_lease_that_expires_while_a_write_waits_closes_the_connection_without_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let a = managed_with(
        dir.path(),
        "a",
        "sync_replicas = 1\nsync_timeout = \"10s\"\n",
    );
    let b = managed(dir.path(), "b");
    let (mut ca, mut cb) = promote_and_follow(&a, &b, 0).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&mut ca).await.replicas.is_empty()
        || status(&mut cb).await.link != vigil_proto::node::LinkStatus::Up as i32
    {
        assert!(Instant::now() < deadline, "replica never attached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ca.renew_lease(RenewLeaseRequest {
        epoch: 1,
        ttl_ms: 1500,
        since_node_ms: 0,
    })
    .await
    .unwrap();
    let mut r = RawConn::connect(a.port).unwrap();
    assert_eq!(r.call(&["SET", "k", "1"]), b"+OK\r\n");
    b.pause();
    // A read first, then the write: the read's reply still goes, the write's does not.
    r.send_raw(
        &[
            RawConn::encode(&["GET", "k"]),
            RawConn::encode(&["SET", "k", "2"]),
        ]
        .concat(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    b.signal(libc::SIGCONT);
    assert_eq!(r.read_reply().unwrap(), b"$1\r\n1\r\n");
    assert_eq!(
        r.read_reply(),
        None,
        "no reply to a write of unknown outcome"
    );
    assert!(r.is_closed());
    // It did run: the replica has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rb = RawConn::connect(b.port).unwrap();
    while rb.call(&["GET", "k"]) != b"$1\r\n2\r\n" {
        assert!(
            Instant::now() < deadline,
            "the write never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Keepalive PINGs are stream bytes but no data: `data_offset` stops at the last write, on the
/// master and on its replica alike, so the sentinels never count a PING as a divergent write.
#[tokio::test]
async fn data_offset_ends_at_the_last_write_not_at_a_ping() {
    let dir = tempfile::tempdir().unwrap();
    let a = managed_with(dir.path(), "a", "ping_period = \"100ms\"\n");
    let b = managed(dir.path(), "b");
    let (mut ca, mut cb) = promote_and_follow(&a, &b, 60_000).await;
    let mut r = RawConn::connect(a.port).unwrap();
    assert_eq!(r.call(&["SET", "k", "1"]), b"+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (sa, sb) = (status(&mut ca).await, status(&mut cb).await);
        let data = sa.data_offset.unwrap();
        if sa.offset > data && sb.offset == sa.offset {
            assert_eq!(sb.data_offset, Some(data), "the replica: {sb:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no PING after the write: {sa:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
