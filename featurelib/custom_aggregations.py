"""Named custom aggregates: several results from one rule that no single operation expresses.

They follow the protocol of ``featurelib.aggregations.Aggregation`` (``windows``,
``outputs``, ``columns``, ``plan`` for the batch engine, ``state`` for the stream) so both
engines evaluate them like any spec.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from featurelib.aggregations import Evaluator
from featurelib.timeline import Chunk, Timeline, Window, codes


@dataclass(frozen=True)
class CurrentSession:
    """The entity's current session and what it did.

    The current session at ``T`` is the session (``input``) of the latest event in ``(T -
    timeout, T]``, ties broken by the event order (time, then the greatest session id); there
    is none when that interval holds no event. Its aggregates cover its events in ``(T -
    horizon, T]``: ``has_session`` (0/1), ``first`` and ``last`` (event times; undefined without
    a session), and per name in ``counts`` the number of its events whose ``kind_column`` is
    the given kind."""

    timeout: int
    horizon: int
    input: str = "session_id"
    kind_column: str = "event_type"
    counts: tuple[tuple[str, str], ...] = ()
    has: str = "has_session"
    first: str = "s_first"
    last: str = "s_last"

    def __post_init__(self) -> None:
        if not 0 < self.timeout < self.horizon:
            raise ValueError("CurrentSession needs 0 < timeout < horizon")

    @property
    def windows(self) -> tuple[int, ...]:
        return (self.timeout, self.horizon)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.has, self.first, self.last) + tuple(name for name, _ in self.counts)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.input, self.kind_column)

    def plan(self, chunk: Chunk, runs: list[np.ndarray]) -> Evaluator:
        """Per (entity, session) pair, window totals over the horizon at the pair's change
        points; at each key, the pair of the latest event in the timeout window is looked up
        (events are sorted by time, then session id, so the latest is at ``hi - 1``)."""
        session, _ = codes(chunk.column(self.input))
        order, pair, _ = chunk.pairs(session)
        tp = chunk.t[order]
        pkey = pair * chunk.span + (tp - chunk.t0)
        ptl = Timeline([pkey, pkey + self.horizon])
        pw = Window(ptl, 1)
        pair_of_event = np.empty(len(order), np.int64)
        pair_of_event[order] = pair
        flags = {name: chunk.flag(self.kind_column, {kind})[order] for name, kind in self.counts}

        def evaluate(tl: Timeline, windows: dict[int, Window]) -> dict[str, np.ndarray]:
            recent = windows[self.timeout]
            has = recent.n > 0
            query = pair_of_event[np.maximum(recent.hi - 1, 0)] * chunk.span + (tl.keys % chunk.span)
            at = np.maximum(np.searchsorted(ptl.keys, query, "right") - 1, 0)
            out = {self.has: has.astype(np.int64), self.first: tp[np.minimum(pw.lo[at], len(tp) - 1)],
                   self.last: tp[np.maximum(pw.hi[at] - 1, 0)]}
            for name, flag in flags.items():
                out[name] = np.where(has, pw.sum(flag)[at], 0)
            return out

        return evaluate

    def state(self, fields: tuple[str, ...]) -> _SessionState:
        return _SessionState(self, fields)


class _SessionState:
    """Incremental: the sessions of the events in the timeout window, in event order, and per
    session its event times and counts in the horizon window."""

    __slots__ = ("si", "ki", "ti", "timeout", "kinds", "recent", "sessions")

    def __init__(self, spec: CurrentSession, fields: tuple[str, ...]):
        self.si, self.ki, self.ti = fields.index(spec.input), fields.index(spec.kind_column), fields.index("event_timestamp")
        self.timeout = spec.timeout
        self.kinds = [kind for _, kind in spec.counts]
        self.recent: deque = deque()
        self.sessions: dict = {}  # session -> [times (deque), count per kind...]

    def update(self, e: tuple) -> None:
        s = e[self.si]
        self.recent.append(s)
        st = self.sessions.get(s)
        if st is None:
            st = self.sessions[s] = [deque()] + [0] * len(self.kinds)
        st[0].append(e[self.ti])
        for j, kind in enumerate(self.kinds, 1):
            if e[self.ki] == kind:
                st[j] += 1

    def delete(self, e: tuple, w: int) -> None:
        if w == self.timeout:
            self.recent.popleft()
            return
        s = e[self.si]
        st = self.sessions[s]
        st[0].popleft()
        if not st[0]:
            del self.sessions[s]
            return
        for j, kind in enumerate(self.kinds, 1):
            if e[self.ki] == kind:
                st[j] -= 1

    def merge(self, other: _SessionState) -> None:
        self.recent.extend(other.recent)
        for s, theirs in other.sessions.items():
            st = self.sessions.get(s)
            if st is None:
                self.sessions[s] = [deque(theirs[0])] + theirs[1:]
            else:
                st[0].extend(theirs[0])
                st[1:] = [a + b for a, b in zip(st[1:], theirs[1:])]

    def result(self) -> tuple:
        if not self.recent:
            return (0, 0, 0) + (0,) * len(self.kinds)
        st = self.sessions[self.recent[-1]]
        return (1, st[0][0], st[0][-1], *st[1:])
