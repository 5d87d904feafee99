//! SLOWLOG and LATENCY: reading the slow log and the latency events the node records
//! ([`crate::slowlog`]).

use bytes::Bytes;
use vigil_resp::args::lossy_lower;
use vigil_resp::command::bad_subcommand;
use vigil_resp::{Args, CommandMeta, Conn, Reply};

use crate::node::{Handler, Node, row};
use crate::session::ConnState;

/// The monitoring family's rows.
pub fn commands() -> Vec<(CommandMeta, Handler)> {
    vec![
        row!(
            "slowlog",
            -2,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "Reads or clears the log of slow commands.",
            Node(slowlog)
        ),
        row!(
            "latency",
            -2,
            [ADMIN, STALE],
            0,
            0,
            0,
            "server",
            "Reports latency events above the monitor's threshold.",
            Node(latency)
        ),
    ]
}

/// `<CMD> <subcommand> ...` help: Redis' header, the lines, and its closing HELP entry.
pub fn help(cmd: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::Simple(
        format!("{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").into(),
    )];
    out.extend(lines.iter().map(|l| Reply::Simple(l.to_string().into())));
    out.push(Reply::simple("HELP"));
    out.push(Reply::simple("    Prints this help."));
    Reply::Array(out)
}

fn slowlog(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let n = args.remaining();
    let r = match (lossy_lower(&raw).as_str(), n) {
        ("help", 0) => help(
            "SLOWLOG",
            &[
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ],
        ),
        ("reset", 0) => {
            node.slowlog.slow_reset();
            Reply::ok()
        }
        ("len", 0) => Reply::Int(node.slowlog.slow_len() as i64),
        ("get", 0 | 1) => {
            let count = match args.next() {
                None => Ok(10),
                Some(c) => match vigil_resp::args::parse_int(&c) {
                    Ok(-1) => Ok(usize::MAX),
                    Ok(c) if c >= 0 => Ok(c as usize),
                    _ => Err(Reply::error(
                        "ERR count should be greater than or equal to -1",
                    )),
                },
            };
            match count {
                Err(e) => e,
                Ok(count) => Reply::Array(
                    node.slowlog
                        .slow_entries(count)
                        .into_iter()
                        .map(|e| {
                            Reply::Array(vec![
                                Reply::Int(e.id as i64),
                                Reply::Int(e.time),
                                Reply::Int(e.micros as i64),
                                Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                                Reply::bulk_string(e.addr),
                                Reply::Bulk(e.name),
                            ])
                        })
                        .collect(),
                ),
            }
        }
        _ => bad_subcommand("slowlog", &raw, &["help", "reset", "len", "get"]),
    };
    conn.reply(r);
}

fn latency(node: &Node, conn: &mut Conn<ConnState>, mut args: Args) {
    let raw = args.next().unwrap_or_default();
    let rest = args.rest();
    let events = node.slowlog.latency_events();
    let r = match (lossy_lower(&raw).as_str(), rest.len()) {
        ("history", 1) => {
            let name = String::from_utf8_lossy(&rest[0]);
            Reply::Array(events.get(&*name).map_or(vec![], |s| {
                s.samples
                    .iter()
                    .map(|&(t, ms)| Reply::Array(vec![Reply::Int(t), Reply::Int(ms as i64)]))
                    .collect()
            }))
        }
        ("graph", 1) => {
            let name = String::from_utf8_lossy(&rest[0]);
            match events.get(&*name) {
                Some(s) => Reply::Verbatim(Bytes::from(graph(&name, s))),
                None => Reply::error(format!("ERR No samples available for event '{name}'")),
            }
        }
        ("latest", 0) => Reply::Array(
            events
                .iter()
                .filter_map(|(name, s)| {
                    let &(t, ms) = s.samples.back()?;
                    Some(Reply::Array(vec![
                        Reply::bulk_string(name.clone()),
                        Reply::Int(t),
                        Reply::Int(ms as i64),
                        Reply::Int(s.max as i64),
                    ]))
                })
                .collect(),
        ),
        ("doctor", 0) => Reply::Verbatim(Bytes::from(doctor(node, &events))),
        ("reset", _) => Reply::Int(node.slowlog.latency_reset(&rest) as i64),
        ("histogram", _) => {
            let stats = if rest.is_empty() {
                node.cmdstats.all()
            } else {
                node.cmdstats.some(&rest)
            };
            // Only commands that ran have a latency (refused ones count in INFO only).
            Reply::Map(
                stats
                    .into_iter()
                    .filter(|s| s.calls > 0)
                    .map(|s| {
                        let cdf = s
                            .cdf
                            .iter()
                            .map(|&(us, n)| (Reply::Int(us as i64), Reply::Int(n as i64)))
                            .collect();
                        let body = Reply::Map(vec![
                            (Reply::bulk_static("calls"), Reply::Int(s.calls as i64)),
                            (Reply::bulk_static("histogram_usec"), Reply::Map(cdf)),
                        ]);
                        (Reply::bulk_static(s.name), body)
                    })
                    .collect(),
            )
        }
        ("help", 0) => help(
            "LATENCY",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
            ],
        ),
        _ => bad_subcommand(
            "latency",
            &raw,
            &[
                "history",
                "graph",
                "latest",
                "doctor",
                "reset",
                "histogram",
                "help",
            ],
        ),
    };
    conn.reply(r);
}

/// A text graph of an event's samples: one column per sample, `#` up to its height.
fn graph(name: &str, s: &crate::slowlog::Series) -> String {
    let (lo, hi) = s
        .samples
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), &(_, ms)| (lo.min(ms), hi.max(ms)));
    let mut out = format!(
        "{name} - high {hi} ms, low {lo} ms (all time high {} ms)\n",
        s.max
    );
    out.push_str(&"-".repeat(80));
    out.push('\n');
    const ROWS: u64 = 4;
    for row in (1..=ROWS).rev() {
        for &(_, ms) in &s.samples {
            let h = if hi == lo {
                ROWS
            } else {
                1 + (ms - lo) * (ROWS - 1) / (hi - lo)
            };
            out.push(if h >= row { '#' } else { ' ' });
        }
        out.push('\n');
    }
    let now = vigil_base::clock::unix_ms() / 1000;
    for &(t, _) in &s.samples {
        let ago = (now - t).max(0);
        out.push_str(&match ago {
            0..60 => format!("{ago}s"),
            60..3600 => format!("{}m", ago / 60),
            _ => format!("{}h", ago / 3600),
        });
        out.push(' ');
    }
    out.push('\n');
    out
}

/// A short human report on the recorded events.
fn doctor(
    node: &Node,
    events: &std::collections::BTreeMap<String, crate::slowlog::Series>,
) -> String {
    let threshold = node.config.read().redis_int("latency-monitor-threshold");
    if events.is_empty() {
        return if threshold == 0 {
            "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Vigil instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n".into()
        } else {
            "Dave, no latency spike was observed during the lifetime of this Vigil instance, not in the slightest bit.\n".into()
        };
    }
    let mut out = String::from("Dave, I have observed latency spikes in this Vigil instance.\n\n");
    for (i, (name, s)) in events.iter().enumerate() {
        let n = s.samples.len().max(1) as u64;
        let avg = s.samples.iter().map(|x| x.1).sum::<u64>() / n;
        out.push_str(&format!(
            "{}. {name}: {} latency spikes (average {avg}ms, worst {}ms).\n",
            i + 1,
            s.samples.len(),
            s.max
        ));
    }
    out.push_str("\nI have no advice for you: check the slow log (SLOWLOG GET) for the commands behind them.\n");
    out
}
