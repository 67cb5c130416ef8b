"""Incremental per-entity window state: how the stream processor computes a live step's rows.

For each view, ``ViewWindows`` keeps per entity (``EntityWindows``) its events that can
still matter, sorted in the view's event order, the instant ``at`` its aggregates reflect,
and one incremental operator per aggregate of the view (``featurelib.aggregations``).
Advancing an entity to an instant ``T`` applies, in event order, the events entering
(``t <= T``), then per window ``w`` the events leaving (``t <= T - w``): a window is a FIFO
queue, so every operator sees deletions in the order of its updates. A row is emitted at
each change point (an event time, or an event time plus a window), exactly as the batch
engine emits them, and derived with the same ``derive_*``.

* **Cost.** A step costs what it touches: the entities with new events, and those whose
  change points fell due (a heap of each entity's next change point), each advanced by
  the events entering and leaving since its last change point.
* **Out of order.** An accepted event at or before an entity's ``at`` rebuilds that
  entity's aggregates from its events (``rebuild``), then its rows from the event on are
  emitted again: values never depend on arrival order.
* **Forgetting.** Events that left every window and can no longer be needed by a late
  event (``forget``) are dropped; an entity with none left is forgotten.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from featurelib.engine import output_schema
from featurelib.semantics import ViewSemantics
from featurelib.timeutil import column_us


class EntityWindows:
    """One entity's events (sorted), their times, and its operators' state as of ``at``
    (``None``: not computed yet). ``hi``: events entered; ``lo[j]``: events that left window j."""

    __slots__ = ("events", "times", "at", "hi", "lo", "ops")

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.times: list[int] = []
        self.at: int | None = None
        self.hi = 0
        self.lo: list[int] = []
        self.ops: list = []


class ViewWindows:
    """Incremental rows of one view."""

    def __init__(self, view: ViewSemantics):
        self.view = view
        self.fields: tuple[str, ...] = view.columns  # event tuples: these columns, sort keys first
        self.ties = len(view.sort_keys)
        self.offsets = view.change_offsets
        self.windows = list(self.offsets[1:])
        self.by_window = [[i for i, a in enumerate(view.aggregations) if w in a.windows] for w in self.windows]
        self.entities: dict[str, EntityWindows] = {}
        self._due: list[tuple[int, str]] = []  # (next change point, entity), with stale entries
        self._idle: list[tuple[int, str]] = []  # (newest event time, entity) of entities without change points
        self.keep_after: int | None = None

    # ------------------------------------------------------------------ events in

    def load(self, events: pa.Table, clock_us: int) -> None:
        """Start from ``events`` (all of the view's entities' buffered events), at ``clock_us``:
        every change point up to it is taken as emitted. Each entity's state is computed now,
        so the first live steps cost no more than later ones."""
        self.entities.clear()
        self._due, self._idle = [], []
        if events.num_rows:
            events = events.sort_by([(c, "ascending") for c in [self.view.join_key, *self.view.sort_keys]])
        for entity, tuples in self._tuples(events).items():
            st = self.entities[entity] = EntityWindows()
            st.events, st.times = tuples, [e[0] for e in tuples]
            self.rebuild(st, clock_us)
            self._reschedule(entity, st, self._next(st))

    def add(self, events: pa.Table) -> dict[str, int]:
        """Insert accepted events; returns the earliest new event time per entity."""
        earliest: dict[str, int] = {}
        for entity, tuples in self._tuples(events).items():
            st = self.entities.get(entity)
            if st is None:
                st = self.entities[entity] = EntityWindows()
            for e in tuples:
                key = e[:self.ties]
                if not st.events or st.events[-1][:self.ties] <= key:
                    st.events.append(e)
                    st.times.append(e[0])
                else:
                    at = bisect_right(st.events, key, key=lambda x: x[:self.ties])
                    st.events.insert(at, e)
                    st.times.insert(at, e[0])
                if e[0] < earliest.get(entity, e[0] + 1):
                    earliest[entity] = e[0]
        return earliest

    def _tuples(self, events: pa.Table) -> dict[str, list[tuple]]:
        """Events as tuples of ``fields`` (integers null as 0, as the batch engine reads them),
        grouped by entity in the given order."""
        columns = []
        for name in self.fields:
            column = events.column(name)
            if name == "event_timestamp":
                columns.append(column_us(column).tolist())
            else:
                columns.append((column.fill_null(0) if pa.types.is_integer(column.type) else column).to_pylist())
        out: dict[str, list[tuple]] = {}
        for entity, e in zip(events.column(self.view.join_key).to_pylist(), zip(*columns)):
            out.setdefault(entity, []).append(e)
        return out

    # ------------------------------------------------------------------ rows out

    def due(self, now_us: int) -> list[str]:
        """Entities with a change point at or before ``now_us`` (popped from the schedule)."""
        out = []
        while self._due and self._due[0][0] <= now_us:
            out.append(heapq.heappop(self._due)[1])
        return out

    def next_change_point(self) -> int | None:
        return self._due[0][0] if self._due else None

    def rows(self, lows: dict[str, int], now_us: int) -> pa.Table | None:
        """For each entity, its rows at change points in ``[low, now_us]``, sorted by (entity, T);
        None when no entity is affected."""
        if not lows:
            return None
        ids: list[str] = []
        times: list[int] = []
        values: list[tuple] = []
        for entity in sorted(lows):
            st = self.entities.get(entity)
            if st is None:
                continue
            low = lows[entity]
            if st.at is None or st.at >= low:
                self.rebuild(st, low - 1)
            point = self._next(st)
            while point is not None and point <= now_us:
                self._advance(st, point)
                if point >= low:
                    ids.append(entity)
                    times.append(point)
                    values.append(tuple(v for op in st.ops for v in op.result()))
                point = self._next(st)
            self._forget_old(st)
            self._reschedule(entity, st, point)
        return self._table(ids, times, values)

    def _table(self, ids: list[str], times: list[int], values: list[tuple]) -> pa.Table:
        names = self.view.aggregate_names
        columns = list(zip(*values)) if values else [()] * len(names)
        aggregates = {}
        for name, column in zip(names, columns):
            first = column[0] if column else 0
            aggregates[name] = column if isinstance(first, list) else np.array(column, np.float64 if isinstance(
                first, float) else np.int64)
        features = self.view.derive(aggregates)
        schema = output_schema(self.view)
        return pa.Table.from_arrays(
            [pa.array(ids, pa.string()), pa.array(times, pa.int64()).cast(schema.field(1).type)]
            + [features[f] for f in self.view.features], schema=schema)

    # ------------------------------------------------------------------ one entity

    def rebuild(self, st: EntityWindows, at_us: int) -> None:
        """Recompute the entity's aggregates at ``at_us`` from its events."""
        st.ops = [a.state(self.fields) for a in self.view.aggregations]
        gone = bisect_right(st.times, at_us - self.windows[-1])  # events that left every window
        st.hi, st.lo, st.at = gone, [gone] * len(self.windows), None
        self._advance(st, at_us)

    def _advance(self, st: EntityWindows, t_us: int) -> None:
        events, times, ops = st.events, st.times, st.ops
        hi = bisect_right(times, t_us, st.hi)
        for e in events[st.hi:hi]:
            for op in ops:
                op.update(e)
        st.hi = hi
        for j, w in enumerate(self.windows):
            lo0 = st.lo[j]
            lo = bisect_right(times, t_us - w, lo0)
            if lo > lo0:
                group = [ops[i] for i in self.by_window[j]]
                for e in events[lo0:lo]:
                    for op in group:
                        op.delete(e, w)
                st.lo[j] = lo
        st.at = t_us

    def _next(self, st: EntityWindows) -> int | None:
        """The entity's first change point after ``at``: the next event entering or leaving."""
        times, n = st.times, len(st.times)
        best = times[st.hi] if st.hi < n else None
        for w, lo in zip(self.windows, st.lo):
            if lo < n and (best is None or times[lo] + w < best):
                best = times[lo] + w
        return best

    def _reschedule(self, entity: str, st: EntityWindows, point: int | None) -> None:
        if point is not None:
            heapq.heappush(self._due, (point, entity))
        elif st.times:
            heapq.heappush(self._idle, (st.times[-1], entity))

    # ------------------------------------------------------------------ forgetting

    def forget(self, keep_after_us: int) -> int:
        """Forget entities whose events are all at or before ``keep_after_us`` and left every
        window; later, drop such events of the entities advanced. Returns entities forgotten."""
        self.keep_after = keep_after_us
        forgotten = 0
        while self._idle and self._idle[0][0] <= keep_after_us:
            _, entity = heapq.heappop(self._idle)
            st = self.entities.get(entity)
            if st is not None and (not st.times or st.times[-1] <= keep_after_us):  # else it has newer events
                del self.entities[entity]
                forgotten += 1
        return forgotten

    def _forget_old(self, st: EntityWindows) -> None:
        if self.keep_after is None or not st.lo or not st.times or st.times[0] > self.keep_after:
            return
        k = min(bisect_right(st.times, self.keep_after), *st.lo)
        if k:
            del st.events[:k], st.times[:k]
            st.hi -= k
            st.lo = [lo - k for lo in st.lo]


def entity_lows(earliest: dict[str, int], due: Iterable[str], before_us: int) -> dict[str, int]:
    """Per affected entity, the first instant whose row may have changed: its earliest new
    event, or ``before_us + 1`` (change points up to ``before_us`` were emitted)."""
    lows = {e: min(t, before_us + 1) for e, t in earliest.items()}
    for entity in due:
        lows.setdefault(entity, before_us + 1)
    return lows
