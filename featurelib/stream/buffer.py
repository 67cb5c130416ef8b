"""The accepted events of one stream that can still affect a feature row.

Rows at instants the processor may still (re)write depend only on events within the
largest change offset of the stream's views (24 hours) before them, so events older
than ``now - lateness - horizon`` are dropped. Events are kept sorted by time, which
makes "which entities have a change point in (a, b]" a binary search per offset.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.engine import _us
from featurelib.stream.events import ID_FIELD, SCHEMAS, conform


class EventBuffer:
    def __init__(self, kind: str):
        self.kind = kind
        self.views = [v for v in s.VIEWS.values() if v.events == kind]
        self.horizon_us = max(max(v.change_offsets) for v in self.views)
        self.table = SCHEMAS[kind].empty_table()
        self.t = np.empty(0, np.int64)
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return self.table.num_rows

    def fresh(self, events: pa.Table) -> np.ndarray:
        """False for events whose id is already buffered or repeated earlier in ``events``."""
        keep, seen = [], set()
        for i in events.column(ID_FIELD[self.kind]).to_pylist():
            keep.append(i not in self._ids and i not in seen)
            seen.add(i)
        return np.array(keep, dtype=bool)

    def add(self, events: pa.Table) -> None:
        if events.num_rows == 0:
            return
        self._ids.update(events.column(ID_FIELD[self.kind]).to_pylist())
        t = _us(events.column("event_timestamp"))
        table = pa.concat_tables([self.table, conform(events, self.table.schema)])
        all_t = np.concatenate([self.t, t])
        if len(self.t) and t.min() < self.t[-1] or np.any(np.diff(t) < 0):
            order = np.argsort(all_t, kind="stable")
            table, all_t = table.take(pa.array(order)), all_t[order]
        self.table, self.t = table, all_t

    def trim(self, keep_after_us: int) -> int:
        """Forget events at or before ``keep_after_us``; returns how many."""
        cut = int(np.searchsorted(self.t, keep_after_us, "right"))
        if cut:
            dropped = self.table.slice(0, cut).column(ID_FIELD[self.kind]).to_pylist()
            self._ids.difference_update(dropped)
            self.table, self.t = self.table.slice(cut), self.t[cut:]
        return cut

    def entities_with_change_points(self, view: s.ViewSemantics, after_us: int, until_us: int) -> pa.Array:
        """Entities with a change point ``e + o`` in ``(after_us, until_us]``."""
        parts = []
        for o in view.change_offsets:
            lo = int(np.searchsorted(self.t, after_us - o, "right"))
            hi = int(np.searchsorted(self.t, until_us - o, "right"))
            if hi > lo:
                parts.append(self.table.column(view.join_key).slice(lo, hi - lo))
        if not parts:
            return pa.array([], pa.string())
        return pc.unique(pa.chunked_array(parts).combine_chunks())

    def next_change_point(self, after_us: int) -> int | None:
        """The earliest change point of any view of this stream after ``after_us``."""
        best = None
        for o in sorted({o for v in self.views for o in v.change_offsets}):
            i = int(np.searchsorted(self.t, after_us - o, "right"))
            if i < len(self.t):
                candidate = int(self.t[i]) + o
                best = candidate if best is None else min(best, candidate)
        return best

    def events_of(self, view: s.ViewSemantics, entities: pa.Array) -> pa.Table:
        if len(entities) == 0:
            return self.table.slice(0, 0)
        return self.table.filter(pc.is_in(self.table.column(view.join_key), value_set=entities))
