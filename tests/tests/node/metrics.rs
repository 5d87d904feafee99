//! The metrics page (`metrics = "host:port"`, `GET /metrics`): it parses with the Prometheus
//! client library's own text-format parser, uses redis_exporter's names, and agrees with
//! INFO.

use vigil_tests::ops_http::{get, parse_metrics, value};
use vigil_tests::{NodeProc, free_port};

fn node_with_metrics() -> (NodeProc, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let addr = format!("127.0.0.1:{mport}");
    let n = NodeProc::start(
        &dir.path().join("n"),
        &["--admin-port", "0", "--metrics", &addr],
    );
    (n, mport, dir)
}

#[test]
fn node_metrics_parse_and_agree_with_info() {
    let (n, mport, _dir) = node_with_metrics();
    let mut c = n.client();
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("e")
        .arg(1)
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let _: Option<String> = redis::cmd("GET").arg("k1").query(&mut c).unwrap();
    let page = get(mport, "/metrics");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let s = parse_metrics(&page.body);
    assert_eq!(value(&s, "redis_up", ""), Some(1.0));
    assert_eq!(value(&s, "redis_db_keys", "db=\"db0\""), Some(21.0));
    assert_eq!(value(&s, "redis_db_keys_expiring", "db=\"db0\""), Some(1.0));
    assert_eq!(value(&s, "redis_commands_total", "cmd=\"set\""), Some(21.0));
    assert_eq!(value(&s, "redis_commands_total", "cmd=\"get\""), Some(1.0));
    assert_eq!(value(&s, "redis_connected_clients", ""), Some(1.0));
    let offset: f64 = n.info_field("master_repl_offset").unwrap().parse().unwrap();
    assert_eq!(value(&s, "redis_master_repl_offset", ""), Some(offset));
    let processed = value(&s, "redis_commands_processed_total", "").unwrap();
    let info_processed: f64 = n
        .info_field("total_commands_processed")
        .unwrap()
        .parse()
        .unwrap();
    // INFO itself is one more command.
    assert!(
        processed >= 22.0 && processed < info_processed,
        "{processed} vs {info_processed}"
    );
    // The latency histogram: counts equal the calls, buckets cumulative, same bounds always.
    assert_eq!(
        value(&s, "vigil_command_duration_seconds_count", "cmd=\"set\""),
        Some(21.0)
    );
    assert_eq!(
        value(
            &s,
            "vigil_command_duration_seconds_bucket",
            "cmd=\"set\",le=\"+Inf\""
        ),
        Some(21.0)
    );
    let buckets: Vec<f64> = s
        .iter()
        .filter(|x| {
            x.name == "vigil_command_duration_seconds_bucket" && x.labels.starts_with("cmd=\"set\"")
        })
        .map(|x| x.value)
        .collect();
    assert_eq!(buckets.len(), 14, "13 bounds and +Inf");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let role = s
        .iter()
        .find(|x| x.name == "redis_instance_info")
        .expect("redis_instance_info");
    assert!(role.labels.contains("role=\"master\""), "{}", role.labels);
    assert_eq!(value(&s, "vigil_writable", ""), Some(1.0));
    assert_eq!(value(&s, "vigil_fenced", ""), Some(0.0));
}

#[test]
fn a_replica_shows_its_link_and_the_master_its_replica() {
    let (m, mport, dir) = node_with_metrics();
    let rport = free_port();
    let raddr = format!("127.0.0.1:{rport}");
    let master = format!("127.0.0.1:{}", m.port);
    let r = NodeProc::start(
        &dir.path().join("r"),
        &[
            "--admin-port",
            "0",
            "--metrics",
            &raddr,
            "--replicaof",
            &master,
        ],
    );
    r.wait_info("master_link_status", |s| s == "up", "replica link");
    let rs = parse_metrics(&get(rport, "/metrics").body);
    assert_eq!(value(&rs, "redis_master_link_up", ""), Some(1.0));
    let info = rs.iter().find(|x| x.name == "redis_instance_info").unwrap();
    assert!(info.labels.contains("role=\"slave\""), "{}", info.labels);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ms = parse_metrics(&get(mport, "/metrics").body);
        if value(&ms, "redis_connected_slaves", "") == Some(1.0) {
            let row = ms
                .iter()
                .find(|x| x.name == "redis_connected_slave_offset_bytes")
                .expect("one offset row per replica");
            assert!(
                row.labels.contains("slave_ip=\"127.0.0.1\""),
                "{}",
                row.labels
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the master never showed its replica"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
