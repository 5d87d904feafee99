#!/usr/bin/env bash
# Failover drills on a local cluster (release build): every scenario in sync mode, and
# kill-master / partition-master in async mode, ROUNDS rounds each (default 10) at DOWN_AFTER
# (default 1s). Prints a markdown table (p50 / p99 / max over the rounds) and writes it to
# target/bench/drills.md; each drill's reports stay in target/bench/drills/.
# partition-master needs root and iptables.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin vigil --quiet
ROUNDS="${ROUNDS:-10}"
DOWN_AFTER="${DOWN_AFTER:-1s}"
out=target/bench/drills
mkdir -p "$out"
runs=(
  "kill-master sync" "pause-master sync" "partition-master sync" "kill-sentinel-leader sync"
  "switchover sync" "kill-master async" "partition-master async"
)
for run in "${runs[@]}"; do
  read -r scenario mode <<<"$run"
  echo "drill: $scenario ($mode), $ROUNDS rounds" >&2
  # A failed drill (exit 1) is reported in the table, not hidden.
  ./target/release/vigil drill --scenario "$scenario" --mode "$mode" --rounds "$ROUNDS" \
    --down-after "$DOWN_AFTER" --report "$out/$scenario-$mode" >/dev/null || true
done
python3 - "$out" "${runs[@]}" <<'PY' | tee target/bench/drills.md
import json, sys
out, runs = sys.argv[1], sys.argv[2:]
def spread(s):
    return "-" if s is None else f"{s['p50']:.0f} / {s['p99']:.0f} / {s['max']:.0f}"
print("| scenario | mode | failover ms p50 / p99 / max | detection ms p50 / p99 / max | unavailable ms p50 / p99 / max | acked | lost | divergent bytes | stale reads | rounds ok |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for run in runs:
    scenario, mode = run.split()
    r = json.load(open(f"{out}/{scenario}-{mode}/report.json"))
    s = r["summary"]
    print(f"| {scenario} | {mode} | {spread(s['failover_ms'])} | {spread(s['detection_ms'])} | "
          f"{spread(s['unavailable_ms'])} | {s['writes_acked']:,} | {s['acked_lost']} | "
          f"{s['divergent_bytes']} | {s['stale_reads']} | {s['rounds_ok']}/{len(r['rounds'])} |")
PY
