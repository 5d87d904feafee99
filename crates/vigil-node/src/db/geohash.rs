//! Geohashes as Redis stores them: a point's score in a geo set is its 52-bit interleaved
//! geohash (26 steps of longitude and latitude bits, latitude limited to ±85.05112878, the
//! Web-Mercator bounds), plus the arithmetic a radius or box search needs: the step estimate,
//! the 3×3 block of cells around the centre, the haversine distance.
//!
//! Every formula follows Redis 7.0's operation order exactly (same constants, same rounding),
//! because scores, cell choices and distances are observable and must equal redis-server's.

/// Bits of precision per coordinate of a stored score.
pub const STEP_MAX: u8 = 26;
/// Smallest longitude.
pub const LONG_MIN: f64 = -180.0;
/// Largest longitude.
pub const LONG_MAX: f64 = 180.0;
/// Smallest latitude that can be indexed.
pub const LAT_MIN: f64 = -85.05112878;
/// Largest latitude that can be indexed.
pub const LAT_MAX: f64 = 85.05112878;
/// Earth's quadratic mean radius (WGS-84), the one Redis uses for every distance.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// A cell: `step` bits per coordinate, interleaved (latitude in the even bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    /// The interleaved bits.
    pub bits: u64,
    /// Bits per coordinate; 0 with `bits == 0` is "no cell".
    pub step: u8,
}

impl Cell {
    /// Whether this is the "no cell" marker of a discarded neighbour.
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The score range `[min, max)` of the members inside this cell.
    pub fn score_range(&self) -> (u64, u64) {
        let shift = 52 - 2 * u32::from(self.step);
        (self.bits << shift, (self.bits + 1) << shift)
    }
}

/// Longitude and latitude bounds of a cell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Area {
    /// West edge.
    pub lon_min: f64,
    /// East edge.
    pub lon_max: f64,
    /// South edge.
    pub lat_min: f64,
    /// North edge.
    pub lat_max: f64,
}

fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

fn squeeze(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Encodes a point in the given ranges (`None` outside them, as Redis refuses to index it).
pub fn encode_in(
    lon_range: (f64, f64),
    lat_range: (f64, f64),
    lon: f64,
    lat: f64,
    step: u8,
) -> Option<Cell> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_range.0 || lat > lat_range.1 || lon < lon_range.0 || lon > lon_range.1 {
        return None;
    }
    let mut lat_off = (lat - lat_range.0) / (lat_range.1 - lat_range.0);
    let mut lon_off = (lon - lon_range.0) / (lon_range.1 - lon_range.0);
    let scale = (1u64 << step) as f64;
    lat_off *= scale;
    lon_off *= scale;
    // Truncation towards zero, as C's conversion of a non-negative double to uint32.
    Some(Cell {
        bits: spread(lat_off as u32) | (spread(lon_off as u32) << 1),
        step,
    })
}

/// Encodes a point in the geo-set ranges.
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Cell> {
    encode_in((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

/// The score a point gets in a geo set.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|c| c.bits << (52 - 2 * u32::from(STEP_MAX)))
}

/// The bounds of a cell in the geo-set ranges (`None` for the "no cell" marker).
pub fn decode(cell: Cell) -> Option<Area> {
    if cell.is_zero() {
        return None;
    }
    let ilat = squeeze(cell.bits);
    let ilon = squeeze(cell.bits >> 1);
    let div = (1u64 << cell.step) as f64;
    let (lat_scale, lon_scale) = (LAT_MAX - LAT_MIN, LONG_MAX - LONG_MIN);
    Some(Area {
        lat_min: LAT_MIN + (f64::from(ilat) / div) * lat_scale,
        lat_max: LAT_MIN + (f64::from(ilat.wrapping_add(1)) / div) * lat_scale,
        lon_min: LONG_MIN + (f64::from(ilon) / div) * lon_scale,
        lon_max: LONG_MIN + (f64::from(ilon.wrapping_add(1)) / div) * lon_scale,
    })
}

/// The point a stored score stands for (its cell's centre, clamped to the valid ranges).
pub fn point_of(score: f64) -> Option<(f64, f64)> {
    // Saturating like the C cast for every score a geo set can hold.
    let area = decode(Cell {
        bits: score as u64,
        step: STEP_MAX,
    })?;
    let lon = ((area.lon_min + area.lon_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.lat_min + area.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The standard 11-character geohash string of a stored score (re-encoded over ±90°).
pub fn hash_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = point_of(score)?;
    let bits = encode_in((-180.0, 180.0), (-90.0, 90.0), lon, lat, STEP_MAX).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, o) in out.iter_mut().enumerate().take(10) {
        *o = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    Some(out)
}

fn move_x(c: &mut Cell, d: i8) {
    let shift = 64 - 2 * u32::from(c.step);
    let x = c.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = c.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    let x = if d > 0 {
        x.wrapping_add(zz + 1)
    } else {
        (x | zz).wrapping_sub(zz + 1)
    };
    c.bits = (x & (0xaaaa_aaaa_aaaa_aaaau64 >> shift)) | y;
}

fn move_y(c: &mut Cell, d: i8) {
    let shift = 64 - 2 * u32::from(c.step);
    let x = c.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = c.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    let y = if d > 0 {
        y.wrapping_add(zz + 1)
    } else {
        (y | zz).wrapping_sub(zz + 1)
    };
    c.bits = x | (y & (0x5555_5555_5555_5555u64 >> shift));
}

fn moved(c: Cell, dx: i8, dy: i8) -> Cell {
    let mut n = c;
    if dx != 0 {
        move_x(&mut n, dx);
    }
    if dy != 0 {
        move_y(&mut n, dy);
    }
    n
}

/// The step whose cells are about as large as `radius_m` at `lat`.
pub fn estimate_step(radius_m: f64, lat: f64) -> u8 {
    if radius_m == 0.0 {
        return 26;
    }
    let mut r = radius_m;
    let mut step: i32 = 1;
    while r < MERCATOR_MAX {
        r *= 2.0;
        step += 1;
    }
    step -= 2;
    // Cells shrink towards the poles: widen them there.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// A search's shape: a circle or a box, in metres, around a centre.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// BYRADIUS: the radius in the request's unit.
    Radius(f64),
    /// BYBOX: width and height in the request's unit.
    Box(f64, f64),
}

/// A search: centre, shape, and metres per unit of the request.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    /// Longitude of the centre.
    pub lon: f64,
    /// Latitude of the centre.
    pub lat: f64,
    /// The shape.
    pub shape: Shape,
    /// Metres per unit.
    pub to_m: f64,
}

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

impl Search {
    /// `[min_lon, min_lat, max_lon, max_lat]` around the centre.
    fn bounds(&self) -> [f64; 4] {
        let (h, w) = match self.shape {
            Shape::Radius(r) => (self.to_m * r, self.to_m * r),
            Shape::Box(w, h) => (self.to_m * (h / 2.0), self.to_m * (w / 2.0)),
        };
        let lat_delta = rad_deg(h / EARTH_RADIUS_M);
        let top = rad_deg(w / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let bottom = rad_deg(w / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let d = if self.lat < 0.0 { bottom } else { top };
        [
            self.lon - d,
            self.lat - lat_delta,
            self.lon + d,
            self.lat + lat_delta,
        ]
    }

    /// The nine cells to scan, in Redis' order (centre, N, S, E, W, NE, NW, SE, SW); discarded
    /// neighbours are zero cells.
    pub fn cells(&self) -> [Cell; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.to_m;
        let mut step = estimate_step(radius, self.lat);
        let mut centre = encode(self.lon, self.lat, step).unwrap_or_default();
        let edge = |c: Cell, dx, dy| decode(moved(c, dx, dy)).unwrap_or_default();
        let too_coarse = edge(centre, 0, 1).lat_max < max_lat
            || edge(centre, 0, -1).lat_min > min_lat
            || edge(centre, 1, 0).lon_max < max_lon
            || edge(centre, -1, 0).lon_min > min_lon;
        if step > 1 && too_coarse {
            step -= 1;
            centre = encode(self.lon, self.lat, step).unwrap_or_default();
        }
        let area = decode(centre).unwrap_or_default();
        let at = |dx, dy| moved(centre, dx, dy);
        let mut n = [
            centre,
            at(0, 1),
            at(0, -1),
            at(1, 0),
            at(-1, 0),
            at(1, 1),
            at(-1, 1),
            at(1, -1),
            at(-1, -1),
        ];
        if step >= 2 {
            let zero = |n: &mut [Cell; 9], idx: [usize; 3]| {
                idx.iter().for_each(|&i| n[i] = Cell::default())
            };
            if area.lat_min < min_lat {
                zero(&mut n, [2, 8, 7]);
            }
            if area.lat_max > max_lat {
                zero(&mut n, [1, 5, 6]);
            }
            if area.lon_min < min_lon {
                zero(&mut n, [4, 8, 6]);
            }
            if area.lon_max > max_lon {
                zero(&mut n, [3, 7, 5]);
            }
        }
        n
    }

    /// The distance in metres from the centre to a point, if the point is inside the shape.
    pub fn distance_if_inside(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.to_m).then_some(d)
            }
            Shape::Box(w, h) => {
                let (w, h) = (w * self.to_m, h * self.to_m);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance in metres between two points.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// A distance with four decimals, rounded as Redis rounds it (`llrint` of the value × 10⁴).
pub fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even();
    if !v.is_finite() || v.abs() >= 9.2e18 {
        // Beyond what a distance on Earth can be; keep the output well-formed.
        return format!("{d:.4}");
    }
    let v = v as i64;
    let (sign, a) = if v < 0 {
        ("-", v.unsigned_abs())
    } else {
        ("", v as u64)
    };
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// A coordinate as Redis prints it for humans: 17 decimals, trailing zeros dropped.
pub fn format_coord(d: f64) -> String {
    let s = format!("{d:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palermo_scores_as_redis() {
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909));
        let (lon, lat) = point_of(3479099956230698.0).unwrap();
        assert_eq!(format_coord(lon), "13.36138933897018433");
        assert_eq!(format_coord(lat), "38.11555639549629859");
        assert_eq!(&hash_string(3479099956230698.0).unwrap(), b"sqc8b49rny0");
    }

    #[test]
    fn out_of_range_points_have_no_score() {
        assert_eq!(score_of(181.0, 0.0), None);
        assert_eq!(score_of(0.0, 86.0), None);
        assert!(score_of(180.0, LAT_MAX).is_some());
    }

    #[test]
    fn distances_format_as_redis() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(166274.1516 / 1000.0), "166.2742");
        assert_eq!(format_distance(-0.00004), "0.0000");
        assert_eq!(format_coord(-0.0), "0");
        assert_eq!(format_coord(1.5), "1.5");
    }

    #[test]
    fn neighbours_wrap_and_step_is_bounded() {
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(1e9, 0.0), 1);
        let s = Search {
            lon: 179.9,
            lat: 0.0,
            shape: Shape::Radius(1000.0),
            to_m: 1.0,
        };
        let cells = s.cells();
        assert!(!cells[0].is_zero());
    }
}
