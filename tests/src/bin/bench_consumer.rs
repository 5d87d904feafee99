//! A stream consumer-group load tool (run by tests/bench/scripts.sh, not a test):
//! `bench_consumer PORT [PORT ...]` drains the stream `bench:events` of each server in turn
//! through the consumer group `workers` with CONSUMERS connections (default 4), each looping
//! `XREADGROUP GROUP workers cN COUNT 100 STREAMS bench:events >` then `XACK` of what it read,
//! as a worker pool does; prints entries consumed and acknowledged per second for each port on
//! one line. The stream and the group must exist (the script fills them).

use std::time::Instant;

type Batch = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;

fn drain(port: u16, consumers: usize) -> f64 {
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..consumers)
            .map(|i| {
                s.spawn(move || {
                    let client =
                        redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("address");
                    let mut c = client.get_connection().expect("connect");
                    let name = format!("c{i}");
                    let mut done = 0;
                    loop {
                        let batch: Option<Batch> = redis::cmd("XREADGROUP")
                            .arg(&["GROUP", "workers", &name, "COUNT", "100"])
                            .arg(&["STREAMS", "bench:events", ">"])
                            .query(&mut c)
                            .expect("XREADGROUP");
                        let ids: Vec<String> = batch
                            .into_iter()
                            .flatten()
                            .flat_map(|(_, entries)| entries.into_iter().map(|(id, _)| id))
                            .collect();
                        if ids.is_empty() {
                            return done;
                        }
                        let acked: usize = redis::cmd("XACK")
                            .arg(&["bench:events", "workers"])
                            .arg(&ids)
                            .query(&mut c)
                            .expect("XACK");
                        assert_eq!(acked, ids.len(), "XACK acknowledged too few");
                        done += ids.len();
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let consumers = std::env::var("CONSUMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rates: Vec<String> = std::env::args()
        .skip(1)
        .map(|p| p.parse::<u16>().expect("a port"))
        .map(|p| format!("{:.0}", drain(p, consumers)))
        .collect();
    println!("{}", rates.join(" "));
}
