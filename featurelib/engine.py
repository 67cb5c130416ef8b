"""Vectorized computation of feature rows from raw events (the engine both pipelines share).

``compute_view(view, events)`` returns one row per entity and change point, with
the values that ``featurelib.semantics`` defines. It is a pure function of the
event set: the batch job calls it on all events, the stream processor on the
buffered events of the entities a micro-batch touched.

How it works, for the curious. Events are sorted by (entity, time) and given a
composite integer key ``entity * span + (t - t0)``, so one sorted int64 array
orders every entity's timeline. For each change offset ``o`` of the view the
array ``key + o`` is already sorted; a stable merge of these runs is the
view's change-point timeline. At each distinct key ``K``:

* the number of events with ``T - w < t <= T`` is (events of run 0 at or before
  ``K``) minus (events of run ``w`` at or before ``K``): a difference of two running
  counts. Earlier entities appear in both and cancel. Sums work the same way;
  integer running sums may wrap around in int64, their differences stay exact
  (arithmetic modulo 2**64) as long as the true window sum fits in int64 (see
  "Exact integer arithmetic" below);
* those two counts are also the index range ``[lo, hi)`` of the window's events
  in the sorted event array, which gives the latest events (``hi - 1``) and, via
  a sparse table, the maximum over the window;
* distinct counts come from *islands*: per (entity, value) the union of the
  intervals ``[t, t + w)`` of its events; a value is in the window exactly while
  an island is open, so the count is (islands started) minus (islands ended).

All arithmetic on aggregates is integer; floats appear only in
``semantics.derive_*``, and in one exactly rounded conversion (the sum of squared
amounts, below).

Exact integer arithmetic. Every view's largest change offset is 24 h > 2**36 µs, so a
chunk whose composite keys fit (``(events + 1) * span < _KEY_LIMIT = 2**58``) has fewer
than ``_MAX_CHUNK_EVENTS = 2**22`` events (checked too), and no window holds more. With
the raw-event schema's ranges (``featurelib.raw_events``: amounts 0 to 1e9 cents, dwell
0 to 86.4e6 ms, scroll 0 to 100) every window sum is far inside int64, and below 2**53,
so it converts to float64 exactly: cents < 2**22 * 2**30 = 2**52, dwell < 2**22 * 2**27,
counts < 2**22, the sum over countries of squared counts < 2**44. The one exception is
the sum of squared cents (``card_profile_24h``): one square is up to 1e18 and ten exceed
int64. It is kept as two exact window sums, of ``c*c >> 32`` (< 2**28 each, sums
< 2**50) and of ``c*c & (2**32 - 1)`` (sums < 2**54), and ``_float_of`` turns
``hi * 2**32 + lo`` into the float64 nearest to the exact integer, as Python's
``float(int)`` does in the reference. Inputs beyond what these bounds allow (amounts
above ``_MAX_ABS_AMOUNT``, dwell or scroll above ``_MAX_ABS_VALUE``; the schema allows
neither) raise ``ValueError`` instead of wrapping around.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib import semantics as s
from featurelib.timeutil import column_us

_KEY_LIMIT = 1 << 58  # composite keys, shifted by Timeline.RUN_BITS, stay inside int64
_MAX_CHUNK_EVENTS = 1 << 22
"""Fewer events than this per chunk (implied by ``_KEY_LIMIT`` for windows of 24 h, checked
anyway): it bounds every window count, and so every window sum."""
_MAX_ABS_AMOUNT = 3_037_000_499
"""``isqrt(2**63 - 1)``: the largest amount (cents) whose square fits int64. The schema allows
at most ``raw_events.MAX_AMOUNT_CENTS`` = 1e9; window sums of cents stay < 2**22 * 2**32."""
_MAX_ABS_VALUE = 1 << 40
"""The largest dwell time or scroll depth the engine sums exactly (window sums < 2**62); the
schema allows at most 86.4e6 ms and 100 %."""
_LIST_LIMIT = (1 << 31) - 1
"""Arrow lists and strings have int32 offsets: at most this many country entries, and bytes,
in one piece of a chunk's ``card_countries_24h`` column (more make several pieces)."""


def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
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


def _float_of(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
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
class _Chunk:
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


def _distinct(timeline_runs: list[np.ndarray], chunk: _Chunk, values: np.ndarray, w: int) -> Callable[[Timeline], np.ndarray]:
    """Registers island runs for a distinct count and returns its evaluator."""
    starts, ends, _ = chunk.islands(values, w)
    i = len(timeline_runs)
    timeline_runs += [starts, ends]
    return lambda tl: tl.count(i) - tl.count(i + 1)


def _base_runs(chunk: _Chunk, offsets: Sequence[int]) -> list[np.ndarray]:
    key = chunk.key
    return [key + o for o in offsets]


class _Window:
    """Counts, index ranges and sums over one window at the timeline's keys."""

    def __init__(self, tl: Timeline, run: int):
        self.tl, self.run = tl, run
        self.hi = tl.count(0)  # events at or before K
        self.lo = tl.count(run)  # events at or before K - w
        self.n = self.hi - self.lo

    def sum(self, values: np.ndarray) -> np.ndarray:
        return self.tl.total(0, values) - self.tl.total(self.run, values)


def _timeline_rows(chunk: _Chunk, tl: Timeline) -> tuple[np.ndarray, np.ndarray]:
    return tl.keys // chunk.span, tl.keys % chunk.span + chunk.t0


# ------------------------------------------------------------------------------ views


def _transaction_stats(chunk: _Chunk) -> tuple[Timeline, dict]:
    runs = _base_runs(chunk, s.TRANSACTION_STATS.change_offsets)  # 0, 5m, 30m, 24h
    country, _ = _codes(chunk.column("country"))
    countries5 = _distinct(runs, chunk, country, s.W_5M)
    # sum over countries of the squared per-country count in 24h, as deltas at pair change points
    order, pair, pair_entity = chunk.pairs(country)
    tp = chunk.t[order]
    pkey = pair * chunk.span + (tp - chunk.t0)
    ptl = Timeline([pkey, pkey + s.W_24H])
    n_after = ptl.count(0) - ptl.count(1)
    p_of = ptl.keys // chunk.span
    n_before = np.zeros_like(n_after)
    n_before[1:] = np.where(p_of[1:] == p_of[:-1], n_after[:-1], 0)
    dsq = n_after * n_after - n_before * n_before
    sq_keys = chunk.entity_key(pair_entity[p_of], ptl.keys % chunk.span + chunk.t0)
    sq_order = np.argsort(sq_keys, kind="stable")
    sq_run = len(runs)
    runs.append(sq_keys[sq_order])

    tl = Timeline(runs)
    w5, w30, w24 = _Window(tl, 1), _Window(tl, 2), _Window(tl, 3)
    cents = chunk.ints("amount_cents", _MAX_ABS_AMOUNT)
    hi = w24.hi
    return tl, {
        "n5": w5.n, "n30": w30.n, "n24": w24.n,
        "sum5": w5.sum(cents),
        "max5": range_max(cents, w5.lo, w5.hi),
        "countries5": countries5(tl),
        "sq24": tl.total(sq_run, dsq[sq_order]),
        "hr24": w24.sum(chunk.flag("merchant_category", s.HIGH_RISK_MERCHANT_CATEGORIES)),
        "t_last": chunk.t[np.maximum(hi - 1, 0)],
        "t_prev": chunk.t[np.maximum(hi - 2, 0)],
    }


def _country_lists(chunk: _Chunk, tl: Timeline, w: int) -> pa.Array | pa.ChunkedArray:
    """The sorted distinct countries in the window at each timeline key (from islands).

    Arrow lists and strings have int32 offsets: when the entries, or their bytes, exceed
    ``_LIST_LIMIT``, the column is built in pieces (a ``ChunkedArray``) that each fit."""
    codes, names = _codes(chunk.column("country"))
    _, _, (start_keys, end_keys, vals) = chunk.islands(codes, w)
    lo = np.searchsorted(tl.keys, start_keys, "left")
    hi = np.searchsorted(tl.keys, end_keys, "left")  # the island is closed at its end key
    counts = hi - lo
    total = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(lo, counts) + (np.arange(total) - first)
    val = np.repeat(vals, counts)
    order = np.lexsort((val, pos))
    val = val[order]
    ends = np.cumsum(np.bincount(pos, minlength=len(tl.keys)))  # entries up to each key, int64
    byte_len = np.asarray(pc.binary_length(names), dtype=np.int64)  # per distinct country
    if total <= _LIST_LIMIT and total * int(byte_len.max(initial=0)) <= _LIST_LIMIT:  # the usual case
        return pa.ListArray.from_arrays(pa.array(np.r_[0, ends].astype(np.int32)), names.take(pa.array(val)))
    byte_ends = np.r_[0, np.cumsum(byte_len[val])][ends]  # bytes up to each key
    pieces, a = [], 0
    while a < len(ends):
        e0, b0 = (int(ends[a - 1]), int(byte_ends[a - 1])) if a else (0, 0)
        b = min(int(np.searchsorted(ends, e0 + _LIST_LIMIT, "right")),
                int(np.searchsorted(byte_ends, b0 + _LIST_LIMIT, "right")))
        if b == a:
            raise ValueError(f"one row of card_countries_24h holds {int(ends[a]) - e0:,} countries, "
                             f"{int(byte_ends[a]) - b0:,} bytes: more than an Arrow list can")
        offsets = pa.array((np.r_[e0, ends[a:b]] - e0).astype(np.int32))
        pieces.append(pa.ListArray.from_arrays(offsets, names.take(pa.array(val[e0:int(ends[b - 1])]))))
        a = b
    return pa.chunked_array(pieces, pa.list_(pa.string()))


def _card_profile(chunk: _Chunk) -> tuple[Timeline, dict]:
    runs = _base_runs(chunk, s.CARD_PROFILE.change_offsets)  # 0, 24h
    devices = _distinct(runs, chunk, _codes(chunk.column("device_id"))[0], s.W_24H)
    merchants = _distinct(runs, chunk, _codes(chunk.column("merchant_id"))[0], s.W_24H)
    tl = Timeline(runs)
    w24 = _Window(tl, 1)
    cents = chunk.ints("amount_cents", _MAX_ABS_AMOUNT)
    square = cents * cents  # < 2**63; its window sums do not fit int64, their two halves do
    return tl, {
        "n": w24.n, "s1": w24.sum(cents), "s2": _float_of(w24.sum(square >> 32), w24.sum(square & 0xFFFFFFFF)),
        "countries": _country_lists(chunk, tl, s.W_24H),
        "devices": devices(tl), "merchants": merchants(tl),
        "t_last": chunk.t[np.maximum(w24.hi - 1, 0)],
    }


def _device_activity(chunk: _Chunk) -> tuple[Timeline, dict]:
    runs = _base_runs(chunk, s.DEVICE_ACTIVITY.change_offsets)  # 0, 1h, 24h
    cards = _distinct(runs, chunk, _codes(chunk.column("card_id"))[0], s.W_24H)
    users = _distinct(runs, chunk, _codes(chunk.column("user_id"))[0], s.W_24H)
    countries = _distinct(runs, chunk, _codes(chunk.column("country"))[0], s.W_24H)
    tl = Timeline(runs)
    w1, w24 = _Window(tl, 1), _Window(tl, 2)
    return tl, {
        "n1h": w1.n, "n24": w24.n, "sum24": w24.sum(chunk.ints("amount_cents", _MAX_ABS_AMOUNT)),
        "cards": cards(tl), "users": users(tl), "countries": countries(tl),
    }


def _event_flags(chunk: _Chunk) -> dict[str, np.ndarray]:
    etype = chunk.column("event_type")
    return {name: np.asarray(pc.equal(etype, name).fill_null(False), dtype=np.int64)
            for name in ("page_view", "click", "add_to_cart", "purchase")}


def _session_activity(chunk: _Chunk) -> tuple[Timeline, dict]:
    runs = _base_runs(chunk, s.SESSION_ACTIVITY.change_offsets)  # 0, 24h
    categories = _distinct(runs, chunk, _codes(chunk.column("page_category"))[0], s.SESSION_HORIZON)
    tl = Timeline(runs)
    w = _Window(tl, 1)
    f = _event_flags(chunk)
    return tl, {
        "n": w.n, "pv": w.sum(f["page_view"]), "cart": w.sum(f["add_to_cart"]),
        "purchase": w.sum(f["purchase"]), "dwell": w.sum(chunk.ints("dwell_ms", _MAX_ABS_VALUE) * f["page_view"]),
        "t_first": chunk.t[np.minimum(w.lo, len(chunk.t) - 1)], "t_last": chunk.t[np.maximum(w.hi - 1, 0)],
        "categories": categories(tl),
    }


def _user_engagement(chunk: _Chunk) -> tuple[Timeline, dict]:
    runs = _base_runs(chunk, s.USER_ENGAGEMENT.change_offsets)  # 0, 5m, 30m, 24h
    tl = Timeline(runs)
    w5, w30 = _Window(tl, 1), _Window(tl, 2)
    f = _event_flags(chunk)
    pv = f["page_view"]

    # Per (user, session): counts over the session horizon at the pair's change points.
    session, _ = _codes(chunk.column("session_id"))
    order, pair, _ = chunk.pairs(session)
    tp = chunk.t[order]
    pkey = pair * chunk.span + (tp - chunk.t0)
    ptl = Timeline([pkey, pkey + s.SESSION_HORIZON])
    pw = _Window(ptl, 1)
    pair_of_event = np.empty(len(order), np.int64)
    pair_of_event[order] = pair

    # The current session at K: that of the latest event in (K - 30m, K] (input is sorted by
    # time, then session_id, so the latest is at hi - 1), if any.
    has_session = w30.n > 0
    latest = np.maximum(w30.hi - 1, 0)
    query = pair_of_event[latest] * chunk.span + (tl.keys % chunk.span)
    at = np.maximum(np.searchsorted(ptl.keys, query, "right") - 1, 0)

    def session_total(flag: np.ndarray) -> np.ndarray:
        return np.where(has_session, pw.sum(flag[order])[at], 0)

    return tl, {
        "pv5": w5.sum(pv), "dwell5": w5.sum(chunk.ints("dwell_ms", _MAX_ABS_VALUE) * pv),
        "scroll5": w5.sum(chunk.ints("scroll_pct", _MAX_ABS_VALUE) * pv), "clicks5": w5.sum(f["click"]),
        "has_session": has_session.astype(np.int64),
        "s_first": tp[np.minimum(pw.lo[at], len(tp) - 1)], "s_last": tp[np.maximum(pw.hi[at] - 1, 0)],
        "s_pv": session_total(pv), "s_cart": session_total(f["add_to_cart"]),
        "s_purchase": session_total(f["purchase"]),
    }


_AGGREGATES: dict[str, Callable[[_Chunk], tuple[Timeline, dict]]] = {
    s.TRANSACTION_STATS.name: _transaction_stats,
    s.CARD_PROFILE.name: _card_profile,
    s.DEVICE_ACTIVITY.name: _device_activity,
    s.USER_ENGAGEMENT.name: _user_engagement,
    s.SESSION_ACTIVITY.name: _session_activity,
}

SORT_KEYS = {
    s.TRANSACTIONS: ["event_timestamp"],
    s.CLICKSTREAM: ["event_timestamp", "session_id"],
}
"""After the join key, raw events are sorted by these columns (the tie-break matters for
``user_engagement_5m``'s current session)."""


@functools.cache
def output_schema(view: s.ViewSemantics) -> pa.Schema:
    """The Parquet schema of a view's feature rows."""
    sample = s.DERIVE[view.name]({k: np.zeros(0, np.int64) for k in _AGGREGATE_NAMES[view.name]})
    return pa.schema(
        [(view.join_key, pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        + [(name, sample[name].type) for name in view.features]
    )


_AGGREGATE_NAMES = {
    s.TRANSACTION_STATS.name: ("n5", "n30", "n24", "sum5", "max5", "countries5", "sq24", "hr24", "t_last", "t_prev"),
    s.CARD_PROFILE.name: ("n", "s1", "s2", "countries", "devices", "merchants", "t_last"),
    s.DEVICE_ACTIVITY.name: ("n1h", "n24", "sum24", "cards", "users", "countries"),
    s.USER_ENGAGEMENT.name: ("pv5", "dwell5", "scroll5", "clicks5", "has_session", "s_first", "s_last", "s_pv", "s_cart", "s_purchase"),
    s.SESSION_ACTIVITY.name: ("n", "pv", "cart", "purchase", "dwell", "t_first", "t_last", "categories"),
}


def sort_events(view: s.ViewSemantics, events: pa.Table) -> pa.Table:
    """Sort raw events the way ``compute_view`` expects them."""
    return events.sort_by([(c, "ascending") for c in [view.join_key, *SORT_KEYS[view.events]]])


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

    ``events`` holds raw events (schema of ``featurelib.generate``; only the columns the
    view needs are read). Entities must be complete: every event of an entity that can
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
    chunk = _Chunk(table=events, entity=entity, t=t, t0=t0, span=span)
    tl, aggregates = _AGGREGATES[view.name](chunk)
    row_entity, row_t = _timeline_rows(chunk, tl)
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
    features = s.DERIVE[view.name](aggregates)
    first_row = np.flatnonzero(change)
    ids = entity_col.take(pa.array(first_row[row_entity]))
    columns = [ids, pa.array(row_t, pa.int64()).cast(pa.timestamp("us", tz="UTC"))] + [features[f] for f in view.features]
    return pa.Table.from_arrays(columns, schema=schema)
