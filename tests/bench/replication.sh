#!/usr/bin/env bash
# Replication beside the anchor, in one run on one machine: a redis-server master/replica pair
# and a vigil node master/replica pair, measured the same way, one pair at a time.
#   1. Replica lag while `redis-benchmark -t set -P 16 -c 50` loads the master: a probe writes
#      a key on the master every 10 ms and times how long until the replica serves it
#      (p50 / p99 / max, ms), and samples master offset - replica offset (bytes, p50 / p99).
#   2. Full sync of 1M keys (100-byte values): REPLICAOF → link up with the offset caught up,
#      and the master's longest PING round trip meanwhile (how long its clients stall).
# Prints a markdown table and writes it to target/bench/replication.md.
# Usage: tests/bench/replication.sh [N]   (N: SETs of the load, default 2000000; KEYS=...)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-2000000}"
KEYS="${KEYS:-1000000}"

source tests/bench/common.sh

# start KIND NAME PORT: one server with appendonly everysec (vigil: one worker thread, like
# redis-server's one event loop).
start() {
  mkdir -p "$WORK/$2"
  if [ "$1" = redis ]; then
    # Diskless sync without its default 5 s wait for more replicas, so the sync time is the
    # transfer, not a timer.
    redis-server --port "$3" --bind 127.0.0.1 --dir "$WORK/$2" --save '' --appendonly yes \
      --appendfsync everysec --repl-diskless-sync-delay 0 --daemonize no >/dev/null 2>&1 &
  else
    printf 'threads = 1\n' > "$WORK/$2.toml"
    "$VIGIL" node --config "$WORK/$2.toml" --port "$3" --dir "$WORK/$2" >/dev/null 2>"$WORK/$2.log" &
  fi
  PIDS+=("$!"); wait_ping "$3"
}
# Throwaway servers: SIGKILL (a redis replica still loading its sync defers SIGTERM).
stop_all() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# The measuring side: plain sockets, no client library, identical for both servers.
cat > "$WORK/probe.py" <<'PY'
import socket, sys, time, threading, statistics

def conn(port):
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")

def cmd(c, *args):
    s, f = c
    s.sendall(b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x for x in args)]))
    return read(f)

def read(f):
    line = f.readline()
    t = line[:1]
    if t in (b"+", b"-", b":"): return line[1:-2]
    if t == b"$":
        n = int(line[1:-2])
        if n < 0: return None
        d = f.read(n + 2); return d[:-2]
    if t == b"*":
        return [read(f) for _ in range(int(line[1:-2]))]
    raise RuntimeError(line)

def info(c, field):
    for l in cmd(c, "INFO", "replication").decode().split("\r\n"):
        if l.startswith(field + ":"): return l.split(":", 1)[1]

def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]

def lag(mport, rport, stop_file):
    m, r, mi, ri = conn(mport), conn(rport), conn(mport), conn(rport)
    lat, gap, i = [], [], 0
    import os
    while not os.path.exists(stop_file):
        i += 1; key = f"probe:{i}"
        t0 = time.monotonic(); cmd(m, "SET", key, "1")
        while cmd(r, "GET", key) is None:
            if time.monotonic() - t0 > 10: raise SystemExit("replica did not get a probe in 10 s")
        lat.append((time.monotonic() - t0) * 1000)
        mo = int(info(mi, "master_repl_offset")); ro = int(info(ri, "slave_repl_offset"))
        gap.append(max(0, mo - ro))
        time.sleep(0.01)
    print(f"{pct(lat,.5):.2f} {pct(lat,.99):.2f} {max(lat):.2f} {pct(gap,.5)} {pct(gap,.99)} {len(lat)}")

def fullsync(mport, rport):
    m, r = conn(mport), conn(rport)
    stalls, done = [], threading.Event()
    def pinger():
        p = conn(mport)
        while not done.is_set():
            t = time.monotonic(); cmd(p, "PING"); stalls.append((time.monotonic() - t) * 1000); time.sleep(0.002)
    th = threading.Thread(target=pinger); th.start()
    t0 = time.monotonic()
    cmd(r, "REPLICAOF", "127.0.0.1", str(mport))
    while True:
        if info(r, "master_link_status") == "up" and info(r, "slave_repl_offset") == info(m, "master_repl_offset"):
            break
        time.sleep(0.005)
    took = time.monotonic() - t0
    done.set(); th.join()
    keys = int(cmd(r, "DBSIZE"))
    print(f"{took*1000:.0f} {max(stalls):.1f} {keys}")

if sys.argv[1] == "lag": lag(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
else: fullsync(int(sys.argv[2]), int(sys.argv[3]))
PY

gen_load "$KEYS" "$WORK/load.resp"

declare -A LAG SYNC
for KIND in redis vigil; do
  MP=$(free_port); RP=$(free_port)
  start "$KIND" "$KIND-m" "$MP"; start "$KIND" "$KIND-r" "$RP"
  redis-cli -p "$RP" replicaof 127.0.0.1 "$MP" >/dev/null
  until [ "$(redis-cli -p "$RP" info replication | tr -d '\r' | awk -F: '/master_link_status/ {print $2}')" = up ]; do sleep 0.05; done
  rm -f "$WORK/stop"
  python3 "$WORK/probe.py" lag "$MP" "$RP" "$WORK/stop" > "$WORK/$KIND.lag" &
  PROBE=$!
  redis-benchmark -p "$MP" -t set -n "$N" -r 100000 -c 50 -P 16 -q > "$WORK/$KIND.bench" 2>/dev/null
  touch "$WORK/stop"; wait "$PROBE"
  LAG[$KIND]="$(cat "$WORK/$KIND.lag") $(grep -o '[0-9.]* requests per second' "$WORK/$KIND.bench" | awk '{print $1}')"
  stop_all

  MP=$(free_port); RP=$(free_port)
  start "$KIND" "$KIND-m2" "$MP"; start "$KIND" "$KIND-r2" "$RP"
  redis-cli -p "$MP" --pipe < "$WORK/load.resp" >/dev/null
  SYNC[$KIND]="$(python3 "$WORK/probe.py" fullsync "$MP" "$RP")"
  stop_all
done

python3 - "${LAG[redis]}" "${LAG[vigil]}" "${SYNC[redis]}" "${SYNC[vigil]}" > "$WORK/table" <<'PY'
import sys
rl, vl, rs, vs = (a.split() for a in sys.argv[1:])
print("| measure | redis-server | vigil node | ratio (vigil / redis) |")
print("| --- | --- | --- | --- |")
names = ["replica lag p50 (ms)", "replica lag p99 (ms)", "replica lag max (ms)", "offset gap p50 (bytes)", "offset gap p99 (bytes)"]
for i, n in enumerate(names):
    a, b = float(rl[i]), float(vl[i])
    print(f"| {n} | {a:,.2f} | {b:,.2f} | {b / a:.2f} |" if a else f"| {n} | {a:,.2f} | {b:,.2f} | - |")
print(f"| probes during the load | {rl[5]} | {vl[5]} | - |")
print(f"| master SET -P 16 under replication (req/s) | {float(rl[6]):,.0f} | {float(vl[6]):,.0f} | {float(vl[6]) / float(rl[6]):.2f} |")
assert rs[2] == vs[2], f"key counts differ after full sync: redis {rs[2]}, vigil {vs[2]}"
print(f"| full sync of {int(rs[2]):,} keys (ms) | {float(rs[0]):,.0f} | {float(vs[0]):,.0f} | {float(vs[0]) / float(rs[0]):.2f} |")
print(f"| master's longest PING during it (ms) | {float(rs[1]):.1f} | {float(vs[1]):.1f} | {float(vs[1]) / float(rs[1]):.2f} |")
PY
mkdir -p target/bench
{ echo "redis-benchmark -t set -n $N -r 100000 -c 50 -P 16 on the master, $(redis-server --version | awk '{print $3}'), $(nproc) cores, $(date -u +%Y-%m-%d)"; echo; cat "$WORK/table"; } | tee target/bench/replication.md
