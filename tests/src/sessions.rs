//! Differential comparison of several connections at once: replies and the messages a server
//! pushes unasked (client-side caching invalidations, pub/sub), compared with redis-server.

use std::collections::HashMap;
use std::time::Duration;

use crate::diff::{assert_none, split_args};
use crate::procs::{NodeProc, RedisProc};
use crate::raw::RawConn;

/// One named connection on both servers: (reference, node, reference id, node id).
type Session = (RawConn, RawConn, Vec<u8>, Vec<u8>);

/// Runs a script of several named connections on both servers, comparing every reply and
/// every unsolicited message (client-side caching invalidations, pub/sub).
///
/// Lines are `name: command` (sent on connection `name`, opened on first use; `{id:other}` in
/// an argument is connection `other`'s client id on that server, so `CLIENT ID` replies are not
/// compared), `name> command` (sent without waiting: its reply is read by a later `name<`),
/// `name<` (one message the server sent `name` unasked, or a reply, compared) and `name!` (nothing
/// pushed to `name` within 300 ms on either server). HELLO replies are not compared (they
/// carry the client id).
pub fn compare_sessions(script: &str, redis_port: u16, vigil_port: u16) -> Vec<String> {
    let mut conns: HashMap<String, Session> = HashMap::new();
    let mut failures = Vec::new();
    let open = |conns: &mut HashMap<String, Session>, name: &str| {
        conns.entry(name.to_string()).or_insert_with(|| {
            let mut r = RawConn::connect(redis_port).unwrap();
            let mut v = RawConn::connect(vigil_port).unwrap();
            let id = |c: &mut RawConn| {
                let reply = c.call(&["CLIENT", "ID"]);
                reply[1..reply.len() - 2].to_vec()
            };
            let (ri, vi) = (id(&mut r), id(&mut v));
            (r, v, ri, vi)
        });
    };
    for (i, line) in script.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (want, got) = if let Some(name) = line.strip_suffix('<') {
            open(&mut conns, name);
            let (r, v, ..) = conns.get_mut(name).unwrap();
            let wait = Duration::from_secs(5);
            (r.unsolicited(wait), v.unsolicited(wait))
        } else if let Some(name) = line.strip_suffix('!') {
            open(&mut conns, name);
            let (r, v, ..) = conns.get_mut(name).unwrap();
            let wait = Duration::from_millis(300);
            (r.unsolicited(wait), v.unsolicited(wait))
        } else if let Some((name, cmd)) = line.split_once('>').filter(|(n, _)| !n.contains(' ')) {
            let args = split_args(cmd.trim()).unwrap_or_else(|| panic!("bad quoting in {line:?}"));
            open(&mut conns, name);
            let (r, v, ..) = conns.get_mut(name).unwrap();
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            r.send_raw(&RawConn::encode_bytes(&args)).unwrap();
            v.send_raw(&RawConn::encode_bytes(&args)).unwrap();
            continue;
        } else {
            let Some((name, cmd)) = line.split_once(':') else {
                panic!("bad session line {line:?}");
            };
            let Some(args) = split_args(cmd.trim()) else {
                panic!("bad quoting in {line:?}");
            };
            for a in &args {
                if let Some(other) = std::str::from_utf8(a)
                    .ok()
                    .and_then(|a| a.strip_prefix("{id:")?.strip_suffix('}'))
                {
                    open(&mut conns, other);
                }
            }
            open(&mut conns, name);
            let ids: HashMap<String, (Vec<u8>, Vec<u8>)> = conns
                .iter()
                .map(|(k, (_, _, ri, vi))| (format!("{{id:{k}}}"), (ri.clone(), vi.clone())))
                .collect();
            let subst = |redis: bool| -> Vec<Vec<u8>> {
                args.iter()
                    .map(|a| {
                        let key = String::from_utf8_lossy(a).into_owned();
                        match ids.get(&key) {
                            Some((ri, vi)) => {
                                if redis {
                                    ri.clone()
                                } else {
                                    vi.clone()
                                }
                            }
                            None => a.clone(),
                        }
                    })
                    .collect()
            };
            let (ra, va) = (subst(true), subst(false));
            let (r, v, ..) = conns.get_mut(name).unwrap();
            let rr: Vec<&[u8]> = ra.iter().map(Vec::as_slice).collect();
            let vv: Vec<&[u8]> = va.iter().map(Vec::as_slice).collect();
            let (want, got) = (r.call_bytes(&rr), v.call_bytes(&vv));
            if args[0].eq_ignore_ascii_case(b"hello") {
                // It carries the client id, which differs (HELLO is compared elsewhere).
                continue;
            }
            (Some(want), Some(got))
        };
        // Client ids differ between the servers: in the replies that carry them, the node's
        // are read as the reference's.
        let upper = line.to_ascii_uppercase();
        let carries_ids = upper.contains("GETREDIR") || upper.contains("TRACKINGINFO");
        let got = got.map(|mut g| {
            if !carries_ids && !g.windows(21).any(|w| w == b"tracking-redir-broken") {
                return g;
            }
            for (_, _, ri, vi) in conns.values() {
                let (from, to) = (
                    [b":", &vi[..], b"\r\n"].concat(),
                    [b":", &ri[..], b"\r\n"].concat(),
                );
                if let Some(p) = g.windows(from.len()).position(|w| w == from) {
                    g.splice(p..p + from.len(), to);
                }
            }
            g
        });
        if want != got {
            let show = |b: &Option<Vec<u8>>| {
                b.as_ref().map_or("(nothing)".to_string(), |b| {
                    String::from_utf8_lossy(b).into_owned()
                })
            };
            failures.push(format!(
                "#{i} {line}\n   redis: {:?}\n   vigil: {:?}",
                show(&want),
                show(&got)
            ));
        }
    }
    failures
}

/// Runs a session script on a fresh redis-server and a fresh node; fails the test where they
/// differ.
pub fn assert_sessions_match(script: &str) {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    assert_none(&compare_sessions(script, redis.port, node.port));
}
