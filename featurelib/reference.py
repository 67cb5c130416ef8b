"""The brute-force reference: each feature straight from its written definition.

Plain Python over the raw events of one entity (dicts with raw-event column names;
``event_timestamp`` as int microseconds; optional integers null as 0). Slow on purpose: it
is the test oracle and the readable spec, independent of the aggregation operators that
both engines share (``featurelib.aggregations``). Tests compare the batch engine and the
stream processor with it on random event sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from featurelib.semantics import (
    CARD_PROFILE,
    DEVICE_ACTIVITY,
    HIGH_RISK_MERCHANT_CATEGORIES,
    HIGH_VELOCITY_TXN_COUNT,
    LIKELY_PURCHASER_MIN_ENGAGEMENT,
    SESSION_ACTIVITY,
    SESSION_HORIZON,
    SESSION_TIMEOUT,
    TRANSACTION_STATS,
    USER_ENGAGEMENT,
    VELOCITY_SOFTNESS,
    W_1H,
    W_5M,
    W_24H,
    W_30M,
    ViewSemantics,
)
from featurelib.timeutil import DAY

# --------------------------------------------------------------------------------------

Event = Mapping[str, Any]


def in_window(events: Iterable[Event], at_us: int, w: int) -> list[Event]:
    """The events with ``at_us - w < event_timestamp <= at_us``."""
    return [e for e in events if at_us - w < e["event_timestamp"] <= at_us]


def change_points(event_times: Iterable[int], offsets: Sequence[int]) -> list[int]:
    """Sorted distinct instants ``e + offset`` at which a view's values may change."""
    return sorted({t + o for t in event_times for o in offsets})


def _div(num: int, den: int) -> float:
    return float(num) / float(den)


def reference_transaction_stats(events: Sequence[Event], at_us: int) -> dict[str, Any]:
    e5, e30, e24 = in_window(events, at_us, W_5M), in_window(events, at_us, W_30M), in_window(events, at_us, W_24H)
    n5, n24 = len(e5), len(e24)
    cents5 = [e["amount_cents"] for e in e5]
    per_country: dict[str, int] = {}
    for e in e24:
        per_country[e["country"]] = per_country.get(e["country"], 0) + 1
    times = sorted((e["event_timestamp"] for e in e24), reverse=True)
    expected = float(n24) * 5.0 / 1440.0
    excess = max(float(n5) - expected, 0.0)
    return {
        "txn_count_5m": n5,
        "txn_count_30m": len(e30),
        "txn_count_24h": n24,
        "amount_sum_5m": float(sum(cents5)) / 100.0,
        "amount_avg_5m": _div(sum(cents5), n5) / 100.0 if n5 else None,
        "amount_max_5m": float(max(cents5)) / 100.0 if n5 else None,
        "unique_countries_5m": len({e["country"] for e in e5}),
        "geo_diversity_score": 1.0 - float(sum(c * c for c in per_country.values())) / (float(n24) * float(n24)) if n24 else None,
        "time_since_last_txn_min": float(times[0] - times[1]) / 60_000_000.0 if n24 >= 2 else None,
        "is_weekend": (1 if ((times[0] // DAY + 3) % 7) >= 5 else 0) if n24 else None,
        "velocity_score": excess / (excess + VELOCITY_SOFTNESS),
        "high_risk_txn_ratio": _div(sum(e["merchant_category"] in HIGH_RISK_MERCHANT_CATEGORIES for e in e24), n24) if n24 else None,
        "is_high_velocity": n5 >= HIGH_VELOCITY_TXN_COUNT,
    }


def reference_card_profile(events: Sequence[Event], at_us: int) -> dict[str, Any]:
    e24 = in_window(events, at_us, W_24H)
    n = len(e24)
    cents = [e["amount_cents"] for e in e24]
    mean = float(sum(cents)) / float(n) if n else None
    var = max(float(sum(c * c for c in cents)) / float(n) - mean * mean, 0.0) if n else None
    countries = sorted({e["country"] for e in e24})
    return {
        "card_amount_avg_24h": mean / 100.0 if n else None,
        "card_amount_std_24h": math.sqrt(var) / 100.0 if n else None,
        "card_distinct_countries_24h": len(countries),
        "card_countries_24h": countries,
        "card_distinct_devices_24h": len({e["device_id"] for e in e24}),
        "card_distinct_merchants_24h": len({e["merchant_id"] for e in e24}),
        "last_txn_unix_us": max(e["event_timestamp"] for e in e24) if n else None,
    }


def reference_device_activity(events: Sequence[Event], at_us: int) -> dict[str, Any]:
    e24 = in_window(events, at_us, W_24H)
    return {
        "device_txn_count_1h": len(in_window(events, at_us, W_1H)),
        "device_txn_count_24h": len(e24),
        "device_distinct_cards_24h": len({e["card_id"] for e in e24}),
        "device_distinct_users_24h": len({e["user_id"] for e in e24}),
        "device_distinct_countries_24h": len({e["country"] for e in e24}),
        "device_amount_sum_24h": float(sum(e["amount_cents"] for e in e24)) / 100.0,
    }


def current_session(events: Sequence[Event], at_us: int) -> str | None:
    """The user's current session at ``at_us``: the session of the user's latest event in
    ``(at_us - SESSION_TIMEOUT, at_us]``, ties broken by the greatest ``session_id``;
    ``None`` when that interval holds no event (the session has timed out)."""
    recent = in_window(events, at_us, SESSION_TIMEOUT)
    if not recent:
        return None
    return max(recent, key=lambda e: (e["event_timestamp"], e["session_id"]))["session_id"]


def reference_user_engagement(events: Sequence[Event], at_us: int) -> dict[str, Any]:
    pv5 = [e for e in in_window(events, at_us, W_5M) if e["event_type"] == "page_view"]
    clicks5 = sum(e["event_type"] == "click" for e in in_window(events, at_us, W_5M))
    session = current_session(events, at_us)
    s = [e for e in in_window(events, at_us, SESSION_HORIZON) if e["session_id"] == session]
    s_pv = sum(e["event_type"] == "page_view" for e in s)
    s_cart = sum(e["event_type"] == "add_to_cart" for e in s)
    s_purchase = sum(e["event_type"] == "purchase" for e in s)
    n = len(pv5)
    dwell = _div(sum(e["dwell_ms"] for e in pv5), n) / 1000.0 if n else None
    scroll = _div(sum(e["scroll_pct"] for e in pv5), n) / 100.0 if n else None
    click_rate = _div(clicks5, n) if n else None
    a = min(float(s_pv), 20.0) / 20.0
    b = min(dwell or 0.0, 120.0) / 120.0
    score = (((a + b) + (scroll or 0.0)) + min(click_rate or 0.0, 1.0)) / 4.0
    times = [e["event_timestamp"] for e in s]
    return {
        "session_duration_min": float(max(times) - min(times)) / 60_000_000.0 if session else None,
        "pages_per_session": s_pv,
        "avg_dwell_time_sec": dwell,
        "avg_scroll_depth": scroll,
        "click_rate_5m": click_rate,
        "cart_adds_session": s_cart,
        "conversion_rate_session": min(_div(s_purchase, s_cart), 1.0) if s_cart else None,
        "engagement_score": score,
        "is_likely_purchaser": s_cart >= 1 and s_purchase == 0 and score >= LIKELY_PURCHASER_MIN_ENGAGEMENT,
    }


def reference_session_activity(events: Sequence[Event], at_us: int) -> dict[str, Any]:
    s = in_window(events, at_us, SESSION_HORIZON)
    pv = [e for e in s if e["event_type"] == "page_view"]
    times = [e["event_timestamp"] for e in s]
    return {
        "session_event_count": len(s),
        "session_page_views": len(pv),
        "session_cart_adds": sum(e["event_type"] == "add_to_cart" for e in s),
        "session_purchases": sum(e["event_type"] == "purchase" for e in s),
        "session_duration_sec": float(max(times) - min(times)) / 1_000_000.0 if s else None,
        "session_avg_dwell_time_sec": _div(sum(e["dwell_ms"] for e in pv), len(pv)) / 1000.0 if pv else None,
        "session_distinct_categories": len({e["page_category"] for e in s}),
    }


REFERENCE = {
    TRANSACTION_STATS.name: reference_transaction_stats,
    CARD_PROFILE.name: reference_card_profile,
    DEVICE_ACTIVITY.name: reference_device_activity,
    USER_ENGAGEMENT.name: reference_user_engagement,
    SESSION_ACTIVITY.name: reference_session_activity,
}


def reference_rows(view: ViewSemantics, events: Sequence[Event]) -> list[dict[str, Any]]:
    """Every row the engines must emit for ``view``: one per entity and change point,
    ``{join_key, "event_timestamp": T, **features}``, sorted by (entity, T)."""
    by_entity: dict[str, list[Event]] = {}
    for e in events:
        by_entity.setdefault(e[view.join_key], []).append(e)
    rows = []
    for entity in sorted(by_entity):
        evs = by_entity[entity]
        for t in change_points((e["event_timestamp"] for e in evs), view.change_offsets):
            rows.append({view.join_key: entity, "event_timestamp": t, **REFERENCE[view.name](evs, t)})
    return rows
