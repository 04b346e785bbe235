#!/usr/bin/python3
"""Autobahn|Testsuite fuzzing-client cases 1.* to 7.*, 9.* and 10.*, for a
WebSocket echo server (wsjobd's /run/echo), in Python 3 with the standard
library only.

Each case opens its own connection, sends exactly the frames the suite's case
sends (same payloads, chop sizes, waits and timeouts), records what comes back
the way the suite's client does, and is judged by the suite's rules:

  behavior       the events received (messages, pongs, timeouts) compared with
                 the case's expected lists: OK, NON-STRICT or FAILED; some
                 cases are INFORMATIONAL whatever happens.  This is the case
                 result, and OK / NON-STRICT / INFORMATIONAL pass.
  behaviorClose  how the connection ended: OK, WRONG CODE, UNCLEAN,
                 FAILED BY CLIENT or FAILED.  Reported; in family 7 a wrong
                 close code fails the case, as in the suite.

The client behaves as the suite's does: it masks every frame with a fresh key,
answers pings, fails the connection with a close frame (not a TCP drop) when
a case times out, gives the server 1 s to answer a close and 1 s to drop the
TCP connection after the closing handshake.

    autobahn_cases.py --url ws://127.0.0.1:PORT/run/echo [--cases 1.*,2.*]

--cases takes the suite's patterns ('*' matches anything).  Without it every
case except the 9.* performance family (messages up to 16 MiB) runs; select
those with --cases '9.*' or --cases all.  Prints one line per case and a
summary; exits 1 if any case FAILED.
"""

import argparse
import base64
import hashlib
import heapq
import os
import re
import select
import socket
import struct
import sys
import time
import urllib.parse

OK, NON_STRICT, INFORMATIONAL, FAILED = "OK", "NON-STRICT", "INFORMATIONAL", "FAILED"
WRONG_CODE, UNCLEAN, FAILED_BY_CLIENT = "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT"
PASSING = (OK, NON_STRICT, INFORMATIONAL)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007

CONNECTING, OPEN, CLOSING, CLOSED = range(4)

# The suite client's defaults.
CLOSE_HANDSHAKE_TIMEOUT = 1.0   # our close unanswered: drop
SERVER_DROP_TIMEOUT = 1.0       # closing handshake done, server keeps TCP: drop
QUEUED_WRITE_DELAY = 0.00001    # pause after a chop or a sync frame
HANDSHAKE_TIMEOUT = 10.0

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def mask_bytes(key, data):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def repeat_to(payload, length):
    if length is None or length == len(payload):
        return payload
    return (payload * (length // len(payload) + 1))[:length]


def frame_header(opcode, length, fin=True, rsv=0, key=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    if length < 126:
        hdr = struct.pack("!BB", b0, 0x80 | length)
    elif length < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, length)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, length)
    return hdr + key


def close_code_valid(code):
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class Timer:
    def __init__(self, fn):
        self.fn = fn
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class ProtocolError(Exception):
    pass


class Client:
    """One connection of the fuzzing client; the attribute names follow the
    suite's report (closedByMe, wasClean, ...)."""

    def __init__(self, host, port, resource, case):
        self.host, self.port, self.resource = host, port, resource
        self.case = case
        self.state = CONNECTING
        self.sock = None
        self.timers = []
        self.seq = 0
        self.queue = []            # [data, pause_after, sent] items to write, in order
        self.next_write = 0.0
        self.rbuf = bytearray()
        self.msg_opcode = None
        self.msg = bytearray()
        self.ignore_input = False
        self.close_received = False
        self.close_hs_timer = None
        self.drop_timer = None
        self.frame_key = None      # begin_message_frame / send_message_frame_data
        self.frame_sent = 0
        self.tx_frames = {}
        self.connection_was_open = False
        self.closed_by_me = False
        self.failed_by_me = False
        self.dropped_by_me = False
        self.was_clean = False
        self.remote_close_code = None
        self.remote_close_reason = None
        self.not_clean_reason = None
        self.violation = None

    # ---- timers, as the suite's continueLater / killAfter / closeAfter ----

    def call_later(self, delay, fn):
        t = Timer(fn)
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, t))
        return t

    def continue_later(self, delay, fn):
        self.call_later(delay, lambda: fn() if self.state != CLOSED else None)

    def kill_after(self, delay):
        self.call_later(delay, lambda: self.fail_connection() if self.state != CLOSED else None)

    def close_after(self, delay):
        self.call_later(delay, lambda: self.send_close() if self.state != CLOSED else None)

    # ---- sending ----

    def _enqueue(self, data, sync=False, chopsize=None):
        """Chops and sync frames are written one send() each, with a pause
        after, as the suite does; anything else is coalesced."""
        if chopsize:
            for i in range(0, len(data), chopsize):
                self.queue.append([data[i:i + chopsize], True, 0])
        elif sync:
            self.queue.append([data, True, 0])
        elif self.queue and not self.queue[-1][1] and isinstance(self.queue[-1][0], bytearray):
            self.queue[-1][0] += data
        else:
            self.queue.append([bytearray(data), False, 0])

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, payload_len=None,
                   chopsize=None, sync=False):
        if self.state == CLOSED:
            return
        payload = repeat_to(payload, payload_len)
        key = os.urandom(4)
        data = frame_header(opcode, len(payload), fin, rsv, key) + mask_bytes(key, payload)
        self.tx_frames[opcode] = self.tx_frames.get(opcode, 0) + 1
        self._enqueue(data, sync, chopsize)

    def send_message(self, payload, binary=False, fragment_size=None):
        opcode = 2 if binary else 1
        if not fragment_size or len(payload) <= fragment_size:
            self.send_frame(opcode, payload)
            return
        for i in range(0, len(payload), fragment_size):
            last = i + fragment_size >= len(payload)
            self.send_frame(opcode if i == 0 else 0, payload[i:i + fragment_size], fin=last)

    def begin_message_frame(self, opcode, length):
        """One frame whose payload is then sent in pieces (cases 6.4.3/4)."""
        self.frame_key = os.urandom(4)
        self.frame_sent = 0
        self.tx_frames[opcode] = self.tx_frames.get(opcode, 0) + 1
        self._enqueue(frame_header(opcode, length, True, 0, self.frame_key), sync=True)

    def send_message_frame_data(self, data):
        rot = self.frame_sent % 4
        key = self.frame_key[rot:] + self.frame_key[:rot]
        self.frame_sent += len(data)
        self._enqueue(mask_bytes(key, data), sync=True)

    def send_close_frame(self, code=None, reason=None, is_reply=False):
        if self.state != OPEN:
            return
        payload = b""
        if code is not None:
            payload += struct.pack("!H", code)
        if reason:
            payload += reason
        self.send_frame(8, payload)
        self.state = CLOSING
        self.closed_by_me = not is_reply
        if self.closed_by_me:
            self.close_hs_timer = self.call_later(CLOSE_HANDSHAKE_TIMEOUT, self._close_hs_timeout)

    def send_close(self, code=None, reason=None):
        self.send_close_frame(code, reason.encode() if isinstance(reason, str) else reason)

    def fail_connection(self, code=CLOSE_GOING_AWAY, reason=b"Going Away"):
        """The suite runs with failByDrop = False: fail with a close frame,
        and drop only if already closing."""
        if self.state == CLOSED:
            return
        self.failed_by_me = True
        if self.state == OPEN:
            self.send_close_frame(code, reason)
        else:
            self.drop("failed while closing")

    def drop(self, why):
        if self.state == CLOSED:
            return
        self.dropped_by_me = True
        if not self.not_clean_reason:
            self.not_clean_reason = why
        self._connection_lost()

    def _close_hs_timeout(self):
        if self.state != CLOSED:
            self.was_clean = False
            self.drop("closing handshake timeout")

    def _server_drop_timeout(self):
        if self.state != CLOSED:
            self.was_clean = False
            self.drop("server did not drop TCP after the closing handshake")

    # ---- receiving ----

    def _on_bytes(self, data):
        self.rbuf += data
        pos = 0
        try:
            while not self.ignore_input and self.state != CLOSED:
                frame = self._parse_frame(pos)
                if frame is None:
                    break
                pos, fin, rsv, opcode, payload = frame
                self._on_frame(fin, rsv, opcode, payload)
        except ProtocolError as e:
            self.violation = str(e)
            self.ignore_input = True
            self.fail_connection(CLOSE_INVALID_PAYLOAD if "UTF-8" in str(e) else CLOSE_PROTOCOL_ERROR,
                                 str(e).encode()[:120])
        del self.rbuf[:pos]
        if self.ignore_input:
            self.rbuf.clear()

    def _parse_frame(self, pos):
        buf = self.rbuf
        if len(buf) - pos < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        n = b1 & 0x7F
        off = pos + 2
        if n == 126:
            if len(buf) - off < 2:
                return None
            n = struct.unpack_from("!H", buf, off)[0]
            off += 2
        elif n == 127:
            if len(buf) - off < 8:
                return None
            n = struct.unpack_from("!Q", buf, off)[0]
            off += 8
        if b1 & 0x80:
            raise ProtocolError("masked frame from server")
        if len(buf) - off < n:
            return None
        return off + n, bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, bytes(buf[off:off + n])

    def _on_frame(self, fin, rsv, opcode, payload):
        if rsv:
            raise ProtocolError("RSV bits set by server")
        if opcode >= 8:
            if opcode > 10:
                raise ProtocolError("reserved control opcode %d" % opcode)
            if not fin or len(payload) > 125:
                raise ProtocolError("bad control frame")
        elif opcode > 2:
            raise ProtocolError("reserved data opcode %d" % opcode)
        elif opcode == 0 and self.msg_opcode is None:
            raise ProtocolError("continuation without a message")
        elif opcode != 0 and self.msg_opcode is not None:
            raise ProtocolError("new message inside a fragmented one")
        if self.close_received:
            return
        if opcode == 8:
            self._on_close_frame(payload)
        elif opcode == 9:
            if self.state == OPEN:
                self.send_frame(10, payload)
        elif opcode == 10:
            self.case.on_pong(payload)
        else:
            if opcode:
                self.msg_opcode = opcode
                self.msg = bytearray()
            self.msg += payload
            if fin:
                data, binary = bytes(self.msg), self.msg_opcode == 2
                self.msg_opcode, self.msg = None, bytearray()
                if not binary:
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("invalid UTF-8 in text message from server")
                self.case.on_message(data, binary)

    def _on_close_frame(self, payload):
        code, reason = None, b""
        if len(payload) == 1:
            raise ProtocolError("close frame with 1-byte payload")
        if len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            if not close_code_valid(code):
                raise ProtocolError("invalid close code %d" % code)
            reason = payload[2:]
            try:
                reason.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in close reason")
        self.remote_close_code, self.remote_close_reason = code, reason
        self.close_received = True
        if self.state == CLOSING:
            if self.close_hs_timer:
                self.close_hs_timer.cancel()
            self.was_clean = True
        elif self.state == OPEN:
            self.was_clean = True
            self.send_close_frame(CLOSE_NORMAL, is_reply=True)
        self.drop_timer = self.call_later(SERVER_DROP_TIMEOUT, self._server_drop_timeout)

    def _connection_lost(self):
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        if not self.was_clean and not self.not_clean_reason:
            self.not_clean_reason = "peer dropped the TCP connection without closing handshake"

    # ---- the connection ----

    def handshake(self):
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        host = self.host if self.port == 80 else "%s:%d" % (self.host, self.port)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "User-Agent: autobahn_cases.py\r\n\r\n" % (self.resource, host, key.decode()))
        self.sock = socket.create_connection((self.host, self.port), timeout=HANDSHAKE_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(req.encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed during handshake")
            resp += chunk
            if len(resp) > 65536:
                raise ConnectionError("response head too long")
        head, rest = resp.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101( |$)", lines[0]):
            raise ConnectionError("handshake refused: %s" % lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if headers.get("sec-websocket-accept") != [accept.decode()]:
            raise ConnectionError("bad Sec-WebSocket-Accept")
        if "websocket" not in ",".join(headers.get("upgrade", [])).lower():
            raise ConnectionError("no Upgrade: websocket")
        self.sock.setblocking(False)
        self.state = OPEN
        self.connection_was_open = True
        return rest

    def _run_timers(self):
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now and self.state != CLOSED:
            _, _, t = heapq.heappop(self.timers)
            if not t.cancelled:
                t.fn()

    def _write(self):
        while self.queue and self.state != CLOSED:
            if time.monotonic() < self.next_write:
                return
            item = self.queue[0]
            try:
                item[2] += self.sock.send(memoryview(item[0])[item[2]:])
            except BlockingIOError:
                return
            except OSError:
                self._connection_lost()
                return
            if item[2] < len(item[0]):
                return
            self.queue.pop(0)
            if item[1]:
                self.next_write = time.monotonic() + QUEUED_WRITE_DELAY
                return

    def run(self, deadline):
        try:
            rest = self.handshake()
        except (OSError, ConnectionError) as e:
            self.not_clean_reason = "opening handshake failed: %s" % e
            self.state = CLOSED
            if self.sock:
                self.sock.close()
            return
        self.case.on_open()
        if rest:
            self._on_bytes(rest)
        while self.state != CLOSED:
            self._write()
            self._run_timers()
            if self.state == CLOSED:
                break
            now = time.monotonic()
            if now > deadline:
                self.drop("case deadline passed")
                break
            timeout = deadline - now
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - now))
            wlist = []
            if self.queue:
                if now >= self.next_write:
                    wlist = [self.sock]
                else:
                    timeout = min(timeout, self.next_write - now)
            try:
                r, w, _ = select.select([self.sock], wlist, [], timeout)
            except (OSError, ValueError):
                self._connection_lost()
                break
            if r:
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._connection_lost()
                    break
                self._on_bytes(data)


# ---- the cases ----

class Case:
    ID = None
    DESCRIPTION = ""
    DEADLINE = 30.0   # safety net only; cases end themselves well before

    def __init__(self):
        self.p = None
        self.received = []
        self.expected = {}
        self.expected_close = {}
        self.behavior = FAILED
        self.behavior_close = FAILED
        self.result = "Actual events differ from any expected."
        self.result_close = "TCP connection was dropped without close handshake"
        self.suppress_close = False

    def on_open(self):
        pass

    def on_message(self, payload, binary):
        self.received.append(("message", payload, binary))
        self.finish_when_done()

    def on_pong(self, payload):
        self.received.append(("pong", payload))
        self.finish_when_done()

    def finish_when_done(self):
        """Starts the closing handshake once what came in matches every
        expected outcome (so never where OK and NON-STRICT differ)."""
        for e in self.expected.values():
            if self.received != e:
                return
        if self.expected_close.get("closedByMe") and not self.suppress_close:
            self.p.send_close(self.expected_close["closeCode"][0])

    def on_connection_lost(self):
        for name, events in self.expected.items():
            if self.received == events:
                self.behavior = name
                self.result = "Actual events match at least one expected."
                break
        p, ec = self.p, self.expected_close
        if not p.connection_was_open:
            self.behavior_close = FAILED
            self.result_close = p.not_clean_reason or "The WebSocket opening handshake was never completed!"
            return
        if ec["closedByMe"] != p.closed_by_me:
            self.behavior_close = FAILED
            self.result_close = "The connection was failed by the wrong endpoint"
        elif ec["requireClean"] and not p.was_clean:
            self.behavior_close = UNCLEAN
            self.result_close = "The spec requires the connection to be failed cleanly here (%s)" % p.not_clean_reason
        elif p.remote_close_code is not None and p.remote_close_code not in ec["closeCode"]:
            self.behavior_close = WRONG_CODE
            self.result_close = "The close code should have been %s or empty" % ",".join(map(str, ec["closeCode"]))
        elif p.dropped_by_me:
            self.behavior_close = FAILED_BY_CLIENT
            self.result_close = "It is preferred that the server close the TCP connection"
        else:
            self.behavior_close = OK
            self.result_close = "Connection was properly closed"
        if ec.get("closedByWrongEndpointIsFatal") and ec["closedByMe"] != p.closed_by_me:
            self.behavior = FAILED


def expect_close(by_me, codes, clean, fatal=False):
    d = {"closedByMe": by_me, "closeCode": codes, "requireClean": clean}
    if fatal:
        d["closedByWrongEndpointIsFatal"] = True
    return d


NORMAL_CLOSE = expect_close(True, [CLOSE_NORMAL], True)
PEER_FAILS = expect_close(False, [CLOSE_PROTOCOL_ERROR], False)
PEER_FAILS_UTF8 = expect_close(False, [CLOSE_INVALID_PAYLOAD], False, fatal=True)

CASES = []


def case(case_id, description):
    def register(cls):
        cls.ID = case_id
        cls.DESCRIPTION = description
        CASES.append(cls)
        return cls
    return register


def scripted(case_id, description, expected, close, steps, end):
    """A case that sends `steps` (send_frame keyword dicts, or a callable on
    the client) and then ends with ("kill", s) or ("close", s)."""
    class Scripted(Case):
        def on_open(self):
            self.expected = dict(expected)
            self.expected_close = close
            for s in steps:
                if callable(s):
                    s(self.p)
                else:
                    self.p.send_frame(**s)
            kind, delay = end
            (self.p.kill_after if kind == "kill" else self.p.close_after)(delay)
    return case(case_id, description)(Scripted)


def F(opcode, payload=b"", **kw):
    return dict(opcode=opcode, payload=payload, **kw)


# 1.* Framing
for i, (n, chop, wait) in enumerate([(0, None, 1), (125, None, 1), (126, None, 1), (127, None, 1),
                                     (128, None, 1), (65535, None, 10), (65536, None, 10),
                                     (65536, 997, 10)], 1):
    for sub, opcode, byte, kind in ((1, 1, b"*", "text"), (2, 2, b"\xfe", "binary")):
        payload = byte * n
        scripted("1.%d.%d" % (sub, i),
                 "Send %s message with payload of length %d%s." % (kind, n, ", chopped in %d octets" % chop if chop else ""),
                 {OK: [("message", payload, opcode == 2)]}, NORMAL_CLOSE,
                 [F(opcode, payload, chopsize=chop)], ("kill", wait))

# 2.* Pings/Pongs
HELLO = b"Hello, world!"
BIN8 = b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
scripted("2.1", "Send ping without payload.", {OK: [("pong", b"")]}, NORMAL_CLOSE, [F(9)], ("close", 1))
scripted("2.2", "Send ping with small text payload.", {OK: [("pong", HELLO)]}, NORMAL_CLOSE, [F(9, HELLO)], ("close", 1))
scripted("2.3", "Send ping with small binary (non UTF-8) payload.", {OK: [("pong", BIN8)]}, NORMAL_CLOSE,
         [F(9, BIN8)], ("close", 1))
scripted("2.4", "Send ping with binary payload of 125 octets.", {OK: [("pong", b"\xfe" * 125)]}, NORMAL_CLOSE,
         [F(9, b"\xfe" * 125)], ("close", 1))
scripted("2.5", "Send ping with binary payload of 126 octets.", {OK: []}, PEER_FAILS,
         [F(9, b"\xfe" * 126)], ("kill", 1))
scripted("2.6", "Send ping with binary payload of 125 octets, in octet-wise chops.",
         {OK: [("pong", b"\xfe" * 125)]}, NORMAL_CLOSE, [F(9, b"\xfe" * 125, chopsize=1)], ("close", 2))
scripted("2.7", "Send unsolicited pong without payload.", {OK: []}, NORMAL_CLOSE, [F(10)], ("close", 1))
scripted("2.8", "Send unsolicited pong with payload.", {OK: []}, NORMAL_CLOSE,
         [F(10, b"unsolicited pong payload")], ("close", 1))
scripted("2.9", "Send unsolicited pong with payload, then ping with payload.",
         {OK: [("pong", b"ping payload")]}, NORMAL_CLOSE,
         [F(10, b"unsolicited pong payload"), F(9, b"ping payload")], ("close", 1))
for cid, chop in (("2.10", None), ("2.11", 1)):
    scripted(cid, "Send 10 pings with payload%s." % (", in octet-wise chops" if chop else ""),
             {OK: [("pong", b"payload-%d" % i) for i in range(10)]}, NORMAL_CLOSE,
             [F(9, b"payload-%d" % i, chopsize=chop) for i in range(10)], ("close", 3))

# 3.* Reserved bits
ECHO_THEN_FAIL = {OK: [("message", HELLO, False)], NON_STRICT: []}
scripted("3.1", "Send small text message with RSV = 1.", {OK: []}, PEER_FAILS, [F(1, HELLO, rsv=1)], ("kill", 1))
scripted("3.2", "Send small text message, then again with RSV = 2, then ping.", ECHO_THEN_FAIL, PEER_FAILS,
         [F(1, HELLO), F(1, HELLO, rsv=2), F(9)], ("kill", 1))
scripted("3.3", "Send small text message, then again with RSV = 3, then ping; frame-wise chops.",
         ECHO_THEN_FAIL, PEER_FAILS,
         [F(1, HELLO, sync=True), F(1, HELLO, rsv=3, sync=True), F(9, sync=True)], ("kill", 1))
scripted("3.4", "Send small text message, then again with RSV = 4, then ping; octet-wise chops.",
         ECHO_THEN_FAIL, PEER_FAILS,
         [F(1, HELLO, chopsize=1), F(1, HELLO, rsv=4, chopsize=1), F(9, chopsize=1)], ("kill", 1))
scripted("3.5", "Send small binary message with RSV = 5.", {OK: []}, PEER_FAILS, [F(2, BIN8, rsv=5)], ("kill", 1))
scripted("3.6", "Send ping with RSV = 6.", {OK: []}, PEER_FAILS, [F(9, HELLO, rsv=6)], ("kill", 1))
scripted("3.7", "Send close with RSV = 7.", {OK: []}, PEER_FAILS, [F(8, rsv=7)], ("kill", 1))

# 4.* Opcodes
for fam, ops in ((1, (3, 4, 5, 6, 7)), (2, (11, 12, 13, 14, 15))):
    for i, op in enumerate(ops, 1):
        kind = "non-control" if fam == 1 else "control"
        if i == 1:
            scripted("4.%d.%d" % (fam, i), "Send frame with reserved %s opcode %d." % (kind, op),
                     {OK: []}, PEER_FAILS, [F(op)], ("kill", 1))
        elif i == 2:
            scripted("4.%d.%d" % (fam, i), "Send frame with reserved %s opcode %d and payload." % (kind, op),
                     {OK: []}, PEER_FAILS, [F(op, b"reserved opcode payload")], ("kill", 1))
        else:
            scripted("4.%d.%d" % (fam, i),
                     "Send small text message, then frame with reserved %s opcode %d%s, then ping."
                     % (kind, op, "" if i == 3 else " and payload"),
                     ECHO_THEN_FAIL, PEER_FAILS, [F(1, HELLO), F(op, b"" if i == 3 else HELLO), F(9)], ("kill", 1))

# 5.* Fragmentation
FRAGS = b"fragment1fragment2"
scripted("5.1", "Send ping fragmented into 2 fragments.", {OK: []}, PEER_FAILS,
         [F(9, b"fragment1", fin=False), F(0, b"fragment2")], ("kill", 1))
scripted("5.2", "Send pong fragmented into 2 fragments.", {OK: []}, PEER_FAILS,
         [F(10, b"fragment1", fin=False), F(0, b"fragment2")], ("kill", 1))
for cid, kw, how in (("5.3", {}, ""), ("5.4", {"sync": True}, ", frame-wise chops"),
                     ("5.5", {"chopsize": 1}, ", octet-wise chops")):
    scripted(cid, "Send text message fragmented into 2 fragments%s." % how,
             {OK: [("message", FRAGS, False)]}, NORMAL_CLOSE,
             [F(1, b"fragment1", fin=False, **kw), F(0, b"fragment2", **kw)], ("close", 1))
for cid, kw, how in (("5.6", {}, ""), ("5.7", {"sync": True}, ", frame-wise chops"),
                     ("5.8", {"chopsize": 1}, ", octet-wise chops")):
    scripted(cid, "Send text message in 2 fragments, one ping with payload in between%s." % how,
             {OK: [("pong", b"ping payload"), ("message", FRAGS, False)]}, NORMAL_CLOSE,
             [F(1, b"fragment1", fin=False, **kw), F(9, b"ping payload", **kw), F(0, b"fragment2", **kw)],
             ("close", 1))
for base, fin in ((9, True), (12, False)):
    for k, (kw, how) in enumerate((({}, "one chop"), ({"sync": True}, "per-frame chops"),
                                   ({"chopsize": 1}, "octet-wise chops"))):
        scripted("5.%d" % (base + k),
                 "Send unfragmented text message after continuation frame with FIN = %s, "
                 "where there is nothing to continue, sent in %s." % (str(fin).lower(), how),
                 {OK: []}, PEER_FAILS,
                 [F(0, b"non-continuation payload", fin=fin, **kw), F(1, HELLO, **kw)], ("kill", 1))
scripted("5.15", "Send text message in 2 fragments, then continuation with FIN = false where there is "
         "nothing to continue, then unfragmented text message.",
         {OK: [("message", FRAGS, False)], NON_STRICT: []}, PEER_FAILS,
         [F(1, b"fragment1", fin=False), F(0, b"fragment2"), F(0, b"fragment3", fin=False),
          F(1, b"fragment4")], ("kill", 1))
for cid, fin in (("5.16", False), ("5.17", True)):
    scripted(cid, "Repeated 2x: continuation frame with FIN = %s (nothing to continue), then text "
             "message in 2 fragments." % str(fin).lower(), {OK: []}, PEER_FAILS,
             [F(0, b"fragment1", fin=fin), F(1, b"fragment2", fin=False), F(0, b"fragment3")] * 2,
             ("kill", 1))
scripted("5.18", "Send text message in 2 fragments, with both frame opcodes set to text.", {OK: []},
         PEER_FAILS, [F(1, b"fragment1", fin=False), F(1, b"fragment2")], ("kill", 1))


class Case5_19(Case):
    SYNC = False
    FRAGMENTS = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]
    PINGS = [b"pongme 1!", b"pongme 2!"]

    def on_open(self):
        self.expected[OK] = [("pong", self.PINGS[0]), ("pong", self.PINGS[1]),
                             ("message", b"".join(self.FRAGMENTS), False)]
        self.expected_close = NORMAL_CLOSE
        f, s = self.FRAGMENTS, self.SYNC
        self.p.send_frame(1, f[0], fin=False, sync=s)
        self.p.send_frame(0, f[1], fin=False, sync=s)
        self.p.send_frame(9, self.PINGS[0], sync=s)
        self.p.continue_later(1, self.part2)

    def part2(self):
        f, s = self.FRAGMENTS, self.SYNC
        self.p.send_frame(0, f[2], fin=False, sync=s)
        self.p.send_frame(0, f[3], fin=False, sync=s)
        self.p.send_frame(9, self.PINGS[1], sync=s)
        self.p.send_frame(0, f[4], sync=s)
        self.p.close_after(1)


case("5.19", "A fragmented text message in 5 frames, pings after frame 2 and 4, 1 s pause after the "
     "first ping.")(Case5_19)
case("5.20", "Same as 5.19, frames sent with SYNC = True.")(type("Case5_20", (Case5_19,), {"SYNC": True}))

# 6.* UTF-8 handling
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
scripted("6.1.1", "Send text message of length 0.", {OK: [("message", b"", False)]}, NORMAL_CLOSE,
         [F(1)], ("close", 1))
scripted("6.1.2", "Send fragmented text message, 3 fragments each of length 0.",
         {OK: [("message", b"", False)]}, NORMAL_CLOSE, [F(1, fin=False), F(0, fin=False), F(0)], ("close", 1))
scripted("6.1.3", "Send fragmented text message, 3 fragments, first and last of length 0.",
         {OK: [("message", b"middle frame payload", False)]}, NORMAL_CLOSE,
         [F(1, fin=False), F(0, b"middle frame payload", fin=False), F(0)], ("close", 1))
scripted("6.2.1", "Send a valid UTF-8 text message in one fragment.", {OK: [("message", HELLO_UTF8, False)]},
         NORMAL_CLOSE, [lambda p: p.send_message(HELLO_UTF8)], ("close", 1))
P1, P2 = "Hello-µ@ßöä".encode(), "üàá-UTF-8!!".encode()
scripted("6.2.2", "Send a valid UTF-8 text message in two fragments, split on a code point boundary.",
         {OK: [("message", P1 + P2, False)]}, NORMAL_CLOSE, [F(1, P1, fin=False), F(0, P2)], ("close", 1))
scripted("6.2.3", "Send a valid UTF-8 text message in fragments of 1 octet.",
         {OK: [("message", HELLO_UTF8, False)]}, NORMAL_CLOSE,
         [lambda p: p.send_message(HELLO_UTF8, fragment_size=1)], ("close", 1))
scripted("6.2.4", "Send a valid UTF-8 text message in fragments of 1 octet (kosme).",
         {OK: [("message", KOSME, False)]}, NORMAL_CLOSE,
         [lambda p: p.send_message(KOSME, fragment_size=1)], ("close", 1))
INVALID_631 = KOSME + b"\xed\xa0\x80" + b"edited"
scripted("6.3.1", "Send invalid UTF-8 text message unfragmented.", {OK: []},
         expect_close(False, [CLOSE_INVALID_PAYLOAD], False),
         [lambda p: p.send_message(INVALID_631)], ("kill", 1))
scripted("6.3.2", "Send invalid UTF-8 text message in fragments of 1 octet.", {OK: []}, PEER_FAILS_UTF8,
         [lambda p: p.send_message(INVALID_631, fragment_size=1)], ("kill", 1))

INVALID_641 = KOSME + b"\xf4\x90\x80\x80" + b"edited"


class FailFast(Case):
    """6.4.*: a valid part, a wait, the part that makes it invalid, a wait,
    the rest.  The server should fail on the second part (OK), or at the
    latest at the end (NON-STRICT)."""
    PARTS = None
    ONE_FRAME = False

    def on_open(self):
        self.expected[OK] = [("timeout", "A")]
        self.expected[NON_STRICT] = [("timeout", "A"), ("timeout", "B")]
        self.expected_close = PEER_FAILS_UTF8
        if self.ONE_FRAME:
            self.p.begin_message_frame(1, len(INVALID_641))
        self.send_part(0)
        self.p.continue_later(1, self.part2)

    def send_part(self, i):
        if self.ONE_FRAME:
            self.p.send_message_frame_data(self.PARTS[i])
        else:
            self.p.send_frame(1 if i == 0 else 0, self.PARTS[i], fin=i == 2)

    def part2(self):
        if self.p.state == OPEN:
            self.received.append(("timeout", "A"))
            self.send_part(1)
            self.p.continue_later(1, self.part3)

    def part3(self):
        if self.p.state == OPEN:
            self.received.append(("timeout", "B"))
            self.send_part(2)
            self.p.kill_after(1)


for cid, parts, one, desc in (
        ("6.4.1", (KOSME, b"\xf4\x90\x80\x80", b"edited"), False, "3 frames"),
        ("6.4.2", (INVALID_641[:12], INVALID_641[12:13], INVALID_641[13:]), False,
         "3 frames, the 2nd only up to the octet making it invalid"),
        ("6.4.3", (KOSME, b"\xf4\x90\x80\x80", b"edited"), True, "3 chops of one frame"),
        ("6.4.4", (INVALID_641[:12], INVALID_641[12:13], INVALID_641[13:]), True,
         "3 chops of one frame, the 2nd only the octet making it invalid")):
    case(cid, "Send invalid UTF-8 text message in %s, waiting 1 s between parts (fail fast)." % desc)(
        type("Case" + cid.replace(".", "_"), (FailFast,), {"PARTS": parts, "ONE_FRAME": one}))


def utf8_sequences():
    """The 6.5-6.23 groups, after Markus Kuhn's UTF-8 decoder stress test."""
    g = []
    g.append([(True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
              (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)])
    prefixes = []
    for i in range(1, len(KOSME) + 1):
        try:
            KOSME[:i].decode("utf-8")
            prefixes.append((True, KOSME[:i]))
        except UnicodeDecodeError:
            prefixes.append((False, KOSME[:i]))
    g.append(prefixes)
    g.append([(True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")])
    g.append([(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")])
    g.append([(True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")])
    g.append([(False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"), (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")])
    g.append([(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
              (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")])
    g.append([(False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"), (False, b"\x80\xbf\x80"),
              (False, b"\x80\xbf\x80\xbf"), (False, b"\x80\xbf\x80\xbf\x80"),
              (False, b"\x80\xbf\x80\xbf\x80\xbf"), (False, bytes(range(0x80, 0xbf)))])
    g.append([(False, b"".join(bytes([c, 0x20]) for c in range(lo, hi)))
              for lo, hi in ((0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd))])
    k = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
         b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    g.append([(False, x) for x in k])
    g.append([(False, b"".join(k))])
    g.append([(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")])
    g.append([(False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
              (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")])
    g.append([(False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
              (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")])
    g.append([(False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
              (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")])
    g.append([(False, x) for x in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                                   b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf")])
    g.append([(False, a + b) for a, b in ((b"\xed\xa0\x80", b"\xed\xb0\x80"), (b"\xed\xa0\x80", b"\xed\xbf\xbf"),
                                          (b"\xed\xad\xbf", b"\xed\xb0\x80"), (b"\xed\xad\xbf", b"\xed\xbf\xbf"),
                                          (b"\xed\xae\x80", b"\xed\xb0\x80"), (b"\xed\xae\x80", b"\xed\xbf\xbf"),
                                          (b"\xed\xaf\xbf", b"\xed\xb0\x80"), (b"\xed\xaf\xbf", b"\xed\xbf\xbf"))])
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4"):
        for z2 in (b"\x8f", b"\x9f", b"\xaf", b"\xbf"):
            if z1 == b"\xf4" and z2 != b"\x8f":
                continue
            for z3 in (b"\xbe", b"\xbf"):
                zz = z1 + z2 + b"\xbf" + z3
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):
                    nonchars.append((True, zz))
    g.append(nonchars)
    g.append([(True, b"\xef\xbf" + bytes([c])) for c in range(0xb9, 0xc0)])
    return g


class Utf8Case(Case):
    PAYLOAD = b""
    VALID = True

    def on_open(self):
        if self.VALID:
            self.expected[OK] = [("message", self.PAYLOAD, False)]
            self.expected_close = NORMAL_CLOSE
        else:
            self.expected[OK] = []
            self.expected_close = PEER_FAILS_UTF8
        self.p.send_message(self.PAYLOAD)
        self.p.kill_after(0.5)


for gi, group in enumerate(utf8_sequences(), 5):
    for j, (valid, payload) in enumerate(group, 1):
        cid = "6.%d.%d" % (gi, j)
        case(cid, "Send a text message with payload which is %svalid UTF-8 in one fragment: 0x%s."
             % ("" if valid else "not ", payload.hex()))(
            type("Case" + cid.replace(".", "_"), (Utf8Case,), {"PAYLOAD": payload, "VALID": valid}))


# 7.* Close handling
class CloseCase(Case):
    """Family 7: a wrong close code fails the case."""

    def __init__(self):
        super().__init__()
        self.suppress_close = True

    def on_connection_lost(self):
        super().on_connection_lost()
        if self.behavior_close == WRONG_CODE:
            self.behavior = FAILED
            self.result = self.result_close


def close_case(case_id, description, expected, close, action, suppress=True):
    class C(CloseCase):
        def on_open(self):
            self.suppress_close = suppress
            self.expected = dict(expected)
            self.expected_close = close
            action(self.p)
            self.p.kill_after(1)
    return case(case_id, description)(C)


def _7_1_1(p):
    p.send_frame(1, b"Hello World!")


close_case("7.1.1", "Send a message followed by a close frame.", {OK: [("message", b"Hello World!", False)]},
           NORMAL_CLOSE, _7_1_1, suppress=False)
close_case("7.1.2", "Send two close frames.", {OK: []}, NORMAL_CLOSE,
           lambda p: (p.send_close(CLOSE_NORMAL), p.send_frame(8)))
close_case("7.1.3", "Send a ping after close message.", {OK: []}, NORMAL_CLOSE,
           lambda p: (p.send_close(CLOSE_NORMAL), p.send_frame(9)))
close_case("7.1.4", "Send text message after sending a close frame.", {OK: []}, NORMAL_CLOSE,
           lambda p: (p.send_close(CLOSE_NORMAL), p.send_frame(1, b"Hello World!")))
close_case("7.1.5", "Send message fragment1 followed by close then fragment.", {OK: []}, NORMAL_CLOSE,
           lambda p: (p.send_frame(1, b"fragment1", fin=False), p.send_close(CLOSE_NORMAL),
                      p.send_frame(0, b"fragment2")))


class Case7_1_6(CloseCase):
    def on_open(self):
        self.expected[OK] = [("message", b"Hello World!", False)]
        self.expected[NON_STRICT] = []
        self.expected_close = NORMAL_CLOSE
        self.p.send_frame(1, b"BAsd7&jh23", payload_len=256 * 1024)
        self.p.send_frame(1, b"Hello World!")
        self.p.send_close(CLOSE_NORMAL)
        self.p.send_frame(9)
        self.p.kill_after(1)

    def on_connection_lost(self):
        Case.on_connection_lost(self)
        if self.behavior == OK:
            self.result = "Text message was processed before close."
        elif self.behavior == NON_STRICT:
            self.result = "Close was processed before text message could be returned."
        self.behavior = self.behavior_close = INFORMATIONAL


case("7.1.6", "Send 256K message followed by close then a ping.")(Case7_1_6)
close_case("7.3.1", "Send a close frame with payload length 0 (no close code, no close reason).", {OK: []},
           NORMAL_CLOSE, lambda p: p.send_close_frame())
close_case("7.3.2", "Send a close frame with payload length 1.", {OK: []},
           expect_close(True, [CLOSE_PROTOCOL_ERROR], False), lambda p: p.send_close_frame(reason=b"a"))
close_case("7.3.3", "Send a close frame with close code and no close reason.", {OK: []}, NORMAL_CLOSE,
           lambda p: p.send_close_frame(CLOSE_NORMAL))
close_case("7.3.4", "Send a close frame with close code and close reason.", {OK: []}, NORMAL_CLOSE,
           lambda p: p.send_close(CLOSE_NORMAL, "Hello World!"))
close_case("7.3.5", "Send a close frame with close code and close reason of maximum length (123).", {OK: []},
           NORMAL_CLOSE, lambda p: p.send_close(CLOSE_NORMAL, "*" * 123))
close_case("7.3.6", "Send a close frame with close code and close reason which is too long (124).", {OK: []},
           expect_close(True, [CLOSE_PROTOCOL_ERROR], False),
           lambda p: p.send_close_frame(CLOSE_NORMAL, b"*" * 124))
close_case("7.5.1", "Send a close frame with invalid UTF-8 payload.", {OK: []},
           expect_close(True, [CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_PAYLOAD], False),
           lambda p: p.send_close_frame(CLOSE_NORMAL, INVALID_631))
for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
    close_case("7.7.%d" % i, "Send close with valid close code %d." % code, {OK: []},
               expect_close(True, [CLOSE_NORMAL, code], True), lambda p, c=code: p.send_close_frame(c))
for i, code in enumerate([0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999], 1):
    close_case("7.9.%d" % i, "Send close with invalid close code %d." % code, {OK: []},
               expect_close(True, [CLOSE_PROTOCOL_ERROR], False), lambda p, c=code: p.send_close_frame(c))


class Informational(CloseCase):
    CODE = 0

    def on_open(self):
        self.expected[OK] = []
        self.expected_close = expect_close(True, [CLOSE_NORMAL, self.CODE, CLOSE_PROTOCOL_ERROR], False)
        self.p.send_close_frame(self.CODE)
        self.p.kill_after(1)

    def on_connection_lost(self):
        Case.on_connection_lost(self)
        self.behavior = self.behavior_close = INFORMATIONAL
        self.result = "Actual events are undefined by the spec."


case("7.13.1", "Send close with close code 5000.")(type("Case7_13_1", (Informational,), {"CODE": 5000}))
case("7.13.2", "Send close with close code 65535.")(type("Case7_13_2", (Informational,), {"CODE": 65535}))


# 9.* Limits/performance
class BigMessage(Case):
    LEN = 0
    BINARY = False
    PAYLOAD = b"BAsd7&jh23"
    FRAGSIZE = None
    CHOPSIZE = None
    WAITSECS = 100

    def __init__(self):
        super().__init__()
        self.DEADLINE = self.WAITSECS + 10

    def on_open(self):
        self.expected_close = NORMAL_CLOSE
        self.result = "Did not receive message within %d seconds." % self.WAITSECS
        opcode = 2 if self.BINARY else 1
        if self.FRAGSIZE:
            self.p.send_message(repeat_to(self.PAYLOAD, self.LEN), self.BINARY, fragment_size=self.FRAGSIZE)
        else:
            self.p.send_frame(opcode, self.PAYLOAD, payload_len=self.LEN, chopsize=self.CHOPSIZE)
        self.p.close_after(self.WAITSECS)

    def on_message(self, payload, binary):
        kind = "binary" if self.BINARY else "text"
        if binary != self.BINARY:
            self.result = "Expected %s message with payload, but got %s." % (
                kind, "binary" if binary else "text")
        elif len(payload) != self.LEN:
            self.result = "Expected %s message with payload of length %d, but got %d." % (
                kind, self.LEN, len(payload))
        else:
            self.behavior = OK
            self.result = "Received %s message of length %d." % (kind, len(payload))
        self.p.send_close(CLOSE_NORMAL)

    def on_connection_lost(self):
        behavior, result = self.behavior, self.result
        Case.on_connection_lost(self)
        self.behavior, self.result = behavior, result


def big(case_id, desc, **attrs):
    case(case_id, desc)(type("Case" + case_id.replace(".", "_"), (BigMessage,), attrs))


KB, MB = 1024, 1024 * 1024
for j, (n, wait) in enumerate([(64 * KB, 10), (256 * KB, 10), (1 * MB, 100), (4 * MB, 100),
                               (8 * MB, 100), (16 * MB, 100)], 1):
    big("9.1.%d" % j, "Send text message with payload of length %d." % n, LEN=n, WAITSECS=wait)
    big("9.2.%d" % j, "Send binary message with payload of length %d." % n, LEN=n, WAITSECS=wait,
        BINARY=True, PAYLOAD=b"\x00\xfe\x23\xfa\xf0")
for j, frag in enumerate([64, 256, 1 * KB, 4 * KB, 16 * KB, 64 * KB, 256 * KB, 1 * MB, 4 * MB], 1):
    big("9.3.%d" % j, "Send fragmented text message of length 4M in fragments of %d." % frag,
        LEN=4 * MB, FRAGSIZE=frag, PAYLOAD=b"*")
    big("9.4.%d" % j, "Send fragmented binary message of length 4M in fragments of %d." % frag,
        LEN=4 * MB, FRAGSIZE=frag, PAYLOAD=b"*", BINARY=True)
for j, chop in enumerate([64, 128, 256, 512, 1024, 2048], 1):
    big("9.5.%d" % j, "Send text message of length 1M in chops of %d octets." % chop,
        LEN=1 * MB, CHOPSIZE=chop)
    big("9.6.%d" % j, "Send binary message of length 1M in chops of %d octets." % chop,
        LEN=1 * MB, CHOPSIZE=chop, BINARY=True, PAYLOAD=b"\x00\xfe\x23\xfa\xf0")


class RoundTrips(Case):
    LEN, COUNT, WAITSECS, BINARY = 0, 1000, 60, False

    def __init__(self):
        super().__init__()
        self.DEADLINE = self.WAITSECS + 10
        self.count = 0

    def on_open(self):
        self.expected_close = NORMAL_CLOSE
        self.result = "Case did not finish within %d seconds." % self.WAITSECS
        self.p.close_after(self.WAITSECS)
        self.send_one()

    def send_one(self):
        if self.BINARY:
            self.p.send_frame(2, b"\xfe", payload_len=self.LEN)
        else:
            self.p.send_frame(1, b"*", payload_len=self.LEN)
        self.count += 1

    def on_message(self, payload, binary):
        if binary != self.BINARY or len(payload) != self.LEN:
            self.behavior = FAILED
            self.result = "Echoed message type or length differs (binary = %s, length = %d)." % (
                binary, len(payload))
            self.p.send_close(CLOSE_NORMAL)
        elif self.count < self.COUNT:
            self.send_one()
        else:
            self.behavior = OK
            self.result = "Ok, received all echoed messages in time."
            self.p.send_close(CLOSE_NORMAL)

    def on_connection_lost(self):
        behavior, result = self.behavior, self.result
        Case.on_connection_lost(self)
        self.behavior, self.result = behavior, result


for j, (n, count, wait) in enumerate([(0, 1000, 60), (16, 1000, 60), (64, 1000, 60), (256, 1000, 120),
                                      (1024, 1000, 240), (4096, 1000, 480)], 1):
    for fam, binary in ((7, False), (8, True)):
        cid = "9.%d.%d" % (fam, j)
        case(cid, "Send %d %s messages of payload size %d, one at a time (round-trip time)."
             % (count, "binary" if binary else "text", n))(
            type("Case" + cid.replace(".", "_"), (RoundTrips,),
                 {"LEN": n, "COUNT": count, "WAITSECS": wait, "BINARY": binary}))


# 10.* Misc
class Case10_1_1(Case):
    PAYLOAD = b"*" * 65536
    FRAG = 1300

    def on_open(self):
        self.expected[OK] = [("message", self.PAYLOAD, False)]
        self.expected_close = NORMAL_CLOSE
        self.p.send_message(self.PAYLOAD, fragment_size=self.FRAG)
        self.p.kill_after(10)

    def on_connection_lost(self):
        super().on_connection_lost()
        want = {0: len(self.PAYLOAD) // self.FRAG, 1: 1 if len(self.PAYLOAD) % self.FRAG else 0}
        got = {0: self.p.tx_frames.get(0, 0), 1: self.p.tx_frames.get(1, 0)}
        if want != got:
            self.behavior = FAILED
            self.result = "Frames transmitted %s do not match what was expected %s." % (got, want)


case("10.1.1", "Send text message with payload of length 65536 auto-fragmented into 1300-octet frames.")(
    Case10_1_1)


# ---- running ----

def id_tuple(case_id):
    return tuple(int(x) for x in case_id.split("."))


def select_cases(patterns, excludes):
    by_id = {c.ID: c for c in CASES}

    def matching(pats):
        chosen = set()
        for pat in pats:
            if pat == "all":
                chosen |= set(by_id)
                continue
            rx = re.compile(re.escape(pat).replace(r"\*", ".*") + "$")
            chosen |= {cid for cid in by_id if rx.match(cid)}
        return chosen

    if patterns:
        chosen = matching(patterns)
    else:
        chosen = {cid for cid in by_id if not cid.startswith("9.")}
    chosen -= matching(excludes)
    return [by_id[cid] for cid in sorted(chosen, key=id_tuple)]


def short(events, limit=160):
    s = repr([(e[0], e[1][:40] + (b"..." if len(e[1]) > 40 else b"")) + tuple(e[2:])
              if isinstance(e[1], bytes) else e for e in events])
    return s if len(s) <= limit else s[:limit] + "..."


def run_case(cls, host, port, resource, verbose):
    c = cls()
    p = Client(host, port, resource, c)
    c.p = p
    start = time.monotonic()
    p.run(start + c.DEADLINE)
    c.on_connection_lost()
    ms = int((time.monotonic() - start) * 1000)
    code = p.remote_close_code if p.remote_close_code is not None else "-"
    print("%-8s %-13s close %-16s %5d ms  %s" % (cls.ID, c.behavior, "%s(%s)" % (c.behavior_close, code),
                                                 ms, cls.DESCRIPTION[:70]))
    if c.behavior not in PASSING or verbose:
        print("         %s" % c.result)
        print("         close: %s" % c.result_close)
        if p.violation:
            print("         server protocol violation: %s" % p.violation)
        print("         expected: %s" % {k: short(v) for k, v in c.expected.items()})
        print("         received: %s" % short(c.received))
    sys.stdout.flush()
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="ws://HOST:PORT/PATH of an echo endpoint")
    ap.add_argument("--cases", default="", help="comma-separated patterns, e.g. '1.*,2.*' or 'all' "
                    "(default: all but 9.*)")
    ap.add_argument("--exclude", default="", help="comma-separated patterns to leave out")
    ap.add_argument("--strict-close", action="store_true",
                    help="also fail cases whose closing behaviour is FAILED or UNCLEAN")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="details for every case")
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "ws" or not url.hostname:
        ap.error("--url must be ws://HOST:PORT/PATH (wss:// is not supported)")
    resource = (url.path or "/") + ("?" + url.query if url.query else "")
    patterns = [p.strip() for p in args.cases.split(",") if p.strip()]
    excludes = [p.strip() for p in args.exclude.split(",") if p.strip()]
    cases = select_cases(patterns, excludes)
    if args.list:
        for cls in cases:
            print("%-8s %s" % (cls.ID, cls.DESCRIPTION))
        return 0
    if not cases:
        ap.error("no case matches")

    counts = {}
    failed = []
    for cls in cases:
        c = run_case(cls, url.hostname, url.port or 80, resource, args.verbose)
        counts[c.behavior] = counts.get(c.behavior, 0) + 1
        bad = c.behavior not in PASSING
        if args.strict_close and c.behavior_close in (FAILED, UNCLEAN):
            bad = True
        if bad:
            failed.append(cls.ID)
    print()
    print("summary: %d cases: %s" % (len(cases), ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items()))))
    if failed:
        print("failing: %s" % " ".join(failed))
    print("%d passed, %d failed" % (len(cases) - len(failed), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
