//! The operations endpoint on a managed group: the sentinels' metrics (redis_exporter's
//! `redis_sentinel_*`, Vigil's failover counter moving after `SENTINEL FAILOVER`, lease
//! renewals counted over time and the fence that switchover sends), the
//! nodes' `/primary` following the lease, and a real HAProxy routing writes by
//! `option httpchk GET /primary` through a SIGKILL failover.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_tests::free_port;
use vigil_tests::ops_http::{Observed, get, parse_metrics, start_observed, value};

/// Waits until `f` holds, or panics with `what`.
fn wait(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `name{labels}` summed over the sentinels (only the leader counts renewals and fences).
fn sentinels_sum(o: &Observed, name: &str, labels: &str) -> f64 {
    o.sentinel_http
        .iter()
        .filter_map(|p| value(&parse_metrics(&get(*p, "/metrics").body), name, labels))
        .sum()
}

fn primary_of(o: &Observed) -> Vec<u16> {
    o.node_http
        .iter()
        .map(|p| vigil_tests::ops_http::request(*p, "GET", "/primary").map_or(0, |r| r.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_metrics_and_the_failover_counter() {
    let o = start_observed("1s");
    let (m, mi) = o.c.master_and_followers().await;
    // Exactly the master answers /primary.
    wait("one /primary", Duration::from_secs(10), || {
        primary_of(&o)
            == (0..3)
                .map(|i| if i == mi { 200 } else { 503 })
                .collect::<Vec<u16>>()
    });
    let addr = m.address.clone();
    let labels = format!("master_address=\"{addr}\",master_name=\"mymaster\"");
    for &p in &o.sentinel_http {
        wait("sentinel ready", Duration::from_secs(10), || {
            get(p, "/readiness").status == 200
        });
        let s = parse_metrics(&get(p, "/metrics").body);
        assert_eq!(value(&s, "redis_sentinel_masters", ""), Some(1.0));
        assert_eq!(
            value(&s, "redis_sentinel_master_slaves", &labels),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "redis_sentinel_master_sentinels", &labels),
            Some(3.0)
        );
        assert_eq!(
            value(&s, "redis_sentinel_master_config_epoch", &labels),
            Some(m.epoch as f64)
        );
        assert_eq!(
            value(
                &s,
                "redis_sentinel_master_status",
                &format!("{labels},master_status=\"ok\"")
            ),
            Some(1.0)
        );
        assert!(value(&s, "vigil_raft_term", "").unwrap() >= 1.0);
        assert!(value(&s, "vigil_raft_applied_index", "").unwrap() >= 1.0);
    }
    let leaders: usize = o
        .sentinel_http
        .iter()
        .filter(|p| get(**p, "/leader").status == 200)
        .count();
    assert_eq!(leaders, 1, "exactly one sentinel answers /leader");
    // The leader renews the master's lease several times a second.
    let renewed = "group=\"mymaster\",outcome=\"ok\"";
    let before = sentinels_sum(&o, "vigil_sentinel_lease_renewals_total", renewed);
    wait("lease renewals are counted", Duration::from_secs(5), || {
        sentinels_sum(&o, "vigil_sentinel_lease_renewals_total", renewed) >= before + 3.0
    });
    assert_eq!(
        sentinels_sum(&o, "vigil_sentinel_fences_total", renewed),
        0.0,
        "no fence before a failover"
    );
    // A switchover through the Redis Sentinel protocol moves the counter on every sentinel.
    let resp = o.c.sentinels[0].resp_port();
    let mut r = vigil_tests::RawConn::connect(resp).unwrap();
    assert_eq!(r.call(&["SENTINEL", "FAILOVER", "mymaster"]), b"+OK\r\n");
    let done = "group=\"mymaster\",kind=\"manual\",outcome=\"completed\"";
    for &p in &o.sentinel_http {
        wait(
            "the failover counter moves",
            Duration::from_secs(30),
            || {
                value(
                    &parse_metrics(&get(p, "/metrics").body),
                    "vigil_failovers_total",
                    done,
                ) == Some(1.0)
            },
        );
        let s = parse_metrics(&get(p, "/metrics").body);
        assert_eq!(
            value(
                &s,
                "vigil_failover_duration_seconds_count",
                "group=\"mymaster\""
            ),
            Some(1.0)
        );
    }
    // The switchover fenced the old master (reachable, so it answered fenced).
    assert!(
        sentinels_sum(&o, "vigil_sentinel_fences_total", renewed) >= 1.0,
        "the fence of the old master is counted"
    );
    let (m2, mi2) = o.c.master_and_followers().await;
    assert_ne!(m2.address, addr);
    wait(
        "/primary moved to the new master",
        Duration::from_secs(10),
        || {
            primary_of(&o)
                == (0..3)
                    .map(|i| if i == mi2 { 200 } else { 503 })
                    .collect::<Vec<u16>>()
        },
    );
}

/// HAProxy in front of the three nodes, checking `/primary` every 100 ms.
struct Haproxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy(o: &Observed) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = format!(
        "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 200ms\n  retries 2\n  option redispatch\n  timeout client 30s\n  timeout server 30s\nlisten redis\n  bind 127.0.0.1:{port}\n  option httpchk GET /primary\n  http-check expect status 200\n  default-server inter 100ms fall 1 rise 1 on-marked-down shutdown-sessions\n"
    );
    for (i, n) in o.c.nodes.iter().enumerate() {
        cfg.push_str(&format!(
            "  server n{i} 127.0.0.1:{} check port {}\n",
            n.port, o.node_http[i]
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is required (tests/run.sh installs the Debian package)");
    Haproxy {
        child,
        port,
        _dir: dir,
    }
}

/// One SET over a fresh connection through HAProxy: the reply line, or the error.
fn set_through(port: u16, key: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    // Short: an attempt caught in the gap must not hide when service came back.
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let cmd = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\n1\r\n", key.len());
    s.write_all(cmd.as_bytes()).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.is_empty() {
        return Err("closed".into());
    }
    Ok(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_writes_to_the_master_through_a_sigkill_failover() {
    let down_after = Duration::from_millis(500);
    let mut o = start_observed("500ms");
    let (first, mi) = o.c.master_and_followers().await;
    let hp = haproxy(&o);
    wait("HAProxy finds the master", Duration::from_secs(10), || {
        set_through(hp.port, "warmup").is_ok_and(|l| l == "+OK\r\n")
    });
    // HAProxy starts every server as up; a few check intervals mark the replicas down.
    std::thread::sleep(Duration::from_millis(500));
    // Every acknowledged write must be on the master that acknowledged it: keys by round.
    let mut acked = Vec::new();
    for i in 0..50 {
        let k = format!("before{i}");
        assert_eq!(set_through(hp.port, &k).as_deref(), Ok("+OK\r\n"));
        acked.push(k);
    }
    let killed = Instant::now();
    o.c.nodes[mi].kill9();
    // Writes fail (HAProxy has no healthy server, or the new master has no lease yet) until
    // service is back; every reply is +OK or an error, never an acknowledgement by a replica.
    let mut back = None;
    let mut primary_at = None;
    let mut i = 0;
    while killed.elapsed() < Duration::from_secs(20) {
        if primary_at.is_none() && primary_of(&o).contains(&200) {
            primary_at = Some(killed.elapsed());
        }
        let k = format!("after{i}");
        i += 1;
        match set_through(hp.port, &k) {
            Ok(l) if l == "+OK\r\n" => {
                back.get_or_insert(killed.elapsed());
                acked.push(k);
                if acked.len() > 100 {
                    break;
                }
            }
            Ok(l) => assert!(l.starts_with('-'), "unexpected reply {l:?}"),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let back = back.expect("writes never came back through HAProxy");
    eprintln!(
        "SIGKILL -> a node answers /primary with 200: {primary_at:?}; first write acknowledged through HAProxy: {back:?}"
    );
    assert!(
        back <= down_after + Duration::from_secs(1),
        "service back after {back:?}"
    );
    let second = o.c.master(first.epoch + 1, Duration::from_secs(20)).await;
    // The sentinels counted an automatic failover and the write outage it caused.
    for &p in &o.sentinel_http {
        wait(
            "the automatic failover is counted",
            Duration::from_secs(10),
            || {
                let s = parse_metrics(&get(p, "/metrics").body);
                value(
                    &s,
                    "vigil_failovers_total",
                    "group=\"mymaster\",kind=\"auto\",outcome=\"completed\"",
                ) == Some(1.0)
                    && value(&s, "vigil_write_outage_seconds_count", "group=\"mymaster\"")
                        == Some(1.0)
            },
        );
    }
    let ni = o.c.node_at(&second.address);
    // Every acknowledged write is on the new master (async replication may lose writes
    // acknowledged by the old master just before the kill: count those separately).
    let mut c = o.c.nodes[ni].client();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| {
            let v: Option<String> = redis::cmd("GET").arg(k.as_str()).query(&mut c).unwrap();
            v.is_none()
        })
        .collect();
    assert!(
        missing.iter().all(|k| k.starts_with("before")),
        "writes acknowledged after the failover are missing: {missing:?}"
    );
}
