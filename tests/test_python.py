"""Python functions and executables as job types (--python, --exec), on the
real daemon with Debian's interpreter."""
import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from harness import ROOT, SLOW, WSJOBD, Daemon, collect, jobs_conn, run, submit_msg


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

EXAMPLES = os.path.join(ROOT, "src", "handlers", "examples")
PYJOBS = os.path.join(ROOT, "tests", "pyjobs")
SCALE = 3 if SLOW else 1


def py_args(*types):
    args = ["--python-path", EXAMPLES, "--python-path", PYJOBS]
    for t in types:
        args += ["--python", t]
    return args


def sha_rounds(data, rounds):
    h = hashlib.sha256(data.encode()).hexdigest()
    for _ in range(rounds - 1):
        h = hashlib.sha256(h.encode()).hexdigest()
    return h


async def one(d, type, input, **extra):
    ws = await jobs_conn(d)
    await ws.send(submit_msg("j", type, input, **extra))
    got, finals = await collect(ws, ["j"])
    await ws.close()
    return got["j"], finals["j"]


async def cancel_after(ws, id, type, input, delay, **extra):
    """Submits, cancels after delay; returns (final event, seconds from cancel to it)."""
    await ws.send(submit_msg(id, type, input, **extra))
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    await ws.send(json.dumps({"op": "cancel", "id": id}))
    _, finals = await collect(ws, [id])
    return finals[id], time.monotonic() - t0


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Outputs(unittest.TestCase):
    def test_examples_give_the_right_answers(self):
        args = py_args("modsum_py=cpu_loop:modsum", "chain=hash_chain:chain",
                       "svg=svg_frames:frames", "nap=blocking:nap,io", "who=testjobs:describe")
        with Daemon(*args) as d:
            async def go():
                ws = await jobs_conn(d)
                cases = {
                    "a": ("modsum_py", {"n": 7, "k": 20000}, str(sum((i * 7) % 97 for i in range(20000)))),
                    "b": ("chain", {"data": "xyz", "rounds": 1000}, sha_rounds("xyz", 1000)),
                    "c": ("nap", "0.05", "slept 0.05"),
                }
                for i, (t, inp, _) in cases.items():
                    await ws.send(submit_msg(i, t, inp))
                await ws.send(submit_msg("s", "svg", {"count": 5, "size": 64}))
                await ws.send(submit_msg("w", "who", "", timeout_ms=5000))
                got, finals = await collect(ws, list(cases) + ["s", "w"])
                for i, (_, _, want) in cases.items():
                    self.assertEqual(finals[i]["event"], "done", finals[i])
                    self.assertEqual(finals[i]["output"], want)
                chunks = [e["output"] for e in got["s"] if e["event"] == "chunk"]
                self.assertEqual(len(chunks), 5)
                self.assertTrue(all(c.startswith("<svg") and c.endswith("</svg>") for c in chunks))
                self.assertEqual(finals["s"]["event"], "done")
                who = json.loads(finals["w"]["output"])
                self.assertEqual(who["type"], "who")
                self.assertEqual(who["id"], "w")          # the client's id
                self.assertTrue(0 < who["left"] <= 5.0, who)
                self.assertFalse(who["cancelled"])
                self.assertTrue(who["doc"])
                self.assertFalse(who["base"], "Cancelled must not be an Exception")
                await ws.close()
            run(go())

    def test_a_generator_of_1000_chunks_arrives_in_order(self):
        with Daemon(*py_args("count=testjobs:count", "emit=testjobs:emitter")) as d:
            got, final = run(one(d, "count", "1000"))
            chunks = [e for e in got if e["event"] == "chunk"]
            self.assertEqual([c["output"] for c in chunks], ["c%d" % i for i in range(1000)])
            self.assertEqual([c["seq"] for c in chunks], list(range(1000)))
            self.assertEqual(final["event"], "done")
            got, final = run(one(d, "emit", "50"))
            self.assertEqual([e["output"] for e in got if e["event"] == "chunk"],
                             ["e%d" % i for i in range(50)])
            self.assertEqual(final["event"], "done")
            self.assertNotIn("output", final)

    def test_yield_waits_while_the_client_does_not_read(self):
        with Daemon(*py_args("flood=testjobs:flood"), "--stream-window", "256k") as d:
            mark = os.path.join(tempfile.mkdtemp(), "count")

            async def go():
                ws = await jobs_conn(d, max_queue=1)
                await ws.send(submit_msg("f", "flood", "%s 2000" % mark))
                await asyncio.sleep(1.5)
                with open(mark) as f:
                    produced = int(f.read())
                await ws.send(json.dumps({"op": "cancel", "id": "f"}))
                _, finals = await collect(ws, ["f"])
                await ws.close()
                return produced, finals["f"]
            produced, final = run(go())
            # 2000 chunks of 64 KiB take well under a second unchecked; the
            # window and the socket buffers hold a few MiB.
            self.assertLess(produced, 500)
            self.assertEqual(final["code"], "cancelled")

    def test_exceptions_arrive_with_type_and_message(self):
        args = py_args("boom=testjobs:boom", "bad=testjobs:bad", "wrong=testjobs:wrong_type",
                       "boomio=testjobs:boom,io")
        with Daemon(*args) as d:
            _, f = run(one(d, "boom", "xyz"))
            self.assertEqual((f["event"], f["code"]), ("error", "handler_error"))
            self.assertEqual(f["message"], "ValueError: nope: xyz")
            _, f = run(one(d, "boomio", "io"))
            self.assertEqual(f["message"], "ValueError: nope: io")
            _, f = run(one(d, "bad", "x"))
            self.assertEqual((f["code"], f["message"]), ("bad_request", "want a number"))
            _, f = run(one(d, "wrong", "x"))
            self.assertEqual(f["code"], "handler_error")
            self.assertTrue(f["message"].startswith("TypeError:"), f)
            d.stop()
            self.assertIn("Traceback (most recent call last)", d.logs())
            self.assertIn('raise ValueError("nope: "', d.logs())


class Cancel(unittest.TestCase):
    def test_cancel_of_a_busy_loop_and_the_next_job_runs(self):
        # A grace far beyond the bound asserted below: on a loaded machine the
        # grace kill must not win a race the exception should win alone.
        with Daemon(*py_args("spin=testjobs:spin", "swallow=testjobs:swallow",
                             "modsum_py=cpu_loop:modsum"), "--cancel-grace", "10000",
                    cpu_workers=1) as d:
            pids = d.worker_pids()

            async def go():
                ws = await jobs_conn(d)
                for t in ("spin", "swallow"):
                    f, took = await cancel_after(ws, t, t, "", 0.3)
                    self.assertEqual(f["code"], "cancelled")
                    self.assertLess(took, 2.0)
                    await ws.send(submit_msg(t + "-next", "modsum_py", {"n": 1, "k": 1000}))
                    t0 = time.monotonic()
                    _, finals = await collect(ws, [t + "-next"])
                    self.assertEqual(finals[t + "-next"]["output"], "46995")
                    self.assertLess(time.monotonic() - t0, 2.0)
                await ws.close()
            run(go())
            # Stopped by the exception, not by the grace kill.
            self.assertEqual(d.worker_pids(), pids)
            self.assertEqual(d.stats()["workers_restarted_total"], 0)

    def test_timeout_stops_a_busy_loop(self):
        with Daemon(*py_args("spin=testjobs:spin"), cpu_workers=1) as d:
            _, f = run(one(d, "spin", "", timeout_ms=300))
            self.assertEqual(f["code"], "timeout")
            _, f = run(one(d, "spin", "", timeout_ms=300))
            self.assertEqual(f["code"], "timeout")
            self.assertEqual(d.stats()["workers_restarted_total"], 0)

    def test_cancel_of_a_long_sleep_cpu_and_io(self):
        with Daemon(*py_args("nap=testjobs:nap", "napio=testjobs:nap,io", "count=testjobs:count"),
                    "--cancel-grace", "1000", cpu_workers=1, io_threads=2) as d:
            async def go():
                ws = await jobs_conn(d)
                for t in ("nap", "napio"):
                    f, took = await cancel_after(ws, t, t, "60", 0.3)
                    self.assertEqual(f["code"], "cancelled")
                    self.assertLess(took, 1.0)
                # Both sleepers let go of their threads at once.
                self.assertTrue(await asyncio.to_thread(wait_for, lambda: all(
                    w["state"] == "idle" for w in d.stats()["workers"]), 1.0))
                await ws.close()
            run(go())
            self.assertEqual(d.stats()["workers_restarted_total"], 0)

    def test_endless_generator_until_stop(self):
        with Daemon(*py_args("svg=svg_frames:frames")) as d:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("s", "svg", {"count": 0, "interval_ms": 10}))
                n = 0
                while n < 20:
                    ev = json.loads(await ws.recv())
                    n += ev["event"] == "chunk"
                await ws.send(json.dumps({"op": "cancel", "id": "s"}))
                _, finals = await collect(ws, ["s"])
                self.assertEqual(finals["s"]["code"], "cancelled")
                await ws.close()
            run(go())


class IoThreads(unittest.TestCase):
    def test_ten_blocking_sleeps_overlap(self):
        with Daemon(*py_args("nap=blocking:nap,io"), io_threads=16) as d:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("warm", "nap", "0"))
                await collect(ws, ["warm"])
                ids = ["n%d" % i for i in range(10)]
                t0 = time.monotonic()
                for i in ids:
                    await ws.send(submit_msg(i, "nap", "1"))
                _, finals = await collect(ws, ids)
                took = time.monotonic() - t0
                self.assertTrue(all(f["event"] == "done" for f in finals.values()), finals)
                self.assertLess(took, 1.5)
                await ws.close()
            run(go())


class Workers(unittest.TestCase):
    def test_a_worker_killed_during_a_python_job_is_retried(self):
        with Daemon(*py_args("slow=testjobs:slow_once"), "--crash-retries", "1", cpu_workers=1) as d:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("k", "slow", "1"))
                busy = await asyncio.to_thread(wait_for, lambda: any(
                    w["job_type"] == "slow" for w in d.stats()["workers"]), 5.0)
                self.assertTrue(busy)
                victim = d.worker_pids()[0]
                os.kill(victim, signal.SIGKILL)
                _, finals = await collect(ws, ["k"], timeout=20)
                self.assertEqual(finals["k"]["event"], "done", finals["k"])
                self.assertNotEqual(finals["k"]["output"], "ok %d" % victim)
                await ws.close()
                return victim
            run(go())
            self.assertEqual(d.stats()["workers_restarted_total"], 1)

    def test_python_workers_are_recycled(self):
        with Daemon(*py_args("who=testjobs:describe", "grow=testjobs:grow"),
                    "--worker-max-jobs", "3", cpu_workers=1) as d:
            async def go():
                pids = []
                for _ in range(7):
                    _, f = await one(d, "who", "")
                    pids.append(json.loads(f["output"])["pid"])
                return pids
            pids = run(go())
            self.assertEqual(len(set(pids)), 3, pids)   # 3 + 3 + 1
        with Daemon(*py_args("grow=testjobs:grow"), "--worker-max-rss", "64M", cpu_workers=1) as d:
            _, f1 = run(one(d, "grow", str(100 << 20)))
            _, f2 = run(one(d, "grow", "1"))
            self.assertEqual(f1["event"], "done", f1)
            self.assertNotEqual(f1["output"], f2["output"])


class Startup(unittest.TestCase):
    def run_daemon(self, *args):
        return subprocess.run([WSJOBD, "--listen", "127.0.0.1:0", "--cpu-workers", "1", *args],
                              capture_output=True, encoding="utf-8", timeout=30)

    def test_an_import_error_exits_2_naming_the_module(self):
        r = self.run_daemon(*py_args("x=nosuchmodule:f"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("nosuchmodule", r.stderr)
        self.assertIn("ModuleNotFoundError", r.stderr)
        r = self.run_daemon(*py_args("x=broken:f"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot import module 'broken'", r.stderr)
        self.assertIn("Traceback (most recent call last)", r.stderr)
        self.assertIn("RuntimeError: broken on purpose", r.stderr)
        self.assertNotIn("ready", r.stderr)
        r = self.run_daemon(*py_args("x=testjobs:nosuchfunction"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no function 'nosuchfunction'", r.stderr)
        r = self.run_daemon("--check-config", *py_args("x=nosuchmodule:f"))
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bad_specs_are_refused(self):
        for spec in ("nocolon=mod", "=m:f", "x=m:f,cpu", "Bad=m:f"):
            r = self.run_daemon("--check-config", "--python", spec)
            self.assertEqual(r.returncode, 2, spec)
            self.assertIn("--python", r.stderr)
        r = self.run_daemon("--check-config", "--exec", "x=/nonexistent/prog")
        self.assertEqual(r.returncode, 2)


class Exec(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def script(self, name, body):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        return path

    def test_output_errors_and_environment(self):
        upper = self.script("upper", 'tr a-z A-Z; echo "$WSJOB_TYPE $WSJOB_DEADLINE_MS" >&2\n')
        fail = self.script("fail", 'echo first >&2; echo "the last line" >&2; exit 3\n')
        env = self.script("env", 'echo "$WSJOB_ID $WSJOB_TYPE $WSJOB_DEADLINE_MS"\n')
        with Daemon("--exec", "up=" + upper, "--exec", "fail=" + fail, "--exec", "env=" + env + ",io") as d:
            _, f = run(one(d, "up", "hello"))
            self.assertEqual((f["event"], f["output"]), ("done", "HELLO"))
            _, f = run(one(d, "fail", ""))
            self.assertEqual((f["code"], f["message"]), ("handler_error", "the last line"))
            _, f = run(one(d, "env", "", timeout_ms=4000))
            jid, typ, left = f["output"].split()
            self.assertEqual(jid, "j")                    # the client's id
            self.assertEqual(typ, "env")
            self.assertTrue(3000 < int(left) <= 4000, left)

    def test_lines_stream_as_written(self):
        ticker = os.path.join(EXAMPLES, "ticker.sh")
        with Daemon("--exec", "ticks=" + ticker + ",lines") as d:
            async def go():
                ws = await jobs_conn(d)
                await ws.send(submit_msg("t", "ticks", "5"))
                stamps, outs = [], []
                while True:
                    ev = json.loads(await ws.recv())
                    if ev["event"] != "chunk":
                        break
                    stamps.append(time.monotonic())
                    outs.append(ev["output"])
                self.assertEqual(ev["event"], "done", ev)
                self.assertEqual(outs, ["tick %d of 5 (ticks)" % i for i in range(1, 6)])
                # written 0.1 s apart, they arrive apart, not all at the end
                self.assertGreater(stamps[-1] - stamps[0], 0.25)
                await ws.close()
            run(go())

    def test_a_child_that_ignores_sigterm_is_killed(self):
        pidfile = os.path.join(self.dir, "pid")
        stubborn = self.script("stubborn", "trap '' TERM\necho $$ > %s\nwhile :; do sleep 0.05; done\n" % pidfile)
        with Daemon("--exec", "stub=" + stubborn, "--exec", "stubio=" + stubborn + ",io",
                    "--cancel-grace", "500", cpu_workers=1, io_threads=2) as d:
            for t in ("stub", "stubio"):
                async def go():
                    ws = await jobs_conn(d)
                    await ws.send(submit_msg("s", t, ""))
                    await asyncio.to_thread(wait_for, lambda: os.path.exists(pidfile), 5.0)
                    await ws.send(json.dumps({"op": "cancel", "id": "s"}))
                    _, finals = await collect(ws, ["s"])
                    self.assertEqual(finals["s"]["code"], "cancelled")
                    await ws.close()
                run(go())
                with open(pidfile) as f:
                    pid = int(f.read())
                os.unlink(pidfile)
                gone = wait_for(lambda: not alive(pid), 3.0)
                self.assertTrue(gone, "the child ignoring SIGTERM still runs")
                _, f = run(one(d, t, "", timeout_ms=200))
                self.assertEqual(f["code"], "timeout")
            self.assertEqual(d.stats()["workers_restarted_total"], 0)
            # no zombie children left under the workers
            time.sleep(1.0)
            for wpid in d.worker_pids("cpu") + d.worker_pids("io"):
                kids = subprocess.run(["ps", "--ppid", str(wpid), "-o", "stat="],
                                      capture_output=True, encoding="utf-8").stdout.split()
                self.assertEqual(kids, [], "children of worker %d" % wpid)


    # Hostile executables and functions: input the child never reads,
    # output that never ends, an output over --max-message.  The worker
    # holds at most --max-message of output; each job gets one answer.

    def test_a_child_that_never_reads_its_input_does_not_hang_the_worker(self):
        deaf = self.script("deaf", "sleep 0.2; echo ok\n")
        with Daemon("--exec", "deaf=" + deaf, cpu_workers=1) as d:
            t0 = time.monotonic()
            _, f = run(one(d, "deaf", "y" * (900 << 10), timeout_ms=10000))
            self.assertEqual((f["event"], f["output"]), ("done", "ok\n"), f)
            self.assertLess(time.monotonic() - t0, 5)
            _, f = run(one(d, "deaf", ""))              # the worker goes on
            self.assertEqual(f["event"], "done")

    def test_endless_output_is_too_large_and_the_child_is_stopped(self):
        endless = self.script("endless", "exec yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n")
        with Daemon("--exec", "endless=" + endless, "--max-message", "1M", cpu_workers=1) as d:
            pid = d.worker_pids()[0]
            before = rss_kib(pid)
            _, f = run(one(d, "endless", "", timeout_ms=20000))
            grown = (rss_kib(pid) - before) / 1024
            print("endless output: %s, worker RSS growth %.1f MiB" % (f.get("code"), grown),
                  file=sys.stderr)
            self.assertEqual((f["event"], f["code"]), ("error", "too_large"), f)
            self.assertLess(grown, 16 + (64 if SLOW else 0))   # 1 MiB of output, then stop
            time.sleep(0.5)
            left = subprocess.run(["pgrep", "-f", "yes xxxxxxxx"], capture_output=True)
            self.assertEqual(left.stdout, b"", "the endless child was left running")
            _, f = run(one(d, "endless", "", timeout_ms=20000))
            self.assertEqual(f["code"], "too_large")         # the worker goes on

    def test_a_python_output_over_max_message_is_too_large(self):
        with Daemon(*py_args("huge=testjobs:huge"), "--max-message", "1M", cpu_workers=1) as d:
            _, f = run(one(d, "huge", str(3 << 20)))
            self.assertEqual((f["event"], f["code"]), ("error", "too_large"), f)
            _, f = run(one(d, "huge", "10"))
            self.assertEqual((f["event"], f["output"]), ("done", "x" * 10))


if __name__ == "__main__":
    unittest.main()
