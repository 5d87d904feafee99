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
