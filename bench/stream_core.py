#!/usr/bin/env python
"""The stream core alone (``StreamCore.step``, in-process, no Redis): live steps and a backlog.

Generates ``--cards`` cards over ``--days`` days (both streams). Live: all but the last 30
minutes are the history, then ``--steps`` steps of 3 events per stream (event clock), each
timed (the first, which computes the window state, is left out). Backlog: the whole history
in steps of 200,000 events per stream.

    python bench/stream_core.py                  # 5,000 cards over 7 days, 500 live steps

Writes bench/results/stream_core.{json,md}.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--days", default=7.0, show_default=True)
@click.option("--steps", default=500, show_default=True, help="Live steps of 3 events per stream.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, days: float, steps: int, out: Path) -> None:
    """Time live steps and a backlog of the stream core."""
    from featurelib import semantics as s
    from featurelib.generate import GeneratorConfig, generate_clickstream, generate_transactions
    from featurelib.stream.core import StreamCore
    from featurelib.timeutil import MINUTE, SECOND, column_us

    cfg = GeneratorConfig(n_cards=cards, days=days, seed=3, end_us=1_800_000_000_000_000)
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
    core = StreamCore(0)
    started = time.perf_counter()
    for pos in range(0, max(t.num_rows for t in tables.values()), 200_000):
        core.step({k: (t.slice(pos, 200_000), None) for k, t in tables.items()})
    backlog_s = time.perf_counter() - started
    events = sum(t.num_rows for t in tables.values())
    results = {"live": {"steps": len(times), "p50_ms": round(float(np.percentile(times, 50)), 3),
                        "p99_ms": round(float(np.percentile(times, 99)), 3), "mean_ms": round(float(np.mean(times)), 3)},
               "backlog": {"events": events, "seconds": round(backlog_s, 3), "events_per_second": round(events / backlog_s)}}
    lines = ["| measurement | value |", "|---|---:|",
             f"| live step (3 events per stream) p50 / p99 / mean | {results['live']['p50_ms']} / "
             f"{results['live']['p99_ms']} / {results['live']['mean_ms']} ms |",
             f"| backlog of {events:,} events | {backlog_s:.2f} s ({results['backlog']['events_per_second']:,} events/s) |"]
    save(out, "stream_core", results, lines)


if __name__ == "__main__":
    main()
