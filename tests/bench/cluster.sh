#!/usr/bin/env bash
# A Vigil sharded cluster beside Redis Cluster, in the same run on the same machine (release
# build), each measured by the same client code (tests/bench/cluster_bench.py):
#  1. throughput: redis-benchmark --cluster -t set,get -P 16 (N requests, 50 clients), TPUT_RUNS
#     runs a side (default 3), the sides taking turns, each run on a fresh cluster;
#  2. failover: SIGKILL of the master of slot 0 -> first acknowledged write on slot 0, ROUNDS
#     rounds (default 5), the kills at least GAP_S (default 7) seconds apart; Redis Cluster's
#     cluster-node-timeout = Vigil's down_after (DOWN_AFTER_MS, default 1000);
#  3. migration: slots 0-999 holding KEYS keys (default 1,000,000) moved to the second shard
#     under a writer: `redis-cli --cluster reshard` vs `vigil ctl cluster move-slots`, with the
#     duration, the longest pause between acknowledged writes to the moving slots, and the
#     acknowledged writes that do not read back.
# Redis Cluster: 3 masters + 3 replicas (`redis-cli --cluster create --cluster-replicas 1`),
# with `appendonly yes`, `appendfsync everysec`: the durability Vigil's nodes have by default.
# Vigil: `vigil up --shards 3` with `shard_replicas = 1` (3 groups of a master and a replica,
# as Redis Cluster's; MODE=async by default, as Redis replicates, or MODE=sync). Prints markdown tables, also written to
# target/bench/cluster.md; Vigil's logs are kept in target/bench/cluster-logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/common.sh
# redis-benchmark --cluster ends its runs on a 250 ms tick: with N = 10M a tick is 2–5 % of a run
# (with 5M it was 5–10 %, as much as the difference being measured).
N="${N:-10000000}"
ROUNDS="${ROUNDS:-5}"
TPUT_RUNS="${TPUT_RUNS:-3}"
KEYS="${KEYS:-1000000}"
DOWN_AFTER_MS="${DOWN_AFTER_MS:-1000}"
GAP_S="${GAP_S:-7}"
MODE="${MODE:-async}"
# ONLY=redis or ONLY=vigil runs one side (no report table).
ONLY="${ONLY:-redis vigil}"
PY=(python3 tests/bench/cluster_bench.py)
res="$WORK/results"
mkdir -p "$res" target/bench

# `count` ports in a row, each with port+10000 free too (Redis Cluster's bus), below the
# ephemeral range.
free_block() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(1000):
    b = random.randrange(12000, 22000)
    if all(free(p) and free(p + 10000) for p in range(b, b + n)):
        print(b); break
else:
    sys.exit("no free port block")
PY
}

# One run of the throughput test, appended to OUT.
bench() { # SEED OUT: "test,rps" lines (redis-benchmark --cluster prints the masters first)
  redis-benchmark --cluster -h 127.0.0.1 -p "$1" -t set,get -P 16 -n "$N" -c 50 -q --csv \
    | csv_rps | grep -E '^[A-Z]+,[0-9.]+$' >>"$2"
}

# Sets ROUNDS failover times (one JSON line each) in $res/$1-failover.jsonl; RESTART is the
# command that brings a killed node back (Redis), or nothing (vigil up restarts it).
failovers() {
  local name=$1 seed=$2 restart=$3 last=0
  for r in $(seq "$ROUNDS"); do
    "${PY[@]}" wait-ok "$seed" 3
    sleep 2
    # Kills at least GAP_S apart on both sides: Vigil holds a group's next failover until
    # min_failover_interval (5 s by default, the flapping guard) after its last one, and
    # that guard is not what is measured here.
    sleep "$(python3 -c "import time; print(max(0.0, $last + $GAP_S - time.time()))")"
    last=$(python3 -c 'import time; print(time.time())')
    out=$("${PY[@]}" failover "$seed" 0)
    echo "$out" >>"$res/$name-failover.jsonl"
    echo "$name failover round $r: $out" >&2
    if [ -n "$restart" ]; then $restart "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')"; fi
    # A seed that was killed comes back; ask another meanwhile.
    sleep 1
  done
}

# migrate NAME SEED COMMAND...: loads slots 0-999, writes under the move, times COMMAND.
migrate() {
  local name=$1 seed=$2; shift 2
  "${PY[@]}" wait-ok "$seed" 3
  "${PY[@]}" populate "$seed" 0 999 $((KEYS / 1000))
  rm -f "$WORK/stop"
  "${PY[@]}" load "$seed" 0 999 "$WORK/stop" >"$res/$name-load.json" &
  local load=$!
  PIDS+=("$load")
  sleep 1
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" >"$WORK/$name-migrate.log" 2>&1; then
    echo "$name: the migration failed: $*" >&2
    cat "$WORK/$name-migrate.log" >&2
    # Vigil's events say why each attempt started over.
    if [ "$name" = vigil ]; then grep -a "migration" "$WORK/vigil-up.log" | tail -20 >&2 || true; fi
    exit 1
  fi
  t1=$(date +%s.%N)
  sleep 1
  touch "$WORK/stop"
  wait "$load"
  python3 -c "print($t1 - $t0)" >"$res/$name-migrate-s"
  echo "$name migration: $(cat "$res/$name-migrate-s") s, writer $(cat "$res/$name-load.json")" >&2
}

has() { [[ " $ONLY " == *" $1 "* ]]; }

# --- The two clusters ------------------------------------------------------------------------
# Each side is started afresh for every phase and stopped (its files deleted) before the other
# starts: nothing one side left behind (a server, gigabytes of append-only file still being
# written back) runs during the other's measurement.
declare -A rpid
rports=()
start_redis() {
  local p=$1
  mkdir -p "$WORK/r$p"
  (cd "$WORK/r$p" && exec redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout "$DOWN_AFTER_MS" --save '' \
    --appendonly yes --appendfsync everysec >"$WORK/r$p.log" 2>&1) &
  rpid[$p]=$!
  PIDS+=("$!")
  wait_ping "$p"
}
redis_up() { # sets rports, rseed
  local rb
  rb=$(free_block 6)
  rports=()
  for i in $(seq 0 5); do rports+=($((rb + i))); start_redis $((rb + i)); done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${rports[@]}") --cluster-replicas 1 \
    --cluster-yes >"$WORK/redis-create.log"
  rseed="127.0.0.1:${rports[0]}"
  "${PY[@]}" wait-ok "$rseed" 3
}
redis_down() {
  local gone=" "
  # Each reaped at once, quietly: bash reports a SIGKILLed job it notices later.
  for p in "${rports[@]}"; do
    { kill -9 "${rpid[$p]}" && wait "${rpid[$p]}"; } 2>/dev/null || true
    gone+="${rpid[$p]} "
    rm -rf "$WORK/r$p"
  done
  rports=()
  # Reaped: off the list the exit kills, whose numbers the system may give to others.
  local keep=()
  for p in "${PIDS[@]}"; do [[ "$gone" == *" $p "* ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

sync=0
[ "$MODE" = sync ] && sync=1
UP=""
vigil_up() { # sets vb, vseed, UP
  vb=$(free_block 36)
  cat >"$WORK/vigil-up.toml" <<EOF
base_port = $vb
admin_base_port = $((vb + 9))
grpc_base_port = $((vb + 18))
resp_base_port = $((vb + 21))
metrics_base_port = $((vb + 24))
group = "mymaster"
down_after = "${DOWN_AFTER_MS}ms"
sync_replicas = $sync
token = "bench-token"
node_token = "bench-node-token"
shards = 3
shard_replicas = 1
EOF
  rm -rf "$WORK/vigil-up"
  "$VIGIL" up --config "$WORK/vigil-up.toml" --dir "$WORK/vigil-up" >"$WORK/vigil-up.log" 2>&1 &
  UP=$!
  vseed="127.0.0.1:$vb"
  "${PY[@]}" wait-ok "$vseed" 3
}
# `vigil up` stops its nodes and sentinels on SIGTERM (SIGKILL would leave them running).
vigil_down() {
  [ -n "$UP" ] || return 0
  kill -TERM "$UP" 2>/dev/null || true
  wait "$UP" 2>/dev/null || true
  UP=""
  # The nodes' and sentinels' data; their logs stay for keep_logs.
  find "$WORK/vigil-up" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} + 2>/dev/null || true
}
# The last Vigil cluster's logs are kept in target/bench/cluster-logs, so that a slow round can
# be explained.
keep_logs() {
  rm -rf target/bench/cluster-logs; mkdir -p target/bench/cluster-logs
  cp "$WORK/vigil-up.log" "$WORK"/vigil-up/*.log target/bench/cluster-logs/ 2>/dev/null || true
  cp "$res"/vigil-failover.jsonl target/bench/cluster-logs/ 2>/dev/null || true
}
trap 'vigil_down; if has vigil; then keep_logs; fi; cleanup' EXIT

# --- Throughput: the sides take turns ---------------------------------------------------------
# Run by run, Redis Cluster then Vigil, each on a fresh cluster: a drift of the machine over the
# minutes the benchmark takes (another guest on the host, the page cache) falls on both sides.
: >"$res/redis-bench.csv"
: >"$res/vigil-bench.csv"
for run in $(seq "$TPUT_RUNS"); do
  if has redis; then
    echo "throughput run $run/$TPUT_RUNS: Redis Cluster, 3 masters + 3 replicas" >&2
    redis_up
    bench "${rports[0]}" "$res/redis-bench.csv"
    redis_down
  fi
  if has vigil; then
    echo "throughput run $run/$TPUT_RUNS: Vigil, vigil up --shards 3 ($MODE mode)" >&2
    vigil_up
    bench "$vb" "$res/vigil-bench.csv"
    vigil_down
  fi
done

# --- Failover and migration, one side after the other ----------------------------------------
if has redis; then
  echo "failovers and migration: Redis Cluster" >&2
  redis_up
  failovers redis "$rseed" start_redis
  "${PY[@]}" wait-ok "$rseed" 3
  sleep 2
  src=$(redis-cli -p "${rports[1]}" cluster nodes | awk '/master/ && $9 ~ /^0-/ { print $1 }')
  dst=$(redis-cli -p "${rports[1]}" cluster nodes | awk '/master/ && $9 ~ /^5461-/ { print $1 }')
  migrate redis "$rseed" redis-cli --cluster reshard "$rseed" --cluster-from "$src" \
    --cluster-to "$dst" --cluster-slots 1000 --cluster-yes --cluster-pipeline 100
  redis_down
fi
if has vigil; then
  echo "failovers and migration: Vigil ($MODE mode)" >&2
  vigil_up
  failovers vigil "$vseed" ""
  migrate vigil "$vseed" "$VIGIL" ctl --sentinel "127.0.0.1:$((vb + 18))" --token bench-token \
    cluster move-slots mycluster --from shard1 --to shard2 --slots 0-999
fi
[ "$ONLY" = "redis vigil" ] || exit 0

# --- Report ----------------------------------------------------------------------------------
python3 - "$res" "$N" "$KEYS" "$DOWN_AFTER_MS" "$MODE" "$TPUT_RUNS" <<'PY' | tee target/bench/cluster.md
import json, statistics, sys
res, n, keys, down, mode, runs = sys.argv[1:]
def rps(name):
    out = {}
    for l in open(f"{res}/{name}-bench.csv"):
        if "," in l:
            t, x = l.strip().split(",", 1)
            out.setdefault(t, []).append(float(x))
    return out
def cell(xs):
    return f"{statistics.median(xs):,.0f} ({min(xs) / 1e3:,.0f}k–{max(xs) / 1e3:,.0f}k)"
r, v = rps("redis"), rps("vigil")
print(f"Redis Cluster (3 masters + 3 replicas, appendonly everysec) and Vigil (`vigil up --shards 3`, a replica each, {mode} mode), "
      f"same machine; throughput is the median of {runs} runs per side (their range in brackets), the sides taking turns run by run, each run on a fresh cluster.\n")
print(f"| redis-benchmark --cluster -P 16 -c 50 -n {int(n):,} | Redis Cluster req/s | Vigil req/s | ratio of medians |")
print("| --- | --- | --- | --- |")
for t in r:
    if t in v:
        ratio = statistics.median(v[t]) / statistics.median(r[t])
        print(f"| {t} | {cell(r[t])} | {cell(v[t])} | {ratio:.2f} |")
def fo(name):
    ms = sorted(json.loads(l)["ms"] for l in open(f"{res}/{name}-failover.jsonl"))
    rank = lambda p: ms[min(len(ms) - 1, max(0, -(-int(p * len(ms) * 100) // 100) - 1))]
    return f"{rank(0.5):.0f} / {rank(0.99):.0f} / {ms[-1]:.0f} ({len(ms)} rounds)"
print(f"\n| SIGKILL of a shard master -> first acknowledged write on its slots, ms p50 / p99 / max | |")
print("| --- | --- |")
print(f"| Redis Cluster, cluster-node-timeout {down} ms | {fo('redis')} |")
print(f"| Vigil, down_after {down} ms | {fo('vigil')} |")
print(f"\n| move slots 0-999 holding {int(keys):,} keys under a writer | duration s | longest write pause on them ms | writes acknowledged | lost | retried |")
print("| --- | --- | --- | --- | --- | --- |")
for name, label in (("redis", "Redis Cluster: redis-cli --cluster reshard"), ("vigil", "Vigil: vigil ctl cluster move-slots")):
    l = json.load(open(f"{res}/{name}-load.json"))
    s = float(open(f"{res}/{name}-migrate-s").read())
    print(f"| {label} | {s:.1f} | {l['longest_pause_ms']:.0f} | {l['acked']:,} | {l['lost']} | {l['retried']} |")
PY
