"""The dashboard at GET /: the page in a real browser (Debian's Chromium
driven by playwright-core, tests/browser/), its guard, and the live feed's
cost: one snapshot a second whatever the number of viewers."""
import asyncio
import json
import os
import re
import socket
import subprocess
import time
import unittest
import urllib.request

import websockets

from harness import HERE, SLOW, Daemon, run

BROWSER_DIR = os.path.join(HERE, "browser")
NODE = "/usr/bin/node"
CHROMIUM = "/usr/bin/chromium"


def browser(url, steps, **extra):
    """Runs tests/browser/dashboard.mjs; returns what it saw."""
    for path, pkg in ((NODE, "nodejs"), (CHROMIUM, "chromium")):
        if not os.access(path, os.X_OK):
            raise AssertionError("%s is missing: install the Debian package %s (scripts/deps.sh)"
                                 % (path, pkg))
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        raise AssertionError("tests/browser/node_modules is missing: run `npm ci` in tests/browser "
                             "(make test does)")
    opts = dict(url=url, steps=steps, chromium=CHROMIUM, **extra)
    p = subprocess.run([NODE, "dashboard.mjs", json.dumps(opts)], cwd=BROWSER_DIR,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0 or not p.stdout.strip():
        raise AssertionError("dashboard.mjs exited %d: %s" % (p.returncode, p.stderr[-3000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if "launch_error" in out:
        raise AssertionError("Chromium did not start: " + out["launch_error"])
    for step in steps:
        if "failed" in out.get(step, {}):
            raise AssertionError("step %s failed: %s" % (step, out[step]["failed"]))
    return out


def get(d, path, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (d.port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Page(unittest.TestCase):
    def assert_same_origin(self, out, port):
        origin = "127.0.0.1:%d" % port
        self.assertTrue(out["requests"], "no request recorded")
        for url in out["requests"]:
            self.assertTrue(url.startswith("http://%s/" % origin) or url.startswith("blob:http://%s/" % origin),
                            "request to another origin: " + url)
        for url in out["websockets"]:
            self.assertTrue(url.startswith("ws://%s/" % origin), "WebSocket to another origin: " + url)
        self.assertEqual(out["console_errors"], [])
        self.assertEqual(out["page_errors"], [])

    def test_page_shows_the_daemon_runs_jobs_and_streams_frames(self):
        with Daemon(cpu_workers=2, io_threads=2) as d:
            out = browser("http://127.0.0.1:%d/" % d.port, ["load", "echo", "frames", "kill", "layout"])
            self.assert_same_origin(out, d.port)
            self.assertIn("ws://127.0.0.1:%d/stats/live" % d.port, out["websockets"])
            self.assertIn("ws://127.0.0.1:%d/jobs" % d.port, out["websockets"])

            load = out["load"]
            self.assertEqual(load["feed_state"].strip(), "live")
            self.assertEqual([(w["pid"], w["cls"]) for w in load["workers"]],
                             [(w["pid"], w["cls"]) for w in load["stats_workers"]])
            st = d.stats()
            self.assertEqual(load["capacity"], {q: st["queues"][q]["capacity"] for q in ("cpu", "io", "reply")})
            self.assertEqual(load["capacity"], load["stats_capacity"])
            self.assertEqual(sorted(load["types"]), sorted(st["jobs"]["by_type"]))

            echo = out["echo"]
            self.assertEqual(echo["event"], "done", echo)
            self.assertIn("output: hello from the dashboard", echo["log"])

            fr = out["frames"]
            self.assertTrue(fr["frame_src"].startswith("blob:"), fr)
            self.assertTrue(fr["frame_shown"], fr)
            self.assertEqual(fr["button"], "Stop")
            self.assertGreaterEqual(fr["frames_before_stop"], 5)
            self.assertEqual((fr["event"], fr["code"]), ("error", "cancelled"))
            # Cancelled means stopped: no frame after the final event.
            self.assertEqual(fr["frames_later"], fr["frames_after_stop"])

            k = out["kill"]
            self.assertIsNotNone(k["seen_ms"], "the replacement was not shown: %r" % k)
            self.assertLess(k["seen_ms"], 2000, k)
            self.assertNotEqual(k["shown_pid"], k["victim"])
            self.assertEqual(k["shown_pid"], k["stats_pid"])
            self.assertTrue(k["replaced"])
            self.assertGreaterEqual(k["restarts_shown"], 1)
            self.assertEqual(k["stats_restarts"], k["restarts_shown"])

            lay = out["layout"]
            self.assertLessEqual(lay["phone"]["scroll_width"], lay["phone"]["client_width"], lay)
            self.assertNotEqual(lay["light_bg"], lay["dark_bg"])

    def test_headers_lock_the_page_to_its_origin(self):
        with Daemon() as d:
            status, h, body = get(d, "/")
            self.assertEqual(status, 200)
            self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
            self.assertEqual(h["Cache-Control"], "no-cache")
            self.assertEqual(h["X-Content-Type-Options"], "nosniff")
            csp = h["Content-Security-Policy"]
            self.assertIn("default-src 'none'", csp)
            self.assertIn("connect-src 'self'", csp)
            self.assertIn("script-src 'sha256-", csp)
            self.assertNotIn("unsafe", csp)
            # Nothing loaded from anywhere: the only links are in-page.
            text = body.decode()
            self.assertNotIn("<script src", text)
            self.assertNotIn("<link", text)
            for ref in re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', text):
                self.assertTrue(ref.startswith("#"), "a reference out of the page: " + ref)

    def test_token_guards_page_and_feed_and_the_page_carries_it(self):
        with Daemon("--auth-token", "s3cret") as d:
            self.assertEqual(get(d, "/")[0], 401)
            self.assertEqual(get(d, "/?token=wrong")[0], 401)
            self.assertEqual(get(d, "/?token=s3cret")[0], 200)
            self.assertEqual(get(d, "/", {"Authorization": "Bearer s3cret"})[0], 200)

            async def feed(path):
                try:
                    async with websockets.connect(d.url + path, open_timeout=5) as ws:
                        return json.loads(await asyncio.wait_for(ws.recv(), 5))["kind"]
                except websockets.exceptions.InvalidStatusCode as e:
                    return e.status_code
            self.assertEqual(run(feed("/stats/live")), 401)
            self.assertEqual(run(feed("/stats/live?token=s3cret")), "history")

            out = browser("http://127.0.0.1:%d/?token=s3cret" % d.port, ["load", "echo"])
            self.assert_same_origin(out, d.port)
            self.assertEqual(out["echo"]["event"], "done", out["echo"])
            self.assertEqual(sorted(out["websockets"]),
                             ["ws://127.0.0.1:%d/jobs?token=s3cret" % d.port,
                              "ws://127.0.0.1:%d/stats/live?token=s3cret" % d.port])

    def test_stats_allow_list_guards_page_and_feed(self):
        with Daemon("--stats-allow", "10.0.0.0/8") as d:
            self.assertEqual(get(d, "/")[0], 403)
            self.assertEqual(get(d, "/stats")[0], 403)

            async def feed():
                try:
                    async with websockets.connect(d.url + "/stats/live", open_timeout=5):
                        return 101
                except websockets.exceptions.InvalidStatusCode as e:
                    return e.status_code
            self.assertEqual(run(feed()), 403)
            # The job routes are not the dashboard's: still open.
            self.assertEqual(get(d, "/healthz")[0], 200)


VIEWERS = 100


class Feed(unittest.TestCase):
    def test_a_hundred_viewers_get_one_message_a_second_from_one_snapshot_a_second(self):
        with Daemon(cpu_workers=1, io_threads=2) as d:
            async def go():
                conns = [await websockets.connect(d.url + "/stats/live", max_size=None, ping_interval=None)
                         for _ in range(VIEWERS)]
                for ws in conns:   # the history, then the newest snapshot
                    self.assertEqual(json.loads(await asyncio.wait_for(ws.recv(), 10))["kind"], "history")
                    self.assertEqual(json.loads(await asyncio.wait_for(ws.recv(), 10))["kind"], "tick")
                st0 = d.stats()
                self.assertEqual(st0["dashboard"]["viewers"], VIEWERS)
                self.assertGreaterEqual(st0["connections"]["open"], VIEWERS)
                counts = [0] * VIEWERS
                seen = [set() for _ in range(VIEWERS)]
                window = 4.0
                end = time.monotonic() + window

                async def read(i, ws):
                    while True:
                        left = end - time.monotonic()
                        if left <= 0:
                            return
                        try:
                            m = json.loads(await asyncio.wait_for(ws.recv(), left))
                        except asyncio.TimeoutError:
                            return
                        counts[i] += 1
                        seen[i].add(m["stats"]["dashboard"]["snapshots_total"])
                await asyncio.gather(*(read(i, ws) for i, ws in enumerate(conns)))
                st1 = d.stats()
                built = st1["dashboard"]["snapshots_total"] - st0["dashboard"]["snapshots_total"]
                for ws in conns:
                    await ws.close()
                return counts, seen, built, st1
            counts, seen, built, st1 = run(go(), timeout=120)
            # 4 s: 4 ticks, give or take one at each edge of the window.
            self.assertTrue(3 <= built <= 5, built)
            self.assertTrue(all(3 <= c <= 5 for c in counts), counts)
            # Every viewer got the very snapshots that were built: one
            # build, the same bytes to all.
            self.assertEqual(len(set(frozenset(s) for s in seen)), 1, seen[:3])
            self.assertEqual(st1["dashboard"]["skipped_total"], 0)
            time.sleep(0.5)
            self.assertEqual(d.stats()["dashboard"]["viewers"], 0)

    def test_no_viewer_no_timer_and_history_fills_meanwhile(self):
        with Daemon(cpu_workers=1, io_threads=1) as d:
            time.sleep(3.2)
            self.assertEqual(d.stats()["dashboard"]["snapshots_total"], 0)

            async def go():
                async with websockets.connect(d.url + "/stats/live") as ws:
                    h = json.loads(await ws.recv())
                    t = json.loads(await ws.recv())
                    return h, t
            h, t = run(go())
            self.assertEqual(h["fields"][:3], ["t", "submitted", "done"])
            self.assertGreaterEqual(len(h["samples"]), 2)
            self.assertEqual(t["stats"]["pid"], d.proc.pid)
            time.sleep(0.5)
            n = d.stats()["dashboard"]["snapshots_total"]
            time.sleep(2.2)
            self.assertEqual(d.stats()["dashboard"]["snapshots_total"], n, "the timer runs with no viewer")

    def test_a_viewer_that_does_not_read_is_skipped_not_buffered(self):
        # Many I/O threads make a snapshot large (a line per worker), so
        # a viewer that never reads fills its socket buffers in seconds.
        with Daemon(cpu_workers=1, io_threads=200) as d:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"GET /stats/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
            size = len(json.dumps(d.stats()))
            t0 = time.time()
            deadline = t0 + 60
            skipped = 0
            while time.time() < deadline and not skipped:
                time.sleep(1)
                skipped = d.stats()["dashboard"]["skipped_total"]
            st = d.stats()
            s.close()
            self.assertGreater(skipped, 0, "never skipped (snapshot %d bytes)" % size)
            # Held for it: at most the backlog mark (64 KiB) plus one
            # snapshot.
            self.assertLess(st["memory"]["used"], (64 << 10) + 2 * size, st["memory"])


if __name__ == "__main__":
    unittest.main()
