"""Feature views: named groups of features of one entity, with their schema.

The exact meaning of every feature (window bounds, ties, nulls) is defined in
``featurelib/semantics.py`` and explained in ``docs/SEMANTICS.md``. In short: a
feature with window ``w`` read at instant ``T`` aggregates the entity's events
with ``T - w < event_timestamp <= T`` (UTC, microsecond precision), and the
offline files hold a row at every instant where a value can change, so a
point-in-time lookup at any instant returns the exact value.

Every field states its unit and window in its description and in the tags
``unit`` and ``window``.
"""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Array, Bool, Float64, Int64, String

from data_sources import (
    card_profile_push_source,
    device_activity_push_source,
    session_activity_push_source,
    transaction_stats_push_source,
    user_engagement_push_source,
)
from entities import card, device, session, user
from featurelib.tags import field_tags

OWNER = "ml-platform@example.com"


def feature(name: str, dtype, unit: str, window: str, description: str, *, min=None, max=None,  # noqa: A002
            allowed=None, max_null_share=None, drift: bool = True) -> Field:
    """A field whose unit and window are both in its description and in its tags, with the
    expectations valid data meets (``feature_utils.py quality`` checks them):

    * ``min`` / ``max``: inclusive bounds of every non-null value;
    * ``allowed``: the only values allowed;
    * ``max_null_share``: the largest share of null values allowed (0 to 1);
    * ``drift=False``: leave it out of ``feature_utils.py drift`` (a timestamp or calendar
      feature changes with the date by definition).
    """
    tags = field_tags(unit, window, min=min, max=max, allowed=allowed, max_null_share=max_null_share, drift=drift)
    return Field(name=name, dtype=dtype, description=f"{description} Unit: {unit}. Window: {window}.", tags=tags)


# Fraud detection: windowed statistics of a card's transactions.
transaction_stats_5m_fv = FeatureView(
    name="transaction_stats_5m",
    entities=[card],
    ttl=timedelta(days=7),
    schema=[
        feature("txn_count_5m", Int64, "transactions", "5m",
                "Transactions of the card in the last 5 minutes, (T-5m, T].", min=0, max_null_share=0),
        feature("txn_count_30m", Int64, "transactions", "30m",
                "Transactions of the card in the last 30 minutes, (T-30m, T].", min=0, max_null_share=0),
        feature("txn_count_24h", Int64, "transactions", "24h",
                "Transactions of the card in the last 24 hours, (T-24h, T].", min=0, max_null_share=0),
        feature("amount_sum_5m", Float64, "USD", "5m",
                "Total amount of the card's transactions in the last 5 minutes; 0 when there were none.", min=0, max_null_share=0),
        feature("amount_avg_5m", Float64, "USD", "5m",
                "Mean transaction amount in the last 5 minutes; null when there were none.", min=0),
        feature("amount_max_5m", Float64, "USD", "5m",
                "Largest transaction amount in the last 5 minutes; null when there were none.", min=0),
        feature("unique_countries_5m", Int64, "countries", "5m",
                "Distinct countries the card was used in during the last 5 minutes.", min=0, max_null_share=0),
        feature("geo_diversity_score", Float64, "probability in [0, 1)", "24h",
                "Gini-Simpson index of the countries of the last 24 hours' transactions: the chance that two "
                "of them, drawn with replacement, come from different countries; null when there were none.", min=0, max=1),
        feature("time_since_last_txn_min", Float64, "minutes", "24h",
                "Minutes between the card's two latest transactions within the last 24 hours; "
                "null when there are fewer than two.", min=0, max=1440),
        feature("is_weekend", Int64, "flag 0/1", "24h",
                "1 when the card's latest transaction within the last 24 hours fell on a Saturday or Sunday "
                "(UTC), else 0; null when there was none.", allowed=(0, 1), drift=False),
        feature("velocity_score", Float64, "score in [0, 1)", "5m and 24h",
                "Transactions in the last 5 minutes beyond the card's 24-hour pace: with "
                "excess = max(0, txn_count_5m - txn_count_24h*5/1440), excess / (excess + 3).", min=0, max=1, max_null_share=0),
        feature("high_risk_txn_ratio", Float64, "fraction in [0, 1]", "24h",
                "Share of the last 24 hours' transactions at high-risk merchant categories (electronics, "
                "gift cards, crypto, money transfer, gambling); null when there were none.", min=0, max=1),
        feature("is_high_velocity", Bool, "flag", "5m",
                "True when the card made 5 or more transactions in the last 5 minutes.", max_null_share=0),
    ],
    online=True,
    source=transaction_stats_push_source,
    description="Real-time transaction statistics per card for fraud scoring (5-minute, 30-minute and 24-hour windows).",
    owner=OWNER,
    tags={"team": "fraud", "use_case": "fraud_detection", "windows": "5m,30m,24h", "freshness": "stream",
          "freshness_max_age": "10m"},
)

# Fraud detection: the card's 24-hour profile, for comparing a new transaction with its recent past.
card_profile_24h_fv = FeatureView(
    name="card_profile_24h",
    entities=[card],
    ttl=timedelta(days=7),
    schema=[
        feature("card_amount_avg_24h", Float64, "USD", "24h",
                "Mean transaction amount of the card in the last 24 hours; null when there were none.", min=0),
        feature("card_amount_std_24h", Float64, "USD", "24h",
                "Population standard deviation of the card's transaction amounts in the last 24 hours; "
                "null when there were none.", min=0),
        feature("card_distinct_countries_24h", Int64, "countries", "24h",
                "Distinct countries of the card's transactions in the last 24 hours.", min=0, max_null_share=0),
        feature("card_countries_24h", Array(String), "ISO 3166-1 alpha-2 codes", "24h",
                "The distinct countries of the card's transactions in the last 24 hours, sorted; empty when "
                "there were none.", max_null_share=0),
        feature("card_distinct_devices_24h", Int64, "devices", "24h",
                "Distinct devices the card was used from in the last 24 hours.", min=0, max_null_share=0),
        feature("card_distinct_merchants_24h", Int64, "merchants", "24h",
                "Distinct merchants the card paid in the last 24 hours.", min=0, max_null_share=0),
        feature("last_txn_unix_us", Int64, "microseconds since the Unix epoch (UTC)", "24h",
                "Time of the card's latest transaction within the last 24 hours; null when there was none.", min=0,
                drift=False),
    ],
    online=True,
    source=card_profile_push_source,
    description="Per-card spending profile over the last 24 hours: typical amounts, countries, devices, merchants.",
    owner=OWNER,
    tags={"team": "fraud", "use_case": "fraud_detection", "windows": "24h", "freshness": "stream",
          "freshness_max_age": "10m"},
)

# Fraud detection: how many cards, users and countries a device touched (fraud rings, card testing rigs).
device_activity_24h_fv = FeatureView(
    name="device_activity_24h",
    entities=[device],
    ttl=timedelta(days=7),
    schema=[
        feature("device_txn_count_1h", Int64, "transactions", "1h",
                "Transactions made from the device in the last hour.", min=0, max_null_share=0),
        feature("device_txn_count_24h", Int64, "transactions", "24h",
                "Transactions made from the device in the last 24 hours.", min=0, max_null_share=0),
        feature("device_distinct_cards_24h", Int64, "cards", "24h",
                "Distinct cards used from the device in the last 24 hours.", min=0, max_null_share=0),
        feature("device_distinct_users_24h", Int64, "users", "24h",
                "Distinct card owners (users) seen on the device in the last 24 hours.", min=0, max_null_share=0),
        feature("device_distinct_countries_24h", Int64, "countries", "24h",
                "Distinct transaction countries seen on the device in the last 24 hours.", min=0, max_null_share=0),
        feature("device_amount_sum_24h", Float64, "USD", "24h",
                "Total amount paid from the device in the last 24 hours.", min=0, max_null_share=0),
    ],
    online=True,
    source=device_activity_push_source,
    description="Transaction activity per device fingerprint over the last hour and day.",
    owner=OWNER,
    tags={"team": "fraud", "use_case": "fraud_detection", "windows": "1h,24h", "freshness": "stream",
          "freshness_max_age": "10m"},
)

# Personalization: a user's engagement in the last 5 minutes and in the current session.
user_engagement_5m_fv = FeatureView(
    name="user_engagement_5m",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        feature("session_duration_min", Float64, "minutes", "current session",
                "Minutes from the first to the latest event of the user's current session (the session of the "
                "user's latest event within 30 minutes; events older than 24 hours are not counted); null when "
                "the user has no current session.", min=0, max=1440),
        feature("pages_per_session", Int64, "page views", "current session",
                "Page views in the user's current session; 0 when there is none.", min=0, max_null_share=0),
        feature("avg_dwell_time_sec", Float64, "seconds", "5m",
                "Mean dwell time of the user's page views in the last 5 minutes; null when there were none.", min=0),
        feature("avg_scroll_depth", Float64, "fraction in [0, 1]", "5m",
                "Mean scroll depth of the user's page views in the last 5 minutes; null when there were none.", min=0, max=1),
        feature("click_rate_5m", Float64, "clicks per page view", "5m",
                "Clicks divided by page views in the last 5 minutes; null when there were no page views.", min=0),
        feature("cart_adds_session", Int64, "cart adds", "current session",
                "Add-to-cart events in the user's current session.", min=0, max_null_share=0),
        feature("conversion_rate_session", Float64, "fraction in [0, 1]", "current session",
                "Purchases divided by cart adds in the current session, at most 1; null without cart adds.", min=0, max=1),
        feature("engagement_score", Float64, "score in [0, 1]", "5m and current session",
                "Mean of min(pages_per_session, 20)/20, min(avg_dwell_time_sec, 120)/120, avg_scroll_depth "
                "and min(click_rate_5m, 1), with nulls counted as 0.", min=0, max=1, max_null_share=0),
        feature("is_likely_purchaser", Bool, "flag", "5m and current session",
                "True when the current session has a cart add, no purchase yet, and engagement_score >= 0.35.", max_null_share=0),
    ],
    online=True,
    source=user_engagement_push_source,
    description="Real-time clickstream engagement per user for personalization (5-minute window and current session).",
    owner=OWNER,
    tags={"team": "personalization", "use_case": "personalization", "windows": "5m,session",
          "freshness": "stream", "freshness_max_age": "10m"},
)

# Personalization: activity of one browsing session.
session_activity_fv = FeatureView(
    name="session_activity",
    entities=[session],
    ttl=timedelta(days=2),
    schema=[
        feature("session_event_count", Int64, "events", "session, last 24h",
                "Clickstream events of the session in the last 24 hours.", min=0, max_null_share=0),
        feature("session_page_views", Int64, "page views", "session, last 24h",
                "Page views of the session in the last 24 hours.", min=0, max_null_share=0),
        feature("session_cart_adds", Int64, "cart adds", "session, last 24h",
                "Add-to-cart events of the session in the last 24 hours.", min=0, max_null_share=0),
        feature("session_purchases", Int64, "purchases", "session, last 24h",
                "Purchase events of the session in the last 24 hours.", min=0, max_null_share=0),
        feature("session_duration_sec", Float64, "seconds", "session, last 24h",
                "Seconds from the session's first to its latest event within the last 24 hours; null when none.", min=0, max=86400),
        feature("session_avg_dwell_time_sec", Float64, "seconds", "session, last 24h",
                "Mean dwell time of the session's page views in the last 24 hours; null when there were none.", min=0),
        feature("session_distinct_categories", Int64, "page categories", "session, last 24h",
                "Distinct page categories the session visited in the last 24 hours.", min=0, max_null_share=0),
    ],
    online=True,
    source=session_activity_push_source,
    description="Clickstream activity per browsing session (events within the last 24 hours).",
    owner=OWNER,
    tags={"team": "personalization", "use_case": "personalization", "windows": "24h", "freshness": "batch",
          "freshness_max_age": "1d"},
)
