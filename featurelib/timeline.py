"""Vectorized primitives of the batch engine: one sorted timeline of every entity's events.

Events are sorted by (entity, time) and given a composite integer key ``entity * span +
(t - t0)``, so one sorted int64 array orders every entity's timeline (``Chunk``). For each
window ``w`` the array ``key + w`` is sorted too; a merge of these runs (``Timeline``) is
the view's change-point timeline. At each distinct key ``K`` the events with ``K - w < t
<= K`` are (run 0 at or before ``K``) minus (run ``w`` at or before ``K``): a difference
of two running counts (``Window``); earlier entities appear in both and cancel. Sums work
the same way: running sums in int64 may wrap around, their differences stay exact
(arithmetic modulo 2**64) while the true window sum fits int64, which the engine's chunk
limits guarantee (``featurelib.engine``). The two counts are also the index range ``[lo,
hi)`` of the window's events, which gives the latest and earliest events and, with a
sparse table, the maximum (``range_max``). The aggregation operators of
``featurelib.aggregations`` are written with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_ABS_AMOUNT = 3_037_000_499
"""``isqrt(2**63 - 1)``: the largest amount (cents) whose square fits int64. The schema allows
at most ``raw_events.MAX_AMOUNT_CENTS`` = 1e9; window sums of cents stay < 2**22 * 2**32."""
MAX_ABS_VALUE = 1 << 40
"""The largest other integer input (dwell time, scroll depth) the engine sums exactly (window
sums < 2**62); the schema allows at most 86.4e6 ms and 100 %."""
LIST_LIMIT = (1 << 31) - 1
"""Arrow lists and strings have int32 offsets: at most this many entries, and bytes, in one
piece of a ``distinct_list`` column (more make several pieces)."""
COLUMN_LIMITS = {"amount_cents": MAX_ABS_AMOUNT}
"""Per integer input column, the largest magnitude summed exactly (others: ``MAX_ABS_VALUE``)."""


def codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Integer codes of a string column whose order is the strings' sort order, and the
    sorted distinct values."""
    enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    dictionary = enc.dictionary
    order = np.asarray(pc.array_sort_indices(dictionary))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank[np.asarray(enc.indices.fill_null(0), dtype=np.int64)], dictionary.take(pa.array(order))


class Timeline:
    """The merge of sorted key runs, evaluated at the end of every distinct key.

    ``keys`` are the distinct keys in order; ``count(i)`` gives, at each of them, the
    number of elements of run ``i`` with a key at or before it, and ``total(i, v)`` the
    sum of ``v`` over those elements (``v`` aligned with run ``i``, which is sorted).

    Each key is tagged with its run index in the low ``RUN_BITS`` bits, so one plain sort
    merges all runs; equal keys of one run are interchangeable.
    """

    RUN_BITS = 4

    def __init__(self, runs: Sequence[np.ndarray]):
        if len(runs) > 1 << self.RUN_BITS:
            raise ValueError(f"at most {1 << self.RUN_BITS} runs")
        tagged = np.concatenate([(np.asarray(r, np.int64) << self.RUN_BITS) | i for i, r in enumerate(runs)])
        tagged.sort()
        self._run = tagged & ((1 << self.RUN_BITS) - 1)
        keys = tagged >> self.RUN_BITS
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        self._ends = np.flatnonzero(last)
        self.keys = keys[self._ends]
        self._counts: dict[int, np.ndarray] = {}

    def count(self, run: int) -> np.ndarray:
        if run not in self._counts:
            self._counts[run] = np.cumsum(self._run == run, dtype=np.int64)[self._ends]
        return self._counts[run]

    def total(self, run: int, values: np.ndarray) -> np.ndarray:
        prefix = np.zeros(len(values) + 1, np.int64)
        np.cumsum(np.asarray(values, dtype=np.int64), out=prefix[1:])  # may wrap; callers use differences
        return prefix[self.count(run)]


def float_of(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """The float64 nearest to the integer ``hi * 2**32 + lo`` (ties to even, as Python's
    ``float(int)``), for int64 arrays.

    With the carry moved into ``hi``, ``lo`` is in ``[0, 2**32)``; where ``|hi| < 2**53``
    both ``hi * 2**32`` and ``lo`` are exact float64 values, and IEEE 754 addition rounds
    their exact sum correctly, once. Larger ``hi`` (never, for the engine's bounds) is
    converted through Python integers."""
    hi = np.asarray(hi, np.int64) + (np.asarray(lo, np.int64) >> 32)
    lo = np.asarray(lo, np.int64) & 0xFFFFFFFF
    out = hi.astype(np.float64) * 4294967296.0 + lo.astype(np.float64)
    for i in np.flatnonzero((hi >= 1 << 53) | (hi <= -(1 << 53))).tolist():
        out[i] = float((int(hi[i]) << 32) + int(lo[i]))
    return out


def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max(values[lo:hi])`` for every pair (0 where the range is empty), via a sparse table."""
    length = hi - lo
    out = np.zeros(len(lo), np.int64)
    if len(values) == 0 or not np.any(length > 0):
        return out
    level = np.frexp(np.maximum(length, 1).astype(np.float64))[1] - 1  # floor(log2(length))
    table = [np.asarray(values, np.int64)]
    for j in range(1, int(level.max()) + 1):
        prev, half = table[-1], 1 << (j - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
    for j in np.unique(level[length > 0]):
        sel = np.flatnonzero((level == j) & (length > 0))
        t = table[j]
        out[sel] = np.maximum(t[lo[sel]], t[hi[sel] - (1 << int(j))])
    return out


@dataclass
class Chunk:
    """Events of whole entities, sorted by (entity, time[, tie-break])."""

    table: pa.Table
    entity: np.ndarray  # dense codes 0..E-1, non-decreasing
    t: np.ndarray
    t0: int
    span: int

    @property
    def key(self) -> np.ndarray:
        return self.entity * self.span + (self.t - self.t0)

    def entity_key(self, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
        return entity * self.span + (t - self.t0)

    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def flag(self, name: str, values: Sequence[str] | frozenset[str]) -> np.ndarray:
        return np.asarray(pc.is_in(self.column(name), pa.array(sorted(values))).fill_null(False), dtype=np.int64)

    def ints(self, name: str, limit: int) -> np.ndarray:
        """An integer column as int64 (null as 0); values beyond ``±limit`` are a ``ValueError``:
        the engine's sums would not be exact (the raw-event schema never lets them through)."""
        values = np.asarray(self.column(name).cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
        if len(values) and (values.max() > limit or values.min() < -limit):
            bad = int(values[np.argmax(np.abs(values.astype(np.float64)))])
            raise ValueError(f"{name} {bad:,} is beyond the engine's exact range (±{limit:,})")
        return values

    def values(self, name: str) -> np.ndarray:
        """An input column as int64: event times, integers (null as 0, range-checked), or the
        sort-order codes of strings (``codes``)."""
        if name == "event_timestamp":
            return self.t
        column = self.column(name)
        if pa.types.is_integer(column.type):
            return self.ints(name, COLUMN_LIMITS.get(name, MAX_ABS_VALUE))
        return codes(column)[0]

    def pairs(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Group events by (entity, value): returns (order, pair code per sorted event,
        pair entity per pair code); ``order`` sorts events by (pair, time)."""
        combo = self.entity * (int(values.max(initial=0)) + 1) + values
        uniq, pair = np.unique(combo, return_inverse=True)
        order = np.argsort(pair * self.span + (self.t - self.t0), kind="stable")
        pair_entity = self.entity[order][np.r_[0, np.flatnonzero(np.diff(pair[order])) + 1]] if len(order) else self.entity[:0]
        return order, pair[order], pair_entity

    def islands(self, values: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Presence intervals of each (entity, value) for window ``w``.

        Returns sorted start keys and sorted end keys in entity-key space, plus per island
        (unsorted, aligned) its start key, end key and value.
        """
        order, pair, _ = self.pairs(values)
        tp, ep, vp = self.t[order], self.entity[order], values[order]
        n = len(tp)
        new_pair_before = np.ones(n, bool)
        new_pair_before[1:] = pair[1:] != pair[:-1]
        new_pair_after = np.ones(n, bool)
        new_pair_after[:-1] = new_pair_before[1:]
        gap_before = np.full(n, np.iinfo(np.int64).max)
        gap_before[1:] = tp[1:] - tp[:-1]
        gap_after = np.full(n, np.iinfo(np.int64).max)
        gap_after[:-1] = gap_before[1:]
        starts = np.flatnonzero(new_pair_before | (gap_before >= w))
        ends = np.flatnonzero(new_pair_after | (gap_after >= w))
        start_keys = self.entity_key(ep[starts], tp[starts])
        end_keys = self.entity_key(ep[ends], tp[ends] + w)
        return np.sort(start_keys), np.sort(end_keys), (start_keys, end_keys, vp[starts])


class Window:
    """Counts, index ranges and sums over one window at the timeline's keys (``run``: the
    timeline's run of event keys shifted by the window)."""

    def __init__(self, tl: Timeline, run: int):
        self.tl, self.run = tl, run
        self.hi = tl.count(0)  # events at or before K
        self.lo = tl.count(run)  # events at or before K - w
        self.n = self.hi - self.lo

    def sum(self, values: np.ndarray) -> np.ndarray:
        return self.tl.total(0, values) - self.tl.total(self.run, values)


def open_lists(tl: Timeline, islands: tuple, names: pa.Array) -> pa.Array | pa.ChunkedArray:
    """At each timeline key, the sorted names of the islands (``Chunk.islands``) open there.

    Arrow lists and strings have int32 offsets: when the entries, or their bytes, exceed
    ``LIST_LIMIT``, the column is built in pieces (a ``ChunkedArray``) that each fit."""
    start_keys, end_keys, vals = islands
    lo = np.searchsorted(tl.keys, start_keys, "left")
    hi = np.searchsorted(tl.keys, end_keys, "left")  # the island is closed at its end key
    counts = hi - lo
    total = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(lo, counts) + (np.arange(total) - first)
    val = np.repeat(vals, counts)
    val = val[np.lexsort((val, pos))]
    ends = np.cumsum(np.bincount(pos, minlength=len(tl.keys)))  # entries up to each key, int64
    byte_len = np.asarray(pc.binary_length(names), dtype=np.int64)  # per distinct value
    if total <= LIST_LIMIT and total * int(byte_len.max(initial=0)) <= LIST_LIMIT:  # the usual case
        return pa.ListArray.from_arrays(pa.array(np.r_[0, ends].astype(np.int32)), names.take(pa.array(val)))
    byte_ends = np.r_[0, np.cumsum(byte_len[val])][ends]  # bytes up to each key
    pieces, a = [], 0
    while a < len(ends):
        e0, b0 = (int(ends[a - 1]), int(byte_ends[a - 1])) if a else (0, 0)
        b = min(int(np.searchsorted(ends, e0 + LIST_LIMIT, "right")),
                int(np.searchsorted(byte_ends, b0 + LIST_LIMIT, "right")))
        if b == a:
            raise ValueError(f"one row holds {int(ends[a]) - e0:,} distinct values, "
                             f"{int(byte_ends[a]) - b0:,} bytes: more than an Arrow list can")
        offsets = pa.array((np.r_[e0, ends[a:b]] - e0).astype(np.int32))
        pieces.append(pa.ListArray.from_arrays(offsets, names.take(pa.array(val[e0:int(ends[b - 1])]))))
        a = b
    return pa.chunked_array(pieces, pa.list_(pa.string()))
