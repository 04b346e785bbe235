"""Many instances: the agent-check port, two daemons on one host, and three
behind HAProxy (scripts/haproxy.cfg) through a SIGTERM of one of them."""
import asyncio
import contextlib
import hashlib
import signal
import socket
import sys
import time
import unittest

import websockets

from harness import Daemon, collect, jobs_conn, run, submit_msg
from haproxy_harness import HAProxy

AGENT = ("--agent-listen", "127.0.0.1:0")


def poll(fn, timeout, what):
    """fn() until it returns something true; that value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def sha256_ref(data, rounds):
    h = hashlib.sha256(data.encode()).hexdigest()
    for _ in range(rounds - 1):
        h = hashlib.sha256(h.encode()).hexdigest()
    return h


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


class AgentCheck(unittest.TestCase):
    def test_one_line_then_close_and_the_weight_follows_open_connections(self):
        with Daemon(*AGENT, "--max-connections", "10", cpu_workers=1, io_threads=2) as d:
            self.assertEqual(d.agent(), b"ready 100%\n")
            # What HAProxy's agent-send writes first is read and ignored.
            self.assertEqual(d.agent(send=b"wsjobd/wsjobd1\n" * 100), b"ready 100%\n")
            asked = 2

            async def with_five_open():
                conns = [await jobs_conn(d) for _ in range(5)]
                # 5 of 10 connections: half the capacity is free.
                line = await asyncio.to_thread(
                    poll, lambda: d.agent() == b"ready 50%\n" and 1, 5, "ready 50%")
                for ws in conns:
                    await ws.close()
                return line
            run(with_five_open(), 30)
            poll(lambda: d.agent() == b"ready 100%\n", 5, "ready 100% again")
            st = d.stats()["agent"]
            self.assertEqual(st["port"], d.agent_port)
            self.assertEqual(st["last"], "ready 100%")
            self.assertEqual(st["drain_total"], 0)
            self.assertGreaterEqual(st["answers_total"], asked + 2)   # and the polls'
            answers = st["answers_total"]
            status, body = d.http("/metrics")
            self.assertEqual(status, 200)
            self.assertIn(b'wsjobd_agent_answers_total{answer="ready"} %d\n' % answers, body)
            self.assertIn(b"wsjobd_agent_weight_percent 100\n", body)

    def test_checks_that_never_read_or_close_are_bounded_and_others_still_answered(self):
        with Daemon(*AGENT, cpu_workers=1, io_threads=2) as d:
            held = []
            try:
                for _ in range(100):
                    s = socket.socket()
                    s.settimeout(2)
                    try:
                        s.connect(("127.0.0.1", d.agent_port))
                    except OSError:
                        s.close()
                        break
                    held.append(s)
                self.assertEqual(len(held), 100)
                # 64 answered and lingering for their peers' close; the rest
                # wait in the backlog, not in the daemon's memory.
                st = d.stats()["agent"]
                self.assertLessEqual(st["lingering"], 64)
                self.assertLess(st["answers_total"], len(held))
                self.assertEqual(d.http("/healthz")[0], 200)
                # Each answer lingers at most a second; then the next ones
                # are answered, though no peer ever closed.
                for s in held:
                    s.settimeout(15)
                got = [s.recv(64) for s in held]
                self.assertEqual(got, [b"ready 100%\n"] * len(held))
                poll(lambda: d.stats()["agent"]["lingering"] == 0 and 1, 10, "lingering answers ended")
                self.assertEqual(d.agent(), b"ready 100%\n")
            finally:
                for s in held:
                    s.close()

    def test_a_full_queue_drains_until_it_falls_under_75_percent(self):
        # One I/O thread, rings of 8: one sleep runs, 8 wait (100%), and they
        # leave the ring one per 700 ms: 7/8 and 6/8 are above the low mark
        # and must still say drain; 5/8 says ready again, 38%.
        with Daemon(*AGENT, "--queue-depth", "8", cpu_workers=1, io_threads=1) as d:
            self.assertEqual(d.agent(), b"ready 100%\n")
            depth = lambda: d.stats()["queues"]["io"]["depth"]

            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("s0", "sleep", {"ms": 700}))
                await asyncio.to_thread(
                    poll, lambda: d.stats()["jobs"]["in_flight"] == 1 and depth() == 0, 5, "s0 running")
                for i in range(1, 9):
                    await ws.send(submit_msg("s%d" % i, "sleep", {"ms": 700}))
                await asyncio.to_thread(poll, lambda: depth() == 8, 5, "a full ring")
                samples = []

                def sample_until_empty():
                    deadline = time.time() + 20
                    while time.time() < deadline:
                        before, line, after = depth(), d.agent().decode(), depth()
                        if before == after:
                            samples.append((before, line))
                        if after == 0:
                            return
                        time.sleep(0.03)
                sampler = asyncio.create_task(asyncio.to_thread(sample_until_empty))
                _, finals = await collect(ws, ["s%d" % i for i in range(9)], timeout=30)
                await sampler
                await ws.close()
                return finals, samples
            finals, samples = run(go(), 60)
            for f in finals.values():
                self.assertEqual((f["event"], f.get("output")), ("done", "slept 700"))
            seen = {dep for dep, _ in samples}
            self.assertTrue({8, 5} <= seen and seen & {6, 7}, samples)
            for dep, line in samples:
                if dep >= 6:
                    self.assertEqual(line, "drain\n", (dep, samples))
                else:
                    # The ring's free share to the nearest percent (the one
                    # connection open is 0.01% of 10000: nothing).
                    free = round(100 * (8 - dep) / 8 + 0.001)
                    self.assertEqual(line, "ready %d%%\n" % free, (dep, samples))
            self.assertGreater(d.stats()["agent"]["drain_total"], 0)
            self.assertIn("agent check: now answering drain", d.logs())
            self.assertIn("agent check: now answering ready", d.logs())

    def test_sigterm_says_drain_while_jobs_in_flight_finish(self):
        d = Daemon(*AGENT, cpu_workers=1, io_threads=2).start()
        try:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("long", "sleep", {"ms": 2500}))
                await asyncio.to_thread(
                    poll, lambda: d.stats()["jobs"]["in_flight"] == 1, 5, "the job running")
                d.signal(signal.SIGTERM)
                line = await asyncio.to_thread(
                    poll, lambda: d.agent() == b"drain\n" and 1, 5, "drain")
                # The job port is closed at once; the agent's stays open.
                self.assertTrue(refused(d.port))
                self.assertEqual(d.agent(), b"drain\n")
                _, finals = await collect(ws, ["long"], timeout=20)
                await ws.wait_closed()
                return line, finals["long"], ws.close_code
            _, final, code = run(go(), 40)
            self.assertEqual((final["event"], final.get("output")), ("done", "slept 2500"))
            self.assertEqual(code, 1001)
            self.assertEqual(d.proc.wait(20), 0)
            self.assertTrue(refused(d.agent_port))
        finally:
            d.stop()


class ManyInstances(unittest.TestCase):
    def test_two_instances_on_one_host_serve_jobs_at_once(self):
        with Daemon(*AGENT, cpu_workers=1, io_threads=2) as a, \
                Daemon(*AGENT, cpu_workers=1, io_threads=2) as b:
            self.assertEqual(len({a.port, b.port, a.agent_port, b.agent_port}), 4)
            # The same port twice is an error at start, not a shared socket.
            with self.assertRaisesRegex(RuntimeError, "Address already in use"):
                Daemon("--listen", "127.0.0.1:%d" % a.port, cpu_workers=1, io_threads=1).start()
            want = {"j%d" % i: sha256_ref("x%d" % i, 2000) for i in range(20)}

            async def jobs_on(d):
                ws = await jobs_conn(d)
                for i in range(20):
                    await ws.send(submit_msg("j%d" % i, "sha256", {"data": "x%d" % i, "rounds": 2000}))
                _, finals = await collect(ws, list(want), timeout=60)
                await ws.close()
                return finals

            async def both():
                return await asyncio.gather(jobs_on(a), jobs_on(b))
            for finals in run(both(), 90):
                self.assertEqual({i: f.get("output") for i, f in finals.items()}, want)
            sa, sb = a.stats(), b.stats()
            self.assertNotEqual(sa["pid"], sb["pid"])
            self.assertFalse(set(a.worker_pids("cpu") + a.worker_pids("io")) &
                             set(b.worker_pids("cpu") + b.worker_pids("io")))
            for st in (sa, sb):
                self.assertEqual((st["jobs"]["submitted_total"], st["jobs"]["done_total"]), (20, 20))
                self.assertEqual(st["jobs"]["in_flight"], 0)
            self.assertEqual(a.agent(), b"ready 100%\n")
            self.assertEqual(b.agent(), b"ready 100%\n")


async def one_job(url, i, type, input, want):
    """A new connection through the proxy, one job; its final event."""
    ws = await websockets.connect(url + "/jobs", max_size=None, ping_interval=None, open_timeout=20)
    try:
        await ws.send(submit_msg(i, type, input))
        _, finals = await collect(ws, [i], timeout=60)
    finally:
        await ws.close()
    f = finals[i]
    assert (f["event"], f.get("output")) == ("done", want), f
    return f


class BehindHAProxy(unittest.TestCase):
    def test_three_instances_share_connections_and_one_stops_losing_nothing(self):
        n = 300
        ds = [Daemon(*AGENT, cpu_workers=1, io_threads=4) for _ in range(3)]
        with contextlib.ExitStack() as stack:
            for d in ds:
                stack.enter_context(d)
            hp = stack.enter_context(HAProxy(ds))
            hp.wait_all_up()
            self.spread(hp, ds, n)
            self.stop_one(hp, ds)

    def spread(self, hp, ds, n):
        """n connections open at once through HAProxy, a job each."""
        before = [d.stats() for d in ds]
        hp_before = hp.servers()
        want = sha256_ref("c", 50)

        async def go():
            async def conn(i):
                ws = await websockets.connect(hp.url + "/jobs", max_size=None,
                                              ping_interval=None, open_timeout=30)
                await ws.send(submit_msg("c%d" % i, "sha256", {"data": "c", "rounds": 50}))
                _, finals = await collect(ws, ["c%d" % i], timeout=60)
                return ws, finals["c%d" % i]
            got = await asyncio.gather(*(conn(i) for i in range(n)))
            # Every connection is still open here, so leastconn saw them all.
            for ws, _ in got:
                await ws.close()
            return [f for _, f in got]
        finals = run(go(), 120)
        self.assertEqual(len(finals), n)
        for f in finals:
            self.assertEqual((f["event"], f.get("output")), ("done", want))
        after = [d.stats() for d in ds]
        hp_after = hp.servers()
        jobs = [a["jobs"]["submitted_total"] - b["jobs"]["submitted_total"]
                for a, b in zip(after, before)]
        accepted = [a["connections"]["accepted_total"] - b["connections"]["accepted_total"]
                    for a, b in zip(after, before)]
        sessions = [int(hp_after["wsjobd%d" % i]["stot"]) - int(hp_before["wsjobd%d" % i]["stot"])
                    for i in (1, 2, 3)]
        print("%d connections through HAProxy: jobs per instance %s, connections accepted %s"
              % (n, jobs, accepted), file=sys.stderr)
        self.assertEqual(sum(jobs), n, (jobs, accepted, sessions))
        # One WebSocket, one session, one job, on the same instance; the
        # instance also accepted HAProxy's health checks and our /stats.
        self.assertEqual(jobs, sessions, (jobs, accepted, sessions))
        for j, a in zip(jobs, accepted):
            self.assertGreater(j, 0, (jobs, accepted))
            self.assertGreaterEqual(a, j, (jobs, accepted))
        # leastconn with all of them open: roughly even, no instance starved.
        self.assertGreater(min(jobs), n // 6, jobs)

    def stop_one(self, hp, ds):
        """SIGTERM one instance with jobs in flight: it drains, HAProxy
        routes around it, its jobs finish with their results, it exits 0."""
        long_ms = 4000

        async def go():
            holders = [asyncio.create_task(one_job(hp.url, "long%d" % i, "sleep",
                                                   {"ms": long_ms}, "slept %d" % long_ms))
                       for i in range(6)]
            in_flight = lambda: [d.stats()["jobs"]["in_flight"] for d in ds]
            counts = await asyncio.to_thread(
                poll, lambda: sum(in_flight()) == 6 and in_flight(), 10, "6 long jobs running")
            v = max(range(3), key=lambda i: counts[i])
            victim, others = ds[v], [d for i, d in enumerate(ds) if i != v]
            self.assertGreater(counts[v], 0)
            base = [d.stats()["jobs"]["submitted_total"] for d in others]
            victim.signal(signal.SIGTERM)
            await asyncio.to_thread(
                poll, lambda: victim.agent() == b"drain\n" and 1, 5, "the victim's agent: drain")
            # At once: HAProxy may not know yet, so it meets the closed port
            # and must try another server (redispatch).
            early = await asyncio.gather(*(one_job(hp.url, "e%d" % i, "echo", "e%d" % i, "e%d" % i)
                                           for i in range(10)))
            name = "wsjobd%d" % (v + 1)
            # "DRAIN (agent)" from the agent within agent-inter, DOWN once
            # the health check failed twice ("UP 1/2" is on its way).
            out = lambda: hp.servers()[name]["status"].split()[0] in ("DRAIN", "DOWN")
            await asyncio.to_thread(hp.wait, out, 10, name + " drained")
            late = await asyncio.gather(*(one_job(hp.url, "l%d" % i, "echo", "l%d" % i, "l%d" % i)
                                          for i in range(20)))
            longs = await asyncio.gather(*holders)
            return v, len(early) + len(late), base, longs
        v, new, base, longs = run(go(), 90)
        victim, others = ds[v], [d for i, d in enumerate(ds) if i != v]
        # Every long job, those on the victim included, ended done with its
        # real result (one_job checked each one's single final event).
        self.assertEqual(len(longs), 6)
        self.assertEqual(victim.proc.wait(20), 0)
        self.assertIn("agent check: now answering drain", victim.logs())
        # Every new job ran on one of the two others: none on the victim.
        grown = [d.stats()["jobs"]["submitted_total"] - b for d, b in zip(others, base)]
        self.assertEqual(sum(grown), new, grown)


if __name__ == "__main__":
    unittest.main()
