//! `vigil node --import` of RDB files written by redis-server.

use super::*;

/// A redis-server with DEBUG enabled, saving into `dir`.
fn redis_in(dir: &std::path::Path) -> RedisProc {
    RedisProc::start_with(&[
        "--dir",
        dir.to_str().unwrap(),
        "--enable-debug-command",
        "yes",
    ])
}

const LIB: &str =
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)";

/// Mixed types in several databases, expiries, a function library and ~200k populated keys:
/// the node started with `--import` holds the same keys, values and expiries, and keeps them
/// across a restart (its own persistence took over).
#[test]
fn import_of_a_redis_rdb_holds_every_key() {
    let rdir = tempfile::tempdir().unwrap();
    let redis = redis_in(rdir.path());
    let mut r = conn(redis.port);
    let keys = populate(&mut r);
    run(&mut r, &["DEBUG", "POPULATE", "200000", "pop", "8"]);
    run(&mut r, &["FUNCTION", "LOAD", LIB]);
    for db in ["3", "15"] {
        run(&mut r, &["SELECT", db]);
        run(&mut r, &["SET", &format!("in-db-{db}"), db]);
        run(&mut r, &["HSET", "h", "f", db]);
        run(&mut r, &["SET", "gone", "x", "PX", "1"]);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Expired in the file; deleted on redis-server now, so DBSIZE agrees whatever its active
    // expiry did meanwhile.
    run(&mut r, &["SAVE"]);
    for db in ["3", "15"] {
        run(&mut r, &["SELECT", db]);
        run(&mut r, &["GET", "gone"]);
    }
    run(&mut r, &["SELECT", "0"]);
    let file = rdir.path().join("dump.rdb");
    let ndir = tempfile::tempdir().unwrap();
    let data = ndir.path().join("n");
    let mut node = NodeProc::start(&data, &["--import", file.to_str().unwrap()]);
    let check = |node: &NodeProc, r: &mut Connection| {
        let mut v = node.client();
        let mut failures = Vec::new();
        for key in &keys {
            let (want, got) = (content(r, key), content(&mut v, key));
            if want != got {
                failures.push(format!("{key}:\n  node  {got}\n  redis {want}"));
            }
        }
        for i in (0..200_000).step_by(997) {
            let k = format!("pop:{i}");
            let (want, got) = (content(r, &k), content(&mut v, &k));
            if want != got {
                failures.push(format!("{k}: {got} vs {want}"));
            }
        }
        for db in ["0", "3", "15"] {
            run(r, &["SELECT", db]);
            run(&mut v, &["SELECT", db]);
            let (a, b) = (run(r, &["DBSIZE"]), run(&mut v, &["DBSIZE"]));
            if a != b {
                failures.push(format!("db {db}: DBSIZE {b:?} vs {a:?}"));
            }
            if db != "0" {
                let (a, b) = (content(r, "h"), content(&mut v, "h"));
                if a != b {
                    failures.push(format!("db {db} h: {b} vs {a}"));
                }
            }
        }
        run(r, &["SELECT", "0"]);
        let f = run(&mut v, &["FCALL", "myfunc", "0"]);
        if f != Value::Int(1) {
            failures.push(format!("FCALL myfunc: {f:?}"));
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    };
    check(&node, &mut r);
    // Restarted without --import: the node's own snapshot has the data.
    node.kill9();
    let node = NodeProc::start(&data, &[]);
    check(&node, &mut r);
}

/// A damaged file stops start-up with an error naming the key and the byte offset; a file
/// with a wrong checksum, or a truncated one, is refused too.
#[test]
fn corrupt_rdb_is_refused_naming_key_and_offset() {
    let rdir = tempfile::tempdir().unwrap();
    let redis = redis_in(rdir.path());
    let mut r = conn(redis.port);
    run(&mut r, &["SET", "a", "1"]);
    run(&mut r, &["HSET", "victim", "field", "value", "f2", "v2"]);
    run(&mut r, &["SET", "z", "2"]);
    run(&mut r, &["SAVE"]);
    let good = std::fs::read(rdir.path().join("dump.rdb")).unwrap();
    let at = good
        .windows(6)
        .position(|w| w == b"victim")
        .expect("key in file")
        + 6;
    let ndir = tempfile::tempdir().unwrap();
    let try_import = |name: &str, bytes: &[u8]| -> String {
        let path = ndir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match NodeProc::try_start(
            &ndir.path().join(format!("d-{name}")),
            &["--import", path.to_str().unwrap()],
        ) {
            Ok(_) => panic!("{name}: the node started"),
            Err(e) => e,
        }
    };
    // The listpack's total-bytes field, just after the value's length.
    let mut bad = good.clone();
    bad[at + 2] ^= 0x40;
    let e = try_import("lp.rdb", &bad);
    assert!(e.contains("victim") && e.contains("offset"), "{e}");
    let mut crc = good.clone();
    let n = crc.len();
    crc[n - 1] ^= 1;
    let e = try_import("crc.rdb", &crc);
    assert!(e.contains("checksum"), "{e}");
    let e = try_import("short.rdb", &good[..good.len() - 20]);
    assert!(e.contains("offset"), "{e}");
    let e = try_import("magic.rdb", b"NOTREDIS0010");
    assert!(e.contains("not an RDB"), "{e}");
}
