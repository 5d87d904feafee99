//! Checking a new parameter value as redis-server 7.0 does — its parsing, its bounds, its
//! error wording — and writing it back as `CONFIG GET` shows it.

use super::params::{Kind, MULTI, OOM_ADJ, Param};

impl Param {
    /// Checks a new value and returns it as `CONFIG GET` will show it, or Redis' reason for
    /// refusing it. `current` is the value now (client-output-buffer-limit changes only the
    /// classes it names).
    pub fn check(&self, value: &str, current: &str) -> Result<String, String> {
        let args: Vec<&str> = if self.has(MULTI) {
            value.split_ascii_whitespace().collect()
        } else {
            vec![value]
        };
        match self.kind {
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                "yes" => Ok("yes".into()),
                "no" => Ok("no".into()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            },
            Kind::Num {
                min,
                max,
                mem,
                pct,
                octal,
            } => {
                let n = parse_num(value, mem, pct, octal)?;
                if n < 0 && pct {
                    if n < min {
                        return Err(format!(
                            "percentage argument must be less or equal to {}",
                            -min
                        ));
                    }
                    return Ok(format!("{}%", -n));
                }
                if n < min || n > max {
                    return Err(if octal {
                        format!("argument must be between {min:o} and {max:o} inclusive")
                    } else {
                        format!("argument must be between {min} and {max} inclusive")
                    });
                }
                Ok(if octal {
                    format!("{n:o}")
                } else {
                    n.to_string()
                })
            }
            Kind::Enum(names) => {
                let v = value.to_ascii_lowercase();
                match names.iter().find(|n| **n == v) {
                    // `relative` shows as `yes`, its first name.
                    Some(&"relative") if std::ptr::eq(names, OOM_ADJ) => Ok("yes".into()),
                    Some(n) => Ok((*n).into()),
                    None => Err(enum_error(names)),
                }
            }
            Kind::Flags(names) => {
                let mut set = vec![false; names.len()];
                for a in &args {
                    let a = a.to_ascii_lowercase();
                    let i = names
                        .iter()
                        .position(|n| *n == a)
                        .ok_or_else(|| enum_error(names))?;
                    set[i] = true;
                }
                if set.get(1) == Some(&true) && set.get(2) == Some(&true) {
                    return Err(
                        "shutdown options SAVE and NOSAVE can't be used simultaneously".into(),
                    );
                }
                let on: Vec<&str> = (1..names.len())
                    .filter(|&i| set[i])
                    .map(|i| names[i])
                    .collect();
                Ok(if on.is_empty() {
                    names[0].into()
                } else {
                    on.join(" ")
                })
            }
            Kind::Str | Kind::Dir => Ok(value.into()),
            Kind::Save => check_save(&args),
            Kind::ObufLimits => check_obuf(&args, current),
            Kind::OomValues => {
                if args.len() != 3 {
                    return Err("wrong number of arguments".into());
                }
                let mut out = Vec::new();
                for a in args {
                    match a.parse::<i64>() {
                        Ok(v) if (-2000..=2000).contains(&v) => out.push(v.to_string()),
                        _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
                    }
                }
                Ok(out.join(" "))
            }
            Kind::Notify => check_notify(value),
            Kind::Percentiles => {
                if args.is_empty() {
                    return Ok(String::new());
                }
                let mut out = Vec::new();
                for a in args {
                    let v = vigil_resp::args::parse_float(a.as_bytes())
                        .filter(|v| !v.is_nan())
                        .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                    if !(0.0..=100.0).contains(&v) {
                        return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                    }
                    // "%f", trailing zeros cut.
                    let s = format!("{v:.6}");
                    out.push(s.trim_end_matches('0').trim_end_matches('.').to_string());
                }
                Ok(out.join(" "))
            }
        }
    }
}

fn enum_error(names: &[&str]) -> String {
    format!(
        "argument(s) must be one of the following: {}",
        names.join(", ")
    )
}

/// Redis' number parsing for numeric parameters: memory units, then `N%`, then octal, then a
/// plain integer (only where no unit or base applies).
fn parse_num(v: &str, mem: bool, pct: bool, octal: bool) -> Result<i128, String> {
    if mem && let Some(n) = parse_mem(v) {
        return Ok(n);
    }
    if pct
        && let Some(d) = v.strip_suffix('%')
        && let Ok(n) = vigil_resp::args::parse_int(d.as_bytes())
        && n >= 0
    {
        return Ok(-(n as i128));
    }
    if octal && let Ok(n) = i64::from_str_radix(v, 8) {
        return Ok(n as i128);
    }
    if !mem
        && !pct
        && !octal
        && let Ok(n) = vigil_resp::args::parse_int(v.as_bytes())
    {
        return Ok(n as i128);
    }
    Err(match (mem, pct, octal) {
        (true, true, _) => "argument must be a memory or percent value",
        (true, false, _) => "argument must be a memory value",
        (_, _, true) => "argument couldn't be parsed as an octal number",
        _ => "argument couldn't be parsed into an integer",
    }
    .into())
}

/// A memory value as Redis reads it: digits, then an optional unit (`b`, `k`=1000, `kb`=1024,
/// `m`, `mb`, `g`, `gb`); as a signed 64-bit value, the way Redis then bounds it.
fn parse_mem(v: &str) -> Option<i128> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1024 * 1024,
        "g" => 1_000_000_000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    let n: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    // Redis keeps the unsigned product in a signed `long long` before bounding it.
    Some(n.checked_mul(mul)? as i64 as i128)
}

fn check_save(args: &[&str]) -> Result<String, String> {
    let bad = || "Invalid save parameters".to_string();
    if !args.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut out = Vec::new();
    for (j, a) in args.iter().enumerate() {
        let v: i64 = if a.is_empty() {
            0
        } else {
            a.parse().map_err(|_| bad())?
        };
        if (j % 2 == 0 && v < 1) || v < 0 {
            return Err(bad());
        }
        out.push(v.to_string());
    }
    Ok(out.join(" "))
}

/// Client classes of client-output-buffer-limit, in the order Redis shows them.
const OBUF_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

fn check_obuf(args: &[&str], current: &str) -> Result<String, String> {
    let mut now: Vec<String> = current.split_ascii_whitespace().map(String::from).collect();
    if now.len() != 12 {
        now = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
            .split(' ')
            .map(String::from)
            .collect();
    }
    if args.is_empty() || !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for chunk in args.chunks(4) {
        let class = match chunk[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into());
            }
        };
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let hard = parse_mem(chunk[1])
            .filter(|_| !chunk[1].starts_with('-'))
            .ok_or(bad())?;
        let soft = parse_mem(chunk[2])
            .filter(|_| !chunk[2].starts_with('-'))
            .ok_or(bad())?;
        let secs: i64 = chunk[3].parse().map_err(|_| bad())?;
        if secs < 0 {
            return Err(bad().into());
        }
        now[class * 4 + 1] = hard.to_string();
        now[class * 4 + 2] = soft.to_string();
        now[class * 4 + 3] = secs.to_string();
    }
    for (i, c) in OBUF_CLASSES.iter().enumerate() {
        now[i * 4] = (*c).into();
    }
    Ok(now.join(" "))
}

fn check_notify(v: &str) -> Result<String, String> {
    // Letters in the order Redis shows them; `A` stands for all of the first group but `m`.
    const CLASSES: &str = "g$lshzxetdn";
    let mut on = std::collections::BTreeSet::new();
    for c in v.chars() {
        match c {
            'A' => on.extend("g$lshzxetd".chars()),
            c if CLASSES.contains(c) || "KEm".contains(c) => {
                on.insert(c);
            }
            _ => return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        }
    }
    let mut out = String::new();
    if "g$lshzxetd".chars().all(|c| on.contains(&c)) {
        out.push('A');
        if on.contains(&'n') {
            out.push('n');
        }
    } else {
        out.extend(CLASSES.chars().filter(|c| on.contains(c)));
    }
    out.extend("KEm".chars().filter(|c| on.contains(c)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::params::{PARAMS, lookup};

    #[test]
    fn names_are_unique_and_defaults_valid() {
        let mut seen = std::collections::HashSet::new();
        for (i, p) in PARAMS.iter().enumerate() {
            assert!(seen.insert(p.name), "#{i} {}", p.name);
            if let Some(a) = p.alias {
                assert!(seen.insert(a), "#{i} {a}");
            }
            if !matches!(p.kind, Kind::Dir) {
                let got = p.check(p.default, p.default);
                assert_eq!(got.as_deref(), Ok(p.default), "#{i} {}", p.name);
            }
        }
    }

    #[test]
    fn values_are_checked_and_shown_as_redis_does() {
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("maxmemory", "1mb", Ok("1048576")),
            ("maxmemory", "-1", Err("argument must be a memory value")),
            ("maxmemory-clients", "10%", Ok("10%")),
            (
                "maxmemory-clients",
                "101%",
                Err("percentage argument must be less or equal to 100"),
            ),
            (
                "hz",
                "x",
                Err("argument couldn't be parsed into an integer"),
            ),
            (
                "active-expire-effort",
                "11",
                Err("argument must be between 1 and 10 inclusive"),
            ),
            (
                "activerehashing",
                "maybe",
                Err("argument must be 'yes' or 'no'"),
            ),
            ("appendfsync", "ALWAYS", Ok("always")),
            (
                "loglevel",
                "x",
                Err("argument(s) must be one of the following: debug, verbose, notice, warning"),
            ),
            ("oom-score-adj", "relative", Ok("yes")),
            ("shutdown-on-sigterm", "save now", Ok("save now")),
            (
                "shutdown-on-sigterm",
                "save nosave",
                Err("shutdown options SAVE and NOSAVE can't be used simultaneously"),
            ),
            ("save", "100 10 20 1", Ok("100 10 20 1")),
            ("save", "100", Err("Invalid save parameters")),
            ("notify-keyspace-events", "KEA", Ok("AKE")),
            ("notify-keyspace-events", "Ex", Ok("xE")),
            (
                "notify-keyspace-events",
                "Q",
                Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
            ),
            (
                "client-output-buffer-limit",
                "pubsub 1mb 2mb 3",
                Ok("normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 2097152 3"),
            ),
            ("unixsocketperm", "777", Ok("777")),
            (
                "latency-tracking-info-percentiles",
                "50 99.90",
                Ok("50 99.9"),
            ),
        ];
        for (i, (name, v, want)) in cases.iter().enumerate() {
            let p = lookup(name).unwrap();
            let got = p.check(v, p.default);
            assert_eq!(
                got,
                want.map(String::from).map_err(String::from),
                "#{i} {name}"
            );
        }
    }
}
