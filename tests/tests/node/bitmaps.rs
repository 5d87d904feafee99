//! Bitmaps and HyperLogLog against `redis-server` 7.0: scripted differential cases (RESP2,
//! then RESP3) for every command, option and error, the strings they leave behind (GET after
//! each change: an HLL's bytes, cached cardinality included, must equal Redis'), seeded
//! random sequences for each family (HLLs grown through the sparse → dense promotion), and a
//! replica and a restarted node that hold exactly the master's bitmaps and HLLs.

use std::time::{Duration, Instant};

use vigil_tests::NodeProc;
use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::seeded::Rng;

const BITMAPS: &str = r#"
SETBIT b 7 1
SETBIT b 7 1
SETBIT b 7 0
GET b
SETBIT b 100 1
GET b
STRLEN b
GETBIT b 100
GETBIT b 101
GETBIT b 100000
GETBIT nosuch 5
SETBIT b -1 1
SETBIT b x 1
SETBIT b 4294967295 x
SETBIT b 4294967296 1
SETBIT b 1 2
SETBIT b 1 -1
SETBIT b 1 x
GETBIT b -1
GETBIT b 4294967296
SET s foobar
BITCOUNT s
BITCOUNT s 0 0
BITCOUNT s 1 1
BITCOUNT s 1 1 BYTE
BITCOUNT s 5 30 BIT
BITCOUNT s 5 30 bit
BITCOUNT s -3 -1
BITCOUNT s -1 -3
BITCOUNT s -1 -3 foo
BITCOUNT s 0 -1 BIT
BITCOUNT s 0 1000
BITCOUNT s -1000 1000 BIT
BITCOUNT s 0
BITCOUNT s 0 1 BIT extra
BITCOUNT s 0 1 foo
BITCOUNT s a 1
BITCOUNT s 0 a
BITCOUNT nosuch
BITCOUNT nosuch 0
BITCOUNT nosuch a b
SET e ""
BITCOUNT e
BITCOUNT e 0 -1
BITPOS e 0
BITPOS e 1
SET z "\x00\x00\x00"
BITPOS z 1
BITPOS z 0
SET f "\xff\xff\xff"
BITPOS f 0
BITPOS f 0 0 -1
BITPOS f 0 1
BITPOS f 1
BITPOS f 0 0 -1 BIT
SET m "\x00\xff\xf0"
BITPOS m 1
BITPOS m 1 0
BITPOS m 1 2
BITPOS m 1 2 -1 BYTE
BITPOS m 0 1 -1
BITPOS m 0 1
BITPOS m 1 7 15 BIT
BITPOS m 0 7 15 BIT
BITPOS m 0 8 15 BIT
BITPOS m 0 8 19 BIT
BITPOS m 0 8 20 BIT
BITPOS m 1 13 13 BIT
BITPOS m 0 13 13 BIT
BITPOS m 0 3 BIT
BITPOS m 1 3 BIT
BITPOS m 1 -3 -1 BIT
BITPOS m 0 -100 100 BIT
BITPOS m 1 5 3
BITPOS m 1 0 -1 foo
BITPOS m 1 0 x BIT
BITPOS m 1 x
BITPOS m 2
BITPOS m x
BITPOS m -1
BITPOS m 1 0 1 BIT extra
BITPOS nosuch 1
BITPOS nosuch 0
BITPOS nosuch 0 1 2 3 4
BITPOS nosuch 3
SET a1 "\x0f\xf0\xaa"
SET a2 "\xff\x00"
BITOP AND d a1 a2
GET d
BITOP OR d a1 a2
GET d
BITOP XOR d a1 a2 nosuch
GET d
BITOP NOT d a1
GET d
BITOP not d a1 a2
BITOP AND d nosuch nosuch2
EXISTS d
BITOP OR d nosuch
BITOP FOO d a1
BITOP and d a1
GET d
SET d x EX 100
BITOP or d a1 a2
TTL d
RPUSH l x
BITOP AND d a1 l
BITOP AND l a1
TYPE l
SETBIT l 1 1
GETBIT l 1
BITCOUNT l
BITPOS l 1
BITFIELD l GET u8 0
BITFIELD_RO l GET u8 0
BITFIELD bf SET u8 0 255
BITFIELD bf GET u8 0 GET i8 0 GET u4 4 GET i64 0 GET u63 1
BITFIELD bf INCRBY u8 0 10 INCRBY i8 0 10
BITFIELD bf OVERFLOW SAT INCRBY u8 0 300 INCRBY i8 8 -300 INCRBY u8 0 -300
BITFIELD bf OVERFLOW FAIL INCRBY u8 0 1 SET i4 0 100 GET u8 0 OVERFLOW WRAP INCRBY u8 0 1
BITFIELD bf OVERFLOW sat SET u2 0 9 SET i2 #3 -9 OVERFLOW wrap SET i3 #4 9 SET u3 #5 -1
GET bf
BITFIELD bf SET i64 #1 -9223372036854775808 INCRBY i64 #1 -1 GET i64 #1
BITFIELD bf OVERFLOW SAT INCRBY i64 #1 -5 INCRBY i64 #2 9223372036854775807 INCRBY i64 #2 1
BITFIELD bf OVERFLOW FAIL INCRBY i64 #2 1 INCRBY u63 #3 1 SET u63 #3 -1
BITFIELD bf SET u63 #3 -1 GET u63 #3 INCRBY u63 #3 2
GET bf
BITFIELD bf GET u64 0
BITFIELD bf GET i65 0
BITFIELD bf GET i0 0
BITFIELD bf GET x8 0
BITFIELD bf GET I8 0
BITFIELD bf GET u8 -1
BITFIELD bf GET u8 #-1
BITFIELD bf GET u8 #x
BITFIELD bf GET u8 4294967296
BITFIELD bf GET u8 #536870912
BITFIELD bf SET u8 0 x
BITFIELD bf INCRBY u8 0
BITFIELD bf FOO u8 0
BITFIELD bf OVERFLOW
BITFIELD bf OVERFLOW BAD GET u8 0
BITFIELD bf GET u8
BITFIELD bf
BITFIELD nosuch GET u8 0 GET i16 100
EXISTS nosuch
BITFIELD nosuch OVERFLOW FAIL
BITFIELD new OVERFLOW FAIL SET u8 100 1000
GET new
BITFIELD new2 OVERFLOW FAIL SET u8 0 1
GET new2
BITFIELD_RO bf GET u8 0 GET i8 #1
BITFIELD_RO bf SET u8 0 1
BITFIELD_RO bf GET u8 0 INCRBY u8 0 1
BITFIELD_RO bf GET u8 x
BITFIELD_RO bf
BITFIELD_RO nosuch GET u8 0
SET n 12345
BITCOUNT n
GETBIT n 3
BITFIELD n GET u8 8
APPEND b "\xff"
BITCOUNT b
OBJECT ENCODING b
SET small abc
GETBIT small 1
BITCOUNT small
BITFIELD_RO small GET u8 0
BITFIELD small GET u8 0
OBJECT ENCODING small
SETBIT small 1 1
OBJECT ENCODING small
SET small2 abc
SETBIT small2 1 0
OBJECT ENCODING small2
SET num 12
BITFIELD num INCRBY u8 0 0
OBJECT ENCODING num
BITOP OR d2 small
OBJECT ENCODING d2
OBJECT ENCODING bf
"#;

const HLL: &str = r#"
PFADD h
GET h
PFCOUNT h
GET h
PFADD h a b c
GET h
PFADD h a
PFCOUNT h
GET h
PFCOUNT h
PFADD h ""
GET h
PFCOUNT h
PFDEBUG ENCODING h
PFDEBUG DECODE h
PFDEBUG decode h
PFDEBUG FOO h
PFDEBUG ENCODING nosuch
PFADD h2 x y z a
PFCOUNT h h2
PFCOUNT h h2 nosuch
GET h
PFMERGE h3 h h2
GET h3
PFCOUNT h3
GET h3
PFMERGE h3
GET h3
PFMERGE h4
GET h4
PFMERGE h3 nosuch h3
GET h3
PFDEBUG TODENSE h2
PFDEBUG TODENSE h2
PFDEBUG ENCODING h2
PFDEBUG DECODE h2
PFCOUNT h2
PFMERGE h5 h h2
PFDEBUG ENCODING h5
PFCOUNT h5
STRLEN h5
GETRANGE h5 0 20
SET s notanhll
PFADD s a
PFCOUNT s
PFCOUNT h s
PFMERGE s h
PFMERGE h s
PFDEBUG ENCODING s
RPUSH l a
PFADD l a
PFCOUNT l
PFCOUNT h l
PFMERGE h l
PFDEBUG GETREG l
SET short HYL
PFADD short a
SET badenc "HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
PFADD badenc a
SET baddense "HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
PFCOUNT baddense
SET tail "HYLL\x01\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x80\x7f\xff\x41"
PFCOUNT tail
PFCOUNT tail h
PFMERGE x tail
EXISTS x
PFADD tail foo bar
PFDEBUG TODENSE tail
PFDEBUG DECODE tail
SET short2 "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x40\x00"
PFCOUNT short2
PFADD short2 a b c d e
GET short2
PFDEBUG DECODE short2
SET cut "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f"
PFADD cut a b c
GET cut
PFCOUNT cut
SET big "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff\x7f\xff"
PFADD big a
GET big
PFCOUNT big
SET vals "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x83\x83\x7f\xf7"
PFCOUNT vals
PFADD vals a b c d e f g
GET vals
PFDEBUG DECODE vals
PFADD hx a
SETRANGE hx 4 "\x00"
PFCOUNT hx
OBJECT ENCODING h
OBJECT ENCODING h3
SET hs "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
OBJECT ENCODING hs
PFCOUNT hs
OBJECT ENCODING hs
SET hs2 "HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff"
PFCOUNT hs2 h
OBJECT ENCODING hs2
PFDEBUG ENCODING hs2
OBJECT ENCODING hs2
PFSELFTEST
"#;

/// Runs `script` in RESP2 and then, on fresh data, in RESP3.
fn both_protocols(pair: &mut Pair, script: &str) -> Vec<String> {
    let mut failures = pair.compare(script);
    failures.extend(pair.compare(&format!("FLUSHALL\n!HELLO 3\n{script}\n!HELLO 2")));
    failures
}

#[test]
fn bitmap_replies_match_redis_server() {
    let mut pair = Pair::start();
    let failures = both_protocols(&mut pair, BITMAPS);
    assert_none(&failures);
}

#[test]
fn hyperloglog_replies_match_redis_server() {
    let mut pair = Pair::start();
    let failures = both_protocols(&mut pair, HLL);
    assert_none(&failures);
}

/// A few hundred random bitmap commands over a small key space, invalid arguments included.
fn random_bitmap_script(rng: &mut Rng) -> String {
    let keys = ["b0", "b1", "b2", "b3", "str", "list"];
    let ints = [
        "0", "1", "-1", "7", "8", "-8", "15", "63", "100", "-100", "x", "2",
    ];
    let types = [
        "u1", "u8", "i8", "u16", "i5", "i64", "u63", "u64", "i0", "z3",
    ];
    let mut s = String::from("SET str hello\nRPUSH list a\n");
    for _ in 0..400 {
        let k = rng.pick(&keys);
        let line = match rng.below(9) {
            0 | 1 => format!(
                "SETBIT {k} {} {}",
                rng.below(200),
                rng.pick(&["0", "1", "1", "2"])
            ),
            2 => format!("GETBIT {k} {}", rng.below(220)),
            3 => format!(
                "BITCOUNT {k} {} {} {}",
                rng.pick(&ints),
                rng.pick(&ints),
                rng.pick(&["", "BIT", "BYTE", "bit", "x"])
            ),
            4 => format!(
                "BITPOS {k} {} {} {} {}",
                rng.pick(&["0", "1", "1", "2"]),
                rng.pick(&ints),
                rng.pick(&ints),
                rng.pick(&["", "BIT", "BYTE"])
            ),
            5 => format!(
                "BITOP {} {} {k} {}",
                rng.pick(&["AND", "OR", "XOR", "NOT", "and"]),
                rng.pick(&keys),
                rng.pick(&keys)
            ),
            6 | 7 => {
                let mut l = format!("BITFIELD {k}");
                for _ in 0..1 + rng.below(4) {
                    let t = rng.pick(&types);
                    let off = if rng.below(3) == 0 {
                        format!("#{}", rng.below(20))
                    } else {
                        rng.below(150).to_string()
                    };
                    let v = rng.bits() as i64 >> rng.below(64);
                    let op = match rng.below(5) {
                        0 => format!("GET {t} {off}"),
                        1 => format!("SET {t} {off} {v}"),
                        2 => format!("INCRBY {t} {off} {v}"),
                        3 => format!("INCRBY {t} {off} {}", rng.pick(&ints)),
                        _ => format!("OVERFLOW {}", rng.pick(&["WRAP", "SAT", "FAIL", "x"])),
                    };
                    l.push(' ');
                    l.push_str(&op);
                }
                l
            }
            _ => format!("GET {k}"),
        };
        s.push_str(line.trim_end());
        s.push('\n');
    }
    for k in keys {
        s.push_str(&format!("GET {k}\n"));
    }
    s
}

#[test]
fn random_bitmap_sequence_matches_redis_server() {
    let mut rng = Rng(0x00b1_7a9e_5eed);
    let script = random_bitmap_script(&mut rng);
    let mut pair = Pair::start();
    let mut failures = pair.compare(&script);
    failures.extend(pair.compare(&format!("FLUSHALL\n!HELLO 3\n{script}")));
    assert_none(&failures);
}

/// Random HLL traffic: PFADD batches growing three keys through sparse → dense, merges,
/// counts, and GET of every key after every change.
fn random_hll_script(rng: &mut Rng, elements: usize) -> String {
    let keys = ["h0", "h1", "h2"];
    let mut s = String::new();
    let mut added = 0;
    while added < elements {
        let k = rng.pick(&keys);
        match rng.below(8) {
            0 => s.push_str(&format!(
                "PFMERGE {} {} {}\nGET {}\n",
                rng.pick(&keys),
                rng.pick(&keys),
                rng.pick(&keys),
                k
            )),
            1 => s.push_str(&format!("PFCOUNT {} {}\n", rng.pick(&keys), k)),
            2 => s.push_str(&format!("PFDEBUG ENCODING {k}\n")),
            _ => {
                let n = 1 + rng.below(60) as usize;
                let items: Vec<String> =
                    (0..n).map(|_| format!("e{}", rng.below(20_000))).collect();
                added += n;
                s.push_str(&format!(
                    "PFADD {k} {}\nGET {k}\nPFCOUNT {k}\nGET {k}\n",
                    items.join(" ")
                ));
            }
        }
    }
    s
}

#[test]
fn random_hll_sequence_matches_redis_server() {
    let mut rng = Rng(0x4141_5eed);
    let script = random_hll_script(&mut rng, 15_000);
    let mut pair = Pair::start();
    let mut failures = pair.compare(&script);
    failures.extend(pair.compare("PFDEBUG ENCODING h0\nPFDEBUG ENCODING h1\nPFDEBUG ENCODING h2"));
    assert!(failures.len() < 20, "{}", failures.join("\n"));
    assert_none(&failures);
}

/// The bitmaps and HLLs of a workload, as one comparable text.
fn state(c: &mut redis::Connection) -> String {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
    keys.sort();
    let mut out = String::new();
    for k in keys {
        let v: redis::RedisResult<redis::Value> = redis::cmd("GET").arg(&k).query(c);
        let ttl: i64 = redis::cmd("TTL").arg(&k).query(c).unwrap();
        out.push_str(&format!("{k}={v:?} ttl {ttl}\n"));
    }
    out
}

fn workload(c: &mut redis::Connection) {
    let mut rng = Rng(0x2e9_11ca);
    let script = format!(
        "{}\n{}",
        random_bitmap_script(&mut rng),
        random_hll_script(&mut rng, 6_000)
    );
    for (_, args) in vigil_tests::diff::parse_script(&script) {
        let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap());
        for a in &args[1..] {
            cmd.arg(&a[..]);
        }
        let _: redis::RedisResult<redis::Value> = cmd.query(c);
    }
    // Conversions and cache writes that only PFCOUNT and PFDEBUG make.
    for q in [
        &["PFDEBUG", "TODENSE", "h1"][..],
        &["PFCOUNT", "h2"],
        &[
            "BITFIELD", "grown", "OVERFLOW", "FAIL", "SET", "u8", "800", "999",
        ],
    ] {
        let _: redis::RedisResult<redis::Value> = redis::cmd(q[0]).arg(&q[1..]).query(c);
    }
}

/// The first differing line of two states, shortened.
fn first_diff(want: &str, got: &str) -> String {
    let short = |l: &str| l.chars().take(300).collect::<String>();
    for (w, g) in want.lines().zip(got.lines()) {
        if w != g {
            return format!("\n want {}\n got  {}", short(w), short(g));
        }
    }
    format!("{} lines vs {}", want.lines().count(), got.lines().count())
}

fn wait_same(c: &mut redis::Connection, want: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = state(c);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} differs: {}",
            first_diff(want, &got)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replica_and_restarted_node_hold_the_masters_bitmaps_and_hlls() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    let mut c = master.client();
    workload(&mut c);
    let want = state(&mut c);
    assert!(
        want.contains("h0=") && want.contains("b0="),
        "workload left too little"
    );
    let mut rc = replica.client();
    wait_same(&mut rc, &want, "replica");
    // PFCOUNT on the replica answers without writing its cache: the bytes stay the master's.
    let _: i64 = redis::cmd("PFADD")
        .arg("h0")
        .arg("late-element")
        .query(&mut c)
        .unwrap();
    let want = state(&mut c);
    wait_same(&mut rc, &want, "replica");
    let on_master: i64 = redis::cmd("PFCOUNT").arg("h0").query(&mut c).unwrap();
    let on_replica: i64 = redis::cmd("PFCOUNT").arg("h0").query(&mut rc).unwrap();
    assert_eq!(on_master, on_replica);
    let want = state(&mut c);
    wait_same(&mut rc, &want, "replica after PFCOUNT");
    let late = NodeProc::start(&dir.path().join("late"), &["--replicaof", &to]);
    wait_same(&mut late.client(), &want, "late replica");
    master.kill9();
    let restarted = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let got = state(&mut restarted.client());
    assert!(
        got == want,
        "restarted node differs: {}",
        first_diff(&want, &got)
    );
    let _: redis::Value = redis::cmd("SAVE").query(&mut restarted.client()).unwrap();
    drop(restarted);
    let again = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let got = state(&mut again.client());
    assert!(
        got == want,
        "snapshot restart differs: {}",
        first_diff(&want, &got)
    );
}
