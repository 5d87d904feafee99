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

bench() { # port pipeline -> csv lines "test,rps"
  redis-benchmark -p "$1" -t "$TESTS" -n "$N" -c 50 -P "$2" -q --csv 2>/dev/null | csv_rps
}

echo "| test | pipeline | redis-server (req/s) | vigil node (req/s) | ratio |" > "$WORK/table"
echo "| --- | --- | --- | --- | --- |" >> "$WORK/table"
for P in 1 16; do
  start_pair
  # Alternate the servers so machine noise hits both alike.
  bench "$RPORT" "$P" > "$WORK/r$P"
  bench "$VPORT" "$P" > "$WORK/v$P"
  stop_pair
  ratio_rows "$P" "$WORK/r$P" "$WORK/v$P" >> "$WORK/table"
done

# Memory: the same 1M keys with 100-byte values through redis-cli --pipe.
gen_load "$KEYS" "$WORK/load.resp"
start_pair
R0=$(rss "$RPID"); V0=$(rss "$VPID")
redis-cli -p "$RPORT" --pipe < "$WORK/load.resp" >/dev/null
redis-cli -p "$VPORT" --pipe < "$WORK/load.resp" >/dev/null
sleep 1
RK=$(redis-cli -p "$RPORT" dbsize); VK=$(redis-cli -p "$VPORT" dbsize)
R1=$(rss "$RPID"); V1=$(rss "$VPID")
stop_pair
python3 - "$R1" "$V1" "$RK" "$VK" "$R0" "$V0" >> "$WORK/table" <<'PY'
import sys
r, v, rk, vk, r0, v0 = map(int, sys.argv[1:])
assert rk == vk, f"key counts differ: redis {rk}, vigil {vk}"
print(f"| RSS, {rk:,} keys x 100 B | - | {r/2**20:,.0f} MiB | {v/2**20:,.0f} MiB | {v/r:.2f} |")
PY

mkdir -p target/bench
{ echo "redis-benchmark -n $N -c 50, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/node.md
