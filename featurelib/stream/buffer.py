"""The accepted events of one stream that can still affect a feature row.

Rows at instants the processor may still (re)write depend only on events within the
largest change offset of the stream's views (24 hours) before them, so older events are
dropped (``trim``). Rows are kept in arrival order, with two indexes that make each step
cost what it touches rather than the size of the buffer:

* ``by_time``: row numbers sorted by event time, so "which entities have a change point in
  (a, b]" is a binary search per offset;
* per join key, entity -> row numbers, so the events of the affected entities are a lookup.
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
        self.keys = sorted({v.join_key for v in self.views})
        self._reset(SCHEMAS[kind].empty_table())

    def _reset(self, table: pa.Table) -> None:
        """Take ``table`` (arrival order) as the whole buffer and rebuild every index."""
        self.table = table.combine_chunks()
        self.t = _us(self.table.column("event_timestamp")) if self.table.num_rows else np.empty(0, np.int64)
        self.by_time = np.argsort(self.t, kind="stable")
        self.t_sorted = self.t[self.by_time]
        self._rows: dict[str, dict[str, list[int]]] = {k: {} for k in self.keys}
        self._index(self.table, 0)
        self._ids: set[str] = set(self.table.column(ID_FIELD[self.kind]).to_pylist())

    def _index(self, table: pa.Table, first_row: int) -> None:
        for key in self.keys:
            rows = self._rows[key]
            if table.num_rows < 1000:
                for i, entity in enumerate(table.column(key).to_pylist(), start=first_row):
                    rows.setdefault(entity, []).append(i)
                continue
            # Large batches: group row numbers by entity with one sort instead of a dict step per row.
            encoded = pc.dictionary_encode(table.column(key).combine_chunks())
            codes = np.asarray(encoded.indices)
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.diff(codes[order])) + 1
            starts = np.concatenate([[0], bounds])
            entities = encoded.dictionary.to_pylist()
            for code, group in zip(codes[order[starts]].tolist(), np.split(order + first_row, bounds)):
                rows.setdefault(entities[code], []).extend(group.tolist())

    def __len__(self) -> int:
        return self.table.num_rows

    def fresh(self, events: pa.Table) -> np.ndarray:
        """False for events whose id is already buffered or repeated earlier in ``events``."""
        ids = events.column(ID_FIELD[self.kind]).to_pylist()
        if self._ids.isdisjoint(ids) and len(set(ids)) == len(ids):  # the usual case, without a step per event
            return np.ones(len(ids), dtype=bool)
        keep, seen = [], set()
        for i in ids:
            keep.append(i not in self._ids and i not in seen)
            seen.add(i)
        return np.array(keep, dtype=bool)

    def add(self, events: pa.Table) -> None:
        if events.num_rows == 0:
            return
        events = conform(events, self.table.schema)
        first = self.table.num_rows
        self._ids.update(events.column(ID_FIELD[self.kind]).to_pylist())
        self._index(events, first)
        t = _us(events.column("event_timestamp"))
        order = np.argsort(t, kind="stable")
        at = np.searchsorted(self.t_sorted, t[order], "right")
        self.by_time = np.insert(self.by_time, at, first + order)
        self.t_sorted = np.insert(self.t_sorted, at, t[order])
        self.t = np.concatenate([self.t, t])
        self.table = pa.concat_tables([self.table, events])
        if self.table.column(0).num_chunks > 32:  # take() on many small chunks is slow; copy once in a while
            self.table = self.table.combine_chunks()

    def trim(self, keep_after_us: int) -> int:
        """Forget events at or before ``keep_after_us``; returns how many."""
        cut = int(np.searchsorted(self.t_sorted, keep_after_us, "right"))
        if cut:
            self._reset(self.table.filter(pa.array(self.t > keep_after_us)))
        return cut

    def entities_with_change_points(self, view: s.ViewSemantics, after_us: int, until_us: int) -> list[str]:
        """Entities with a change point ``e + o`` in ``(after_us, until_us]``."""
        found: set[str] = set()
        column = None
        for o in view.change_offsets:
            lo = int(np.searchsorted(self.t_sorted, after_us - o, "right"))
            hi = int(np.searchsorted(self.t_sorted, until_us - o, "right"))
            if hi > lo:
                column = column if column is not None else self.table.column(view.join_key)
                found.update(column.take(pa.array(self.by_time[lo:hi])).to_pylist())
        return list(found)

    def next_change_point(self, after_us: int) -> int | None:
        """The earliest change point of any view of this stream after ``after_us``."""
        best = None
        for o in sorted({o for v in self.views for o in v.change_offsets}):
            i = int(np.searchsorted(self.t_sorted, after_us - o, "right"))
            if i < len(self.t_sorted):
                candidate = int(self.t_sorted[i]) + o
                best = candidate if best is None else min(best, candidate)
        return best

    def events_of(self, view: s.ViewSemantics, entities: list[str]) -> pa.Table:
        if len(entities) * 8 > len(self._rows[view.join_key]):  # most entities: one vectorized pass is cheaper
            return self.table.filter(pc.is_in(self.table.column(view.join_key), value_set=pa.array(entities, pa.string())))
        rows = self._rows[view.join_key]
        picked = [r for e in entities for r in rows.get(e, ())]
        if not picked:
            return self.table.slice(0, 0)
        return self.table.take(pa.array(np.sort(np.array(picked, dtype=np.int64))))
