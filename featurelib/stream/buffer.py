"""The accepted events of one stream that can still affect a feature row.

Rows at instants the processor may still (re)write depend only on events within the
largest change offset of the stream's views (24 hours) before them, so older events are
dropped (``trim``). The buffer is what a backlog step computes from (with the vectorized
engine) and what the incremental window state (``featurelib.stream.windows``) is loaded
from; live steps only add to it. Rows are kept in arrival order, with two indexes that make
a backlog step cost what it touches rather than the size of the buffer:

* ``by_time``: row numbers sorted by event time, so "which entities have a change point in
  (a, b]" is a binary search per offset;
* per join key, an :class:`EntityIndex`, so the events of the affected entities are a lookup.

Both indexes are numpy arrays, updated by insertion (``_fold``, at the first read after
``add``) and by filtering with a monotonic renumbering (``trim``): neither sorts the whole
buffer again nor steps through its rows in Python, so forgetting old events does not stall
a live step.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.raw_events import ID_FIELD, SCHEMAS
from featurelib.stream.events import conform
from featurelib.stream.table_log import TableLog
from featurelib.timeutil import column_us

TAIL_ROWS = 20_000
"""Recent events are kept in a second record batch, recopied each step, until there are this many."""

TRIM_SHARE = 0.125
"""``trim`` copies the buffer only once at least this share of its rows can go (amortized cost)."""


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
    def __init__(self, kind: str, join_key: str | None = None):
        """The events of stream ``kind`` for its views (only those of ``join_key``, if given: a
        partition of one family, ``featurelib.stream.partitions``)."""
        self.kind = kind
        self.views = [v for v in s.VIEWS.values() if v.events == kind and join_key in (None, v.join_key)]
        self.horizon_us = max(max(v.change_offsets) for v in self.views)
        self.keys = sorted({v.join_key for v in self.views})
        self._reset(SCHEMAS[kind].empty_table())

    def _reset(self, table: pa.Table) -> None:
        """Take ``table`` (arrival order) as the whole buffer and build every index."""
        self._set_batches(table.combine_chunks().to_batches())
        self._t = column_us(self._table.column("event_timestamp")) if self._table.num_rows else np.empty(0, np.int64)
        self._by_time = np.argsort(self._t, kind="stable")
        self._t_sorted = self._t[self._by_time]
        self._index = {k: EntityIndex() for k in self.keys}
        for key, index in self._index.items():
            index.add(self._table.column(key))
        self._ids: set[str] = set(self._table.column(ID_FIELD[self.kind]).to_pylist())
        self._pending = TableLog()  # added since the last read (see ``add``)
        self._pending_min_us: int | None = None  # the earliest event time among them

    def __len__(self) -> int:
        return self._table.num_rows + self._pending.rows

    @property
    def table(self) -> pa.Table:
        """Every buffered event, in arrival order."""
        self._fold()
        return self._table

    @property
    def t(self) -> np.ndarray:
        """Event times of ``table``'s rows, µs."""
        self._fold()
        return self._t

    @property
    def t_sorted(self) -> np.ndarray:
        self._fold()
        return self._t_sorted

    @property
    def by_time(self) -> np.ndarray:
        """Row numbers sorted by event time (``t[by_time] == t_sorted``)."""
        self._fold()
        return self._by_time

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
        """Buffer accepted events. Their ids count at once; the indexes take them in at the next
        read (``_fold``), so a live step, which reads none of them, does not copy the indexes."""
        if events.num_rows == 0:
            return
        self._ids.update(events.column(ID_FIELD[self.kind]).to_pylist())
        self._pending.append(conform(events, self._table.schema))  # a live processor may read none for hours
        earliest = int(column_us(events.column("event_timestamp")).min())
        self._pending_min_us = earliest if self._pending_min_us is None else min(self._pending_min_us, earliest)

    def _fold(self) -> None:
        """Take the events added since the last read into the table and the indexes."""
        if not self._pending:
            return
        events = self._pending.table()
        self._pending, self._pending_min_us = TableLog(), None
        first = self._table.num_rows
        for key, index in self._index.items():
            index.add(events.column(key))
        t = column_us(events.column("event_timestamp"))
        order = np.argsort(t, kind="stable")
        at = np.searchsorted(self._t_sorted, t[order], "right")
        self._by_time = np.insert(self._by_time, at, first + order)
        self._t_sorted = np.insert(self._t_sorted, at, t[order])
        self._t = np.concatenate([self._t, t])
        # At most two record batches: the bulk, and the recent events copied into one batch
        # each step (a copy of the tail only), folded into the bulk once it has grown.
        tail = self._batches[1:] + events.to_batches()
        if sum(b.num_rows for b in tail) > max(TAIL_ROWS, self._table.num_rows // 8):
            self._set_batches(pa.Table.from_batches(self._batches + events.to_batches()).combine_chunks().to_batches())
        else:
            self._set_batches(self._batches[:1] + pa.Table.from_batches(tail).combine_chunks().to_batches())

    def _set_batches(self, batches: list[pa.RecordBatch]) -> None:
        self._batches = [b for b in batches if b.num_rows]
        self._starts = np.cumsum([0] + [b.num_rows for b in self._batches[:-1]], dtype=np.int64)
        self._table = pa.Table.from_batches(self._batches, SCHEMAS[self.kind])

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
            return pa.chunked_array(parts, self._table.schema.field(column).type)
        return pa.Table.from_batches(parts, self._table.schema)

    def trim(self, keep_after_us: int, min_share: float = TRIM_SHARE) -> int:
        """Forget events at or before ``keep_after_us`` once they are at least ``min_share``
        of the buffer; returns how many were forgotten. Events added since the last read are
        counted without taking them into the indexes: a call that forgets nothing copies nothing."""
        cut = int(np.searchsorted(self._t_sorted, keep_after_us, "right"))
        if self._pending_min_us is not None and self._pending_min_us <= keep_after_us:
            cut += sum(int(np.count_nonzero(column_us(t.column("event_timestamp")) <= keep_after_us))
                       for t in self._pending.tables)
        if cut == 0 or cut < min_share * len(self):
            return 0
        self._fold()
        cut = int(np.searchsorted(self._t_sorted, keep_after_us, "right"))
        keep = self._t > keep_after_us
        renumber = np.cumsum(keep) - 1  # old row -> new row, for the rows kept
        self._ids.difference_update(self._table.column(ID_FIELD[self.kind]).filter(pa.array(~keep)).to_pylist())
        self._set_batches(self._table.filter(pa.array(keep)).to_batches())  # the same (at most two) batches
        self._t = self._t[keep]
        self._by_time, self._t_sorted = renumber[self._by_time[cut:]], self._t_sorted[cut:]
        for index in self._index.values():
            index.keep(keep, renumber)
        return cut

    def entities_with_change_points(self, view: s.ViewSemantics, after_us: int, until_us: int) -> list[str]:
        """Entities with a change point ``e + o`` in ``(after_us, until_us]``."""
        self._fold()
        index = self._index[view.join_key]
        codes = []
        for o in view.change_offsets:
            lo = int(np.searchsorted(self._t_sorted, after_us - o, "right"))
            hi = int(np.searchsorted(self._t_sorted, until_us - o, "right"))
            codes.append(index.row_code[self._by_time[lo:hi]])
        return [index.entity_of[c] for c in np.unique(np.concatenate(codes)).tolist()]

    def next_change_point(self, after_us: int) -> int | None:
        """The earliest change point of any view of this stream after ``after_us``."""
        self._fold()
        best = None
        for o in sorted({o for v in self.views for o in v.change_offsets}):
            i = int(np.searchsorted(self._t_sorted, after_us - o, "right"))
            if i < len(self._t_sorted):
                candidate = int(self._t_sorted[i]) + o
                best = candidate if best is None else min(best, candidate)
        return best

    def events_of(self, view: s.ViewSemantics, entities: list[str]) -> pa.Table:
        self._fold()
        index = self._index[view.join_key]
        if len(entities) * 8 > len(index):  # most entities: one vectorized pass is cheaper
            return self._table.filter(pc.is_in(self._table.column(view.join_key), value_set=pa.array(entities, pa.string())))
        rows = index.lookup(entities)
        return self._take(rows) if len(rows) else self._table.slice(0, 0)
