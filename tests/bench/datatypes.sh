#!/usr/bin/env bash
# Bitmaps, HyperLogLog and geo beside the anchor, in one run on one machine (redis-server and
# vigil node, both with appendonly on and appendfsync everysec):
#   - redis-benchmark SETBIT, BITCOUNT, PFADD and GEOADD at -P 1 and -P 16 (random keys);
#   - RSS after KEYS keys of each type (a 1 KiB bitmap, an HLL of 100 elements, a geo set of
#     5 members, a hash of 5 small fields, a set of 5 integers), each type loaded into a fresh
#     pair, minus the empty servers' RSS.
# Prints a markdown table of ratios (vigil / redis) and writes it to target/bench/datatypes.md.
# Usage: tests/bench/datatypes.sh [N]   (N requests per redis-benchmark test, default 1000000;
#        KEYS=... for the memory rows, default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000000}"
KEYS="${KEYS:-1000000}"

source tests/bench/common.sh

bench() { # port pipeline label command... -> "label,rps"
  local port=$1 p=$2 label=$3; shift 3
  redis-benchmark -p "$port" -n "$N" -c 50 -r 100000 -P "$p" -q --csv "$@" 2>/dev/null |
    csv_rps | sed "s/^[^,]*,/$label,/"
}

# gen_keys TYPE KEYS FILE: RESP for --pipe that builds KEYS keys of TYPE.
gen_keys() {
  python3 - "$1" "$2" > "$3" <<'PY'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout
def cmd(*a):
    out.write(f"*{len(a)}\r\n" + "".join(f"${len(x)}\r\n{x}\r\n" for x in a))
for i in range(n):
    k = f"{kind}:{i}"
    if kind == "bitmap":
        cmd("SETBIT", k, str(8191 - i % 64), "1")
    elif kind == "hll":
        cmd("PFADD", k, *[f"e{i}-{j}" for j in range(100)])
    elif kind == "hash":
        cmd("HSET", k, "name", f"user{i}", "age", str(i % 90), "city", "paris",
            "score", str(i % 1000), "active", "yes")
    elif kind == "intset":
        cmd("SADD", k, str(i % 100), str(i % 1000 + 100), "7", "300000" if i % 2 else "8", "9")
    else:
        args = []
        for j in range(5):
            args += [f"{(i * 7 + j * 13) % 360 - 180 + 0.5:.4f}", f"{(i * 3 + j * 11) % 170 - 85 + 0.25:.4f}", f"m{j}"]
        cmd("GEOADD", k, *args)
PY
}

echo "| test | pipeline | redis-server | vigil node | ratio |" > "$WORK/table"
echo "| --- | --- | --- | --- | --- |" >> "$WORK/table"
for P in 1 16; do
  start_pair
  for port in "$RPORT" "$VPORT"; do
    {
      bench "$port" "$P" "SETBIT" SETBIT 'bits:__rand_int__' 1000 1
      bench "$port" "$P" "BITCOUNT" BITCOUNT 'bits:__rand_int__'
      bench "$port" "$P" "PFADD" PFADD 'hll:__rand_int__' 'e__rand_int__'
      bench "$port" "$P" "GEOADD" GEOADD 'geo:__rand_int__' 13.361389 38.115556 'm__rand_int__'
    } > "$WORK/b$port"
  done
  ratio_rows "$P" "$WORK/b$RPORT" "$WORK/b$VPORT" >> "$WORK/table"
  stop_pair
done

for kind in bitmap hll geo hash intset; do
  gen_keys "$kind" "$KEYS" "$WORK/$kind.resp"
  start_pair
  R0=$(rss "$RPID"); V0=$(rss "$VPID")
  for port in "$RPORT" "$VPORT"; do
    redis-cli -p "$port" --pipe < "$WORK/$kind.resp" >/dev/null
  done
  sleep 1
  RN=$(redis-cli -p "$RPORT" DBSIZE); VN=$(redis-cli -p "$VPORT" DBSIZE)
  R1=$(rss "$RPID"); V1=$(rss "$VPID")
  python3 - "$kind" "$R0" "$R1" "$V0" "$V1" "$RN" "$VN" >> "$WORK/table" <<'PY'
import sys
kind = sys.argv[1]
r0, r1, v0, v1, rn, vn = map(int, sys.argv[2:])
assert rn == vn, f"{kind}: key counts differ: redis {rn}, vigil {vn}"
r, v = r1 - r0, v1 - v0
print(f"| RSS, {rn:,} {kind} keys | - | {r/2**20:,.0f} MiB | {v/2**20:,.0f} MiB | {v/r:.2f} |")
PY
  stop_pair
done

mkdir -p target/bench
{ echo "redis-benchmark -n $N -c 50 -r 100000, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/datatypes.md
