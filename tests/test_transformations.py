"""One small, hand-computed example per feature definition (window bounds, ties, nulls).

Each case builds a few events, asks the engine for the value at an instant, and
compares with a value worked out by hand from the definition in ``docs/SEMANTICS.md``.
"""

from __future__ import annotations

import bisect
from typing import Any

import pyarrow as pa
import pytest

from featurelib import semantics as s
from featurelib.engine import compute_view
from featurelib.timeutil import MINUTE, to_us
from tests.events import feature_rows

T0 = to_us("2026-11-27T12:00:00Z")  # a Friday
SAT = to_us("2026-11-28T00:00:00Z")


def txn(t: int, cents: int = 1000, country: str = "US", category: str = "grocery", card: str = "card_1",
        device: str = "device_1", merchant: str = "merchant_1", user: str = "user_1") -> dict[str, Any]:
    return {"txn_id": f"t{t}{cents}{country}", "card_id": card, "user_id": user, "device_id": device,
            "merchant_id": merchant, "merchant_category": category, "country": country, "amount_cents": cents,
            "event_timestamp": t}


def click(t: int, kind: str = "page_view", session: str = "session_1", dwell_ms: int | None = None,
          scroll: int | None = None, user: str = "user_1", category: str = "home") -> dict[str, Any]:
    if kind == "page_view":
        dwell_ms = 10_000 if dwell_ms is None else dwell_ms
        scroll = 50 if scroll is None else scroll
    return {"event_id": f"e{t}{kind}{session}", "user_id": user, "session_id": session, "device_id": "device_1",
            "event_type": kind, "page_category": category, "dwell_ms": dwell_ms, "scroll_pct": scroll,
            "event_timestamp": t}


def value_at(view: s.ViewSemantics, events: list[dict], at: int, feature: str, entity: str | None = None) -> Any:
    table = pa.Table.from_pylist(events)
    table = table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp",
                             table.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")))
    rows = feature_rows(compute_view(view, table))
    entity = entity or events[0][view.join_key]
    mine = [r for r in rows if r[view.join_key] == entity]
    i = bisect.bisect_right([r["event_timestamp"] for r in mine], at) - 1
    assert i >= 0, "no row at or before the instant"
    return mine[i][feature]


TS = s.TRANSACTION_STATS
CASES = [
    # (id, view, events, instant, feature, expected)
    ("event counts at its own instant", TS, [txn(T0)], T0, "txn_count_5m", 1),
    ("not before it", TS, [txn(T0), txn(T0 + 10 * MINUTE)], T0 + 10 * MINUTE - 1, "txn_count_5m", 0),
    ("still in at T0+5m-1us", TS, [txn(T0)], T0 + 5 * MINUTE - 1, "txn_count_5m", 1),
    ("out at exactly T0+5m", TS, [txn(T0)], T0 + 5 * MINUTE, "txn_count_5m", 0),
    ("30m window keeps it", TS, [txn(T0)], T0 + 5 * MINUTE, "txn_count_30m", 1),
    ("24h window edge", TS, [txn(T0)], T0 + s.W_24H, "txn_count_24h", 0),
    ("ties enter together", TS, [txn(T0), txn(T0, 2000)], T0, "txn_count_5m", 2),
    ("sum in dollars", TS, [txn(T0, 1050), txn(T0 + 1, 2025)], T0 + 1, "amount_sum_5m", 30.75),
    ("sum of empty window is 0", TS, [txn(T0)], T0 + 5 * MINUTE, "amount_sum_5m", 0.0),
    ("average", TS, [txn(T0, 1000), txn(T0 + 1, 2000), txn(T0 + 2, 4000)], T0 + 2, "amount_avg_5m", 7000 / 3 / 100),
    ("average of empty window is null", TS, [txn(T0)], T0 + 5 * MINUTE, "amount_avg_5m", None),
    ("max drops when the max leaves", TS, [txn(T0, 9000), txn(T0 + MINUTE, 100)], T0 + 5 * MINUTE, "amount_max_5m", 1.0),
    ("distinct countries", TS, [txn(T0, country="US"), txn(T0 + 1, country="DE"), txn(T0 + 2, country="US")],
     T0 + 2, "unique_countries_5m", 2),
    ("Gini-Simpson of US,US,DE", TS, [txn(T0, country="US"), txn(T0 + 1, country="US"), txn(T0 + 2, country="DE")],
     T0 + 2, "geo_diversity_score", 1.0 - 5.0 / 9.0),
    ("one country, no diversity", TS, [txn(T0), txn(T0 + 1)], T0 + 1, "geo_diversity_score", 0.0),
    ("gap between two latest", TS, [txn(T0), txn(T0 + 3 * MINUTE)], T0 + 3 * MINUTE, "time_since_last_txn_min", 3.0),
    ("gap of a tie is 0", TS, [txn(T0), txn(T0, 5)], T0, "time_since_last_txn_min", 0.0),
    ("gap needs two", TS, [txn(T0)], T0, "time_since_last_txn_min", None),
    ("Friday is not weekend", TS, [txn(SAT - 1)], SAT - 1, "is_weekend", 0),
    ("Saturday 00:00 UTC is weekend", TS, [txn(SAT)], SAT, "is_weekend", 1),
    ("velocity of 6 in 5 minutes", TS, [txn(T0 + i) for i in range(6)], T0 + 5, "velocity_score",
     (6.0 - 6.0 * 5.0 / 1440.0) / ((6.0 - 6.0 * 5.0 / 1440.0) + 3.0)),
    ("velocity of an empty window is 0", TS, [txn(T0)], T0 + 5 * MINUTE, "velocity_score", 0.0),
    ("high-risk share", TS, [txn(T0, category="crypto"), txn(T0 + 1), txn(T0 + 2), txn(T0 + 3, category="gift_cards")],
     T0 + 3, "high_risk_txn_ratio", 0.5),
    ("5 in 5 minutes is high velocity", TS, [txn(T0 + i) for i in range(5)], T0 + 4, "is_high_velocity", True),
    ("4 is not", TS, [txn(T0 + i) for i in range(4)], T0 + 3, "is_high_velocity", False),
    ("std of 10 and 30 dollars", s.CARD_PROFILE, [txn(T0, 1000), txn(T0 + 1, 3000)], T0 + 1, "card_amount_std_24h", 10.0),
    ("countries sorted", s.CARD_PROFILE, [txn(T0, country="US"), txn(T0 + 1, country="DE"), txn(T0 + 2, country="US")],
     T0 + 2, "card_countries_24h", ["DE", "US"]),
    ("country leaves after 24h", s.CARD_PROFILE, [txn(T0, country="FR"), txn(T0 + s.W_24H, country="US")],
     T0 + s.W_24H, "card_countries_24h", ["US"]),
    ("last transaction time", s.CARD_PROFILE, [txn(T0), txn(T0 + 7)], T0 + 9, "last_txn_unix_us", T0 + 7),
    ("cards on a device", s.DEVICE_ACTIVITY, [txn(T0, card="card_1"), txn(T0 + 1, card="card_2"), txn(T0 + 2, card="card_1")],
     T0 + 2, "device_distinct_cards_24h", 2),
    ("device hour window", s.DEVICE_ACTIVITY, [txn(T0), txn(T0 + s.W_1H)], T0 + s.W_1H, "device_txn_count_1h", 1),
    ("pages in session", s.USER_ENGAGEMENT, [click(T0), click(T0 + MINUTE), click(T0 + 2 * MINUTE, "click")],
     T0 + 2 * MINUTE, "pages_per_session", 2),
    ("session duration", s.USER_ENGAGEMENT, [click(T0), click(T0 + 90 * 1_000_000)], T0 + 90 * 1_000_000,
     "session_duration_min", 1.5),
    ("session times out after 30 minutes", s.USER_ENGAGEMENT, [click(T0)], T0 + s.SESSION_TIMEOUT,
     "session_duration_min", None),
    ("latest event picks the session", s.USER_ENGAGEMENT,
     [click(T0, session="session_a"), click(T0 + 1, session="session_a"), click(T0 + 2, session="session_b")],
     T0 + 2, "pages_per_session", 1),
    ("tie between sessions: greatest id", s.USER_ENGAGEMENT,
     [click(T0, session="session_a"), click(T0, session="session_b"), click(T0 - 5, session="session_a")],
     T0, "pages_per_session", 1),
    ("dwell average in seconds", s.USER_ENGAGEMENT, [click(T0, dwell_ms=10_000), click(T0 + 1, dwell_ms=20_500)],
     T0 + 1, "avg_dwell_time_sec", 15.25),
    ("scroll depth as a fraction", s.USER_ENGAGEMENT, [click(T0, scroll=40), click(T0 + 1, scroll=90)], T0 + 1,
     "avg_scroll_depth", 0.65),
    ("click rate", s.USER_ENGAGEMENT, [click(T0), click(T0 + 1, "click"), click(T0 + 2, "click")], T0 + 2,
     "click_rate_5m", 2.0),
    ("no page views, no click rate", s.USER_ENGAGEMENT, [click(T0, "click")], T0, "click_rate_5m", None),
    ("conversion capped at 1", s.USER_ENGAGEMENT,
     [click(T0), click(T0 + 1, "add_to_cart"), click(T0 + 2, "purchase"), click(T0 + 3, "purchase")],
     T0 + 3, "conversion_rate_session", 1.0),
    ("engagement score", s.USER_ENGAGEMENT, [click(T0, dwell_ms=60_000, scroll=80), click(T0 + 1, "click")], T0 + 1,
     "engagement_score", (((1.0 / 20.0 + 60.0 / 120.0) + 0.8) + 1.0) / 4.0),
    ("likely purchaser", s.USER_ENGAGEMENT,
     [click(T0 + i, dwell_ms=120_000, scroll=100) for i in range(5)] + [click(T0 + 9, "add_to_cart")], T0 + 9,
     "is_likely_purchaser", True),
    ("not after the purchase", s.USER_ENGAGEMENT,
     [click(T0 + i, dwell_ms=120_000, scroll=100) for i in range(5)] + [click(T0 + 9, "add_to_cart"),
                                                                        click(T0 + 10, "purchase")],
     T0 + 10, "is_likely_purchaser", False),
    ("session events", s.SESSION_ACTIVITY, [click(T0), click(T0 + 1, "click"), click(T0 + 2, "add_to_cart")], T0 + 2,
     "session_event_count", 3),
    ("session categories", s.SESSION_ACTIVITY, [click(T0, category="books"), click(T0 + 1, category="toys")], T0 + 1,
     "session_distinct_categories", 2),
]


@pytest.mark.parametrize(("view", "events", "at", "feature", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_definition(view: s.ViewSemantics, events: list[dict], at: int, feature: str, expected: Any) -> None:
    got = value_at(view, events, at, feature)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-15, abs=1e-15)
    else:
        assert got == expected
