//! The cluster-mode differential: the same commands go to a real `redis-server --cluster-enabled
//! yes` owning every slot and to the one master of a one-group Vigil cluster, and the replies
//! must be identical byte for byte (the grammar is [`vigil_tests::diff`]'s). What differs by
//! design — node ids, addresses, the shape of the topology — is run on both without comparing.

use std::time::{Duration, Instant};

use vigil_tests::diff::{assert_none, compare};
use vigil_tests::sharded::{range_of, raw_reply, start_sharded};
use vigil_tests::{RawConn, RedisProc, free_port};

const SCRIPT: &str = r##"
SET foo bar
GET foo
MSET foo 1 hello 2
MGET foo hello
MSET {foo}a 1 {foo}b 2
MGET {foo}a {foo}b
CLUSTER KEYSLOT foo
CLUSTER KEYSLOT {user1000}.following
CLUSTER KEYSLOT {}x
CLUSTER KEYSLOT
CLUSTER COUNTKEYSINSLOT 12182
CLUSTER COUNTKEYSINSLOT 16384
CLUSTER COUNTKEYSINSLOT -1
CLUSTER COUNTKEYSINSLOT x
CLUSTER GETKEYSINSLOT 12182 10
CLUSTER GETKEYSINSLOT 12182 1
CLUSTER GETKEYSINSLOT 12182 -1
CLUSTER GETKEYSINSLOT 16384 1
CLUSTER GETKEYSINSLOT 0 x
CLUSTER NOSUCH
SELECT 1
SELECT 0
SELECT x
MOVE foo 1
SWAPDB 0 1
COPY foo {foo}c DB 1
COPY foo {foo}c
GET {foo}c
RENAME foo hello
RENAME foo {foo}d
READONLY
READWRITE
ASKING
GET {foo}d
MULTI
SET {x}1 a
SET {x}2 b
EXEC
MULTI
SET {x}1 a
SET {y}1 b
EXEC
EVAL "return redis.call('GET', KEYS[1])" 1 {foo}d
EVAL "return redis.call('GET', KEYS[1])" 2 {foo}d hello
EVAL "redis.call('SET', KEYS[1], '1') return redis.call('SET', 'hello', '2')" 1 {foo}s
EVAL "#!lua\nredis.call('SET', KEYS[1], '1') return redis.call('SET', 'hello', '2')" 1 {foo}s
EVAL "#!lua flags=allow-cross-slot-keys\nredis.call('SET', KEYS[1], '1') return redis.call('SET', 'hello', '3')" 1 {foo}s
EVAL "#!lua\nreturn redis.call('GET', 'hello')" 0
EVAL "#!lua\nredis.call('GET', 'hello') return redis.call('GET', 'foo')" 0
EVAL "return redis.call('MSET', 'foo', '1', 'hello', '2')" 0
EVAL "return redis.call('SELECT', '1')" 0
EVAL "return redis.call('MOVE', KEYS[1], '1')" 1 {foo}s
EVAL "return redis.call('SWAPDB', '0', '1')" 0
GET hello
"##;

/// A `redis-server` in cluster mode owning every slot, once it says `cluster_state:ok`.
fn redis_cluster() -> RedisProc {
    let bus = free_port().to_string();
    let redis = RedisProc::start_with(&["--cluster-enabled", "yes", "--cluster-port", &bus]);
    assert_eq!(
        raw_reply(redis.port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "+OK\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw_reply(redis.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
        assert!(
            Instant::now() < deadline,
            "redis-server's cluster never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    redis
}

#[test]
fn cluster_mode_replies_match_redis_cluster() {
    let redis = redis_cluster();
    let c = start_sharded(1, 1, "2s", "");
    let slots = c.wait_serving(0, &[], Duration::from_secs(60));
    let master = range_of(&slots, 0).master.1;
    let mut r = RawConn::connect(redis.port).unwrap();
    let mut v = RawConn::connect(master).unwrap();
    let mut failures = compare(SCRIPT, &mut r, &mut v);
    failures.extend(compare(
        &format!("FLUSHALL\n!HELLO 3\n{SCRIPT}\n!HELLO 2"),
        &mut r,
        &mut v,
    ));
    assert_none(&failures);
}
