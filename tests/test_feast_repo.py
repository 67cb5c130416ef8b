"""The repository as Feast sees it: the CLI commands and the seed README's Python examples."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tests.conftest import Repo, feast_cli, run

VIEWS = {"transaction_stats_5m", "card_profile_24h", "device_activity_24h", "user_engagement_5m", "session_activity"}


def test_plan_lists_no_change_after_apply_and_materialize(feature_repo: Repo) -> None:
    """Feast alone lists every materialized view as "Updated" (featurelib.feast_compat)."""
    out = run(["feast", "plan"], feature_repo.path).stdout
    assert "Created" not in out and "Deleted" not in out and "Updated" not in out, out[-2000:]
    assert "No changes to registry" in out and "No changes to infrastructure" in out


def test_feature_views_and_entities_list(feature_repo: Repo) -> None:
    views = feast_cli(feature_repo.path, "feature-views", "list").stdout
    for name in VIEWS | {"transaction_request_features"}:
        assert name in views
    entities = feast_cli(feature_repo.path, "entities", "list").stdout
    for name in ("card", "user", "device", "session"):
        assert f"{name} " in entities


def test_registry_dump_includes_the_python_on_demand_view(feature_repo: Repo) -> None:
    dump = json.loads(run(["feast", "registry-dump"], feature_repo.path).stdout)
    assert {v["spec"]["name"] for v in dump["featureViews"]} == VIEWS
    (odfv,) = dump["onDemandFeatureViews"]
    assert odfv["spec"]["mode"] == "python"
    assert "def transaction_request_features" in odfv["spec"]["featureTransformation"]["userDefinedFunction"]["body"]
    assert {s["spec"]["name"] for s in dump["featureServices"]} == {"fraud_detection", "personalization"}


def test_seed_online_example(feature_repo: Repo) -> None:
    from feast import FeatureStore

    fs = FeatureStore(repo_path=str(feature_repo.path))
    fraud_features = fs.get_online_features(
        features=[
            "transaction_stats_5m:txn_count_5m",
            "transaction_stats_5m:amount_avg_5m",
            "transaction_stats_5m:velocity_score",
        ],
        entity_rows=[{"card_id": "card_12345"}],
    ).to_dict()
    assert fraud_features["card_id"] == ["card_12345"]
    offline = pd.read_parquet(feature_repo.path / "data/features/transaction_stats_5m.parquet")
    latest = offline[(offline.card_id == "card_12345") & (offline.event_timestamp <= pd.Timestamp(feature_repo.materialized_at))].iloc[-1]
    assert fraud_features["txn_count_5m"] == [latest.txn_count_5m]
    assert fraud_features["velocity_score"] == [latest.velocity_score]


def test_seed_historical_example(feature_repo: Repo) -> None:
    from feast import FeatureStore

    fs = FeatureStore(repo_path=str(feature_repo.path))
    entity_df = pd.DataFrame([
        {"card_id": "card_12345", "event_timestamp": datetime.now() - timedelta(hours=1)},
        {"card_id": "card_67890", "event_timestamp": datetime.now() - timedelta(hours=2)},
    ])
    training_data = fs.get_historical_features(
        entity_df=entity_df,
        features=["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:velocity_score"],
    ).to_df()
    assert training_data.shape == (2, 4)
    assert training_data["txn_count_5m"].notna().all()


def test_feature_service_with_request_data(feature_repo: Repo) -> None:
    store = feature_repo.store()
    now_us = int(pd.Timestamp.now(tz="UTC").value // 1000)
    row = {"card_id": "card_12345", "device_id": "device_100000", "txn_amount": 100.0, "txn_country": "ZZ",
           "txn_merchant_category": "crypto", "txn_unix_us": now_us}
    out = store.get_online_features(features=store.get_feature_service("fraud_detection"), entity_rows=[row]).to_dict()
    assert out["is_new_country_24h"] == [True]
    assert out["is_high_risk_merchant"] == [True]
    assert out["minutes_since_last_txn"][0] is not None and out["minutes_since_last_txn"][0] >= 0
    # amount_avg_5m is null when the card's last transaction is over 5 minutes before the
    # materialized instant (it depends on when this runs); the ratio follows it either way.
    avg = out["amount_avg_5m"][0]
    assert out["amount_vs_avg_5m_ratio"][0] == (100.0 / avg if avg else None)


MIN = 60_000_000


@pytest.mark.parametrize(("request_row", "stored", "expected"), [
    ({"txn_amount": 100.0}, {"amount_avg_5m": 25.0}, {"amount_vs_avg_5m_ratio": 4.0}),
    ({"txn_amount": 100.0}, {"amount_avg_5m": None}, {"amount_vs_avg_5m_ratio": None}),  # no transaction in 5m
    ({"txn_amount": 130.0}, {"card_amount_avg_24h": 100.0, "card_amount_std_24h": 15.0}, {"amount_zscore_24h": 2.0}),
    ({"txn_amount": 130.0}, {"card_amount_avg_24h": 100.0, "card_amount_std_24h": 0.0}, {"amount_zscore_24h": None}),
    ({"txn_country": "FR"}, {"card_countries_24h": ["US", "FR"]}, {"is_new_country_24h": False}),
    ({"txn_country": "FR"}, {"card_countries_24h": None}, {"is_new_country_24h": True}),  # nothing in 24h: new
    ({"txn_unix_us": 10 * MIN}, {"last_txn_unix_us": 7 * MIN}, {"minutes_since_last_txn": 3.0}),
    ({"txn_unix_us": 10 * MIN}, {"last_txn_unix_us": None}, {"minutes_since_last_txn": None}),
    ({"txn_merchant_category": "crypto"}, {}, {"is_high_risk_merchant": True}),
    ({"txn_merchant_category": "grocery"}, {}, {"is_high_risk_merchant": False}),
])
def test_transaction_request_features(request_row: dict, stored: dict, expected: dict) -> None:
    """The on-demand view's Python function, one hand-computed case per output and null rule."""
    from on_demand_feature_views import transaction_request_features

    row = {"txn_amount": 50.0, "txn_country": "US", "txn_merchant_category": "grocery", "txn_unix_us": 0,
           "amount_avg_5m": None, "card_amount_avg_24h": None, "card_amount_std_24h": None,
           "card_countries_24h": None, "last_txn_unix_us": None} | request_row | stored
    out = transaction_request_features.feature_transformation.udf({k: [v] for k, v in row.items()})
    for name, value in expected.items():
        assert out[name] == [value], name
