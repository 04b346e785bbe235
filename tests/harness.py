"""Starts the real wsjobd on a loopback port and talks to it.

Integration tests import this module; it only uses Debian's Python
(/usr/bin/python3) and python3-websockets.
"""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("WSJOBD_BUILD", os.path.join(ROOT, "build"))
WSJOBD = os.environ.get("WSJOBD_BIN", os.path.join(BUILD, "wsjobd"))
WSJOB = os.environ.get("WSJOB_BIN", os.path.join(BUILD, "wsjob"))
PLUGINS = os.path.join(BUILD, "plugins")
# Sanitizer builds run several times slower: scenarios scale their work down.
SLOW = os.path.basename(os.path.normpath(BUILD)) != "build"

PORT_RE = re.compile(rb"\(port (\d+)\)")
AGENT_PORT_RE = re.compile(rb"agent check on \S+ \(port (\d+)\)")
# The line "wsjobd VERSION ready: ..."; a bare "ready" would also match
# "Address already in use".
READY = b" ready: "


class Daemon:
    """One wsjobd process bound to 127.0.0.1 on a port the kernel picks."""

    def __init__(self, *args, cpu_workers=2, io_threads=16, env=None):
        self.args = ["--listen", "127.0.0.1:0", "--cpu-workers", str(cpu_workers),
                     "--io-threads", str(io_threads), *args]
        self.env = env
        self.preexec = None   # run in the child before exec (limits)
        self.proc = None
        self.port = None
        self.agent_port = None   # with --agent-listen
        self.log = b""

    def start(self, timeout=10):
        self.proc = subprocess.Popen([WSJOBD, *self.args], stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     preexec_fn=self.preexec)
        # Drain stderr all the time: a full pipe would block the daemon's log
        # writes, and with them its event loop.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = PORT_RE.search(self.log)
            if m and READY in self.log:
                self.port = int(m.group(1))
                a = AGENT_PORT_RE.search(self.log)
                self.agent_port = int(a.group(1)) if a else None
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("wsjobd exited %d: %s" % (self.proc.returncode, self.log.decode()))
            time.sleep(0.02)
        raise RuntimeError("wsjobd did not get ready: " + self.log.decode())

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            self.log += line
        self.proc.stderr.close()

    def logs(self):
        return self.log.decode(errors="replace")

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def http(self, path, timeout=5):
        """GET path; returns (status, body bytes)."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stats(self):
        status, body = self.http("/stats")
        assert status == 200, status
        return json.loads(body)

    def agent(self, send=b"", timeout=5):
        """Asks the agent-check port, as HAProxy does: connect, optionally
        send (agent-send), read to the close.  Returns the bytes."""
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=timeout) as s:
            if send:
                s.sendall(send)
            data = b""
            while True:
                chunk = s.recv(256)
                if not chunk:
                    return data
                data += chunk

    def worker_pids(self, cls="cpu"):
        return sorted({w["pid"] for w in self.stats()["workers"] if w["class"] == cls and w["pid"]})

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        # A worker that trips a sanitizer dies and is replaced, so its report
        # would pass unnoticed but for this.
        for mark in (b"ERROR: AddressSanitizer", b"WARNING: ThreadSanitizer", b"runtime error:",
                     b"ERROR: LeakSanitizer"):
            if mark in self.log:
                at = self.log.index(mark)
                raise AssertionError("sanitizer report from wsjobd:\n" +
                                     self.log[max(0, at - 200):at + 3000].decode(errors="replace"))
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run(coro, timeout=120):
    """Runs one asyncio scenario with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def jobs_conn(d, **kw):
    return await websockets.connect(d.url + "/jobs", max_size=None, ping_interval=None, **kw)


def submit_msg(id, type, input=None, **extra):
    m = {"op": "submit", "id": id, "type": type}
    if input is not None:
        m["input"] = input
    m.update(extra)
    return json.dumps(m)


async def collect(ws, ids, timeout=60):
    """Reads events until every id in ids has its final event.  Returns
    {id: [events...]} and asserts no id gets two final events."""
    want = set(ids)
    got = {i: [] for i in ids}
    finals = {}
    deadline = time.time() + timeout
    while want:
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError("no final event for %s" % sorted(want)[:10])
        ev = json.loads(await asyncio.wait_for(ws.recv(), left))
        i = ev.get("id")
        got.setdefault(i, []).append(ev)
        if ev.get("event") in ("done", "error"):
            assert i not in finals, "two final events for %r: %r then %r" % (i, finals[i], ev)
            finals[i] = ev
            want.discard(i)
    return got, finals


def front_rss(d):
    """Resident bytes of the daemon's front process."""
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
