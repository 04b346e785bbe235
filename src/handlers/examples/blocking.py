"""Seed 001's blocking calls, on the I/O worker's threads (`,io`).

    wsjobd --python-path src/handlers/examples \\
           --python nap=blocking:nap,io --python get=blocking:get,io
    wsjob submit nap 1.5
    wsjob submit get http://127.0.0.1:8000/

nap: time.sleep(seconds), what FastAPI users push to asyncio.to_thread.  The
thread releases the GIL while it sleeps, so many naps overlap, and a cancel
ends the sleep at once.
get: urllib GET of a URL; the body is the output.  Blocking network I/O also
releases the GIL; a cancel is raised when the call returns to Python.
"""
import time
import urllib.request

import wsjob


def nap(data, job):
    try:
        seconds = float(data or b"1")
    except ValueError:
        raise wsjob.BadInput("input must be a number of seconds")
    time.sleep(seconds)
    return "slept %g" % seconds


def get(data, job):
    url = data.decode().strip()
    if not url.startswith(("http://", "https://")):
        raise wsjob.BadInput("input must be an http:// or https:// URL")
    timeout = max(0.1, job.deadline - time.monotonic())
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()
