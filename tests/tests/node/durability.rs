//! Durability under SIGKILL: acknowledged writes survive under every `appendfsync` policy,
//! torn log tails are truncated with a warning, corrupt snapshots and logs claiming impossible
//! sizes refuse start-up naming the file, expiry times survive restarts as absolute times, and
//! bad config files are refused clearly.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use vigil_tests::{NodeProc, vigil_bin};

fn aof_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "aof"))
        .collect();
    v.sort();
    v
}

/// The log holds its clean prefix and, after it, only the position record the restarted node
/// appends (the torn bytes are gone).
fn assert_truncated(log: &std::path::Path, clean: &[u8]) {
    let after = std::fs::read(log).unwrap();
    assert!(after.starts_with(clean), "clean prefix changed");
    assert!(
        after[clean.len()..].starts_with(b"*4\r\n$8\r\nREPLMARK\r\n"),
        "torn tail not truncated: {:?}",
        String::from_utf8_lossy(&after[clean.len()..])
    );
}

/// Writers hammer the node; SIGKILL lands mid-stream; every write that was acknowledged must
/// be there after restart.
#[test]
fn acknowledged_writes_survive_sigkill_with_appendfsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let incr_acked = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (stop, acked, incr_acked, port) =
            (stop.clone(), acked.clone(), incr_acked.clone(), n.port);
        writers.push(thread::spawn(move || {
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (k, v) = (format!("w{w}:{i}"), format!("value-{w}-{i}"));
                match c.set::<_, _, ()>(&k, &v) {
                    Ok(()) => {
                        acked.lock().unwrap().insert(k, v);
                    }
                    Err(_) => return,
                }
                if c.incr::<_, _, i64>("counter", 1).is_ok() {
                    incr_acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    return;
                }
                i += 1;
            }
        }));
    }
    thread::sleep(Duration::from_millis(1500));
    n.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!("acknowledged SETs before SIGKILL: {}", acked.len());
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged before the kill",
        acked.len()
    );
    let n2 = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n2.client();
    let mut missing = 0;
    for (k, v) in &acked {
        if c.get::<_, Option<String>>(k).unwrap().as_deref() != Some(v.as_str()) {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged writes lost",
        acked.len()
    );
    let counter: i64 = c.get("counter").unwrap();
    assert!(
        counter >= incr_acked.load(Ordering::Relaxed),
        "counter {counter} below acknowledged increments"
    );
}

/// `appendfsync everysec` loses nothing on a process crash: a reply leaves only once its write is
/// in the file, as Redis writes its AOF buffer before an event loop's replies go out.
#[test]
fn acknowledged_writes_survive_sigkill_with_appendfsync_everysec() {
    acknowledged_writes_survive_sigkill_under_load("everysec");
}

/// Nor does `appendfsync no`: only the fsync differs, never the write before the reply.
#[test]
fn acknowledged_writes_survive_sigkill_with_appendfsync_no() {
    acknowledged_writes_survive_sigkill_under_load("no");
}

/// Pipelining writers record every acknowledged SET and the highest INCR reply they saw; after
/// SIGKILL under load and a restart on the same directory, all of it is there.
fn acknowledged_writes_survive_sigkill_under_load(policy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", policy]);
    let stop = Arc::new(AtomicBool::new(false));
    // Per writer: the acknowledged SETs, and the last counter value an INCR answered.
    type Acked = (Vec<(String, String)>, i64);
    let mut writers = Vec::new();
    for w in 0..6 {
        let (stop, port) = (stop.clone(), n.port);
        writers.push(thread::spawn(move || -> Acked {
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            let (mut sets, mut counter) = (Vec::new(), 0i64);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                let mut batch = Vec::new();
                for _ in 0..8 {
                    let (k, v) = (format!("w{w}:{i}"), format!("value-{w}-{i}"));
                    pipe.set(&k, &v).ignore().incr(format!("counter:{w}"), 1);
                    batch.push((k, v));
                    i += 1;
                }
                match pipe.query::<Vec<i64>>(&mut c) {
                    Ok(replies) => {
                        sets.extend(batch);
                        counter = replies.into_iter().max().unwrap_or(counter);
                    }
                    // The kill: nothing of this batch was acknowledged.
                    Err(_) => break,
                }
            }
            (sets, counter)
        }));
    }
    thread::sleep(Duration::from_millis(1200));
    n.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: usize = acked.iter().map(|a| a.0.len()).sum();
    eprintln!("appendfsync {policy}: acknowledged SETs before SIGKILL: {total}");
    assert!(
        total > 1000,
        "only {total} writes acknowledged before the kill"
    );
    let n2 = NodeProc::start(&data, &["--appendfsync", policy]);
    let mut c = n2.client();
    let mut lost = Vec::new();
    for (w, (sets, counter)) in acked.iter().enumerate() {
        // Values of one writer in one MGET: the check must not take longer than the test.
        for chunk in sets.chunks(1000) {
            let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let got: Vec<Option<String>> = c.mget(&keys).unwrap();
            for ((k, v), g) in chunk.iter().zip(got) {
                if g.as_deref() != Some(v.as_str()) {
                    lost.push(k.clone());
                }
            }
        }
        let now: i64 = c.get(format!("counter:{w}")).unwrap_or(0);
        assert!(
            now >= *counter,
            "appendfsync {policy}, writer {w}: counter {now} after restart, below the {counter} an INCR answered"
        );
    }
    assert!(
        lost.is_empty(),
        "appendfsync {policy}: {} of {total} acknowledged SETs lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn compaction_then_crash_recovers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n.client();
    for i in 0..500 {
        let _: () = c.set(format!("before:{i}"), i).unwrap();
        let _: () = c.rpush("list", i).unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("ttl")
        .arg("x")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        if info.contains("aof_rewrite_in_progress:0") {
            break;
        }
        assert!(Instant::now() < deadline, "compaction did not finish");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(redis::cmd("LASTSAVE").query::<i64>(&mut c).unwrap() > 0);
    for i in 0..500 {
        let _: () = c.set(format!("after:{i}"), i).unwrap();
    }
    let _: () = c.del("before:0").unwrap();
    n.kill9();
    assert!(data.join("dump.vsnap").exists());
    assert_eq!(
        aof_files(&data).len(),
        1,
        "old logs should be gone: {:?}",
        aof_files(&data)
    );
    let n2 = NodeProc::start(&data, &[]);
    let mut c = n2.client();
    assert_eq!(
        redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(),
        500 - 1 + 500 + 2
    );
    assert_eq!(c.llen::<_, i64>("list").unwrap(), 500);
    assert_eq!(c.get::<_, Option<i64>>("before:0").unwrap(), None);
    assert_eq!(c.get::<_, i64>("after:499").unwrap(), 499);
    let ttl: i64 = c.ttl("ttl").unwrap();
    assert!(ttl > 900 && ttl <= 1000, "ttl {ttl}");
}

/// `DEBUG LOADAOF` (Redis' test suite checks what was logged with it): what was appended is
/// written out first, and the dataset is loaded again from the snapshot and the logs, as a
/// restart loads it; nothing is lost or changed.
#[test]
fn debug_loadaof_reloads_the_dataset_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let n = NodeProc::start(&dir.path().join("node"), &[]);
    let mut c = n.client();
    let q = |c: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(c).unwrap()
    };
    for i in 0..200 {
        let _: () = c.set(format!("before:{i}"), i).unwrap();
    }
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis::cmd("INFO")
        .arg("persistence")
        .query::<String>(&mut c)
        .unwrap()
        .contains("aof_rewrite_in_progress:0")
    {
        assert!(Instant::now() < deadline, "compaction did not finish");
        thread::sleep(Duration::from_millis(20));
    }
    // After the snapshot: a transaction across databases, a stream, an expiry.
    for cmd in [
        &["MULTI"][..],
        &["SELECT", "1"],
        &["HSET", "h", "f", "v"],
        &["SELECT", "0"],
        &["DEL", "before:0"],
        &["EXEC"],
    ] {
        q(&mut c, cmd);
    }
    q(&mut c, &["XADD", "s", "1-1", "f", "v"]);
    q(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    q(&mut c, &["SET", "ttl", "x", "EX", "1000"]);
    let digest = |c: &mut redis::Connection| -> String {
        redis::cmd("DEBUG").arg("DIGEST").query(c).unwrap()
    };
    let before = digest(&mut c);
    thread::sleep(Duration::from_millis(1100));
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("ttl")
        .query(&mut c)
        .unwrap();
    assert!(idle >= 1, "idle {idle}");
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut c).unwrap();
    assert_eq!(digest(&mut c), before);
    // Loaded afresh: the keys' access times are the load's.
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("ttl")
        .query(&mut c)
        .unwrap();
    assert_eq!(idle, 0);
    let ttl: i64 = c.ttl("ttl").unwrap();
    assert!(ttl > 900 && ttl <= 1000, "ttl {ttl}");
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 199 + 2);
}

#[test]
fn the_log_is_compacted_automatically_once_it_outgrows_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        "[persistence]\nauto_compact_min_size = \"64kb\"\nauto_compact_percentage = 100\n",
    )
    .unwrap();
    let n = NodeProc::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut c = n.client();
    for i in 0..2000 {
        let _: () = c.set(format!("key:{i}"), "x".repeat(100)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data.join("dump.vsnap").exists() {
        assert!(
            Instant::now() < deadline,
            "no automatic compaction: {:?}",
            aof_files(&data)
        );
        thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while aof_files(&data).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "old logs not removed: {:?}",
            aof_files(&data)
        );
        thread::sleep(Duration::from_millis(50));
    }
    drop(n);
    let n2 = NodeProc::start(&data, &[]);
    assert_eq!(
        redis::cmd("DBSIZE").query::<i64>(&mut n2.client()).unwrap(),
        2000
    );
}

#[test]
fn torn_log_tail_is_truncated_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n.client();
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    n.kill9();
    let log = aof_files(&data).pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let clean = bytes.len();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$10\r\nhalf");
    std::fs::write(&log, &bytes).unwrap();
    let mut n2 = NodeProc::start(&data, &["--appendfsync", "always"]);
    assert!(
        n2.stderr().contains("incomplete tail"),
        "no warning: {}",
        n2.stderr()
    );
    assert_truncated(&log, &bytes[..clean]);
    let mut c = n2.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 100);
    assert_eq!(c.get::<_, Option<String>>("torn").unwrap(), None);
    let _: () = c.set("later", 1).unwrap();
    n2.kill9();
    let n3 = NodeProc::start(&data, &[]);
    assert_eq!(n3.client().get::<_, i64>("later").unwrap(), 1);
}

#[test]
fn a_transaction_without_its_exec_is_dropped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n.client();
    let _: () = c.set("before", 1).unwrap();
    let r: (i64, i64) = redis::pipe()
        .atomic()
        .incr("t", 1)
        .incr("t", 1)
        .query(&mut c)
        .unwrap();
    assert_eq!(r, (1, 2));
    n.kill9();
    let log = aof_files(&data).pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let clean = bytes.len();
    // A crash after MULTI and one command reached the disk, before EXEC.
    bytes.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$1\r\n1\r\n");
    std::fs::write(&log, &bytes).unwrap();
    let n2 = NodeProc::start(&data, &[]);
    let mut c = n2.client();
    assert_eq!(
        c.get::<_, Option<i64>>("half").unwrap(),
        None,
        "half a transaction was applied"
    );
    assert_eq!(
        c.get::<_, i64>("t").unwrap(),
        2,
        "a complete transaction was lost"
    );
    assert_eq!(c.get::<_, i64>("before").unwrap(), 1);
    assert_truncated(&log, &bytes[..clean]);
}

#[test]
fn garbage_inside_the_log_refuses_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n.client();
    for i in 0..10 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    n.kill9();
    let log = aof_files(&data).pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 6].copy_from_slice(b"GARBAG");
    std::fs::write(&log, &bytes).unwrap();
    let err = NodeProc::try_start(&data, &[])
        .err()
        .expect("started on a corrupt log");
    assert!(
        err.contains("corrupt")
            && err.contains(&log.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
}

/// A damaged log tail announcing a size the node could never have written (a string of ~100 GB,
/// a count of ~100 G arguments, over its limits) is refused as damage at its offset, naming the
/// file: the node never tries to allocate what the file claims, and never aborts. (A size
/// within the limits that the file does not hold is a torn last write, truncated.)
#[test]
fn a_log_tail_announcing_huge_sizes_refuses_start_naming_the_file() {
    let tails: [&[u8]; 2] = [
        b"*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n$99999999999\r\nabc",
        b"*99999999999\r\n$3\r\nSET\r\n",
    ];
    for (i, tail) in tails.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node");
        let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
        let _: () = n.client().set("k", "v").unwrap();
        n.kill9();
        let log = aof_files(&data).pop().unwrap();
        let mut bytes = std::fs::read(&log).unwrap();
        let clean = bytes.len();
        bytes.extend_from_slice(tail);
        std::fs::write(&log, &bytes).unwrap();
        let started = Instant::now();
        let err = NodeProc::try_start(&data, &[])
            .err()
            .unwrap_or_else(|| panic!("#{i}: started on a log claiming an impossible size"));
        let name = log.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            err.contains(&name)
                && err.contains(&format!("corrupt at byte {clean}"))
                && err.contains("over the node's limits")
                && !err.contains("memory allocation"),
            "#{i}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "#{i}: slow refusal"
        );
        // The file is left as it was, for the operator to inspect.
        assert_eq!(std::fs::read(&log).unwrap(), bytes, "#{i}");
    }
}

#[test]
fn corrupt_snapshot_refuses_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &[]);
    let mut c = n.client();
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), "x".repeat(100)).unwrap();
    }
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    n.kill9();
    let snap = data.join("dump.vsnap");
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&snap, &bytes).unwrap();
    let err = NodeProc::try_start(&data, &[])
        .err()
        .expect("started on a corrupt snapshot");
    assert!(
        err.contains("dump.vsnap") && err.contains("corrupt"),
        "{err}"
    );
    // Truncated snapshot: same refusal.
    std::fs::write(&snap, &bytes[..bytes.len() / 3]).unwrap();
    let err = NodeProc::try_start(&data, &[])
        .err()
        .expect("started on a truncated snapshot");
    assert!(err.contains("dump.vsnap"), "{err}");
}

#[test]
fn expiry_survives_restart_as_absolute_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let mut c = n.client();
    let _: () = redis::cmd("SET")
        .arg("long")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .arg("PX")
        .arg(800)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("snap")
        .arg("v")
        .arg("PX")
        .arg(800)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg("long")
        .arg(100)
        .query(&mut c)
        .unwrap();
    n.kill9();
    thread::sleep(Duration::from_millis(1000));
    let n2 = NodeProc::start(&data, &[]);
    let mut c = n2.client();
    // Relative TTLs were stored as deadlines: the time spent down counts.
    assert_eq!(c.get::<_, Option<String>>("short").unwrap(), None);
    assert_eq!(c.get::<_, Option<String>>("snap").unwrap(), None);
    let ttl: i64 = c.ttl("long").unwrap();
    assert!((95..=99).contains(&ttl), "ttl {ttl}");
}

#[test]
fn bad_config_is_refused_with_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("prot = 7000\n", "prot"),
        ("[persistence]\nappendfsync = \"sometimes\"\n", "sometimes"),
        ("timeout = \"soon\"\n", "soon"),
        ("databases = 0\n", "databases"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(vigil_bin())
            .arg("node")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success(), "#{i} started with a bad config");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.contains("invalid config"))
            .unwrap_or_else(|| panic!("#{i} no error line: {err}"));
        assert!(
            line.contains(&file.display().to_string()) && line.contains(key),
            "#{i}: {line}"
        );
    }
}

#[test]
fn a_second_node_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let _n = NodeProc::start(&data, &[]);
    let err = NodeProc::try_start(&data, &[])
        .err()
        .expect("two nodes on one directory");
    assert!(err.contains("in use"), "{err}");
}

/// CPU ticks (1/100 s) used so far by the node's thread called `name`.
fn thread_ticks(pid: u32, name: &str) -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: utime and stime are the 12th and 13th.
            let rest = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            total += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
fn an_idle_log_writer_uses_no_cpu_under_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<_> = ["always", "everysec", "no"]
        .iter()
        .map(|p| {
            (
                p,
                NodeProc::start(&dir.path().join(p), &["--appendfsync", p]),
            )
        })
        .collect();
    for (_, n) in &nodes {
        let _: () = n.client().set("k", "v").unwrap();
    }
    thread::sleep(Duration::from_millis(2500));
    for (policy, n) in &nodes {
        let ticks = thread_ticks(n.child.id(), "aof-writer");
        assert!(
            ticks <= 10,
            "appendfsync {policy}: idle log writer used {ticks} ticks of CPU"
        );
    }
}

/// The replication position is part of the durable state: after SIGKILL the node knows the
/// exact offset of its data (also past a torn transaction), and continues under a new id that
/// keeps the old one valid up to that offset (PSYNC2), restart after restart.
#[test]
fn replication_position_survives_sigkill_and_torn_tails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut n = NodeProc::start(&data, &["--appendfsync", "always"]);
    let field = |n: &NodeProc, f: &str| n.info_field(f).unwrap_or_default();
    for round in 0..3 {
        let mut c = n.client();
        for i in 0..50 {
            let _: () = c.set(format!("k{round}-{i}"), i).unwrap();
        }
        let _: () = redis::pipe()
            .atomic()
            .set("t1", 1)
            .incr("t2", 1)
            .query(&mut c)
            .unwrap();
        let (id, off) = (field(&n, "master_replid"), field(&n, "master_repl_offset"));
        assert_ne!(off, "0");
        n.kill9();
        if round == 1 {
            // A transaction cut before its EXEC: dropped, and the offset stays where it was.
            let log = aof_files(&data).pop().unwrap();
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            std::io::Write::write_all(
                &mut f,
                b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n",
            )
            .unwrap();
        }
        n = NodeProc::start(&data, &["--appendfsync", "always"]);
        assert_eq!(field(&n, "master_repl_offset"), off, "round {round}");
        assert_eq!(field(&n, "master_replid2"), id, "round {round}");
        let second: u64 = field(&n, "second_repl_offset").parse().unwrap();
        assert_eq!(second, off.parse::<u64>().unwrap() + 1, "round {round}");
        assert_ne!(field(&n, "master_replid"), id);
    }
    let mut c = n.client();
    let x: Option<String> = c.get("x").unwrap();
    assert_eq!(x, None, "the torn transaction was dropped");
}
