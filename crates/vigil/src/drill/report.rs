//! What a drill found, and its three renderings: the summary table on the terminal, the JSON
//! report for scripts, and a self-contained HTML page with a timeline chart of each round.

use serde::Serialize;

/// A moment of a round, in milliseconds after the fault.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// What happened: `fault`, `+sdown`, `+odown`, `+promoted-slave`, `+switch-master`,
    /// `first write`, `healed`, ...
    pub label: String,
    /// Milliseconds after the fault (negative: before it).
    pub at_ms: f64,
}

/// One round: one fault, its recovery and what the workload saw.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// The master when the fault was injected.
    pub old_master: String,
    /// The master at the end of the round.
    pub new_master: String,
    /// The group's epoch before and after.
    pub epoch_before: u64,
    /// The group's epoch at the end of the round.
    pub epoch_after: u64,
    /// Fault → the first `+sdown` of the old master on any sentinel.
    pub detection_ms: Option<f64>,
    /// Fault → `+odown`.
    pub odown_ms: Option<f64>,
    /// Fault → `+promoted-slave`.
    pub promote_ms: Option<f64>,
    /// Fault → the first write acknowledged by the new master (the failover time clients
    /// feel).
    pub failover_ms: Option<f64>,
    /// The longest time without any acknowledged write, from the last one before the fault.
    pub unavailable_ms: f64,
    /// Writes acknowledged during the round.
    pub writes_acked: u64,
    /// Acknowledged writes missing from the master after the round.
    pub acked_lost: u64,
    /// Bytes of the old master's history discarded when it was demoted (`+convert-to-slave`).
    pub divergent_bytes: u64,
    /// Reads that did not see the reader's own previous acknowledged write.
    pub stale_reads: u64,
    /// Whether the round ended as the scenario expects (a new master, or the same one for
    /// `kill-sentinel-leader`).
    pub recovered: bool,
    /// The round passed: recovered, and (in sync mode) lost nothing.
    pub ok: bool,
    /// What went wrong, in words.
    pub problems: Vec<String>,
    /// The round's milestones, for the timeline.
    pub timeline: Vec<Mark>,
    /// Every event the sentinels published during the round (first arrival of each).
    pub events: Vec<EventMark>,
}

/// An event of a round, as the drill received it.
#[derive(Debug, Clone, Serialize)]
pub struct EventMark {
    /// Milliseconds after the fault.
    pub at_ms: f64,
    /// `+sdown`, `+promoted-slave`, ...
    pub kind: String,
    /// The node it is about.
    pub node: String,
    /// Its details.
    pub detail: String,
}

/// p50 / p99 / max of one measure over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Over the values present; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Spread {
            p50: rank(0.5),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// What the nodes were: `vigil`, `redis-server` (agents), `redis-resp` (agentless), or
    /// `attached` (a running cluster, as deployed).
    pub backend: String,
    /// `sync` or `async`.
    pub mode: String,
    /// The group's `down_after`, in milliseconds.
    pub down_after_ms: u64,
    /// Writer tasks.
    pub writers: usize,
    /// Writes to stock masters were acknowledged only once `WAIT 1` confirmed them on a
    /// replica (sync mode; a stock master's plain reply promises nothing about its replicas).
    pub confirmed_with_wait: bool,
    /// When it started (wall clock, RFC 3339, for display).
    pub started: String,
    /// Each round.
    pub rounds: Vec<Round>,
    /// Spreads over the rounds.
    pub summary: Summary,
    /// Every round ok.
    pub passed: bool,
}

impl Report {
    /// What was drilled and how, as the text summary and the page title both say it:
    /// `kill-master (vigil backend, sync mode, down_after 1000 ms`, unclosed.
    fn setting(&self) -> String {
        let wait = if self.confirmed_with_wait {
            ", writes confirmed with WAIT 1"
        } else {
            ""
        };
        format!(
            "{} ({} backend, {} mode{wait}, down_after {} ms",
            self.scenario, self.backend, self.mode, self.down_after_ms
        )
    }
}

/// Spreads and totals over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Of `detection_ms`.
    pub detection_ms: Option<Spread>,
    /// Of `failover_ms`.
    pub failover_ms: Option<Spread>,
    /// Of `unavailable_ms`.
    pub unavailable_ms: Option<Spread>,
    /// Sum of `writes_acked`.
    pub writes_acked: u64,
    /// Sum of `acked_lost`.
    pub acked_lost: u64,
    /// Sum of `divergent_bytes`.
    pub divergent_bytes: u64,
    /// Sum of `stale_reads`.
    pub stale_reads: u64,
    /// Rounds that passed.
    pub rounds_ok: usize,
}

impl Summary {
    /// Over `rounds`.
    pub fn of(rounds: &[Round]) -> Summary {
        Summary {
            detection_ms: Spread::of(rounds.iter().filter_map(|r| r.detection_ms)),
            failover_ms: Spread::of(rounds.iter().filter_map(|r| r.failover_ms)),
            unavailable_ms: Spread::of(rounds.iter().map(|r| r.unavailable_ms)),
            writes_acked: rounds.iter().map(|r| r.writes_acked).sum(),
            acked_lost: rounds.iter().map(|r| r.acked_lost).sum(),
            divergent_bytes: rounds.iter().map(|r| r.divergent_bytes).sum(),
            stale_reads: rounds.iter().map(|r| r.stale_reads).sum(),
            rounds_ok: rounds.iter().filter(|r| r.ok).count(),
        }
    }
}

pub(super) fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The terminal summary: one line per round, then p50 / p99 / max.
pub fn text(r: &Report) -> String {
    let mut rows = vec![vec![
        "ROUND".to_string(),
        "MASTER".into(),
        "DETECT ms".into(),
        "FAILOVER ms".into(),
        "UNAVAILABLE ms".into(),
        "ACKED".into(),
        "LOST".into(),
        "DIVERGENT B".into(),
        "STALE".into(),
        "RESULT".into(),
    ]];
    for x in &r.rounds {
        rows.push(vec![
            x.round.to_string(),
            format!("{} -> {}", x.old_master, x.new_master),
            ms(x.detection_ms),
            ms(x.failover_ms),
            format!("{:.0}", x.unavailable_ms),
            x.writes_acked.to_string(),
            x.acked_lost.to_string(),
            x.divergent_bytes.to_string(),
            x.stale_reads.to_string(),
            if x.ok {
                "ok".into()
            } else {
                format!("FAILED: {}", x.problems.join("; "))
            },
        ]);
    }
    let s = &r.summary;
    for (name, pick) in [
        ("p50", (|s: &Spread| s.p50) as fn(&Spread) -> f64),
        ("p99", |s| s.p99),
        ("max", |s| s.max),
    ] {
        rows.push(vec![
            name.into(),
            String::new(),
            ms(s.detection_ms.as_ref().map(pick)),
            ms(s.failover_ms.as_ref().map(pick)),
            ms(s.unavailable_ms.as_ref().map(pick)),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        s.writes_acked.to_string(),
        s.acked_lost.to_string(),
        s.divergent_bytes.to_string(),
        s.stale_reads.to_string(),
        format!("{}/{} ok", s.rounds_ok, r.rounds.len()),
    ]);
    format!(
        "Drill {}, {} writers): {}\n{}",
        r.setting(),
        r.writers,
        if r.passed { "PASSED" } else { "FAILED" },
        crate::ctl::render::table(&rows)
    )
}

/// A self-contained page (no network): the summary as an HTML table and, drawn by its own
/// script from the embedded JSON, a timeline chart per round.
pub fn html(r: &Report) -> String {
    let data = serde_json::to_string(r)
        .unwrap_or_else(|_| "{}".into())
        // Keep the JSON from closing its <script> element.
        .replace("</", "<\\/");
    let rows: String = r
        .rounds
        .iter()
        .map(|x| {
            format!(
                "<tr class=\"{}\"><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                if x.ok { "ok" } else { "failed" },
                x.round,
                escape(&x.old_master),
                escape(&x.new_master),
                ms(x.detection_ms),
                ms(x.failover_ms),
                x.unavailable_ms,
                x.writes_acked,
                x.acked_lost,
                x.divergent_bytes,
                x.stale_reads,
                if x.ok {
                    "ok".to_string()
                } else {
                    escape(&x.problems.join("; "))
                },
            )
        })
        .collect();
    HTML.replace(
        "{{TITLE}}",
        &escape(&format!(
            "Vigil drill: {}) — {}",
            r.setting(),
            if r.passed { "passed" } else { "FAILED" }
        )),
    )
    .replace("{{ROWS}}", &rows)
    .replace("{{DATA}}", &data)
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HTML: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:nth-child(2), td:last-child { text-align: left; }
tr.failed td { background: #fdd; }
.round { margin: 1.5em 0; }
.round h3 { margin: 0 0 .3em; font-size: 14px; }
svg.timeline text { font-size: 11px; }
</style>
</head>
<body>
<h1>{{TITLE}}</h1>
<table>
<thead><tr><th>round</th><th>master</th><th>detection ms</th><th>failover ms</th><th>unavailable ms</th><th>acked</th><th>lost</th><th>divergent bytes</th><th>stale reads</th><th>result</th></tr></thead>
<tbody>
{{ROWS}}</tbody>
</table>
<p>Times are milliseconds after the fault. Failover: fault → first write acknowledged by the
new master. Unavailable: the longest time without any acknowledged write.</p>
<div id="charts"></div>
<script type="application/json" id="drill-data">{{DATA}}</script>
<script>
(function () {
  const report = JSON.parse(document.getElementById("drill-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const colors = { "fault": "#c00", "+sdown": "#e80", "+odown": "#d60", "+promoted-slave": "#06c",
    "+switch-master": "#08a", "first write": "#080", "healed": "#666" };
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    parent.appendChild(e);
    return e;
  }
  const charts = document.getElementById("charts");
  for (const round of report.rounds) {
    const div = document.createElement("div");
    div.className = "round";
    const h = document.createElement("h3");
    h.textContent = "Round " + round.round + ": " + round.old_master + " → " + round.new_master +
      (round.ok ? "" : " (FAILED: " + round.problems.join("; ") + ")");
    div.appendChild(h);
    // One row per milestone (a label on the left, a dot at its time), a time axis below and
    // the span without acknowledged writes shaded.
    const marks = round.timeline;
    const W = 900, L = 130, R = 30, ROW = 20, TOP = 10;
    const H = TOP + marks.length * ROW + 30;
    const max = Math.max(100, ...marks.map(m => m.at_ms)) * 1.05;
    const min = Math.min(0, ...marks.map(m => m.at_ms));
    const x = v => L + (v - min) / (max - min) * (W - L - R);
    const axisY = TOP + marks.length * ROW + 5;
    const svg = el("svg", { "class": "timeline", width: W, height: H, viewBox: "0 0 " + W + " " + H,
      "data-round": round.round }, div);
    if (round.failover_ms !== null) {
      el("rect", { "class": "outage", x: x(0), y: TOP, width: Math.max(1, x(round.failover_ms) - x(0)),
        height: axisY - TOP, fill: "#fee" }, svg);
    }
    el("line", { x1: L, y1: axisY, x2: W - R, y2: axisY, stroke: "#999" }, svg);
    const step = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000].find(s => (max - min) / s <= 10) || 20000;
    for (let v = Math.ceil(min / step) * step; v <= max; v += step) {
      el("line", { x1: x(v), y1: axisY, x2: x(v), y2: axisY + 4, stroke: "#999" }, svg);
      el("text", { x: x(v), y: axisY + 16, "text-anchor": "middle", fill: "#666" }, svg).textContent = v + " ms";
    }
    marks.forEach(function (m, i) {
      const c = colors[m.label] || "#333";
      const y = TOP + i * ROW + ROW / 2;
      el("text", { x: L - 8, y: y + 4, "text-anchor": "end", fill: c }, svg).textContent = m.label;
      el("line", { x1: x(0), y1: y, x2: x(m.at_ms), y2: y, stroke: c, "stroke-opacity": 0.35 }, svg);
      el("circle", { "class": "mark", cx: x(m.at_ms), cy: y, r: 5, fill: c }, svg)
        .appendChild(document.createElementNS(NS, "title")).textContent = m.label + " " + m.at_ms.toFixed(0) + " ms";
      el("text", { x: x(m.at_ms) + 8, y: y + 4, fill: c }, svg).textContent = m.at_ms.toFixed(0);
    });
    charts.appendChild(div);
  }
})();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_use_nearest_rank() {
        let s = Spread::of((1..=100).map(f64::from)).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        let one = Spread::of([7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn html_keeps_its_data_inside_the_script() {
        let r = Report {
            scenario: "kill-master".into(),
            mode: "sync".into(),
            backend: "vigil".into(),
            down_after_ms: 1000,
            writers: 1,
            confirmed_with_wait: false,
            started: String::new(),
            rounds: vec![Round {
                round: 1,
                old_master: "</script><b>".into(),
                new_master: "n2".into(),
                epoch_before: 1,
                epoch_after: 2,
                detection_ms: Some(1.0),
                odown_ms: None,
                promote_ms: None,
                failover_ms: Some(2.0),
                unavailable_ms: 3.0,
                writes_acked: 4,
                acked_lost: 0,
                divergent_bytes: 0,
                stale_reads: 0,
                recovered: true,
                ok: true,
                problems: vec![],
                timeline: vec![],
                events: vec![],
            }],
            summary: Summary::of(&[]),
            passed: true,
        };
        let page = html(&r);
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
        assert!(page.contains("&lt;/script&gt;&lt;b&gt;"));
        assert!(
            page.contains(
                "<title>Vigil drill: kill-master (vigil backend, sync mode, down_after 1000 ms) — passed</title>"
            ),
            "{page}"
        );
        let mut stock = r.clone();
        stock.backend = "redis-resp".into();
        stock.confirmed_with_wait = true;
        assert!(
            text(&stock).starts_with(
                "Drill kill-master (redis-resp backend, sync mode, writes confirmed with WAIT 1, down_after 1000 ms, 1 writers): PASSED\n"
            ),
            "{}",
            text(&stock)
        );
        assert!(
            html(&stock)
                .contains("sync mode, writes confirmed with WAIT 1, down_after 1000 ms) — passed")
        );
    }
}
