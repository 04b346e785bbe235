"""The wsjob command against the real daemon: submit, stats and bench.

Each test starts its own wsjobd on a loopback port the kernel picks (read
back from the "(port N)" log line) and stops it with SIGTERM afterwards.
WSJOBD_BIN and WSJOB_BIN name the binaries (default build/wsjobd and
build/wsjob under the repository root).
"""
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WSJOBD = os.environ.get("WSJOBD_BIN", os.path.join(ROOT, "build", "wsjobd"))
WSJOB = os.environ.get("WSJOB_BIN", os.path.join(ROOT, "build", "wsjob"))

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
LONG_MODSUM = '{"n":1,"iterations":100000000000}'
IO_THREADS = 4


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, *args):
        self.args = [WSJOBD, "--listen", "127.0.0.1:0", "--cpu-workers", "2",
                     "--io-threads", str(IO_THREADS), *args]
        self.log = b""
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The log pipe is drained all the time: a full pipe would block the
        # daemon's writes and with them its event loop.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        self.ports = self._wait_ready(10)
        self.url = "ws://127.0.0.1:%d" % self.ports["ws"]

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            self.log += line

    def _wait_ready(self, seconds):
        """The port of each listener, by scheme, once the daemon is ready."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = re.findall(rb"listening on (wss?)://\S+ \(port (\d+)\)", self.log)
            if found and b" ready: " in self.log:
                return {k.decode(): int(v) for k, v in found}
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("wsjobd did not start: " + self.log.decode(errors="replace"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        self.proc.stderr.close()
        return self.proc.returncode


class WsjobCase(unittest.TestCase):
    daemon_args = ()

    def setUp(self):
        self.daemon = Daemon(*self.daemon_args)

    def tearDown(self):
        rc = self.daemon.stop()
        self.assertEqual(rc, 0, "wsjobd exit status\n" + self.daemon.log.decode(errors="replace"))

    def wsjob(self, *args, stdin=b"", timeout=60):
        return subprocess.run([WSJOB, "--url", self.daemon.url, *args], input=stdin,
                              capture_output=True, timeout=timeout)

    def bench_line(self, r):
        lines = r.stdout.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        return json.loads(lines[0])


class Submit(WsjobCase):
    def test_sha256_prints_the_digest_alone(self):
        r = self.wsjob("submit", "sha256", '{"data":"abc","rounds":1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        # Not a terminal: the bytes of the output and nothing else.
        self.assertEqual(r.stdout, SHA256_ABC.encode())

    def test_modsum(self):
        r = self.wsjob("submit", "modsum", '{"n":7,"iterations":1000000}')
        self.assertEqual((r.returncode, r.stdout), (0, b"47999900"), r.stderr)

    def test_unknown_type_exits_1_with_the_code(self):
        r = self.wsjob("submit", "no-such-type", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"wsjob: unknown_type:", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_handler_rejection_is_bad_request(self):
        r = self.wsjob("submit", "sha256", '{"data":"abc","rounds":0}')
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"bad_request", r.stderr)

    def test_echo_of_standard_input(self):
        text = b"hello\nworld, \xc3\xa9t\xc3\xa9\n"
        r = self.wsjob("submit", "echo", "-", stdin=text)
        self.assertEqual((r.returncode, r.stdout), (0, text), r.stderr)

    def test_b64_carries_binary_both_ways(self):
        data = bytes(range(256)) * 4
        r = self.wsjob("submit", "--b64", "echo", "-", stdin=data)
        self.assertEqual((r.returncode, r.stdout), (0, data), r.stderr)

    def test_stdin_that_is_not_utf8_goes_as_b64_by_itself(self):
        data = b"\xff\xfe\x00binary\x80"
        r = self.wsjob("submit", "echo", "-", stdin=data)
        self.assertEqual((r.returncode, r.stdout), (0, data), r.stderr)

    def test_json_input_is_sent_as_a_value_and_text_as_a_string(self):
        # echo returns what the handler received: compact JSON for a value,
        # the characters themselves for a string.
        r = self.wsjob("submit", "echo", '{ "a" : [1, 2] }')
        self.assertEqual(r.stdout, b'{"a":[1,2]}', r.stderr)
        r = self.wsjob("submit", "echo", "true story")
        self.assertEqual(r.stdout, b"true story", r.stderr)

    def test_frames_streams_three_svg_documents(self):
        r = self.wsjob("submit", "frames", '{"count":3,"width":32,"height":32}')
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertEqual(out.count("<svg"), 3)
        self.assertEqual(out.count("</svg>"), 3)

    def test_timeout_option_sets_the_deadline(self):
        start = time.monotonic()
        r = self.wsjob("submit", "--timeout", "200", "sleep", '{"ms":5000}')
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"wsjob: timeout:", r.stderr)
        self.assertLess(time.monotonic() - start, 4)

    def test_ctrl_c_cancels_the_running_job(self):
        p = subprocess.Popen([WSJOB, "--url", self.daemon.url, "submit", "modsum", LONG_MODSUM],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.wait_for_busy_worker()
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn(b"cancelled", err)
        self.assertLess(time.monotonic() - start, 10)

    def wait_for_busy_worker(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = self.wsjob("stats", "--json")
            if r.returncode == 0 and any(w["state"] == "busy"
                                         for w in json.loads(r.stdout)["workers"]):
                return
            time.sleep(0.05)
        self.fail("the modsum job never started")


class Connection(WsjobCase):
    daemon_args = ("--auth-token", "s3cret")

    def test_token_is_sent_as_bearer(self):
        r = self.wsjob("submit", "echo", "hi")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"401", r.stderr)
        r = self.wsjob("--token", "s3cret", "submit", "echo", "hi")
        self.assertEqual((r.returncode, r.stdout), (0, b"hi"), r.stderr)

    def test_refused_connection_and_bad_urls(self):
        port = free_port()
        r = subprocess.run([WSJOB, "--url", "ws://127.0.0.1:%d" % port, "submit", "echo", "x"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"refused", r.stderr)
        r = subprocess.run([WSJOB, "--url", "http://127.0.0.1:1", "stats"],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"ws://", r.stderr)

    def test_usage_errors_exit_2(self):
        r = subprocess.run([WSJOB, "submit"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([WSJOB, "frobnicate"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([WSJOB, "--help"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"submit TYPE", r.stdout)


class Tls(WsjobCase):
    """wss:// through the same commands (certificates made for the run)."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="wsjob-certs-")
        subprocess.run(["sh", os.path.join(HERE, "certs", "make_certs.sh"), cls.certs],
                       check=True, timeout=60)
        # One listener per address: the TLS one gets a port found free.
        cls.daemon_args = ("--tls-listen", "127.0.0.1:%d" % free_port(),
                           "--tls-cert", os.path.join(cls.certs, "server.pem"),
                           "--tls-key", os.path.join(cls.certs, "server.key"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def wss(self, *args):
        url = "wss://127.0.0.1:%d" % self.daemon.ports["wss"]
        return subprocess.run([WSJOB, "--url", url, *args], capture_output=True, timeout=60)

    def test_submit_and_stats_over_wss(self):
        ca = os.path.join(self.certs, "ca.pem")
        r = self.wss("--cafile", ca, "submit", "sha256", '{"data":"abc","rounds":1}')
        self.assertEqual((r.returncode, r.stdout), (0, SHA256_ABC.encode()), r.stderr)
        r = self.wss("--cafile", ca, "stats", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The one TLS connection open is the stats request itself.
        self.assertEqual(json.loads(r.stdout)["connections"]["tls_open"], 1)

    def test_untrusted_certificate_is_refused_unless_insecure(self):
        r = self.wss("--cafile", os.path.join(self.certs, "self.pem"), "submit", "echo", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"verif", r.stderr)
        r = self.wss("--insecure", "submit", "echo", "x")
        self.assertEqual((r.returncode, r.stdout), (0, b"x"), r.stderr)

    def test_bench_over_wss(self):
        ca = os.path.join(self.certs, "ca.pem")
        r = self.wss("--cafile", ca, "bench", "-c", "3", "-p", "8", "-n", "3000", "--size", "3000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.bench_line(r)["jobs"], 3000)


class Stats(WsjobCase):
    def test_table_has_queues_and_a_row_per_worker(self):
        self.assertEqual(self.wsjob("submit", "echo", "warm").returncode, 0)
        r = self.wsjob("stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"(?m)^wsjobd \S+\s+pid \d+")
        for q in ("cpu", "io", "reply"):
            self.assertRegex(out, r"(?m)^%s\s+\d+\s+\d+\s+\d+\s+\d+$" % q)
        cpu_rows = re.findall(r"(?m)^\d+\s+-\s+cpu\s+(idle|busy|starting)", out)
        io_rows = re.findall(r"(?m)^\d+\s+\d+\s+io\s+(idle|busy|starting)", out)
        self.assertEqual((len(cpu_rows), len(io_rows)), (2, IO_THREADS), out)
        self.assertRegex(out, r"(?m)^echo\s+1\s+0\s")

    def test_json_is_the_raw_object(self):
        r = self.wsjob("stats", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        stats = json.loads(r.stdout)
        self.assertEqual(set(stats["queues"]), {"cpu", "io", "reply"})
        self.assertEqual(len(stats["workers"]), 2 + IO_THREADS)

    def test_watch_refreshes_until_ctrl_c(self):
        p = subprocess.Popen([WSJOB, "--url", self.daemon.url, "stats", "--watch", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, err)
        self.assertGreaterEqual(out.count(b"QUEUE"), 3)


class Bench(WsjobCase):
    def test_raw_echo_counts_every_reply(self):
        r = self.wsjob("bench", "--raw", "echo", "-c", "4", "-p", "4", "-n", "2000")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = self.bench_line(r)
        self.assertEqual((line["jobs"], line["errors"]), (2000, 0))
        self.assertEqual((line["bench"], line["mode"], line["conns"], line["depth"]),
                         ("e2e", "raw", 4, 4))
        self.assertLessEqual(line["p50_us"], line["p99_us"])

    def test_json_mode_checks_outputs(self):
        args = ["bench", "--type", "sha256", "--input", '{"data":"abc","rounds":1}',
                "-c", "2", "-p", "8", "-n", "200"]
        r = self.wsjob(*args, "--expect", SHA256_ABC)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.bench_line(r)["jobs"], 200)
        r = self.wsjob(*args, "--expect", "0" * 64)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.bench_line(r)["errors"], 200)
        self.assertIn(b"differs from --expect", r.stderr)

    def test_json_mode_decodes_escaped_and_base64_outputs(self):
        # The server escapes quotes, backslashes and control characters and
        # sends bytes that are not UTF-8 as output_b64: both must compare
        # equal to what was sent.
        text = 'say "hi"\\ \t\x01 \u00e9 \u2603 \U0001f600 </end>'
        r = self.wsjob("bench", "--type", "echo", "--input", text, "--expect", text, "-n", "20")
        self.assertEqual(r.returncode, 0, r.stderr)
        binary = os.fsdecode(b"\xff\xfe\x80")
        r = self.wsjob("bench", "--type", "echo", "--input", binary, "--expect", binary, "-n", "5")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.wsjob("bench", "--type", "echo", "--input", binary, "--expect", "x", "-n", "5")
        self.assertEqual(r.returncode, 1)

    def test_job_errors_fail_the_run_unless_allowed(self):
        args = ["bench", "--type", "sha256", "--input", '{"rounds":0}', "-n", "5"]
        r = self.wsjob(*args)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"bad_request", r.stderr)
        r = self.wsjob(*args, "--allow-errors")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.bench_line(r)["job_errors"], 5)

    def test_duration_mode_and_large_messages(self):
        r = self.wsjob("bench", "-c", "2", "-p", "2", "-d", "0.5", "--size", "100000")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = self.bench_line(r)
        self.assertGreater(line["jobs"], 0)
        self.assertEqual(line["size"], 100000)

    def test_ping_round_trips(self):
        r = self.wsjob("bench", "--ping", "-n", "20", "--rate", "200")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = self.bench_line(r)
        self.assertEqual((line["bench"], line["pings"], line["errors"]), ("ping", 20, 0))

    def test_idle_connections_measure_the_front(self):
        r = self.wsjob("bench", "--idle", "50", "--pid", str(self.daemon.proc.pid))
        self.assertEqual(r.returncode, 0, r.stderr)
        line = self.bench_line(r)
        self.assertEqual((line["bench"], line["conns"]), ("idle", 50))
        self.assertGreater(line["rss_after_kb"], 0)


if __name__ == "__main__":
    unittest.main()
