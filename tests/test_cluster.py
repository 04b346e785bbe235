"""Several instances sharing a Redis result store (--result-store): a detached
job followed, cancelled and lost on another instance than the one running it
(SPEC §5, §12).  Real programs only: Debian's redis-server and haproxy, all
on 127.0.0.1 with ports the kernel chose."""
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import unittest

import websockets

from harness import SLOW, Daemon, collect, jobs_conn, run, submit_msg, free_port
from haproxy_harness import HAProxy
from test_detach import attach, attach_msg, frames, nothing_more, read_chunks, submit_detached

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
AGENT = ("--agent-listen", "127.0.0.1:0")
# The owner's heartbeat key lives 3 s; a follower checks every second.
CRASH_SEEN_S = 15 if SLOW else 10


class Redis:
    """redis-server on 127.0.0.1, no persistence; restartable on its port."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited %d" % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def store_up(d):
    return d.stats()["result_store"]["up"]


async def followed_elsewhere(owner, follower):
    """An endless detached stream submitted on owner, its submitter gone,
    followed live (id "f") from follower.  Returns (handle, follower's ws)."""
    ws = await jobs_conn(owner)
    handle = await submit_detached(ws, "s", "frames", frames(0, interval_ms=50))
    await read_chunks(ws, "s", 2)
    await ws.close()
    fw = await jobs_conn(follower)
    await fw.send(attach_msg("f", handle))
    await read_chunks(fw, "f", 2)
    return handle, fw


def stored_daemon(redis, *args):
    return Daemon(*args, "--result-store", redis.url, cpu_workers=1, io_threads=2)


class BehindHAProxy(unittest.TestCase):
    """Three instances sharing one Redis, behind the shipped HAProxy config."""

    @classmethod
    def setUpClass(cls):
        cls.stack = contextlib.ExitStack()
        try:
            cls.redis = cls.stack.enter_context(Redis())
            cls.ds = [cls.stack.enter_context(stored_daemon(cls.redis, *AGENT)) for _ in range(3)]
            cls.hp = cls.stack.enter_context(HAProxy(cls.ds))
            cls.hp.wait_all_up()
            for d in cls.ds:
                wait_for(lambda: store_up(d), 10, "the result store up")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def submitted(self):
        return [d.stats()["jobs"]["submitted_total"] for d in self.ds]

    async def instance_of(self, ws):
        """Which of self.ds this connection reached: the one whose count of
        submitted jobs an echo on it raises (nothing else submits meanwhile)."""
        before = self.submitted()
        await ws.send(submit_msg("which", "echo", "?"))
        _, finals = await collect(ws, ["which"], timeout=10)
        self.assertEqual(finals["which"]["event"], "done")
        grown = [i for i, (a, b) in enumerate(zip(self.submitted(), before)) if a != b]
        self.assertEqual(len(grown), 1, grown)
        return grown[0]

    async def conn_not_on(self, owner, held):
        """A connection through HAProxy that reached another instance than
        owner; those that reached owner stay open (in held) so leastconn
        moves on."""
        for _ in range(6):
            ws = await websockets.connect(self.hp.url + "/jobs", max_size=None,
                                          ping_interval=None, open_timeout=10)
            at = await self.instance_of(ws)
            if at != owner:
                return ws, at
            held.append(ws)
        self.fail("every connection through HAProxy reached the owner")

    def test_a_stream_dropped_mid_way_is_followed_from_a_seq_on_other_instances(self):
        n = 40

        async def go():
            held = []
            ws = await websockets.connect(self.hp.url + "/jobs", max_size=None,
                                          ping_interval=None, open_timeout=10)
            owner = await self.instance_of(ws)
            handle = await submit_detached(ws, "s", "frames", frames(n, interval_ms=60))
            early = await read_chunks(ws, "s", 4)
            await ws.close()                   # mid-stream: the job goes on
            other = self.ds[(owner + 1) % 3]
            ws2 = await jobs_conn(other)
            # While it runs: kept chunks from 10, then live ones, then done.
            chunks, final = await attach(ws2, "a", handle, 10)
            self.assertEqual([c["seq"] for c in chunks], list(range(10, n)))
            self.assertEqual(final["event"], "done", final)
            await nothing_more(self, ws2, 0.3)
            await ws2.close()
            # The owner's own record gives the same texts, byte for byte.
            ws3 = await jobs_conn(self.ds[owner])
            local, local_final = await attach(ws3, "l", handle, 0)
            await ws3.close()
            self.assertEqual([c["seq"] for c in local], list(range(n)))
            for c in early:
                self.assertEqual(local[c["seq"]]["output"], c["output"])
            self.assertEqual([c["output"] for c in chunks], [c["output"] for c in local[10:]])
            self.assertEqual(final.get("output"), local_final.get("output"))
            # Through HAProxy too, on a connection that reached another instance.
            ws4, at = await self.conn_not_on(owner, held)
            self.assertNotEqual(at, owner)
            tail, final4 = await attach(ws4, "t", handle, n - 5)
            self.assertEqual([c["seq"] for c in tail], list(range(n - 5, n)))
            self.assertEqual([c["output"] for c in tail], [c["output"] for c in local[n - 5:]])
            self.assertEqual(final4["event"], "done", final4)
            await nothing_more(self, ws4, 0.3)
            for w in held + [ws4]:
                await w.close()
        run(go(), 60)

    def test_a_cancel_by_handle_on_another_instance_cancels_the_job_on_its_owner(self):
        owner, follower, canceller = self.ds

        async def go():
            handle, fw = await followed_elsewhere(owner, follower)
            cw = await jobs_conn(canceller)
            await cw.send(json.dumps({"op": "cancel", "handle": handle}))
            got, finals = await collect(fw, ["f"], timeout=10)
            self.assertEqual(finals["f"]["event"], "error")
            self.assertEqual(finals["f"]["code"], "cancelled", finals["f"])
            await nothing_more(self, fw, 0.5)
            await nothing_more(self, cw, 0.1)  # a cancel answers nothing
            await fw.close()
            await cw.close()
            wait_for(lambda: owner.stats()["detached"]["running"] == 0, 10,
                     "the owner's job to end")
        run(go(), 40)


class Failures(unittest.TestCase):
    def test_the_owner_killed_ends_a_remote_follow_with_one_worker_crashed(self):
        with Redis() as redis, stored_daemon(redis) as follower:
            owner = stored_daemon(redis).start()
            try:
                wait_for(lambda: store_up(owner) and store_up(follower), 10, "the store up")

                async def go():
                    handle, fw = await followed_elsewhere(owner, follower)
                    owner.proc.kill()           # SIGKILL: no final ever written
                    t0 = time.time()
                    _, finals = await collect(fw, ["f"], timeout=CRASH_SEEN_S)
                    self.assertEqual(finals["f"]["code"], "worker_crashed", finals["f"])
                    self.assertLess(time.time() - t0, CRASH_SEEN_S)
                    await nothing_more(self, fw, 0.5)
                    # A later attach learns the same, at once.
                    chunks, final = await attach(fw, "g", handle, 10 ** 9, timeout=CRASH_SEEN_S)
                    self.assertEqual((chunks, final["code"]), ([], "worker_crashed"))
                    await fw.close()
                run(go(), 60)
            finally:
                owner.proc.kill()
                owner.proc.wait()

    def test_a_stopping_owner_writes_its_jobs_finals_before_it_exits(self):
        with Redis() as redis, stored_daemon(redis) as follower:
            owner = stored_daemon(redis, "--shutdown-timeout", "0").start()
            try:
                wait_for(lambda: store_up(owner) and store_up(follower), 10, "the store up")

                async def go():
                    handle, fw = await followed_elsewhere(owner, follower)
                    owner.stop()                # SIGTERM: the job is answered shutting_down
                    self.assertEqual(owner.proc.returncode, 0)
                    _, finals = await collect(fw, ["f"], timeout=10)
                    self.assertEqual(finals["f"]["code"], "shutting_down", finals["f"])
                    chunks, final = await attach(fw, "g", handle, 10 ** 9, timeout=10)
                    self.assertEqual((chunks, final["code"]), ([], "shutting_down"))
                    await fw.close()
                run(go(), 40)
            finally:
                owner.stop()

    def test_redis_down_answers_detached_submits_busy_and_back_up_they_work_again(self):
        redis = Redis().start()
        try:
            with stored_daemon(redis) as d:
                wait_for(lambda: store_up(d), 10, "the store up")
                redis.kill()
                wait_for(lambda: not store_up(d), 10, "the store seen down")
                st = d.stats()["result_store"]
                self.assertFalse(st["up"])
                self.assertNotEqual(st["state"], "up")

                async def down():
                    ws = await jobs_conn(d)
                    await ws.send(submit_msg("d", "echo", "x", detach=True))
                    await ws.send(submit_msg("n", "echo", "plain"))
                    _, finals = await collect(ws, ["d", "n"], timeout=10)
                    await ws.close()
                    return finals
                finals = run(down(), 30)
                self.assertEqual(finals["d"]["code"], "busy", finals["d"])
                self.assertIn("result store is down", finals["d"]["message"])
                self.assertIn(st["state"], finals["d"]["message"])
                self.assertEqual((finals["n"]["event"], finals["n"]["output"]), ("done", "plain"))
                _, metrics = d.http("/metrics")
                self.assertIn(b"\nwsjobd_result_store_up 0\n", metrics)

                redis.start()                   # the same port
                t0 = time.time()
                wait_for(lambda: store_up(d), 10, "the store up again")

                async def up():
                    ws = await jobs_conn(d)
                    handle = await submit_detached(ws, "u", "echo", "back")
                    _, finals = await collect(ws, ["u"], timeout=10)
                    await ws.close()
                    return handle, finals["u"]
                handle, final = run(up(), 30)
                self.assertEqual(final["output"], "back")
                self.assertLess(time.time() - t0, 10)
                st = d.stats()["result_store"]
                self.assertEqual(st["state"], "up")
                self.assertGreater(st["reconnects_total"], 0)
                _, metrics = d.http("/metrics")
                self.assertIn(b"\nwsjobd_result_store_up 1\n", metrics)
                log = d.logs()
                self.assertEqual(log.count(": up\n"), 2, log)
        finally:
            redis.kill()


if __name__ == "__main__":
    unittest.main()
