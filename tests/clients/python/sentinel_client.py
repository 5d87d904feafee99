"""redis-py against Vigil's sentinels, as an application would use it (driven by
tests/tests/clients.rs).

Usage: sentinel_client.py HOST:PORT[,HOST:PORT...] --protocol 2|3 [--asyncio]

Connects through the sentinels (`master_for` / `slave_for`), writes and reads, checks that a
replica serves reads, prints READY and waits for a line on stdin (the test kills the master),
then keeps writing until a write is acknowledged by a new master and prints
`FAILOVER <ms> <old> <new>`. Any failure exits non-zero with the reason.
"""

import argparse
import asyncio
import sys
import time

from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel

RETRYABLE = (ConnectionError, TimeoutError, ReadOnlyError, MasterNotFoundError)


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("sentinels")
    p.add_argument("--protocol", type=int, default=3)
    p.add_argument("--asyncio", action="store_true")
    a = p.parse_args()
    hosts = []
    for hp in a.sentinels.split(","):
        h, port = hp.rsplit(":", 1)
        hosts.append((h, int(port)))
    return hosts, a.protocol, a.asyncio


def fail(why):
    print(f"FAIL {why}", flush=True)
    sys.exit(1)


def run_sync(hosts, protocol):
    s = Sentinel(hosts, socket_timeout=1.0, protocol=protocol)
    old = s.discover_master("mymaster")
    master = s.master_for("mymaster", socket_timeout=1.0, protocol=protocol)
    replica = s.slave_for("mymaster", socket_timeout=1.0, protocol=protocol)
    if not master.set("py:k", "v1"):
        fail("SET not acknowledged")
    deadline = time.monotonic() + 10
    while replica.get("py:k") != b"v1":
        if time.monotonic() > deadline:
            fail("no replica served the write")
        time.sleep(0.02)
    print("READY", flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    while True:
        try:
            if master.set("py:k", "v2"):
                break
        except RETRYABLE:
            pass
        if time.monotonic() - start > 20:
            fail("no new master within 20 s")
        time.sleep(0.02)
    ms = (time.monotonic() - start) * 1000
    new = s.discover_master("mymaster")
    if new == old:
        fail(f"still the old master {old}")
    if master.get("py:k") != b"v2":
        fail("the write is not readable on the new master")
    print(f"FAILOVER {ms:.0f} {old[0]}:{old[1]} {new[0]}:{new[1]}", flush=True)


async def run_async(hosts, protocol):
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    s = AsyncSentinel(hosts, socket_timeout=1.0, protocol=protocol)
    old = await s.discover_master("mymaster")
    master = s.master_for("mymaster", socket_timeout=1.0, protocol=protocol)
    replica = s.slave_for("mymaster", socket_timeout=1.0, protocol=protocol)
    if not await master.set("py:k", "v1"):
        fail("SET not acknowledged")
    deadline = time.monotonic() + 10
    while await replica.get("py:k") != b"v1":
        if time.monotonic() > deadline:
            fail("no replica served the write")
        await asyncio.sleep(0.02)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.monotonic()
    while True:
        try:
            if await master.set("py:k", "v2"):
                break
        except RETRYABLE:
            pass
        if time.monotonic() - start > 20:
            fail("no new master within 20 s")
        await asyncio.sleep(0.02)
    ms = (time.monotonic() - start) * 1000
    new = await s.discover_master("mymaster")
    if new == old:
        fail(f"still the old master {old}")
    print(f"FAILOVER {ms:.0f} {old[0]}:{old[1]} {new[0]}:{new[1]}", flush=True)


def main():
    hosts, protocol, use_asyncio = parse()
    if use_asyncio:
        asyncio.run(run_async(hosts, protocol))
    else:
        run_sync(hosts, protocol)


if __name__ == "__main__":
    main()
