//! `LMPOP`, `BLMPOP`, `ZMPOP`, `BZMPOP` compared with redis-server byte for byte (RESP2 and
//! RESP3), including blocked clients woken by a push, and what the pops replicate as.

use vigil_tests::diff::Pair;
use vigil_tests::diff::assert_none;
use vigil_tests::sessions::assert_sessions_match;

const SCRIPT: &str = r#"
RPUSH l a b c d e
ZADD z 1 a 2 b 3 c 4 d
SET s x
LMPOP 2 nol l LEFT
LMPOP 2 nol l RIGHT COUNT 2
LMPOP 1 l LEFT COUNT 10
EXISTS l
LMPOP 1 l LEFT
LMPOP 2 s l LEFT
LMPOP 2 nol s LEFT
LMPOP 0 l LEFT
LMPOP -1 l LEFT
LMPOP x l LEFT
LMPOP 2 l LEFT
LMPOP 1 l MIDDLE
LMPOP 1 l LEFT COUNT
LMPOP 1 l LEFT COUNT 0
LMPOP 1 l LEFT COUNT x
LMPOP 1 l LEFT COUNT 1 COUNT 2
LMPOP 1 l LEFT EXTRA
ZMPOP 1 z MIN
ZMPOP 2 nol z MAX COUNT 2
ZMPOP 1 z MIN COUNT 5
EXISTS z
ZMPOP 1 z MIN
ZMPOP 1 s MIN
ZMPOP 1 z LEFT
ZMPOP 0 z MIN
BLMPOP 0.01 1 l LEFT
BZMPOP 0.01 1 z MAX
BLMPOP x 1 l LEFT
BLMPOP -1 1 l LEFT
BZMPOP 0 0 z MIN
MULTI
BLMPOP 0 1 l LEFT
BZMPOP 0 1 z MIN
EXEC
COMMAND GETKEYS LMPOP 2 a b LEFT
COMMAND GETKEYS BZMPOP 0 1 a MIN
"#;

#[test]
fn mpop_replies_match_redis_server() {
    let mut pair = Pair::start();
    assert_none(&pair.both_protocols(SCRIPT));
}

#[test]
fn blocked_mpop_clients_are_served_in_order() {
    assert_sessions_match(
        r#"
        a> BLMPOP 0 2 q1 q2 RIGHT COUNT 2
        b> BZMPOP 0 1 zq MIN COUNT 3
        a!
        b!
        c: RPUSH q2 x y z
        a<
        c: ZADD zq 1 m 2 n
        b<
        c: LRANGE q2 0 -1
        "#,
    );
}

/// A woken client whose key now holds another type stays blocked (WRONGTYPE is only for the
/// first attempt), as in Redis.
#[test]
fn blocked_clients_wait_through_a_key_of_another_type() {
    assert_sessions_match(
        r#"
        a> BZPOPMIN zset 0
        b> BLMPOP 0 1 list LEFT
        a!
        b!
        c: MULTI
        c: ZADD zset 0 foo
        c: DEL zset
        c: SET zset foo
        c: RPUSH list x
        c: DEL list
        c: SET list foo
        c: EXEC
        a!
        b!
        c: DEL zset list
        c: ZADD zset 1 bar
        c: RPUSH list y
        a<
        b<
        "#,
    );
}
