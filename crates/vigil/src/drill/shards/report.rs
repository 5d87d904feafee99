//! What a sharded drill found: per round the fault, each shard's timings, the migration's
//! duration and write pause, and where the acknowledged keys are; rendered as a terminal
//! table, JSON and a self-contained HTML page.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::drill::report::{Spread, escape, ms};

/// One shard's view of a round.
#[derive(Debug, Clone, Serialize)]
pub struct ShardTiming {
    /// The group.
    pub group: String,
    /// Writes to its slots (as the round began) acknowledged during the round.
    pub writes_acked: u64,
    /// The longest time without an acknowledged write to its slots, from the last one before
    /// the fault.
    pub unavailable_ms: f64,
}

/// A migration a round asked for.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRun {
    /// Source group.
    pub from: String,
    /// Target group.
    pub to: String,
    /// Slots moved.
    pub slots: u32,
    /// From the request to no migration in flight.
    pub duration_ms: f64,
    /// The longest time without an acknowledged write to the moved slots (the pause as
    /// clients see it, plus any failover it waited for).
    pub write_pause_ms: f64,
    /// `completed` (every slot with the target), `rolled back` (every slot with the source)
    /// or `split`.
    pub outcome: String,
}

/// One round of a sharded drill.
#[derive(Debug, Clone, Serialize)]
pub struct ShardRound {
    /// 1-based.
    pub round: usize,
    /// What was done, in words.
    pub fault: String,
    /// The group whose master was hit, if one was.
    pub group: String,
    /// Its master before and after.
    pub old_master: String,
    /// Its master at the end of the round.
    pub new_master: String,
    /// Fault → the first write to its slots acknowledged by its new master.
    pub failover_ms: Option<f64>,
    /// The migration, for the migration scenarios.
    pub migration: Option<MigrationRun>,
    /// Per shard.
    pub shards: Vec<ShardTiming>,
    /// Writes acknowledged during the round.
    pub writes_acked: u64,
    /// Acknowledged writes on no master afterwards, first found missing in this round.
    pub acked_lost: u64,
    /// Keys (of the whole run so far) on two or more masters.
    pub duplicated: u64,
    /// Keys on a master whose group does not own their slot.
    pub misplaced: u64,
    /// The round passed.
    pub ok: bool,
    /// What went wrong, in words.
    pub problems: Vec<String>,
}

/// The whole sharded drill.
#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    /// The scenario.
    pub scenario: String,
    /// The sharded cluster's name.
    pub cluster: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// `sync` or `async`.
    pub mode: String,
    /// The groups' `down_after`, in milliseconds.
    pub down_after_ms: u64,
    /// Writer tasks (each writes the slots of one shard).
    pub writers: usize,
    /// When it started (wall clock, RFC 3339, for display).
    pub started: String,
    /// Each round.
    pub rounds: Vec<ShardRound>,
    /// Spreads and totals over the rounds.
    pub summary: ShardSummary,
    /// Every round ok.
    pub passed: bool,
}

/// Spreads and totals over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct ShardSummary {
    /// Of `failover_ms`.
    pub failover_ms: Option<Spread>,
    /// Of the migrations' `duration_ms`.
    pub migration_ms: Option<Spread>,
    /// Of the migrations' `write_pause_ms`.
    pub write_pause_ms: Option<Spread>,
    /// Of every shard's `unavailable_ms` that the fault did not hit.
    pub bystander_unavailable_ms: Option<Spread>,
    /// Sum of `writes_acked`.
    pub writes_acked: u64,
    /// Sum of `acked_lost`.
    pub acked_lost: u64,
    /// The last round's `duplicated`.
    pub duplicated: u64,
    /// The last round's `misplaced`.
    pub misplaced: u64,
    /// Refusals and errors the writers retried, by kind.
    pub retried: BTreeMap<String, u64>,
    /// Rounds that passed.
    pub rounds_ok: usize,
}

impl ShardSummary {
    /// Over `rounds`, with the writers' `retried` counts.
    pub fn of(rounds: &[ShardRound], retried: BTreeMap<String, u64>) -> ShardSummary {
        let migrations = || rounds.iter().filter_map(|r| r.migration.as_ref());
        let last = rounds.last();
        ShardSummary {
            failover_ms: Spread::of(rounds.iter().filter_map(|r| r.failover_ms)),
            migration_ms: Spread::of(migrations().map(|m| m.duration_ms)),
            write_pause_ms: Spread::of(migrations().map(|m| m.write_pause_ms)),
            bystander_unavailable_ms: Spread::of(rounds.iter().flat_map(|r| {
                let hit = |g: &str| {
                    g == r.group
                        || r.migration
                            .as_ref()
                            .is_some_and(|m| m.from == g || m.to == g)
                };
                r.shards
                    .iter()
                    .filter(move |s| !hit(&s.group))
                    .map(|s| s.unavailable_ms)
            })),
            writes_acked: rounds.iter().map(|r| r.writes_acked).sum(),
            acked_lost: rounds.iter().map(|r| r.acked_lost).sum(),
            duplicated: last.map_or(0, |r| r.duplicated),
            misplaced: last.map_or(0, |r| r.misplaced),
            retried,
            rounds_ok: rounds.iter().filter(|r| r.ok).count(),
        }
    }
}

fn result(x: &ShardRound) -> String {
    if x.ok {
        "ok".into()
    } else {
        format!("FAILED: {}", x.problems.join("; "))
    }
}

fn shard_cells(x: &ShardRound) -> String {
    x.shards
        .iter()
        .map(|s| format!("{} {:.0}", s.group, s.unavailable_ms))
        .collect::<Vec<_>>()
        .join(", ")
}

fn migration_cells(x: &ShardRound) -> [String; 2] {
    match &x.migration {
        Some(m) => [
            format!("{:.0} ({})", m.duration_ms, m.outcome),
            format!("{:.0}", m.write_pause_ms),
        ],
        None => ["-".into(), "-".into()],
    }
}

/// The terminal summary: one line per round, then the spreads and totals.
pub fn text(r: &ShardReport) -> String {
    let mut rows = vec![vec![
        "ROUND".to_string(),
        "FAULT".into(),
        "FAILOVER ms".into(),
        "MIGRATION ms".into(),
        "PAUSE ms".into(),
        "UNAVAILABLE ms BY SHARD".into(),
        "ACKED".into(),
        "LOST".into(),
        "IN 2 SHARDS".into(),
        "MISPLACED".into(),
        "RESULT".into(),
    ]];
    for x in &r.rounds {
        let [mig, pause] = migration_cells(x);
        rows.push(vec![
            x.round.to_string(),
            x.fault.clone(),
            ms(x.failover_ms),
            mig,
            pause,
            shard_cells(x),
            x.writes_acked.to_string(),
            x.acked_lost.to_string(),
            x.duplicated.to_string(),
            x.misplaced.to_string(),
            result(x),
        ]);
    }
    let s = &r.summary;
    let spread = |v: &Option<Spread>| {
        v.as_ref().map_or("-".into(), |v| {
            format!("p50 {:.0} / p99 {:.0} / max {:.0}", v.p50, v.p99, v.max)
        })
    };
    let retried: Vec<String> = s.retried.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "Sharded drill {} on {} ({} groups, {} mode, down_after {} ms, {} writers): {}\n{}\
         failover ms: {}\nmigration ms: {}\nwrite pause ms: {}\nunavailable ms of the shards not hit: {}\n\
         acknowledged {}, lost {}, in two shards {}, misplaced {}; retried: {}; {}/{} rounds ok\n",
        r.scenario,
        r.cluster,
        r.groups.len(),
        r.mode,
        r.down_after_ms,
        r.writers,
        if r.passed { "PASSED" } else { "FAILED" },
        crate::ctl::render::table(&rows),
        spread(&s.failover_ms),
        spread(&s.migration_ms),
        spread(&s.write_pause_ms),
        spread(&s.bystander_unavailable_ms),
        s.writes_acked,
        s.acked_lost,
        s.duplicated,
        s.misplaced,
        if retried.is_empty() {
            "none".into()
        } else {
            retried.join(", ")
        },
        s.rounds_ok,
        r.rounds.len(),
    )
}

/// A self-contained page (no network): the rounds as a table, the whole report as JSON.
pub fn html(r: &ShardReport) -> String {
    let rows: String = r
        .rounds
        .iter()
        .map(|x| {
            let [mig, pause] = migration_cells(x);
            let cells = [
                x.round.to_string(),
                x.fault.clone(),
                ms(x.failover_ms),
                mig,
                pause,
                shard_cells(x),
                x.writes_acked.to_string(),
                x.acked_lost.to_string(),
                x.duplicated.to_string(),
                x.misplaced.to_string(),
                result(x),
            ];
            let tds: String = cells
                .iter()
                .map(|c| format!("<td>{}</td>", escape(c)))
                .collect();
            format!(
                "<tr class=\"{}\">{tds}</tr>\n",
                if x.ok { "ok" } else { "failed" }
            )
        })
        .collect();
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}tr.failed{{background:#fdd}}\
         pre{{background:#f6f6f6;padding:1em}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n\
         <table>\n<tr><th>Round</th><th>Fault</th><th>Failover ms</th><th>Migration ms</th>\
         <th>Write pause ms</th><th>Unavailable ms by shard</th><th>Acked</th><th>Lost</th>\
         <th>In two shards</th><th>Misplaced</th><th>Result</th></tr>\n{rows}</table>\n\
         <h2>Report</h2>\n<pre id=\"report\">{json}</pre>\n</body>\n</html>\n",
        title = escape(&format!(
            "Vigil sharded drill: {} on {} ({} mode, down_after {} ms) — {}",
            r.scenario,
            r.cluster,
            r.mode,
            r.down_after_ms,
            if r.passed { "passed" } else { "FAILED" }
        )),
        json = escape(&json),
    )
}
