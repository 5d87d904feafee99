//! Sorted-set algebra (`ZUNION`, `ZINTER`, `ZDIFF`, their `STORE` forms, `ZINTERCARD`) compared
//! with redis-server byte for byte: scripted cases for every option and error, then seeded
//! random sequences over sorted sets and sets with random weights and aggregates.

use vigil_tests::diff::{Pair, assert_matches_redis, assert_none};
use vigil_tests::seeded::Rng;

const SCRIPT: &str = r#"
ZADD za 1 a 2 b 3 c
ZADD zb 10 b 20 c 30 d
SADD s a d x
SET str v
ZUNIONSTORE dst 2 za zb
ZRANGE dst 0 -1 WITHSCORES
ZINTERSTORE dst 2 za zb
ZRANGE dst 0 -1 WITHSCORES
ZDIFFSTORE dst 2 za zb
ZRANGE dst 0 -1 WITHSCORES
ZUNIONSTORE dst 3 za zb s WEIGHTS 2 0.5 -1 AGGREGATE MAX
ZRANGE dst 0 -1 WITHSCORES
ZINTERSTORE dst 2 za s AGGREGATE MIN
ZRANGE dst 0 -1 WITHSCORES
ZUNION 2 za zb
ZUNION 2 za zb WITHSCORES
ZINTER 2 za zb WITHSCORES AGGREGATE SUM
ZDIFF 3 za zb s WITHSCORES
ZDIFF 1 za WEIGHTS 1
ZINTERCARD 2 za zb
ZINTERCARD 2 za zb LIMIT 1
ZINTERCARD 2 za zb LIMIT 0
ZINTERCARD 2 za zb LIMIT -1
ZINTERCARD 2 za zb LIMIT x
SINTERCARD 1 s LIMIT x
ZINTERCARD 0 za
ZINTERCARD x za
ZINTERCARD 2 za zb WITHSCORES
ZUNIONSTORE dst 0 za
ZUNIONSTORE dst -1 za
ZUNIONSTORE dst x za
ZUNIONSTORE dst 3 za zb
ZUNIONSTORE dst 2 za str
ZUNIONSTORE dst 2 za zb WEIGHTS 1
ZUNIONSTORE dst 2 za zb WEIGHTS 1 nan
ZUNIONSTORE dst 2 za zb WEIGHTS 1 x
ZUNIONSTORE dst 2 za zb AGGREGATE avg
ZUNIONSTORE dst 2 za zb AGGREGATE
ZUNIONSTORE dst 2 za zb WITHSCORES
ZUNION 2 za zb WITHSCORES WITHSCORES
ZADD inf1 inf a -inf b
ZADD inf2 -inf a inf b 0 c
ZUNION 2 inf1 inf2 WITHSCORES
ZINTER 2 inf1 inf2 WEIGHTS 0 1 WITHSCORES
ZUNIONSTORE dst 1 nosuch
EXISTS dst
SET dst x
EXPIRE dst 100
ZUNIONSTORE dst 1 za
TTL dst
TYPE dst
ZINTERSTORE za 2 za zb
ZRANGE za 0 -1 WITHSCORES
ZADD f 0.1 a 0.2 b
ZADD g 0.2 a 0.1 b
ZUNION 2 f g WITHSCORES
ZUNION 2 f g WEIGHTS 3 7 WITHSCORES
COMMAND GETKEYS ZUNIONSTORE dst 2 a b WEIGHTS 1 2
COMMAND GETKEYS ZINTER 3 a b c
COMMAND GETKEYS ZINTERCARD 2 a b LIMIT 1
COMMAND GETKEYS ZDIFF 5 a b
COMMAND GETKEYSANDFLAGS ZDIFFSTORE d 1 a
"#;

#[test]
fn zset_algebra_matches_redis_server() {
    assert_matches_redis(SCRIPT);
    assert_matches_redis(&format!("!HELLO 3\n{SCRIPT}"));
}

/// ZRANGESTORE: every range form, its errors, an empty result deleting the destination.
const RANGESTORE: &str = r#"
ZADD src 1 a 2 b 3 c 4 d 5 e
ZRANGESTORE dst src 0 -1
ZRANGE dst 0 -1 WITHSCORES
ZRANGESTORE dst src 1 3 REV
ZRANGE dst 0 -1 WITHSCORES
ZRANGESTORE dst src (2 +inf BYSCORE LIMIT 1 2
ZRANGE dst 0 -1 WITHSCORES
ZRANGESTORE dst src 5 2 BYSCORE REV
ZRANGE dst 0 -1
ZADD lex 0 a 0 b 0 c 0 d
ZRANGESTORE dst lex [b + BYLEX
ZRANGE dst 0 -1 WITHSCORES
ZRANGESTORE dst lex + - BYLEX REV LIMIT 0 2
ZRANGE dst 0 -1
ZRANGESTORE dst src 0 -1 WITHSCORES
ZRANGESTORE dst src 0 -1 LIMIT 0 1
ZRANGESTORE dst src x y BYSCORE
ZRANGESTORE dst src a b BYLEX
ZRANGESTORE dst src 0 -1 BYSCORE
SET str v
ZRANGESTORE dst str 0 -1
ZRANGESTORE str src 0 0
TYPE str
ZRANGESTORE dst src 10 20
EXISTS dst
ZRANGESTORE dst nosuch 0 -1
ZRANGESTORE dst src 0
"#;

#[test]
fn zrangestore_matches_redis_server() {
    assert_matches_redis(RANGESTORE);
    assert_matches_redis(&format!("!HELLO 3\n{RANGESTORE}"));
}

#[test]
fn random_zset_algebra_matches_redis_server() {
    for seed in [7u64, 1234] {
        let mut r = Rng(seed);
        let mut script = String::new();
        for k in 0..6 {
            let n = r.below(12);
            for _ in 0..n {
                let (m, s) = (r.below(10), r.below(2000) as f64 / 8.0 - 100.0);
                if k < 4 {
                    script += &format!("ZADD k{k} {s} m{m}\n");
                } else {
                    script += &format!("SADD k{k} m{m}\n");
                }
            }
        }
        for _ in 0..200 {
            let ops = [
                "ZUNION",
                "ZINTER",
                "ZDIFF",
                "ZUNIONSTORE",
                "ZINTERSTORE",
                "ZDIFFSTORE",
            ];
            let op = ops[r.below(6) as usize];
            let nk = 1 + r.below(4);
            let mut line = String::from(op);
            if op.ends_with("STORE") {
                line += &format!(" k{}", r.below(7));
            }
            line += &format!(" {nk}");
            for _ in 0..nk {
                line += &format!(" k{}", r.below(7));
            }
            if !op.starts_with("ZDIFF") && r.below(2) == 0 {
                line += " WEIGHTS";
                for _ in 0..nk {
                    line += &format!(" {}", r.below(9) as f64 / 2.0 - 2.0);
                }
            }
            if !op.starts_with("ZDIFF") && r.below(2) == 0 {
                line += [" AGGREGATE SUM", " AGGREGATE MIN", " AGGREGATE MAX"][r.below(3) as usize];
            }
            if !op.ends_with("STORE") && r.below(2) == 0 {
                line += " WITHSCORES";
            }
            script += &line;
            script += "\n";
            if op.ends_with("STORE") {
                script += "ZRANGE k0 0 -1 WITHSCORES\n";
            }
        }
        let mut pair = Pair::start();
        assert_none(&pair.compare(&script));
    }
}
