#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what the suites need (redis-server for
# the differential tests, iproute2 for the partition tests, iptables for the drills' partition
# scenario, Chromium for the drill report's browser test, redis-py and ioredis for the client
# suites), checks formatting and lints, builds once, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The partition suite builds real network partitions from namespaces and veth links.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# `vigil drill --scenario partition-master` cuts a master off with packet filter rules.
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
# The drill's HTML report is rendered in a real headless browser.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The health-check suite puts a real HAProxy (option httpchk GET /primary) in front of a group.
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is required and could not be installed" >&2; exit 1; }
command -v ip >/dev/null 2>&1 || { echo "iproute2 (ip) is required and could not be installed" >&2; exit 1; }
command -v iptables >/dev/null 2>&1 || { echo "iptables is required and could not be installed" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "chromium is required and could not be installed" >&2; exit 1; }
command -v haproxy >/dev/null 2>&1 || { echo "haproxy is required and could not be installed" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "the partition suite creates network namespaces: run as root" >&2; exit 1; }

# Client libraries for the compatibility suites (tests/tests/clients.rs): redis-py in a venv
# under target/, ioredis and node-redis from tests/clients/node/package-lock.json.
if [ ! -x target/venv/bin/python ] || ! target/venv/bin/python -c 'import redis, prometheus_client' 2>/dev/null; then
  python3 -m venv target/venv
  target/venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/python/requirements.txt
fi
# (Again whenever the lock file changed since the last install.)
node_dir=tests/clients/node
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
  || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  (cd "$node_dir" && npm ci --silent --no-audit --no-fund)
fi

# A build from scratch (CI's) is quicker without incremental compilation's bookkeeping.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end suites start the real binary: build it before the tests that use it.
cargo build --workspace --bins --quiet
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --quiet "$@" 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with nothing in it).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
