#!/usr/bin/env python
"""Spark backfill benchmark: the Spark engine (local[2]) against the local engine (1 process).

For each size, generates N transactions over 7 days (seeded, as bench/backfill.py does), then
builds the three transaction feature views with each engine in a fresh subprocess, and reports
wall time (the whole process: imports, and for Spark the JVM's start), the time of the build
alone (Spark's session already started), events per second of each, and whether both engines
wrote identical files (compared column by column).

    python bench/spark_backfill.py                          # 1M transactions
    python bench/spark_backfill.py --sizes 1000000,10000000

Writes bench/results/spark_backfill.json and bench/results/spark_backfill.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from backfill import TRANSACTION_VIEWS, _generate  # bench/backfill.py: the same generated data
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
MASTER = "local[2]"
CHILD = """
import json, sys, time
from pathlib import Path
raw, out, views, engine, master = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), sys.argv[4], sys.argv[5]
if engine == "spark":
    from featurelib import spark_engine
    spark = spark_engine.session(master)
    started = time.perf_counter()
    builds = spark_engine.build_all(raw, out, views, spark=spark)
else:
    from featurelib.batch import build_all
    started = time.perf_counter()
    builds = build_all(raw, out, views, workers=1)
print(json.dumps({"seconds": time.perf_counter() - started, "events": builds[0].events,
                  "rows": sum(b.rows for b in builds), "per_view": {b.view: round(b.seconds, 2) for b in builds}}))
"""


def _run(raw: Path, out: Path, engine: str) -> dict:
    started = time.perf_counter()
    args = [str(raw), str(out), ",".join(TRANSACTION_VIEWS), engine, MASTER]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{engine} engine failed:\n{proc.stderr[-3000:]}")
    wall = time.perf_counter() - started
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(engine=engine, parallelism=MASTER if engine == "spark" else "1 process", wall_seconds=round(wall, 2),
                  events_per_second=round(result["events"] / result["seconds"]), seconds=round(result["seconds"], 2))
    return result


def _identical(a: Path, b: Path) -> bool:
    """Same schema (and metadata) and the same values, a column at a time (bounded memory)."""
    import pyarrow.parquet as pq

    for view in TRANSACTION_VIEWS:
        left, right = a / f"{view}.parquet", b / f"{view}.parquet"
        if not pq.read_schema(left).equals(pq.read_schema(right), check_metadata=True):
            return False
        for column in pq.read_schema(left).names:
            if not pq.read_table(left, columns=[column]).equals(pq.read_table(right, columns=[column])):
                return False
    return True


@click.command()
@click.option("--sizes", default="1000000", show_default=True, help="Transaction counts, comma separated.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(sizes: str, out: Path) -> None:
    """Measure the Spark engine's backfill throughput against the local engine's."""
    rows = []
    for size in (int(float(s)) for s in sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="spark-backfill-") as tmp:
            raw = Path(tmp) / "raw"
            click.echo(f"generating {size:,} transactions ...", err=True)
            _generate(raw, size, with_clickstream=False)
            results = {engine: _run(raw, Path(tmp) / engine, engine) for engine in ("local", "spark")}
            same = _identical(Path(tmp) / "local", Path(tmp) / "spark")
            for r in results.values():
                r.update(size=size, identical=same)
                rows.append(r)
                click.echo(f"{r['events']:>12,} transactions, {r['engine']:<5} ({r['parallelism']}): "
                           f"{r['seconds']:6.1f}s ({r['events_per_second']:,}/s), "
                           f"{r['wall_seconds']:.1f}s with start-up", err=True)
    lines = ["| transactions | engine | parallelism | seconds | events/s | seconds with start-up | feature rows | "
             "identical output |", "|---:|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['events']:,} | {r['engine']} | {r['parallelism']} | {r['seconds']} | "
                     f"{r['events_per_second']:,} | {r['wall_seconds']} | {r['rows']:,} | "
                     f"{'yes' if r['identical'] else 'NO'} |")
    save(out, "spark_backfill", rows, lines)


if __name__ == "__main__":
    main()
