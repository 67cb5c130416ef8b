"""Windowed aggregations declared as data, and one operator per operation serving both engines.

A view's aggregates are specs (Chronon's ``Aggregation(input_column, operation, windows)``):
``Aggregation(name, operation, input, window)`` is ``operation`` over the ``input`` column
of an entity's events with ``T - window < event_timestamp <= T``, optionally only over the
events whose ``where`` column holds one of a set of values. ``featurelib.semantics``
declares each view's specs and turns their results into feature values (``derive_*``).

Each operation is one ``Operator`` class with two faces over the same integers:

* **vectorized** (``plan``): every change point of every entity at once, column-wise over
  a ``featurelib.timeline`` (the batch engine, ``featurelib.engine``);
* **incremental** (one instance per entity and aggregation): ``update`` when an event
  enters the window, ``delete`` when it leaves (events leave in the order they entered:
  a window is a FIFO queue), ``merge`` with the state of later events, ``result`` (the
  stream processor, ``featurelib.stream.windows``).

Where a window holds no event, results without a value (``max``, ``min``, ``last``,
``first``) are undefined (0 or a neighbouring event's value, depending on the face), and
``derive_*`` masks them; ``last`` with ``nth=2`` is likewise undefined below 2 events.
``tests/test_aggregations.py`` holds both faces equal to a brute-force scan per operation;
``featurelib.reference`` is the independent oracle of the features themselves. A custom
aggregate with several results (``CurrentSession``, in ``featurelib.custom_aggregations``)
implements the same two faces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelib.timeline import Chunk, Timeline, Window, codes, float_of, open_lists, range_max

Evaluator = Callable[[Timeline, Mapping[int, Window]], dict[str, Any]]
"""The vectorized face once planned: the timeline and its windows by length -> results by name."""

@dataclass(frozen=True)
class Aggregation:
    """``operation`` over ``input`` of an entity's events in ``(T - window, T]``, as ``name``.

    ``where``: ``(column, values)``: only events whose ``column`` is one of ``values`` (count
    and sum). ``nth``: for ``last``, the n-th latest event (1: the latest)."""

    name: str
    operation: str
    input: str = "event_timestamp"
    window: int = 0
    where: tuple[str, frozenset[str]] | None = None
    nth: int = 1

    def __post_init__(self) -> None:
        if self.operation not in OPERATIONS:
            raise ValueError(f"{self.name}: unknown operation {self.operation!r} (one of {', '.join(OPERATIONS)})")
        if self.window <= 0:
            raise ValueError(f"{self.name}: the window must be a positive number of microseconds")
        if self.where is not None and self.operation not in ("count", "sum"):
            raise ValueError(f"{self.name}: where= applies to count and sum only")

    @property
    def operator(self) -> type[Operator]:
        return OPERATIONS[self.operation]

    @property
    def windows(self) -> tuple[int, ...]:
        return (self.window,)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def columns(self) -> tuple[str, ...]:
        """The raw-event columns it reads."""
        return (self.input,) + ((self.where[0],) if self.where else ())

    def plan(self, chunk: Chunk, runs: list[np.ndarray]) -> Evaluator:
        """The vectorized face: may add key runs to ``runs`` before the timeline is built."""
        evaluate = self.operator.plan(self, chunk, runs)
        return lambda tl, windows: {self.name: evaluate(tl, windows[self.window])}

    def state(self, fields: tuple[str, ...]) -> Operator:
        """The incremental face for one entity, reading events as tuples of ``fields``."""
        return self.operator(self, fields)


def _mask(spec: Aggregation, chunk: Chunk) -> np.ndarray | None:
    return None if spec.where is None else chunk.flag(spec.where[0], spec.where[1])


class Operator:
    """Incremental state of one aggregation for one entity. Subclasses hold the state in
    slots and implement ``update(event)``, ``delete(event, window)``, ``merge(other)`` (other:
    the state of events later than all of this one's) and ``result()`` (a tuple, one item
    per output), and ``plan`` (the vectorized face)."""

    __slots__ = ("i",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        self.i = fields.index(spec.input)

    @staticmethod
    def plan(spec: Aggregation, chunk: Chunk, runs: list[np.ndarray]) -> Callable[[Timeline, Window], Any]:
        raise NotImplementedError


class _Filtered(Operator):
    """An operator that counts only the events its spec's ``where`` admits."""

    __slots__ = ("wi", "wv")

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.wi, self.wv = (fields.index(spec.where[0]), spec.where[1]) if spec.where else (None, None)


class Count(_Filtered):
    """Number of events."""

    __slots__ = ("n",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.n = 0

    def update(self, e: tuple) -> None:
        if self.wi is None or e[self.wi] in self.wv:
            self.n += 1

    def delete(self, e: tuple, w: int) -> None:
        if self.wi is None or e[self.wi] in self.wv:
            self.n -= 1

    def merge(self, other: Count) -> None:
        self.n += other.n

    def result(self) -> tuple:
        return (self.n,)

    @staticmethod
    def plan(spec, chunk, runs):
        flag = _mask(spec, chunk)
        return lambda tl, w: w.n if flag is None else w.sum(flag)


class Sum(_Filtered):
    """Sum of an integer input (exact: Python integers here, int64 window differences there)."""

    __slots__ = ("s",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.s = 0

    def update(self, e: tuple) -> None:
        if self.wi is None or e[self.wi] in self.wv:
            self.s += e[self.i]

    def delete(self, e: tuple, w: int) -> None:
        if self.wi is None or e[self.wi] in self.wv:
            self.s -= e[self.i]

    def merge(self, other: Sum) -> None:
        self.s += other.s

    def result(self) -> tuple:
        return (self.s,)

    @staticmethod
    def plan(spec, chunk, runs):
        values, flag = chunk.values(spec.input), _mask(spec, chunk)
        values = values if flag is None else values * flag
        return lambda tl, w: w.sum(values)


class Max(Operator):
    """Largest value: a monotonic queue (each value is dropped once a larger one enters)."""

    __slots__ = ("q",)
    SIGN = 1

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.q: deque = deque()

    def update(self, e: tuple) -> None:
        v, q = self.SIGN * e[self.i], self.q
        while q and q[-1] < v:
            q.pop()
        q.append(v)

    def delete(self, e: tuple, w: int) -> None:
        # The leaving event is the window's earliest: it heads the queue unless a larger later
        # value pushed it out, and then the head is larger than it.
        if self.q and self.q[0] == self.SIGN * e[self.i]:
            self.q.popleft()

    def merge(self, other: Max) -> None:
        if other.q:
            while self.q and self.q[-1] < other.q[0]:
                self.q.pop()
            self.q.extend(other.q)

    def result(self) -> tuple:
        return (self.SIGN * self.q[0] if self.q else 0,)

    @classmethod
    def plan(cls, spec, chunk, runs):
        values = cls.SIGN * chunk.values(spec.input)
        return lambda tl, w: cls.SIGN * range_max(values, w.lo, w.hi)


class Min(Max):
    """Smallest value (the maximum of the negated values)."""

    __slots__ = ()
    SIGN = -1


class Distinct(Operator):
    """Number of distinct values: a count per value. Vectorized, from islands: per (entity,
    value) the union of the intervals ``[t, t + w)`` of its events; the value is in the
    window exactly while an island is open."""

    __slots__ = ("counts",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.counts: dict = {}

    def update(self, e: tuple) -> None:
        v = e[self.i]
        self.counts[v] = self.counts.get(v, 0) + 1

    def delete(self, e: tuple, w: int) -> None:
        v = e[self.i]
        k = self.counts[v] - 1
        if k:
            self.counts[v] = k
        else:
            del self.counts[v]

    def merge(self, other: Distinct) -> None:
        for v, k in other.counts.items():
            self.counts[v] = self.counts.get(v, 0) + k

    def result(self) -> tuple:
        return (len(self.counts),)

    @staticmethod
    def plan(spec, chunk, runs):
        starts, ends, _ = chunk.islands(chunk.values(spec.input), spec.window)
        i = len(runs)
        runs += [starts, ends]
        return lambda tl, w: tl.count(i) - tl.count(i + 1)


class DistinctList(Distinct):
    """The sorted distinct values (strings), as a list."""

    __slots__ = ()

    def result(self) -> tuple:
        return (sorted(self.counts),)

    @staticmethod
    def plan(spec, chunk, runs):
        value_codes, names = codes(chunk.column(spec.input))
        _, _, islands = chunk.islands(value_codes, spec.window)
        return lambda tl, w: open_lists(tl, islands, names)


class CountSquares(Distinct):
    """Sum over distinct values of the squared number of events with that value (how
    concentrated the events are on few values). Vectorized, per (entity, value) pair: the
    pair's count changes at its own change points, and each change adds ``new**2 - old**2``."""

    __slots__ = ("sq",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.sq = 0

    def update(self, e: tuple) -> None:
        v = e[self.i]
        k = self.counts.get(v, 0)
        self.counts[v] = k + 1
        self.sq += 2 * k + 1

    def delete(self, e: tuple, w: int) -> None:
        self.sq -= 2 * self.counts[e[self.i]] - 1
        super().delete(e, w)

    def merge(self, other: CountSquares) -> None:
        super().merge(other)
        self.sq = sum(k * k for k in self.counts.values())

    def result(self) -> tuple:
        return (self.sq,)

    @staticmethod
    def plan(spec, chunk, runs):
        order, pair, pair_entity = chunk.pairs(chunk.values(spec.input))
        pkey = pair * chunk.span + (chunk.t[order] - chunk.t0)
        ptl = Timeline([pkey, pkey + spec.window])
        n_after = ptl.count(0) - ptl.count(1)
        p_of = ptl.keys // chunk.span
        n_before = np.zeros_like(n_after)
        n_before[1:] = np.where(p_of[1:] == p_of[:-1], n_after[:-1], 0)
        delta = n_after * n_after - n_before * n_before
        keys = chunk.entity_key(pair_entity[p_of], ptl.keys % chunk.span + chunk.t0)
        key_order = np.argsort(keys, kind="stable")
        i = len(runs)
        runs.append(keys[key_order])
        return lambda tl, w: tl.total(i, delta[key_order])


class SumSquares(Operator):
    """Sum of squared integer values, as the float64 nearest to the exact sum (it can exceed
    int64: ten squared amounts of 1e9 cents do). Vectorized, as two exact int64 window sums
    of the squares' high and low 32 bits (``timeline.float_of``)."""

    __slots__ = ("s",)

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.s = 0

    def update(self, e: tuple) -> None:
        self.s += e[self.i] * e[self.i]

    def delete(self, e: tuple, w: int) -> None:
        self.s -= e[self.i] * e[self.i]

    def merge(self, other: SumSquares) -> None:
        self.s += other.s

    def result(self) -> tuple:
        return (float(self.s),)

    @staticmethod
    def plan(spec, chunk, runs):
        values = chunk.values(spec.input)
        square = values * values  # < 2**63 for the engine's input limits
        return lambda tl, w: float_of(w.sum(square >> 32), w.sum(square & 0xFFFFFFFF))


class Last(Operator):
    """The input of the ``nth`` latest event (event order: time, then the stream's tie-break)."""

    __slots__ = ("q", "nth")

    def __init__(self, spec: Aggregation, fields: tuple[str, ...]):
        super().__init__(spec, fields)
        self.q: deque = deque()
        self.nth = spec.nth

    def update(self, e: tuple) -> None:
        self.q.append(e[self.i])

    def delete(self, e: tuple, w: int) -> None:
        self.q.popleft()

    def merge(self, other: Last) -> None:
        self.q.extend(other.q)

    def result(self) -> tuple:
        return (self.q[-self.nth] if len(self.q) >= self.nth else 0,)

    @staticmethod
    def plan(spec, chunk, runs):
        values = chunk.values(spec.input)
        return lambda tl, w: values[np.maximum(w.hi - spec.nth, 0)]


class First(Last):
    """The input of the earliest event in the window."""

    __slots__ = ()

    def result(self) -> tuple:
        return (self.q[0] if self.q else 0,)

    @staticmethod
    def plan(spec, chunk, runs):
        values = chunk.values(spec.input)
        return lambda tl, w: values[np.minimum(w.lo, len(values) - 1)]


OPERATIONS: dict[str, type[Operator]] = {
    "count": Count, "sum": Sum, "max": Max, "min": Min, "distinct": Distinct,
    "distinct_list": DistinctList, "count_squares": CountSquares, "sum_squares": SumSquares,
    "last": Last, "first": First,
}
"""Every operation by name; ``Aggregation.operation`` is one of these keys."""
