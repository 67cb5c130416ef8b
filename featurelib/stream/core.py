"""Event-time computation of feature rows from a stream of events (no I/O).

``StreamCore.step`` takes newly read events and the processor's clock and returns
every feature row whose value may have changed, computed by the batch engine
(``featurelib.engine.compute_view``) over the buffered events of the affected
entities, so stream and batch agree bit for bit by construction.

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
from featurelib.engine import _us, compute_view
from featurelib.stream.buffer import EventBuffer


@dataclass
class StepResult:
    accepted: dict[str, pa.Table] = field(default_factory=dict)
    too_late: dict[str, pa.Table] = field(default_factory=dict)
    duplicates: int = 0
    rows: dict[str, pa.Table] = field(default_factory=dict)  # view -> emitted rows, sorted by (entity, T)
    now_us: int = 0


class StreamCore:
    def __init__(self, lateness_us: int, now_us: int = 0, kinds: tuple[str, ...] = (s.TRANSACTIONS, s.CLICKSTREAM)):
        self.lateness_us = lateness_us
        self.buffers = {k: EventBuffer(k) for k in kinds}
        self.clock = {k: now_us for k in kinds}

    @property
    def now_us(self) -> int:
        return max(self.clock.values())

    def classify(self, kind: str, events: pa.Table, arrival_us: np.ndarray | None) -> np.ndarray:
        """True for events that are not too late (see the module docstring)."""
        t = _us(events.column("event_timestamp"))
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
                latest[kind] = max(latest[kind], int(_us(unique.column("event_timestamp")).max()))
            buffer.add(accepted)
            lowest_new[kind] = accepted
        for kind, buffer in self.buffers.items():
            now = max(self.clock[kind], now_us if now_us is not None else latest[kind])
            for view in buffer.views:
                rows = self._rows(view, buffer, lowest_new.get(kind), self.clock[kind], now)
                if rows is not None and rows.num_rows:
                    result.rows[view.name] = rows
            self.clock[kind] = now
        result.now_us = self.now_us
        return result

    def _rows(self, view: s.ViewSemantics, buffer: EventBuffer, new_events: pa.Table | None,
              before: int, now: int) -> pa.Table | None:
        """Rows of ``view`` at change points in ``(low(entity), now]`` for every affected entity,
        where ``low`` is the earliest new event of the entity, or ``before + 1`` if later or none."""
        key = view.join_key
        ids: list[pa.Array] = []
        lows: list[np.ndarray] = []
        if new_events is not None and new_events.num_rows:
            ids.extend(new_events.column(key).chunks)
            lows.append(np.minimum(_us(new_events.column("event_timestamp")), before + 1))
        exits = buffer.entities_with_change_points(view, before, now)
        if exits:
            ids.append(pa.array(exits, pa.string()))
            lows.append(np.full(len(exits), before + 1, dtype=np.int64))
        if not lows:
            return None
        low = (pa.table({"entity": pa.chunked_array(ids, pa.string()), "low": np.concatenate(lows)})
               .group_by("entity", use_threads=False).aggregate([("low", "min")]))
        entities, low_us = low.column("entity").combine_chunks(), low.column("low_min").to_numpy()
        rows = compute_view(view, buffer.events_of(view, entities.to_pylist()), since_us=int(low_us.min()), until_us=now)
        if rows.num_rows == 0:
            return rows
        row_low = low_us[pc.index_in(rows.column(key), value_set=entities).to_numpy()]
        keep = _us(rows.column("event_timestamp")) >= row_low
        return rows if keep.all() else rows.filter(pa.array(keep))

    def next_change_point(self) -> int | None:
        candidates = [b.next_change_point(self.clock[k]) for k, b in self.buffers.items()]
        candidates = [c for c in candidates if c is not None]
        return min(candidates) if candidates else None

    def trim(self, arrival_floor: dict[str, int] | None = None) -> int:
        """Forget events that can no longer affect a row the processor may (re)write.

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
            dropped += buffer.trim(floor - self.lateness_us - buffer.horizon_us)
        return dropped


def latest_rows(rows: pa.Table, key: str) -> pa.Table:
    """The last row of each entity (rows are sorted by entity, then time)."""
    ids = rows.column(key).combine_chunks()
    last = np.ones(rows.num_rows, dtype=bool)
    if rows.num_rows > 1:
        last[:-1] = np.asarray(pc.not_equal(ids[1:], ids[:-1]))
    return rows.filter(pa.array(last))
