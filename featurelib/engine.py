"""Vectorized computation of feature rows from raw events (the engine both pipelines share).

``compute_view(view, events)`` returns one row per entity and change point, with
the values that ``featurelib.semantics`` defines. It is a pure function of the
event set: the batch job calls it on all events, the stream processor on the
buffered events of the entities a micro-batch touched.

How it works. Each view's aggregates are specs (``featurelib.semantics``), and each
operation has a vectorized face (``featurelib.aggregations``) written with the sorted
timeline of ``featurelib.timeline``: events sorted by (entity, time) under one composite
int64 key, one run of keys per change offset, merged; every aggregate is evaluated
column-wise at every distinct key at once. All arithmetic on aggregates is integer;
floats appear only in ``semantics.derive_*``, and in one exactly rounded conversion (the
sum of squared amounts, below).

Exact integer arithmetic. Every view's largest change offset is 24 h > 2**36 µs, so a
chunk whose composite keys fit (``(events + 1) * span < _KEY_LIMIT = 2**58``) has fewer
than ``_MAX_CHUNK_EVENTS = 2**22`` events (checked too), and no window holds more. With
the raw-event schema's ranges (``featurelib.raw_events``: amounts 0 to 1e9 cents, dwell
0 to 86.4e6 ms, scroll 0 to 100) every window sum is far inside int64, and below 2**53,
so it converts to float64 exactly: cents < 2**22 * 2**30 = 2**52, dwell < 2**22 * 2**27,
counts < 2**22, the sum over countries of squared counts < 2**44. The one exception is
the sum of squared cents (``card_profile_24h``): one square is up to 1e18 and ten exceed
int64. It is kept as two exact window sums, of ``c*c >> 32`` (< 2**28 each, sums
< 2**50) and of ``c*c & (2**32 - 1)`` (sums < 2**54), and ``timeline.float_of`` turns
``hi * 2**32 + lo`` into the float64 nearest to the exact integer, as Python's
``float(int)`` does in the reference. Inputs beyond what these bounds allow (amounts
above ``timeline.MAX_ABS_AMOUNT``, dwell or scroll above ``timeline.MAX_ABS_VALUE``; the schema allows
neither) raise ``ValueError`` instead of wrapping around.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.timeline import Chunk, Timeline, Window
from featurelib.timeutil import column_us

_KEY_LIMIT = 1 << 58  # composite keys, shifted by Timeline.RUN_BITS, stay inside int64
_MAX_CHUNK_EVENTS = 1 << 22
"""Fewer events than this per chunk (implied by ``_KEY_LIMIT`` for windows of 24 h, checked
anyway): it bounds every window count, and so every window sum."""


def _aggregates(view: s.ViewSemantics, chunk: Chunk) -> tuple[Timeline, dict]:
    """Every aggregate of ``view`` at every change point of the chunk's entities: one run of
    event keys per change offset, plus the runs the operators add, merged into one timeline."""
    offsets = view.change_offsets
    runs = [chunk.key + o for o in offsets]
    evaluators = [a.plan(chunk, runs) for a in view.aggregations]
    tl = Timeline(runs)
    windows = {o: Window(tl, i) for i, o in enumerate(offsets) if o}
    out: dict = {}
    for evaluate in evaluators:
        out.update(evaluate(tl, windows))
    return tl, out


@functools.cache
def output_schema(view: s.ViewSemantics) -> pa.Schema:
    """The Parquet schema of a view's feature rows."""
    sample = view.derive({k: np.zeros(0, np.int64) for k in view.aggregate_names})
    return pa.schema(
        [(view.join_key, pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        + [(name, sample[name].type) for name in view.features]
    )


def sort_events(view: s.ViewSemantics, events: pa.Table) -> pa.Table:
    """Sort raw events the way ``compute_view`` expects them."""
    return events.sort_by([(c, "ascending") for c in [view.join_key, *view.sort_keys]])


def _split(view: s.ViewSemantics, events: pa.Table, entity: np.ndarray, t: np.ndarray,
           since_us: int | None, until_us: int | None) -> pa.Table:
    """Compute a chunk too large for composite int64 keys in two halves.

    Several entities: split at an entity boundary. One entity: split its time at ``m``.
    A value at ``T`` depends only on events in ``(T - max_offset, T]`` (every window,
    session horizon and "latest event" lookup reaches back at most the largest change
    offset), and every change point ``T >= m`` comes from an event at or after
    ``m - max_offset``. So rows before ``m`` come from the events before ``m``, and rows
    from ``m`` on from the events from ``m - max_offset`` on: exact, not approximate.
    """
    def part(rows: slice, lo: int | None, hi: int | None) -> pa.Table:
        since = lo if since_us is None else max(since_us, lo) if lo is not None else since_us
        until = hi if until_us is None else min(until_us, hi) if hi is not None else until_us
        return compute_view(view, events.slice(rows.start, rows.stop - rows.start), presorted=True,
                            since_us=since, until_us=until)

    n = len(t)
    if entity[0] != entity[-1]:
        mid = int(np.searchsorted(entity, entity[n // 2]))
        if mid == 0:
            mid = int(np.searchsorted(entity, entity[0], "right"))
        return pa.concat_tables([part(slice(0, mid), None, None), part(slice(mid, n), None, None)])
    lookback = max(view.change_offsets)
    m = int(t[n // 2])
    before = int(np.searchsorted(t, m, "left"))
    after = int(np.searchsorted(t, m - lookback, "left"))
    if before == 0 or after == 0:
        raise ValueError(f"{view.join_key} {events.column(view.join_key)[0]} has {n:,} events within "
                         f"{(int(t[-1]) - int(t[0])) / 3.6e9:.1f} h: too dense to compute exactly in one chunk")
    return pa.concat_tables([part(slice(0, before), None, m - 1), part(slice(after, n), m, None)])


def compute_view(
    view: s.ViewSemantics,
    events: pa.Table,
    *,
    presorted: bool = False,
    since_us: int | None = None,
    until_us: int | None = None,
) -> pa.Table:
    """Feature rows of ``view`` for all entities in ``events``.

    ``events`` holds raw events (``featurelib.raw_events``; only the columns the view
    needs are read). Entities must be complete: every event of an entity that can
    affect the rows wanted. Rows are returned for change points ``since_us <= T <=
    until_us`` (all when not given), sorted by (entity, T).
    """
    schema = output_schema(view)
    if events.num_rows == 0:
        return schema.empty_table()
    if not presorted:
        events = sort_events(view, events)
    t = column_us(events.column("event_timestamp"))
    entity_col = events.column(view.join_key).combine_chunks()
    change = np.ones(len(t), bool)
    change[1:] = np.asarray(pc.not_equal(entity_col[1:], entity_col[:-1]).fill_null(True))
    entity = np.cumsum(change) - 1
    t0 = int(t.min())
    span = int(t.max()) - t0 + max(view.change_offsets) + 1
    if (len(t) + 1) * span >= _KEY_LIMIT or len(t) >= _MAX_CHUNK_EVENTS:
        return _split(view, events, entity, t, since_us, until_us)
    chunk = Chunk(table=events, entity=entity, t=t, t0=t0, span=span)
    tl, aggregates = _aggregates(view, chunk)
    row_entity, row_t = tl.keys // chunk.span, tl.keys % chunk.span + chunk.t0
    keep = np.ones(len(row_t), bool)
    if since_us is not None:
        keep &= row_t >= since_us
    if until_us is not None:
        keep &= row_t <= until_us
    if not keep.all():
        idx = np.flatnonzero(keep)
        aggregates = {k: (v.take(pa.array(idx)) if isinstance(v, (pa.Array, pa.ChunkedArray)) else v[idx])
                      for k, v in aggregates.items()}
        row_entity, row_t = row_entity[idx], row_t[idx]
    features = view.derive(aggregates)
    first_row = np.flatnonzero(change)
    ids = entity_col.take(pa.array(first_row[row_entity]))
    columns = [ids, pa.array(row_t, pa.int64()).cast(pa.timestamp("us", tz="UTC"))] + [features[f] for f in view.features]
    return pa.Table.from_arrays(columns, schema=schema)
