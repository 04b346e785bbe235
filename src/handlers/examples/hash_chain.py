"""A hashlib hash chain: the built-in sha256 job, in Python.

    wsjobd --python-path src/handlers/examples --python chain=hash_chain:chain
    wsjob submit chain '{"data": "abc", "rounds": 100000}'

Input {"data": S, "rounds": R}; h1 = sha256(S), h(i+1) = sha256(hex(h(i))); the
output is hex(hR), the same as `wsjob submit sha256`.  Reports progress.
"""
import hashlib
import json

import wsjob

ROUNDS_MAX = 10 ** 8


def chain(data, job):
    try:
        args = json.loads(data)
        text, rounds = str(args["data"]), int(args["rounds"])
    except (ValueError, KeyError, TypeError) as e:
        raise wsjob.BadInput('input must be {"data": S, "rounds": R}: %s' % e)
    if not 1 <= rounds <= ROUNDS_MAX:
        raise wsjob.BadInput("rounds must be 1..%d" % ROUNDS_MAX)
    h = hashlib.sha256(text.encode()).hexdigest()
    for i in range(1, rounds):
        h = hashlib.sha256(h.encode()).hexdigest()
        if i % 65536 == 0:
            job.progress(i, rounds)
    return h
