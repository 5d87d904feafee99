//! The geo searches: GEOSEARCH, GEOSEARCHSTORE, GEORADIUS[_RO], GEORADIUSBYMEMBER[_RO].
//!
//! One routine, as in Redis, so the options, their checks and their error order are shared.
//! The search scans the nine cells [`Search::cells`] picks, in their order, keeping members
//! inside the shape; without ASC/DESC (and without COUNT) results come back in that scan
//! order. STORE variants are propagated as received: the search is deterministic, so a
//! replica or the log replay computes the same set. The argument helpers the other geo
//! commands share (point, unit, coordinate reply) live here too.

use std::cmp::Ordering;

use bytes::Bytes;
use vigil_resp::args::{parse_float, parse_int};
use vigil_resp::{Args, CmdError, Reply};

use super::sort::pqsort;
use crate::ctx::Ctx;
use crate::db::geohash::{self, LAT_MAX, LAT_MIN, LONG_MAX, LONG_MIN, Search, Shape};
use crate::db::zset::ScoreBound;
use crate::db::{Key, Value, ZSet};

/// Which command runs the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Variant {
    /// GEORADIUS (`store`: STORE/STOREDIST accepted) or GEORADIUS_RO.
    Radius {
        /// Whether STORE and STOREDIST are accepted.
        store: bool,
    },
    /// GEORADIUSBYMEMBER or its _RO form.
    ByMember {
        /// Whether STORE and STOREDIST are accepted.
        store: bool,
    },
    /// GEOSEARCH.
    Search,
    /// GEOSEARCHSTORE.
    SearchStore,
}

impl Variant {
    fn is_search(self) -> bool {
        matches!(self, Variant::Search | Variant::SearchStore)
    }

    fn accepts_store(self) -> bool {
        matches!(
            self,
            Variant::Radius { store: true } | Variant::ByMember { store: true }
        )
    }
}

/// Parses a longitude and latitude, refusing points a geo set cannot index.
pub(crate) fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = parse_float(lon).ok_or(CmdError::NotFloat)?;
    let lat = parse_float(lat).ok_or(CmdError::NotFloat)?;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(CmdError::msg(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per unit of a unit name.
pub(crate) fn unit(u: &[u8]) -> Result<f64, CmdError> {
    Ok(match &u.to_ascii_lowercase()[..] {
        b"m" => 1.0,
        b"km" => 1000.0,
        b"ft" => 0.3048,
        b"mi" => 1609.34,
        _ => {
            return Err(CmdError::msg(
                "ERR unsupported unit provided. please use M, KM, FT, MI",
            ));
        }
    })
}

/// A coordinate reply: a bulk string in RESP2, a double carrying the same 17-decimal text
/// in RESP3 (Redis prints it with `%.17Lf`, not with the shortest double form).
pub(crate) fn coord_reply(ctx: &Ctx, d: f64) -> Reply {
    let text = geohash::format_coord(d);
    if ctx.in_script {
        // Scripts see a number either way; the text matters only on the wire.
        return if ctx.resp3 {
            Reply::Double(d)
        } else {
            Reply::bulk_string(text)
        };
    }
    if ctx.resp3 {
        Reply::Encoded(Bytes::from(format!(",{text}\r\n")))
    } else {
        Reply::bulk_string(text)
    }
}

/// One member found inside the shape.
struct Found {
    member: Key,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

#[derive(Default)]
struct Opts {
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    any: bool,
    /// `Some(true)`: ASC; `Some(false)`: DESC.
    asc: Option<bool>,
    count: i64,
    store: Option<Bytes>,
    storedist: bool,
    from: bool,
    by: bool,
}

fn err(s: &str) -> CmdError {
    CmdError::msg(format!("ERR {s}"))
}

fn distance_arg(r: &[u8], u: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = parse_float(r).ok_or_else(|| err("need numeric radius"))?;
    if r < 0.0 {
        return Err(err("radius cannot be negative"));
    }
    Ok((r, unit(u)?))
}

fn box_arg(w: &[u8], h: &[u8], u: &[u8]) -> Result<(f64, f64, f64), CmdError> {
    let w = parse_float(w).ok_or_else(|| err("need numeric width"))?;
    let h = parse_float(h).ok_or_else(|| err("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(err("height or width cannot be negative"));
    }
    Ok((w, h, unit(u)?))
}

/// A member's position in the source set, or Redis' error for a missing one.
fn member_point(ctx: &mut Ctx, src: &[u8], member: &[u8]) -> Result<(f64, f64), CmdError> {
    ctx.get_zset(src)?
        .and_then(|z| z.score(member))
        .and_then(geohash::point_of)
        .ok_or_else(|| err("could not decode requested zset member"))
}

/// Runs one of the search commands.
pub(crate) fn search(ctx: &mut Ctx, args: &mut Args, v: Variant) -> Result<Reply, CmdError> {
    let name = String::from_utf8_lossy(args.name()).into_owned();
    // argv[i] of Redis is a[i - 1].
    let a = args.rest();
    let arg = |i: usize| a.get(i - 1).cloned().ok_or(CmdError::Syntax);
    let src = arg(if v == Variant::SearchStore { 2 } else { 1 })?;
    let exists = ctx.get_zset(&src)?.is_some();
    // Redis reads the key once: the lookups that follow are not keyspace hits.
    ctx.reads = false;
    let mut o = Opts::default();
    let mut centre = (0.0, 0.0);
    let mut shape = Shape::Radius(0.0);
    let mut to_m = 1.0;
    let base = match v {
        Variant::Radius { .. } => {
            centre = lon_lat(&arg(2)?, &arg(3)?)?;
            let (r, u) = distance_arg(&arg(4)?, &arg(5)?)?;
            (shape, to_m) = (Shape::Radius(r), u);
            6
        }
        Variant::ByMember { .. } if !exists => 5,
        Variant::ByMember { .. } => {
            centre = member_point(ctx, &src, &arg(2)?)?;
            let (r, u) = distance_arg(&arg(3)?, &arg(4)?)?;
            (shape, to_m) = (Shape::Radius(r), u);
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => {
            o.store = Some(arg(1)?);
            3
        }
    };
    let (mut fromloc, mut frommember, mut byradius, mut bybox) = (false, false, false, false);
    let argc = a.len() + 1;
    let mut i = base;
    while i < argc {
        let left = argc - i - 1;
        let opt = arg(i)?.to_ascii_lowercase();
        match &opt[..] {
            b"withdist" => o.withdist = true,
            b"withhash" => o.withhash = true,
            b"withcoord" => o.withcoord = true,
            b"any" => o.any = true,
            b"asc" => o.asc = Some(true),
            b"desc" => o.asc = Some(false),
            b"count" if left >= 1 => {
                o.count = parse_int(&arg(i + 1)?)?;
                if o.count <= 0 {
                    return Err(err("COUNT must be > 0"));
                }
                i += 1;
            }
            b"store" | b"storedist" if left >= 1 && v.accepts_store() => {
                o.store = Some(arg(i + 1)?);
                o.storedist = opt == b"storedist";
                i += 1;
            }
            b"storedist" if v == Variant::SearchStore => o.storedist = true,
            b"frommember" if left >= 1 && v.is_search() && !fromloc => {
                if exists {
                    centre = member_point(ctx, &src, &arg(i + 1)?)?;
                }
                frommember = true;
                i += 1;
            }
            b"fromlonlat" if left >= 2 && v.is_search() && !frommember => {
                centre = lon_lat(&arg(i + 1)?, &arg(i + 2)?)?;
                fromloc = true;
                i += 2;
            }
            b"byradius" if left >= 2 && v.is_search() && !bybox => {
                let (r, u) = distance_arg(&arg(i + 1)?, &arg(i + 2)?)?;
                (shape, to_m) = (Shape::Radius(r), u);
                byradius = true;
                i += 2;
            }
            b"bybox" if left >= 3 && v.is_search() && !byradius => {
                let (w, h, u) = box_arg(&arg(i + 1)?, &arg(i + 2)?, &arg(i + 3)?)?;
                (shape, to_m) = (Shape::Box(w, h), u);
                bybox = true;
                i += 3;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    o.from = fromloc || frommember;
    o.by = byradius || bybox;
    check(&o, v, &name)?;
    if !exists {
        return Ok(match o.store {
            Some(dst) => {
                ctx.delete(&dst);
                Reply::Int(0)
            }
            None => Reply::Array(vec![]),
        });
    }
    // COUNT alone means "the closest n", so it sorts (ANY takes the first n found instead).
    if o.count != 0 && o.asc.is_none() && !o.any {
        o.asc = Some(true);
    }
    let area = Search {
        lon: centre.0,
        lat: centre.1,
        shape,
        to_m,
    };
    let limit = if o.any { o.count as usize } else { 0 };
    let mut found = match ctx.get_zset(&src)? {
        Some(z) => scan(z, &area, limit),
        None => Vec::new(),
    };
    if found.is_empty() && o.store.is_none() {
        return Ok(Reply::Array(vec![]));
    }
    let n = if o.count == 0 {
        found.len()
    } else {
        found.len().min(o.count as usize)
    };
    if let Some(asc) = o.asc {
        let by_dist = |x: &Found, y: &Found| {
            let c = x.dist.partial_cmp(&y.dist).unwrap_or(Ordering::Equal);
            if asc { c } else { c.reverse() }
        };
        if n == found.len() {
            found.sort_by(by_dist);
        } else {
            // Only the first `n` matter: Redis' partial sort, whose ties are its own.
            pqsort(&mut found, &by_dist, 0, n - 1);
        }
    }
    found.truncate(n);
    for f in &mut found {
        f.dist /= to_m;
    }
    match o.store {
        Some(dst) => {
            let event = if v == Variant::SearchStore {
                "geosearchstore"
            } else {
                "georadiusstore"
            };
            Ok(store(ctx, &dst, found, o.storedist, event))
        }
        None => Ok(reply(ctx, found, &o)),
    }
}

/// The option checks Redis makes after parsing, in its order.
fn check(o: &Opts, v: Variant, name: &str) -> Result<(), CmdError> {
    if o.store.is_some() && (o.withdist || o.withhash || o.withcoord) {
        let who = if v == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(err(&format!(
            "{who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    if v.is_search() && !o.from {
        return Err(err(&format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if v.is_search() && !o.by {
        return Err(err(&format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if o.any && o.count == 0 {
        return Err(err("the ANY argument requires COUNT argument"));
    }
    Ok(())
}

/// Members of the nine cells inside the shape, in scan order; stops at `limit` (0: none).
fn scan(z: &ZSet, area: &Search, limit: usize) -> Vec<Found> {
    let cells = area.cells();
    let mut out = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // Huge radii make neighbours coincide; Redis skips a repeat of the previous cell
        // (though never a repeat of the centre cell).
        if let Some(l) = last
            && l != 0
            && cells[l] == *cell
        {
            continue;
        }
        if limit > 0 && out.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let lo = ScoreBound {
            value: min as f64,
            exclusive: false,
        };
        let hi = ScoreBound {
            value: max as f64,
            exclusive: true,
        };
        for (score, member) in z.range_by_score(lo, hi) {
            if let Some((lon, lat)) = geohash::point_of(score.0)
                && let Some(dist) = area.distance_if_inside(lon, lat)
            {
                out.push(Found {
                    member: Key::from(member),
                    lon,
                    lat,
                    dist,
                    score: score.0,
                });
            }
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
        last = Some(i);
    }
    out
}

fn reply(ctx: &Ctx, found: Vec<Found>, o: &Opts) -> Reply {
    let plain = !(o.withdist || o.withhash || o.withcoord);
    Reply::Array(
        found
            .into_iter()
            .map(|f| {
                if plain {
                    return Reply::bulk(&f.member);
                }
                let mut item = vec![Reply::bulk(&f.member)];
                if o.withdist {
                    item.push(Reply::bulk_string(geohash::format_distance(f.dist)));
                }
                if o.withhash {
                    item.push(Reply::Int(f.score as i64));
                }
                if o.withcoord {
                    item.push(Reply::Array(vec![
                        coord_reply(ctx, f.lon),
                        coord_reply(ctx, f.lat),
                    ]));
                }
                Reply::Array(item)
            })
            .collect(),
    )
}

fn store(
    ctx: &mut Ctx,
    dst: &[u8],
    found: Vec<Found>,
    storedist: bool,
    event: &'static str,
) -> Reply {
    let n = found.len();
    if n == 0 {
        if ctx.delete(dst) {
            ctx.notify(crate::db::notify::GENERIC, "del", dst);
        }
        return Reply::Int(0);
    }
    let limits = ctx.store.thresholds.zset();
    let mut z = ZSet::default();
    for f in found {
        z.insert(&f.member, if storedist { f.dist } else { f.score }, limits);
    }
    ctx.exists_write(dst);
    let db = ctx.db();
    db.set(dst, Value::ZSet(z), false);
    db.touch(dst);
    ctx.changed(n as u64);
    ctx.notify(crate::db::notify::ZSET, event, dst);
    Reply::Int(n as i64)
}
