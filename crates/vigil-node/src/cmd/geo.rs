//! Geo commands: a geo set is a sorted set whose scores are 52-bit geohashes
//! ([`crate::db::geohash`]), so every sorted-set command works on it too.
//!
//! GEOADD is ZADD with computed scores and is propagated as that ZADD, as Redis does. The
//! searches (GEOSEARCH, GEORADIUS and friends) live in [`super::geo_search`].

use bytes::Bytes;
use vigil_resp::{Args, CmdError, CommandMeta, Reply};

use super::geo_search::{Variant, coord_reply, lon_lat, search, unit};
use crate::ctx::{Ctx, int_arg};
use crate::db::geohash;
use crate::node::{Handler, row};

/// The geo family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "geoadd",
            -5,
            [WRITE, DENYOOM],
            1,
            1,
            1,
            "geo",
            "Adds points (longitude, latitude, member) to a geo set.",
            Data(geoadd)
        ),
        row!(
            "geodist",
            -4,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Returns the distance between two members.",
            Data(geodist)
        ),
        row!(
            "geohash",
            -2,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Returns members' positions as standard geohash strings.",
            Data(geohash_cmd)
        ),
        row!(
            "geopos",
            -2,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Returns members' longitude and latitude.",
            Data(geopos)
        ),
        row!(
            "georadius",
            -6,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "geo",
            "Members within a radius of a point; may STORE them.",
            Data(|c, a| search(c, a, Variant::Radius { store: true })),
            keys = vigil_resp::keys::georadius
        ),
        row!(
            "georadius_ro",
            -6,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Members within a radius of a point.",
            Data(|c, a| search(c, a, Variant::Radius { store: false }))
        ),
        row!(
            "georadiusbymember",
            -5,
            [WRITE, DENYOOM, MOVABLEKEYS],
            1,
            1,
            1,
            "geo",
            "Members within a radius of a member; may STORE them.",
            Data(|c, a| search(c, a, Variant::ByMember { store: true })),
            keys = vigil_resp::keys::georadiusbymember
        ),
        row!(
            "georadiusbymember_ro",
            -5,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Members within a radius of a member.",
            Data(|c, a| search(c, a, Variant::ByMember { store: false }))
        ),
        row!(
            "geosearch",
            -7,
            [READONLY],
            1,
            1,
            1,
            "geo",
            "Members inside a circle or a box.",
            Data(|c, a| search(c, a, Variant::Search))
        ),
        row!(
            "geosearchstore",
            -8,
            [WRITE, DENYOOM],
            1,
            2,
            1,
            "geo",
            "Stores the members inside a circle or a box.",
            Data(|c, a| search(c, a, Variant::SearchStore))
        ),
    ]
}

fn geoadd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let mut zadd = vec![Bytes::from_static(b"zadd"), key];
    let (mut nx, mut xx) = (false, false);
    while let Some(p) = args.peek() {
        match &p.to_ascii_lowercase()[..] {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"ch" => {}
            _ => break,
        }
        zadd.extend(args.next());
    }
    let rest = args.rest();
    if !rest.len().is_multiple_of(3) || (nx && xx) {
        return Err(CmdError::Syntax);
    }
    for p in rest.chunks(3) {
        let (lon, lat) = lon_lat(&p[0], &p[1])?;
        let score = geohash::score_of(lon, lat).unwrap_or(0);
        zadd.push(int_arg(score as i64));
        zadd.push(p[2].clone());
    }
    let reply = super::zsets::zadd(ctx, &mut Args::new(zadd.clone()))?;
    ctx.propagate(zadd);
    Ok(reply)
}

fn geodist(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let (key, a, b) = (args.bytes()?, args.bytes()?, args.bytes()?);
    if args.remaining() > 1 {
        return Err(CmdError::Syntax);
    }
    let to_m = match args.next() {
        Some(u) => unit(&u)?,
        None => 1.0,
    };
    let Some(z) = ctx.get_zset(&key)? else {
        return Ok(Reply::Nil);
    };
    let (Some(sa), Some(sb)) = (z.score(&a), z.score(&b)) else {
        return Ok(Reply::Nil);
    };
    let (Some((lon1, lat1)), Some((lon2, lat2))) = (geohash::point_of(sa), geohash::point_of(sb))
    else {
        return Ok(Reply::Nil);
    };
    let d = geohash::distance(lon1, lat1, lon2, lat2) / to_m;
    Ok(Reply::bulk_string(geohash::format_distance(d)))
}

fn geohash_cmd(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let members = args.rest();
    let z = ctx.get_zset(&key)?;
    Ok(Reply::Array(
        members
            .iter()
            .map(|m| {
                z.as_ref()
                    .and_then(|z| z.score(m))
                    .and_then(geohash::hash_string)
                    .map_or(Reply::Nil, |h| Reply::bulk(&h))
            })
            .collect(),
    ))
}

fn geopos(ctx: &mut Ctx, args: &mut Args) -> Result<Reply, CmdError> {
    let key = args.bytes()?;
    let members = args.rest();
    let points: Vec<Option<(f64, f64)>> = match ctx.get_zset(&key)? {
        None => vec![None; members.len()],
        Some(z) => members
            .iter()
            .map(|m| z.score(m).and_then(geohash::point_of))
            .collect(),
    };
    Ok(Reply::Array(
        points
            .into_iter()
            .map(|p| match p {
                None => Reply::NilArray,
                Some((lon, lat)) => {
                    Reply::Array(vec![coord_reply(ctx, lon), coord_reply(ctx, lat)])
                }
            })
            .collect(),
    ))
}
