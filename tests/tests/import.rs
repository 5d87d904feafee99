//! `vigil sentinel --import-redis-sentinel` on a `sentinel.conf` that a real Redis Sentinel
//! rewrote after discovering a replica: the printed groups name the master and the replica with
//! the file's settings, credentials and renamed command, and parse as a sentinel's config. A
//! file Redis would refuse is an error naming the file and the line.

use std::process::Command;
use std::time::{Duration, Instant};

use vigil_sentinel::config::SentinelConfig;
use vigil_sentinel::state::Driver;
use vigil_tests::{RedisProc, RedisSentinelProc, vigil_bin};

const PASS: &str = "s3cret-pass";

/// `cmd` on the server at `port` (authenticated once `auth`).
fn query(port: u16, auth: bool, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?.get_connection()?;
    if auth {
        redis::cmd("AUTH").arg(PASS).query::<()>(&mut c)?;
    }
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

fn import(path: &std::path::Path) -> std::process::Output {
    Command::new(vigil_bin())
        .args(["sentinel", "--import-redis-sentinel"])
        .arg(path)
        .output()
        .expect("run vigil")
}

#[test]
fn a_config_written_by_redis_sentinel_becomes_vigil_groups() {
    // A master and its replica, both knowing CONFIG as XCONFIG and asking for a password.
    // (Not one with a space: Redis Sentinel writes `auth-pass` back unquoted, and then
    // neither it nor the importer can read the line.)
    let rename = ["--rename-command", "CONFIG", "XCONFIG"];
    let master = RedisProc::start_with(&rename);
    let mp = master.port.to_string();
    let mut args = rename.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &mp]);
    let replica = RedisProc::start_with(&args);
    let rp = replica.port.to_string();
    for port in [replica.port, master.port] {
        query(port, false, &["XCONFIG", "SET", "masterauth", PASS]).expect("masterauth");
    }
    for port in [master.port, replica.port] {
        query(port, false, &["XCONFIG", "SET", "requirepass", PASS]).expect("requirepass");
    }
    let sentinel = RedisSentinelProc::start_with(&format!(
        "sentinel monitor shop 127.0.0.1 {mp} 2\n\
         sentinel down-after-milliseconds shop 1000\n\
         sentinel failover-timeout shop 20000\n\
         sentinel parallel-syncs shop 2\n\
         sentinel auth-pass shop \"{PASS}\"\n\
         sentinel rename-command shop CONFIG XCONFIG\n"
    ));
    // Redis Sentinel learns the replica from the master's INFO (every 10 s) and rewrites its
    // file at once.
    let want = format!("sentinel known-replica shop 127.0.0.1 {rp}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let written = loop {
        let text = std::fs::read_to_string(&sentinel.conf).unwrap_or_default();
        if text.contains(&want) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "redis-sentinel never wrote {want:?}; its file:\n{text}\nmaster INFO: {:?}",
            query(master.port, true, &["INFO", "replication"])
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(written.contains("sentinel myid"), "{written}");

    let out = import(&sentinel.conf);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "import failed: {}\nthe file:\n{written}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The printed text, added to a sentinel's config, parses as one.
    let config = format!(
        "id = 1\ngrpc = \"127.0.0.1:27379\"\ndir = \"d\"\ntoken = \"t\"\npeers = [{{ id = 1, address = \"127.0.0.1:27379\" }}]\n{stdout}"
    );
    let c = SentinelConfig::parse(&config, "imported.toml")
        .unwrap_or_else(|e| panic!("{e}\nprinted:\n{stdout}"));
    assert_eq!(c.groups.len(), 1, "{stdout}");
    let g = c.groups[0].spec();
    assert_eq!((g.name.as_str(), g.driver), ("shop", Driver::Resp));
    let nodes: Vec<(&str, &str)> = g
        .nodes
        .iter()
        .map(|n| (n.data.as_str(), n.admin.as_str()))
        .collect();
    let (m, r) = (format!("127.0.0.1:{mp}"), format!("127.0.0.1:{rp}"));
    assert_eq!(
        nodes,
        [(m.as_str(), m.as_str()), (r.as_str(), r.as_str())],
        "{stdout}"
    );
    let s = &g.settings;
    assert_eq!(
        (
            s.quorum,
            s.down_after_ms,
            s.failover_timeout_ms,
            s.parallel_syncs
        ),
        (2, 1000, 20_000, 2),
        "{stdout}"
    );
    assert_eq!((g.auth_user.as_str(), g.auth_pass.as_str()), ("", PASS));
    assert_eq!(g.command_name("config"), "XCONFIG");
    // The comment says where it came from and what stayed behind.
    let conf = sentinel.conf.display().to_string();
    for want in [
        conf.as_str(),
        "known-sentinel",
        &format!("port {}", sentinel.port),
    ] {
        assert!(stdout.contains(want), "{want:?} not in:\n{stdout}");
    }
}

#[test]
fn a_line_redis_would_refuse_is_an_error_naming_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sentinel.conf");
    std::fs::write(
        &path,
        "port 26379\nsentinel monitor m 127.0.0.1 6379 2\nsentinel down-after-milliseconds m soon\n",
    )
    .expect("write");
    let out = import(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "printed something");
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
