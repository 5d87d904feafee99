//! A seeded random sequence of writes, DUMP/RESTORE round trips, bad payloads and OBJECT
//! queries, replayed on redis-server and on the node and compared.

use super::*;
use vigil_tests::RawConn;
use vigil_tests::seeded::Rng;

/// The bulk string of a raw RESP reply.
fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    let s = reply.strip_prefix(b"$")?;
    let nl = s.iter().position(|&b| b == b'\r')?;
    let n: usize = std::str::from_utf8(&s[..nl]).ok()?.parse().ok()?;
    Some(s[nl + 2..nl + 2 + n].to_vec())
}

fn value(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => format!("{}", rng.below(20000) as i64 - 100),
        1 => format!("{}", rng.bits() as i64),
        2 => "y".repeat(1 + rng.below(90) as usize),
        3 => format!("v{}", rng.below(50)),
        _ => "abcd".repeat(rng.below(40) as usize + 6),
    }
}

#[test]
fn seeded_sequence_matches_redis() {
    let mut p = Pair::start();
    let mut rng = Rng(0x5eed_d0d0_cafe_f00d);
    let mut failures = Vec::new();
    let both = |p: &mut Pair, args: Vec<String>, failures: &mut Vec<String>| {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let (x, y) = (p.r.call_bytes(&a), p.v.call_bytes(&a));
        if x != y {
            failures.push(format!(
                "{args:?}\n  redis {:?}\n  vigil {:?}",
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y)
            ));
        }
        (x, y)
    };
    for step in 0..400 {
        let key = format!("k{}", rng.below(12));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cmd = match rng.below(14) {
            0 => s(&["SET", &key, &value(&mut rng)]),
            1 => s(&["RPUSH", &key, &value(&mut rng), &value(&mut rng)]),
            2 => s(&[
                "HSET",
                &key,
                &format!("f{}", rng.below(200)),
                &value(&mut rng),
            ]),
            3 => s(&["SADD", &key, &value(&mut rng)]),
            4 => s(&[
                "ZADD",
                &key,
                &format!("{}", rng.below(100)),
                &value(&mut rng),
            ]),
            5 => s(&[
                "XADD",
                &key,
                &format!("{}-1", step + 1),
                "f",
                &value(&mut rng),
            ]),
            6 => s(&["OBJECT", "ENCODING", &key]),
            7 => s(&["OBJECT", "REFCOUNT", &key]),
            8 => s(&["DEL", &key]),
            9 => s(&[
                "RESTORE",
                &key,
                &format!("{}", rng.below(3) as i64 - 1),
                &value(&mut rng),
            ]),
            10 => s(&["TYPE", &key]),
            _ => {
                // DUMP on each server, RESTORE of its own payload under a new name there.
                let copy = format!("copy{step}");
                let (x, y) = both(&mut p, s(&["DUMP", &key]), &mut Vec::new());
                let (Some(px), Some(py)) = (bulk(&x), bulk(&y)) else {
                    continue;
                };
                let restore = |c: &mut RawConn, payload: &[u8]| {
                    c.call_bytes(&[b"RESTORE", copy.as_bytes(), b"0", payload])
                };
                let (a, b) = (restore(&mut p.r, &px), restore(&mut p.v, &py));
                if a != b {
                    failures.push(format!("RESTORE of {key}'s DUMP: {a:?} vs {b:?}"));
                }
                // Garbage after a valid value is ignored by both; a flipped byte is refused.
                let mut bad = py.clone();
                let i = rng.below(bad.len() as u64) as usize;
                bad[i] ^= 0x10;
                let (a, b) = (
                    p.r.call_bytes(&[b"RESTORE", b"bad", b"0", &bad[..], b"REPLACE"]),
                    p.v.call_bytes(&[b"RESTORE", b"bad", b"0", &bad[..], b"REPLACE"]),
                );
                if a != b {
                    failures.push(format!("RESTORE of a damaged payload: {a:?} vs {b:?}"));
                }
                s(&["OBJECT", "ENCODING", &copy])
            }
        };
        both(&mut p, cmd, &mut failures);
    }
    // Final contents, by deterministic reads.
    let mut r = conn(p.redis.port);
    let mut v = p.node.client();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut r).unwrap();
    keys.sort();
    for k in &keys {
        let (a, b) = (content(&mut r, k), content(&mut v, k));
        if a != b {
            failures.push(format!("{k}: {b} vs {a}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
