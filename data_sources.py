"""Data sources: where each feature view's rows come from.

Every feature view reads one Parquet file of feature rows from ``data/features/``
(written by ``python -m featurelib.batch`` from the raw events; see
``docs/SEMANTICS.md``) and can also receive fresh rows pushed by stream jobs
through a push source that wraps it.

Paths are absolute, computed from this file's location: Feast's DuckDB offline
store resolves relative ``FileSource`` paths against the current working
directory, and the repository must work from any directory.
"""

from pathlib import Path

from feast import FileSource, PushSource

OWNER = "ml-platform@example.com"
FEATURES_DIR = Path(__file__).resolve().parent / "data" / "features"


def _feature_rows(view_name: str, description: str, events: str) -> FileSource:
    return FileSource(
        name=f"{view_name}_source",
        path=str(FEATURES_DIR / f"{view_name}.parquet"),
        timestamp_field="event_timestamp",
        description=description,
        owner=OWNER,
        tags={"format": "parquet", "computed_from": events, "engine": "featurelib.batch"},
    )


# Card transaction statistics (fraud), one row per card and change point.
transaction_stats_source = _feature_rows(
    "transaction_stats_5m", "Windowed transaction statistics per card, one row per change point.", "transactions"
)
transaction_stats_push_source = PushSource(
    name="transaction_stats_push_source",
    batch_source=transaction_stats_source,
    description="Fresh transaction_stats_5m rows pushed by stream jobs.",
    owner=OWNER,
    tags={"stream": "transactions"},
)

# 24-hour card profile (fraud): typical amounts, countries, devices, last transaction time.
card_profile_source = _feature_rows(
    "card_profile_24h", "24-hour spending profile per card, one row per change point.", "transactions"
)
card_profile_push_source = PushSource(
    name="card_profile_push_source",
    batch_source=card_profile_source,
    description="Fresh card_profile_24h rows pushed by stream jobs.",
    owner=OWNER,
    tags={"stream": "transactions"},
)

# Device activity (fraud): how many cards, users and countries a device touched.
device_activity_source = _feature_rows(
    "device_activity_24h", "Transaction activity per device, one row per change point.", "transactions"
)
device_activity_push_source = PushSource(
    name="device_activity_push_source",
    batch_source=device_activity_source,
    description="Fresh device_activity_24h rows pushed by stream jobs.",
    owner=OWNER,
    tags={"stream": "transactions"},
)

# User engagement (personalization), from the clickstream.
user_engagement_source = _feature_rows(
    "user_engagement_5m", "Clickstream engagement per user, one row per change point.", "clickstream"
)
user_engagement_push_source = PushSource(
    name="user_engagement_push_source",
    batch_source=user_engagement_source,
    description="Fresh user_engagement_5m rows pushed by stream jobs.",
    owner=OWNER,
    tags={"stream": "clickstream"},
)

# Session activity (personalization), from the clickstream.
session_activity_source = _feature_rows(
    "session_activity", "Clickstream activity per session, one row per change point.", "clickstream"
)
session_activity_push_source = PushSource(
    name="session_activity_push_source",
    batch_source=session_activity_source,
    description="Fresh session_activity rows pushed by stream jobs.",
    owner=OWNER,
    tags={"stream": "clickstream"},
)
