"""The accepted events of one stream that can still affect a feature row.

Rows at instants the processor may still (re)write depend only on events within the
largest change offset of the stream's views (24 hours) before them, so older events are
dropped (``trim``). Rows are kept in arrival order, with two indexes that make each step
cost what it touches rather than the size of the buffer:

* ``by_time``: row numbers sorted by event time, so "which entities have a change point in
  (a, b]" is a binary search per offset;
* per join key, an :class:`EntityIndex`, so the events of the affected entities are a lookup.

Both indexes are numpy arrays, updated by insertion (``add``) and by filtering with a
monotonic renumbering (``trim``): neither sorts the whole buffer again nor steps through
its rows in Python, so forgetting old events does not stall a live step.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.raw_events import ID_FIELD, SCHEMAS
from featurelib.stream.events import conform
from featurelib.timeutil import column_us

TAIL_ROWS = 20_000
"""Recent events are kept in a second record batch, recopied each step, until there are this many."""

TRIM_SHARE = 0.125
"""``trim`` copies the buffer only once at least this share of its rows can go (amortized cost)."""


def event_records(events: pa.Table) -> list[dict]:
    """Raw events as the brute-force reference reads them: dicts with ``event_timestamp`` in
    integer microseconds, and optional integer fields (dwell, scroll) null as 0, the value
    the batch engine reads for a null (``engine._Chunk.ints``)."""
    columns = {}
    for f in events.schema:
        column = events.column(f.name)
        if f.name == "event_timestamp":
            column = pa.chunked_array([column_us(column)], pa.int64())
        elif pa.types.is_integer(f.type):
            column = column.fill_null(0)
        columns[f.name] = column
    return pa.table(columns).to_pylist()


class EntityIndex:
    """Row numbers of each entity of one join key: ``rows`` sorted by (entity code, row).

    Codes are handed out in order of first appearance; ``compact`` renumbers them when most
    belong to entities no longer buffered (sessions come and go)."""

    def __init__(self) -> None:
        self.code_of: dict[str, int] = {}
        self.entity_of: list[str] = []
        self.row_code = np.empty(0, np.int64)  # per buffered row, arrival order
        self.rows = np.empty(0, np.int64)
        self.codes = np.empty(0, np.int64)  # row_code[rows], non-decreasing

    def add(self, column: pa.ChunkedArray | pa.Array) -> None:
        """Index rows ``len(row_code)..`` holding the entities of ``column``."""
        encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        mapping = np.empty(len(encoded.dictionary), np.int64)
        for i, entity in enumerate(encoded.dictionary.to_pylist()):
            code = self.code_of.get(entity)
            if code is None:
                code = self.code_of[entity] = len(self.entity_of)
                self.entity_of.append(entity)
            mapping[i] = code
        codes = mapping[np.asarray(encoded.indices, dtype=np.int64)]
        first = len(self.row_code)
        self.row_code = np.concatenate([self.row_code, codes])
        order = np.argsort(codes, kind="stable")
        at = np.searchsorted(self.codes, codes[order], "right")  # new rows come after older ones of a code
        self.rows = np.insert(self.rows, at, first + order)
        self.codes = np.insert(self.codes, at, codes[order])

    def keep(self, mask: np.ndarray, renumber: np.ndarray) -> None:
        """Keep the rows where ``mask`` holds, renamed by ``renumber`` (monotonic)."""
        kept = mask[self.rows]
        self.rows, self.codes = renumber[self.rows[kept]], self.codes[kept]
        self.row_code = self.row_code[mask]
        live = 1 + int(np.count_nonzero(np.diff(self.codes))) if len(self.codes) else 0
        if len(self.entity_of) > 2 * max(live, 1024):
            self.compact()

    def compact(self) -> None:
        """Forget entities without rows; codes keep their order, so ``rows`` stays sorted."""
        live = np.unique(self.codes)
        self.entity_of = [self.entity_of[c] for c in live.tolist()]
        self.code_of = {e: i for i, e in enumerate(self.entity_of)}
        self.codes = np.searchsorted(live, self.codes)
        self.row_code = np.searchsorted(live, self.row_code)

    def rows_of(self, entity: str) -> np.ndarray:
        """Row numbers of one entity, ascending."""
        code = self.code_of.get(entity)
        if code is None:
            return self.rows[:0]
        return self.rows[np.searchsorted(self.codes, code, "left"):np.searchsorted(self.codes, code, "right")]

    def lookup(self, entities: list[str]) -> np.ndarray:
        """Row numbers of ``entities``, ascending."""
        codes = np.array([c for c in map(self.code_of.get, entities) if c is not None], dtype=np.int64)
        lo = np.searchsorted(self.codes, codes, "left")
        length = np.searchsorted(self.codes, codes, "right") - lo
        total = int(length.sum())
        if total == 0:
            return np.empty(0, np.int64)
        # The ranges [lo, lo + length) concatenated, without a Python step per range.
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(length)[:-1]]), length)
        return np.sort(self.rows[starts + np.arange(total)])

    def __len__(self) -> int:
        return len(self.code_of)


class EventBuffer:
    def __init__(self, kind: str):
        self.kind = kind
        self.views = [v for v in s.VIEWS.values() if v.events == kind]
        self.horizon_us = max(max(v.change_offsets) for v in self.views)
        self.keys = sorted({v.join_key for v in self.views})
        self._reset(SCHEMAS[kind].empty_table())

    def _reset(self, table: pa.Table) -> None:
        """Take ``table`` (arrival order) as the whole buffer and build every index."""
        self._set_batches(table.combine_chunks().to_batches())
        self.t = column_us(self.table.column("event_timestamp")) if self.table.num_rows else np.empty(0, np.int64)
        self.by_time = np.argsort(self.t, kind="stable")
        self.t_sorted = self.t[self.by_time]
        self._index = {k: EntityIndex() for k in self.keys}
        for key, index in self._index.items():
            index.add(self.table.column(key))
        self._ids: set[str] = set(self.table.column(ID_FIELD[self.kind]).to_pylist())
        self._records: list[dict | None] = [None] * self.table.num_rows  # row -> event dict, made on demand

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
        for key, index in self._index.items():
            index.add(events.column(key))
        t = column_us(events.column("event_timestamp"))
        order = np.argsort(t, kind="stable")
        at = np.searchsorted(self.t_sorted, t[order], "right")
        self.by_time = np.insert(self.by_time, at, first + order)
        self.t_sorted = np.insert(self.t_sorted, at, t[order])
        self.t = np.concatenate([self.t, t])
        self._records.extend([None] * events.num_rows)
        # At most two record batches: the bulk, and the recent events copied into one batch
        # each step (a copy of the tail only), folded into the bulk once it has grown.
        tail = self._batches[1:] + events.to_batches()
        if sum(b.num_rows for b in tail) > max(TAIL_ROWS, self.table.num_rows // 8):
            self._set_batches(pa.Table.from_batches(self._batches + events.to_batches()).combine_chunks().to_batches())
        else:
            self._set_batches(self._batches[:1] + pa.Table.from_batches(tail).combine_chunks().to_batches())

    def _set_batches(self, batches: list[pa.RecordBatch]) -> None:
        self._batches = [b for b in batches if b.num_rows]
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches[:-1]], dtype=np.int64)
        self.table = pa.Table.from_batches(self._batches, SCHEMAS[self.kind])

    def _take(self, rows: np.ndarray, column: str | None = None) -> pa.Table | pa.ChunkedArray:
        """The buffered rows at ``rows`` (ascending row numbers), or one column of them.

        One take per record batch: ``Table.take`` on a table of several chunks first
        concatenates them all (about a millisecond per call for a day of clickstream),
        while a take on one batch costs about what it returns."""
        cut = np.searchsorted(rows, self._starts[1:], "left")
        parts = []
        for batch, start, piece in zip(self._batches, self._starts, np.split(rows, cut)):
            if len(piece):
                source = batch if column is None else batch.column(column)
                parts.append(source.take(pa.array(piece - start)))
        if column is not None:
            return pa.chunked_array(parts, self.table.schema.field(column).type)
        return pa.Table.from_batches(parts, self.table.schema)

    def rows_of(self, key: str, entities: list[str]) -> list[np.ndarray]:
        """Row numbers of each entity, ascending (arrival order)."""
        index = self._index[key]
        return [index.rows_of(e) for e in entities]

    def records(self, rows: list[np.ndarray]) -> list[list[dict]]:
        """The events at each list of ``rows`` as dicts (the input of ``semantics.REFERENCE``).
        Each event is converted once, the first time it is asked for."""
        records = self._records
        missing = [r for rs in rows for r in rs.tolist() if records[r] is None]
        if missing:
            missing = sorted(set(missing))
            for r, record in zip(missing, event_records(self._take(np.array(missing, dtype=np.int64)))):
                records[r] = record
        return [[records[r] for r in rs.tolist()] for rs in rows]

    def trim(self, keep_after_us: int, min_share: float = TRIM_SHARE) -> int:
        """Forget events at or before ``keep_after_us`` once they are at least ``min_share``
        of the buffer; returns how many were forgotten."""
        cut = int(np.searchsorted(self.t_sorted, keep_after_us, "right"))
        if cut == 0 or cut < min_share * len(self.t):
            return 0
        keep = self.t > keep_after_us
        renumber = np.cumsum(keep) - 1  # old row -> new row, for the rows kept
        self._ids.difference_update(self.table.column(ID_FIELD[self.kind]).filter(pa.array(~keep)).to_pylist())
        self._set_batches(self.table.filter(pa.array(keep)).to_batches())  # the same (at most two) batches
        self.t = self.t[keep]
        self._records = [r for r, k in zip(self._records, keep.tolist()) if k]
        self.by_time, self.t_sorted = renumber[self.by_time[cut:]], self.t_sorted[cut:]
        for index in self._index.values():
            index.keep(keep, renumber)
        return cut

    def entities_with_change_points(self, view: s.ViewSemantics, after_us: int, until_us: int) -> list[str]:
        """Entities with a change point ``e + o`` in ``(after_us, until_us]``."""
        found: set[str] = set()
        for o in view.change_offsets:
            lo = int(np.searchsorted(self.t_sorted, after_us - o, "right"))
            hi = int(np.searchsorted(self.t_sorted, until_us - o, "right"))
            if hi > lo:
                found.update(self._take(np.sort(self.by_time[lo:hi]), view.join_key).to_pylist())
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
        index = self._index[view.join_key]
        if len(entities) * 8 > len(index):  # most entities: one vectorized pass is cheaper
            return self.table.filter(pc.is_in(self.table.column(view.join_key), value_set=pa.array(entities, pa.string())))
        rows = index.lookup(entities)
        return self._take(rows) if len(rows) else self.table.slice(0, 0)
