"""``python -m featurelib.stream``: the reference stream processor and its replay producer."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from featurelib import paths
from featurelib.semantics import CLICKSTREAM, TRANSACTIONS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Stream processing: Redis Streams of raw events -> feature rows in Redis (the stream
    contract) and raw events landed as Parquet for the batch job.

    \b
    Live:    python -m featurelib.stream run
    Replay:  python -m featurelib.stream run --clock event --until-idle 5 &
             python -m featurelib.stream replay --source data/replay
    Scaled:  python -m featurelib.stream run --partitions 4 --consumer p1   (one per machine)
             python -m featurelib.stream replay --partitions 4
    """


@cli.command()
@paths.repo_option("Feature repository (feature_store.yaml, registry, data/).")
@click.option("--clock", type=click.Choice(["wall", "event"]), default="wall", show_default=True,
              help="wall: live traffic, windows close on the wall clock. event: replays of history, the clock is "
                   "the highest event time seen.")
@click.option("--lateness", "lateness_s", default=10.0, show_default=True,
              help="Seconds an event may trail the clock and still count; later ones are quarantined.")
@click.option("--timer-ms", default=20, show_default=True,
              help="Wall clock: apply due window exits at most this often (rows keep their exact instants).")
@click.option("--group", default="featurelib", show_default=True, help="Consumer group.")
@click.option("--consumer", default="processor-1", show_default=True, help="Consumer name within the group.")
@click.option("--stream", "kinds", multiple=True, type=click.Choice([TRANSACTIONS, CLICKSTREAM]),
              help="Consume only this stream (repeatable; default: both). The streams feed disjoint feature "
                   "views, so one processor per stream splits the work across two cores.")
@click.option("--until-idle", type=float, default=None, help="Stop after this many seconds without events.")
@click.option("--max-events", type=int, default=None, help="Stop after this many events.")
@click.option("--standby", is_flag=True,
              help="When another processor consumes a stream of this group: wait, and take over when it stops "
                   "(default: refuse to start).")
@click.option("--lease-ttl", "lease_ttl_s", default=10.0, show_default=True,
              help="Seconds after which a processor that stopped renewing its lease is taken over.")
@click.option("--reconnect-timeout", "reconnect_timeout_s", type=float, default=None,
              help="Give up (exit 2) when Redis stays unreachable this many seconds. Default: keep waiting.")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Consume the partitioned streams <stream>:<join key>:<p>, p < N (the producers' N), sharing "
                   "them with the other processors of the group (each processor a distinct --consumer).")
def run(repo: Path, clock: str, lateness_s: float, timer_ms: int, group: str, consumer: str, kinds: tuple[str, ...],
        until_idle: float | None, max_events: int | None, standby: bool, lease_ttl_s: float,
        reconnect_timeout_s: float | None, partitions: int) -> None:
    """Consume events, write fresh features to Redis, land events as Parquet.

    Entries are acknowledged once their rows are written and their events are in
    data/raw/<stream>/stream/; a restarted processor rebuilds its state from Parquet and
    re-reads what it had not acknowledged. Invalid entries go to data/quarantine/. When
    Redis goes away, it waits and goes on. One processor per stream and group: a second
    one refuses to start, or waits with --standby. With --partitions N, processors share the
    partitions, each owning a fair share; a dead one's are taken over once its lease expires
    (--lease-ttl). Stop with Ctrl-C (everything pending is landed and acknowledged first).

    Exit codes: 0 done, 2 an operational error (one line: credentials refused, Redis away
    longer than --reconnect-timeout, another processor holds a stream, an unreadable raw
    file, or Redis lost data during the run).
    """
    import redis

    from featurelib.errors import OperationalError, first_line
    from featurelib.repo import UserError
    from featurelib.stream.events import STREAMS
    from featurelib.stream.partitioned import PartitionedProcessor
    from featurelib.stream.processor import ProcessorConfig, StreamProcessor

    if standby and partitions > 1:
        raise click.BadParameter("partitioned processors all consume: --standby is for --partitions 1",
                                 param_hint="--standby")
    streams = {k: v for k, v in STREAMS.items() if not kinds or k in kinds}
    config = ProcessorConfig(repo=repo, group=group, consumer=consumer, clock=clock, lateness_s=lateness_s,
                             timer_ms=timer_ms, streams=streams, standby=standby, lease_ttl_s=lease_ttl_s,
                             reconnect_timeout_s=reconnect_timeout_s, partitions=partitions)
    kind = PartitionedProcessor if partitions > 1 else StreamProcessor
    try:
        processor = kind(config, log=lambda m: click.echo(m, err=True))
        stats = processor.run(until_idle_s=until_idle, max_events=max_events)
    except UserError as exc:
        raise OperationalError(str(exc)) from None
    except redis.RedisError as exc:
        raise OperationalError(f"Redis error: {first_line(exc)}") from None
    if stats.redis_lost:
        raise OperationalError(stats.redis_lost[0])


@cli.command()
@paths.repo_option("Feature repository (feature_store.yaml, registry, data/).")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with <stream>/**.parquet raw events. Default: <repo>/data/replay.")
@click.option("--speed", default="max", show_default=True,
              help="'max' (as fast as possible, original timestamps) or N (N times real time, retimed to now).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="A steady R events per second instead, each stamped with its moment on the wall clock.")
@click.option("--stream", "kinds", multiple=True, type=click.Choice([TRANSACTIONS, CLICKSTREAM]),
              help="Replay only this stream (repeatable). Default: both.")
@click.option("--limit", type=int, default=None, help="Replay only the first N events.")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Write each event to its partition <stream>:<join key>:<p> of every join key of its stream "
                   "(the processors' N).")
def replay(repo: Path, source: Path | None, speed: str, rate: float | None, kinds: tuple[str, ...], limit: int | None,
           partitions: int) -> None:
    """Feed raw events into the streams in event-time order (XADD)."""
    from featurelib.repo import load_store, redis_client
    from featurelib.stream.replay import replay as run_replay

    try:
        factor = None if speed == "max" else float(speed)
    except ValueError:
        raise click.BadParameter(f"{speed!r} is neither 'max' nor a number", param_hint="--speed") from None
    if factor is not None and rate is not None:
        raise click.UsageError("give --speed or --rate, not both")
    client = redis_client(load_store(repo))
    run_replay(client, source or paths.data_dir(repo) / "replay", kinds=list(kinds) or None, speed=factor, rate=rate,
               limit=limit, progress=lambda m: click.echo(m, err=True), partitions=partitions)


if __name__ == "__main__":
    sys.exit(cli())
