//! The sharded drill's workload: writers that route each key by its hash slot as cluster
//! clients do (a slot map read with `CLUSTER SLOTS` from any node, `MOVED` followed and the
//! map read again, `TRYAGAIN`, `CLUSTERDOWN` and dropped connections retried), and the check
//! that every acknowledged key is in exactly one shard afterwards.
//!
//! Each writer writes keys of one shard's slots (as the sentinels' map had them when the
//! round began, see [`Record::assign`]), so a shard that is down stalls its own writers only
//! and every shard's timing is measured on its own. A write is retried, with the same key and
//! value, until it is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use vigil_resp::slot::{SLOTS, key_slot};

use crate::drill::workload::{Conn, Reply};

/// How long one request may take before the writer drops its connection and asks again.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
/// Pause before a retry (a node refused or was unreachable).
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Pause between a writer's writes.
const PACE: Duration = Duration::from_millis(1);
/// Hash slots, as an index bound.
const N: usize = SLOTS as usize;

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Index into [`Record::attempted`].
    pub key: usize,
    /// The key's slot.
    pub slot: u16,
    /// When the acknowledgement arrived.
    pub at: Instant,
    /// The node that acknowledged it (`host:port`).
    pub node: String,
}

/// What the writers share with the drill.
pub struct Record {
    /// Every key sent, acknowledged or not (a write whose reply was lost may have landed).
    pub attempted: Mutex<Vec<String>>,
    /// Every acknowledged write, in arrival order.
    pub acks: Mutex<Vec<Ack>>,
    /// Refusals and errors the writers retried, by kind (`MOVED`, `TRYAGAIN`, `timeout`...).
    pub retried: Mutex<HashMap<String, u64>>,
    /// The key prefix of this run, so a cluster's older keys are told apart.
    pub prefix: String,
    /// Each shard's slots, by shard index.
    sets: RwLock<Vec<Arc<Vec<u16>>>>,
    /// A hash tag for each slot: a key `{tag}...` lands in it.
    tags: Vec<String>,
    stop: AtomicBool,
    router: Router,
}

impl Record {
    /// Stops the writers (they finish their request first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Gives each shard's writers the slots `shards[i]` from now on (the slot map changed).
    pub fn assign(&self, shards: &[Vec<u16>]) {
        *self.sets.write() = shards.iter().map(|s| Arc::new(s.clone())).collect();
    }

    fn retried(&self, kind: &str) {
        *self.retried.lock().entry(kind.to_string()).or_default() += 1;
    }
}

/// The client's slot map, shared by the writers as a client library shares its own.
struct Router {
    /// Node addresses to read the map from.
    seeds: Vec<String>,
    /// The node serving each slot.
    slots: RwLock<Vec<Option<Arc<str>>>>,
    /// Set when a reply says the map is out of date.
    stale: AtomicBool,
}

impl Router {
    fn node(&self, slot: u16) -> Option<Arc<str>> {
        self.slots.read()[slot as usize].clone()
    }

    /// Reads the map from the first seed that answers with one covering every slot, starting
    /// at a different seed each time so an unreachable or stale node is not asked first.
    async fn refresh(&self, turn: usize) -> bool {
        for i in 0..self.seeds.len() {
            let seed = &self.seeds[(turn + i) % self.seeds.len()];
            let Ok(Ok(mut c)) = tokio::time::timeout(REQUEST_TIMEOUT, Conn::connect(seed)).await
            else {
                continue;
            };
            let Some(Reply::Array(ranges)) = c.call(&["CLUSTER", "SLOTS"]).await else {
                continue;
            };
            if let Some(map) = slot_map(&ranges) {
                *self.slots.write() = map;
                return true;
            }
        }
        false
    }
}

/// A hash tag for every slot (`t0`, `t1`, ... whichever lands first in each).
fn tags() -> Vec<String> {
    let mut out = vec![String::new(); N];
    let (mut missing, mut i) = (N, 0u64);
    while missing > 0 {
        let t = format!("t{i}");
        let slot = key_slot(t.as_bytes()) as usize;
        if out[slot].is_empty() {
            out[slot] = t;
            missing -= 1;
        }
        i += 1;
    }
    out
}

/// A `CLUSTER SLOTS` reply as one node per slot; `None` unless every slot is served.
fn slot_map(ranges: &[Reply]) -> Option<Vec<Option<Arc<str>>>> {
    let mut map = vec![None; N];
    for r in ranges {
        let Reply::Array(r) = r else { return None };
        let (Some(start), Some(end), Some(Reply::Array(master))) =
            (int(r.first()), int(r.get(1)), r.get(2))
        else {
            return None;
        };
        let (Some(Reply::Bulk(host)), Some(port)) = (master.first(), int(master.get(1))) else {
            return None;
        };
        let host = String::from_utf8_lossy(host);
        let port = u16::try_from(port).ok()?;
        let addr: Arc<str> = vigil_base::HostPort::new(&host, port)
            .ok()?
            .to_string()
            .into();
        if start < 0 {
            return None;
        }
        for slot in start..=end.min(N as i64 - 1) {
            map[slot as usize] = Some(addr.clone());
        }
    }
    map.iter().all(Option::is_some).then_some(map)
}

fn int(r: Option<&Reply>) -> Option<i64> {
    match r? {
        Reply::Other(s) => s.strip_prefix(':')?.parse().ok(),
        _ => None,
    }
}

/// Starts writers over the cluster whose nodes are `seeds`: for each entry of `shards` (the
/// slots of one shard) `per_shard` writers. Fails when no node serves a full slot map.
pub async fn start(
    seeds: Vec<String>,
    shards: &[Vec<u16>],
    per_shard: usize,
) -> anyhow::Result<Arc<Record>> {
    let record = Arc::new(Record {
        attempted: Mutex::default(),
        acks: Mutex::default(),
        retried: Mutex::default(),
        prefix: format!(
            "sdrill-{:x}",
            vigil_base::clock::unix_us() as u64 ^ u64::from(std::process::id())
        ),
        sets: RwLock::default(),
        tags: tags(),
        stop: AtomicBool::new(false),
        router: Router {
            seeds,
            slots: RwLock::new(vec![None; N]),
            stale: AtomicBool::new(false),
        },
    });
    if !record.router.refresh(0).await {
        anyhow::bail!("no node of the cluster serves a slot map covering every slot");
    }
    let r = record.clone();
    tokio::spawn(async move {
        let mut turn = 0;
        while !r.stop.load(Ordering::Relaxed) {
            if r.router.stale.swap(false, Ordering::Relaxed) {
                turn += 1;
                if !r.router.refresh(turn).await {
                    r.router.stale.store(true, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    record.assign(shards);
    for w in 0..shards.len() * per_shard {
        tokio::spawn(writer(w, w / per_shard, record.clone()));
    }
    Ok(record)
}

/// What one attempt of a write came to.
enum Outcome {
    Acked,
    /// Moved: ask the node named at once.
    Moved(Arc<str>),
    /// Refused or unreachable: pause, then ask again (the map is read again if `stale`).
    Retry {
        kind: &'static str,
        stale: bool,
    },
}

async fn writer(w: usize, shard: usize, record: Arc<Record>) {
    let mut conns: HashMap<Arc<str>, Conn> = HashMap::new();
    let mut seq = 0u64;
    while !record.stop.load(Ordering::Relaxed) {
        let Some(mine) = record.sets.read().get(shard).cloned() else {
            return;
        };
        if mine.is_empty() {
            // The shard owns no slot now (a migration emptied it).
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        seq += 1;
        // Spread over the shard's slots (Knuth's multiplicative hash of the sequence).
        let slot = mine[(seq.wrapping_mul(2_654_435_761) % mine.len() as u64) as usize];
        let key = format!(
            "{{{}}}{}:{w}:{seq}",
            record.tags[slot as usize], record.prefix
        );
        let index = {
            let mut a = record.attempted.lock();
            a.push(key.clone());
            a.len() - 1
        };
        let value = seq.to_string();
        let mut target = record.router.node(slot);
        let mut redirects = 0;
        while !record.stop.load(Ordering::Relaxed) {
            let Some(node) = target.clone().or_else(|| record.router.node(slot)) else {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            match attempt(&mut conns, &node, &key, &value).await {
                Outcome::Acked => {
                    record.acks.lock().push(Ack {
                        key: index,
                        slot,
                        at: Instant::now(),
                        node: node.to_string(),
                    });
                    break;
                }
                Outcome::Moved(to) => {
                    record.retried("MOVED");
                    record.router.slots.write()[slot as usize] = Some(to.clone());
                    record.router.stale.store(true, Ordering::Relaxed);
                    target = Some(to);
                    // Nodes whose views disagree for a moment send a write back and forth.
                    redirects += 1;
                    if redirects > 3 {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
                Outcome::Retry { kind, stale } => {
                    record.retried(kind);
                    if stale {
                        conns.remove(&node);
                        record.router.stale.store(true, Ordering::Relaxed);
                    }
                    target = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn attempt(
    conns: &mut HashMap<Arc<str>, Conn>,
    node: &Arc<str>,
    key: &str,
    value: &str,
) -> Outcome {
    if !conns.contains_key(node) {
        match tokio::time::timeout(REQUEST_TIMEOUT, Conn::connect(node)).await {
            Ok(Ok(c)) => {
                conns.insert(node.clone(), c);
            }
            _ => {
                return Outcome::Retry {
                    kind: "connect",
                    stale: true,
                };
            }
        }
    }
    let Some(c) = conns.get_mut(node) else {
        return Outcome::Retry {
            kind: "connect",
            stale: true,
        };
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, c.call(&["SET", key, value])).await {
        Ok(Some(Reply::Ok)) => Outcome::Acked,
        Ok(Some(Reply::Other(e))) => refusal(&e),
        // A reply that may still come, or none: the connection cannot be reused.
        _ => Outcome::Retry {
            kind: "timeout or connection lost",
            stale: true,
        },
    }
}

/// What a cluster client does with an error reply.
fn refusal(e: &str) -> Outcome {
    let mut words = e.trim_start_matches('-').split_whitespace();
    match words.next() {
        Some("MOVED") => match words.nth(1) {
            Some(addr) => Outcome::Moved(addr.into()),
            None => Outcome::Retry {
                kind: "MOVED",
                stale: true,
            },
        },
        Some("TRYAGAIN") => Outcome::Retry {
            kind: "TRYAGAIN",
            stale: false,
        },
        Some("CLUSTERDOWN") if e.contains("not served") => Outcome::Retry {
            kind: "CLUSTERDOWN slot not served",
            stale: true,
        },
        // The master lost its lease for a moment: the same node is asked again, as redis-rs
        // does (it answers `MOVED` once it learns of a failover).
        Some("CLUSTERDOWN") => Outcome::Retry {
            kind: "CLUSTERDOWN",
            stale: false,
        },
        // NOREPLICAS (sync mode, no replica acknowledged), READONLY, LOADING...: the write
        // was not acknowledged; ask again.
        _ => Outcome::Retry {
            kind: "other error",
            stale: true,
        },
    }
}

/// Where the acknowledged keys are, once the cluster is whole.
#[derive(Debug, Default, Clone)]
pub struct Placement {
    /// Acknowledged keys no master holds: (index into [`Record::attempted`], slot).
    pub lost: Vec<(usize, u16)>,
    /// Keys (sent, acknowledged or not) held by two or more masters.
    pub duplicated: u64,
    /// Keys held by a master whose group does not own their slot.
    pub misplaced: u64,
}

/// Checks every key sent so far against the masters `(group, address)` (every key of this run
/// each master holds, read with `SCAN`) and the slot owners `owner` (slot → group).
pub async fn placement(
    record: &Record,
    masters: &[(String, String)],
    owner: &[String],
) -> anyhow::Result<Placement> {
    // Acks first: every key acknowledged is then among the keys attempted.
    let acked: Vec<usize> = record.acks.lock().iter().map(|a| a.key).collect();
    let attempted = record.attempted.lock().clone();
    let index: HashMap<&str, usize> = attempted
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut holders: Vec<Vec<&str>> = vec![Vec::new(); attempted.len()];
    for (group, addr) in masters {
        for key in scan(addr, &format!("*{}:*", record.prefix)).await? {
            // SCAN may return a key twice: a group counts once.
            if let Some(&i) = index.get(key.as_str())
                && !holders[i].contains(&group.as_str())
            {
                holders[i].push(group);
            }
        }
    }
    let mut p = Placement::default();
    for (i, h) in holders.iter().enumerate() {
        if h.len() > 1 {
            p.duplicated += 1;
        }
        let slot = key_slot(attempted[i].as_bytes()) as usize;
        if h.iter().any(|g| *g != owner[slot]) {
            p.misplaced += 1;
        }
    }
    p.lost = acked
        .into_iter()
        .filter(|&i| holders[i].is_empty())
        .map(|i| (i, key_slot(attempted[i].as_bytes())))
        .collect();
    Ok(p)
}

/// Every key matching `pattern` the node at `addr` holds.
async fn scan(addr: &str, pattern: &str) -> anyhow::Result<Vec<String>> {
    let mut c = Conn::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the master at {addr}: {e}"))?;
    let mut keys = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = c
            .call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"])
            .await;
        let Some(Reply::Array(page)) = reply else {
            anyhow::bail!("SCAN of {addr} failed: {reply:?}");
        };
        let [Reply::Bulk(next), Reply::Array(batch)] = &page[..] else {
            anyhow::bail!("SCAN of {addr} answered {page:?}");
        };
        keys.extend(batch.iter().filter_map(|k| match k {
            Reply::Bulk(k) => Some(String::from_utf8_lossy(k).into_owned()),
            _ => None,
        }));
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return Ok(keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_map_must_cover_every_slot() {
        let node = |p: i64| {
            Reply::Array(vec![
                Reply::Bulk(b"127.0.0.1".to_vec()),
                Reply::Other(format!(":{p}")),
            ])
        };
        let range = |a: i64, b: i64, p: i64| {
            Reply::Array(vec![
                Reply::Other(format!(":{a}")),
                Reply::Other(format!(":{b}")),
                node(p),
            ])
        };
        let full = slot_map(&[range(0, 8000, 7000), range(8001, 16383, 7001)]).unwrap();
        assert_eq!(full[8000].as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(full[8001].as_deref(), Some("127.0.0.1:7001"));
        assert!(slot_map(&[range(0, 8000, 7000)]).is_none());
    }

    #[test]
    fn refusals_are_followed_as_a_cluster_client_does() {
        assert!(
            matches!(refusal("-MOVED 12 127.0.0.1:7001"), Outcome::Moved(a) if &*a == "127.0.0.1:7001")
        );
        assert!(matches!(
            refusal("-TRYAGAIN Multiple keys request during rehashing of slot"),
            Outcome::Retry { stale: false, .. }
        ));
        // A master without its lease is asked again; a slot nobody serves means a new map.
        assert!(matches!(
            refusal("-CLUSTERDOWN The cluster is down"),
            Outcome::Retry { stale: false, .. }
        ));
        assert!(matches!(
            refusal("-CLUSTERDOWN Hash slot not served"),
            Outcome::Retry { stale: true, .. }
        ));
    }
}
