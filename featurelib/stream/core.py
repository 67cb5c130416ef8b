"""Event-time computation of feature rows from a stream of events (no I/O).

``StreamCore.step`` takes newly read events and the processor's clock and returns
every feature row whose value may have changed, computed from the buffered events of
the affected entities by the batch engine (``featurelib.engine.compute_view``) or, for a
step touching few entities, by the brute-force reference of ``featurelib.semantics``
(``_reference_rows``). The tests hold both bit-identical to the batch job, which uses the
engine.

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
from featurelib.engine import compute_view, output_schema
from featurelib.stream.buffer import TRIM_SHARE, EventBuffer
from featurelib.timeutil import column_us

REFERENCE_MAX_ENTITIES = 1_000
"""Steps touching at most this many entities of a view compute its rows with the brute-force
reference (``_reference_rows``), larger ones with the vectorized batch engine."""
REFERENCE_MAX_COST = 4_000
"""... and whose change points times buffered events of their entity sum to at most this
(the reference's cost; beyond it the engine, about 1.5 ms per call, is faster)."""


@dataclass
class StepResult:
    accepted: dict[str, pa.Table] = field(default_factory=dict)
    too_late: dict[str, pa.Table] = field(default_factory=dict)
    duplicates: int = 0
    rows: dict[str, pa.Table] = field(default_factory=dict)  # view -> emitted rows, sorted by (entity, T)
    latest: dict[str, list[dict]] = field(default_factory=dict)  # view -> last row of each entity, when computed as dicts
    now_us: int = 0


class StreamCore:
    def __init__(self, lateness_us: int, now_us: int = 0, kinds: tuple[str, ...] = (s.TRANSACTIONS, s.CLICKSTREAM),
                 reference_max_entities: int = REFERENCE_MAX_ENTITIES, reference_max_cost: int = REFERENCE_MAX_COST):
        """``reference_max_entities`` and ``reference_max_cost``: when a step's rows are computed
        by the brute-force reference rather than the engine (defaults: the module's constants)."""
        self.lateness_us = lateness_us
        self.reference_max_entities, self.reference_max_cost = reference_max_entities, reference_max_cost
        self.buffers = {k: EventBuffer(k) for k in kinds}
        self.clock = {k: now_us for k in kinds}

    @property
    def now_us(self) -> int:
        return max(self.clock.values())

    def classify(self, kind: str, events: pa.Table, arrival_us: np.ndarray | None) -> np.ndarray:
        """True for events that are not too late (see the module docstring)."""
        t = column_us(events.column("event_timestamp"))
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
        lowest_new: dict[str, pa.Table] = {}
        latest = dict(self.clock)
        for kind, (events, arrival) in new.items():
            if events.num_rows == 0:
                continue
            buffer = self.buffers[kind]
            fresh = buffer.fresh(events)
            unique = events.filter(pa.array(fresh))
            result.duplicates += events.num_rows - unique.num_rows
            if arrival is not None:
                arrival = np.asarray(arrival)[fresh]
            ok = self.classify(kind, unique, arrival)
            accepted = unique.filter(pa.array(ok))
            result.accepted[kind] = accepted
            result.too_late[kind] = unique.filter(pa.array(~ok))
            if unique.num_rows:
                latest[kind] = max(latest[kind], int(column_us(unique.column("event_timestamp")).max()))
            buffer.add(accepted)
            lowest_new[kind] = accepted
        for kind, buffer in self.buffers.items():
            now = max(self.clock[kind], now_us if now_us is not None else latest[kind])
            for view in buffer.views:
                rows = self._rows(view, buffer, lowest_new.get(kind), self.clock[kind], now)
                last_rows = None
                if isinstance(rows, tuple):
                    rows, last_rows = rows
                if rows is not None and rows.num_rows:
                    result.rows[view.name] = rows
                    if last_rows is not None:
                        result.latest[view.name] = last_rows
            self.clock[kind] = now
        result.now_us = self.now_us
        return result

    def _rows(self, view: s.ViewSemantics, buffer: EventBuffer, new_events: pa.Table | None,
              before: int, now: int) -> pa.Table | tuple[pa.Table, list[dict]] | None:
        """Rows of ``view`` at change points in ``(low(entity), now]`` for every affected entity,
        where ``low`` is the earliest new event of the entity, or ``before + 1`` if later or none;
        with the last row of each entity as dicts when they were computed as dicts."""
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
        if len(entities) <= self.reference_max_entities:
            rows = _reference_rows(view, buffer, entities.to_pylist(), low_us.tolist(), now, self.reference_max_cost)
            if rows is not None:
                return rows
        rows = compute_view(view, buffer.events_of(view, entities.to_pylist()), since_us=int(low_us.min()), until_us=now)
        if rows.num_rows == 0:
            return rows
        row_low = low_us[pc.index_in(rows.column(key), value_set=entities).to_numpy()]
        keep = column_us(rows.column("event_timestamp")) >= row_low
        return rows if keep.all() else rows.filter(pa.array(keep))

    def next_change_point(self) -> int | None:
        candidates = [b.next_change_point(self.clock[k]) for k, b in self.buffers.items()]
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
            dropped += buffer.trim(floor - self.lateness_us - buffer.horizon_us, min_share)
        return dropped


def _reference_rows(view: s.ViewSemantics, buffer: EventBuffer, entities: list[str], low_us: list[int],
                    now: int, max_cost: int) -> tuple[pa.Table, list[dict]] | None:
    """The rows of ``_rows`` computed by ``semantics.REFERENCE`` at each change point in
    ``[low, now]`` of each entity, or None when that would cost more than the batch engine
    (many change points of entities with many events: an out-of-order event far back).

    Bit-identical to ``compute_view`` (tests/test_semantics.py checks the two on random
    events): a live step touches a few entities at a few instants, where the vectorized
    engine's fixed cost per call (about 1.5 ms per view) is most of the work."""
    order = sorted(range(len(entities)), key=entities.__getitem__)  # rows sorted by (entity, T), as compute_view's
    entities = [entities[i] for i in order]
    rows = buffer.rows_of(view.join_key, entities)
    # Every change point e + o in [low, now] of each entity, in one vectorized pass.
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    offsets = np.asarray(view.change_offsets, dtype=np.int64)
    owner = np.repeat(np.repeat(np.arange(len(entities)), lengths), len(offsets))
    points = (buffer.t[np.concatenate(rows)][:, None] + offsets).ravel()
    wanted = (points >= np.asarray(low_us, dtype=np.int64)[order][owner]) & (points <= now)
    owner, points = owner[wanted], points[wanted]
    if int((lengths[owner]).sum()) > max_cost:
        return None
    sort = np.lexsort((points, owner))
    owner, points = owner[sort], points[sort]
    distinct = np.ones(len(points), dtype=bool)
    distinct[1:] = (owner[1:] != owner[:-1]) | (points[1:] != points[:-1])
    records = buffer.records(rows)  # converted only now that the reference is the cheaper way
    reference, key = s.REFERENCE[view.name], view.join_key
    owner, points = owner[distinct], points[distinct]
    out = [{key: entities[i], "event_timestamp": t, **reference(records[i], t)}
           for i, t in zip(owner.tolist(), points.tolist())]
    last = np.ones(len(owner), dtype=bool)
    last[:-1] = owner[1:] != owner[:-1]
    return pa.Table.from_pylist(out, schema=output_schema(view)), [out[i] for i in np.flatnonzero(last).tolist()]


def latest_rows(rows: pa.Table, key: str) -> pa.Table:
    """The last row of each entity (rows are sorted by entity, then time)."""
    ids = rows.column(key).combine_chunks()
    last = np.ones(rows.num_rows, dtype=bool)
    if rows.num_rows > 1:
        last[:-1] = np.asarray(pc.not_equal(ids[1:], ids[:-1]))
    return rows.filter(pa.array(last))
