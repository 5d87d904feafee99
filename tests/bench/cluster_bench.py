#!/usr/bin/env python3
"""Measurements of tests/bench/cluster.sh, the same code against Redis Cluster and against a
Vigil sharded cluster: a minimal cluster client (standard library only) that routes by hash
slot from CLUSTER SLOTS, follows MOVED and ASK, and retries TRYAGAIN, CLUSTERDOWN and dropped
connections.

  populate SEED FIRST LAST PER_SLOT   PER_SLOT keys in each slot FIRST..LAST (hash tags)
  failover SEED SLOT                  SIGKILL the master of SLOT; ms to the first acknowledged
                                      write on SLOT (JSON: ms, port, killed_at: Unix
                                      time, to read the servers' logs by)
  load SEED FIRST LAST STOPFILE       write keys of slots FIRST..LAST (and of the others) until
                                      STOPFILE exists; then read every acknowledged key back
                                      (JSON: acked, lost, longest pause on FIRST..LAST, errors)
  wait-ok SEED N                      wait until CLUSTER SLOTS covers every slot with N masters
                                      that each have a replica online and take a write
"""
import binascii
import json
import os
import signal
import socket
import subprocess
import sys
import time


def key_slot(key: bytes) -> int:
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1 : e]
    return binascii.crc_hqx(key, 0) % 16384


def tags():
    """A hash tag for every slot."""
    out, i = [None] * 16384, 0
    missing = 16384
    while missing:
        t = f"t{i}"
        s = key_slot(t.encode())
        if out[s] is None:
            out[s] = t
            missing -= 1
        i += 1
    return out


class Error(Exception):
    pass


class Conn:
    def __init__(self, addr, timeout=1.0):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, data):
        self.s.sendall(data)

    def call(self, *args):
        self.send(self.encode(*args))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Error(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t in (b"*", b"%"):
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n * (2 if t == b"%" else 1))]
        raise ConnectionError(f"unexpected reply {line!r}")


class Cluster:
    """Routes by slot; a fresh map on MOVED or a failure, as cluster clients do."""

    def __init__(self, seed, avoid=()):
        self.seeds = [seed]
        self.avoid = set(avoid)
        self.conns = {}
        self.map = [None] * 16384
        self.errors = {}
        self.refresh()

    def conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            c = self.conns[addr] = Conn(addr, timeout=0.5)
        return c

    def drop(self, addr):
        c = self.conns.pop(addr, None)
        if c:
            c.close()

    def refresh(self):
        nodes = [a for a in self.seeds + list(self.conns) if a not in self.avoid]
        for addr in dict.fromkeys(nodes):
            try:
                r = self.conn(addr).call("CLUSTER", "SLOTS")
            except OSError:
                self.drop(addr)
                continue
            if isinstance(r, Error) or not r:
                continue
            m = [None] * 16384
            for rng in r:
                a = f"{rng[2][0].decode()}:{rng[2][1]}"
                for s in range(rng[0], rng[1] + 1):
                    m[s] = a
                for rep in rng[3:]:
                    self.seeds.append(f"{rep[0].decode()}:{rep[1]}")
                self.seeds.append(a)
            self.seeds = list(dict.fromkeys(self.seeds))
            if all(m):
                self.map = m
                return True
        return False

    def count(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def call(self, key, *args, deadline=30.0):
        """Runs a command on KEY's slot until it is answered with anything but a redirect or a
        retryable refusal; (reply, address that answered)."""
        slot, until, addr, asking = key_slot(key.encode()), time.monotonic() + deadline, None, False
        while time.monotonic() < until:
            addr = addr or self.map[slot]
            try:
                c = self.conn(addr)
                if asking:
                    c.send(Conn.encode("ASKING"))
                    c.read()
                r = c.call(*args)
            except OSError:
                self.count("connection")
                self.drop(addr)
                addr, asking = None, False
                time.sleep(0.005)
                self.refresh()
                continue
            if isinstance(r, Error):
                word = str(r).split()[0]
                if word in ("MOVED", "ASK"):
                    self.count(word)
                    addr, asking = str(r).split()[2], word == "ASK"
                    if word == "MOVED":
                        self.map[slot] = addr
                    continue
                if word in ("TRYAGAIN", "CLUSTERDOWN", "LOADING", "NOREPLICAS", "READONLY"):
                    self.count(word)
                    addr, asking = None, False
                    time.sleep(0.005)
                    if word != "TRYAGAIN":
                        self.refresh()
                    continue
            return r, addr
        raise TimeoutError(f"{args[0]} {key}: no answer within {deadline}s")


def populate(seed, first, last, per_slot):
    t = tags()
    cl = Cluster(seed)
    by_node = {}
    for s in range(first, last + 1):
        by_node.setdefault(cl.map[s], []).append(s)
    value = b"v" * 32
    for addr, slots in by_node.items():
        c = Conn(addr, timeout=30)
        batch, pending = [], 0
        for s in slots:
            for i in range(per_slot):
                batch.append(Conn.encode("SET", f"{{{t[s]}}}:{i}", value))
                pending += 1
                if pending == 10000:
                    c.send(b"".join(batch))
                    for _ in range(pending):
                        r = c.read()
                        if isinstance(r, Error):
                            sys.exit(f"populate on {addr}: {r}")
                    batch, pending = [], 0
        c.send(b"".join(batch))
        for _ in range(pending):
            r = c.read()
            if isinstance(r, Error):
                sys.exit(f"populate on {addr}: {r}")


def pid_on(port):
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    sys.exit(f"no process listens on {port}")


def failover(seed, slot):
    t = tags()
    cl = Cluster(seed)
    victim = cl.map[slot]
    port = int(victim.rsplit(":", 1)[1])
    pid = pid_on(port)
    cl = Cluster(seed if seed != victim else cl.seeds[-1], avoid=[victim])
    t0, wall = time.monotonic(), time.time()
    os.kill(pid, signal.SIGKILL)
    i = 0
    while time.monotonic() - t0 < 60:
        i += 1
        key = f"{{{t[slot]}}}:fo:{i}"
        try:
            cl.refresh()
            r, addr = cl.call(key, "SET", key, "1", deadline=0.2)
        except (TimeoutError, OSError):
            continue
        if r == "OK" and addr != victim:
            ms = round((time.monotonic() - t0) * 1000, 1)
            print(json.dumps({"ms": ms, "port": port, "killed_at": round(wall, 3)}))
            return
        time.sleep(0.001)
    sys.exit("no write acknowledged within 60 s")


def load(seed, first, last, stopfile):
    t = tags()
    cl = Cluster(seed)
    acked, i, last_ack, longest, longest_at = {}, 0, None, 0.0, None
    # The slowest write (its redirects and retries included): seconds, the node that answered
    # it last, when it ended.
    slowest = (0.0, None, None)
    # The stop file, or its directory gone (the benchmark exited).
    while not os.path.exists(stopfile) and os.path.isdir(os.path.dirname(stopfile)):
        i += 1
        # Every other write on the moving slots.
        s = first + i % (last - first + 1) if i % 2 else (i * 7919) % 16384
        key = f"{{{t[s]}}}:load:{i}"
        t0 = time.monotonic()
        r, addr = cl.call(key, "SET", key, str(i), deadline=120)
        took = time.monotonic() - t0
        if took > slowest[0]:
            slowest = (took, addr, round(time.time(), 3))
        if r != "OK":
            cl.count(f"refused: {r}")
            continue
        acked[key] = str(i)
        if first <= s <= last:
            now = time.monotonic()
            if last_ack is not None and now - last_ack > longest:
                # When it ended (wall clock), to find it in the logs.
                longest, longest_at = now - last_ack, round(time.time(), 3)
            last_ack = now
    lost = 0
    for key, v in acked.items():
        r, _ = cl.call(key, "GET", key)
        if r != v.encode():
            lost += 1
    print(json.dumps({"acked": len(acked), "lost": lost, "longest_pause_ms": round(longest * 1000, 1), "longest_pause_ended_at": longest_at, "slowest_write_ms": round(slowest[0] * 1000, 1), "slowest_write_node": slowest[1], "slowest_write_ended_at": slowest[2], "retried": cl.errors}))


def replicated(addr):
    """Whether the master at ADDR has a replica online."""
    info = Conn(addr).call("INFO", "replication")
    if not isinstance(info, bytes):
        return False
    return any(l.startswith("slave") and "state=online" in l for l in info.decode().splitlines())


def wait_ok(seed, masters):
    until = time.monotonic() + 120
    while time.monotonic() < until:
        try:
            cl = Cluster(seed)
            owners = set(cl.map)
            if len(owners) == masters and None not in owners and all(map(replicated, owners)):
                t = tags()
                for s in (0, 8000, 16000):
                    key = f"{{{t[s]}}}:probe"
                    if cl.call(key, "SET", key, "1", deadline=5)[0] != "OK":
                        raise OSError
                return
        except (OSError, TimeoutError):
            pass
        time.sleep(0.2)
    sys.exit(f"the cluster at {seed} did not serve every slot with {masters} masters within 120 s")


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "populate":
        populate(a[0], int(a[1]), int(a[2]), int(a[3]))
    elif cmd == "failover":
        failover(a[0], int(a[1]))
    elif cmd == "load":
        load(a[0], int(a[1]), int(a[2]), a[3])
    elif cmd == "wait-ok":
        wait_ok(a[0], int(a[1]))
    else:
        sys.exit(__doc__)
