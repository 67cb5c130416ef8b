"""Random raw events for property tests: few entities, many collisions, edges on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from featurelib import semantics as s
from featurelib.timeutil import DAY

BASE_US = 1_795_000_000_000_000  # 2026-11-17


def _edgy_times(rng: np.random.Generator, n: int, span: int, offsets: Sequence[int]) -> np.ndarray:
    """Random times where about a third sit exactly on, or 1 µs off, another event's window edge."""
    t = BASE_US + rng.integers(0, span, n)
    for i in range(1, n):
        if rng.random() < 0.35:
            t[i] = t[rng.integers(0, i)] + int(rng.choice(list(offsets))) + int(rng.choice([-1, 0, 0, 1]))
    return t


def _ts(t: np.ndarray) -> pa.Array:
    return pa.array(t, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def random_transactions(rng: np.random.Generator, n: int, n_cards: int = 4, span: int = 2 * DAY) -> pa.Table:
    t = _edgy_times(rng, n, span, [0, s.W_5M, s.W_30M, s.W_1H, s.W_24H])
    return pa.table({
        "txn_id": [f"t{i}" for i in range(n)],
        "card_id": [f"card_{x}" for x in rng.integers(0, n_cards, n)],
        "user_id": [f"user_{x}" for x in rng.integers(0, 3, n)],
        "device_id": [f"device_{x}" for x in rng.integers(0, 3, n)],
        "merchant_id": [f"merchant_{x}" for x in rng.integers(0, 5, n)],
        "merchant_category": list(rng.choice(["grocery", "crypto", "electronics", "travel"], n)),
        "country": list(rng.choice(["US", "DE", "FR", "GB"], n)),
        "amount_cents": rng.integers(50, 1_000_000, n),
        "event_timestamp": _ts(t),
    })


def random_clickstream(rng: np.random.Generator, n: int, n_users: int = 3, span: int = DAY // 4) -> pa.Table:
    t = _edgy_times(rng, n, span, [0, s.W_5M, s.SESSION_TIMEOUT, s.SESSION_HORIZON])
    kind = rng.choice(["page_view", "click", "add_to_cart", "purchase"], n, p=[0.5, 0.3, 0.15, 0.05])
    not_pv = kind != "page_view"
    return pa.table({
        "event_id": [f"e{i}" for i in range(n)],
        "user_id": [f"user_{x}" for x in rng.integers(0, n_users, n)],
        "session_id": [f"session_{x}" for x in rng.integers(0, 4, n)],
        "device_id": [f"device_{x}" for x in rng.integers(0, 3, n)],
        "event_type": list(kind),
        "page_category": list(rng.choice(["home", "books", "toys"], n)),
        "dwell_ms": pa.array(rng.integers(100, 300_000, n), mask=not_pv),
        "scroll_pct": pa.array(rng.integers(0, 101, n), mask=not_pv),
        "event_timestamp": _ts(t),
    })


def random_events(view: s.ViewSemantics, rng: np.random.Generator, n: int) -> pa.Table:
    return random_transactions(rng, n) if view.events == s.TRANSACTIONS else random_clickstream(rng, n)


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts with ``event_timestamp`` in integer microseconds (the reference's input)."""
    t = table.column("event_timestamp").cast(pa.int64()).to_pylist()
    rows = table.drop(["event_timestamp"]).to_pylist()
    for r, us in zip(rows, t):
        r["event_timestamp"] = us
    return rows


def feature_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Engine output as dicts with ``event_timestamp`` in integer microseconds."""
    return records(table)


def bitwise_equal(a: Any, b: Any) -> bool:
    """Equality where floats must match bit for bit and None only equals None."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a.hex() == b.hex()
    return type(a) is type(b) and a == b
