"""Application patterns built on scripts and streams, through redis-py's Sentinel client (driven
by tests/tests/apps.rs): a `Lock` (Lua), a `register_script` rate limiter, and a stream
consumer group whose dead consumer's entries another consumer takes over with XAUTOCLAIM.

Usage: apps.py HOST:PORT[,HOST:PORT...]

Phase one sets everything up on the master: the lock is held, the limiter has counted, consumer
c1 has read and acknowledged its share of the stream and consumer c2 has read its share and
"died" without acknowledging. It prints READY and waits for a line on stdin (the test fails the
master over meanwhile). Phase two runs on the new master: the lock is still held by its owner
and refuses another, the limiter goes on counting (its script reloaded by redis-py if needed),
c1 claims c2's pending entries with XAUTOCLAIM and acknowledges them, and every entry has been
processed exactly once. Prints `OK <entries>`; any failure prints `FAIL <why>` and exits 1.
"""

import sys
import time

from redis.exceptions import ConnectionError, LockNotOwnedError, ReadOnlyError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel

RETRYABLE = (ConnectionError, TimeoutError, ReadOnlyError, MasterNotFoundError)
ENTRIES = 200

LIMITER = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then return {n, 0} end
return {n, 1}
"""


def fail(why):
    print(f"FAIL {why}", flush=True)
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


def retry(f):
    """Runs f until the group has a master that acknowledges it (during a failover)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return f()
        except RETRYABLE:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    hosts = []
    for hp in sys.argv[1].split(","):
        h, port = hp.rsplit(":", 1)
        hosts.append((h, int(port)))
    s = Sentinel(hosts, socket_timeout=1.0)
    r = s.master_for("mymaster", socket_timeout=2.0)

    # A lock, as applications take them: acquire, refuse a second holder, extend.
    lock = r.lock("app:lock", timeout=60, blocking=False)
    check(lock.acquire(), "the lock was not acquired")
    other = r.lock("app:lock", timeout=60, blocking=False)
    check(not other.acquire(), "a second holder acquired a held lock")
    check(lock.extend(30), "the lock was not extended")
    try:
        other.do_release(b"not-the-owner")  # the Lua compare-and-delete redis-py releases with
        fail("releasing a lock held by another token succeeded")
    except LockNotOwnedError:
        pass

    # A rate limiter script: 5 calls allowed per window.
    limiter = r.register_script(LIMITER)
    got = [limiter(keys=["app:rate"], args=[60000, 5]) for _ in range(7)]
    check(got == [[i, 1] for i in range(1, 6)] + [[6, 0], [7, 0]], f"limiter said {got}")

    # A stream with a consumer group; c1 processes and acknowledges, c2 reads and dies.
    r.delete("app:events")
    r.xgroup_create("app:events", "workers", id="$", mkstream=True)
    ids = [r.xadd("app:events", {"n": str(i), "kind": "job"}) for i in range(ENTRIES)]
    check(r.xlen("app:events") == ENTRIES, "XLEN is wrong")
    done = {}
    half = ENTRIES // 2
    for _, entries in r.xreadgroup("workers", "c1", {"app:events": ">"}, count=half):
        for eid, fields in entries:
            done[eid] = done.get(eid, 0) + 1
            r.xack("app:events", "workers", eid)
    dead = r.xreadgroup("workers", "c2", {"app:events": ">"}, count=ENTRIES)
    dead_ids = [eid for _, entries in dead for eid, _ in entries]
    check(len(dead_ids) == ENTRIES - half, f"c2 read {len(dead_ids)} entries")
    pending = r.xpending("app:events", "workers")
    check(pending["pending"] == len(dead_ids), f"XPENDING says {pending}")
    # The sync-mode master acknowledged all of this only once a replica held it.
    print("READY", flush=True)
    sys.stdin.readline()

    # On the new master: the lock and the group's pending entries survived.
    check(retry(lambda: r.get("app:lock")) == lock.local.token, "the lock's owner was lost")
    other = r.lock("app:lock", timeout=60, blocking=False)
    check(not retry(other.acquire), "a second holder acquired the lock after the failover")
    got = retry(lambda: limiter(keys=["app:rate"], args=[60000, 5]))
    check(got == [8, 0], f"limiter said {got} after the failover")
    pending = retry(lambda: r.xpending("app:events", "workers"))
    check(pending["pending"] == len(dead_ids), f"XPENDING after the failover says {pending}")
    time.sleep(0.2)
    cursor = "0-0"
    claimed = []
    while True:
        reply = retry(
            lambda: r.xautoclaim("app:events", "workers", "c1", min_idle_time=100, start_id=cursor, count=25)
        )
        cursor, entries = reply[0], reply[1]
        for eid, fields in entries:
            claimed.append(eid)
            done[eid] = done.get(eid, 0) + 1
            r.xack("app:events", "workers", eid)
        if cursor in (b"0-0", "0-0"):
            break
    check(sorted(claimed) == sorted(dead_ids), "XAUTOCLAIM did not hand over exactly c2's entries")
    check(sorted(done) == sorted(ids), f"{len(done)} of {ENTRIES} entries processed")
    check(all(n == 1 for n in done.values()), "an entry was processed twice")
    check(r.xpending("app:events", "workers")["pending"] == 0, "entries still pending")
    consumers = {c["name"]: c["pending"] for c in r.xinfo_consumers("app:events", "workers")}
    check(consumers == {b"c1": 0, b"c2": 0}, f"XINFO CONSUMERS says {consumers}")
    lock.release()
    check(r.get("app:lock") is None, "the released lock is still there")
    print(f"OK {ENTRIES}", flush=True)


if __name__ == "__main__":
    main()
