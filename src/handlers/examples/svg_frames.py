"""Seed 002's SVG frame generator: frames until the client says stop.

    wsjobd --python-path src/handlers/examples --python svg=svg_frames:frames
    wsjob submit svg '{"count": 0, "interval_ms": 100}'     # Ctrl-C stops it

Input {"count": C, "size": W, "interval_ms": T}, all optional; C = 0 (the
default) streams until the job is cancelled (the client's "stop") or its
deadline passes.  Each frame is one chunk: a small rotating polygon, CPU work
per frame.  A generator: each yielded str is one chunk, and a client that
does not read holds the next yield (flow control), not the daemon's memory.
"""
import json
import math
import time

import wsjob


def frame(i, size):
    c = size / 2
    pts = []
    for k in range(7):
        a = 2 * math.pi * k / 7 + i * 0.1
        r = c * (0.6 + 0.3 * math.sin(i * 0.05 + k))
        pts.append("%.1f,%.1f" % (c + r * math.cos(a), c + r * math.sin(a)))
    hue = (i * 7) % 360
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">'
            '<polygon points="%s" fill="hsl(%d,70%%,50%%)"/></svg>' % (size, size, " ".join(pts), hue))


def frames(data, job):
    try:
        args = json.loads(data) if data.strip() else {}
        count = int(args.get("count", 0))
        size = int(args.get("size", 200))
        interval = int(args.get("interval_ms", 0)) / 1000.0
    except (ValueError, TypeError, AttributeError) as e:
        raise wsjob.BadInput("input must be {\"count\": C, \"size\": W, \"interval_ms\": T}: %s" % e)
    i = 0
    while count == 0 or i < count:
        yield frame(i, size)
        i += 1
        if interval:
            time.sleep(interval)     # wakes at once on cancel inside a job
