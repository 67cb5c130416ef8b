"""The stream buffer's indexes (featurelib.stream.buffer) against brute force on random data.

After any sequence of additions (small steps and large batches, in random arrival order)
and trims, every lookup must return exactly the rows a scan of the buffer would: the
events of given entities, the entities with a change point in an interval, and the ids
known for de-duplication.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from featurelib import semantics as s
from featurelib.stream.buffer import EntityIndex, EventBuffer
from featurelib.stream.events import SCHEMAS
from featurelib.stream.table_log import TableLog

MINUTE = 60_000_000


def _events(rng: np.random.Generator, n: int, first_id: int, t_lo: int, t_hi: int, users: int) -> pa.Table:
    user = rng.integers(0, users, n)
    columns = {
        "event_id": [f"e{first_id + i}" for i in range(n)],
        "user_id": [f"user:{u}" for u in user],
        "session_id": [f"s{u}-{rng.integers(0, 3)}" for u in user],
        "device_id": ["d"] * n,
        "event_type": rng.choice(["page_view", "click", "add_to_cart", "purchase"], n).tolist(),
        "page_category": rng.choice(["a", "b", "c"], n).tolist(),
        "dwell_ms": rng.integers(0, 10_000, n),
        "scroll_pct": rng.integers(0, 100, n),
        "event_timestamp": pa.array(rng.integers(t_lo, t_hi, n), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }
    return pa.table(columns).cast(SCHEMAS[s.CLICKSTREAM])


def _brute_rows(buffer: EventBuffer, key: str, entities: list[str]) -> list[str]:
    column = buffer.table.column(key).to_pylist()
    ids = buffer.table.column("event_id").to_pylist()
    return sorted(i for i, e in zip(ids, column) if e in set(entities))


@pytest.mark.parametrize("seed", range(6))
def test_buffer_lookups_equal_a_scan_after_adds_and_trims(seed: int) -> None:
    rng = np.random.default_rng(seed)
    buffer = EventBuffer(s.CLICKSTREAM)
    next_id, clock = 0, 1_000 * MINUTE
    for step in range(40):
        n = int(rng.choice([1, 5, 40, 1500]))  # small live steps and large batches (the grouped path)
        buffer.add(_events(rng, n, next_id, clock - 30 * MINUTE, clock + MINUTE, users=int(rng.integers(3, 60))))
        next_id += n
        clock += int(rng.integers(0, 120)) * MINUTE
        if step % 3 == 2:
            floor = clock - int(rng.integers(0, 600)) * MINUTE
            before = set(buffer.table.column("event_id").to_pylist())
            dropped = buffer.trim(floor, min_share=float(rng.choice([0.0, 0.3])))
            after = set(buffer.table.column("event_id").to_pylist())
            assert len(before) - len(after) == dropped
            t = buffer.table.column("event_timestamp").cast(pa.int64()).to_numpy()
            assert dropped == 0 or (t > floor).all()
        assert buffer._ids == set(buffer.table.column("event_id").to_pylist())
        t = buffer.table.column("event_timestamp").cast(pa.int64()).to_numpy()
        assert np.array_equal(buffer.t, t) and np.array_equal(buffer.t_sorted, np.sort(t))
        assert np.array_equal(t[buffer.by_time], buffer.t_sorted)
        for view in buffer.views:
            key = view.join_key
            known = sorted(set(buffer.table.column(key).to_pylist()))
            wanted = [str(e) for e in rng.choice(known + ["nobody"], size=min(4, len(known) + 1), replace=False)]
            got = buffer.events_of(view, wanted)
            assert sorted(got.column("event_id").to_pylist()) == _brute_rows(buffer, key, wanted)
            a, b = clock - int(rng.integers(0, 300)) * MINUTE, clock
            expected = {e for e, ts in zip(buffer.table.column(key).to_pylist(), t)
                        for o in view.change_offsets if a < ts + o <= b}
            assert set(buffer.entities_with_change_points(view, a, b)) == expected


@pytest.mark.parametrize("seed", range(3))
def test_trim_counts_events_not_yet_read(seed: int) -> None:
    """A live processor adds a few events per step and reads none: ``trim`` must count and
    drop them too (also after the per-step tables were merged), as a scan would."""
    rng = np.random.default_rng(seed)
    buffer = EventBuffer(s.CLICKSTREAM)
    kept: dict[str, int] = {}  # the brute-force buffer: id -> event time
    next_id, clock = 0, 1_000 * MINUTE
    for step in range(1_200):  # many more adds than a TableLog merges at once
        events = _events(rng, int(rng.integers(1, 4)), next_id, clock - 30 * MINUTE, clock + MINUTE, users=20)
        buffer.add(events)
        kept.update(zip(events.column("event_id").to_pylist(),
                        events.column("event_timestamp").cast(pa.int64()).to_pylist()))
        next_id += events.num_rows
        clock += int(rng.integers(0, 3)) * MINUTE
        if step % 97 == 96:
            floor = clock - int(rng.integers(0, 200)) * MINUTE
            share = float(rng.choice([0.0, 0.3]))
            old = sum(1 for t in kept.values() if t <= floor)
            expected = old if old and old >= share * len(kept) else 0
            assert buffer.trim(floor, min_share=share) == expected
            if expected:
                kept = {i: t for i, t in kept.items() if t > floor}
            assert len(buffer) == len(kept)
    assert sorted(buffer.table.column("event_id").to_pylist()) == sorted(kept)
    assert buffer._ids == set(kept)


def test_entity_index_compacts_codes_of_entities_no_longer_buffered() -> None:
    index = EntityIndex()
    index.add(pa.array([f"s{i}" for i in range(5000)] + ["kept"] * 3))
    mask = np.zeros(5003, bool)
    mask[-3:] = True
    index.keep(mask, np.cumsum(mask) - 1)
    assert len(index) == 1 and index.lookup(["kept", "s1"]).tolist() == [0, 1, 2]
    index.add(pa.array(["s1", "kept"]))
    assert index.lookup(["kept"]).tolist() == [0, 1, 2, 4] and index.lookup(["s1"]).tolist() == [3]


@pytest.mark.parametrize("fanout", [2, 3, 16])
def test_table_log_keeps_every_row_in_order_in_few_chunks(fanout: int) -> None:
    """What a live processor appends, one small table per step, comes back in order, and the
    chunks left stay within ``fanout - 1`` per size class (a binary counter in base ``fanout``)."""
    rng = np.random.default_rng(fanout)
    log, expected = TableLog(fanout), []
    for step in range(2_000):
        n = int(rng.integers(0, 4))
        log.append(pa.table({"i": pa.array(range(len(expected), len(expected) + n), pa.int64())}))
        expected += range(len(expected), len(expected) + n)
        assert len(log) == len(expected)
        if step % 250 == 249:
            table = log.table()
            assert table.column("i").to_pylist() == expected
            levels = 1 + int(np.log(max(len(expected), 1)) / np.log(fanout))
            assert len(log.tables) <= (fanout - 1) * levels
    assert TableLog().table() is None and not TableLog()
