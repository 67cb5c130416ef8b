#!/usr/bin/env python
"""The floor of event-to-servable latency on this machine: a consumer that computes nothing.

It reads ``events:transactions`` and ``events:clickstream`` through its own consumer group
exactly as the processor does (``XREADGROUP`` with ``BLOCK``, a whole batch per read), writes
each entry's fields to one hash per entity (``bench-floor:<stream>:<entity>``, one ``HSET``
each, pipelined) and acknowledges them, then measures each entry's latency the way the
processor does: from the entry id (when Redis received it) to the moment the pipeline
returned. What the processor adds on top of this is its own work: decoding, windows,
derivation, the contract's write script and landing.

    python bench/stream_floor.py --group floor      # until SIGTERM; prints p50 / p99 to stderr

``bench/stream.py`` runs it before the processor, with the same producer and rate.
"""

from __future__ import annotations

import signal
import sys
import time

import click
import numpy as np
import redis

STREAMS = ("events:transactions", "events:clickstream")
ENTITY = {"events:transactions": b"card_id", "events:clickstream": b"user_id"}


def _client() -> redis.Redis:
    """A client of the first node of ``REDIS_CONNECTION_STRING``, parsed as the online store parses it."""
    from featurelib.feast_compat import parse_redis_connection_string
    from featurelib.redis_connection import connection_string_from_env

    nodes, params = parse_redis_connection_string(connection_string_from_env())
    return redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)


@click.command()
@click.option("--group", default="floor", show_default=True)
def main(group: str) -> None:
    """Consume until SIGTERM, then print the latency percentiles."""
    client = _client()
    for key in STREAMS:
        try:
            client.xgroup_create(key, group, id="$", mkstream=True)
        except redis.ResponseError as e:  # BUSYGROUP: created by an earlier run
            if "BUSYGROUP" not in str(e):
                raise
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    latencies: list[float] = []
    print("ready", file=sys.stderr, flush=True)
    while not stop:
        reply = client.xreadgroup(group, "floor", {k: ">" for k in STREAMS}, count=10_000, block=100)
        if not reply:
            continue
        pipe = client.pipeline(transaction=False)
        arrived = []
        for key, entries in reply:
            key = key.decode()
            for entry_id, fields in entries:
                pipe.hset(f"bench-floor:{key}:{fields.get(ENTITY[key], b'').decode()}", mapping=fields)
                arrived.append(int(entry_id.split(b"-")[0]))
            pipe.xack(key, group, *[e[0] for e in entries])
        pipe.execute()
        now_ms = time.time() * 1000
        latencies.extend(now_ms - a for a in arrived)
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (float("nan"), float("nan"))
    print(f"{len(latencies):,} events, event-to-servable p50 {p50:.1f} ms p99 {p99:.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
