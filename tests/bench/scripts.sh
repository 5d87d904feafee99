#!/usr/bin/env bash
# Scripts and streams beside the anchor, in one run on one machine (redis-server and vigil node,
# both with appendonly on and appendfsync everysec):
#   - redis-benchmark EVALSHA of a small script (INCR and a conditional PEXPIRE, a rate
#     limiter's body) at -P 1 and -P 16;
#   - redis-benchmark XADD (5 fields) at -P 16;
#   - a consumer group drained by 4 workers looping XREADGROUP COUNT 100 / XACK (bench_consumer);
#   - RSS after 1M stream entries of 5 small fields.
# Prints a markdown table of ratios (vigil / redis) and writes it to target/bench/scripts.md.
# Usage: tests/bench/scripts.sh [N]   (N requests per redis-benchmark test, default 1000000;
#        ENTRIES=... for the consumer and memory tests, default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000000}"
ENTRIES="${ENTRIES:-1000000}"

source tests/bench/common.sh
cargo build --release --bin bench_consumer --quiet
CONSUMER="$PWD/target/release/bench_consumer"

LIMITER="local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n"

bench() { # port pipeline label command... -> "label,rps"
  local port=$1 p=$2 label=$3; shift 3
  redis-benchmark -p "$port" -n "$N" -c 50 -r 100000 -P "$p" -q --csv "$@" 2>/dev/null |
    csv_rps | sed "s/^[^,]*,/$label,/"
}

# gen_stream ENTRIES FILE: XADD of explicit ids, 5 small fields each, as RESP for --pipe.
gen_stream() {
  python3 - "$1" > "$2" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
fields = ["f1", "v1", "f2", "v2", "f3", "v3", "f4", "v4", "f5", "v5"]
tail = "".join(f"${len(f)}\r\n{f}\r\n" for f in fields)
for i in range(1, n + 1):
    eid = f"{i}-1"
    out.write(f"*13\r\n$4\r\nXADD\r\n$12\r\nbench:events\r\n${len(eid)}\r\n{eid}\r\n{tail}")
PY
}

echo "| test | pipeline | redis-server | vigil node | ratio |" > "$WORK/table"
echo "| --- | --- | --- | --- | --- |" >> "$WORK/table"
for P in 1 16; do
  start_pair
  for port in "$RPORT" "$VPORT"; do
    SHA=$(redis-cli -p "$port" SCRIPT LOAD "$LIMITER")
    bench "$port" "$P" "EVALSHA (rate limiter)" EVALSHA "$SHA" 1 'rl:__rand_int__' 60000 > "$WORK/e$port"
  done
  ratio_rows "$P" "$WORK/e$RPORT" "$WORK/e$VPORT" >> "$WORK/table"
  if [ "$P" = 16 ]; then
    for port in "$RPORT" "$VPORT"; do
      bench "$port" 16 "XADD (5 fields)" XADD 'bench:xadd' '*' f1 v1 f2 v2 f3 v3 f4 v4 f5 v5 > "$WORK/x$port"
    done
    ratio_rows 16 "$WORK/x$RPORT" "$WORK/x$VPORT" >> "$WORK/table"
  fi
  stop_pair
done

# Consumer group throughput, then memory, on the same ENTRIES entries.
gen_stream "$ENTRIES" "$WORK/stream.resp"
start_pair
for port in "$RPORT" "$VPORT"; do
  redis-cli -p "$port" --pipe < "$WORK/stream.resp" >/dev/null
done
sleep 1
RL=$(redis-cli -p "$RPORT" XLEN bench:events); VL=$(redis-cli -p "$VPORT" XLEN bench:events)
R1=$(rss "$RPID"); V1=$(rss "$VPID")
python3 - "$R1" "$V1" "$RL" "$VL" >> "$WORK/table" <<'PY'
import sys
r, v, rl, vl = map(int, sys.argv[1:])
assert rl == vl, f"stream lengths differ: redis {rl}, vigil {vl}"
print(f"| RSS, {rl:,} stream entries x 5 fields | - | {r/2**20:,.0f} MiB | {v/2**20:,.0f} MiB | {v/r:.2f} |")
PY
for port in "$RPORT" "$VPORT"; do
  redis-cli -p "$port" XGROUP CREATE bench:events workers 0 >/dev/null
done
read -r RC VC < <("$CONSUMER" "$RPORT" "$VPORT")
echo "| XREADGROUP COUNT 100 + XACK, 4 consumers (entries/s) | - | $RC | $VC | $(python3 -c "print(f'{$VC/$RC:.2f}')") |" >> "$WORK/table"
stop_pair

mkdir -p target/bench
{ echo "redis-benchmark -n $N -c 50, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/scripts.md
