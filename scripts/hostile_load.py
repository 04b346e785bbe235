#!/usr/bin/python3
"""hostile_load.py — the loads of `make bench`'s hostile section, each run
against a daemon on 127.0.0.1 for a bounded time while bench.sh measures a
quiet client's ping round trip and the front's memory beside it.

  hostile_load.py ping-flood PORT SECONDS
      one WebSocket that sends pings as fast as it can and never reads
  hostile_load.py tls-storm TLS_PORT SECONDS THREADS
      THREADS threads opening TLS connections (full handshakes) in a loop
  hostile_load.py full-ring PORT SECONDS CONNS
      CONNS /run/sha256 connections, each keeping 64 jobs of ~2 ms in
      flight, against a small ring: most of them wait for room

Prints one line: what it did (connections, bytes, handshakes)."""
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

UPGRADE = (b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def frame(opcode, payload, mask=b"\x01\x02\x03\x04"):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def ws_open(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(UPGRADE % path)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head[:40])
    return s


def ping_flood(port, seconds):
    s = ws_open(port, b"/run/echo")
    s.setblocking(False)
    chunk = frame(9, b"p" * 125) * 8000
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    s.close()
    print("ping flood: %.1f MiB sent" % (sent / 2**20))


def tls_storm(port, seconds, threads):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET       # every connection a full handshake
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def loop():
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost"):
                        key = "ok"
            except OSError:
                key = "failed"
            with lock:
                counts[key] += 1

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("tls storm: %d handshakes (%.0f/s), %d failed"
          % (counts["ok"], counts["ok"] / seconds, counts["failed"]))


def full_ring(port, seconds, conns):
    job = frame(1, json.dumps({"data": "x", "rounds": 20000}).encode())
    socks = []   # [socket, bytes of a partial answer, bytes not yet sent]
    for _ in range(conns):
        s = ws_open(port, b"/run/sha256")
        s.setblocking(False)
        socks.append([s, 0, job * 64])
    end, answers = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for entry in socks:
            s = entry[0]
            if entry[2]:
                try:
                    entry[2] = entry[2][s.send(entry[2]):]
                except BlockingIOError:
                    pass
            try:
                data = s.recv(1 << 16)
            except BlockingIOError:
                continue
            # Each answer is a 64-byte hex digest in a 2-byte-header frame:
            # one more job per answer keeps 64 in flight.
            total = entry[1] + len(data)
            n, entry[1] = total // 66, total % 66
            answers += n
            entry[2] += job * n
        time.sleep(0.005)
    for s, _, _ in socks:
        s.close()
    print("full ring: %d connections, %d answers (%.0f/s)" % (conns, answers, answers / seconds))


def main():
    what, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if what == "ping-flood":
        ping_flood(port, seconds)
    elif what == "tls-storm":
        tls_storm(port, seconds, int(sys.argv[4]))
    elif what == "full-ring":
        full_ring(port, seconds, int(sys.argv[4]))
    else:
        sys.exit("unknown load " + what)


if __name__ == "__main__":
    main()
