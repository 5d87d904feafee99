#!/usr/bin/env bash
# Import proof at scale: redis-server is loaded with KEYS mixed keys (strings and integers,
# lists, hashes, sets, sorted sets, each in small and big encodings, a share with expiries),
# SAVEs its RDB, and `vigil node --import` loads it. Reports the time taken and compares the
# key count and DEBUG DIGEST (a digest of every key, value and expiry; equal digests mean equal
# datasets), then again after a restart of the node from its own snapshot.
# Usage: tests/bench/import.sh   (KEYS=... default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS="${KEYS:-1000000}"

source tests/bench/common.sh

python3 - "$KEYS" > "$WORK/load.resp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
def cmd(*a):
    out.write(f"*{len(a)}\r\n" + "".join(f"${len(x)}\r\n{x}\r\n" for x in map(str, a)))
for i in range(n):
    # Mostly small values (compact encodings); every 1000th aggregate is big (indexed ones).
    k, kind, big = f"k:{i}", i % 10, i % 1000 < 10
    if kind in (0, 1):
        cmd("SET", k, f"value-{i}" * (1 + i % 7))
    elif kind == 2:
        cmd("SET", k, i * 7919)
    elif kind == 3:
        cmd("RPUSH", k, *[f"e{j}" for j in range(3 + i % 7 + 300 * big)])
    elif kind == 4:
        cmd("HSET", k, *sum(([f"f{j}", f"v{i}-{j}"] for j in range(2 + i % 7 + 600 * big)), []))
    elif kind == 5:
        cmd("SADD", k, *[j * 3 for j in range(2 + i % 7 + 700 * big)])
    elif kind == 6:
        cmd("SADD", k, *[f"m{j}" for j in range(2 + i % 40)])
    elif kind == 7:
        cmd("ZADD", k, *sum(([j / 7, f"z{j}"] for j in range(2 + i % 7 + 200 * big)), []))
    elif kind == 8:
        cmd("ZADD", k, *sum(([j, f"m{j}-{'x' * (i % 80)}"] for j in range(3)), []))
    else:
        cmd("SET", k, "x", "PX", 3_600_000 + i)
PY

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK" --dbfilename dump.rdb --save '' \
  --appendonly no --enable-debug-command yes --daemonize no >/dev/null 2>&1 &
RPID=$!; PIDS+=("$RPID")
wait_ping "$RPORT"
redis-cli -p "$RPORT" --pipe < "$WORK/load.resp" >/dev/null
redis-cli -p "$RPORT" SAVE >/dev/null
RN=$(redis-cli -p "$RPORT" DBSIZE); RD=$(redis-cli -p "$RPORT" DEBUG DIGEST)
RDB_MB=$(( $(stat -c %s "$WORK/dump.rdb") / 1048576 ))
echo "redis-server: $RN keys, RDB $RDB_MB MiB, digest $RD"
# A big dataset takes a while to load: wait up to 5 minutes for the first PING.
wait_long() { for _ in $(seq 3000); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

VPORT=$(free_port)
started=$(date +%s.%N)
"$VIGIL" node --port "$VPORT" --admin-port 0 --dir "$WORK/vigil" --import "$WORK/dump.rdb" \
  >/dev/null 2>"$WORK/vigil.log" &
VPID=$!; PIDS+=("$VPID")
wait_long "$VPORT"
took=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
VN=$(redis-cli -p "$VPORT" DBSIZE); VD=$(redis-cli -p "$VPORT" DEBUG DIGEST)
echo "vigil --import: $VN keys in ${took}s (start to first PING), digest $VD"
kill "$VPID"; wait "$VPID" 2>/dev/null || true
"$VIGIL" node --port "$VPORT" --admin-port 0 --dir "$WORK/vigil" >/dev/null 2>>"$WORK/vigil.log" &
VPID=$!; PIDS+=("$VPID")
wait_long "$VPORT"
AN=$(redis-cli -p "$VPORT" DBSIZE); AD=$(redis-cli -p "$VPORT" DEBUG DIGEST)

echo "vigil restarted: $AN keys, digest $AD"
[ "$RN" = "$VN" ] && [ "$RD" = "$VD" ] && [ "$VN" = "$AN" ] && [ "$VD" = "$AD" ] \
  && echo "equal: every key, value and expiry" || { echo "DIFFERENT"; exit 1; }
