"""The front process: HTTP answers, the upgrade, timeouts, limits, pings."""
import asyncio
import json
import socket
import time
import unittest

import websockets

from harness import Daemon, collect, front_rss, jobs_conn, run, submit_msg


def raw_request(port, data, timeout=5, read_all=True):
    """Sends bytes, returns everything the server sends until it closes (or
    the first chunk when read_all is False)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_all:
                break
        return out
    finally:
        s.close()


async def raw_echo(port):
    """A plain TCP connection that has asked to upgrade on /run/echo; the
    101 response is left for the caller to read (or not)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /run/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    return r, w


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


class HttpAnswers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon().start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def req(self, data):
        return raw_request(self.d.port, data)

    def test_healthz(self):
        status, body = self.d.http("/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_unknown_path_is_404(self):
        self.assertEqual(status_of(self.req(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")), 404)

    def test_other_method_is_405(self):
        r = self.req(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(status_of(r), 405)
        self.assertIn(b"Allow: GET", r)

    def test_malformed_is_400_and_closed(self):
        r = self.req(b"GET\x01 / HTTP/1.1\r\n\r\n")
        self.assertEqual(status_of(r), 400)

    def test_headers_over_8k_are_431(self):
        r = self.req(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        self.assertEqual(status_of(r), 431)

    def test_job_route_without_upgrade_is_refused(self):
        r = self.req(b"GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertIn(status_of(r), (400, 426))

    def test_wrong_websocket_version_is_426(self):
        r = self.req(b"GET /jobs HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        self.assertEqual(status_of(r), 426)
        self.assertIn(b"Sec-WebSocket-Version: 13", r)

    def test_upgrade_accept_key_per_rfc6455(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        s.sendall(b"GET /run/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        s.close()
        self.assertEqual(status_of(head), 101)
        self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)

    def test_keep_alive_serves_several_requests(self):
        r = self.req(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        self.assertEqual(r.count(b"HTTP/1.1 200"), 2)

    def test_unmasked_client_frame_fails_with_1002(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=5)
        s.sendall(b"GET /run/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        s.sendall(b"\x81\x02hi")   # text, unmasked
        frame = s.recv(64)
        s.close()
        self.assertEqual(frame[0], 0x88)
        self.assertEqual(int.from_bytes(frame[2:4], "big"), 1002)

    def test_invalid_utf8_in_first_fragment_fails_at_once_with_1007(self):
        async def go():
            ws = await websockets.connect(self.d.url + "/run/echo", ping_interval=None)
            # A first fragment (FIN=0) whose bytes are already invalid.
            await ws.write_frame(False, websockets.frames.Opcode.TEXT, b"ok\xff")
            with self.assertRaises(websockets.ConnectionClosed) as cm:
                await asyncio.wait_for(ws.recv(), 5)
            self.assertEqual(cm.exception.rcvd.code, 1007)
        run(go())

    def test_ping_is_answered_with_the_same_payload(self):
        async def go():
            ws = await websockets.connect(self.d.url + "/run/echo", ping_interval=None)
            t0 = time.monotonic()
            await asyncio.wait_for(await ws.ping(b"payload-123"), 5)
            self.assertLess(time.monotonic() - t0, 1)
            await ws.close()
        run(go())

    def test_close_code_is_echoed(self):
        async def go():
            ws = await websockets.connect(self.d.url + "/run/echo", ping_interval=None)
            await ws.close(4000, "bye")
            self.assertEqual(ws.close_rcvd.code, 4000)
        run(go())


class Limits(unittest.TestCase):
    def test_connections_beyond_max_get_503(self):
        with Daemon("--max-connections", "3") as d:
            held = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(3)]
            time.sleep(0.2)
            r = raw_request(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(status_of(r), 503)
            for s in held:
                s.close()
            time.sleep(0.2)
            self.assertEqual(d.http("/healthz")[0], 200)
            self.assertGreaterEqual(d.stats()["connections"]["rejected_total"], 1)

    def test_silent_and_slow_peers_are_closed_at_the_handshake_timeout(self):
        with Daemon("--handshake-timeout", "500") as d:
            silent = socket.create_connection(("127.0.0.1", d.port))
            slow = socket.create_connection(("127.0.0.1", d.port))
            slow.sendall(b"GET /jobs HTTP/1.1\r\n")
            t0 = time.monotonic()
            silent.settimeout(5)
            self.assertEqual(silent.recv(100), b"")
            self.assertLess(time.monotonic() - t0, 2)
            slow.settimeout(5)
            self.assertEqual(slow.recv(100), b"")
            # a well-behaved client is served all along
            self.assertEqual(d.http("/healthz")[0], 200)

    def test_idle_peer_is_pinged_and_dropped_when_it_does_not_answer(self):
        with Daemon("--ping-interval", "200") as d:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"GET /run/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            data = b""
            t0 = time.monotonic()
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            took = time.monotonic() - t0
            s.close()
            self.assertIn(b"\x89\x06wsjobd", data)   # the server's pings
            self.assertLess(took, 3)

    def test_answering_client_is_kept(self):
        with Daemon("--ping-interval", "200") as d:
            async def go():
                ws = await websockets.connect(d.url + "/run/echo", ping_interval=None)
                await asyncio.sleep(1.5)   # websockets answers pings by itself
                await ws.send("still here")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "still here")
                await ws.close()
            run(go())

    def test_stats_allow_refuses_others(self):
        with Daemon("--stats-allow", "10.0.0.0/8") as d:
            self.assertEqual(d.http("/stats")[0], 403)
            self.assertEqual(d.http("/metrics")[0], 403)
            self.assertEqual(d.http("/healthz")[0], 200)

    def test_auth_token_and_origin(self):
        with Daemon("--auth-token", "s3cret", "--allow-origin", "https://good.example") as d:
            async def go():
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    await websockets.connect(d.url + "/jobs")
                self.assertEqual(cm.exception.status_code, 401)
                ws = await websockets.connect(d.url + "/jobs?token=s3cret")
                await ws.close()
                ws = await websockets.connect(d.url + "/jobs",
                                              extra_headers={"Authorization": "Bearer s3cret"})
                await ws.close()
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    await websockets.connect(d.url + "/jobs?token=s3cret", origin="https://evil.example")
                self.assertEqual(cm.exception.status_code, 403)
                ws = await websockets.connect(d.url + "/jobs?token=s3cret", origin="https://good.example")
                await ws.close()
                # the raw routes are guarded the same way
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    await websockets.connect(d.url + "/run/echo")
                self.assertEqual(cm.exception.status_code, 401)
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    await websockets.connect(d.url + "/run/echo?token=s3cret", origin="https://evil.example")
                self.assertEqual(cm.exception.status_code, 403)
                ws = await websockets.connect(d.url + "/run/echo?token=s3cret")
                await ws.send("through")
                self.assertEqual(await ws.recv(), "through")
                await ws.close()
                # a wrong token of the right length is refused too
                with self.assertRaises(websockets.InvalidStatusCode) as cm:
                    await websockets.connect(d.url + "/jobs?token=s3creT")
                self.assertEqual(cm.exception.status_code, 401)
            run(go())

    def test_client_that_never_reads_is_bounded_and_others_are_served(self):
        with Daemon() as d:
            async def go():
                # Flood echo requests on a connection whose reader stalls.
                r, w = await raw_echo(d.port)
                payload = b"x" * 60000
                frame = bytes([0x82, 0xFE]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0" + payload
                rss0 = front_rss(d)
                sent = 0
                t_end = time.monotonic() + 3
                while time.monotonic() < t_end:
                    w.write(frame)
                    try:
                        await asyncio.wait_for(w.drain(), 0.2)
                    except asyncio.TimeoutError:
                        break
                    sent += len(frame)
                self.assertGreater(sent, 1 << 20)
                grow = front_rss(d) - rss0
                self.assertLess(grow, 64 << 20)
                ws = await jobs_conn(d)
                t0 = time.monotonic()
                await ws.send(submit_msg("e", "echo", "ok"))
                await collect(ws, ["e"])
                self.assertLess(time.monotonic() - t0, 0.5)
                await ws.close()
                w.close()
            run(go())

    def test_client_that_pauses_reading_gets_every_byte_in_order(self):
        # Output past the 4 MiB mark stops the front reading this client; once
        # it reads again every byte must arrive, in order, and the connection
        # must go on answering small messages at once.
        with Daemon() as d:
            async def go():
                r, w = await raw_echo(d.port)
                head = await r.readuntil(b"\r\n\r\n")
                self.assertIn(b" 101 ", head)

                def frame(payload):
                    n = len(payload)
                    size = bytes([0xFE]) + n.to_bytes(2, "big") if n < 65536 else \
                        bytes([0xFF]) + n.to_bytes(8, "big")
                    if n < 126:
                        size = bytes([0x80 | n])
                    return bytes([0x82]) + size + b"\0\0\0\0" + payload

                async def read_message():
                    b0, b1 = await r.readexactly(2)
                    self.assertEqual(b0, 0x82)
                    n = b1 & 0x7F
                    if n == 126:
                        n = int.from_bytes(await r.readexactly(2), "big")
                    elif n == 127:
                        n = int.from_bytes(await r.readexactly(8), "big")
                    return await r.readexactly(n)

                big = [bytes([i]) * (200 << 10) for i in range(40)]   # 8 MiB: past the 4 MiB mark
                async def send_all():
                    for m in big:
                        w.write(frame(m))
                        await w.drain()
                sender = asyncio.ensure_future(send_all())
                await asyncio.sleep(1)   # not reading: the front's output piles up
                for m in big:
                    got = await asyncio.wait_for(read_message(), 10)
                    self.assertEqual((len(got), got[:1]), (len(m), m[:1]))
                    self.assertEqual(got, m)
                await asyncio.wait_for(sender, 10)
                small = [b"m%03d" % i for i in range(100)]
                for m in small:
                    w.write(frame(m))
                for m in small:
                    self.assertEqual(await asyncio.wait_for(read_message(), 5), m)
                w.close()
            run(go())


class Config(unittest.TestCase):
    def test_bad_option_exits_2_with_the_option_named(self):
        import subprocess
        from harness import WSJOBD
        p = subprocess.run([WSJOBD, "--cpu-workers", "lots"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--cpu-workers", p.stderr)

    def test_bad_config_line_names_file_and_line(self):
        import subprocess
        import tempfile
        from harness import WSJOBD
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("# comment\ncpu-workers = 2\nno-such-key = 1\n")
            f.flush()
            p = subprocess.run([WSJOBD, "-c", f.name], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2)
            self.assertIn(("%s:3:" % f.name).encode(), p.stderr)
            p = subprocess.run([WSJOBD, "-c", f.name, "--check-config"], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2)

    def test_check_config_accepts_a_good_file(self):
        import subprocess
        import tempfile
        from harness import WSJOBD
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("cpu-workers = 2\nlisten = 127.0.0.1:0\nlisten = [::1]:0\n")
            f.flush()
            p = subprocess.run([WSJOBD, "-c", f.name, "--check-config"], capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
