//! Geo commands against `redis-server` 7.0: a scripted differential run of every option and
//! error (RESP2, then RESP3), a seeded random sequence of points (poles, antimeridian,
//! invalid ones) and searches, and a replica and a restarted node that hold exactly the
//! master's geo sets (GEOADD propagates as ZADD, the STORE searches as themselves).

use std::time::{Duration, Instant};

use vigil_tests::NodeProc;
use vigil_tests::diff::{Pair, assert_none};
use vigil_tests::seeded::Rng;

/// Every command, option and error, with a few cities.
const SCRIPT: &str = r#"
GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
GEOADD Sicily 13.361389 38.115556 Palermo
GEOADD Sicily CH 13.361389 38.115557 Palermo
GEOADD Sicily NX 13.5 38.1 Palermo 14.0 37.0 Agrigento
GEOADD Sicily XX CH 13.5 38.1 Palermo 14.0 37.0 Nowhere
GEOADD Sicily ch nx 12.5 37.8 Marsala
GEOADD Sicily NX XX 1 1 a
GEOADD Sicily 1 2
GEOADD Sicily 1 2 a 3
GEOADD Sicily GT 1 2 a
GEOADD Sicily CH NX
GEOADD Sicily CH CH 1 1
GEOADD Sicily 200 10 bad
GEOADD Sicily 10 86 bad
GEOADD Sicily -180.0000001 0 bad
GEOADD Sicily x 1 bad
GEOADD Sicily 1 y bad
GEOADD Sicily inf 1 bad
GEOADD Sicily 1 1 ok 200 1 bad
EXISTS ok
GEOADD Sicily 180 85.05112878 ne -180 -85.05112878 sw 0 0 zero
ZRANGE Sicily 0 -1 WITHSCORES
SET str v
GEOADD str 1 1 a
GEOPOS str a
GEODIST str a b
GEOHASH str a
GEOSEARCH str FROMLONLAT 1 1 BYRADIUS 1 km
# GEOPOS / GEOHASH / GEODIST
GEOPOS Sicily Palermo Catania nosuch ne sw zero
GEOPOS Sicily
GEOPOS nokey a b
GEOHASH Sicily Palermo Catania nosuch ne sw zero
GEOHASH Sicily
GEOHASH nokey a
GEODIST Sicily Palermo Catania
GEODIST Sicily Palermo Catania km
GEODIST Sicily Palermo Catania KM
GEODIST Sicily Palermo Catania mi
GEODIST Sicily Palermo Catania ft
GEODIST Sicily Palermo Catania m
GEODIST Sicily Palermo Catania yards
GEODIST Sicily Palermo Catania km extra
GEODIST Sicily Palermo Palermo
GEODIST Sicily Palermo nosuch
GEODIST nokey a b
GEODIST Sicily ne sw km
# GEOSEARCH
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km DESC
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHCOORD WITHDIST WITHHASH
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHHASH WITHDIST
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km withcoord
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 2 DESC WITHDIST
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 2 ANY ASC
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ANY
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 0
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT -1
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT x
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STORE x
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHDIST WITHCOORD
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 100 500 mi DESC
GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 100 mi ASC WITHDIST
GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 1000000 1000000 ft ASC
GEOSEARCH Sicily FROMMEMBER nosuch BYRADIUS 100 km
GEOSEARCH nokey FROMMEMBER nosuch BYRADIUS 100 km
GEOSEARCH nokey FROMLONLAT 1 1 BYRADIUS 100 km
GEOSEARCH nokey FROMLONLAT 200 1 BYRADIUS 100 km
GEOSEARCH Sicily FROMMEMBER Palermo FROMLONLAT 1 1 BYRADIUS 100 km
GEOSEARCH Sicily FROMLONLAT 1 1 FROMMEMBER Palermo BYRADIUS 100 km
GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 100 km BYBOX 1 1 km
GEOSEARCH Sicily BYRADIUS 100 km BYRADIUS 100 km FROMLONLAT 1 1
GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 100 km FROMLONLAT 2 2
GEOSEARCH Sicily BYRADIUS 100 km
GEOSEARCH Sicily FROMLONLAT 15 37 WITHDIST
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS -1 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS x km
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 yards
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX -1 1 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 -1 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX x 1 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 y km
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1 yards
GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1
GEOSEARCH Sicily FROMLONLAT x 37 BYRADIUS 1 km
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 0 km
GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 0 km
GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 20000 km
GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 20000 km ASC WITHDIST
GEOSEARCH Sicily FROMLONLAT 179.99 85 BYRADIUS 100 km WITHCOORD
GEOSEARCH Sicily FROMLONLAT -179.99 -85 BYBOX 500 500 km WITHCOORD
GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km garbage
geosearch Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY WITHDIST
# GEOSEARCHSTORE
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km
ZRANGE dst 0 -1 WITHSCORES
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
ZRANGE dst 0 -1 WITHSCORES
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 400 400 km COUNT 1 DESC STOREDIST
ZRANGE dst 0 -1 WITHSCORES
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STORE x
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 1 m
EXISTS dst
GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km
GEOSEARCHSTORE dst nokey FROMLONLAT 15 37 BYRADIUS 200 km
EXISTS dst
GEOSEARCHSTORE dst nokey FROMLONLAT 15 37 BYRADIUS 200 km
GEOSEARCHSTORE str Sicily FROMLONLAT 15 37 BYRADIUS 200 km
TYPE str
GEOSEARCHSTORE dst str FROMLONLAT 15 37 BYRADIUS 200 km
GEOSEARCHSTORE Sicily Sicily FROMMEMBER Palermo BYRADIUS 100 km
ZRANGE Sicily 0 -1 WITHSCORES
GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania 12.5 37.8 Marsala
# GEORADIUS and friends
GEORADIUS Sicily 15 37 200 km
GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH ASC
GEORADIUS Sicily 15 37 200 km COUNT 1
GEORADIUS Sicily 15 37 200 km COUNT 2 ANY
GEORADIUS Sicily 15 37 200 km STORE dst
ZRANGE dst 0 -1 WITHSCORES
GEORADIUS Sicily 15 37 200 km STOREDIST dst COUNT 1
ZRANGE dst 0 -1 WITHSCORES
GEORADIUS Sicily 15 37 200 km STORE dst WITHDIST
GEORADIUS Sicily 15 37 200 km STORE
GEORADIUS Sicily 15 37 200 km FROMLONLAT 1 1
GEORADIUS Sicily 15 37 200 km BYRADIUS 1 km
GEORADIUS Sicily 200 37 200 km
GEORADIUS Sicily 15 37 -1 km
GEORADIUS Sicily 15 37 x km
GEORADIUS Sicily 15 37 1 yards
GEORADIUS nokey 15 37 200 km
GEORADIUS nokey 15 37 200 km STORE dst
EXISTS dst
GEORADIUS str 15 37 200 km
GEORADIUS_RO Sicily 15 37 200 km WITHDIST ASC
GEORADIUS_RO Sicily 15 37 200 km STORE dst
GEORADIUS_RO Sicily 15 37 200 km STOREDIST dst
GEORADIUSBYMEMBER Sicily Palermo 200 km WITHDIST ASC
GEORADIUSBYMEMBER Sicily Palermo 200 km STORE dst2
ZRANGE dst2 0 -1 WITHSCORES
GEORADIUSBYMEMBER Sicily Palermo 200 km STOREDIST dst2 DESC
ZRANGE dst2 0 -1 WITHSCORES
GEORADIUSBYMEMBER Sicily nosuch 200 km
GEORADIUSBYMEMBER Sicily Palermo x km
GEORADIUSBYMEMBER nokey nosuch x km
GEORADIUSBYMEMBER nokey nosuch 1 km STORE dst2
EXISTS dst2
GEORADIUSBYMEMBER_RO Sicily Palermo 200 km COUNT 2 WITHHASH
GEORADIUSBYMEMBER_RO Sicily Palermo 200 km STORE dst
GEORADIUSBYMEMBER str Palermo 200 km
# geo sets are sorted sets
ZADD Sicily 0 z0 4503599627370495 zmax
GEOPOS Sicily z0 zmax
GEOHASH Sicily z0 zmax
GEODIST Sicily z0 zmax
GEOSEARCH Sicily FROMMEMBER z0 BYRADIUS 1 km WITHCOORD
"#;

#[test]
fn geo_replies_match_redis_server() {
    let mut pair = Pair::start();
    let mut failures = pair.compare(SCRIPT);
    failures.extend(pair.compare(&format!("FLUSHALL\n!HELLO 3\n{SCRIPT}")));
    assert_none(&failures);
}

fn coord(r: &mut Rng, max: f64, edges: &[&str]) -> String {
    match r.below(12) {
        0 => r.pick(edges).to_string(),
        1 => format!("{:.0}", r.float(-max, max)),
        _ => format!("{:.6}", r.float(-max, max)),
    }
}

fn point(r: &mut Rng) -> String {
    let lon = coord(
        r,
        180.0,
        &["180", "-180", "179.9999", "-179.9999", "0", "181"],
    );
    let lat = coord(
        r,
        85.0,
        &["85.05112878", "-85.05112878", "85.0511", "-85", "0", "86"],
    );
    format!("{lon} {lat}")
}

fn member(r: &mut Rng) -> String {
    format!("m{}", r.below(40))
}

fn unit(r: &mut Rng) -> &'static str {
    r.pick(&["m", "km", "km", "mi", "mi", "ft", "KM", "yd"])
}

fn size(r: &mut Rng) -> String {
    match r.below(10) {
        0 => "0".into(),
        1 => "-5".into(),
        2 => format!("{:.3}", r.float(0.0, 20_000.0)),
        _ => format!("{:.1}", r.float(0.0, 6000.0)),
    }
}

/// The options after the centre and shape: sorting, COUNT [ANY], WITH*.
/// Without ASC/DESC results come in scan order, which is Redis' order too.
fn tail(r: &mut Rng, with: bool) -> String {
    let mut t = String::from(r.pick(&["", "", " ASC", " DESC"]));
    if r.below(3) == 0 {
        t.push_str(&format!(" COUNT {}", r.below(6) as i64 - 1));
        if r.below(3) == 0 {
            t.push_str(" ANY");
        }
    }
    if with {
        for w in ["WITHDIST", "WITHCOORD", "WITHHASH"] {
            if r.below(3) == 0 {
                t.push_str(&format!(" {w}"));
            }
        }
    }
    t
}

fn geo_command(r: &mut Rng) -> Vec<String> {
    let key = r.pick(&["g1", "g1", "g1", "g2", "str", "none"]);
    let m = member(r);
    match r.below(14) {
        0..=3 => {
            let mut c = format!("GEOADD {key}");
            if r.below(5) == 0 {
                c.push_str(&format!(
                    " {}",
                    r.pick(&["NX", "XX", "CH", "NX CH", "XX CH"])
                ));
            }
            for _ in 0..=r.below(4) {
                c.push_str(&format!(" {} {}", point(r), member(r)));
            }
            vec![c]
        }
        4 => vec![format!("GEOPOS {key} {m} {} m99", member(r))],
        5 => vec![format!("GEOHASH {key} {m} {} m99", member(r))],
        6 => vec![format!("GEODIST {key} {m} {} {}", member(r), unit(r))],
        7..=9 => {
            let from = if r.below(2) == 0 {
                format!("FROMMEMBER {m}")
            } else {
                format!("FROMLONLAT {}", point(r))
            };
            let by = if r.below(2) == 0 {
                format!("BYRADIUS {} {}", size(r), unit(r))
            } else {
                format!("BYBOX {} {} {}", size(r), size(r), unit(r))
            };
            let t = tail(r, true);
            vec![format!("GEOSEARCH {key} {from} {by}{t}")]
        }
        10 => {
            let t = tail(r, false);
            let dist = if r.below(2) == 0 { " STOREDIST" } else { "" };
            vec![
                format!(
                    "GEOSEARCHSTORE dst {key} FROMLONLAT {} BYRADIUS {} {}{t}{dist}",
                    point(r),
                    size(r),
                    unit(r)
                ),
                "ZRANGE dst 0 -1 WITHSCORES".into(),
            ]
        }
        11 => {
            let with = r.below(2) == 0;
            let t = tail(r, with);
            let store = r.pick(&["", " STORE dst", " STOREDIST dst"]);
            vec![
                format!(
                    "GEORADIUS {key} {} {} {}{t}{store}",
                    point(r),
                    size(r),
                    unit(r)
                ),
                "ZRANGE dst 0 -1 WITHSCORES".into(),
            ]
        }
        12 => {
            let t = tail(r, true);
            let ro = r.pick(&["", "_RO"]);
            vec![format!(
                "GEORADIUSBYMEMBER{ro} {key} {m} {} {}{t}",
                size(r),
                unit(r)
            )]
        }
        _ => vec![format!("ZREM {key} {m}")],
    }
}

#[test]
fn random_geo_sequences_match_redis_server() {
    let mut pair = Pair::start();
    let mut failures = Vec::new();
    for (seed, proto) in [
        (0x9e37_79b9_7f4a_7c15u64, "2"),
        (0x0bad_cafe_1234_5678, "3"),
    ] {
        let mut r = Rng(seed);
        let mut script = format!("FLUSHALL\n!HELLO {proto}\nSET str v\n");
        for _ in 0..400 {
            for line in geo_command(&mut r) {
                script.push_str(&line);
                script.push('\n');
            }
        }
        script.push_str("ZRANGE g1 0 -1 WITHSCORES\nZRANGE g2 0 -1 WITHSCORES\n");
        failures.extend(pair.compare(&script));
    }
    assert_none(&failures);
}

fn geo_state(c: &mut redis::Connection) -> String {
    let mut out = String::new();
    for k in ["g1", "g2", "dst", "dst2", "dst3"] {
        let v: Vec<(String, String)> = redis::cmd("ZRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(c)
            .unwrap();
        out.push_str(&format!("{k}: {v:?}\n"));
    }
    out
}

#[test]
fn replica_and_restarted_node_hold_the_masters_geo_sets() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    let to = format!("127.0.0.1:{}", master.port);
    let replica = NodeProc::start(&dir.path().join("r"), &["--replicaof", &to]);
    let mut c = master.client();
    let mut r = Rng(42);
    for i in 0..200 {
        let key = if i % 3 == 0 { "g2" } else { "g1" };
        let (lon, lat) = (r.float(-180.0, 180.0), r.float(-85.0, 85.0));
        let m = if key == "g2" { i } else { r.below(150) };
        let _: redis::Value = redis::cmd("GEOADD")
            .arg(key)
            .arg(lon)
            .arg(lat)
            .arg(format!("m{m}"))
            .query(&mut c)
            .unwrap();
    }
    for q in [
        "GEOSEARCHSTORE dst g1 FROMLONLAT 10 10 BYRADIUS 3000 km STOREDIST",
        "GEORADIUS g1 -30 20 4000 km STORE dst2 COUNT 5",
        "GEORADIUSBYMEMBER g2 m3 5000 km STOREDIST dst3",
        "GEORADIUS g1 0 0 1 m STORE dst3",
        "GEOSEARCHSTORE dst3 g2 FROMLONLAT 100 -20 BYBOX 9000 4000 km COUNT 3 ANY",
    ] {
        let args: Vec<&str> = q.split(' ').collect();
        let _: redis::Value = redis::cmd(args[0]).arg(&args[1..]).query(&mut c).unwrap();
    }
    let want = geo_state(&mut c);
    assert!(
        want.contains("dst: [(\""),
        "the searches stored nothing: {want}"
    );
    let mut rc = replica.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while geo_state(&mut rc) != want {
        assert!(
            Instant::now() < deadline,
            "replica differs:\n{}",
            geo_state(&mut rc)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    master.kill9();
    let restarted = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    assert_eq!(geo_state(&mut restarted.client()), want, "after log replay");
    let _: redis::Value = redis::cmd("SAVE").query(&mut restarted.client()).unwrap();
    drop(restarted);
    let again = NodeProc::start(&dir.path().join("m"), &["--appendfsync", "always"]);
    assert_eq!(geo_state(&mut again.client()), want, "after the snapshot");
}
