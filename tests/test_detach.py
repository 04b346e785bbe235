"""Detached jobs end to end: jobs that outlive their connection (SPEC §5)."""
import asyncio
import json
import os
import re
import signal
import subprocess
import time
import unittest

import websockets

from harness import SLOW, WSJOB, Daemon, collect, jobs_conn, run, submit_msg

HANDLE = re.compile(r"^[0-9a-f]{32,}$")
MADE_UP = "0123456789abcdef0123456789abcdef"


def frames(count, interval_ms=20, size=32):
    return {"count": count, "width": size, "height": size, "interval_ms": interval_ms}


async def submit_detached(ws, id, type, input, **extra):
    """Submits with detach and returns the handle from `accepted`."""
    await ws.send(submit_msg(id, type, input, detach=True, **extra))
    ev = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert ev["event"] == "accepted" and ev["id"] == id, ev
    assert HANDLE.match(ev["handle"]), ev
    return ev["handle"]


def attach_msg(id, handle, from_seq=None):
    m = {"op": "attach", "id": id, "handle": handle}
    if from_seq is not None:
        m["from_seq"] = from_seq
    return json.dumps(m)


async def attach(ws, id, handle, from_seq=None, timeout=30):
    """Attaches and reads to the final event: (chunk events, final event)."""
    await ws.send(attach_msg(id, handle, from_seq))
    got, finals = await collect(ws, [id], timeout=timeout)
    return [e for e in got[id] if e["event"] == "chunk"], finals[id]


async def read_chunks(ws, id, n):
    """The first n chunk events of id (other events skipped)."""
    chunks = []
    while len(chunks) < n:
        ev = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ev.get("id") == id and ev["event"] in ("chunk", "progress"), ev
        if ev["event"] == "chunk":
            chunks.append(ev)
    return chunks


async def nothing_more(test, ws, seconds=0.5):
    """Asserts no event arrives within seconds."""
    try:
        ev = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    test.fail("unexpected event after the final one: %s" % ev)


class Follow(unittest.TestCase):
    def test_a_stream_survives_its_connection_and_is_replayed_whole_then_from_a_seq(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(30))
                early = await read_chunks(ws, "s", 3)
                await ws.close()              # mid-stream: the job goes on
                ws2 = await jobs_conn(d)
                chunks, final = await attach(ws2, "a", handle, 0)
                self.assertEqual(final["event"], "done", final)
                self.assertEqual([c["seq"] for c in chunks], list(range(30)))
                self.assertTrue(all(c["id"] == "a" for c in chunks))
                # what the submitter saw is what the replay gives, byte for byte
                for c in early:
                    self.assertEqual(chunks[c["seq"]]["output"], c["output"])
                tail, final2 = await attach(ws2, "b", handle, 25)
                self.assertEqual([c["seq"] for c in tail], list(range(25, 30)))
                self.assertEqual(final2["event"], "done")
                self.assertEqual(final2["run_us"], final["run_us"])
                await nothing_more(self, ws2)
                await ws2.close()
            run(go())

    def test_an_attach_while_running_replays_then_goes_live_without_gap_or_repeat(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(40, interval_ms=30))
                await ws.close()
                await asyncio.sleep(0.3)
                ws2 = await jobs_conn(d)
                chunks, final = await attach(ws2, "a", handle)
                self.assertEqual(final["event"], "done")
                self.assertEqual([c["seq"] for c in chunks], list(range(40)))
                st = d.stats()["detached"]
                self.assertEqual((st["held"], st["running"], st["finished_kept"]), (1, 0, 1))
                self.assertEqual(st["attach_total"], 1)
                await ws2.close()
            run(go())

    def test_the_submitter_keeps_its_events_and_the_final_is_kept_after(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "h", "sha256", {"data": "abc", "rounds": 1})
                _, finals = await collect(ws, ["h"])
                digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                self.assertEqual(finals["h"]["output"], digest)
                chunks, final = await attach(ws, "again", handle)
                self.assertEqual((chunks, final["output"]), ([], digest))
                await ws.close()
            run(go())


class Expiry(unittest.TestCase):
    def test_after_the_ttl_and_for_made_up_handles_attach_is_not_found(self):
        with Daemon("--result-ttl", "1") as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "e", "echo", "kept")
                await collect(ws, ["e"])
                _, final = await attach(ws, "a1", handle)
                self.assertEqual(final["output"], "kept")
                for bad in (MADE_UP, "nothex", handle.upper(), handle[:-1]):
                    _, final = await attach(ws, "x", bad)
                    self.assertEqual(final["code"], "not_found", bad)
                await asyncio.sleep(1.6)
                _, final = await attach(ws, "a2", handle)
                self.assertEqual(final["code"], "not_found")
                st = d.stats()["detached"]
                self.assertEqual((st["held"], st["expired_total"]), (0, 1))
                await ws.close()
            run(go())

    def test_max_detached_counts_until_the_ttl_ends(self):
        with Daemon("--max-detached", "2", "--result-ttl", "1") as d:
            async def go():
                ws = await jobs_conn(d)
                for i in ("a", "b"):
                    await ws.send(submit_msg(i, "echo", i, detach=True))
                got, _ = await collect(ws, ["a", "b"])
                for i in ("a", "b"):
                    self.assertEqual([e["event"] for e in got[i]], ["accepted", "done"])
                await ws.send(submit_msg("c", "echo", "3", detach=True))
                _, finals = await collect(ws, ["c"])
                self.assertEqual(finals["c"]["code"], "busy")
                # jobs that are not detached are not limited by it
                await ws.send(submit_msg("plain", "echo", "4"))
                _, finals = await collect(ws, ["plain"])
                self.assertEqual(finals["plain"]["output"], "4")
                await asyncio.sleep(1.6)
                await submit_detached(ws, "d", "echo", "5")
                await collect(ws, ["d"])
                await ws.close()
            run(go())


class Cancel(unittest.TestCase):
    def test_a_cancel_by_handle_from_another_connection_ends_it_once(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(0))
                await ws.close()
                follower = await jobs_conn(d)
                await follower.send(attach_msg("f", handle))
                await read_chunks(follower, "f", 2)
                other = await jobs_conn(d)
                await other.send(json.dumps({"op": "cancel", "handle": handle}))
                _, finals = await collect(follower, ["f"], timeout=10)
                self.assertEqual(finals["f"]["code"], "cancelled")
                await nothing_more(self, follower)
                await nothing_more(self, other, 0.2)   # a cancel is not answered
                # a second cancel, and one of a made-up handle: ignored
                await other.send(json.dumps({"op": "cancel", "handle": handle}))
                await other.send(json.dumps({"op": "cancel", "handle": MADE_UP}))
                _, final = await attach(other, "after", handle)
                self.assertEqual(final["code"], "cancelled")
                await asyncio.sleep(0.3)
                self.assertEqual(d.stats()["jobs"]["in_flight"], 0)
                for w in (follower, other):
                    await w.close()
            run(go())

    def test_a_cancel_by_the_followers_id_cancels_the_job(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(0))
                await read_chunks(ws, "s", 1)
                await ws.send(json.dumps({"op": "cancel", "id": "s"}))
                _, finals = await collect(ws, ["s"])
                self.assertEqual(finals["s"]["code"], "cancelled")
                _, final = await attach(ws, "later", handle)
                self.assertEqual(final["code"], "cancelled")
                await ws.close()
            run(go())


class Buffer(unittest.TestCase):
    def test_a_small_buffer_drops_the_oldest_and_the_job_still_finishes(self):
        n = 30
        with Daemon("--detach-buffer", "20k") as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(n, interval_ms=0, size=128))
                await ws.close()
                ws2 = await jobs_conn(d)
                deadline = time.monotonic() + 30
                while d.stats()["detached"]["running"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                chunks, final = await attach(ws2, "a", handle)
                self.assertEqual(final["event"], "done")
                seqs = [c["seq"] for c in chunks]
                self.assertTrue(seqs, "nothing kept")
                self.assertEqual(seqs, list(range(seqs[0], n)))   # the newest, in order
                self.assertGreater(seqs[0], 0)
                st = d.stats()["detached"]
                self.assertEqual(st["dropped_events_total"], seqs[0])
                self.assertLessEqual(st["kept_bytes"], 20 * 1024)
                await ws2.close()
            run(go())


class Takeover(unittest.TestCase):
    def test_a_newer_attach_takes_over_and_the_older_gets_superseded(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(25, interval_ms=40))
                await read_chunks(ws, "s", 2)
                a = await jobs_conn(d)
                await a.send(attach_msg("first", handle))
                await read_chunks(a, "first", 3)
                got_s, finals_s = await collect(ws, ["s"])   # the submitter was taken over
                self.assertEqual(finals_s["s"]["code"], "superseded")
                b = await jobs_conn(d)
                await b.send(attach_msg("second", handle))
                _, finals_a = await collect(a, ["first"])
                self.assertEqual(finals_a["first"]["code"], "superseded")
                got_b, finals_b = await collect(b, ["second"])
                self.assertEqual(finals_b["second"]["event"], "done")
                seqs = [e["seq"] for e in got_b["second"] if e["event"] == "chunk"]
                self.assertEqual(seqs, list(range(25)))
                for w in (ws, a, b):
                    await nothing_more(self, w, 0.2)
                self.assertEqual(d.stats()["detached"]["superseded_total"], 2)
                for w in (ws, a, b):
                    await w.close()
            run(go())


class FlowControl(unittest.TestCase):
    def test_nobody_reading_never_stalls_a_job_and_a_slow_follower_does(self):
        with Daemon("--stream-window", "64k", "--detach-buffer", "64k") as d:
            def dropped():
                return d.stats()["detached"]["dropped_events_total"]

            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(0, interval_ms=0, size=256))
                await ws.close()
                await asyncio.sleep(0.5)
                d0 = dropped()
                await asyncio.sleep(1.0)
                free_run = dropped() - d0
                self.assertGreater(free_run, 5)           # nobody attached: it runs on
                slow = await websockets.connect(d.url + "/jobs", ping_interval=None, max_queue=1,
                                                read_limit=2**12)
                await slow.send(attach_msg("slow", handle))
                await asyncio.sleep(2.0)                  # socket buffers fill, then it waits
                d1 = dropped()
                await asyncio.sleep(1.0)
                stalled = dropped() - d1
                self.assertLess(stalled, max(3, free_run // 10), (free_run, stalled))
                slow.transport.abort()                    # the follower goes: it runs on
                await asyncio.sleep(0.5)
                d2 = dropped()
                await asyncio.sleep(1.0)
                self.assertGreater(dropped() - d2, 5)
                other = await jobs_conn(d)
                await other.send(json.dumps({"op": "cancel", "handle": handle}))
                _, final = await attach(other, "end", handle)
                self.assertEqual(final["code"], "cancelled")
                await other.close()
            run(go())


class Crash(unittest.TestCase):
    def busy_cpu_pid(self, d):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            busy = [w["pid"] for w in d.stats()["workers"]
                    if w["class"] == "cpu" and w["state"] == "busy"]
            if busy:
                return busy[0]
            time.sleep(0.05)
        self.fail("no cpu worker became busy")

    def test_a_killed_worker_is_one_worker_crashed_for_the_follower(self):
        with Daemon("--crash-retries", "0", cpu_workers=1) as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(0))
                await ws.close()
                follower = await jobs_conn(d)
                await follower.send(attach_msg("f", handle))
                await read_chunks(follower, "f", 2)
                os.kill(self.busy_cpu_pid(d), signal.SIGKILL)
                _, finals = await collect(follower, ["f"], timeout=10)
                self.assertEqual(finals["f"]["code"], "worker_crashed")
                await nothing_more(self, follower)
                _, final = await attach(follower, "later", handle)
                self.assertEqual(final["code"], "worker_crashed")
                await follower.close()
            run(go())

    def test_a_killed_worker_is_run_again_and_the_follower_gets_its_one_result(self):
        with Daemon("--crash-retries", "1", cpu_workers=1) as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "frames", frames(8, interval_ms=50))
                await ws.close()
                follower = await jobs_conn(d)
                await follower.send(attach_msg("f", handle))
                early = await read_chunks(follower, "f", 2)
                os.kill(self.busy_cpu_pid(d), signal.SIGKILL)
                got, finals = await collect(follower, ["f"], timeout=20)
                self.assertEqual(finals["f"]["event"], "done", finals["f"])
                seqs = [e["seq"] for e in early + got["f"] if e["event"] == "chunk"]
                self.assertEqual(seqs, list(range(len(seqs))))   # seq runs on over the re-run
                self.assertGreaterEqual(len(seqs), 8)
                self.assertEqual(d.stats()["jobs"]["retried_total"], 1)
                await nothing_more(self, follower)
                await follower.close()
            run(go())


class Shutdown(unittest.TestCase):
    def test_sigterm_waits_for_a_detached_job_then_exits_0(self):
        d = Daemon("--shutdown-timeout", "10000").start()
        try:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "sleep", {"ms": 1500})
                await ws.close()                          # nobody holds it but the store
                follower = await jobs_conn(d)
                await follower.send(attach_msg("f", handle))
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                d.signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                await follower.send(submit_msg("late", "sleep", {"ms": 1}, detach=True))
                _, finals = await collect(follower, ["f", "late"], timeout=10)
                self.assertEqual(finals["late"]["code"], "shutting_down")
                self.assertEqual(finals["f"]["output"], "slept 1500")
                self.assertGreater(time.monotonic() - t0, 0.8)
                with self.assertRaises(websockets.ConnectionClosed) as cm:
                    await asyncio.wait_for(follower.recv(), 5)
                self.assertEqual(cm.exception.rcvd.code, 1001)
            run(go())
            self.assertEqual(d.proc.wait(10), 0)
        finally:
            d.stop()

    def test_past_the_shutdown_timeout_it_is_answered_shutting_down(self):
        d = Daemon("--shutdown-timeout", "300").start()
        try:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "s", "sleep", {"ms": 20000})
                await ws.close()
                follower = await jobs_conn(d)
                await follower.send(attach_msg("f", handle))
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                d.signal(signal.SIGTERM)
                _, finals = await collect(follower, ["f"], timeout=10)
                self.assertEqual(finals["f"]["code"], "shutting_down")
                self.assertLess(time.monotonic() - t0, 5)
            run(go())
            self.assertEqual(d.proc.wait(10), 0)
        finally:
            d.stop()


class Protocol(unittest.TestCase):
    def test_bad_requests_and_limits(self):
        with Daemon("--max-inflight", "2") as d:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("b1", "echo", "x", detach="yes"))
                await ws.send(json.dumps({"op": "attach", "id": "b2"}))
                await ws.send(json.dumps({"op": "attach", "id": "b3", "handle": MADE_UP,
                                          "from_seq": -1}))
                await ws.send(json.dumps({"op": "cancel", "handle": 5}))   # ignored
                _, finals = await collect(ws, ["b1", "b2", "b3"])
                for i in ("b1", "b2", "b3"):
                    self.assertEqual(finals[i]["code"], "bad_request", finals[i])
                handle = await submit_detached(ws, "s", "frames", frames(0))
                await ws.send(submit_msg("p", "sleep", {"ms": 20000}))
                await ws.send(attach_msg("u", handle))                     # a third id
                _, finals = await collect(ws, ["u"])
                self.assertEqual(finals["u"]["code"], "busy")              # max-inflight 2
                for i in ("p", "s"):
                    await ws.send(json.dumps({"op": "cancel", "id": i}))
                _, finals = await collect(ws, ["p", "s"])
                self.assertEqual(finals["p"]["code"], "cancelled")
                self.assertEqual(finals["s"]["code"], "cancelled")
                await ws.close()
            run(go())

    def test_stats_and_metrics(self):
        with Daemon() as d:
            async def go():
                ws = await jobs_conn(d)
                handle = await submit_detached(ws, "a", "echo", "x")
                await collect(ws, ["a"])
                await attach(ws, "b", handle)
                await ws.close()
            run(go())
            st = d.stats()["detached"]
            want = {"held": 1, "running": 0, "finished_kept": 1, "accepted_total": 1,
                    "attach_total": 1, "expired_total": 0, "dropped_events_total": 0}
            self.assertEqual({k: st[k] for k in want}, want)
            status, body = d.http("/metrics")
            self.assertEqual(status, 200)
            text = body.decode()
            for line in ("wsjobd_detached_held 1", "wsjobd_detached_attach_total 1",
                         "wsjobd_detached_accepted_total 1", "wsjobd_detached_running 0"):
                self.assertIn("\n" + line + "\n", text)


class Client(unittest.TestCase):
    def wsjob(self, d, *args):
        return subprocess.run([WSJOB, "--url", d.url, *args], capture_output=True, timeout=60)

    def test_submit_detach_and_attach(self):
        with Daemon() as d:
            r = self.wsjob(d, "submit", "--detach", "frames", json.dumps(frames(6)))
            self.assertEqual(r.returncode, 0, r.stderr)
            handle = r.stdout.decode().strip()
            self.assertRegex(handle, HANDLE)
            r = self.wsjob(d, "attach", handle)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count(b"<svg "), 6)
            r = self.wsjob(d, "attach", "--from-seq", "4", handle)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count(b"<svg "), 2)
            r = self.wsjob(d, "submit", "--detach", "sha256", '{"data":"abc","rounds":1}')
            r = self.wsjob(d, "attach", r.stdout.decode().strip())
            self.assertEqual(r.stdout.strip(),
                             b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
            r = self.wsjob(d, "attach", MADE_UP)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"not_found", r.stderr)
            r = self.wsjob(d, "attach")
            self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
