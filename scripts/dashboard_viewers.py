#!/usr/bin/python3
"""dashboard_viewers.py — N dashboards' worth of live feeds for `make bench`
(BENCH_ONLY=dashboard): N WebSockets on /stats/live of a daemon on
127.0.0.1, each read as a browser would, for a bounded time.

  dashboard_viewers.py PORT N SECONDS

Prints "connected" on stderr once all N have their first snapshot, then at
the end one JSON line: viewers, seconds, messages received per viewer per
second (1.0 when every snapshot reached every viewer)."""
import asyncio
import json
import sys
import time

import websockets


async def viewer(url, ready, until, counts, i):
    async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
        await ws.recv()          # the history
        await ws.recv()          # the newest snapshot
        ready.release()
        while True:
            left = until() - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                return
            counts[i] += 1


async def main(port, n, seconds):
    url = "ws://127.0.0.1:%d/stats/live" % port
    ready = asyncio.Semaphore(0)
    counts = [0] * n
    end = [time.monotonic() + seconds + 30]
    tasks = [asyncio.create_task(viewer(url, ready, lambda: end[0], counts, i)) for i in range(n)]
    for _ in range(n):
        await asyncio.wait_for(ready.acquire(), 30)
    start = time.monotonic()
    end[0] = start + seconds
    print("connected", file=sys.stderr, flush=True)
    await asyncio.gather(*tasks)
    took = time.monotonic() - start
    print(json.dumps({"bench": "dashboard_viewers", "viewers": n, "seconds": round(took, 1),
                      "messages_per_viewer_per_s": round(sum(counts) / n / took, 2)},
                     separators=(",", ":")), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])),
                                 float(sys.argv[3]) + 90))
