"""Python job types used by tests/test_python.py (not examples)."""
import json
import os
import time

import wsjob


def spin(data, job):
    while True:
        pass


def swallow(data, job):
    # `except Exception` must not stop a cancel.
    while True:
        try:
            sum(range(1000))
        except Exception:
            pass


def nap(data, job):
    time.sleep(float(data))
    return "slept"


def count(data, job):
    for i in range(int(data)):
        yield "c%d" % i


def emitter(data, job):
    for i in range(int(data)):
        job.emit(b"e%d" % i)
        job.progress(i + 1, int(data))
    return None


def boom(data, job):
    raise ValueError("nope: " + data.decode())


def bad(data, job):
    raise wsjob.BadInput("want a number")


def wrong_type(data, job):
    return 42


def describe(data, job):
    return json.dumps({"id": job.id, "type": job.type, "left": job.deadline - time.monotonic(),
                       "cancelled": job.cancelled, "pid": os.getpid(),
                       "doc": bool(wsjob.__doc__ and wsjob.Cancelled.__doc__ and wsjob.BadInput.__doc__),
                       "base": issubclass(wsjob.Cancelled, Exception)})


def slow_once(data, job):
    time.sleep(float(data))
    return "ok %d" % os.getpid()


def grow(data, job):
    global kept
    kept = bytearray(int(data))          # held: resident memory grows
    for i in range(0, len(kept), 4096):
        kept[i] = 1
    return str(os.getpid())


def flood(data, job):
    path, n = data.decode().split()
    chunk = b"x" * 65536
    for i in range(int(n)):
        with open(path, "w") as f:
            f.write(str(i))
        yield chunk


def huge(data, job):
    return b"x" * int(data)              # one output over --max-message
