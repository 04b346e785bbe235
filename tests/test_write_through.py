"""Write-through output (src/front/conn_flush.c): a plain connection's
replies are written before the front's loop sleeps, and a write event is
armed only for what the socket does not take at once.

Counted with strace on the front's loop thread: arming and disarming a
write event are epoll_ctl calls (EPOLL_CTL_MOD, +/- EPOLLOUT), two per
reply when every reply went through libevent's write event.  Each reply is
one writev either way, which shows the count saw the traffic.  strace must
be able to attach (the tests run as root); a test that cannot count fails,
it does not skip."""
import asyncio
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import SLOW, WSJOB, Daemon, run
from test_hostile import open_ws, read_ws_message, zero_masked_frame

# A reply that armed a write event costs two epoll_ctl; a few more come from
# connections opening and closing.  A tenth of one per reply leaves room for
# those and none for arming per reply.
CTL_PER_REPLY_MAX = 0.1


class Strace:
    """strace -c on one thread (the front's loop: the process's first
    thread) for the duration of a with block; .calls[name] afterwards."""

    def __init__(self, pid, names):
        self.pid = pid
        self.names = names
        self.calls = {}

    def __enter__(self):
        if not shutil.which("strace"):
            raise AssertionError("strace is not installed: scripts/deps.sh installs it")
        self.out = tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt")
        self.p = subprocess.Popen(["strace", "-c", "-e", "trace=" + ",".join(self.names),
                                   "-p", str(self.pid), "-o", self.out.name],
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        # It says "Process N attached" once it traces.
        said = b""
        deadline = time.monotonic() + 10
        while b" attached" not in said:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.p.stderr], [], [], max(0, left))
            chunk = os.read(self.p.stderr.fileno(), 4096) if ready else b""
            if not chunk:
                self.p.kill()
                self.p.wait()
                self.p.stderr.close()
                raise AssertionError("strace could not attach to the front (pid %d; ptrace "
                                     "needs root or kernel.yama.ptrace_scope=0): %s"
                                     % (self.pid, said.decode(errors="replace")))
            said += chunk
        return self

    def __exit__(self, *exc):
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("strace did not detach")
        finally:
            self.p.stderr.close()
        # Rows: "% time  seconds  usecs/call  calls  [errors]  syscall".
        with open(self.out.name) as f:
            for line in f:
                m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
                if m and m.group(2) != "total":
                    self.calls[m.group(2)] = int(m.group(1))
        self.out.close()
        return False


def assert_written_through(test, calls, replies):
    test.assertGreaterEqual(calls.get("writev", 0), replies,
                            "strace saw fewer writes than replies: %r" % calls)
    test.assertLess(calls.get("epoll_ctl", 0), replies * CTL_PER_REPLY_MAX,
                    "a write event armed per reply: %r for %d replies" % (calls, replies))


class WriteThrough(unittest.TestCase):
    def test_sequential_replies_arm_no_write_event(self):
        # One job in flight on one connection: every reply finds the socket
        # empty and is written whole in the turn that produced it.
        n = 500 if SLOW else 2000
        with Daemon() as d:
            with Strace(d.proc.pid, ["epoll_ctl", "writev"]) as st:
                p = subprocess.run([WSJOB, "--url", d.url, "bench", "--type", "echo",
                                    "--input", "x", "-c", "1", "-p", "1", "-n", str(n), "-d", "120"],
                                   capture_output=True, timeout=180)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            self.assertEqual(json.loads(p.stdout.splitlines()[-1])["jobs"], n)
            assert_written_through(self, st.calls, n)

    def test_a_reply_bigger_than_the_socket_arrives_whole_then_writes_go_through_again(self):
        # 4 MiB to a client with a small receive buffer that waits before
        # reading: the socket takes part of it, the write event finishes it,
        # the small replies behind it follow in order.  Once all is written
        # the write event is off again: small replies go straight through.
        big = bytes(range(256)) * (16 << 10)   # 4 MiB
        small = [b"s%03d" % i for i in range(20)]
        n = 100 if SLOW else 400
        with Daemon("--max-message", "8M") as d:
            async def go():
                r, w = await open_ws(d.port, b"/run/echo", rcvbuf=64 << 10)
                w.write(zero_masked_frame(2, big))
                for m in small:
                    w.write(zero_masked_frame(2, m))
                await asyncio.wait_for(w.drain(), 30)
                await asyncio.sleep(0.5)   # not reading: the front's output waits
                got = await asyncio.wait_for(read_ws_message(r), 30)
                self.assertEqual(len(got), len(big))
                self.assertEqual(got, big)
                for m in small:
                    self.assertEqual(await asyncio.wait_for(read_ws_message(r), 10), m)
                with Strace(d.proc.pid, ["epoll_ctl", "writev"]) as st:
                    for i in range(n):
                        m = b"r%05d" % i
                        w.write(zero_masked_frame(2, m))
                        self.assertEqual(await asyncio.wait_for(read_ws_message(r), 10), m)
                w.close()
                return st.calls
            calls = run(go())
            assert_written_through(self, calls, n)

    def test_a_new_connection_arms_no_write_event(self):
        # libevent starts a bufferevent with its write event enabled: the
        # 101 answer would arm it.  Opening a connection costs one epoll_ctl
        # (its read event), with the upgrade and a first reply written
        # through.
        conns = 20 if SLOW else 50
        with Daemon() as d:
            async def go():
                opened = []
                with Strace(d.proc.pid, ["epoll_ctl", "writev"]) as st:
                    for i in range(conns):
                        r, w = await open_ws(d.port, b"/run/echo")
                        opened.append(w)
                        m = b"c%03d" % i
                        w.write(zero_masked_frame(2, m))
                        self.assertEqual(await asyncio.wait_for(read_ws_message(r), 10), m)
                for w in opened:
                    w.close()
                return st.calls
            calls = run(go())
            self.assertGreaterEqual(calls.get("writev", 0), 2 * conns, calls)
            self.assertLess(calls.get("epoll_ctl", 0), 2 * conns,
                            "a write event armed per connection: %r for %d" % (calls, conns))


if __name__ == "__main__":
    unittest.main()
