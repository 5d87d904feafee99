#!/usr/bin/env bash
# Node throughput and memory beside the anchor, in one run on one machine:
#   redis-benchmark -t set,get,incr,lpush,lpop,sadd,hset,zadd -n N -c 50 at -P 1 and -P 16
#   against `vigil node` and `redis-server`, both with appendonly on and appendfsync everysec,
#   then RSS after loading 1M keys with 100-byte values into each.
# Prints a markdown table of ratios (vigil / redis) and writes it to target/bench/node.md.
# Usage: tests/bench/node.sh [N]   (N defaults to 1000000; KEYS=... for the memory test;
#        VIGIL_THREADS=... for the node's worker threads, default 1 as redis-server has one)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000000}"
KEYS="${KEYS:-1000000}"
TESTS="set,get,incr,lpush,lpop,sadd,hset,zadd"

source tests/bench/common.sh

start_servers() {
  RPORT=$(free_port); VPORT=$(free_port)
  rm -rf "$WORK/redis" "$WORK/vigil"; mkdir -p "$WORK/redis" "$WORK/vigil"
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no >/dev/null 2>&1 &
  RPID=$!; PIDS+=("$RPID")
  # One worker thread, like redis-server's one event loop: on a small machine the load generator
  # needs the other core, and the comparison is per thread of service.
  printf 'threads = %s\n' "${VIGIL_THREADS:-1}" > "$WORK/vigil.toml"
  "$VIGIL" node --config "$WORK/vigil.toml" --port "$VPORT" --dir "$WORK/vigil" --appendfsync everysec \
    >/dev/null 2>"$WORK/vigil.log" &
  VPID=$!; PIDS+=("$VPID")
  wait_ping "$RPORT"; wait_ping "$VPORT"
}
stop_servers() { kill "$RPID" "$VPID" 2>/dev/null || true; wait "$RPID" "$VPID" 2>/dev/null || true; }

bench() { # port pipeline -> csv lines "test,rps"
  redis-benchmark -p "$1" -t "$TESTS" -n "$N" -c 50 -P "$2" -q --csv 2>/dev/null |
    python3 -c 'import csv,sys
for row in csv.reader(sys.stdin):
    if len(row) > 1 and row[0] != "test": print(row[0] + "," + row[1])'
}

echo "| test | pipeline | redis-server (req/s) | vigil node (req/s) | ratio |" > "$WORK/table"
echo "| --- | --- | --- | --- | --- |" >> "$WORK/table"
for P in 1 16; do
  start_servers
  # Alternate the servers so machine noise hits both alike.
  bench "$RPORT" "$P" > "$WORK/r$P"
  bench "$VPORT" "$P" > "$WORK/v$P"
  stop_servers
  python3 - "$WORK/r$P" "$WORK/v$P" "$P" >> "$WORK/table" <<'PY'
import sys
r = dict(l.strip().split(",") for l in open(sys.argv[1]) if "," in l)
v = dict(l.strip().split(",") for l in open(sys.argv[2]) if "," in l)
for t in r:
    a, b = float(r[t]), float(v.get(t, 0))
    print(f"| {t} | {sys.argv[3]} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
PY
done

# Memory: the same 1M keys with 100-byte values through redis-cli --pipe.
gen_load "$KEYS" "$WORK/load.resp"
start_servers
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
R0=$(rss "$RPID"); V0=$(rss "$VPID")
redis-cli -p "$RPORT" --pipe < "$WORK/load.resp" >/dev/null
redis-cli -p "$VPORT" --pipe < "$WORK/load.resp" >/dev/null
sleep 1
RK=$(redis-cli -p "$RPORT" dbsize); VK=$(redis-cli -p "$VPORT" dbsize)
R1=$(rss "$RPID"); V1=$(rss "$VPID")
stop_servers
python3 - "$R1" "$V1" "$RK" "$VK" "$R0" "$V0" >> "$WORK/table" <<'PY'
import sys
r, v, rk, vk, r0, v0 = map(int, sys.argv[1:])
assert rk == vk, f"key counts differ: redis {rk}, vigil {vk}"
print(f"| RSS, {rk:,} keys x 100 B | - | {r/2**20:,.0f} MiB | {v/2**20:,.0f} MiB | {v/r:.2f} |")
PY

mkdir -p target/bench
{ echo "redis-benchmark -n $N -c 50, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/node.md
