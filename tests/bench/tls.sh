#!/usr/bin/env bash
# TLS throughput beside the anchor, in one run on one machine:
#   redis-benchmark --tls -t set,get -n N -c 50 at -P 1 and -P 16 against `vigil node` and
#   `redis-server`, both TLS only (port 0 + tls-port) with the same certificates (made here with
#   the openssl CLI), appendonly on, appendfsync everysec, clients not asked for certificates.
# Prints a markdown table of ratios (vigil / redis) and writes it to target/bench/tls.md.
# Usage: tests/bench/tls.sh [N]   (N defaults to 200000; VIGIL_THREADS as in node.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-200000}"
TESTS="set,get"

source tests/bench/common.sh

# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/server.crt" 2>/dev/null

TLS_CLI=(--tls --cacert "$WORK/ca.crt")
tls_ping() { for _ in $(seq 100); do redis-cli -p "$1" "${TLS_CLI[@]}" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

start_tls_pair() {
  RPORT=$(free_port); VPORT=$(free_port)
  rm -rf "$WORK/redis" "$WORK/vigil"; mkdir -p "$WORK/redis" "$WORK/vigil"
  redis-server --port 0 --tls-port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --tls-cert-file "$WORK/server.crt" --tls-key-file "$WORK/server.key" \
    --tls-ca-cert-file "$WORK/ca.crt" --tls-auth-clients no \
    --appendonly yes --appendfsync everysec --daemonize no >/dev/null 2>&1 &
  RPID=$!; PIDS+=("$RPID")
  printf 'threads = %s\n' "${VIGIL_THREADS:-1}" > "$WORK/vigil.toml"
  "$VIGIL" node --config "$WORK/vigil.toml" --port 0 --tls-port "$VPORT" --dir "$WORK/vigil" \
    --tls-cert-file "$WORK/server.crt" --tls-key-file "$WORK/server.key" \
    --tls-ca-cert-file "$WORK/ca.crt" --tls-auth-clients no --appendfsync everysec \
    >/dev/null 2>"$WORK/vigil.log" &
  VPID=$!; PIDS+=("$VPID")
  tls_ping "$RPORT"; tls_ping "$VPORT"
}

bench() { # port pipeline -> csv lines "test,rps"
  redis-benchmark -p "$1" "${TLS_CLI[@]}" -t "$TESTS" -n "$N" -c 50 -P "$2" -q --csv 2>/dev/null | csv_rps
}

echo "| test | pipeline | redis-server TLS (req/s) | vigil node TLS (req/s) | ratio |" > "$WORK/table"
echo "| --- | --- | --- | --- | --- |" >> "$WORK/table"
for P in 1 16; do
  start_tls_pair
  bench "$RPORT" "$P" > "$WORK/r$P"
  bench "$VPORT" "$P" > "$WORK/v$P"
  stop_pair
  ratio_rows "$P" "$WORK/r$P" "$WORK/v$P" >> "$WORK/table"
done

mkdir -p target/bench
{ echo "redis-benchmark --tls -n $N -c 50, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/tls.md
