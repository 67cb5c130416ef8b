"""Decoding stream entries (featurelib.stream.events): large and small reads give the same events.

Three ways to decode, chosen by the size of a read: grouped by field layout (1,000 entries
and more), a dict per entry into Arrow columns (``SMALL_READ`` to 999), and plain Python
(fewer than ``SMALL_READ``, a live step)."""

from __future__ import annotations

import random

import pytest

from featurelib.stream import events
from featurelib.stream.events import REQUIRED, SCHEMAS, decode


def _entries(seed: int, kind: str, n: int) -> list:
    """Entries with shuffled field orders, optional and required fields left out, repeated
    fields, unknown fields, bad integers, as flat lists the way Redis sends them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        fields = {f.name: f"{f.name}-{i % 7}" for f in SCHEMAS[kind]}
        fields[events.ID_FIELD[kind]] = f"id-{i}"
        for f in SCHEMAS[kind]:
            if str(f.type).startswith(("int", "timestamp")):
                fields[f.name] = str(rng.randrange(10**6)) if rng.random() > 0.01 else "12.5"
            elif str(f.type) == "bool":
                fields[f.name] = rng.choice(["true", "false"])
        names = list(fields)
        if rng.random() < 0.3:
            names.remove(rng.choice([f.name for f in SCHEMAS[kind] if f.name not in REQUIRED[kind]] or names))
        if rng.random() < 0.02:
            names.remove(rng.choice(REQUIRED[kind]))
        if rng.random() < 0.1:
            rng.shuffle(names)
        flat = [x for name in names for x in (name.encode(), fields[name].encode())]
        if rng.random() < 0.02:
            flat += [b"unknown", b"x"]
        if rng.random() < 0.02:
            flat += [names[0].encode(), b"repeated"]  # a repeated field: the last value counts
        out.append((f"{1795694400000 + i}-0".encode(), flat))
    return out


@pytest.mark.parametrize("kind", ["transactions", "clickstream"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("size", [500, events.SMALL_READ - 1, 7])
def test_large_reads_decode_like_small_ones(kind: str, seed: int, size: int) -> None:
    entries = _entries(seed, kind, 2_500)
    large = decode(kind, entries)  # grouped by layout
    small = [decode(kind, entries[i:i + size]) for i in range(0, len(entries), size)]
    assert large.malformed.num_rows > 0 and large.events.num_rows > 2_000
    assert large.events.to_pylist() == [row for d in small for row in d.events.to_pylist()]
    assert large.event_ids == [i for d in small for i in d.event_ids]
    assert large.malformed_ids == [i for d in small for i in d.malformed_ids]
    assert large.malformed.to_pylist() == [row for d in small for row in d.malformed.to_pylist()]
    assert large.arrival_us.tolist() == [a for d in small for a in d.arrival_us.tolist()]
