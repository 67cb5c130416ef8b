"""The exact meaning of every stored feature: one module, two engines.

This module is the single source of truth for feature semantics. The batch
engine (``featurelib.batch``, DuckDB) and the stream processor both compute
*aggregates* (integer counts, integer sums of cents, milliseconds and percent,
distinct counts, timestamps) and then call the ``derive_*`` functions below to
turn aggregates into feature values. Because aggregates are integers and the
derivations are the same numpy code, the two engines agree bit for bit.

The ``reference_*`` functions compute each feature straight from its definition
by scanning the raw events (plain Python, no numpy, no cleverness). Tests
compare both engines against them on random event sets.

Rules shared by every view (see ``docs/SEMANTICS.md`` for the long form):

* Time is integer microseconds since the epoch, UTC (``featurelib.timeutil``).
* **Window bounds.** The value of a feature with window ``w`` at instant ``T``
  aggregates the entity's events with ``T - w < event_timestamp <= T``: open
  at the start, closed at the end. An event counts from its own timestamp on
  and stops counting exactly ``w`` later.
* **Ties.** Events with equal timestamps enter and leave windows together;
  their order never changes a value (every aggregate is order-free, and
  "latest event" choices break ties on a stated key).
* **Change points.** A view's values can change only at ``e + offset`` for an
  event time ``e`` and an offset in ``ViewSemantics.change_offsets`` (0 when
  the event enters, ``w`` when it leaves a window ``w``). Both engines emit one
  row per entity at each change point, so a point-in-time lookup at any
  instant returns the exact value. A row may repeat the previous values (an
  event entering while another leaves).
* **Event time only.** Values depend on event timestamps, never on arrival
  order or processing time. Late events are the stream processor's concern
  (allowed lateness); the batch engine is a pure function of the event set.
* **Nulls.** A value that is undefined (an average over an empty window) is
  null; counts and sums of an empty window are 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.timeutil import DAY, HOUR, MINUTE, SECOND

W_5M = 5 * MINUTE
W_30M = 30 * MINUTE
W_1H = HOUR
W_24H = 24 * HOUR
SESSION_TIMEOUT = 30 * MINUTE
"""A user's current session ends when the user has no event for this long."""
SESSION_HORIZON = 24 * HOUR
"""Session aggregates look back at most this far (bounds the state per user)."""

HIGH_RISK_MERCHANT_CATEGORIES = frozenset({"electronics", "gift_cards", "crypto", "money_transfer", "gambling"})
HIGH_VELOCITY_TXN_COUNT = 5
"""``is_high_velocity`` is true from this many transactions in 5 minutes."""
VELOCITY_SOFTNESS = 3.0
"""Excess transactions at which ``velocity_score`` reaches 0.5."""
LIKELY_PURCHASER_MIN_ENGAGEMENT = 0.35

TRANSACTIONS = "transactions"
CLICKSTREAM = "clickstream"


@dataclass(frozen=True)
class ViewSemantics:
    """How one feature view is computed from one raw event stream."""

    name: str
    join_key: str
    events: str
    change_offsets: tuple[int, ...]
    features: tuple[str, ...]


TRANSACTION_STATS = ViewSemantics(
    name="transaction_stats_5m",
    join_key="card_id",
    events=TRANSACTIONS,
    change_offsets=(0, W_5M, W_30M, W_24H),
    features=(
        "txn_count_5m", "txn_count_30m", "txn_count_24h",
        "amount_sum_5m", "amount_avg_5m", "amount_max_5m",
        "unique_countries_5m", "geo_diversity_score",
        "time_since_last_txn_min", "is_weekend",
        "velocity_score", "high_risk_txn_ratio", "is_high_velocity",
    ),
)
CARD_PROFILE = ViewSemantics(
    name="card_profile_24h",
    join_key="card_id",
    events=TRANSACTIONS,
    change_offsets=(0, W_24H),
    features=(
        "card_amount_avg_24h", "card_amount_std_24h", "card_distinct_countries_24h", "card_countries_24h",
        "card_distinct_devices_24h", "card_distinct_merchants_24h", "last_txn_unix_us",
    ),
)
DEVICE_ACTIVITY = ViewSemantics(
    name="device_activity_24h",
    join_key="device_id",
    events=TRANSACTIONS,
    change_offsets=(0, W_1H, W_24H),
    features=(
        "device_txn_count_1h", "device_txn_count_24h", "device_distinct_cards_24h",
        "device_distinct_users_24h", "device_distinct_countries_24h", "device_amount_sum_24h",
    ),
)
USER_ENGAGEMENT = ViewSemantics(
    name="user_engagement_5m",
    join_key="user_id",
    events=CLICKSTREAM,
    change_offsets=(0, W_5M, SESSION_TIMEOUT, SESSION_HORIZON),
    features=(
        "session_duration_min", "pages_per_session", "avg_dwell_time_sec", "avg_scroll_depth",
        "click_rate_5m", "cart_adds_session", "conversion_rate_session", "engagement_score",
        "is_likely_purchaser",
    ),
)
SESSION_ACTIVITY = ViewSemantics(
    name="session_activity",
    join_key="session_id",
    events=CLICKSTREAM,
    change_offsets=(0, SESSION_HORIZON),
    features=(
        "session_event_count", "session_page_views", "session_cart_adds", "session_purchases",
        "session_duration_sec", "session_avg_dwell_time_sec", "session_distinct_categories",
    ),
)
VIEWS: dict[str, ViewSemantics] = {
    v.name: v for v in (TRANSACTION_STATS, CARD_PROFILE, DEVICE_ACTIVITY, USER_ENGAGEMENT, SESSION_ACTIVITY)
}


# --------------------------------------------------------------------------------------
# Derivations: aggregates (integers) -> feature values. Shared by both engines.
# Every function takes a mapping of equally long numpy arrays and returns a mapping of
# pyarrow arrays in ``ViewSemantics.features`` order. Only +, -, *, / and sqrt are used
# on floats (all correctly rounded under IEEE 754), in a fixed order, so results do not
# depend on the engine, the platform or vectorization.
# --------------------------------------------------------------------------------------


def _f(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64; entries with ``den == 0`` come out 0 (and get masked)."""
    d = _f(den)
    return np.where(d == 0.0, 0.0, _f(num) / np.where(d == 0.0, 1.0, d))


def _nullable(values: np.ndarray, null: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.array(values, type=type_, mask=np.asarray(null, dtype=bool))


def is_weekend_us(t: np.ndarray) -> np.ndarray:
    """1 where the UTC day of ``t`` is a Saturday or Sunday (1970-01-01 was a Thursday)."""
    weekday = (np.asarray(t, dtype=np.int64) // DAY + 3) % 7  # Monday = 0
    return (weekday >= 5).astype(np.int64)


def velocity_score(n5: np.ndarray, n24: np.ndarray) -> np.ndarray:
    """Transactions in the last 5 minutes beyond the card's 24-hour pace, squashed to [0, 1).

    ``expected = txn_count_24h * 5 / 1440``; ``excess = max(0, txn_count_5m - expected)``;
    ``velocity_score = excess / (excess + 3)``.
    """
    expected = _f(n24) * 5.0 / 1440.0
    excess = np.maximum(_f(n5) - expected, 0.0)
    return excess / (excess + VELOCITY_SOFTNESS)


def derive_transaction_stats(a: Mapping[str, np.ndarray]) -> dict[str, pa.Array]:
    """Aggregates ``n5, n30, n24`` (counts), ``sum5, max5`` (cents in 5m), ``countries5``
    (distinct countries in 5m), ``sq24`` (sum over countries of the squared per-country
    count in 24h), ``hr24`` (high-risk count in 24h), ``t_last, t_prev`` (the two latest
    event times in 24h; meaningless where fewer events exist)."""
    n5, n24 = a["n5"], a["n24"]
    empty5, empty24 = n5 == 0, n24 == 0
    sq, n24f = _f(a["sq24"]), _f(n24)
    geo = 1.0 - np.where(empty24, 0.0, sq / np.where(empty24, 1.0, n24f * n24f))
    gap = _f(np.where(n24 >= 2, a["t_last"] - a["t_prev"], 0)) / 60_000_000.0
    return {
        "txn_count_5m": pa.array(n5, pa.int64()),
        "txn_count_30m": pa.array(a["n30"], pa.int64()),
        "txn_count_24h": pa.array(n24, pa.int64()),
        "amount_sum_5m": pa.array(_f(a["sum5"]) / 100.0, pa.float64()),
        "amount_avg_5m": _nullable(_ratio(a["sum5"], n5) / 100.0, empty5, pa.float64()),
        "amount_max_5m": _nullable(_f(np.where(empty5, 0, a["max5"])) / 100.0, empty5, pa.float64()),
        "unique_countries_5m": pa.array(a["countries5"], pa.int64()),
        "geo_diversity_score": _nullable(geo, empty24, pa.float64()),
        "time_since_last_txn_min": _nullable(gap, n24 < 2, pa.float64()),
        "is_weekend": _nullable(is_weekend_us(np.where(empty24, 0, a["t_last"])), empty24, pa.int64()),
        "velocity_score": pa.array(velocity_score(n5, n24), pa.float64()),
        "high_risk_txn_ratio": _nullable(_ratio(a["hr24"], n24), empty24, pa.float64()),
        "is_high_velocity": pa.array(np.asarray(n5) >= HIGH_VELOCITY_TXN_COUNT, pa.bool_()),
    }


def derive_card_profile(a: Mapping[str, Any]) -> dict[str, pa.Array]:
    """Aggregates over 24h: ``n`` (count), ``s1``/``s2`` (sum of cents / of squared cents),
    ``countries`` (sorted distinct country lists), ``devices``/``merchants`` (distinct
    counts), ``t_last`` (latest event time).

    ``s2`` exceeds int64 from ten amounts of 1e9 cents (the largest allowed), so it may be
    given as float64: the float nearest to the exact integer sum, ties to even (Python's
    ``float(int)``, which is what an int64 ``s2`` is converted to as well)."""
    n = np.asarray(a["n"])
    empty = n == 0
    nf = np.where(empty, 1.0, _f(n))
    mean = _f(a["s1"]) / nf
    s2 = np.asarray(a["s2"])
    var = np.maximum((s2 if s2.dtype == np.float64 else _f(s2)) / nf - mean * mean, 0.0)
    countries = a["countries"]
    if not isinstance(countries, (pa.Array, pa.ChunkedArray)):
        countries = pa.array(list(countries), pa.list_(pa.string()))
    return {
        "card_amount_avg_24h": _nullable(mean / 100.0, empty, pa.float64()),
        "card_amount_std_24h": _nullable(np.sqrt(var) / 100.0, empty, pa.float64()),
        "card_distinct_countries_24h": pa.array(pc.list_value_length(countries).fill_null(0).to_numpy(), pa.int64()),
        "card_countries_24h": countries,
        "card_distinct_devices_24h": pa.array(a["devices"], pa.int64()),
        "card_distinct_merchants_24h": pa.array(a["merchants"], pa.int64()),
        "last_txn_unix_us": _nullable(np.where(empty, 0, a["t_last"]), empty, pa.int64()),
    }


def derive_device_activity(a: Mapping[str, np.ndarray]) -> dict[str, pa.Array]:
    """Aggregates: ``n1h, n24`` (counts), ``cards, users, countries`` (distinct in 24h),
    ``sum24`` (cents in 24h)."""
    return {
        "device_txn_count_1h": pa.array(a["n1h"], pa.int64()),
        "device_txn_count_24h": pa.array(a["n24"], pa.int64()),
        "device_distinct_cards_24h": pa.array(a["cards"], pa.int64()),
        "device_distinct_users_24h": pa.array(a["users"], pa.int64()),
        "device_distinct_countries_24h": pa.array(a["countries"], pa.int64()),
        "device_amount_sum_24h": pa.array(_f(a["sum24"]) / 100.0, pa.float64()),
    }


def engagement_score(pages: np.ndarray, avg_dwell_sec: np.ndarray, avg_scroll: np.ndarray, click_rate: np.ndarray) -> np.ndarray:
    """Mean of four terms in [0, 1], with null inputs counted as 0:
    ``min(pages_per_session, 20) / 20``, ``min(avg_dwell_time_sec, 120) / 120``,
    ``avg_scroll_depth`` and ``min(click_rate_5m, 1)``."""
    a = np.minimum(_f(pages), 20.0) / 20.0
    b = np.minimum(avg_dwell_sec, 120.0) / 120.0
    return (((a + b) + avg_scroll) + np.minimum(click_rate, 1.0)) / 4.0


def derive_user_engagement(a: Mapping[str, np.ndarray]) -> dict[str, pa.Array]:
    """Aggregates over 5m: ``pv5`` (page views), ``dwell5`` (sum of dwell ms over page
    views), ``scroll5`` (sum of scroll percent over page views), ``clicks5``. Over the
    current session (see ``reference_user_engagement``): ``has_session`` (0/1),
    ``s_first, s_last`` (first/last event time), ``s_pv, s_cart, s_purchase`` (counts)."""
    pv5 = a["pv5"]
    no_pv = pv5 == 0
    no_session = np.asarray(a["has_session"]) == 0
    dwell = _ratio(a["dwell5"], pv5) / 1000.0
    scroll = _ratio(a["scroll5"], pv5) / 100.0
    clicks = _ratio(a["clicks5"], pv5)
    s_pv, s_cart = np.asarray(a["s_pv"]), np.asarray(a["s_cart"])
    duration = _f(np.where(no_session, 0, a["s_last"] - a["s_first"])) / 60_000_000.0
    score = engagement_score(s_pv, dwell, scroll, clicks)
    likely = (s_cart >= 1) & (np.asarray(a["s_purchase"]) == 0) & (score >= LIKELY_PURCHASER_MIN_ENGAGEMENT)
    return {
        "session_duration_min": _nullable(duration, no_session, pa.float64()),
        "pages_per_session": pa.array(s_pv, pa.int64()),
        "avg_dwell_time_sec": _nullable(dwell, no_pv, pa.float64()),
        "avg_scroll_depth": _nullable(scroll, no_pv, pa.float64()),
        "click_rate_5m": _nullable(clicks, no_pv, pa.float64()),
        "cart_adds_session": pa.array(s_cart, pa.int64()),
        "conversion_rate_session": _nullable(np.minimum(_ratio(a["s_purchase"], s_cart), 1.0), s_cart == 0, pa.float64()),
        "engagement_score": pa.array(score, pa.float64()),
        "is_likely_purchaser": pa.array(likely, pa.bool_()),
    }


def derive_session_activity(a: Mapping[str, np.ndarray]) -> dict[str, pa.Array]:
    """Aggregates over the session's events in 24h: ``n, pv, cart, purchase`` (counts),
    ``t_first, t_last``, ``dwell`` (sum of dwell ms over page views), ``categories``
    (distinct page categories)."""
    n, pv = np.asarray(a["n"]), a["pv"]
    empty = n == 0
    return {
        "session_event_count": pa.array(n, pa.int64()),
        "session_page_views": pa.array(pv, pa.int64()),
        "session_cart_adds": pa.array(a["cart"], pa.int64()),
        "session_purchases": pa.array(a["purchase"], pa.int64()),
        "session_duration_sec": _nullable(_f(np.where(empty, 0, a["t_last"] - a["t_first"])) / 1_000_000.0, empty, pa.float64()),
        "session_avg_dwell_time_sec": _nullable(_ratio(a["dwell"], pv) / 1000.0, pv == 0, pa.float64()),
        "session_distinct_categories": pa.array(a["categories"], pa.int64()),
    }


DERIVE = {
    TRANSACTION_STATS.name: derive_transaction_stats,
    CARD_PROFILE.name: derive_card_profile,
    DEVICE_ACTIVITY.name: derive_device_activity,
    USER_ENGAGEMENT.name: derive_user_engagement,
    SESSION_ACTIVITY.name: derive_session_activity,
}


# --------------------------------------------------------------------------------------
# Brute-force reference: each feature straight from its definition. Plain Python over
# the raw events of one entity (dicts with raw-event column names; ``event_timestamp``
# as int microseconds). Slow on purpose: it is the test oracle and the readable spec.
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


__all__ = [
    "VIEWS", "DERIVE", "REFERENCE", "ViewSemantics", "reference_rows", "change_points", "in_window",
    "W_5M", "W_30M", "W_1H", "W_24H", "SESSION_TIMEOUT", "SESSION_HORIZON", "SECOND",
]
