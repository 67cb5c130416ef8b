#!/usr/bin/env python
"""Integration checks of the deployed feature store: this repository, its registry and its Redis.

Run after `feast apply` and `feast materialize-incremental` (as `make demo` does):

    python test_feast_integration.py        # or: pytest test_feast_integration.py

Unlike the test suite in tests/, which builds everything itself on private Redis servers, this
checks the real deployment that REDIS_CONNECTION_STRING (default localhost:6379) points at.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="module")
def store():
    from featurelib.repo import load_store

    return load_store(REPO)


def test_registry_holds_the_definitions(store) -> None:
    assert {e.name for e in store.list_entities()} >= {"card", "user", "device", "session"}
    assert {v.name for v in store.list_feature_views()} >= {"transaction_stats_5m", "user_engagement_5m"}
    assert {s.name for s in store.list_feature_services()} >= {"fraud_detection", "personalization"}


@pytest.mark.parametrize("check", ["check_registry", "check_redis", "check_definitions", "check_offline", "check_online"])
def test_validation_check_passes(store, check: str) -> None:
    from featurelib import validation

    result = getattr(validation, check)(store)
    assert result.status != validation.FAIL, f"{result.summary}: {result.details}"


def test_online_features_for_card_12345(store) -> None:
    out = store.get_online_features(
        features=["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:velocity_score"],
        entity_rows=[{"card_id": "card_12345"}],
    )
    values = out.to_dict()
    assert values["txn_count_5m"][0] is not None and values["velocity_score"][0] is not None


def test_historical_features(store) -> None:
    entity_df = pd.DataFrame([
        {"card_id": "card_12345", "event_timestamp": datetime.now() - timedelta(hours=1)},
        {"card_id": "card_67890", "event_timestamp": datetime.now() - timedelta(hours=2)},
    ])
    df = store.get_historical_features(entity_df=entity_df, features=["transaction_stats_5m:txn_count_5m"]).to_df()
    assert len(df) == 2 and df["txn_count_5m"].notna().all()


def test_online_equals_offline_for_card_12345(store) -> None:
    from featurelib.pit import validate_pit

    report = validate_pit(store, "card", "card_12345")
    assert report.ok, report.render()


def test_fraud_detection_service_with_request_data(store) -> None:
    row = {"card_id": "card_12345", "device_id": "device_100000", "txn_amount": 250.0, "txn_country": "US",
           "txn_merchant_category": "electronics", "txn_unix_us": int(pd.Timestamp.now(tz="UTC").value // 1000)}
    out = store.get_online_features(features=store.get_feature_service("fraud_detection"), entity_rows=[row]).to_dict()
    assert out["is_high_risk_merchant"] == [True]
    assert "amount_zscore_24h" in out


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]))
