//! Compact encodings of hashes (listpack) and sets (intset) compared with redis-server byte for
//! byte: the orders a small hash (insertion order) and an intset (ascending) answer in, the
//! encodings OBJECT ENCODING reports as values grow, shrink back and reload, CONFIG SET of the
//! thresholds, DUMP payloads; then seeded random sequences with small thresholds.

use std::collections::BTreeSet;

use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::seeded::Rng;

const HASHES: &str = r#"
HSET h b 1 a 2 c 3
HSET h a 20 d 4
HGETALL h
HKEYS h
HVALS h
HDEL h b
HGETALL h
HSET h b 5
HGETALL h
HSCAN h 0
HSCAN h 0 MATCH ?
HSCAN h 7 COUNT 1
HRANDFIELD h 10
HRANDFIELD h 4 WITHVALUES
HRANDFIELD h 100 WITHVALUES
HSETNX h e 6
HSETNX h e 7
HINCRBY h n 5
HINCRBY h n -2
HINCRBYFLOAT h fl 1.5
HINCRBYFLOAT h fl 2
HGETALL h
OBJECT ENCODING h
HSET h long 0123456789012345678901234567890123456789012345678901234567890123
OBJECT ENCODING h
HSET h long 01234567890123456789012345678901234567890123456789012345678901234
OBJECT ENCODING h
HDEL h long
OBJECT ENCODING h
~HGETALL h
HSET h2 01234567890123456789012345678901234567890123456789012345678901234 v
OBJECT ENCODING h2
HSETNX h3 f 01234567890123456789012345678901234567890123456789012345678901234
OBJECT ENCODING h3
HINCRBYFLOAT h4 f 1.00000000000000000000000000000000000000000000000000000000000000001
OBJECT ENCODING h4
CONFIG SET hash-max-listpack-entries 3
HSET g a 1 b 2 c 3
OBJECT ENCODING g
HSET g d 4
OBJECT ENCODING g
HDEL g d c
OBJECT ENCODING g
~HGETALL g
DEL g
HSET g a 1 b 2 c 3 d 4
OBJECT ENCODING g
HINCRBY g2 a 1
HINCRBY g2 b 1
HINCRBY g2 c 1
HINCRBY g2 d 1
OBJECT ENCODING g2
CONFIG SET hash-max-listpack-entries 0
HSET z a 1
OBJECT ENCODING z
CONFIG SET hash-max-listpack-entries 512
HSET d x 1 y 2
DUMP d
COPY d dcopy
OBJECT ENCODING dcopy
HGETALL dcopy
"#;

const SETS: &str = r#"
SADD s 5 -3 100 0 7
SMEMBERS s
SSCAN s 0
SSCAN s 3 MATCH 1*
SRANDMEMBER s 10
SRANDMEMBER s 5
SRANDMEMBER s 0
OBJECT ENCODING s
SADD s 07
OBJECT ENCODING s
~SMEMBERS s
SREM s 07
OBJECT ENCODING s
SADD i 3 1 2
SADD j 2 3 4 9223372036854775807 -9223372036854775808
SMEMBERS j
SINTER i j
SINTER j i
SUNION i j
SDIFF j i
SINTERSTORE d1 i j
SMEMBERS d1
OBJECT ENCODING d1
SUNIONSTORE d2 j i
SMEMBERS d2
SDIFFSTORE d3 j i
SMEMBERS d3
SADD x a b
~SUNION i x
SDIFF i x
SINTER i x
SDIFFSTORE d4 x i
OBJECT ENCODING d4
SMOVE i m 2
OBJECT ENCODING m
SMOVE x m a
OBJECT ENCODING m
SMOVE j j 2
SMOVE j j 12345
SMEMBERS j
SINTERCARD 1 i LIMIT
SINTERCARD 1 i LIMIT 1 x
SINTERCARD 2 i j LIMIT 0
SORT j BY nosort
SORT i BY nosort
SPOP i 10
EXISTS i
SADD w 1 70000
DUMP w
SREM w 70000
DUMP w
SADD w 5000000000
DUMP w
SREM w 5000000000
DUMP w
SMEMBERS w
SADD neg -0 0 +1 1
~SMEMBERS neg
OBJECT ENCODING neg
CONFIG SET set-max-intset-entries 3
SADD c 1 2 3
OBJECT ENCODING c
SADD c 4
OBJECT ENCODING c
SREM c 4 3
OBJECT ENCODING c
~SMEMBERS c
SADD u1 1 2
SADD u2 3 4
SUNIONSTORE u3 u1 u2
OBJECT ENCODING u3
SADD big 1 2 3 a
SREM big a
SDIFFSTORE u4 big nosuch
OBJECT ENCODING u4
SDIFFSTORE u5 big u1 u2 nosuch
OBJECT ENCODING u5
CONFIG SET set-max-intset-entries 0
SADD zero 1
OBJECT ENCODING zero
CONFIG SET set-max-intset-entries 512
COPY s scopy
OBJECT ENCODING scopy
~SMEMBERS scopy
SADD icopy 3 1
COPY icopy icopy2
SMEMBERS icopy2
OBJECT ENCODING icopy2
"#;

/// Encodings across DEBUG RELOAD: a listpack or intset stays one (even past a lowered value
/// limit), a hashtable that fits comes back compact, one that doesn't stays big.
const RELOAD: &str = r#"
HSET a f 0123456789
HSET b f 1
HSET b g 012345678901234567890123456789012345678901234567890123456789012345
HDEL b g
HSET c f 1 g 2
SADD s 1 2
SADD t 1 x
SREM t x
SADD w 1 70000
SREM w 70000
CONFIG SET hash-max-listpack-value 5
DEBUG RELOAD
OBJECT ENCODING a
OBJECT ENCODING b
OBJECT ENCODING c
OBJECT ENCODING s
OBJECT ENCODING t
DUMP w
HGETALL c
CONFIG SET hash-max-listpack-value 64
CONFIG SET hash-max-listpack-entries 1
CONFIG SET set-max-intset-entries 1
DEBUG RELOAD
OBJECT ENCODING a
OBJECT ENCODING c
OBJECT ENCODING s
OBJECT ENCODING t
CONFIG SET hash-max-listpack-entries 512
CONFIG SET set-max-intset-entries 512
SET k v
HSET restored f v
DUMP restored
"#;

fn config_reset() -> &'static str {
    "CONFIG SET hash-max-listpack-entries 512\nCONFIG SET hash-max-listpack-value 64\n\
     CONFIG SET set-max-intset-entries 512\n"
}

#[test]
fn small_hashes_answer_in_listpack_order() {
    let mut pair = Pair::start();
    let script = format!("{HASHES}{}", config_reset());
    assert_none(&pair.both_protocols(&script));
}

#[test]
fn intsets_answer_in_ascending_order() {
    let mut pair = Pair::start();
    let script = format!("{SETS}{}", config_reset());
    assert_none(&pair.both_protocols(&script));
}

#[test]
fn encodings_survive_debug_reload_as_in_redis() {
    let mut pair = Pair::start_with(&["--enable-debug-command", "yes"]);
    let script = format!("{RELOAD}{}", config_reset());
    assert_none(&pair.both_protocols(&script));
}

/// A hash in the model: key, pairs in listpack order, whether it went big.
type HashModel = (String, Vec<(String, String)>, bool);
/// A set in the model: key, members, whether it went big.
type SetModel = (String, BTreeSet<String>, bool);

/// The generator's picture of the keys: what Redis holds and whether each went big.
#[derive(Default)]
struct Model {
    hashes: Vec<HashModel>,
    sets: Vec<SetModel>,
}

const ENTRIES: usize = 5;
const VALUE: usize = 6;
const INTSET: usize = 5;

fn is_int(s: &str) -> bool {
    s.parse::<i64>().is_ok_and(|v| v.to_string() == s)
}

impl Model {
    fn hash(&mut self, k: &str) -> &mut HashModel {
        if let Some(i) = self.hashes.iter().position(|h| h.0 == k) {
            return &mut self.hashes[i];
        }
        self.hashes.push((k.to_string(), Vec::new(), false));
        self.hashes.last_mut().unwrap()
    }

    fn hset(&mut self, k: &str, f: &str, v: &str) {
        let h = self.hash(k);
        if f.len() > VALUE || v.len() > VALUE {
            h.2 = true;
        }
        match h.1.iter_mut().find(|p| p.0 == f) {
            Some(p) => p.1 = v.to_string(),
            None => h.1.push((f.to_string(), v.to_string())),
        }
        if h.1.len() > ENTRIES {
            h.2 = true;
        }
    }

    fn hdel(&mut self, k: &str, f: &str) {
        let h = self.hash(k);
        h.1.retain(|p| p.0 != f);
        if h.1.is_empty() {
            self.hashes.retain(|h| h.0 != k);
        }
    }

    fn set(&mut self, k: &str) -> &mut SetModel {
        if let Some(i) = self.sets.iter().position(|s| s.0 == k) {
            return &mut self.sets[i];
        }
        self.sets.push((k.to_string(), BTreeSet::new(), false));
        self.sets.last_mut().unwrap()
    }

    fn sadd(&mut self, k: &str, m: &str) {
        let s = self.set(k);
        if s.1.insert(m.to_string()) && (!is_int(m) || s.1.len() > INTSET) {
            s.2 = true;
        }
    }

    fn srem(&mut self, k: &str, m: &str) {
        let s = self.set(k);
        s.1.remove(m);
        if s.1.is_empty() {
            self.sets.retain(|s| s.0 != k);
        }
    }

    /// Whether a key's replies come in an order Redis doesn't define (a hashtable).
    fn unordered(&self, k: &str) -> bool {
        self.hashes.iter().any(|h| h.0 == k && h.2) || self.sets.iter().any(|s| s.0 == k && s.2)
    }
}

/// A random sequence over a few hashes and sets with small thresholds: every write, every read
/// (ordered where Redis' order is defined), OBJECT ENCODING after each write, wrong types and
/// arities.
fn random_script(seed: u64) -> String {
    let mut r = Rng(seed);
    let mut m = Model::default();
    let mut out = format!(
        "CONFIG SET hash-max-listpack-entries {ENTRIES}\nCONFIG SET hash-max-listpack-value \
         {VALUE}\nCONFIG SET set-max-intset-entries {INTSET}\nSET str v\n"
    );
    let fields = ["a", "b", "c", "d", "e", "f", "g", "longfield"];
    let values = ["1", "x", "-7", "12", "abcdef", "abcdefg", "3.5"];
    let members = [
        "1", "2", "-3", "40", "7", "9", "0", "07", "x", "1e3", "100000", "-0",
    ];
    for _ in 0..400 {
        let hk = format!("h{}", r.below(3));
        let sk = format!("s{}", r.below(3));
        let f = r.pick(&fields);
        let v = r.pick(&values);
        let mem = r.pick(&members);
        let order = |m: &Model, k: &str| if m.unordered(k) { "~" } else { "" };
        let line = match r.below(22) {
            0..=3 => {
                m.hset(&hk, f, v);
                format!("HSET {hk} {f} {v}\nOBJECT ENCODING {hk}")
            }
            4 => {
                let f2 = r.pick(&fields);
                m.hset(&hk, f, v);
                m.hset(&hk, f2, "2");
                format!("HSET {hk} {f} {v} {f2} 2\nOBJECT ENCODING {hk}")
            }
            5 | 6 => {
                m.hdel(&hk, f);
                format!("HDEL {hk} {f}\nOBJECT ENCODING {hk}")
            }
            7 => {
                let cur = m.hash(&hk).1.iter().find(|p| p.0 == f).map(|p| p.1.clone());
                let next = match cur.as_deref() {
                    None => Some(3),
                    Some(c) if is_int(c) => Some(c.parse::<i64>().unwrap() + 3),
                    Some(_) => None,
                };
                if let Some(n) = next {
                    m.hset(&hk, f, &n.to_string());
                }
                if m.hash(&hk).1.is_empty() {
                    m.hashes.retain(|h| h.0 != hk);
                }
                format!("HINCRBY {hk} {f} 3\nOBJECT ENCODING {hk}")
            }
            8 => format!("{}HGETALL {hk}", order(&m, &hk)),
            9 => format!(
                "{}HKEYS {hk}\n{}HVALS {hk}\nHLEN {hk}",
                order(&m, &hk),
                order(&m, &hk)
            ),
            10 => format!("HGET {hk} {f}\nHMGET {hk} {f} a zz\nHEXISTS {hk} {f}\nHSTRLEN {hk} {f}"),
            11 => {
                if m.unordered(&hk) {
                    format!("HLEN {hk}")
                } else {
                    format!("HSCAN {hk} 0\nHRANDFIELD {hk} 50 WITHVALUES")
                }
            }
            12..=14 => {
                m.sadd(&sk, mem);
                format!("SADD {sk} {mem}\nOBJECT ENCODING {sk}")
            }
            15 | 16 => {
                m.srem(&sk, mem);
                format!("SREM {sk} {mem}\nOBJECT ENCODING {sk}")
            }
            17 => format!(
                "{}SMEMBERS {sk}\nSCARD {sk}\nSISMEMBER {sk} {mem}\nSMISMEMBER {sk} {mem} 1",
                order(&m, &sk)
            ),
            18 => {
                if m.unordered(&sk) {
                    format!("SCARD {sk}")
                } else {
                    format!("SSCAN {sk} 0\nSRANDMEMBER {sk} 50")
                }
            }
            19 => {
                let other = format!("s{}", r.below(3));
                let op = r.pick(&["SUNION", "SDIFF", "SINTER"]);
                let store = format!("{op}STORE dst {sk} {other}\nOBJECT ENCODING dst");
                format!("~{op} {sk} {other}\n{store}\n~SMEMBERS dst\nDEL dst")
            }
            20 => r
                .pick(&[
                    "HSET str f v",
                    "SADD str 1",
                    "HSET h0 f",
                    "HINCRBY h0 a x",
                    "SMEMBERS str",
                    "HSCAN h0 x",
                    "SSCAN s0 0 COUNT 0",
                    "HRANDFIELD h0 1 WITHVALUES x",
                ])
                .to_string(),
            _ => format!("DUMP {hk}\nDUMP {sk}"),
        };
        // DUMP of a hashtable follows Redis' table order: not comparable.
        let line = line
            .lines()
            .map(|l| match l.strip_prefix("DUMP ") {
                Some(k) if m.unordered(k) => format!("!{l}"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        out += &line;
        out.push('\n');
    }
    out + config_reset()
}

#[test]
fn random_hash_and_set_sequences_match_redis_server() {
    let mut pair = Pair::start();
    for seed in [11u64, 2024, 777] {
        assert_none(&pair.both_protocols(&random_script(seed)));
    }
}

/// Each hash and set key with its exact reply order and encoding: replicas and a restarted node
/// must hold the same forms, not only the same members.
fn forms(port: u16) -> Vec<String> {
    let mut c = vigil_tests::RawConn::connect(port).expect("connect");
    let mut out = Vec::new();
    for i in 0..8 {
        for (k, read) in [(format!("h{i}"), "HGETALL"), (format!("s{i}"), "SMEMBERS")] {
            let enc = c.call(&["OBJECT", "ENCODING", &k]);
            let body = c.call(&[read, &k]);
            let hashtable = enc.windows(9).any(|w| w == b"hashtable");
            // A hashtable's order is the node's own business; compact forms' order is Redis'.
            let body = if hashtable {
                let (head, mut items) = vigil_tests::diff::unordered(&body, false);
                items.sort();
                format!("{head:?} {items:?}")
            } else {
                String::from_utf8_lossy(&body).into_owned()
            };
            out.push(format!("{k} {} {body}", String::from_utf8_lossy(&enc)));
        }
    }
    out
}

#[test]
fn replicas_and_restarts_keep_compact_forms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = vigil_tests::write_config(
        dir.path(),
        "small.toml",
        &format!(
            "[redis]\nhash-max-listpack-entries = \"{ENTRIES}\"\nhash-max-listpack-value = \
             \"{VALUE}\"\nset-max-intset-entries = \"{INTSET}\"\n"
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let mdir = dir.path().join("m");
    let mut master = vigil_tests::NodeProc::start(&mdir, &["--config", cfg]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = vigil_tests::NodeProc::start(
        &dir.path().join("r"),
        &["--replicaof", &to, "--config", cfg],
    );
    replica.wait_info("master_link_status", |s| s == "up", "replica link");
    let mut r = Rng(99);
    let mut c = vigil_tests::RawConn::connect(master.port).expect("connect");
    let fields = ["a", "b", "c", "d", "e", "f", "g", "longfield"];
    let members = ["1", "2", "-3", "40", "7", "9", "x", "100000", "5000000000"];
    for _ in 0..1500 {
        // Keys 0-3 only ever get what fits the compact forms; 4-7 anything.
        let i = r.below(8);
        let (h, s) = (format!("h{i}"), format!("s{i}"));
        let (f, m, v) = if i < 4 {
            (r.pick(&fields[..5]), r.pick(&members[..5]), "1")
        } else {
            let v = r.pick(&["1", "xyz", "abcdefg"]);
            (r.pick(&fields), r.pick(&members), v)
        };
        let cmd: Vec<&str> = match r.below(7) {
            0 | 1 => vec!["HSET", &h, f, v],
            2 => vec!["HDEL", &h, f],
            3 => vec!["HINCRBY", &h, if i < 4 { "a" } else { "n" }, "7"],
            4 | 5 => vec!["SADD", &s, m],
            _ => vec!["SREM", &s, m],
        };
        c.call(&cmd);
    }
    let want = forms(master.port);
    assert!(want.iter().any(|l| l.contains("listpack")), "{want:#?}");
    assert!(want.iter().any(|l| l.contains("intset")), "{want:#?}");
    assert!(want.iter().any(|l| l.contains("hashtable")), "{want:#?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while forms(replica.port) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "replica differs:\n{:#?}\nmaster:\n{want:#?}",
            forms(replica.port)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A restart loads as DEBUG RELOAD does (a hashtable that fits comes back compact, as in
    // Redis): after one, a snapshot and a restart from it bring the same forms back.
    assert_eq!(c.call(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    let want = forms(master.port);
    assert_eq!(c.call(&["SAVE"]), b"+OK\r\n");
    master.kill9();
    drop(c);
    let restarted = vigil_tests::NodeProc::start(&mdir, &["--config", cfg]);
    assert_eq!(forms(restarted.port), want, "after a restart");
}
