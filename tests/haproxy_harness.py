"""HAProxy in front of wsjobd daemons, on loopback, for tests.

The configuration is the shipped example, scripts/haproxy.cfg: its
addresses come from environment variables, which this sets to ports the
kernel chose.  The example names three servers; for another count the first
`server wsjobd1` line is repeated as wsjobd1..N (every line in the file
being alike but for its number), so any test routes through the very
settings operators are given.
"""
import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

from harness import ROOT, free_port

CONFIG = os.path.join(ROOT, "scripts", "haproxy.cfg")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SERVER_RE = re.compile(r"^(\s*)server wsjobd(\d+) .*$", re.M)


def config_for(n):
    """The shipped configuration with n `server` lines."""
    with open(CONFIG, encoding="utf-8") as f:
        text = f.read()
    lines = list(SERVER_RE.finditer(text))
    if not lines or lines[0].group(2) != "1":
        raise AssertionError("scripts/haproxy.cfg has no `server wsjobd1` line")
    template = lines[0].group(0)
    servers = "\n".join(template.replace("wsjobd1 ", "wsjobd%d " % i)
                                .replace("${WSJOBD1", "${WSJOBD%d" % i)
                        for i in range(1, n + 1))
    start, end = lines[0].start(), lines[-1].end()
    return text[:start] + servers + text[end:]


class HAProxy:
    """haproxy -f (the shipped config) -db in front of the given daemons,
    each started with --agent-listen.  Server i+1 (wsjobd1, ...) is
    daemons[i]."""

    def __init__(self, daemons):
        self.daemons = daemons
        self.port = None
        self.stats_port = None
        self.proc = None
        self.dir = None

    def start(self, timeout=15):
        self.dir = tempfile.mkdtemp(prefix="wsjobd-haproxy.")
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(config_for(len(self.daemons)))
        self.port, self.stats_port = free_port(), free_port()
        env = dict(os.environ, WSJOBD_FRONT="127.0.0.1:%d" % self.port,
                   WSJOBD_STATS="127.0.0.1:%d" % self.stats_port)
        for i, d in enumerate(self.daemons, 1):
            if d.agent_port is None:
                raise AssertionError("daemon %d has no --agent-listen" % i)
            env["WSJOBD%d" % i] = "127.0.0.1:%d" % d.port
            env["WSJOBD%d_AGENT" % i] = str(d.agent_port)
        self.log_path = os.path.join(self.dir, "haproxy.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
        self.wait(lambda: len(self.servers()) == len(self.daemons), timeout,
                  "HAProxy's stats page")
        return self

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def servers(self):
        """{"wsjobd1": row, ...} from the stats page's CSV (row: dict with
        status, weight, stot, scur, ...); {} while it does not answer."""
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited %d:\n%s" % (self.proc.returncode, self.logs()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/;csv" % self.stats_port,
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows
                if row["pxname"] == "wsjobd" and row["svname"].startswith("wsjobd")}

    def wait(self, predicate, timeout, what):
        """Polls predicate() until true or timeout (seconds)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError("HAProxy: timed out waiting for %s; servers: %r\n%s"
                             % (what, {k: (v["status"], v["weight"])
                                       for k, v in self.servers().items()}, self.logs()[-3000:]))

    def wait_all_up(self, timeout=20):
        """Every server UP (health check passed) at full weight (its agent
        answered ready 100%)."""
        def ready():
            rows = self.servers()
            return len(rows) == len(self.daemons) and all(
                r["status"] == "UP" and r["weight"] == "100" for r in rows.values())
        self.wait(ready, timeout, "every server UP at weight 100")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
