"""Replay raw events into Redis Streams in event-time order: for demos, tests and benchmarks.

* ``speed=None``: as fast as possible, original timestamps (process with ``--clock event``);
* ``speed=N``: paced at N times real time; timestamps are moved onto the wall clock
  (``t' = start + (t - t0) / N``) so that a live processor (``--clock wall``) accepts them.
  The rate follows the events' own: quiet nights, busy evenings, bursts;
* ``rate=R``: a steady R events per second, in event-time order; each event is stamped with
  its moment on the wall clock (``t' = start + i / R``).

With ``partitions=N`` (N > 1) each event is written once per family of its stream, to the
partition of its entity (``featurelib.stream.partitions``), as any partitioned producer does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import redis

from featurelib import duck
from featurelib.parquet_files import raw_files
from featurelib.raw_events import ID_FIELD
from featurelib.stream.events import SCHEMAS, STREAMS, encode_table
from featurelib.stream.partitions import check_count, routes
from featurelib.timeutil import column_us, now_us


def load_events(source: Path, kinds: list[str], limit: int | None = None) -> tuple[list[str], pa.Table]:
    """Events of ``kinds`` under ``source/<kind>/**.parquet``, merged in event-time order;
    returns the kind of each row and a table of the union of columns."""
    parts, kind_of = [], []
    for kind in kinds:
        files = raw_files(source, kind)
        if not files:
            continue
        lim = f"LIMIT {int(limit)}" if limit else ""
        # Ties broken by event id: the order, and so ``skip``/``limit`` chunks, never change.
        table = duck.arrow(f"SELECT * FROM {duck.parquet(files)} ORDER BY event_timestamp, {ID_FIELD[kind]} {lim}")
        parts.append((kind, table))
    if not parts:
        raise FileNotFoundError(f"no events under {source} for {', '.join(kinds)}")
    times = np.concatenate([column_us(t.column("event_timestamp")) for _, t in parts])
    order = np.argsort(times, kind="stable")
    if limit:
        order = order[:limit]
    kind_of = np.concatenate([[k] * t.num_rows for k, t in parts])[order].tolist()
    return kind_of, _merge([t for _, t in parts], order)


def _as_text(table: pa.Table, name: str) -> pa.ChunkedArray:
    if name not in table.column_names:
        return pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
    if name == "event_timestamp":
        return pa.chunked_array([pa.array(column_us(table.column(name)), pa.int64()).cast(pa.string())])
    return table.column(name).cast(pa.string())


def _merge(tables: list[pa.Table], order: np.ndarray) -> pa.Table:
    """All columns as text (absent ones null), rows in ``order`` of the concatenation."""
    names: list[str] = []
    for t in tables:
        names += [n for n in t.column_names if n not in names]
    columns = {}
    for n in names:
        merged = pa.chunked_array([c for t in tables for c in _as_text(t, n).chunks], pa.string())
        columns[n] = merged.take(pa.array(order))
    return pa.table(columns)


def replay(
    client: redis.Redis,
    source: Path,
    *,
    kinds: list[str] | None = None,
    speed: float | None = None,
    rate: float | None = None,
    limit: int | None = None,
    skip: int = 0,
    batch: int = 5_000,
    progress: Callable[[str], None] | None = None,
    streams: dict[str, str] | None = None,
    partitions: int = 1,
) -> int:
    """XADD the events under ``source`` to their streams (after the first ``skip`` of them, at
    most ``limit``), or to their partitions (``partitions`` > 1); returns how many events."""
    if speed and rate:
        raise ValueError("replay takes a speed or a rate, not both")
    streams = streams or STREAMS
    kinds = kinds or list(SCHEMAS)
    if partitions > 1:
        check_count(client, [streams[k] for k in kinds], partitions)
    kind_of, table = load_events(source, kinds, None if limit is None else skip + limit)
    if skip:
        kind_of, table = kind_of[skip:], table.slice(skip)
    if not kind_of:
        return 0
    t = np.asarray(table.column("event_timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    rows = encode_table(table)
    paced = bool(speed or rate)
    if paced:  # moved onto the wall clock from now on (after encoding: no burst of events already due)
        t = now_us() + (((t - t[0]) / speed) if speed else np.arange(len(t)) * (1e6 / rate)).astype(np.int64)
    sent, last_report = 0, time.monotonic()
    while sent < len(rows):
        if paced:
            due = int(np.searchsorted(t, now_us(), "right"))
            if due <= sent:
                time.sleep(min(max((t[sent] - now_us()) / 1e6, 0.0005), 0.05))
                continue
            end = min(due, sent + batch)
        else:
            end = min(sent + batch, len(rows))
        pipe = client.pipeline(transaction=False)
        for i in range(sent, end):
            kind = kind_of[i]
            if paced:
                rows[i]["event_timestamp"] = str(t[i])
            for stream in [streams[kind]] if partitions == 1 else routes(streams[kind], kind, rows[i], partitions):
                pipe.xadd(stream, rows[i])
        pipe.execute()
        sent = end
        if progress and time.monotonic() - last_report >= 2:
            progress(f"replayed {sent:,} of {len(rows):,} events")
            last_report = time.monotonic()
    if progress:
        progress(f"replayed {sent:,} events")
    return sent
