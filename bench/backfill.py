#!/usr/bin/env python
"""Backfill benchmark: raw transactions -> the three transaction feature views.

For each size, generates N transactions over 7 days (seeded), then runs the batch job
(`featurelib.batch.build_all`) in a fresh subprocess with 1 and with 2 worker processes
and reports wall time, events per second and peak resident memory (of the job and its
workers). Clickstream views are measured once at the smallest size.

    python bench/backfill.py                       # 1M and 10M transactions
    python bench/backfill.py --sizes 1000000       # quicker

Writes bench/results/backfill.json and bench/results/backfill.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
TRANSACTION_VIEWS = ["transaction_stats_5m", "card_profile_24h", "device_activity_24h"]
CLICKSTREAM_VIEWS = ["user_engagement_5m", "session_activity"]
CHILD = """
import json, resource, sys, time
from pathlib import Path
from featurelib.batch import build_all
raw, out, views, workers = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])
started = time.perf_counter()
builds = build_all(raw, out, views, workers=workers)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
# With workers, the largest worker's peak times the number of workers bounds what ran at once.
peak_kb = own + kids * min(workers, len(views)) if workers > 1 else own
print(json.dumps({"seconds": time.perf_counter() - started, "events": builds[0].events, "peak_kb": peak_kb,
                  "rows": sum(b.rows for b in builds), "per_view": {b.view: round(b.seconds, 2) for b in builds}}))
"""


def _generate(raw: Path, transactions: int, with_clickstream: bool) -> None:
    from featurelib.generate import GeneratorConfig, generate_clickstream, generate_transactions, write_table
    from featurelib.timeutil import to_us

    cfg = GeneratorConfig(n_cards=max(2, round(transactions / 14.16)), days=7, seed=1,
                          end_us=to_us("2026-11-26T00:00:00Z"), sessions_per_user_per_day=1.0 if with_clickstream else 0.01)
    write_table(generate_transactions(cfg), raw / "transactions" / "generated.parquet")
    if with_clickstream:
        write_table(generate_clickstream(cfg), raw / "clickstream" / "generated.parquet")


def _run(raw: Path, out: Path, views: list[str], workers: int) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(raw), str(out), ",".join(views), str(workers)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(wall_seconds=round(wall, 2), workers=workers, views=views,
                  peak_rss_mb=round(result.pop("peak_kb") / 1024), events_per_second=round(result["events"] / result["seconds"]))
    result["seconds"] = round(result["seconds"], 2)
    return result


@click.command()
@click.option("--sizes", default="1000000,10000000", show_default=True, help="Transaction counts, comma separated.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(sizes: str, out: Path) -> None:
    """Measure backfill throughput and peak memory."""
    rows = []
    for i, size in enumerate(int(float(s)) for s in sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="backfill-") as tmp:
            raw, features = Path(tmp) / "raw", Path(tmp) / "features"
            click.echo(f"generating {size:,} transactions ...", err=True)
            _generate(raw, size, with_clickstream=(i == 0))
            for workers in (1, 2):
                r = _run(raw, features, TRANSACTION_VIEWS, workers)
                r["input"] = "transactions"
                rows.append(r)
                click.echo(f"{r['events']:>12,} transactions, {workers} worker(s): {r['seconds']:6.1f}s "
                           f"({r['events_per_second']:,}/s), peak {r['peak_rss_mb']:,} MB", err=True)
            if i == 0:
                r = _run(raw, features, CLICKSTREAM_VIEWS, 1)
                r["input"] = "clickstream"
                rows.append(r)
                click.echo(f"{r['events']:>12,} clickstream events: {r['seconds']:6.1f}s ({r['events_per_second']:,}/s)", err=True)
    lines = ["| input | events | views | workers | seconds | events/s | feature rows | peak RSS |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['input']} | {r['events']:,} | {len(r['views'])} | {r['workers']} | {r['seconds']} | "
                     f"{r['events_per_second']:,} | {r['rows']:,} | {r['peak_rss_mb']:,} MB |")
    save(out, "backfill", rows, lines)


if __name__ == "__main__":
    main()
