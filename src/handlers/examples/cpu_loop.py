"""Seed 000's CPU-bound loop as a wsjobd job type.

    wsjobd --python-path src/handlers/examples --python modsum_py=cpu_loop:modsum
    wsjob submit modsum_py '{"n": 7, "k": 20000}'

Input {"n": N, "k": K}; output the decimal sum((i * n) % 97 for i in range(k)).
Pure Python that never looks at job.cancelled: a cancel or the deadline still
stops it, with wsjob.Cancelled raised at its next bytecode.

scripts/compare's FastAPI server runs the same loop() in its process pool,
where there is no wsjob module.
"""
import json

try:
    from wsjob import BadInput
except ImportError:          # outside wsjobd
    BadInput = ValueError

K_MAX = 10 ** 9


def loop(n, k):
    return sum((i * n) % 97 for i in range(k))


def modsum(data, job):
    try:
        args = json.loads(data)
        n, k = int(args["n"]), int(args["k"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadInput('input must be {"n": N, "k": K}: %s' % e)
    if not 0 <= k <= K_MAX:
        raise BadInput("k must be 0..%d" % K_MAX)
    return str(loop(n, k))
