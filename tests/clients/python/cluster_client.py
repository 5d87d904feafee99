"""redis-py's RedisCluster against a Vigil sharded cluster, unchanged, as an application uses it
(driven by tests/tests/cluster.rs).

Usage: cluster_client.py HOST:PORT MODE [--asyncio]

MODE `basic`: writes and reads keys across every slot, reads them again from replicas
(`read_from_replicas`), runs a pipeline and a transaction within one slot, and checks that a
multi-key command across slots is refused; prints `OK <keys>`.

MODE `failover`: writes keys one by one, 10 ms apart (the suite runs four such writers beside
a 12-process cluster on 2 cores), prints READY once some are acknowledged and keeps
writing; after a line on stdin (the test killed a shard's master, or moved slots) it goes on
until writes have gone through for 3 s, at least 10 s after that, then reads every acknowledged key back
and prints `OK acked=<n> retried=<n> longest_wait_ms=<ms>`. A key acknowledged and then
missing fails the run.
"""

import asyncio
import select
import sys
import time

from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError

KEYS = 2000
# The failover mode's pause between two writes.
PACE = 0.01


def fail(why):
    print(f"FAIL {why}", flush=True)
    sys.exit(1)


def patient(call):
    """`call()`, again while it fails with CLUSTERDOWN for up to 20 s: a master whose write
    lease lapses for a moment (a late renewal on a loaded machine) answers CLUSTERDOWN, which
    redis-py retries only for about a second before handing it to the application."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return call()
        except ClusterDownError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def basic(rc, reader):
    for i in range(KEYS):
        if not patient(lambda: rc.set(f"k:{i}", str(i))):
            fail(f"SET k:{i} not acknowledged")
    for i in range(KEYS):
        got = rc.get(f"k:{i}")
        if got != str(i).encode():
            fail(f"GET k:{i} = {got!r}")
    # Replicas get the writes asynchronously: poll until each key is there.
    deadline = time.monotonic() + 20
    for i in range(0, KEYS, 7):
        while reader.get(f"k:{i}") != str(i).encode():
            if time.monotonic() > deadline:
                fail(f"a replica never served k:{i}")
            time.sleep(0.01)
    def pipelined():
        pipe = rc.pipeline(transaction=False)
        for i in range(50):
            pipe.set(f"{{tag}}:{i}", i)
        for i in range(50):
            pipe.get(f"{{tag}}:{i}")
        return pipe.execute()

    res = patient(pipelined)
    if res[50:] != [str(i).encode() for i in range(50)]:
        fail(f"pipeline GETs {res[50:]!r}")

    # Keys of one slot in a transaction (refused whole with CLUSTERDOWN, so asked again).
    def transaction():
        tx = rc.pipeline(transaction=True)
        tx.set("{acct}:a", "x")
        tx.incr("{acct}:b")
        return tx.execute()

    res = patient(transaction)
    if len(res) != 2 or res[1] != 1:
        fail(f"transaction {res!r}")
    try:
        rc.execute_command("MSET", "foo", "1", "hello", "2")
        fail("MSET across slots was accepted")
    except (RedisClusterException, RedisError) as e:
        # redis-py refuses it itself; the server would answer CROSSSLOT.
        if "CROSSSLOT" not in str(e) and "same key slot" not in str(e):
            fail(f"MSET across slots: {e}")
    print(f"OK {KEYS}", flush=True)


def failover(rc):
    acked, retried, i = [], 0, 0
    ready = resumed = None
    last_fail = 0.0
    last_ack = time.monotonic()
    gap = 0.0
    while True:
        key = f"f:{i}"
        try:
            if rc.set(key, str(i)):
                acked.append(key)
                i += 1
                now = time.monotonic()
                gap = max(gap, now - last_ack - PACE) if ready else gap
                last_ack = now
                time.sleep(PACE)
        except (RedisClusterException, RedisError):
            retried += 1
            last_fail = time.monotonic()
            time.sleep(0.05)
            continue
        now = time.monotonic()
        if ready is None and len(acked) >= 50:
            ready = True
            print("READY", flush=True)
        if ready and resumed is None and select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            resumed = last_ack = now
        # Done 10 s after the kill, once writes have gone through for the last 3 s (the
        # client's own retries may hide the outage entirely: the longest wait for an
        # acknowledgement since READY is what it cost).
        if resumed is not None and now - resumed > 10 and now - last_fail > 3:
            break
        if resumed is not None and now - resumed > 60:
            fail("writes kept failing for 60 s after the master was killed")
    for k in acked:
        deadline = time.monotonic() + 20
        while True:
            try:
                v = rc.get(k)
                break
            except (RedisClusterException, RedisError) as e:
                if time.monotonic() > deadline:
                    fail(f"GET {k}: {e}")
                time.sleep(0.05)
        if v != k.split(":")[1].encode():
            fail(f"acknowledged {k} reads {v!r}")
    print(f"OK acked={len(acked)} retried={retried} longest_wait_ms={int(gap * 1000)}", flush=True)


async def patient_async(call):
    """[patient] for the asyncio client."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await call()
        except ClusterDownError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def basic_async(host, port):
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    rc = AsyncCluster(host=host, port=port)
    for i in range(KEYS):
        if not await patient_async(lambda: rc.set(f"ak:{i}", str(i))):
            fail(f"SET ak:{i}")
    for i in range(KEYS):
        if await rc.get(f"ak:{i}") != str(i).encode():
            fail(f"GET ak:{i}")
    await rc.aclose()
    print(f"OK {KEYS}", flush=True)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    mode = sys.argv[2]
    if "--asyncio" in sys.argv:
        asyncio.run(basic_async(host, int(port)))
        return
    rc = RedisCluster(host=host, port=int(port), socket_timeout=2)
    if mode == "basic":
        reader = RedisCluster(host=host, port=int(port), read_from_replicas=True)
        basic(rc, reader)
    elif mode == "failover":
        failover(rc)
    else:
        fail(f"unknown mode {mode}")


main()
