"""Engine internals against brute force: sliding max, the merged timeline, chunk splitting."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from featurelib import engine, timeline
from featurelib import semantics as s
from featurelib.timeutil import DAY
from tests.events import random_events


@pytest.mark.parametrize("seed", range(20))
def test_range_max_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-1000, 1000, int(rng.integers(1, 300)))
    lo = rng.integers(0, len(values) + 1, 500)
    hi = np.minimum(lo + rng.integers(0, 40, 500), len(values))
    got = timeline.range_max(values, lo, hi)
    expected = [values[a:b].max() if b > a else 0 for a, b in zip(lo, hi)]
    assert got.tolist() == expected


def test_timeline_counts_and_totals() -> None:
    rng = np.random.default_rng(3)
    runs = [np.sort(rng.integers(0, 50, n)) for n in (30, 10, 0, 25)]
    values = [rng.integers(0, 9, len(r)) for r in runs]
    tl = timeline.Timeline(runs)
    assert tl.keys.tolist() == sorted(set(np.concatenate(runs).tolist()))
    for i, (run, v) in enumerate(zip(runs, values)):
        assert tl.count(i).tolist() == [int((run <= k).sum()) for k in tl.keys]
        assert tl.total(i, v).tolist() == [int(v[run <= k].sum()) for k in tl.keys]


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_splitting_into_small_chunks_changes_nothing(view: s.ViewSemantics, monkeypatch: pytest.MonkeyPatch) -> None:
    """Composite keys must fit in int64; when they would not, entities are split across chunks."""
    events = random_events(view, np.random.default_rng(21), 150)
    whole = engine.compute_view(view, events)
    monkeypatch.setattr(engine, "_KEY_LIMIT", 1 << 44)  # forces splits between entities
    assert engine.compute_view(view, events).equals(whole)


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_one_long_lived_entity_is_split_in_time_exactly(view: s.ViewSemantics, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    events = random_events(view, rng, 200)
    key = view.join_key
    events = events.set_column(events.schema.get_field_index(key), key, pa.array(["only"] * events.num_rows))
    spread = events.column("event_timestamp").cast("int64").to_numpy() + rng.integers(0, 10 * DAY, events.num_rows)
    events = events.set_column(events.schema.get_field_index("event_timestamp"), "event_timestamp",
                               pa.array(spread).cast(pa.timestamp("us", tz="UTC")))
    whole = engine.compute_view(view, events)
    monkeypatch.setattr(engine, "_KEY_LIMIT", 1 << 47)  # one entity, ~11 days: must split in time
    assert engine.compute_view(view, events).equals(whole)


def test_an_entity_too_dense_to_split_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    events = random_events(s.TRANSACTION_STATS, np.random.default_rng(1), 50)
    events = events.set_column(1, "card_id", pa.array(["card_x"] * 50))
    monkeypatch.setattr(engine, "_KEY_LIMIT", 1 << 30)
    with pytest.raises(ValueError, match="too dense"):
        engine.compute_view(s.TRANSACTION_STATS, events)


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_no_events_gives_an_empty_table_with_the_schema(view: s.ViewSemantics) -> None:
    events = random_events(view, np.random.default_rng(0), 5).slice(0, 0)
    out = engine.compute_view(view, events)
    assert out.num_rows == 0
    assert out.schema == engine.output_schema(view)
    assert out.schema.names == [view.join_key, "event_timestamp", *view.features]


def test_window_sums_stay_exact_when_running_sums_wrap() -> None:
    """``Timeline.total`` keeps running sums in int64, which wrap around; a window sum (the
    difference of two) is exact while the window's true sum fits int64."""
    keys = np.arange(40, dtype=np.int64)
    values = np.full(40, 1 << 60, np.int64) - np.arange(40)  # the running sum wraps 5 times
    tl = timeline.Timeline([keys, keys + 7])
    window = tl.total(0, values) - tl.total(1, values)
    expected = [sum(int(v) for k, v in zip(keys, values) if key - 7 < k <= key) for key in tl.keys.tolist()]
    assert window.tolist() == expected and max(expected) == 7 * (1 << 60) - sum(range(7))
