#!/usr/bin/env bash
# Failover benchmark: SIGKILL of the master → first acknowledged write on the new master found
# through discovery, p50/p99 over ROUNDS (default 20) at down_after 200 ms and 1 s, for Vigil
# (vigil node), Vigil with stock redis-servers owned by vigil agents, and Redis Sentinel
# (redis-server + redis-sentinel from the distribution) in the same run; then the zombie-master
# round (ZOMBIE_ROUNDS, default 3) on the stock-server systems: acknowledged writes lost.
# Release build. Prints markdown tables and writes them to target/bench/failover.md.
# Usage: tests/bench/failover.sh   (ROUNDS=..., ZOMBIE_ROUNDS=..., ONLY=vigil,agent,redis)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-sentinel >/dev/null
fi
cargo build --release --quiet --bin vigil --bin bench_failover
mkdir -p target/bench
{ echo "3 nodes + 3 sentinels on loopback, $(nproc) cores, $(date -u +%Y-%m-%d), $(redis-server --version | cut -d' ' -f1-3)"; echo; ./target/release/bench_failover; } | tee target/bench/failover.md
