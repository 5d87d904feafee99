"""redis-py with ssl=True through Vigil's sentinels on their TLS port (driven by
tests/tests/tls.rs).

Usage: tls_sentinel_client.py HOST:PORT CA_FILE CERT_FILE KEY_FILE

Discovers the master over TLS, writes and reads over TLS, prints `MASTER <port>` and READY,
waits for a line on stdin (the test kills the master), then keeps writing until a new master
acknowledges a write and prints `FAILOVER <old port> <new port>`. Failures exit non-zero.
"""

import sys
import time

from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.sentinel import MasterNotFoundError, Sentinel

RETRYABLE = (ConnectionError, TimeoutError, ReadOnlyError, MasterNotFoundError, OSError)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    ca = sys.argv[2]
    tls = {
        "ssl": True,
        "ssl_ca_certs": ca,
        "ssl_cert_reqs": "required",
        "ssl_certfile": sys.argv[3],
        "ssl_keyfile": sys.argv[4],
    }
    s = Sentinel([(host, int(port))], socket_timeout=1.0, sentinel_kwargs=dict(tls), **tls)
    old = s.discover_master("mymaster")
    print(f"MASTER {old[1]}", flush=True)
    master = s.master_for("mymaster", socket_timeout=1.0, **tls)
    if not master.set("tls:k", "v1") or master.get("tls:k") != b"v1":
        print("FAIL no write over TLS", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + 30
    while True:
        try:
            if master.set("tls:k", "v2"):
                break
        except RETRYABLE:
            pass
        if time.monotonic() > deadline:
            print("FAIL no new master within 30 s", flush=True)
            sys.exit(1)
        time.sleep(0.05)
    new = s.discover_master("mymaster")
    print(f"FAILOVER {old[1]} {new[1]}", flush=True)


if __name__ == "__main__":
    main()
