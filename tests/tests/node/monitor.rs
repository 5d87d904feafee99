//! `MONITOR` compared with redis-server: the same commands produce the same lines, in the same
//! order (timestamps and client ports aside): quoting, databases, scripts' own commands after
//! the script, transactions (without the commands EXEC's ACL check refuses), redacted
//! passwords, hidden administrative commands.

use std::time::Duration;

use vigil_tests::{NodeProc, RawConn, RedisProc};

const COMMANDS: &[&[&str]] = &[
    &["SET", "plain", "v"],
    &["SET", "quote\"d", "a b\n\t\u{1}"],
    &["SELECT", "2"],
    &["INCR", "n"],
    &["CONFIG", "GET", "maxmemory"],
    &["EVAL", "return redis.call('get', KEYS[1])", "1", "plain"],
    &["MULTI"],
    &["SET", "k", "1"],
    &["GET", "k"],
    &["EXEC"],
    &["AUTH", "secret"],
    &["HELLO", "2", "AUTH", "default", "pw"],
    &["GET"],
    &["NOSUCHCOMMAND", "x"],
    &["PING"],
    // A command the transaction's own ACL change refuses at EXEC never ran: no line.
    &["ACL", "SETUSER", "mon", "on", "nopass", "+@all", "~*"],
    &["AUTH", "mon", "x"],
    &["MULTI"],
    &["GET", "k"],
    &["ACL", "SETUSER", "mon", "-get"],
    &["GET", "k"],
    &["EXEC"],
];

/// The monitor lines the commands produce on the server at `port`, each without its time and
/// with the client's address replaced by `client` (ports differ).
fn monitor_lines(port: u16) -> Vec<String> {
    let mut mon = RawConn::connect(port).unwrap();
    assert_eq!(mon.call(&["MONITOR"]), b"+OK\r\n");
    let mut c = RawConn::connect(port).unwrap();
    for cmd in COMMANDS {
        c.call(cmd);
    }
    c.call(&["ECHO", "end"]);
    let mut lines = Vec::new();
    while let Some(frame) = mon.unsolicited(Duration::from_secs(5)) {
        let line = String::from_utf8_lossy(&frame).into_owned();
        let (_, rest) = line.split_once(' ').expect("timestamp");
        let rest = match rest.split_once(' ') {
            Some((db, tail)) if tail.starts_with("127.0.0.1:") => {
                let (_, after) = tail.split_once(']').unwrap();
                format!("{db} client]{after}")
            }
            _ => rest.to_string(),
        };
        let done = rest.contains("\"ECHO\" \"end\"");
        lines.push(rest);
        if done {
            break;
        }
    }
    lines
}

#[test]
fn monitor_lines_match_redis_server() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let want = monitor_lines(redis.port);
    let got = monitor_lines(node.port);
    assert!(want.len() > 10, "{want:#?}");
    assert_eq!(got, want);
}
