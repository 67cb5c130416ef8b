#!/usr/bin/env python
"""Stream processor benchmark: throughput, and event-to-servable latency at a steady rate.

1. Throughput: the generated events (both streams) are XADDed first (timed separately),
   then one processor (event-time clock) consumes them all; events per second and rows
   written per second of the processing alone.
2. Latency: a processor runs as its documented command on the wall clock, its state
   rebuilt from the events landed in step 1; a producer replays events at a steady ``--rate``
   events per second, each stamped with its moment on the wall clock (a second generated set:
   the same cards, events the processor has not seen). With ``--pacing shaped`` the events keep
   their own spacing, scaled to ``--rate`` on average: the generated traffic's shape, from a
   quiet start to bursts of several times the average. Latency per event is from the moment
   Redis received it (its stream entry id) to the moment the processor's write of the
   changed rows returned, as the processor measures it. Before it, the same producer and rate feed
   ``bench/stream_floor.py``, a consumer that reads, writes a hash per event and acknowledges,
   computing nothing: the floor of this machine, measured in the same run (``--no-floor`` skips it).

    python bench/stream.py                       # 5,000 cards over 7 days; 1,000 events/s for 30 s
    python bench/stream.py --cards 1000 --seconds 10
    python bench/stream.py --per-stream          # latency with one processor per stream
    python bench/stream.py --pacing shaped       # the events' own spacing, 1,000 events/s on average

With ``--per-stream`` the latency run starts two processors (``--stream transactions`` and
``--stream clickstream``), as a deployment on two cores would; each reports its own p50
and p99, and the p99 of all events is at most the larger of the two.

Writes bench/results/stream.{json,md} (stream_per_stream.* with ``--per-stream``, stream_shaped.*
with ``--pacing shaped``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from report import consumed, save, wait_until  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", ".feastignore"]


def _repo(dest: Path, env: dict) -> Path:
    dest.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, dest / name)
    subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=dest, env=env, check=True,
                   capture_output=True)
    return dest


STREAM_KEYS = ["events:transactions", "events:clickstream"]


def _wait_until_consumed(client, group: str, timeout_s: float) -> None:
    """Until ``group`` has every entry of both streams delivered and acknowledged (landed), so a
    slow start cannot end the run before the consumers saw the events."""
    wait_until(lambda: consumed(client, STREAM_KEYS, group), timeout_s, f"group {group} to consume every event")


def _floor_run(client, env: dict, live: Path, pace: dict, limit: int) -> dict:
    """The same producer and rate into a consumer that computes nothing (bench/stream_floor.py)."""
    from featurelib.stream.replay import replay

    proc = subprocess.Popen([sys.executable, str(HERE / "stream_floor.py")], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stderr.readline().strip() == "ready"
    n = replay(client, live, limit=limit, **pace)
    _wait_until_consumed(client, "floor", timeout_s=60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    p50, p99 = (float(x) for x in re.search(r"p50 ([\d.]+) ms p99 ([\d.]+) ms", err).groups())
    return {"events": n, "p50_ms": p50, "p99_ms": p99}


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--days", default=7.0, show_default=True)
@click.option("--rate", default=1_000, show_default=True, help="Events per second in the latency run.")
@click.option("--seconds", default=30, show_default=True, help="Length of the latency run.")
@click.option("--pacing", type=click.Choice(["steady", "shaped"]), default="steady", show_default=True,
              help="Latency run: a steady --rate, or the events' own spacing at --rate on average.")
@click.option("--per-stream", is_flag=True, help="Latency run: one processor process per stream.")
@click.option("--floor/--no-floor", default=True, show_default=True,
              help="First a latency run of bench/stream_floor.py, a consumer that computes nothing: this machine's floor.")
@click.option("--warmup", default=15.0, show_default=True,
              help="Seconds the latency run's processors get to rebuild their state before events flow.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, days: float, rate: int, seconds: int, pacing: str, per_stream: bool, floor: bool, warmup: float,
         out: Path) -> None:
    """Measure stream processor throughput and latency."""
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.redis_server import RedisServer
    from featurelib.stream.processor import ProcessorConfig, StreamProcessor
    from featurelib.stream.replay import load_events, replay
    from featurelib.timeutil import DAY, now_us

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp, RedisServer() as server:
        tmp = Path(tmp)
        env = {**os.environ, "REDIS_CONNECTION_STRING": server.connection_string}
        os.environ["REDIS_CONNECTION_STRING"] = server.connection_string
        repo = _repo(tmp / "repo", env)
        source = tmp / "events"
        generate(GeneratorConfig(n_cards=cards, days=days, seed=3, end_us=now_us() - DAY), source)

        # 1. throughput
        client = server.client()
        t = time.perf_counter()
        sent = replay(client, source)
        xadd_s = time.perf_counter() - t
        processor = StreamProcessor(ProcessorConfig(repo=repo, clock="event", lateness_s=0, read_count=200_000),
                                    log=lambda m: click.echo(m, err=True))
        t = time.perf_counter()
        stats = processor.run(until_idle_s=1.0, progress_s=10)
        seconds_used = time.perf_counter() - t - 1.0  # minus the idle wait that ends the run
        results["throughput"] = {"events": stats.events, "xadd_seconds": round(xadd_s, 2),
                                 "processing_seconds": round(seconds_used, 2),
                                 "events_per_second": round(stats.events / seconds_used),
                                 "rows_written": stats.rows_written,
                                 "rows_written_per_second": round(stats.rows_written / seconds_used)}
        assert stats.events == sent
        click.echo(json.dumps(results["throughput"]), err=True)

        # 2. latency at a steady rate, processor as a separate process
        # Events of the same cards the processors have never seen (their own ids): replaying step 1's
        # events again would be counted as duplicates wherever they are still in the window state.
        live = tmp / "live"
        generate(GeneratorConfig(n_cards=cards, days=days, seed=4, end_us=now_us() - DAY), live)
        _, table = load_events(live, ["transactions", "clickstream"], limit=rate * seconds)
        stamps = table.column("event_timestamp").cast("int64")
        speed = rate * (int(stamps[-1].as_py()) - int(stamps[0].as_py())) / 1e6 / len(stamps)  # `rate` on average
        pace = {"rate": rate} if pacing == "steady" else {"speed": speed}
        client.delete("events:transactions", "events:clickstream")  # step 1's entries are consumed
        if floor:
            results["floor"] = _floor_run(client, env, live, pace, rate * seconds)
            click.echo(json.dumps(results["floor"]), err=True)
            client.delete("events:transactions", "events:clickstream")
        command = [sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), "--clock", "wall",
                   "--group", "latency"]
        variants = [["--stream", k, "--consumer", f"latency-{k}"] for k in ("transactions", "clickstream")] \
            if per_stream else [["--consumer", "latency"]]
        procs = [subprocess.Popen(command + v, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for v in variants]
        time.sleep(warmup)  # state rebuilt from the landed events, and the day of window exits since caught up
        t = time.perf_counter()
        n = replay(client, live, limit=rate * seconds, **pace)
        produce_s = time.perf_counter() - t
        _wait_until_consumed(client, "latency", timeout_s=120)
        reports = []
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            if out.is_dir():
                out.joinpath(f"stream-processor{len(reports) or ''}.log").write_text(err)
            lines = [line for line in err.splitlines() if "event-to-servable" in line]
            if not lines:
                raise click.ClickException(f"a processor reported no latency (exit {proc.returncode}):\n{err[-3000:]}")
            reports.append(lines[-1])
        p50s, p99s = zip(*((float(x) for x in re.search(r"p50 ([\d.]+) ms p99 ([\d.]+) ms", r).groups()) for r in reports))
        results["latency"] = {"target_rate": rate, "pacing": pacing, "events": n, "achieved_rate": round(n / produce_s),
                              "processes": len(procs), "p50_ms": max(p50s), "p99_ms": max(p99s),
                              "processor_reports": reports}
        click.echo(json.dumps(results["latency"]), err=True)

    th, la = results["throughput"], results["latency"]
    lines = ["| measurement | value |", "|---|---:|",
             f"| events consumed (both streams) | {th['events']:,} |",
             f"| processing throughput, events/s | {th['events_per_second']:,} |",
             f"| rows written to Redis, rows/s | {th['rows_written_per_second']:,} |",
             f"| latency run: events at {la['achieved_rate']:,}/s ({pacing}) | {la['events']:,} |",
             f"| event-to-servable latency p50 / p99{' (the larger of the two processors)' if per_stream else ''} "
             f"| {la['p50_ms']} / {la['p99_ms']} ms |"]
    if floor:
        fl = results["floor"]
        lines.append(f"| floor: a consumer that computes nothing (bench/stream_floor.py), p50 / p99 "
                     f"| {fl['p50_ms']} / {fl['p99_ms']} ms |")
    save(out, "stream" + ("_per_stream" if per_stream else "") + ("_shaped" if pacing == "shaped" else ""), results, lines)


if __name__ == "__main__":
    main()
