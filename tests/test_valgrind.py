"""The front under valgrind: a short run serving every job type, shut down
with SIGTERM, must show no memory error and no leak."""
import asyncio
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

import websockets

from harness import ROOT, collect, run, submit_msg

PLAIN = os.path.join(ROOT, "build", "wsjobd")


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *a):
        pass


_MEMORY_ERROR = (r"Invalid (read|write|free)|uninitialised|Mismatched free|"
                 r"overlap|Syscall param|Jump to the invalid")


def _split_by_pid(report):
    """valgrind's log interleaves every traced process, each line "==PID== "."""
    out = {}
    for m in re.finditer(r"^==(\d+)== ?(.*)$", report, re.M):
        pid = int(m.group(1))
        out[pid] = out.get(pid, "") + m.group(2) + "\n"
    return out


class Valgrind(unittest.TestCase):
    def test_every_job_type_then_sigterm_no_leak_no_error(self):
        self.assertIsNotNone(shutil.which("valgrind"))
        # valgrind needs the uninstrumented build, whatever this run tests
        subprocess.run(["make", "-s", "BUILD=build", "build/wsjobd"], cwd=ROOT, check=True, timeout=600)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        fport = srv.server_address[1]
        log = "/tmp/wsjobd-valgrind-%d.log" % os.getpid()
        p = subprocess.Popen(["valgrind", "--leak-check=full", "--error-exitcode=99",
                              "--errors-for-leak-kinds=definite,indirect",
                              "--show-leak-kinds=definite,indirect", "--log-file=" + log,
                              PLAIN, "--listen", "127.0.0.1:0", "--cpu-workers", "1", "--io-threads", "2",
                              "--fetch-allow", "127.0.0.1:%d" % fport,
                              "--agent-listen", "127.0.0.1:0"],
                             stderr=subprocess.PIPE)
        try:
            out = b""
            deadline = time.time() + 60
            port = None
            while time.time() < deadline and port is None:
                out += p.stderr.readline()
                m = re.search(rb"ready: .* port (\d+)", out)
                if m:
                    port = int(m.group(1))
            self.assertIsNotNone(port, out)
            agent_port = int(re.search(rb"agent check on \S+ \(port (\d+)\)", out).group(1))
            threading.Thread(target=p.stderr.read, daemon=True).start()   # keep the pipe drained
            async def go():
                ws = await websockets.connect("ws://127.0.0.1:%d/jobs" % port, ping_interval=None)
                jobs = {
                    "a": ("echo", "x"), "b": ("sha256", {"data": "abc", "rounds": 3}),
                    "c": ("modsum", {"n": 3, "iterations": 1000}), "d": ("sleep", {"ms": 5}),
                    "e": ("frames", {"count": 2, "width": 32, "height": 32, "interval_ms": 0}),
                    "f": ("fetch", {"url": "http://127.0.0.1:%d/" % fport}),
                }
                for i, (t, inp) in jobs.items():
                    await ws.send(submit_msg(i, t, inp))
                await ws.send("garbage")
                await ws.send(submit_msg("g", "modsum", {"n": 1, "iterations": 10**11}))
                await ws.send(json.dumps({"op": "cancel", "id": "g"}))
                _, finals = await collect(ws, list(jobs) + ["g"], timeout=120)
                for i in jobs:
                    self.assertEqual(finals[i]["event"], "done", finals[i])
                raw = await websockets.connect("ws://127.0.0.1:%d/run/echo" % port, ping_interval=None)
                await raw.send(b"bytes")
                self.assertEqual(await raw.recv(), b"bytes")
                r, w = await asyncio.open_connection("127.0.0.1", agent_port)
                w.write(b"wsjobd1\n")
                self.assertEqual(await r.read(), b"ready 100%\n")
                w.close()
                await ws.send(submit_msg("h", "sleep", {"ms": 60000}))
                await asyncio.sleep(0.5)
                # leave both open: shutdown must free them
            run(go(), timeout=180)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(120)
            with open(log) as f:
                report = f.read()
            self.assertEqual(rc, 0, report[-3000:])
            by_pid = _split_by_pid(report)
            front = by_pid.pop(p.pid)
            self.assertIn("ERROR SUMMARY: 0 errors", front)
            self.assertNotRegex(front, r"definitely lost: [1-9]")
            self.assertNotRegex(front, r"indirectly lost: [1-9]")
            self.assertTrue(by_pid, "valgrind traced no worker")
            # Workers end by SIGTERM's default action, by design: what they
            # hold then (another thread's TLS, libcurl's globals) is not a
            # leak, and which thread valgrind scans last varies.  Memory
            # errors in a worker are still errors.
            for pid, text in by_pid.items():
                self.assertNotRegex(text, _MEMORY_ERROR, "worker %d:\n%s" % (pid, text[-3000:]))
        finally:
            if p.poll() is None:
                p.kill()
            srv.shutdown()
            if os.path.exists(log):
                os.unlink(log)


if __name__ == "__main__":
    unittest.main()
