"""Every windowed feature against its brute-force definition, on random event sets.

``featurelib.reference`` evaluates each feature straight from its written
definition by scanning the events. The engine (used by the batch job and the stream
processor) must agree bit for bit:

* on the rows it emits (one per entity and change point), and
* on a point-in-time lookup at any instant, including exact event times and window
  edges ``e + w`` and ``e + w ± 1 µs``: the latest row at or before the instant must
  carry the exact value at that instant.
"""

from __future__ import annotations

import bisect

import numpy as np
import pytest

from featurelib import reference
from featurelib import semantics as s
from featurelib.engine import compute_view
from tests.events import bitwise_equal, feature_rows, random_events, records

VIEWS = list(s.VIEWS.values())


def _mismatches(view: s.ViewSemantics, got: list[dict], expected: list[dict]) -> list[str]:
    problems = []
    for g, e in zip(got, expected):
        for col, value in e.items():
            if not bitwise_equal(g[col], value):
                problems.append(f"{g[view.join_key]} @ {g['event_timestamp']}: {col} engine={g[col]!r} reference={value!r}")
    return problems


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
@pytest.mark.parametrize("seed", range(40))
def test_rows_equal_reference(view: s.ViewSemantics, seed: int) -> None:
    rng = np.random.default_rng([seed, len(view.name)])
    events = random_events(view, rng, int(rng.integers(1, 70)))
    got = feature_rows(compute_view(view, events))
    expected = reference.reference_rows(view, records(events))
    assert [(r[view.join_key], r["event_timestamp"]) for r in got] == \
           [(r[view.join_key], r["event_timestamp"]) for r in expected], "change points differ"
    assert not _mismatches(view, got, expected)


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
@pytest.mark.parametrize("seed", range(15))
def test_lookup_at_any_instant_equals_reference(view: s.ViewSemantics, seed: int) -> None:
    """The point-in-time contract: latest row at or before T == definition evaluated at T."""
    rng = np.random.default_rng([seed, 99, len(view.name)])
    events = random_events(view, rng, int(rng.integers(1, 50)))
    rows = feature_rows(compute_view(view, events))
    evs = records(events)
    by_entity: dict[str, list[dict]] = {}
    for e in evs:
        by_entity.setdefault(e[view.join_key], []).append(e)
    checked = 0
    for entity, entity_events in by_entity.items():
        mine = [r for r in rows if r[view.join_key] == entity]
        times = [r["event_timestamp"] for r in mine]
        first = min(e["event_timestamp"] for e in entity_events)
        instants = {e["event_timestamp"] + o + d for e in entity_events for o in view.change_offsets for d in (-1, 0, 1)}
        instants |= {int(x) for x in rng.integers(first, max(times) + s.W_24H, 20)}
        for t in sorted(instants):
            i = bisect.bisect_right(times, t) - 1
            if t < first:
                assert i < 0, "a row exists before the entity's first event"
                continue
            expected = reference.REFERENCE[view.name](entity_events, t)
            got = {k: v for k, v in mine[i].items() if k in expected}
            assert not _mismatches(view, [mine[i]], [expected]), f"at T={t}: {got} != {expected}"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_input_order_does_not_matter(view: s.ViewSemantics) -> None:
    rng = np.random.default_rng(5)
    events = random_events(view, rng, 120)
    shuffled = events.take(rng.permutation(events.num_rows))
    assert compute_view(view, events).equals(compute_view(view, shuffled))


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_time_range_filter_keeps_exact_rows(view: s.ViewSemantics) -> None:
    rng = np.random.default_rng(11)
    events = random_events(view, rng, 80)
    full = feature_rows(compute_view(view, events))
    times = sorted({r["event_timestamp"] for r in full})
    lo, hi = times[len(times) // 4], times[3 * len(times) // 4]
    part = feature_rows(compute_view(view, events, since_us=lo, until_us=hi))
    assert part == [r for r in full if lo <= r["event_timestamp"] <= hi]


def test_card_profile_takes_the_sum_of_squares_as_int64_or_its_exactly_rounded_float() -> None:
    """The engine hands ``s2`` over as float64 (it can exceed int64); below 2**63 that must be the
    same as handing over the integer."""
    rng = np.random.default_rng(2)
    cents = [rng.integers(0, 1_000_000_000, int(k)).tolist() for k in rng.integers(1, 9, 50)]
    a = {"n": np.array([len(c) for c in cents]), "s1": np.array([sum(c) for c in cents]),
         "countries": [["US"]] * 50, "devices": np.ones(50, np.int64), "merchants": np.ones(50, np.int64),
         "t_last": np.zeros(50, np.int64)}
    s2 = [sum(x * x for x in c) for c in cents]
    as_int = s.derive_card_profile({**a, "s2": np.array(s2, np.int64)})
    as_float = s.derive_card_profile({**a, "s2": np.array([float(x) for x in s2])})
    assert all(as_int[f].equals(as_float[f]) for f in s.CARD_PROFILE.features)
