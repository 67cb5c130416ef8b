#!/usr/bin/env python
"""The stream core alone (``StreamCore.step``, in-process, no Redis): live steps and a backlog.

Generates 5,000 cards over 7 days (both streams). Live: the first 7 days minus 30 minutes are
the history, then steps of 3 events per stream (event clock), timed one by one (the first step,
which computes the window state, is left out). Backlog: the whole 7 days in steps of 200,000
events per stream.

    python bench/stream_core.py            # prints step p50 / p99 / mean (ms) and the backlog time (s)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featurelib import semantics as s  # noqa: E402
from featurelib.generate import GeneratorConfig, generate_clickstream, generate_transactions  # noqa: E402
from featurelib.stream.core import StreamCore  # noqa: E402
from featurelib.timeutil import MINUTE, SECOND, column_us  # noqa: E402


def main(steps: int = 500) -> None:
    cfg = GeneratorConfig(n_cards=5000, days=7, seed=3, end_us=1_800_000_000_000_000)
    tables = {s.TRANSACTIONS: generate_transactions(cfg), s.CLICKSTREAM: generate_clickstream(cfg)}
    tables = {k: t.sort_by("event_timestamp") for k, t in tables.items()}
    core = StreamCore(10 * SECOND)
    live = {}
    for kind, table in tables.items():
        t = column_us(table.column("event_timestamp"))
        cut = int(np.searchsorted(t, cfg.end_us - 30 * MINUTE))
        core.buffers[kind].add(table.slice(0, cut))
        core.clock[kind] = int(t[cut - 1])
        live[kind] = table.slice(cut)
    times = []
    for i in range(steps + 1):
        started = time.perf_counter()
        core.step({k: (t.slice(3 * i, 3), None) for k, t in live.items()})
        times.append((time.perf_counter() - started) * 1000)
    times = times[1:]
    print(f"live steps: p50 {np.percentile(times, 50):.2f} ms, p99 {np.percentile(times, 99):.2f} ms, "
          f"mean {np.mean(times):.2f} ms ({steps} steps of 3 events per stream)")
    core = StreamCore(0)
    started = time.perf_counter()
    for pos in range(0, max(t.num_rows for t in tables.values()), 200_000):
        core.step({k: (t.slice(pos, 200_000), None) for k, t in tables.items()})
    events = sum(t.num_rows for t in tables.values())
    seconds = time.perf_counter() - started
    print(f"backlog: {events:,} events in {seconds:.2f} s ({events / seconds:,.0f} events/s)")


if __name__ == "__main__":
    main()
