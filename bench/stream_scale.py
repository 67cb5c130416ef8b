#!/usr/bin/env python
"""Stream throughput with 1 and 2 processors over partitioned streams (``--partitions``).

For each processor count: a fresh private redis-server and repository copy; the processors
(``python -m featurelib.stream run --partitions N --clock event --lateness 0``) start on empty
streams and settle their fair shares of the partitions; then they are paused (SIGSTOP), the
generated events are XADDed to their partitions (each event once per family: transactions by
card and by device, clickstream by user and by session), and the processors are resumed
(SIGCONT). Throughput is the events (each counted once) over the time from the resume to the
moment every partition's entries are acknowledged (landed). The unpartitioned processor
(``--partitions 1``, one process computing every view) runs first, as the reference.

    python bench/stream_scale.py                        # 5,000 cards over 7 days, 8 partitions
    python bench/stream_scale.py --cards 500 --days 1 --processors 1 --processors 2

Writes bench/results/stream_scale.{json,md}. On a 2-core machine, two processors share the
cores with Redis: the figure says how much of a second core the partitioning turns into work.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
from report import consumed, save, wait_until  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", ".feastignore"]
GROUP = "featurelib"


def _holders(client, streams: list[str]) -> Counter:
    from featurelib.stream.lease import lease_key

    values = client.mget([lease_key(s, GROUP) for s in streams])
    return Counter(v.decode().split("@")[0] for v in values if v)


def _run(source: Path, tmp: Path, processors: int, partitions: int) -> dict:
    from featurelib.redis_server import RedisServer
    from featurelib.stream.events import STREAMS
    from featurelib.stream.partitions import lanes
    from featurelib.stream.replay import replay

    with RedisServer() as server:
        env = {**os.environ, "REDIS_CONNECTION_STRING": server.connection_string}
        repo = tmp / f"repo-{processors}-{partitions}"
        repo.mkdir()
        for name in REPO_FILES:
            shutil.copy2(ROOT / name, repo / name)
        subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=repo, env=env, check=True,
                       capture_output=True)
        client = server.client()
        streams = [lane.stream for lane in lanes(STREAMS, partitions)] if partitions > 1 else list(STREAMS.values())
        command = [sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), "--clock", "event",
                   "--lateness", "0", "--partitions", str(partitions), "--lease-ttl", "120"]
        logs = [(repo / f"processor-{i}.log").open("w") for i in range(processors)]
        procs = [subprocess.Popen([*command, "--consumer", f"p{i}"], env=env, stdout=log, stderr=subprocess.STDOUT)
                 for i, log in enumerate(logs)]
        try:
            share = len(streams) // processors
            wait_until(lambda: sorted(_holders(client, streams).values()) == [share] * processors, 120, "fair shares")
            for p in procs:
                p.send_signal(signal.SIGSTOP)
            t = time.perf_counter()
            sent = replay(client, source, partitions=partitions)
            xadd_s = time.perf_counter() - t
            t = time.perf_counter()
            for p in procs:
                p.send_signal(signal.SIGCONT)
            wait_until(lambda: consumed(client, streams, GROUP), 900, "every entry acknowledged")
            seconds = time.perf_counter() - t
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
                p.terminate()
                p.wait(timeout=60)
            for log in logs:
                log.close()
    return {"processors": processors, "partitions": partitions, "events": sent, "xadd_seconds": round(xadd_s, 2),
            "seconds": round(seconds, 2), "events_per_second": round(sent / seconds)}


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--days", default=7.0, show_default=True)
@click.option("--partitions", default=8, show_default=True, help="Partitions per family.")
@click.option("--processors", "counts", multiple=True, type=int, default=(1, 2), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, days: float, partitions: int, counts: tuple[int, ...], out: Path) -> None:
    """Measure stream throughput with 1 and 2 processors over partitioned streams."""
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.timeutil import DAY, now_us

    runs = []
    with tempfile.TemporaryDirectory(prefix="stream-scale-") as tmp:
        tmp = Path(tmp)
        source = tmp / "events"
        generate(GeneratorConfig(n_cards=cards, days=days, seed=3, end_us=now_us() - DAY), source)
        for processors, parts in [(1, 1), *((n, partitions) for n in counts)]:
            runs.append(_run(source, tmp, processors, parts))
            click.echo(runs[-1], err=True)
    base = runs[0]["events_per_second"]
    lines = ["| processors | partitions per family | events | seconds | events/s | vs unpartitioned |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['processors']} | {r['partitions']} | {r['events']:,} | {r['seconds']} | "
              f"{r['events_per_second']:,} | {r['events_per_second'] / base:.2f}x |" for r in runs]
    save(out, "stream_scale", {"runs": runs}, lines)


if __name__ == "__main__":
    main()
