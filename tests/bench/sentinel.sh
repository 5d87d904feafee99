#!/usr/bin/env bash
# Sentinel benchmark: leader SIGKILL → new leader (p50/p99 over ROUNDS, default 20) and
# GetMaster latency and throughput on one sentinel of a 3-sentinel group, release build.
# Prints a markdown table and writes it to target/bench/sentinel.md.
# Usage: tests/bench/sentinel.sh   (ROUNDS=..., TICK=... e.g. "100ms", ELECTION_TICKS=...; default
# the sentinel defaults, 50ms and 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin vigil --bin bench_sentinel
mkdir -p target/bench
{ echo "3 sentinels on loopback, $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; ./target/release/bench_sentinel; } | tee target/bench/sentinel.md
