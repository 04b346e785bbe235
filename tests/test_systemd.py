"""systemd integration: units, sd_notify, watchdog, socket activation,
reload and the shutdown sequence."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import websockets

from harness import ROOT, WSJOBD, Daemon, collect, free_port, jobs_conn, run, submit_msg


def alive(pid):
    """True while pid runs (a zombie waiting for its new parent to reap it
    has ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class NotifySocket:
    """A stand-in for systemd's notification socket."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.msgs = []

    def wait_for(self, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, m in enumerate(self.msgs):
                if text in m:
                    del self.msgs[:i + 1]
                    return m
            try:
                self.msgs.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError("no %r from the daemon; got %r" % (text, self.msgs))

    def close(self):
        self.sock.close()
        self.dir.cleanup()


class Units(unittest.TestCase):
    def test_units_pass_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        self.assertIsNotNone(tool)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(ROOT, "scripts", "wsjobd.service")) as f:
                unit = f.read().replace("@BINDIR@", os.path.dirname(os.path.abspath(WSJOBD)))
            with open(os.path.join(tmp, "wsjobd.service"), "w") as f:
                f.write(unit)
            shutil.copy(os.path.join(ROOT, "scripts", "wsjobd.socket"), tmp)
            p = subprocess.run([tool, "verify", "--man=no", os.path.join(tmp, "wsjobd.service"),
                                os.path.join(tmp, "wsjobd.socket")], capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), b"")
            for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "DynamicUser=yes",
                        "RestrictAddressFamilies=", "LimitNOFILE=", "Type=notify", "WatchdogSec="):
                self.assertIn(key, unit)

    def test_instance_template_is_the_unit_with_a_config_per_instance(self):
        # Several instances on one host: wsjobd@NAME reads /etc/wsjobd/NAME.conf,
        # with every hardening line of wsjobd.service and no shared socket unit.
        tool = shutil.which("systemd-analyze")
        self.assertIsNotNone(tool)
        with open(os.path.join(ROOT, "scripts", "wsjobd.service")) as f:
            unit = f.read().replace("@BINDIR@", os.path.dirname(os.path.abspath(WSJOBD)))
        p = subprocess.run([os.path.join(ROOT, "scripts", "instance_unit.sh")], input=unit.encode(),
                           capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        tmpl = p.stdout.decode()
        self.assertIn("--config /etc/wsjobd/%i.conf", tmpl)
        self.assertNotIn("wsjobd.socket", tmpl)
        for line in unit.splitlines():
            if line.startswith(("Protect", "Restrict", "NoNewPrivileges", "DynamicUser", "SystemCall")):
                self.assertIn(line, tmpl)
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("wsjobd@.service", "wsjobd@a.service"):
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(tmpl)
            p = subprocess.run([tool, "verify", "--man=no", os.path.join(tmp, "wsjobd@a.service")],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), b"")


class Notify(unittest.TestCase):
    def test_ready_status_watchdog_reloading_stopping(self):
        ns = NotifySocket()
        env = dict(os.environ, NOTIFY_SOCKET=ns.path, WATCHDOG_USEC="200000")
        d = Daemon(env=env)
        try:
            d.start()
            ns.wait_for("READY=1")
            ns.wait_for("STATUS=")
            t0 = time.time()
            ns.wait_for("WATCHDOG=1")
            ns.wait_for("WATCHDOG=1")
            ns.wait_for("WATCHDOG=1")
            # half the watchdog interval apart: three in well under a second
            self.assertLess(time.time() - t0, 1.0)
            d.signal(signal.SIGHUP)
            ns.wait_for("RELOADING=1")
            ns.wait_for("READY=1")
            d.signal(signal.SIGTERM)
            ns.wait_for("STOPPING=1")
            self.assertEqual(d.proc.wait(10), 0)
        finally:
            d.stop()
            ns.close()


class SocketActivation(unittest.TestCase):
    def test_jobs_flow_through_an_inherited_socket(self):
        tool = shutil.which("systemd-socket-activate")
        self.assertIsNotNone(tool)
        port = free_port()
        p = subprocess.Popen([tool, "-l", "127.0.0.1:%d" % port, WSJOBD, "--cpu-workers", "1",
                              "--io-threads", "2"], stderr=subprocess.PIPE)
        try:
            async def go():
                for _ in range(100):
                    try:
                        ws = await websockets.connect("ws://127.0.0.1:%d/jobs" % port, open_timeout=10)
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
                await ws.send(submit_msg("a", "sha256", {"data": "abc", "rounds": 1}))
                _, finals = await collect(ws, ["a"], timeout=10)
                self.assertEqual(finals["a"]["output"],
                                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                await ws.close()
            run(go())
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=20)[1]
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"activated socket", out)


class Reload(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.conf = os.path.join(self.tmp.name, "wsjobd.conf")

    def tearDown(self):
        self.tmp.cleanup()

    def write_conf(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def test_sighup_applies_a_good_file_and_refuses_a_bad_one(self):
        self.write_conf("job-timeout = 200\n")
        with Daemon("-c", self.conf, cpu_workers=1) as d:
            async def timed(id):
                ws = await jobs_conn(d)
                t0 = time.monotonic()
                await ws.send(submit_msg(id, "sleep", {"ms": 1500}))
                _, finals = await collect(ws, [id], timeout=10)
                await ws.close()
                return finals[id], time.monotonic() - t0
            ev, took = run(timed("a"))
            self.assertEqual(ev["code"], "timeout")
            self.assertLess(took, 1.0)
            self.write_conf("job-timeout = 5000\n")
            d.signal(signal.SIGHUP)
            time.sleep(0.5)
            ev, took = run(timed("b"))
            self.assertEqual(ev["event"], "done")
            self.write_conf("job-timeout = 200\nno-such-key = 1\n")
            d.signal(signal.SIGHUP)
            time.sleep(0.5)
            self.assertIn("reload refused", d.logs())
            self.assertIn("%s:2" % self.conf, d.logs())
            ev, took = run(timed("c"))
            self.assertEqual(ev["event"], "done")   # still 5000 ms

    def test_a_reload_names_what_only_a_restart_applies_and_keeps_it(self):
        self.write_conf("max-message = 64K\n")
        with Daemon("-c", self.conf) as d:
            async def too_big():
                ws = await websockets.connect(d.url + "/run/echo", max_size=None)
                await ws.send(b"x" * (100 << 10))
                with self.assertRaises(websockets.ConnectionClosed) as cm:
                    await asyncio.wait_for(ws.recv(), 10)
                return cm.exception.rcvd.code
            self.assertEqual(run(too_big()), 1009)
            self.write_conf("max-message = 64K\njob-timeout = 7000\n")
            def reloaded(times):
                deadline = time.time() + 10
                while d.logs().count("configuration reloaded") < times and time.time() < deadline:
                    time.sleep(0.05)
                self.assertEqual(d.logs().count("configuration reloaded"), times, d.logs())
            d.signal(signal.SIGHUP)
            reloaded(1)
            self.assertNotIn("until a restart", d.logs())   # all of it applied
            self.write_conf("max-message = 4M\nqueue-depth = 64\n")
            d.signal(signal.SIGHUP)
            reloaded(2)
            self.assertIn("reload: queue-depth, max-message changed; the running values "
                          "stay until a restart", d.logs())
            self.assertEqual(run(too_big()), 1009)   # still 64 KiB
            self.assertTrue(d.http("/healthz")[0] == 200)

    def test_jobs_keep_their_deadline_when_a_reload_changes_the_default(self):
        # a: default deadline 2 s, still running when the default drops to
        # 300 ms; b, submitted after, must time out first, and a at its own.
        self.write_conf("job-timeout = 2000\n")
        with Daemon("-c", self.conf) as d:
            async def go():
                ws = await jobs_conn(d)
                t0 = time.monotonic()
                await ws.send(submit_msg("a", "sleep", {"ms": 5000}))
                await asyncio.sleep(0.2)
                self.write_conf("job-timeout = 300\n")
                d.signal(signal.SIGHUP)
                await asyncio.sleep(0.3)
                await ws.send(submit_msg("b", "sleep", {"ms": 5000}))
                order = []
                while len(order) < 2:
                    ev = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if ev.get("event") in ("done", "error"):
                        order.append((ev["id"], ev.get("code"), time.monotonic() - t0))
                await ws.close()
                return order
            order = run(go())
            self.assertEqual([(i, c) for i, c, _ in order], [("b", "timeout"), ("a", "timeout")], order)
            self.assertLess(order[0][2], 1.5, order)          # b: ~0.8 s after t0
            self.assertGreater(order[1][2], 1.8, order)       # a: its own 2 s
            self.assertLess(order[1][2], 3.5, order)

    def test_default_deadlines_expire_in_turn(self):
        # Several jobs on the default deadline, some still queued behind one
        # worker: each gets exactly one timeout, none is left behind.
        with Daemon("--job-timeout", "300", cpu_workers=1) as d:
            async def go():
                ws = await jobs_conn(d)
                t0 = time.monotonic()
                ids = ["m%d" % i for i in range(4)]
                for i in ids:
                    await ws.send(submit_msg(i, "modsum", {"n": 1, "iterations": 10**11}))
                    await asyncio.sleep(0.05)
                _, finals = await collect(ws, ids, timeout=10)
                took = time.monotonic() - t0
                await ws.close()
                return finals, took
            finals, took = run(go())
            self.assertEqual({i: f.get("code") for i, f in finals.items()},
                             {"m%d" % i: "timeout" for i in range(4)})
            self.assertLess(took, 2.0)


class Shutdown(unittest.TestCase):
    def test_sigterm_drains_refuses_and_closes_1001(self):
        d = Daemon("--shutdown-timeout", "5000").start()
        try:
            async def go():
                ws = await jobs_conn(d)
                for i in range(5):
                    await ws.send(submit_msg("s%d" % i, "sleep", {"ms": 700}))
                await asyncio.sleep(0.2)
                d.signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                # the listener is closed at once
                with self.assertRaises(OSError):
                    socket.create_connection(("127.0.0.1", d.port), timeout=2).close()
                await ws.send(submit_msg("late", "echo", "x"))
                _, finals = await collect(ws, ["late"] + ["s%d" % i for i in range(5)], timeout=10)
                self.assertEqual(finals["late"]["code"], "shutting_down")
                for i in range(5):
                    self.assertEqual(finals["s%d" % i]["output"], "slept 700")
                with self.assertRaises(websockets.ConnectionClosed) as cm:
                    await asyncio.wait_for(ws.recv(), 5)
                self.assertEqual(cm.exception.rcvd.code, 1001)
            run(go())
            self.assertEqual(d.proc.wait(10), 0)
        finally:
            d.stop()

    def test_workers_die_with_a_killed_front(self):
        d = Daemon(cpu_workers=2, io_threads=2).start()
        workers = d.worker_pids("cpu") + d.worker_pids("io")
        self.assertEqual(len(workers), 3)
        d.proc.kill()
        d.proc.wait(10)
        time.sleep(0.5)
        self.assertEqual([p for p in workers if alive(p)], [])

    def test_jobs_past_the_shutdown_timeout_are_answered_shutting_down(self):
        d = Daemon("--shutdown-timeout", "300", cpu_workers=1).start()
        workers = []
        shm_before = set(os.listdir("/dev/shm"))
        try:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("m", "modsum", {"n": 1, "iterations": 100000000000}))
                await asyncio.sleep(0.2)
                workers.extend(d.worker_pids("cpu") + d.worker_pids("io"))
                t0 = time.monotonic()
                d.signal(signal.SIGTERM)
                _, finals = await collect(ws, ["m"], timeout=10)
                self.assertEqual(finals["m"]["code"], "shutting_down")
                self.assertLess(time.monotonic() - t0, 3)
            run(go())
            self.assertEqual(d.proc.wait(10), 0)
            # no worker outlives the daemon, and nothing is left in /dev/shm
            self.assertEqual(len(workers), 2)   # one cpu worker, the io process
            time.sleep(0.3)
            self.assertEqual([p for p in workers if alive(p)], [])
            self.assertEqual(set(os.listdir("/dev/shm")) - shm_before, set())
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
