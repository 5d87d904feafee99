#!/usr/bin/env python3
"""Captures redis-server's replies to a differential script, for captured.rs.

Usage: capture.py PORT SCRIPT OUT. Each command line of SCRIPT (redis-cli quoting, `#` comments)
goes to the redis-server on PORT; OUT gets one line per command: the raw RESP2 reply, with
backslash, bytes outside printable ASCII and CR/LF escaped as \\\\, \\xHH.
"""
import socket, sys
sys.setrecursionlimit(100000)

def split_args(line):
    out, i, n = [], 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        if line[i] == '"':
            i += 1
            while True:
                c = line[i]
                if c == '\\' and line[i + 1] == 'x' and all(ch in '0123456789abcdefABCDEF' for ch in line[i + 2:i + 4]) and len(line[i + 2:i + 4]) == 2:
                    cur.append(int(line[i + 2:i + 4], 16)); i += 4
                elif c == '\\':
                    cur += {'n': b'\n', 'r': b'\r', 't': b'\t', 'b': b'\b', 'a': b'\a'}.get(line[i + 1], line[i + 1].encode()); i += 2
                elif c == '"':
                    i += 1; break
                else:
                    cur += c.encode(); i += 1
        elif line[i] == "'":
            i += 1
            while True:
                c = line[i]
                if c == '\\' and line[i + 1] == "'":
                    cur += b"'"; i += 2
                elif c == "'":
                    i += 1; break
                else:
                    cur += c.encode(); i += 1
        else:
            while i < n and not line[i].isspace():
                cur += line[i].encode(); i += 1
        out.append(bytes(cur))

def read_reply(f):
    line = f.readline()
    out = line
    t = line[:1]
    if t == b'$':
        ln = int(line[1:-2])
        if ln >= 0:
            out += f.read(ln + 2)
    elif t == b'*':
        for _ in range(max(0, int(line[1:-2]))):
            out += read_reply(f)
    return out

def esc(b):
    s = []
    for x in b:
        if x == 0x5c:
            s.append('\\\\')
        elif 0x20 <= x < 0x7f:
            s.append(chr(x))
        else:
            s.append('\\x%02x' % x)
    return ''.join(s)

port, script, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sock = socket.create_connection(('127.0.0.1', port))
f = sock.makefile('rb')
lines = []
for line in open(script, encoding='utf-8'):
    line = line.strip()
    if not line or line.startswith('#'):
        continue
    args = split_args(line)
    cmd = b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args)
    sock.sendall(cmd)
    lines.append(esc(read_reply(f)))
open(out, 'w').write('\n'.join(lines) + '\n')
