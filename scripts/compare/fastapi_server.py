#!/usr/bin/python3
"""fastapi_server.py — the usual Python answer to "WebSocket jobs", for
scripts/compare.sh to measure wsjobd against.

FastAPI on uvicorn (uvloop, httptools and the websockets library when they
are installed, as `uvicorn[standard]` has them), CPU work in a
concurrent.futures.ProcessPoolExecutor reached through loop.run_in_executor:
the pattern the FastAPI guides recommend for CPU-bound handlers.  It speaks
the subset of wsjobd's protocols that `wsjob bench` uses:

  /run/echo  raw ordered mode (SPEC §6) for echo: every message comes back
             with its opcode, in order.  Echo is done on the event loop: a
             process hop per 64-byte message would only make it slower.
  /jobs      the JSON job protocol (SPEC §5), op "submit" only, job types
             sha256 (SPEC §7), echo, and pymodsum ({"n":N,"k":K}: loop() of
             src/handlers/examples/cpu_loop.py, the very function wsjobd's
             Python handler runs in the comparison); the reply is
             {"id":..,"event":"done","output":..} or an "error" event.

    /usr/bin/python3 fastapi_server.py --workers N [--port P]

Prints "port P" on stdout once it listens (P the kernel's pick when 0).
"""
import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "src", "handlers", "examples"))
import cpu_loop  # noqa: E402  (seed 000's loop, shared with the wsjobd handler)

import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

MAX_ROUNDS = 100_000_000

app = FastAPI()
pool = None        # the ProcessPoolExecutor, made at start-up
workers = 1


def sha256_chain(data, rounds):
    """h_1 = sha256(data), h_(i+1) = sha256(hex(h_i)); returns hex(h_R)."""
    h = hashlib.sha256(data.encode()).hexdigest()
    for _ in range(rounds - 1):
        h = hashlib.sha256(h.encode()).hexdigest()
    return h


def pymodsum_args(inp):
    if not isinstance(inp, dict) or type(inp.get("n")) is not int or type(inp.get("k")) is not int:
        raise BadRequest("input must be {\"n\":N,\"k\":K}")
    return inp["n"], inp["k"]


def noop():
    return 0


class BadRequest(Exception):
    pass


def sha256_args(inp):
    if not isinstance(inp, dict) or set(inp) - {"data", "rounds"}:
        raise BadRequest("input must be {\"data\":S,\"rounds\":R}")
    data, rounds = inp.get("data"), inp.get("rounds")
    if not isinstance(data, str):
        raise BadRequest("data must be a string")
    if type(rounds) is not int or not 1 <= rounds <= MAX_ROUNDS:
        raise BadRequest("rounds must be 1..%d" % MAX_ROUNDS)
    return data, rounds


@app.on_event("startup")
async def start_pool():
    global pool
    pool = ProcessPoolExecutor(max_workers=workers)
    # The pool starts its processes on demand: start them all now, so the
    # first measured second is not spent forking.
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, noop) for _ in range(workers * 4)))


@app.on_event("shutdown")
def stop_pool():
    pool.shutdown(wait=False, cancel_futures=True)


@app.websocket("/run/echo")
async def run_echo(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                await ws.send_bytes(msg["bytes"])
            else:
                await ws.send_text(msg["text"])
    except WebSocketDisconnect:
        pass


async def run_job(ws, send_lock, job_id, kind, inp):
    loop = asyncio.get_running_loop()
    try:
        if kind == "sha256":
            data, rounds = sha256_args(inp)
            out = await loop.run_in_executor(pool, sha256_chain, data, rounds)
        elif kind == "pymodsum":
            n, k = pymodsum_args(inp)
            out = str(await loop.run_in_executor(pool, cpu_loop.loop, n, k))
        else:   # echo: a string input is its bytes, anything else its JSON text
            out = inp if isinstance(inp, str) else json.dumps(inp, separators=(",", ":"))
        reply = {"id": job_id, "event": "done", "output": out}
    except BadRequest as e:
        reply = {"id": job_id, "event": "error", "code": "bad_request", "message": str(e)}
    except Exception as e:   # a worker that died, or a failure inside one
        reply = {"id": job_id, "event": "error", "code": "handler_error", "message": repr(e)}
    try:
        async with send_lock:
            await ws.send_text(json.dumps(reply, separators=(",", ":")))
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass   # the client left; nobody to answer


def bad_request(job_id, message):
    reply = {"event": "error", "code": "bad_request", "message": message}
    if job_id is not None:
        reply["id"] = job_id
    return json.dumps(reply, separators=(",", ":"))


@app.websocket("/jobs")
async def jobs(ws: WebSocket):
    await ws.accept()
    send_lock = asyncio.Lock()
    tasks = set()
    try:
        while True:
            text = await ws.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                async with send_lock:
                    await ws.send_text(bad_request(None, "not a JSON object"))
                continue
            job_id = msg.get("id")
            if not isinstance(job_id, str) or not 1 <= len(job_id) <= 64:
                job_id = None
            if msg.get("op") != "submit" or job_id is None:
                async with send_lock:
                    await ws.send_text(bad_request(job_id, "only op submit with an id"))
                continue
            kind = msg.get("type")
            if kind not in ("sha256", "echo", "pymodsum"):
                async with send_lock:
                    await ws.send_text(json.dumps({"id": job_id, "event": "error",
                                                   "code": "unknown_type",
                                                   "message": "no job type %r" % (kind,)}))
                continue
            t = asyncio.create_task(run_job(ws, send_lock, job_id, kind, msg.get("input")))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for t in tasks:
            t.cancel()


def main():
    global workers
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1, help="ProcessPoolExecutor max_workers")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--backlog", type=int, default=4096)
    args = ap.parse_args()
    workers = args.workers

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(args.backlog)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=args.backlog,
                            lifespan="on")
    server = uvicorn.Server(config)
    print("port %d" % sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
