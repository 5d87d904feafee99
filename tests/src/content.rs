//! A key's content in a comparable form, read through a real client: its type and value, with
//! sets and hashes sorted (their reply order is the server's business).

use redis::Connection;

/// How much of a stream to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamView {
    /// Entries and `XINFO STREAM … FULL` (consumers and pending entries, with their times: for
    /// a copy of the same stream, as DUMP/RESTORE makes).
    Full,
    /// Entries and `XINFO GROUPS` (no times: for streams built apart on two servers).
    Groups,
}

fn query(c: &mut Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    format!("{:?}", cmd.query::<redis::Value>(c).unwrap())
}

/// `"<type> <value>"`; `"none none"` for a missing key.
pub fn of(c: &mut Connection, key: &str, streams: StreamView) -> String {
    let ty: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let body = match ty.as_str() {
        "string" => query(c, &["GET", key]),
        "list" => query(c, &["LRANGE", key, "0", "-1"]),
        "zset" => query(c, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        "set" => {
            let mut m: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query(c).unwrap();
            m.sort();
            format!("{m:?}")
        }
        "hash" => {
            let mut m: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(key).query(c).unwrap();
            m.sort();
            format!("{m:?}")
        }
        "stream" => {
            let info = match streams {
                StreamView::Full => query(c, &["XINFO", "STREAM", key, "FULL"]),
                StreamView::Groups => query(c, &["XINFO", "GROUPS", key]),
            };
            format!("{info} {}", query(c, &["XRANGE", key, "-", "+"]))
        }
        "none" => "none".into(),
        t => panic!("type {t}"),
    };
    format!("{ty} {body}")
}
