# Shared by the benchmark scripts (sourced from the repository root): installs redis-server if
# missing, builds the release binary (unless VIGIL names one), makes a work directory, and
# kills every server started here (their PIDs in PIDS) on exit, even on failure.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# VIGIL=/path/to/vigil benchmarks another build (e.g. the previous release, for a before/after).
if [ -z "${VIGIL:-}" ]; then
  cargo build --release --bin vigil --quiet
  VIGIL="$PWD/target/release/vigil"
fi
WORK="$(mktemp -d)"
PIDS=()
# Throwaway servers: SIGKILL (a redis replica still loading its sync defers SIGTERM).
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

# gen_load KEYS FILE: KEYS SETs of 100-byte values as RESP, for redis-cli --pipe.
gen_load() {
  python3 - "$1" > "$2" <<'PY'
import sys
n = int(sys.argv[1]); v = "v" * 100
out = sys.stdout
for i in range(n):
    k = f"key:{i:010d}"
    out.write(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$100\r\n{v}\r\n")
PY
}

rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }

# start_pair: a redis-server (RPORT, RPID) and a vigil node (VPORT, VPID), both with appendonly
# on and appendfsync everysec, fresh data directories under WORK.
start_pair() {
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
stop_pair() { kill "$RPID" "$VPID" 2>/dev/null || true; wait "$RPID" "$VPID" 2>/dev/null || true; }

# ratio_rows LABEL REDIS_CSV VIGIL_CSV: table rows "| test | LABEL | redis | vigil | ratio |"
# from two files of "test,requests per second" lines.
ratio_rows() {
  python3 - "$2" "$3" "$1" <<'PY'
import sys
r = dict(l.strip().split(",", 1) for l in open(sys.argv[1]) if "," in l)
v = dict(l.strip().split(",", 1) for l in open(sys.argv[2]) if "," in l)
for t in r:
    a, b = float(r[t]), float(v.get(t, 0))
    print(f"| {t} | {sys.argv[3]} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
PY
}

# csv_rps: redis-benchmark --csv on stdin -> "test,rps" lines.
csv_rps() {
  python3 -c 'import csv,sys
for row in csv.reader(sys.stdin):
    if len(row) > 1 and row[0] != "test": print(row[0] + "," + row[1])'
}
