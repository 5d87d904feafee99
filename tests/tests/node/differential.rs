//! Differential tests: the same commands go to a real `redis-server` and to `vigil node`, and
//! the replies must be identical byte for byte (or, for commands whose element order Redis
//! leaves unspecified, identical as multisets).
//!
//! The script's grammar is [`vigil_tests::diff`]'s.

use vigil_tests::diff::assert_matches_redis;
use vigil_tests::{NodeProc, RawConn, RedisProc};

const SCRIPT: &str = r#"
PING
PING hello
ECHO hi
SET k v
GET k
GET missing
SET k v2 XX GET
SET k v3 NX
SET k v3 NX GET
SET n 10
INCR n
INCRBY n 5
DECR n
DECRBY n 3
INCRBY n notanumber
INCR k
SET big 9223372036854775807
INCR big
INCRBYFLOAT f 10.5
INCRBYFLOAT f 0.1
INCRBYFLOAT f -10.6
INCRBYFLOAT k 1
APPEND s hello
APPEND s world
STRLEN s
STRLEN nosuch
GETRANGE s 0 4
GETRANGE s -5 -1
GETRANGE s 5 2
GETRANGE s 0 100
GETRANGE s -100 2
GETRANGE nosuch 0 1
SETRANGE s 3 XYZ
SETRANGE s 20 tail
GET s
SETRANGE s -1 x
GETSET s new
GETDEL s
GETDEL s
MSET a 1 b 2 c 3
MSET a 1 b
MGET a b c nosuch
MSETNX a 1 zk 26
MSETNX y 25 zk 26
ZRANGE zk a c BYLEX
ZRANGE zk 0 1 BYSCORE
SETNX a 1
SETNX newkey 1
SET e v EX 0
SET e v EX -5
SET e v PX 100 EX 100
SET e v KEEPTTL EX 10
SET e v FOO
SETEX e 0 v
SETEX e notint v
PSETEX e -1 v
SET e v EX 100
TTL e
PTTL nosuch
TTL a
EXPIRE a 100 NX
EXPIRE a 200 NX
EXPIRE a 50 GT
EXPIRE a 500 GT
EXPIRE a 50 LT
EXPIRE a 10 NX XX
EXPIRE a 10 GT LT
EXPIRE a 10 FOO
EXPIRE nosuch 10
TTL a
PERSIST a
PERSIST a
TTL a
EXPIRETIME a
EXPIRETIME nosuch
EXPIRE a notint
GETEX a
GETEX nosuch
GETEX a PERSIST
GETEX a EX 0
TYPE a
TYPE nosuch
EXISTS a b nosuch a
DEL a b nosuch
UNLINK c
RENAME nosuch x
RENAME n n2
GET n2
RENAMENX n2 z
RENAMENX n2 n3
LPUSH l a b c
RPUSH l d e
LRANGE l 0 -1
LRANGE l -2 -1
LRANGE l 5 1
LRANGE l 0 100
LLEN l
LLEN nosuch
LINDEX l 0
LINDEX l -1
LINDEX l 99
LSET l 0 X
LSET l 99 X
LSET nosuch 0 X
LINSERT l BEFORE X Y
LINSERT l AFTER nosuch Y
LINSERT nosuch AFTER a Y
LINSERT l SIDEWAYS a Y
RPUSH r a b a c a
LREM r 2 a
LRANGE r 0 -1
LREM r -1 a
LREM r 0 zz
LPOS r b
LPOS r a
LPUSH p a b c a b c
LPOS p a RANK 2
LPOS p a COUNT 0
LPOS p a RANK -1 COUNT 2
LPOS p a RANK 0
LPOS p zz COUNT 1
LPOS p a MAXLEN 1
LTRIM p 1 3
LRANGE p 0 -1
LTRIM p 5 1
EXISTS p
LPOP l
RPOP l
LPOP l 2
LPOP l 0
LPOP l 1 2
RPOP l 1 2
LPOP nosuch 2
LPOP nosuch
RPOP l -1
LPUSHX nosuch a
RPUSHX l z
LMOVE l dst LEFT RIGHT
LMOVE l dst UP DOWN
RPOPLPUSH l dst
LRANGE dst 0 -1
LPUSH k a
GET l
BLPOP nosuch 0.01
BLPOP l x
BLPOP l -1
BLMOVE nosuch dst LEFT LEFT 0.01
HSET h f1 v1 f2 v2
HSET h f1 v1b
HSET h f1
HGET h f1
HGET h nosuch
HGET nosuch f
HMGET h f1 nosuch f2
HGETALL h
HGETALL nosuch
HKEYS h
HVALS h
HLEN h
HEXISTS h f1
HEXISTS h nope
HSETNX h f1 x
HSETNX h f3 x
HDEL h f3 nosuch
HSTRLEN h f1
HINCRBY h n 5
HINCRBY h f1 1
HINCRBYFLOAT h fl 2.5
HINCRBYFLOAT h fl 1e3
HINCRBYFLOAT h f1 1
HMSET h a 1 b 2
HGETALL h
HDEL h f1 f2 n fl a b
EXISTS h
HRANDFIELD nosuch
HRANDFIELD nosuch 5
HSET h2 only one
HRANDFIELD h2
HRANDFIELD h2 1 WITHVALUES
HRANDFIELD h2 -2 WITHVALUES
HSCAN h2 0
HSCAN h2 notacursor
SADD s1 a b c d
SADD s1 a
SADD s2 c d e
~SMEMBERS s1
SISMEMBER s1 a
SISMEMBER s1 z
SMISMEMBER s1 a z b
SCARD s1
SCARD nosuch
SREM s1 a z
~SINTER s1 s2
~SUNION s1 s2
~SDIFF s1 s2
SINTER s1 nosuch
~SDIFF s1 nosuch
SINTERSTORE dst2 s1 s2
SUNIONSTORE dst3 s1 s2
SDIFFSTORE dst4 s1 s2
SDIFFSTORE dst4 nosuch s2
EXISTS dst4
SINTERCARD 2 s1 s2
SINTERCARD 2 s1 s2 LIMIT 1
SINTERCARD 0 s1
SINTERCARD x s1
SINTERCARD -1 s1
SINTERCARD 5 s1
SMOVE s1 s2 b
SMOVE s1 s2 zz
SMOVE s1 k b
SPOP nosuch
SPOP nosuch 3
SRANDMEMBER nosuch
SRANDMEMBER nosuch 3
SPOP s1 -1
SADD one x
SPOP one
EXISTS one
ZADD z 1 a 2 b 3 c
ZADD z 1.5 a
ZADD z CH 2 a 5 d
ZADD z NX 100 a 6 e
ZADD z XX 100 a 7 f
ZADD z GT 1 a
ZADD z LT 1 a
ZADD z INCR 10 a
ZADD z INCR 10 a 2 b
ZADD z NX XX 1 a
ZADD z GT LT 1 a
ZADD z GT NX 1 a
ZADD z 1 a 2
ZADD z nan a
ZADD z notfloat a
ZADD nosuch XX 1 a
ZSCORE z a
ZSCORE z nosuch
ZMSCORE z a nosuch b
ZINCRBY z 0.1 b
ZINCRBY z inf b
ZCARD z
ZCOUNT z 2 5
ZCOUNT z (2 5
ZCOUNT z -inf +inf
ZCOUNT z x 5
ZRANK z a
ZREVRANK z a
ZRANK z nosuch
ZRANGE z 0 -1
ZRANGE z 0 -1 WITHSCORES
ZRANGE z 1 2 REV
ZRANGE z 2 6 BYSCORE
ZRANGE z (2 6 BYSCORE WITHSCORES
ZRANGE z 6 2 BYSCORE REV
ZRANGE z -inf +inf BYSCORE LIMIT 1 2
ZRANGE z 0 -1 LIMIT 1 2
ZRANGE z [a [c BYLEX
ZRANGE z - + BYLEX WITHSCORES
ZRANGE z a c BYLEX
ZRANGEBYSCORE z 1 6
ZRANGEBYSCORE z 1 6 WITHSCORES LIMIT 0 2
ZRANGEBYSCORE z (1 (6
ZREVRANGEBYSCORE z 6 1
ZREVRANGEBYSCORE z +inf -inf WITHSCORES
ZREVRANGE z 0 1
ZREVRANGE z 0 1 WITHSCORES
ZREVRANGE z 0 1 BYSCORE
ZADD lex 0 a 0 b 0 c 0 d
ZRANGEBYLEX lex - +
ZRANGEBYLEX lex [b (d
ZREVRANGEBYLEX lex + -
ZLEXCOUNT lex [b +
ZREMRANGEBYLEX lex [a [b
ZRANGE lex 0 -1
ZPOPMIN z
ZPOPMAX z
ZPOPMIN z 2
ZPOPMIN z -1
ZPOPMIN nosuch
ZADD bz 1 a 2 b 3 c 4 d
BZPOPMIN bz 0
BZPOPMAX bz 0
BZPOPMIN nosuchz bz 0
BZPOPMAX nosuchz 0.01
BZPOPMIN bz -1
BZPOPMIN bz abc
SET bzs x
BZPOPMIN bzs 0
BZPOPMIN bz
ZREMRANGEBYRANK z 0 0
ZREMRANGEBYSCORE z -inf 5
ZRANGE z 0 -1 WITHSCORES
ZREM z a nosuch
ZREM nosuch a
ZRANDMEMBER nosuch
ZSCAN nosuch 0
ZADD zf 0.1 a 1e30 b -0 c
ZRANGE zf 0 -1 WITHSCORES
ZSCORE zf a
ZSCORE zf b
ZSCORE zf c
GET z
LPUSH z x
SET str x
LPUSH str x
HGET str f
SADD str x
ZADD str 1 x
ZRANGE str 0 -1
MULTI
SET t 1
INCR t
LPUSH t x
EXEC
EXEC
DISCARD
MULTI
MULTI
SET t 2
NOSUCHCOMMAND
EXEC
GET t
MULTI
DISCARD
WATCH t
MULTI
EXEC
MULTI
SET t 3
SHUTDOWN
SAVE
EXEC
GET t
MULTI
SHUTDOWN NOSAVE
SHUTDOWN NOSAVE NOW FORCE
EXEC
PING
MULTI
SYNC
PSYNC ? -1
DISCARD
EXEC
MULTI
WATCH t
MULTI
SET t 4
UNWATCH
WAIT 0 0
EXEC
GET t
MULTI
SHUTDOWN a b c d e f
EXEC
PING
SELECT 1
SET indb1 x
DBSIZE
SELECT 0
GET indb1
SELECT 99
SELECT x
DBSIZE
KEYS zzz*
SCAN 0 MATCH zzz* COUNT 1000
SCAN x
PUBLISH nobody x
PUBSUB NUMSUB a b
PUBSUB NUMPAT
PUBSUB CHANNELS
PUBSUB NOSUCH
CONFIG GET databases
CONFIG GET maxmemory-policy
CONFIG SET nosuchparam 1
CONFIG NOSUCH
CONFIG GET
COMMAND NOSUCH
COMMAND COUNT extra
CLIENT GETNAME extra
~KEYS *
TYPE l
TYPE h
TYPE s1
TYPE z
TYPE n2
SCAN 0 COUNT 1000 TYPE nosuchtype
FLUSHDB
DBSIZE
RANDOMKEY
GET
GETRANGE a b c
NOSUCH a b
nosuch
SET
ZADD z
CLIENT SETNAME my-name
CLIENT GETNAME
CLIENT SETNAME "bad name"
CLIENT NOSUCH
CLIENT SETNAME
!CLIENT ID
AUTH foo
AUTH user pass
HELLO 4
HELLO x
!HELLO 3
PING
SET k3 v
GET k3
GET missing
MGET k3 missing
HSET h3 a 1 b 2
HGETALL h3
HGETALL missing
ZADD z3 1 a 2.5 b
ZSCORE z3 b
ZRANGE z3 0 -1 WITHSCORES
ZPOPMIN z3
ZADD bz3 1.5 a 2 b
BZPOPMIN bz3 0
BZPOPMAX bz3 0
BZPOPMAX bz3 0.01
ZPOPMAX z3 5
ZADD z3 1 a
ZINCRBY z3 1 a
ZADD z3 INCR 1 a
~SMEMBERS s2
SISMEMBER s2 c
BLPOP missing 0.01
LPOP missing 1
HSET h4 only one
HRANDFIELD h4 -1 WITHVALUES
CONFIG GET maxmemory
EXISTS k3
TTL k3
INCRBYFLOAT fl3 1.5
MULTI
SET x 1
EXEC
DEL x
WAIT 0 0
WAIT 1 -1
WAIT x 0
WAIT 0 x
REPLICAOF 127.0.0.1 notaport
REPLICAOF NO ONE
SLAVEOF no one
REPLCONF
REPLCONF listening-port
REPLCONF foo bar
REPLCONF listening-port 1234
REPLCONF listening-port abc
CONFIG GET replica-priority
CONFIG GET repl-backlog-size
CONFIG GET replica-serve-stale-data
CONFIG GET min-replicas-to-write
CONFIG GET min-replicas-max-lag
CONFIG SET replica-priority 50
CONFIG GET replica-priority
CONFIG SET replica-priority 100
CONFIG SET replica-serve-stale-data maybe
!HELLO 2
PING
"#;

#[test]
fn replies_match_redis_server_byte_for_byte() {
    assert_matches_redis(SCRIPT);
}

/// Sharded pub/sub beside the classic kind: subscription counts per namespace, subscribed
/// mode, `PUBSUB SHARDCHANNELS` / `SHARDNUMSUB`, in RESP2 and RESP3.
const SHARDED_PUBSUB: &str = r#"
SPUBLISH sch hello
PUBSUB SHARDCHANNELS
PUBSUB SHARDNUMSUB sch nosuch
SSUBSCRIBE
SPUBLISH onlyone
SUNSUBSCRIBE
SSUBSCRIBE sch
SUBSCRIBE ch
SSUBSCRIBE sch2
SSUBSCRIBE sch
GET k
PING
SUNSUBSCRIBE sch
UNSUBSCRIBE ch
SUNSUBSCRIBE nosuch
SUNSUBSCRIBE
PING
!HELLO 3
SSUBSCRIBE a
PSUBSCRIBE p*
PUBSUB SHARDCHANNELS
PUBSUB SHARDCHANNELS a*
PUBSUB SHARDCHANNELS x*
PUBSUB SHARDNUMSUB a b
PUBSUB CHANNELS
PUBSUB NUMPAT
SPUBLISH b nobody
GET k
SUNSUBSCRIBE
PUNSUBSCRIBE
"#;

#[test]
fn sharded_pubsub_replies_match_redis_server() {
    assert_matches_redis(SHARDED_PUBSUB);
}

/// Protocol errors: the same error line as Redis, then the connection is closed.
#[test]
fn protocol_errors_match_redis_server() {
    let redis = RedisProc::start();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&dir.path().join("node"), &[]);
    let cases: &[&[u8]] = &[
        b"*abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$999999999999\r\n",
        b"*1\r\nxyz\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"set a \"unbalanced\r\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut r = RawConn::connect(redis.port).unwrap();
        let mut v = RawConn::connect(node.port).unwrap();
        r.send_raw(case).unwrap();
        v.send_raw(case).unwrap();
        let want = r.read_reply();
        let got = v.read_reply();
        assert_eq!(
            want.as_deref().map(String::from_utf8_lossy),
            got.as_deref().map(String::from_utf8_lossy),
            "#{i} {:?}",
            String::from_utf8_lossy(case)
        );
        assert!(
            v.is_closed(),
            "#{i}: vigil kept the connection open after a protocol error"
        );
    }
}
