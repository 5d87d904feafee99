"""redis-py's Sentinel client writing through Vigil's sentinels to a group of stock servers
(driven by tests/tests/agentless.rs).

Usage: agentless_writer.py HOST:PORT[,HOST:PORT...] PASSWORD

SETs w:0, w:1, ... on the master the sentinels name (`master_for`), printing `ACK <i>` for
each write the master acknowledged, and retries a write that failed (connection lost, timeout,
READONLY from a demoted master, NOREPLICAS while the new master's replica syncs) until it is
acknowledged, as an application would. Stops when stdin says so (or closes) and prints DONE.
"""

import sys
import threading
import time

from redis.exceptions import RedisError
from redis.sentinel import Sentinel


def main():
    hosts = []
    for hp in sys.argv[1].split(","):
        h, port = hp.rsplit(":", 1)
        hosts.append((h, int(port)))
    password = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    s = Sentinel(hosts, socket_timeout=0.5, password=password)
    master = s.master_for("mymaster", socket_timeout=0.5, password=password)
    stop = threading.Event()

    def wait_stop():
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_stop, daemon=True).start()
    i = 0
    errors = 0
    while not stop.is_set():
        try:
            if master.set(f"w:{i}", str(i)):
                print(f"ACK {i}", flush=True)
                i += 1
        except RedisError as e:
            errors += 1
            if errors % 50 == 1:
                print(f"ERR {type(e).__name__}: {e}", flush=True)
            time.sleep(0.01)
    print(f"DONE {i} errors {errors}", flush=True)


if __name__ == "__main__":
    main()
