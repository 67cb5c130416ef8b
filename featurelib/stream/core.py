"""Event-time computation of feature rows from a stream of events (no I/O).

``StreamCore.step`` takes newly read events and the processor's clock and returns every
feature row whose value may have changed. A live step (fewer than ``vectorized_from``
events on a stream) advances the incremental per-entity window state of
``featurelib.stream.windows``: it costs what the step touches. A larger step (a backlog)
is a batch: the vectorized engine (``featurelib.engine.compute_view``) computes the rows
of the affected entities from the buffered events (``featurelib.stream.buffer``), and the
incremental state is loaded again from the buffer at the next live step. The tests hold
both bit-identical to the batch job, which uses the engine.

Each stream has its own clock ``now`` (microseconds): the wall clock (live streams)
or the highest event time seen so far on that stream (replays, tests). The streams feed
disjoint feature views, so a sparse stream (transactions) and a dense one (clickstream)
read in equal batches advance independently. Rows are emitted for change points
``T <= now``:

* for entities with new events: every row from the earliest new event on (an
  out-of-order event corrects the rows after it);
* for entities with a change point in ``(previous now, now]`` (a window exit, or an
  event stamped ahead of the clock whose time has come): the rows in that interval.

**Lateness.** An event is accepted while its timestamp is at least the clock at its
arrival minus ``lateness_us``; the clock at arrival is the wall time Redis received it
(live) or the highest event time seen before it (event time). A later event is *too
late*: it is not applied to any feature and not landed with the raw events, so online
values, offline values and training data all agree without it; the processor puts it
aside in a quarantine partition and counts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.engine import compute_view
from featurelib.stream.buffer import TRIM_SHARE, EventBuffer
from featurelib.stream.windows import ViewWindows, entity_lows
from featurelib.timeutil import column_us

VECTORIZED_FROM = 2_000
"""Steps with at least this many new events on a stream compute its rows with the vectorized
engine; smaller ones advance the incremental window state."""


@dataclass
class StepResult:
    accepted: dict[str, pa.Table] = field(default_factory=dict)
    too_late: dict[str, pa.Table] = field(default_factory=dict)
    duplicates: int = 0
    rows: dict[str, pa.Table] = field(default_factory=dict)  # view -> emitted rows, sorted by (entity, T)
    now_us: int = 0


class StreamCore:
    def __init__(self, lateness_us: int, now_us: int = 0, kinds: tuple[str, ...] = (s.TRANSACTIONS, s.CLICKSTREAM),
                 vectorized_from: int = VECTORIZED_FROM):
        """``vectorized_from``: steps with at least this many new events on a stream are computed
        by the vectorized engine (0: every step; a huge number: none)."""
        self.lateness_us = lateness_us
        self.vectorized_from = vectorized_from
        self.buffers = {k: EventBuffer(k) for k in kinds}
        self.clock = {k: now_us for k in kinds}
        self.windows: dict[str, dict[str, ViewWindows] | None] = {k: None for k in kinds}
        """Per stream, the incremental state of its views; None until loaded from the buffer."""

    def add_lane(self, name: str, kind: str, join_key: str) -> None:
        """Compute, as stream ``name``, the views of ``kind`` with ``join_key`` (one partition of
        a partitioned stream, ``featurelib.stream.partitioned``), from an empty state."""
        self.buffers[name] = EventBuffer(kind, join_key)
        self.clock[name] = 0
        self.windows[name] = None

    def drop_lane(self, name: str) -> None:
        """Forget stream ``name`` and its state (a partition given to another processor)."""
        for state in (self.buffers, self.clock, self.windows):
            state.pop(name, None)

    @property
    def now_us(self) -> int:
        return max(self.clock.values(), default=0)

    def classify(self, kind: str, t: np.ndarray, arrival_us: np.ndarray | None) -> np.ndarray:
        """True for events (times ``t``, µs) that are not too late (see the module docstring)."""
        if arrival_us is not None:
            clock = np.asarray(arrival_us, dtype=np.int64)
        else:  # event time: the highest timestamp seen on this stream before each event
            before = np.maximum.accumulate(np.concatenate([[self.clock[kind]], t]))[:-1]
            clock = np.maximum(before, self.clock[kind])
        return t >= clock - self.lateness_us

    def step(self, new: dict[str, tuple[pa.Table, np.ndarray | None]], now_us: int | None = None) -> StepResult:
        """Apply newly read events (per stream: table, arrival times or None for event time)
        and advance every stream's clock to ``now_us`` (default: the stream's highest event
        time seen)."""
        result = StepResult()
        latest = dict(self.clock)
        for kind, buffer in self.buffers.items():
            events, arrival = new.get(kind, (None, None))
            accepted = self._accept(kind, events, arrival, result, latest) if events is not None else None
            now = max(self.clock[kind], now_us if now_us is not None else latest[kind])
            n = 0 if accepted is None else accepted.num_rows
            if n >= self.vectorized_from or (n == 0 and self.windows[kind] is None):  # a backlog, or nothing new
                if n:
                    buffer.add(accepted)
                    self.windows[kind] = None  # loaded again from the buffer at the next live step
                rows = {view.name: self._vectorized_rows(view, buffer, accepted, self.clock[kind], now)
                        for view in buffer.views}
            else:
                rows = self._incremental_rows(kind, accepted, now)
            for name, r in rows.items():
                if r is not None and r.num_rows:  # partitions of one view: disjoint entities, each sorted
                    result.rows[name] = pa.concat_tables([result.rows[name], r]) if name in result.rows else r
            self.clock[kind] = now
        result.now_us = self.now_us
        return result

    def _accept(self, kind: str, events: pa.Table, arrival: np.ndarray | None, result: StepResult,
                latest: dict[str, int]) -> pa.Table | None:
        """The new events that are neither duplicates nor too late (recorded in ``result``)."""
        if events.num_rows == 0:
            return None
        fresh = self.buffers[kind].fresh(events)
        unique = events if fresh.all() else events.filter(pa.array(fresh))  # a live step: usually all
        result.duplicates += events.num_rows - unique.num_rows
        if arrival is not None:
            arrival = np.asarray(arrival)[fresh]
        t = column_us(unique.column("event_timestamp"))
        ok = self.classify(kind, t, arrival)
        in_time = bool(ok.all())
        accepted = unique if in_time else unique.filter(pa.array(ok))
        result.accepted[kind] = accepted
        result.too_late[kind] = unique.slice(0, 0) if in_time else unique.filter(pa.array(~ok))
        if unique.num_rows:
            latest[kind] = max(latest[kind], int(t.max()))
        return accepted

    def load(self, kind: str) -> None:
        """Compute the incremental window state of ``kind``'s views from the buffered events, at
        the stream's clock (the first live step after a start or a backlog does it otherwise)."""
        buffer = self.buffers[kind]
        self.windows[kind] = {view.name: ViewWindows(view) for view in buffer.views}
        for windows in self.windows[kind].values():
            windows.load(buffer.table, self.clock[kind])

    def _incremental_rows(self, kind: str, accepted: pa.Table | None, now: int) -> dict[str, pa.Table]:
        buffer, before = self.buffers[kind], self.clock[kind]
        if self.windows[kind] is None:
            self.load(kind)
        out = {}
        if accepted is not None and accepted.num_rows:
            buffer.add(accepted)
        for name, windows in self.windows[kind].items():
            earliest = windows.add(accepted) if accepted is not None and accepted.num_rows else {}
            out[name] = windows.rows(entity_lows(earliest, windows.due(now), before), now)
        return out

    def _vectorized_rows(self, view: s.ViewSemantics, buffer: EventBuffer, new_events: pa.Table | None,
                         before: int, now: int) -> pa.Table | None:
        """Rows of ``view`` at change points in ``(low(entity), now]`` for every affected entity,
        where ``low`` is the earliest new event of the entity, or ``before + 1`` if later or none."""
        key = view.join_key
        ids: list[pa.Array] = []
        lows: list[np.ndarray] = []
        if new_events is not None and new_events.num_rows:
            ids.extend(new_events.column(key).chunks)
            lows.append(np.minimum(column_us(new_events.column("event_timestamp")), before + 1))
        exits = buffer.entities_with_change_points(view, before, now)
        if exits:
            ids.append(pa.array(exits, pa.string()))
            lows.append(np.full(len(exits), before + 1, dtype=np.int64))
        if not lows:
            return None
        encoded = pc.dictionary_encode(pa.chunked_array(ids, pa.string()).combine_chunks())
        entities = encoded.dictionary
        low_us = np.full(len(entities), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(low_us, np.asarray(encoded.indices, dtype=np.int64), np.concatenate(lows))
        rows = compute_view(view, buffer.events_of(view, entities.to_pylist()), since_us=int(low_us.min()), until_us=now)
        if rows.num_rows == 0:
            return rows
        row_low = low_us[pc.index_in(rows.column(key), value_set=entities).to_numpy()]
        keep = column_us(rows.column("event_timestamp")) >= row_low
        return rows if keep.all() else rows.filter(pa.array(keep))

    def next_change_point(self) -> int | None:
        candidates = []
        for kind, buffer in self.buffers.items():
            state = self.windows[kind]
            if state is None:
                candidates.append(buffer.next_change_point(self.clock[kind]))
            else:
                candidates += [w.next_change_point() for w in state.values()]
        candidates = [c for c in candidates if c is not None]
        return min(candidates) if candidates else None

    def trim(self, arrival_floor: dict[str, int] | None = None, min_share: float = TRIM_SHARE) -> int:
        """Forget events that can no longer affect a row the processor may (re)write, once
        they are ``min_share`` of a stream's buffer (see ``EventBuffer.trim``).

        Event time: nothing earlier than ``clock - lateness`` can still be accepted. Wall
        clock: acceptance depends on arrival, so the floor is the earliest arrival any
        unread entry can have (``arrival_floor``, per stream); without one, nothing is
        trimmed."""
        dropped = 0
        for kind, buffer in self.buffers.items():
            floor = self.clock[kind]
            if arrival_floor is not None:
                if kind not in arrival_floor:
                    continue
                floor = min(floor, arrival_floor[kind])
            keep_after = floor - self.lateness_us - buffer.horizon_us
            dropped += buffer.trim(keep_after, min_share)
            for windows in (self.windows[kind] or {}).values():
                windows.forget(keep_after)
        return dropped
