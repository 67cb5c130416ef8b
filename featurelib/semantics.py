"""The exact meaning of every stored feature: one module, two engines.

This module is the single source of truth for feature semantics. Each view declares
its windowed *aggregates* as data (``featurelib.aggregations``: counts, integer sums of
cents, milliseconds and percent, maxima, distinct counts, event times, one custom
``CurrentSession``) and one ``derive_*`` function that turns them into feature values.
The batch engine (``featurelib.engine``) evaluates the aggregates column-wise, the
stream processor incrementally per entity (``featurelib.stream.windows``), both with the
same operators; because aggregates are integers and the derivations are the same numpy
code, the two agree bit for bit. ``featurelib.reference`` computes every feature straight
from its written definition by scanning the raw events; tests compare both engines with
it on random event sets.

Adding a windowed feature of a standard operation: one ``Aggregation`` and one line of
its view's ``derive_*`` here, its definition in ``featurelib.reference``, its field in
``feature_views.py``.

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

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.aggregations import Aggregation
from featurelib.custom_aggregations import CurrentSession
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






# --------------------------------------------------------------------------------------
# Views: which events, which aggregates (as data), which derivation.
# --------------------------------------------------------------------------------------

Aggregate = Aggregation | CurrentSession
SORT_KEYS = {
    TRANSACTIONS: ("event_timestamp",),
    CLICKSTREAM: ("event_timestamp", "session_id"),
}
"""After the join key, the order of an entity's events (the tie-break matters for the
current session of ``user_engagement_5m``)."""


@dataclass(frozen=True)
class ViewSemantics:
    """How one feature view is computed from one raw event stream: its aggregates (each a
    window over the entity's events) and the derivation of its features from them."""

    name: str
    join_key: str
    events: str
    aggregations: tuple[Aggregate, ...]
    derive: Callable[[Mapping[str, Any]], dict[str, pa.Array]]

    @property
    def change_offsets(self) -> tuple[int, ...]:
        """0 (an event enters) and every window length (it leaves), ascending."""
        return (0,) + tuple(sorted({w for a in self.aggregations for w in a.windows}))

    @property
    def aggregate_names(self) -> tuple[str, ...]:
        return tuple(name for a in self.aggregations for name in a.outputs)

    @property
    def sort_keys(self) -> tuple[str, ...]:
        return SORT_KEYS[self.events]

    @property
    def columns(self) -> tuple[str, ...]:
        """The raw-event columns the aggregates read, event time and tie-break first."""
        names = [*self.sort_keys, *(c for a in self.aggregations for c in a.columns)]
        return tuple(dict.fromkeys(names))

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names, in the order of the view's rows."""
        return _features(self)


@functools.cache
def _features(view: ViewSemantics) -> tuple[str, ...]:
    return tuple(view.derive({k: np.zeros(0, np.int64) for k in view.aggregate_names}))


PAGE_VIEWS = ("event_type", frozenset({"page_view"}))
TRANSACTION_STATS = ViewSemantics(
    name="transaction_stats_5m", join_key="card_id", events=TRANSACTIONS, derive=derive_transaction_stats,
    aggregations=(
        Aggregation("n5", "count", window=W_5M),
        Aggregation("n30", "count", window=W_30M),
        Aggregation("n24", "count", window=W_24H),
        Aggregation("sum5", "sum", "amount_cents", W_5M),
        Aggregation("max5", "max", "amount_cents", W_5M),
        Aggregation("countries5", "distinct", "country", W_5M),
        Aggregation("sq24", "count_squares", "country", W_24H),
        Aggregation("hr24", "count", window=W_24H, where=("merchant_category", HIGH_RISK_MERCHANT_CATEGORIES)),
        Aggregation("t_last", "last", window=W_24H),
        Aggregation("t_prev", "last", window=W_24H, nth=2),
    ),
)
CARD_PROFILE = ViewSemantics(
    name="card_profile_24h", join_key="card_id", events=TRANSACTIONS, derive=derive_card_profile,
    aggregations=(
        Aggregation("n", "count", window=W_24H),
        Aggregation("s1", "sum", "amount_cents", W_24H),
        Aggregation("s2", "sum_squares", "amount_cents", W_24H),
        Aggregation("countries", "distinct_list", "country", W_24H),
        Aggregation("devices", "distinct", "device_id", W_24H),
        Aggregation("merchants", "distinct", "merchant_id", W_24H),
        Aggregation("t_last", "last", window=W_24H),
    ),
)
DEVICE_ACTIVITY = ViewSemantics(
    name="device_activity_24h", join_key="device_id", events=TRANSACTIONS, derive=derive_device_activity,
    aggregations=(
        Aggregation("n1h", "count", window=W_1H),
        Aggregation("n24", "count", window=W_24H),
        Aggregation("sum24", "sum", "amount_cents", W_24H),
        Aggregation("cards", "distinct", "card_id", W_24H),
        Aggregation("users", "distinct", "user_id", W_24H),
        Aggregation("countries", "distinct", "country", W_24H),
    ),
)
USER_ENGAGEMENT = ViewSemantics(
    name="user_engagement_5m", join_key="user_id", events=CLICKSTREAM, derive=derive_user_engagement,
    aggregations=(
        Aggregation("pv5", "count", window=W_5M, where=PAGE_VIEWS),
        Aggregation("dwell5", "sum", "dwell_ms", W_5M, where=PAGE_VIEWS),
        Aggregation("scroll5", "sum", "scroll_pct", W_5M, where=PAGE_VIEWS),
        Aggregation("clicks5", "count", window=W_5M, where=("event_type", frozenset({"click"}))),
        CurrentSession(timeout=SESSION_TIMEOUT, horizon=SESSION_HORIZON,
                       counts=(("s_pv", "page_view"), ("s_cart", "add_to_cart"), ("s_purchase", "purchase"))),
    ),
)
SESSION_ACTIVITY = ViewSemantics(
    name="session_activity", join_key="session_id", events=CLICKSTREAM, derive=derive_session_activity,
    aggregations=(
        Aggregation("n", "count", window=SESSION_HORIZON),
        Aggregation("pv", "count", window=SESSION_HORIZON, where=PAGE_VIEWS),
        Aggregation("cart", "count", window=SESSION_HORIZON, where=("event_type", frozenset({"add_to_cart"}))),
        Aggregation("purchase", "count", window=SESSION_HORIZON, where=("event_type", frozenset({"purchase"}))),
        Aggregation("dwell", "sum", "dwell_ms", SESSION_HORIZON, where=PAGE_VIEWS),
        Aggregation("t_first", "first", window=SESSION_HORIZON),
        Aggregation("t_last", "last", window=SESSION_HORIZON),
        Aggregation("categories", "distinct", "page_category", SESSION_HORIZON),
    ),
)
VIEWS: dict[str, ViewSemantics] = {
    v.name: v for v in (TRANSACTION_STATS, CARD_PROFILE, DEVICE_ACTIVITY, USER_ENGAGEMENT, SESSION_ACTIVITY)
}

__all__ = [
    "VIEWS", "SORT_KEYS", "ViewSemantics", "Aggregation", "CurrentSession",
    "W_5M", "W_30M", "W_1H", "W_24H", "SESSION_TIMEOUT", "SESSION_HORIZON", "SECOND",
]
