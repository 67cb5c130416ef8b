"""Each aggregation operation's two faces against a brute-force scan, on random events.

``featurelib.aggregations`` gives every operation a vectorized face (``plan``: every change
point of every entity at once, for the batch engine) and an incremental face (``update`` /
``delete`` / ``merge`` / ``result``, for the stream processor). Here both are held equal to
plain Python over the events of one entity in ``(T - w, T]``, at every change point ``T``:

* the vectorized face on a ``timeline.Chunk`` built as ``engine.compute_view`` builds it;
* the incremental face driven as the stream drives it (events enter at their time and leave
  ``w`` later, first in first out);
* ``merge`` of the states of two consecutive parts of a window, against one state fed all of
  it, and against brute force while the merged state's events then leave;
* the custom ``CurrentSession`` against ``featurelib.reference.current_session`` and direct
  counting;
* the views' declarations (distinct aggregate names, change offsets) and ``Aggregation``'s
  validation.

Event times sit on a coarse grid, some 1 µs off it, so ties and window edges ``e + w``
(exactly on another event, or 1 µs either side) happen on purpose; amounts include equal
values, negatives and squares near 2**63 (their sums exceed int64). Results documented
undefined (``max``, ``min``, ``last``, ``first`` of an empty window; ``last`` with ``nth=2``
below two events; a session's times without a session) are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from featurelib import aggregations, engine, reference, timeline
from featurelib import semantics as s
from featurelib.aggregations import Aggregation
from featurelib.custom_aggregations import CurrentSession
from featurelib.timeutil import DAY, SECOND, column_us
from tests.events import BASE_US, random_clickstream, random_transactions, records

VIEW = s.TRANSACTION_STATS  # the stream whose events these specs read; join key card_id
GRID = 30 * SECOND
WINDOWS = (1, 60 * SECOND, 90 * SECOND, 5 * 60 * SECOND)  # 1 µs, and multiples of the grid

# (id, operation, input, where, nth): every operation, ``last`` at two depths, count and sum
# with ``where=``, and time-ordered operations over a second input (ties keep table order).
CASES = [
    ("count", "count", "event_timestamp", None, 1),
    ("count_where", "count", "event_timestamp", ("country", frozenset({"US", "DE"})), 1),
    ("sum", "sum", "amount_cents", None, 1),
    ("sum_where", "sum", "amount_cents", ("merchant_category", frozenset({"crypto", "travel"})), 1),
    ("max", "max", "amount_cents", None, 1),
    ("min", "min", "amount_cents", None, 1),
    ("distinct", "distinct", "country", None, 1),
    ("distinct_int", "distinct", "amount_cents", None, 1),
    ("distinct_list", "distinct_list", "country", None, 1),
    ("count_squares", "count_squares", "country", None, 1),
    ("sum_squares", "sum_squares", "amount_cents", None, 1),
    ("last", "last", "event_timestamp", None, 1),
    ("last_nth2", "last", "event_timestamp", None, 2),
    ("last_amount", "last", "amount_cents", None, 1),
    ("last_amount_nth2", "last", "amount_cents", None, 2),
    ("first", "first", "event_timestamp", None, 1),
    ("first_amount", "first", "amount_cents", None, 1),
]
CASE_IDS = [c[0] for c in CASES]
SEEDS = range(3)


def _spec(case: tuple, window: int) -> Aggregation:
    _, operation, input_, where, nth = case
    return Aggregation("agg", operation, input_, window, where=where, nth=nth)


def test_cases_cover_every_operation() -> None:
    assert {c[1] for c in CASES} == set(aggregations.OPERATIONS)


# ------------------------------------------------------------------------------ data


def _transactions(seed: int) -> pa.Table:
    """Random transactions of 3 cards, sorted as the engine sorts them, with times on a 30 s
    grid (some ±1 µs off it) and amounts that tie, go negative or square to nearly 2**63."""
    rng = np.random.default_rng([seed, 11])
    n = 90
    table = random_transactions(rng, n, n_cards=3)
    t = BASE_US + GRID * rng.integers(0, 40, n) + rng.choice([0, 0, 0, 0, 0, 1, -1], n)
    big = timeline.MAX_ABS_AMOUNT
    kind = rng.integers(0, 4, n)
    amounts = np.select(
        [kind == 0, kind == 1, kind == 2],
        [rng.integers(0, 4, n), rng.integers(big - 3, big + 1, n), -rng.integers(0, big + 1, n)],
        rng.integers(50, 1_000_000, n),
    )
    table = table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp",
                             pa.array(t, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
    table = table.set_column(table.schema.get_field_index("amount_cents"), "amount_cents", pa.array(amounts, pa.int64()))
    return engine.sort_events(VIEW, table)


def _by_entity(table: pa.Table, join_key: str) -> list[list[dict[str, Any]]]:
    """The sorted table's events per entity, in table (event) order; entities in table order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records(table):
        out.setdefault(r[join_key], []).append(r)
    return list(out.values())


def _chunk(table: pa.Table, join_key: str, max_offset: int) -> timeline.Chunk:
    """A chunk of a sorted table, as ``engine.compute_view`` builds it."""
    t = column_us(table.column("event_timestamp"))
    entity_col = table.column(join_key).combine_chunks()
    change = np.ones(len(t), bool)
    change[1:] = np.asarray(pc.not_equal(entity_col[1:], entity_col[:-1]).fill_null(True))
    entity = np.cumsum(change) - 1
    t0 = int(t.min())
    return timeline.Chunk(table=table, entity=entity, t=t, t0=t0, span=int(t.max()) - t0 + max_offset + 1)


def _change_points(events: list[dict[str, Any]], offsets: tuple[int, ...]) -> list[int]:
    return sorted({e["event_timestamp"] + o for e in events for o in offsets})


def _in_window(events: list[dict[str, Any]], at: int, w: int) -> list[dict[str, Any]]:
    return [e for e in events if at - w < e["event_timestamp"] <= at]


_UNDEFINED = object()


def _brute(spec: Aggregation, window_events: list[dict[str, Any]]) -> Any:
    """The aggregate over the window's events (in event order), or ``_UNDEFINED``."""
    events = window_events
    if spec.where is not None:
        column, allowed = spec.where
        events = [e for e in events if e[column] in allowed]
    v = [e[spec.input] for e in events]
    op = spec.operation
    if op == "count":
        return len(v)
    if op == "sum":
        return sum(v)
    if op in ("max", "min"):
        return (max(v) if op == "max" else min(v)) if v else _UNDEFINED
    if op == "distinct":
        return len(set(v))
    if op == "distinct_list":
        return sorted(set(v))
    if op == "count_squares":
        return sum(c * c for c in Counter(v).values())
    if op == "sum_squares":
        return float(sum(x * x for x in v))
    if op == "last":
        return v[-spec.nth] if len(v) >= spec.nth else _UNDEFINED
    if op == "first":
        return v[0] if v else _UNDEFINED
    raise AssertionError(op)


def _same(got: Any, expected: Any) -> bool:
    """Equal, and of the same kind: floats bit for bit, integers as integers."""
    if isinstance(expected, float):
        return isinstance(got, float) and got.hex() == expected.hex()
    return type(got) is type(expected) and got == expected


def _fields(spec: Aggregation) -> tuple[str, ...]:
    return tuple(dict.fromkeys(("event_timestamp", *spec.columns)))


def _tuple(e: dict[str, Any], fields: tuple[str, ...]) -> tuple:
    return tuple(e[f] for f in fields)


# ------------------------------------------------------------------------------ vectorized


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vectorized_face_matches_brute_force(case: tuple, seed: int) -> None:
    table = _transactions(seed)
    entities = _by_entity(table, VIEW.join_key)
    checked = 0
    for window in WINDOWS:
        spec = _spec(case, window)
        chunk = _chunk(table, VIEW.join_key, window)
        runs = [chunk.key, chunk.key + window]
        evaluate = spec.plan(chunk, runs)
        tl = timeline.Timeline(runs)
        result = evaluate(tl, {window: timeline.Window(tl, 1)})[spec.name]
        got = result.to_pylist() if isinstance(result, (pa.Array, pa.ChunkedArray)) else np.asarray(result).tolist()
        keys_entity, keys_t = (tl.keys // chunk.span).tolist(), (tl.keys % chunk.span + chunk.t0).tolist()
        # The timeline's keys are exactly the change points of every entity.
        assert list(zip(keys_entity, keys_t)) == [
            (i, T) for i, events in enumerate(entities) for T in _change_points(events, (0, window))]
        assert len(got) == len(keys_t)
        problems = []
        for value, i, T in zip(got, keys_entity, keys_t):
            expected = _brute(spec, _in_window(entities[i], T, window))
            if expected is _UNDEFINED:
                continue
            checked += 1
            if not _same(value, expected):
                problems.append(f"w={window} entity {i} T={T}: got {value!r}, expected {expected!r}")
        assert not problems, "\n".join(problems[:10])
    assert checked > 100


# ------------------------------------------------------------------------------ incremental


def _sweep(op: aggregations.Operator, events: list[dict[str, Any]], fields: tuple[str, ...],
           window: int) -> Iterator[int]:
    """Drive ``op`` through one entity's change points as the stream does; yields each ``T``
    with ``op`` holding the events in ``(T - window, T]``."""
    times = [e["event_timestamp"] for e in events]
    hi = lo = 0
    for T in _change_points(events, (0, window)):
        while hi < len(events) and times[hi] <= T:
            op.update(_tuple(events[hi], fields))
            hi += 1
        while lo < hi and times[lo] <= T - window:
            op.delete(_tuple(events[lo], fields), window)
            lo += 1
        yield T


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_incremental_face_matches_brute_force(case: tuple, seed: int) -> None:
    table = _transactions(seed)
    checked = 0
    problems = []
    for window in WINDOWS:
        spec = _spec(case, window)
        fields = _fields(spec)
        for i, events in enumerate(_by_entity(table, VIEW.join_key)):
            op = spec.state(fields)
            for T in _sweep(op, events, fields, window):
                (value,) = op.result()
                expected = _brute(spec, _in_window(events, T, window))
                if expected is _UNDEFINED:
                    continue
                checked += 1
                if not _same(value, expected):
                    problems.append(f"w={window} entity {i} T={T}: got {value!r}, expected {expected!r}")
    assert not problems, "\n".join(problems[:10])
    assert checked > 100


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_merge_of_consecutive_parts_equals_one_state(case: tuple, seed: int) -> None:
    """At every change point, every split of the window's events into an earlier and a later
    part: the merged state gives the single state's result, and stays right while its events
    leave one by one."""
    table = _transactions(seed)
    window = WINDOWS[-1]
    spec = _spec(case, window)
    fields = _fields(spec)
    checked = 0
    for events in _by_entity(table, VIEW.join_key):
        for T in _change_points(events, (0, window)):
            content = _in_window(events, T, window)
            tuples = [_tuple(e, fields) for e in content]
            whole = spec.state(fields)
            for e in tuples:
                whole.update(e)
            for k in range(len(tuples) + 1):
                a, b = spec.state(fields), spec.state(fields)
                for e in tuples[:k]:
                    a.update(e)
                for e in tuples[k:]:
                    b.update(e)
                a.merge(b)
                assert _same(a.result()[0], whole.result()[0]) or _brute(spec, content) is _UNDEFINED, (T, k)
                for j in range(len(tuples) + 1):
                    expected = _brute(spec, content[j:])
                    if expected is not _UNDEFINED:
                        checked += 1
                        assert _same(a.result()[0], expected), (T, k, j, a.result(), expected)
                    if j < len(tuples):
                        a.delete(tuples[j], window)
    assert checked > 100


# ------------------------------------------------------------------------------ CurrentSession

SESSION = next(a for a in s.USER_ENGAGEMENT.aggregations if isinstance(a, CurrentSession))


def _session_expected(events: list[dict[str, Any]], at: int) -> tuple:
    """(has, first, last, counts...) from the reference's current session and direct counting;
    first and last are None without a session."""
    session = reference.current_session(events, at)
    mine = [e for e in _in_window(events, at, SESSION.horizon) if e["session_id"] == session]
    counts = tuple(sum(e[SESSION.kind_column] == kind for e in mine) for _, kind in SESSION.counts)
    if session is None:
        return (0, None, None) + counts
    times = [e["event_timestamp"] for e in mine]
    return (1, min(times), max(times)) + counts


def _clickstream(seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, 12])
    span = (2 * DAY, DAY // 4)[seed % 2]  # sparse (sessions time out) or dense
    return engine.sort_events(s.USER_ENGAGEMENT, random_clickstream(rng, 210, n_users=3, span=span))


def _session_matches(got: tuple, expected: tuple) -> bool:
    return all(e is None or _same(g, e) for g, e in zip(got, expected, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_current_session_incremental_matches_reference(seed: int) -> None:
    assert (SESSION.timeout, SESSION.horizon) == (s.SESSION_TIMEOUT, s.SESSION_HORIZON)  # the reference's
    table = _clickstream(seed)
    fields = s.USER_ENGAGEMENT.columns
    assert fields[0] == "event_timestamp"
    offsets = (0, SESSION.timeout, SESSION.horizon)
    seen = Counter()
    problems = []
    for events in _by_entity(table, s.USER_ENGAGEMENT.join_key):
        op = SESSION.state(fields)
        times = [e["event_timestamp"] for e in events]
        hi = lo_timeout = lo_horizon = 0
        for T in _change_points(events, offsets):
            while hi < len(events) and times[hi] <= T:
                op.update(_tuple(events[hi], fields))
                hi += 1
            while lo_timeout < hi and times[lo_timeout] <= T - SESSION.timeout:
                op.delete(_tuple(events[lo_timeout], fields), SESSION.timeout)
                lo_timeout += 1
            while lo_horizon < hi and times[lo_horizon] <= T - SESSION.horizon:
                op.delete(_tuple(events[lo_horizon], fields), SESSION.horizon)
                lo_horizon += 1
            got, expected = op.result(), _session_expected(events, T)
            assert len(got) == len(SESSION.outputs)
            seen[expected[0]] += 1
            if not _session_matches(got, expected):
                problems.append(f"{events[0]['user_id']} T={T}: got {got}, expected {expected}")
    assert not problems, "\n".join(problems[:10])
    assert seen[0] > 0 and seen[1] > 0


@pytest.mark.parametrize("seed", range(4))
def test_current_session_vectorized_matches_reference(seed: int) -> None:
    table = _clickstream(seed)
    entities = _by_entity(table, s.USER_ENGAGEMENT.join_key)
    offsets = (0, SESSION.timeout, SESSION.horizon)
    chunk = _chunk(table, s.USER_ENGAGEMENT.join_key, SESSION.horizon)
    runs = [chunk.key + o for o in offsets]
    evaluate = SESSION.plan(chunk, runs)
    tl = timeline.Timeline(runs)
    out = evaluate(tl, {SESSION.timeout: timeline.Window(tl, 1), SESSION.horizon: timeline.Window(tl, 2)})
    columns = [np.asarray(out[name]).tolist() for name in SESSION.outputs]
    keys_entity, keys_t = (tl.keys // chunk.span).tolist(), (tl.keys % chunk.span + chunk.t0).tolist()
    assert list(zip(keys_entity, keys_t)) == [
        (i, T) for i, events in enumerate(entities) for T in _change_points(events, offsets)]
    problems = []
    for k, (i, T) in enumerate(zip(keys_entity, keys_t)):
        got, expected = tuple(c[k] for c in columns), _session_expected(entities[i], T)
        if not _session_matches(got, expected):
            problems.append(f"entity {i} T={T}: got {got}, expected {expected}")
    assert not problems, "\n".join(problems[:10])


# ------------------------------------------------------------------------------ declarations


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_views_declare_distinct_names_and_their_change_offsets(view: s.ViewSemantics) -> None:
    names = view.aggregate_names
    assert len(names) == len(set(names)), names
    windows = set()
    for a in view.aggregations:
        windows |= {a.timeout, a.horizon} if isinstance(a, CurrentSession) else {a.window}
    assert view.change_offsets == (0,) + tuple(sorted(windows))
    assert all(w > 0 for w in windows)


def test_invalid_aggregations_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        Aggregation("x", "nope", window=1)
    with pytest.raises(ValueError, match="where"):
        Aggregation("x", "max", "amount_cents", 60, where=("country", frozenset({"US"})))
    with pytest.raises(ValueError, match="window"):
        Aggregation("x", "count", window=0)
    assert Aggregation("x", "count", window=1, where=("country", frozenset({"US"}))).columns == ("event_timestamp", "country")
