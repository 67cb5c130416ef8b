"""Conformance: the stream processor's rows equal the batch job's, at every change point.

The same random event sets (few entities, ties, timestamps on and 1 µs off window
edges) go through the batch computation (``compute_view`` over all accepted events)
and through ``StreamCore`` in micro-batches of random size, arriving out of order
(jitter up to twice the allowed lateness, so some arrive too late). Every row the
stream emits (the last emission per entity and instant, as Redis would hold it) must
be identical to the batch row, and every batch row must have been emitted.

Events later than the allowed lateness are not applied: they are reported as too late
(the processor quarantines them) and the batch side leaves them out too, which is
what the processor's landing does.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from featurelib import semantics as s
from featurelib.engine import compute_view
from featurelib.stream.core import StreamCore
from featurelib.timeutil import MINUTE, SECOND, column_us
from tests.events import bitwise_equal, feature_rows, random_clickstream, random_transactions


def _arrival_order(rng: np.random.Generator, table: pa.Table, jitter: int) -> tuple[pa.Table, np.ndarray]:
    t = column_us(table.column("event_timestamp"))
    arrival = t + (rng.integers(0, jitter + 1, len(t)) if jitter else 0)
    order = np.argsort(arrival, kind="stable")
    return table.take(pa.array(order)), arrival[order]


def _run(seed: int, clock: str, sizes: tuple[int, int] = (1, 60), chunk_max: int = 8,
         **thresholds: int) -> tuple[dict, dict, dict, int]:
    """Random streams of ``sizes`` events each, read ``0..chunk_max - 1`` events per stream per step;
    ``thresholds``: ``StreamCore``'s ``vectorized_from``."""
    rng = np.random.default_rng([seed, 7])
    lateness = int(rng.choice([0, SECOND, MINUTE, 10 * MINUTE]))
    streams = {s.TRANSACTIONS: random_transactions(rng, int(rng.integers(*sizes))),
               s.CLICKSTREAM: random_clickstream(rng, int(rng.integers(*sizes)))}
    if rng.random() < 0.3:  # a redelivered event (at-least-once) must count once
        t = streams[s.TRANSACTIONS]
        streams[s.TRANSACTIONS] = pa.concat_tables([t, t.slice(0, 1)])
    arrivals = {k: _arrival_order(rng, t, 2 * lateness) for k, t in streams.items()}
    core = StreamCore(lateness, now_us=0, **thresholds)
    emitted: dict[tuple, dict] = {}
    accepted: dict[str, list[pa.Table]] = {k: [] for k in streams}
    late = 0
    pos = {k: 0 for k in streams}

    def record(result) -> None:
        nonlocal late
        for kind, table in result.accepted.items():
            accepted[kind].append(table)
        late += sum(t.num_rows for t in result.too_late.values())
        for view, rows in result.rows.items():
            key = s.VIEWS[view].join_key
            for r in feature_rows(rows):
                emitted[(view, r[key], r["event_timestamp"])] = r

    floor: dict[str, int] = {}
    while any(pos[k] < t.num_rows for k, (t, _) in arrivals.items()):
        new, wall = {}, 0
        for kind, (table, arrival) in arrivals.items():
            n = int(rng.integers(0, chunk_max))
            chunk, arr = table.slice(pos[kind], n), arrival[pos[kind]:pos[kind] + n]
            pos[kind] += chunk.num_rows
            new[kind] = (chunk, arr if clock == "wall" else None)
            if len(arr):
                wall = max(wall, int(arr.max()))
                floor[kind] = int(arr.max())  # later entries arrive no earlier than this one
        record(core.step(new, now_us=max(wall, core.now_us) if clock == "wall" else None))
        core.trim(floor if clock == "wall" else None, min_share=0)  # forgetting history must never change a row
    end = max(int(column_us(t.column("event_timestamp")).max()) for t in streams.values()) + s.W_24H + 1
    record(core.step({}, now_us=end))
    return emitted, accepted, streams, late


def _assert_conforms(emitted: dict, accepted: dict, streams: dict) -> None:
    for kind in streams:
        events = pa.concat_tables(accepted[kind]) if accepted[kind] else streams[kind].slice(0, 0)
        for view in (v for v in s.VIEWS.values() if v.events == kind):
            expected = feature_rows(compute_view(view, events))
            mine = {k: r for k, r in emitted.items() if k[0] == view.name}
            assert set(mine) == {(view.name, r[view.join_key], r["event_timestamp"]) for r in expected}, view.name
            for r in expected:
                got = mine[(view.name, r[view.join_key], r["event_timestamp"])]
                bad = [c for c in r if not bitwise_equal(got[c], r[c])]
                assert not bad, f"{view.name} {r[view.join_key]} @ {r['event_timestamp']}: {bad}"


@pytest.mark.parametrize("clock", ["event", "wall"])
@pytest.mark.parametrize("seed", range(60))
def test_stream_rows_equal_batch_rows_at_every_change_point(seed: int, clock: str) -> None:
    emitted, accepted, streams, _ = _run(seed, clock)
    _assert_conforms(emitted, accepted, streams)


@pytest.mark.parametrize("path", ["engine", "incremental"])
@pytest.mark.parametrize("seed", range(12))
def test_each_way_of_computing_a_step_conforms(seed: int, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live step advances the incremental window state, a large one is computed by the
    vectorized engine; each alone must give the batch rows."""
    import featurelib.stream.core as core_module

    thresholds = {"vectorized_from": 0 if path == "engine" else 10**9}
    calls = {"engine": 0}
    compute = core_module.compute_view

    def counted(*args, **kwargs):
        calls["engine"] += 1
        return compute(*args, **kwargs)

    monkeypatch.setattr(core_module, "compute_view", counted)
    emitted, accepted, streams, _ = _run(seed, "wall", sizes=(20, 60), **thresholds)
    assert (calls["engine"] > 0) == (path == "engine")
    _assert_conforms(emitted, accepted, streams)


@pytest.mark.parametrize("clock", ["event", "wall"])
@pytest.mark.parametrize("seed", range(3))
def test_large_micro_batches_conform_too(seed: int, clock: str) -> None:
    """Steps of up to 5,000 events per stream take the buffer's vectorized paths (grouping by
    sort, no per-event duplicate check); the rows must not change."""
    emitted, accepted, streams, _ = _run(seed, clock, sizes=(3_000, 5_000), chunk_max=5_000)
    assert max(t.num_rows for tables in accepted.values() for t in tables) >= 1_000
    _assert_conforms(emitted, accepted, streams)


def test_late_events_are_reported_and_left_out() -> None:
    late_total = sum(_run(seed, "event")[3] for seed in range(30))
    assert late_total > 0, "the random arrivals must include events later than the allowed lateness"


def test_lateness_rule_is_exact() -> None:
    """Event time: an event is too late when it trails the highest earlier timestamp by more than L."""
    core = StreamCore(lateness_us=10, now_us=0)
    t = pa.array([100, 95, 90, 89, 120, 110], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    table = random_transactions(np.random.default_rng(0), 6).set_column(8, "event_timestamp", t)
    result = core.step({s.TRANSACTIONS: (table, None)})
    assert column_us(result.accepted[s.TRANSACTIONS].column("event_timestamp")).tolist() == [100, 95, 90, 120, 110]
    assert column_us(result.too_late[s.TRANSACTIONS].column("event_timestamp")).tolist() == [89]
    assert core.now_us == 120
