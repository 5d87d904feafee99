//! A small load tool for sentinel lookups (run by tests/bench/discovery.sh, not a test):
//! `bench_lookup PORT [PORT ...]` opens CONNS connections (default 50) to each port in turn and
//! keeps PIPELINE requests (default 1) of `SENTINEL get-master-addr-by-name mymaster` in flight
//! on each for SECS seconds (default 5), then prints requests per second for each port on one
//! line. One client thread per connection group, fewer syscalls than redis-benchmark, so the
//! server rather than the client sets the pace.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const REQUEST: &[u8] =
    b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$8\r\nmymaster\r\n";

/// Replies in `buf`: a `*2` array of two bulk strings, or a null array; returns how many
/// complete replies the buffer starts with and the bytes they take.
fn complete(buf: &[u8]) -> (usize, usize) {
    let (mut n, mut at) = (0, 0);
    loop {
        let rest = &buf[at..];
        if rest.starts_with(b"*-1\r\n") {
            n += 1;
            at += 5;
            continue;
        }
        // *2\r\n$<a>\r\n<ip>\r\n$<b>\r\n<port>\r\n: up to the 5th CRLF.
        let mut crlfs = 0;
        let mut end = None;
        for (i, w) in rest.windows(2).enumerate() {
            if w == b"\r\n" {
                crlfs += 1;
                if crlfs == 5 {
                    end = Some(i + 2);
                    break;
                }
            }
        }
        match end {
            Some(e) => {
                n += 1;
                at += e;
            }
            None => return (n, at),
        }
    }
}

async fn conn(port: u16, pipeline: usize, until: Instant) -> u64 {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let _ = s.set_nodelay(true);
    let batch: Vec<u8> = REQUEST.repeat(pipeline);
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let mut done = 0u64;
    while Instant::now() < until {
        if s.write_all(&batch).await.is_err() {
            break;
        }
        let mut got = 0;
        while got < pipeline {
            let Ok(r) = s.read(&mut buf[have..]).await else {
                return done;
            };
            if r == 0 {
                return done;
            }
            have += r;
            let (n, used) = complete(&buf[..have]);
            got += n;
            buf.copy_within(used..have, 0);
            have -= used;
        }
        done += got as u64;
    }
    done
}

fn main() {
    let conns = env("CONNS", 50);
    let pipeline = env("PIPELINE", 1);
    let secs = env("SECS", 5);
    let threads = env("THREADS", 1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = Vec::new();
    for port in std::env::args()
        .skip(1)
        .filter_map(|p| p.parse::<u16>().ok())
    {
        let rate = rt.block_on(async move {
            let start = Instant::now();
            let until = start + Duration::from_secs(secs as u64);
            let tasks: Vec<_> = (0..conns)
                .map(|_| tokio::spawn(conn(port, pipeline, until)))
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap_or(0);
            }
            total as f64 / start.elapsed().as_secs_f64()
        });
        out.push(format!("{rate:.0}"));
    }
    println!("{}", out.join(" "));
}
