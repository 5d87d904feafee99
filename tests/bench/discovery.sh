#!/usr/bin/env bash
# Discovery benchmark: `SENTINEL get-master-addr-by-name` throughput on one Vigil sentinel
# (a `vigil up` cluster: 3 nodes, 3 sentinels) and on one redis-sentinel (3 redis-server, 3
# redis-sentinel), in the same run, with redis-benchmark: 50 clients, -P 1 and -P 16. Release
# build. Prints a markdown table and writes it to target/bench/discovery.md.
# Usage: tests/bench/discovery.sh   (REQUESTS=... per -P 1 run, default 500000, x8 at -P 16;
# ROUNDS=3 alternating rounds; SECS=3 per bench_lookup run)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/bench/common.sh
cargo build --release --quiet --bin bench_lookup
N="${REQUESTS:-500000}"

# Vigil: a local cluster on free ports.
base() { python3 -c 'import socket
while True:
    s=[socket.socket() for _ in range(3)]
    try:
        s[0].bind(("127.0.0.1",0)); p=s[0].getsockname()[1]
        if p > 60000: continue
        s[1].bind(("127.0.0.1",p+1)); s[2].bind(("127.0.0.1",p+2)); print(p); break
    except OSError: pass
    finally: [x.close() for x in s]'; }
DATA=$(base); ADMIN=$(base); GRPC=$(base); RESP=$(base)
cat > "$WORK/local.toml" <<CONF
dir = "$WORK/cluster"
base_port = $DATA
admin_base_port = $ADMIN
grpc_base_port = $GRPC
resp_base_port = $RESP
group = "mymaster"
down_after = "5s"
sync_replicas = 0
token = "bench"
node_token = "bench-nodes"
CONF
"$VIGIL" up --config "$WORK/local.toml" > "$WORK/up.log" 2>&1 &
UP=$!
# `vigil up` stops its nodes and sentinels on SIGTERM (SIGKILL would orphan them).
stop_up() { kill -TERM "$UP" 2>/dev/null && wait "$UP" 2>/dev/null; cleanup; }
trap stop_up EXIT
for _ in $(seq 300); do
  [ "$(redis-cli -p "$RESP" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | wc -l)" = 2 ] && break
  sleep 0.1
done
[ "$(redis-cli -p "$RESP" SENTINEL get-master-addr-by-name mymaster | wc -l)" = 2 ] || { echo "vigil cluster has no master" >&2; cat "$WORK/up.log" >&2; exit 1; }

# Redis Sentinel, deployed alike: a master, two replicas, three sentinels.
RM=$(free_port); RR1=$(free_port); RR2=$(free_port)
for p in "$RM" "$RR1" "$RR2"; do
  extra=(); [ "$p" = "$RM" ] || extra=(--replicaof 127.0.0.1 "$RM")
  mkdir -p "$WORK/r$p"
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/r$p" "${extra[@]}" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_ping "$p"
done
RS=""
for i in 1 2 3; do
  sp=$(free_port); [ -n "$RS" ] || RS=$sp
  printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 2\n' "$sp" "$WORK" "$RM" > "$WORK/sentinel$i.conf"
  redis-server "$WORK/sentinel$i.conf" --sentinel >/dev/null 2>&1 &
  PIDS+=($!)
  wait_ping "$sp"
done

ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-3}"
# Each client prints "<req/s> <requests>" for the server on port $1 at pipeline $2.
redis_bench() { # port pipeline [redis-benchmark flags]
  local n=$N; [ "$2" = 1 ] || n=$((N * 8))
  redis-benchmark -p "$1" -c 50 -n "$n" -P "$2" "${@:3}" -q SENTINEL get-master-addr-by-name mymaster \
    | tr '\r' '\n' | awk -v n="$n" '/requests per second/ { for (i = 1; i <= NF; i++) if ($i == "requests") r = $(i-1) } END { print r, n }'
}
# bench_lookup (tests/src/bin/bench_lookup.rs): a leaner client, so that the servers rather
# than redis-benchmark set the pace.
lean_bench() { # port pipeline
  local r; r=$(PIPELINE=$2 SECS=$SECS ./target/release/bench_lookup "$1"); echo "$r $((${r%.*} * SECS))"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)/stat"; }
# row LABEL CLIENT PIPELINE [FLAGS]: the client against each server in turn, ROUNDS times
# alternating (this machine's speed drifts); medians of req/s and of the server's CPU time per
# lookup (user + system: on two cores client and server share the machine, so throughput is
# partly the client's, CPU per lookup is the server's own cost).
row() {
  local label=$1 client=$2 out=()
  shift 2
  for _ in $(seq "$ROUNDS"); do
    for port in "$RESP" "$RS"; do
      local t0 t1 rate reqs
      t0=$(cpu_ticks "$port")
      read -r rate reqs < <("$client" "$port" "$@")
      t1=$(cpu_ticks "$port")
      out+=("$port $rate $(python3 -c "print(($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / $reqs)")")
    done
  done
  printf '%s\n' "${out[@]}" | python3 -c "
import statistics, sys
rows = [l.split() for l in sys.stdin]
med = lambda port, i: statistics.median(float(r[i]) for r in rows if r[0] == port)
v, r, vc, rc = med('$RESP', 1), med('$RS', 1), med('$RESP', 2), med('$RS', 2)
print(f'| $label | {v:,.0f} | {r:,.0f} | {v / r:.2f} | {vc:.2f} | {rc:.2f} |')"
}
{
  echo "SENTINEL get-master-addr-by-name, 50 connections, medians of $ROUNDS alternating rounds, $(nproc) cores, $(date -u +%Y-%m-%d), $(redis-server --version | cut -d' ' -f1-3)"
  echo
  echo "| client, pipeline | Vigil sentinel req/s | redis-sentinel req/s | ratio | Vigil CPU µs/lookup | redis-sentinel CPU µs/lookup |"
  echo "| --- | --- | --- | --- | --- | --- |"
  row "redis-benchmark -P 1" redis_bench 1
  row "redis-benchmark -P 16" redis_bench 16
  # A two-thread client: at -P 1 a one-thread client is the limit for both servers.
  row "redis-benchmark --threads 2 -P 1" redis_bench 1 --threads 2
  row "redis-benchmark --threads 2 -P 16" redis_bench 16 --threads 2
  row "bench_lookup -P 1" lean_bench 1
  row "bench_lookup -P 16" lean_bench 16
} | tee target/bench/discovery.md
