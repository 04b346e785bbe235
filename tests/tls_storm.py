"""A TLS handshake storm: client threads that open wss:// connections to
127.0.0.1 as fast as they can, each doing the full handshake and one
GET /healthz, for a bounded time and a bounded count.  test_tls imports it;
run on its own it measures a plain client's ping round trip (wsjob bench
--ping) on a daemon while the storm runs:

    python3 tests/tls_storm.py --tls-port 8443 --port 8080 [--threads 8] [--seconds 5]

Counts what happened to each connection, so a caller can check that every
one either worked or was refused cleanly (closed or reset before or during
the handshake), never hung or got a wrong answer."""
import argparse
import os
import socket
import ssl
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class Storm:
    def __init__(self, port, threads=8, seconds=4.0, max_conns=20000, timeout=10.0):
        self.port = port
        self.threads = threads
        self.seconds = seconds
        self.max_conns = max_conns
        self.timeout = timeout
        self.lock = threading.Lock()
        self.started = 0
        self.ok = 0
        self.refused = 0      # closed or reset by the server: a clean refusal
        self.bad = []         # anything else: a hang, a wrong answer
        self.elapsed = 0.0
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def _take(self, deadline):
        with self.lock:
            if self.started >= self.max_conns or time.time() >= deadline:
                return False
            self.started += 1
            return True

    def _one(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        try:
            s = self.ctx.wrap_socket(raw)
        except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
            raw.close()
            return "refused"
        with s:
            s.sendall(REQUEST)
            buf = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        return "ok" if buf.startswith(b"HTTP/1.1 200 ") else "bad: %r" % buf[:80]

    def _run(self, deadline):
        while self._take(deadline):
            try:
                what = self._one()
            except (socket.timeout, ssl.SSLError, OSError) as e:
                what = "bad: %s: %s" % (type(e).__name__, e)
            with self.lock:
                if what == "ok":
                    self.ok += 1
                elif what == "refused":
                    self.refused += 1
                else:
                    self.bad.append(what)

    def start(self):
        deadline = time.time() + self.seconds
        self.t0 = time.time()
        self.workers = [threading.Thread(target=self._run, args=(deadline,), daemon=True)
                        for _ in range(self.threads)]
        for t in self.workers:
            t.start()
        return self

    def join(self):
        for t in self.workers:
            t.join(self.seconds + 3 * self.timeout)
        self.elapsed = time.time() - self.t0
        return self

    def summary(self):
        return ("%d connections in %.1f s (%.0f/s): %d ok, %d refused, %d bad"
                % (self.started, self.elapsed, self.ok / max(self.elapsed, 1e-9),
                   self.ok, self.refused, len(self.bad)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tls-port", type=int, required=True)
    ap.add_argument("--port", type=int, required=True, help="the plain listener, for the pings")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rate", type=int, default=200, help="pings per second")
    ap.add_argument("--wsjob", default=os.path.join(HERE, "..", "build", "wsjob"))
    a = ap.parse_args()
    storm = Storm(a.tls_port, a.threads, a.seconds + 1).start()
    time.sleep(0.5)   # the storm is under way before the first ping
    ping = subprocess.run([a.wsjob, "--url", "ws://127.0.0.1:%d" % a.port, "bench", "--ping",
                           "--rate", str(a.rate), "-d", str(a.seconds)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storm.join()
    print(ping.stderr.strip())
    print("storm:", storm.summary())
    for b in storm.bad[:5]:
        print("  ", b)


if __name__ == "__main__":
    main()
