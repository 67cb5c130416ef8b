"""The engine is exact at the raw-event schema's maxima (``featurelib.raw_events``).

Amounts go up to ``MAX_AMOUNT_CENTS`` (1e9 cents), so one squared amount is up to 1e18 and
a day's sum of squares of ten such transactions no longer fits int64. The engine must still
give, bit for bit, what the brute-force reference gives with Python's exact integers: on the
rows of every view that reads amounts, with dozens to thousands of transactions per card in
a day, through the batch engine and through both ways the stream core computes a step. The
same for dwell time and scroll depth at their maxima in the clickstream views.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from featurelib import engine, reference, timeline
from featurelib import semantics as s
from featurelib.raw_events import MAX_AMOUNT_CENTS, MAX_DWELL_MS
from featurelib.stream.core import StreamCore
from featurelib.timeutil import DAY, HOUR, column_us
from tests.events import BASE_US, bitwise_equal, feature_rows, random_clickstream, random_transactions, records

AMOUNT_VIEWS = [s.TRANSACTION_STATS, s.CARD_PROFILE, s.DEVICE_ACTIVITY]
CLICK_VIEWS = [s.USER_ENGAGEMENT, s.SESSION_ACTIVITY]


def _amounts(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """``max``: every amount the largest allowed; ``max_or_zero``: each the largest or 0 (one in
    five); ``near_max``: within 1,000 cents of the largest; ``mixed``: each near 0 or near the
    largest."""
    near_max = MAX_AMOUNT_CENTS - rng.integers(0, 1_000, n)
    if kind == "max":
        return np.full(n, MAX_AMOUNT_CENTS, np.int64)
    if kind == "max_or_zero":
        return np.where(rng.random(n) < 0.2, 0, MAX_AMOUNT_CENTS)
    if kind == "near_max":
        return near_max
    return np.where(rng.random(n) < 0.5, rng.integers(0, 1_000, n), near_max)


def _with(table: pa.Table, name: str, values: pa.Array | np.ndarray | list) -> pa.Table:
    type_ = table.schema.field(name).type
    column = values.cast(type_) if isinstance(values, pa.Array) else pa.array(np.asarray(values, np.int64), type_)
    return table.set_column(table.schema.get_field_index(name), name, column)


def _transactions(rng: np.random.Generator, n: int, kind: str, n_cards: int = 2, span: int = DAY // 2) -> pa.Table:
    """``n`` transactions of ``n_cards`` cards (and 3 devices) within ``span``: all of a card's
    transactions share 24-hour windows."""
    events = random_transactions(rng, n, n_cards=n_cards, span=span)
    return _with(events, "amount_cents", _amounts(rng, n, kind))


def _mismatches(view: s.ViewSemantics, got: list[dict], expected: list[dict]) -> list[str]:
    bad = []
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g[view.join_key], g["event_timestamp"]) == (e[view.join_key], e["event_timestamp"])
        bad += [f"{g[view.join_key]} @ {g['event_timestamp']}: {c} engine={g[c]!r} reference={v!r}"
                for c, v in e.items() if not bitwise_equal(g[c], v)]
    return bad


def _sampled_reference(view: s.ViewSemantics, events: pa.Table, rows: list[dict], rng: np.random.Generator,
                       k: int) -> tuple[list[dict], list[dict]]:
    """The reference at ``k`` of the engine's rows (all the largest-window sums at their peak are
    among them: the rows of each entity's last event are always checked)."""
    by_entity: dict[str, list[dict]] = {}
    for e in records(events):
        by_entity.setdefault(e[view.join_key], []).append(e)
    last = {e: max(x["event_timestamp"] for x in evs) for e, evs in by_entity.items()}
    picked = set(rng.choice(len(rows), min(k, len(rows)), replace=False).tolist())
    picked |= {i for i, r in enumerate(rows) if r["event_timestamp"] == last[r[view.join_key]]}
    return [rows[i] for i in sorted(picked)], [
        {view.join_key: rows[i][view.join_key], "event_timestamp": rows[i]["event_timestamp"],
         **reference.REFERENCE[view.name](by_entity[rows[i][view.join_key]], rows[i]["event_timestamp"])}
        for i in sorted(picked)]


# ---------------------------------------------------------------------------- amounts


@pytest.mark.parametrize("view", AMOUNT_VIEWS, ids=lambda v: v.name)
@pytest.mark.parametrize("kind", ["max", "max_or_zero", "near_max", "mixed"])
@pytest.mark.parametrize("n", [40, 120])
def test_rows_equal_reference_at_the_largest_amounts(view: s.ViewSemantics, kind: str, n: int) -> None:
    rng = np.random.default_rng([n, len(kind), len(view.name)])
    events = _transactions(rng, n, kind)
    got = feature_rows(engine.compute_view(view, events))
    assert not _mismatches(view, got, reference.reference_rows(view, records(events)))


@pytest.mark.parametrize("view", AMOUNT_VIEWS, ids=lambda v: v.name)
@pytest.mark.parametrize("kind", ["max", "max_or_zero", "mixed"])
def test_thousands_of_largest_amounts_in_one_day(view: s.ViewSemantics, kind: str) -> None:
    """3,000 transactions of one card within 6 hours: sums of up to 3,000 squares of 1e18."""
    rng = np.random.default_rng([3, len(kind), len(view.name)])
    events = _transactions(rng, 3_000, kind, n_cards=1, span=6 * HOUR)
    rows = feature_rows(engine.compute_view(view, events))
    got, expected = _sampled_reference(view, events, rows, rng, 60)
    assert not _mismatches(view, got, expected)


def test_the_issue_two_transactions_largest_amount_and_zero() -> None:
    """The issue's reproduction at the schema's maximum (its 4,000,000,000 cents are quarantined now)."""
    events = _with(_with(random_transactions(np.random.default_rng(0), 2, n_cards=1), "amount_cents",
                         [MAX_AMOUNT_CENTS, 0]), "event_timestamp", [BASE_US, BASE_US + HOUR])
    rows = feature_rows(engine.compute_view(s.CARD_PROFILE, events))
    expected = reference.reference_rows(s.CARD_PROFILE, records(events))
    assert not _mismatches(s.CARD_PROFILE, rows, expected)
    assert rows[1]["card_amount_std_24h"] == MAX_AMOUNT_CENTS / 2 / 100 == 5_000_000.0


def test_the_issue_symptom_std_zero_at_the_largest_amount() -> None:
    """Ten transactions of the largest amount and one of 0 in a day: the sum of squares (1e19)
    exceeds int64; wrapped, it made the variance negative and the standard deviation 0.0."""
    n = 11
    events = _with(_with(random_transactions(np.random.default_rng(1), n, n_cards=1), "amount_cents",
                         [MAX_AMOUNT_CENTS] * (n - 1) + [0]),
                   "event_timestamp", BASE_US + np.arange(n) * HOUR)
    rows = feature_rows(engine.compute_view(s.CARD_PROFILE, events))
    expected = reference.reference_rows(s.CARD_PROFILE, records(events))
    assert not _mismatches(s.CARD_PROFILE, rows, expected)
    at_last = rows[n - 1]["card_amount_std_24h"]
    assert at_last == math.sqrt(10 * 1e18 / 11 - (10 * 1e9 / 11) ** 2) / 100 and at_last > 2_800_000


def test_largest_amounts_exactly_on_window_edges() -> None:
    """Many largest amounts entering and leaving the window at the same instants: the window sums
    are differences of running sums that wrap around int64 many times over."""
    rng = np.random.default_rng(4)
    t = BASE_US + np.sort(rng.integers(0, 3, 400)) * s.W_24H + rng.integers(0, 3, 400)
    events = _with(_transactions(rng, 400, "mixed", n_cards=1), "event_timestamp", t)
    for view in AMOUNT_VIEWS:
        rows = feature_rows(engine.compute_view(view, events))
        got, expected = _sampled_reference(view, events, rows, rng, 80)
        assert not _mismatches(view, got, expected), view.name


# ------------------------------------------------------------------------- stream core


def _stream_rows(events: pa.Table, kind: str, rng: np.random.Generator, path: str) -> dict[tuple[str, str, int], dict]:
    """Events through ``StreamCore.step`` in time order, in random micro-batches, on the event
    clock; the last emission per (view, entity, instant), as Redis would hold it."""
    events = events.take(pa.array(np.argsort(column_us(events.column("event_timestamp")), kind="stable")))
    core = StreamCore(lateness_us=0, now_us=0, kinds=(kind,), vectorized_from=0 if path == "engine" else 10**9)  # every step by the engine, or every step incrementally
    emitted: dict[tuple[str, str, int], dict] = {}

    def record(result) -> None:
        for view, rows in result.rows.items():
            key = s.VIEWS[view].join_key
            for r in feature_rows(rows):
                emitted[(view, r[key], r["event_timestamp"])] = r

    pos = 0
    while pos < events.num_rows:
        n = int(rng.integers(1, 12))
        record(core.step({kind: (events.slice(pos, n), None)}))
        pos += n
    end = int(column_us(events.column("event_timestamp")).max()) + s.W_24H + 1
    record(core.step({}, now_us=end))
    return emitted


@pytest.mark.parametrize("path", ["engine", "incremental"])
@pytest.mark.parametrize("kind", ["max_or_zero", "mixed"])
def test_stream_core_at_the_largest_amounts(path: str, kind: str) -> None:
    rng = np.random.default_rng([5, len(kind), len(path)])
    events = _transactions(rng, 60, kind)
    emitted = _stream_rows(events, s.TRANSACTIONS, rng, path)
    for view in AMOUNT_VIEWS:
        expected = reference.reference_rows(view, records(events))
        got = [emitted[(view.name, r[view.join_key], r["event_timestamp"])] for r in expected]
        assert not _mismatches(view, got, expected), view.name
        assert len([k for k in emitted if k[0] == view.name]) == len(expected)


# --------------------------------------------------------------------------- clickstream


def _clickstream(rng: np.random.Generator, n: int, kind: str, span: int) -> pa.Table:
    """``n`` events of 2 users within ``span``; dwell and scroll of page views at (``max``) or
    near (``near_max``) their largest values."""
    events = random_clickstream(rng, n, n_users=2, span=span)
    pv = np.asarray(events.column("event_type").to_pylist()) == "page_view"
    dwell = np.full(n, MAX_DWELL_MS) if kind == "max" else MAX_DWELL_MS - rng.integers(0, 1_000, n)
    scroll = np.full(n, 100) if kind == "max" else 100 - rng.integers(0, 3, n)
    events = _with(events, "dwell_ms", pa.array(dwell, pa.int64(), mask=~pv))
    return _with(events, "scroll_pct", pa.array(scroll, pa.int64(), mask=~pv))


@pytest.mark.parametrize("view", CLICK_VIEWS, ids=lambda v: v.name)
@pytest.mark.parametrize("kind", ["max", "near_max"])
def test_clickstream_rows_equal_reference_at_the_largest_dwell_and_scroll(view: s.ViewSemantics, kind: str) -> None:
    rng = np.random.default_rng([6, len(kind), len(view.name)])
    events = _clickstream(rng, 120, kind, span=HOUR)
    got = feature_rows(engine.compute_view(view, events))
    assert not _mismatches(view, got, reference.reference_rows(view, records(events)))


@pytest.mark.parametrize("view", CLICK_VIEWS, ids=lambda v: v.name)
def test_thousands_of_clicks_at_the_largest_dwell(view: s.ViewSemantics) -> None:
    rng = np.random.default_rng([7, len(view.name)])
    events = _clickstream(rng, 3_000, "max", span=20 * 60 * 1_000_000)
    rows = feature_rows(engine.compute_view(view, events))
    got, expected = _sampled_reference(view, events, rows, rng, 60)
    assert not _mismatches(view, got, expected)


@pytest.mark.parametrize("path", ["engine", "incremental"])
def test_stream_core_at_the_largest_dwell_and_scroll(path: str) -> None:
    rng = np.random.default_rng([8, len(path)])
    events = _clickstream(rng, 60, "max", span=HOUR)
    emitted = _stream_rows(events, s.CLICKSTREAM, rng, path)
    for view in CLICK_VIEWS:
        expected = reference.reference_rows(view, records(events))
        got = [emitted[(view.name, r[view.join_key], r["event_timestamp"])] for r in expected]
        assert not _mismatches(view, got, expected), view.name


# ------------------------------------------------------------------- the bounds themselves


def test_exactly_rounded_conversion_of_split_sums() -> None:
    """``timeline.float_of(hi, lo)`` is Python's ``float(hi * 2**32 + lo)``: ties to even, carries from
    ``lo`` into ``hi``, and ``hi`` too large for the vectorized path."""
    rng = np.random.default_rng(9)
    hi = np.concatenate([rng.integers(0, 1 << 50, 2_000), rng.integers(0, 1 << 62, 200), rng.integers(-(1 << 62), 0, 50)])
    lo = np.concatenate([rng.integers(0, 1 << 54, 2_000), rng.integers(0, 1 << 62, 200), rng.integers(0, 1 << 40, 50)])
    # ties: exactly half an ulp above a float, with an even and an odd last bit (2**60's ulp is 2**8)
    ties = [(1 << 28, 1 << 7), (1 << 28, 3 << 7), ((1 << 28) + 1, 1 << 7), ((1 << 52) - 1, 1 << 31), (1 << 53, 1 << 31)]
    hi = np.concatenate([hi, [h for h, _ in ties]]).astype(np.int64)
    lo = np.concatenate([lo, [x for _, x in ties]]).astype(np.int64)
    got = timeline.float_of(hi, lo)
    expected = [float((int(h) << 32) + int(x)) for h, x in zip(hi, lo)]
    assert [g.hex() for g in got.tolist()] == [e.hex() for e in expected]


def test_the_schema_is_inside_the_engine_bounds() -> None:
    assert timeline.MAX_ABS_AMOUNT ** 2 <= 2**63 - 1 < (timeline.MAX_ABS_AMOUNT + 1) ** 2
    assert MAX_AMOUNT_CENTS <= timeline.MAX_ABS_AMOUNT
    assert timeline.MAX_ABS_VALUE >= MAX_DWELL_MS >= 100
    # the largest square's halves: window sums of either fit int64 for any chunk
    square = MAX_AMOUNT_CENTS ** 2
    assert (square >> 32) * engine._MAX_CHUNK_EVENTS < 2**53 and (2**32 - 1) * engine._MAX_CHUNK_EVENTS < 2**63
    assert timeline.MAX_ABS_VALUE * engine._MAX_CHUNK_EVENTS < 2**63
    assert MAX_AMOUNT_CENTS * engine._MAX_CHUNK_EVENTS < 2**53  # sums of cents convert to float exactly
    for view in s.VIEWS.values():  # the key limit alone keeps chunks below the event limit
        assert engine._KEY_LIMIT // (max(view.change_offsets) + 1) < engine._MAX_CHUNK_EVENTS


@pytest.mark.parametrize(("column", "value"), [("amount_cents", 4_000_000_000), ("amount_cents", -4_000_000_000),
                                               ("dwell_ms", 1 << 41), ("scroll_pct", -(1 << 41))])
def test_values_beyond_the_exact_range_are_refused(column: str, value: int) -> None:
    """The issue's 4,000,000,000 cents (quarantined by the schema) must not reach the engine; if
    it does, the engine refuses it instead of wrapping around."""
    rng = np.random.default_rng(10)
    events = random_transactions(rng, 5) if column == "amount_cents" else random_clickstream(rng, 5)
    values = events.column(column).to_pylist()
    values[2] = value
    events = _with(events, column, pa.array(values, pa.int64()))
    views = AMOUNT_VIEWS if column == "amount_cents" else CLICK_VIEWS
    for view in views:
        if view is s.SESSION_ACTIVITY and column == "scroll_pct":
            continue  # the view does not read scroll depth
        with pytest.raises(ValueError, match=f"{column} .* beyond the engine's exact range"):
            engine.compute_view(view, events)


def test_the_event_limit_per_chunk_splits_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    events = _transactions(rng, 200, "mixed", n_cards=3, span=3 * DAY)
    whole = {v.name: engine.compute_view(v, events) for v in AMOUNT_VIEWS}
    monkeypatch.setattr(engine, "_MAX_CHUNK_EVENTS", 80)  # entity splits, time splits
    for view in AMOUNT_VIEWS:
        assert engine.compute_view(view, events).equals(whole[view.name]), view.name


def test_country_lists_beyond_arrow_offsets_are_built_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """``card_countries_24h`` is a list<string> column (int32 offsets): a chunk whose lists would
    hold more entries, or bytes, than that gets the column in pieces, with the same rows."""
    rng = np.random.default_rng(12)
    events = _transactions(rng, 300, "mixed", n_cards=3, span=3 * DAY)
    countries = [c * int(rng.integers(1, 40)) for c in events.column("country").to_pylist()]  # up to 80 bytes
    events = _with(events, "country", pa.array(countries))
    whole = engine.compute_view(s.CARD_PROFILE, events)
    assert whole.column("card_countries_24h").num_chunks == 1
    lists = whole.column("card_countries_24h").to_pylist()
    total, nbytes = sum(len(x) for x in lists), sum(len(c) for x in lists for c in x)
    widest = max(max(len(x), sum(len(c) for c in x)) for x in lists)
    for limit in (total // 7, max(nbytes // 7, widest)):  # too many entries; too many bytes
        monkeypatch.setattr(timeline, "LIST_LIMIT", limit)
        got = engine.compute_view(s.CARD_PROFILE, events)
        assert got.column("card_countries_24h").num_chunks >= 7
        assert got.equals(whole)
        since = whole.column("event_timestamp")[len(lists) // 3].value
        assert engine.compute_view(s.CARD_PROFILE, events, since_us=since).equals(
            whole.filter(pa.compute.greater_equal(whole.column("event_timestamp").cast(pa.int64()), since)))
    monkeypatch.setattr(timeline, "LIST_LIMIT", widest - 1)
    with pytest.raises(ValueError, match="more than an Arrow list can"):
        engine.compute_view(s.CARD_PROFILE, events)
