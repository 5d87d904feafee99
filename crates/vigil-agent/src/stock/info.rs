//! `INFO` as a stock server writes it, read into the fields NodeAdmin reports: role, run id,
//! replication ids and offsets, the replicas a master sees (with the offsets they last
//! acknowledged), a replica's link, its priority and the key count. Unknown lines are ignored,
//! missing ones read as their zero value, so Redis 6.2 – 7.x and Valkey all parse.

use vigil_proto::node::{LinkStatus, NodeStatus, ReplicaInfo, Role};

/// One `slaveN:` line of a master's `INFO replication`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaLine {
    /// Its address as the master sees it (and its announced port).
    pub ip: String,
    /// Its listening port.
    pub port: u16,
    /// `online`, `wait_bgsave`, `send_bulk`.
    pub state: String,
    /// The offset it last acknowledged (`REPLCONF ACK`, once a second).
    pub offset: u64,
    /// Seconds since its last acknowledgement.
    pub lag_s: u64,
}

/// The parts of `INFO` Vigil uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `role:master` (else a replica).
    pub master: bool,
    /// `run_id`: changes on every restart.
    pub run_id: String,
    /// `redis_version`.
    pub version: String,
    /// `tcp_port`.
    pub tcp_port: u16,
    /// `loading:1` while the dataset loads at start-up.
    pub loading: bool,
    /// `master_replid`, `master_replid2`, `second_repl_offset` (-1: none).
    pub replid: String,
    /// The replication id this history continued from.
    pub replid2: String,
    /// First offset not shared with `replid2`'s history.
    pub second_offset: i64,
    /// `master_repl_offset`: this server's replication offset.
    pub offset: u64,
    /// A master's replicas.
    pub replicas: Vec<ReplicaLine>,
    /// A replica's master.
    pub master_host: String,
    /// Its port.
    pub master_port: u16,
    /// `master_link_status:up`.
    pub link_up: bool,
    /// `master_sync_in_progress:1`.
    pub syncing: bool,
    /// `master_link_down_since_seconds` (when the link is down and it is known).
    pub link_down_s: Option<u64>,
    /// `slave_priority` / `replica_priority` (replicas report it).
    pub priority: Option<u32>,
    /// `min_slaves_good_slaves`: replicas within `min-replicas-max-lag` (present when
    /// `min-replicas-to-write` is set).
    pub good_replicas: Option<u32>,
    /// Keys in every database.
    pub keys: u64,
}

impl Info {
    /// Reads `INFO` text (any sections).
    pub fn parse(text: &str) -> Info {
        let mut i = Info {
            second_offset: -1,
            ..Info::default()
        };
        for line in text.lines() {
            let Some((key, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            match key {
                "role" => i.master = value == "master",
                "run_id" => i.run_id = value.to_string(),
                "redis_version" => i.version = value.to_string(),
                "tcp_port" => i.tcp_port = value.parse().unwrap_or(0),
                "loading" => i.loading = value == "1",
                "master_replid" => i.replid = value.to_string(),
                "master_replid2" => i.replid2 = value.to_string(),
                "second_repl_offset" => i.second_offset = value.parse().unwrap_or(-1),
                "master_repl_offset" => i.offset = value.parse().unwrap_or(0),
                "master_host" => i.master_host = value.to_string(),
                "master_port" => i.master_port = value.parse().unwrap_or(0),
                "master_link_status" => i.link_up = value == "up",
                "master_sync_in_progress" => i.syncing = value == "1",
                "master_link_down_since_seconds" => {
                    i.link_down_s = value
                        .parse::<i64>()
                        .ok()
                        .and_then(|s| u64::try_from(s).ok())
                }
                "slave_priority" | "replica_priority" => i.priority = value.parse().ok(),
                "min_slaves_good_slaves" => i.good_replicas = value.parse().ok(),
                k if k.starts_with("slave") && k[5..].bytes().all(|b| b.is_ascii_digit()) => {
                    if let Some(r) = replica_line(value) {
                        i.replicas.push(r);
                    }
                }
                k if k.starts_with("db") && k[2..].bytes().all(|b| b.is_ascii_digit()) => {
                    i.keys += fields(value)
                        .find(|(k, _)| *k == "keys")
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
                _ => {}
            }
        }
        i
    }

    /// The highest offset that at least `n` online replicas acknowledged (0 when fewer than
    /// `n` are online, or `n` is 0).
    pub fn acked_by(&self, n: usize) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut offsets: Vec<u64> = self
            .replicas
            .iter()
            .filter(|r| r.state == "online")
            .map(|r| r.offset)
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        offsets.get(n - 1).copied().unwrap_or(0)
    }

    /// What NodeAdmin reports from the server alone: role (master or replica), run id,
    /// replication ids and offsets, replicas, link, priority, keys. The caller fills in what
    /// the server cannot know (epoch, fence, lease, clock, whether it is managed).
    pub fn status(&self) -> NodeStatus {
        let mut s = NodeStatus {
            role: if self.master {
                Role::Master
            } else {
                Role::Replica
            } as i32,
            run_id: self.run_id.clone(),
            replid: self.replid.clone(),
            replid2: self.replid2.clone(),
            second_offset: self.second_offset,
            offset: self.offset,
            replicas: self
                .replicas
                .iter()
                .map(|r| ReplicaInfo {
                    ip: r.ip.clone(),
                    port: r.port.into(),
                    ack_offset: r.offset,
                    lag_ms: r.lag_s.saturating_mul(1000),
                    state: r.state.clone(),
                })
                .collect(),
            link: LinkStatus::None as i32,
            priority: self.priority.unwrap_or(100),
            keys: self.keys,
            data_port: self.tcp_port.into(),
            ..NodeStatus::default()
        };
        if !self.master {
            s.master_host = self.master_host.clone();
            s.master_port = self.master_port.into();
            s.link = if self.link_up {
                LinkStatus::Up
            } else if self.syncing {
                LinkStatus::Syncing
            } else {
                LinkStatus::Down
            } as i32;
            if !self.link_up {
                s.link_down_ms = self.link_down_s.unwrap_or(0).saturating_mul(1000);
            }
        }
        s
    }
}

/// `key=value,key=value` pairs.
fn fields(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|kv| kv.split_once('='))
}

fn replica_line(value: &str) -> Option<ReplicaLine> {
    let mut r = ReplicaLine::default();
    for (k, v) in fields(value) {
        match k {
            "ip" => r.ip = v.to_string(),
            "port" => r.port = v.parse().ok()?,
            "state" => r.state = v.to_string(),
            "offset" => r.offset = v.parse().ok()?,
            "lag" => r.lag_s = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    (!r.ip.is_empty() && r.port != 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\ntcp_port:6379\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\nmin_slaves_good_slaves:2\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=1500,lag=0\r\nslave1:ip=127.0.0.1,port=6381,state=wait_bgsave,offset=0,lag=3\r\nmaster_failover_state:no-failover\r\nmaster_replid:r1\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:1600\r\nsecond_repl_offset:-1\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=10\r\n";

    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:900\r\nmaster_link_down_since_seconds:7\r\nslave_priority:10\r\nslave_read_only:1\r\nmaster_replid:r0\r\nmaster_replid2:r9\r\nmaster_repl_offset:900\r\nsecond_repl_offset:801\r\n";

    #[test]
    fn a_master() {
        let i = Info::parse(MASTER);
        assert!(i.master && !i.loading);
        assert_eq!(
            (i.run_id.as_str(), i.tcp_port, i.offset, i.keys),
            ("abc", 6379, 1600, 7)
        );
        assert_eq!(i.replicas.len(), 2);
        assert_eq!(i.replicas[0].offset, 1500);
        assert_eq!(i.good_replicas, Some(2));
        assert_eq!((i.acked_by(0), i.acked_by(1), i.acked_by(2)), (0, 1500, 0));
        let s = i.status();
        assert_eq!(s.role, Role::Master as i32);
        assert_eq!(s.replicas[1].lag_ms, 3000);
        assert_eq!(s.second_offset, -1);
        assert_eq!(s.priority, 100);
    }

    #[test]
    fn a_replica() {
        let i = Info::parse(REPLICA);
        assert!(!i.master);
        let s = i.status();
        assert_eq!(s.role, Role::Replica as i32);
        assert_eq!((s.master_host.as_str(), s.master_port), ("10.0.0.1", 6379));
        assert_eq!((s.link, s.link_down_ms), (LinkStatus::Down as i32, 7000));
        assert_eq!((s.priority, s.offset, s.second_offset), (10, 900, 801));
        assert_eq!(s.replid2, "r9");
    }

    #[test]
    fn garbage_reads_as_zero() {
        for (i, text) in ["", "role", "slave0:ip=,port=x", "db0:keys=x", ":::\r\n\r\n"]
            .into_iter()
            .enumerate()
        {
            let info = Info::parse(text);
            assert!(info.replicas.is_empty() && info.keys == 0, "#{i}");
        }
    }
}
