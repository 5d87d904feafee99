#!/usr/bin/env bash
# Discovery benchmark: `SENTINEL get-master-addr-by-name` throughput on one Vigil sentinel
# (a `vigil up` cluster: 3 nodes, 3 sentinels) and on one redis-sentinel (3 redis-server, 3
# redis-sentinel), in the same run, with redis-benchmark: 50 clients, -P 1 and -P 16. Release
# build. Prints a markdown table and writes it to target/bench/discovery.md.
# Usage: tests/bench/discovery.sh   (REQUESTS=..., default 500000)
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

rps() { # port pipeline [redis-benchmark flags]
  redis-benchmark -p "$1" -c 50 -n "$N" -P "$2" "${@:3}" -q SENTINEL get-master-addr-by-name mymaster \
    | tr '\r' '\n' | awk '/requests per second/ { for (i = 1; i <= NF; i++) if ($i == "requests") print $(i-1) }' | tail -1
}
{
  echo "SENTINEL get-master-addr-by-name, redis-benchmark -c 50 -n $N, $(nproc) cores, $(date -u +%Y-%m-%d), $(redis-server --version | cut -d' ' -f1-3)"
  echo
  echo "| client, pipeline | Vigil sentinel req/s | redis-sentinel req/s | ratio |"
  echo "| --- | --- | --- | --- |"
  for p in 1 16; do
    v=$(rps "$RESP" "$p"); r=$(rps "$RS" "$p")
    echo "| redis-benchmark -P $p | $v | $r | $(python3 -c "print(f'{$v/$r:.2f}')") |"
  done
  # A two-thread client: at -P 1 a one-thread client is the limit for both servers.
  for p in 1 16; do
    v=$(rps "$RESP" "$p" --threads 2); r=$(rps "$RS" "$p" --threads 2)
    echo "| redis-benchmark --threads 2 -P $p | $v | $r | $(python3 -c "print(f'{$v/$r:.2f}')") |"
  done
  # The same with bench_lookup (tests/src/bin/bench_lookup.rs), a leaner client, so that the
  # servers rather than redis-benchmark set the pace.
  for p in 1 16; do
    read -r v r < <(PIPELINE=$p ./target/release/bench_lookup "$RESP" "$RS")
    echo "| bench_lookup -P $p | $v | $r | $(python3 -c "print(f'{$v/$r:.2f}')") |"
  done
} | tee target/bench/discovery.md
