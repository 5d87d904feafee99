"""redis-py's CLIENT TRACKING API against the server on argv[1], the way a RESP2 application
builds its own client-side cache: invalidations redirected to a pub/sub connection subscribed
to __redis__:invalidate. (redis-py's built-in cache refuses servers that announce a version
below 7.4.) Default mode, NOLOOP, BCAST with prefixes and FLUSHALL. Prints a final OK line.
"""
import signal
import sys

import redis

signal.alarm(60)  # never hold the test suite hostage
port = int(sys.argv[1])
writer = redis.Redis(port=port, protocol=2)
reader = redis.Redis(port=port, protocol=2, single_connection_client=True)
pubsub = writer.pubsub()
pubsub.subscribe("__redis__:invalidate")
assert pubsub.get_message(timeout=5)["type"] == "subscribe"
listener = [c for c in writer.client_list(_type="pubsub")][0]["id"]


def invalidated():
    """The keys of the next invalidation message (None: everything)."""
    m = pubsub.get_message(timeout=5)
    if m is None:
        print("FAIL no invalidation arrived", flush=True)
        sys.exit(1)
    assert m["channel"] == b"__redis__:invalidate", m
    return None if m["data"] is None else sorted(m["data"])


def nothing():
    m = pubsub.get_message(timeout=0.3)
    assert m is None, m


writer.flushall()
writer.mset({"a": 1, "b": 2, "user:1": "x", "user:2": "y", "other": "z"})
reader.client_tracking_on(clientid=listener)
info = reader.client_trackinginfo()  # a flat list under RESP2
assert info[info.index("redirect") + 1] == int(listener), info
assert reader.client_getredir() == int(listener)
assert reader.mget("a", "b") == [b"1", b"2"]
writer.set("a", 10)
assert invalidated() == [b"a"]
writer.set("a", 11)  # no longer cached by the reader: no message
nothing()
writer.delete("b")
assert invalidated() == [b"b"]

reader.client_tracking_off()
reader.client_tracking_on(clientid=listener, noloop=True)
reader.get("a")
reader.set("a", 12)  # the reader's own write: NOLOOP keeps quiet
nothing()

reader.client_tracking_off()
reader.client_tracking_on(clientid=listener, bcast=True, prefix=["user:"])
pipe = writer.pipeline(transaction=True)
pipe.set("user:1", "x2").set("user:2", "y2").set("other", "z2")
pipe.execute()
assert invalidated() == [b"user:1", b"user:2"]
writer.flushall()
assert invalidated() is None
print("OK redis-py tracking: default, NOLOOP, BCAST prefixes, FLUSHALL", flush=True)
