"""The Spark profile (feature_store.spark.yaml: Feast's Spark offline store over the same Parquet)
returns the same training rows as the DuckDB profile.

A few thousand entity rows over every view: random instants, and every transaction's and
click's own instant minus 1 µs (the leakage rule of docs/TRAINING.md: a labelled event's
features must not include the event). Values are compared exactly (floats bit for bit).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark", reason="the Spark profile needs pyspark (requirements-spark.txt)")

from feast import FeatureStore  # noqa: E402

from featurelib import paths  # noqa: E402
from featurelib import semantics as s  # noqa: E402
from featurelib.pit import same  # noqa: E402
from tests.conftest import ROOT, TINY, copy_repo, feast_cli, make_repo, set_project  # noqa: E402

SPARK_YAML = "feature_store.spark.yaml"
FEATURES = {view.name: view.features for view in s.VIEWS.values()}


@pytest.fixture(scope="module")
def spark_repo(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Path:
    path = copy_repo(tmp_path_factory.mktemp("spark_profile"))
    set_project(path, "spark_profile")
    shutil.copy2(ROOT / SPARK_YAML, path / SPARK_YAML)
    set_project(path, "spark_profile", SPARK_YAML)
    make_repo(path, TINY, materialize=False)
    feast_cli(path, "-f", str(path / SPARK_YAML), "apply")  # raises when it fails
    yield path
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


def _entity_rows(repo: Path, kind: str, keys: list[str], n_random: int, seed: int) -> pd.DataFrame:
    """Every event's own instant minus 1 µs, and random instants over the data's span (plus a day)."""
    rng = np.random.default_rng(seed)
    events = pq.read_table(paths.raw_dir(repo) / kind).select([*keys, "event_timestamp"]).to_pandas()
    labelled = events.assign(event_timestamp=events.event_timestamp - pd.Timedelta(microseconds=1))
    t0, t1 = events.event_timestamp.min(), events.event_timestamp.max() + pd.Timedelta(days=1)
    picks = events.iloc[rng.integers(0, len(events), n_random)][keys].reset_index(drop=True)
    span_us = int((t1 - t0) / pd.Timedelta(microseconds=1))
    picks["event_timestamp"] = t0 + pd.to_timedelta(rng.integers(0, span_us, n_random), unit="us")
    rows = pd.concat([labelled, picks], ignore_index=True)
    rows["event_timestamp"] = pd.to_datetime(rows.event_timestamp, utc=True).astype("datetime64[us, UTC]")
    return rows


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame["event_timestamp"] = pd.to_datetime(frame.event_timestamp, utc=True).astype("datetime64[us, UTC]")
    return frame.sort_values([*keys, "event_timestamp"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("kind, keys, views", [
    (s.TRANSACTIONS, ["card_id", "device_id"], ["transaction_stats_5m", "card_profile_24h", "device_activity_24h"]),
    (s.CLICKSTREAM, ["user_id", "session_id"], ["user_engagement_5m", "session_activity"]),
])
def test_spark_profile_returns_the_duckdb_profiles_rows(spark_repo: Path, kind: str, keys: list[str],
                                                        views: list[str]) -> None:
    entity_df = _entity_rows(spark_repo, kind, keys, n_random=2_500, seed=5)
    refs = [f"{v}:{f}" for v in views for f in FEATURES[v]]
    duck = FeatureStore(repo_path=str(spark_repo))
    spark = FeatureStore(repo_path=str(spark_repo), fs_yaml_file=spark_repo / SPARK_YAML)
    expected = _sorted(duck.get_historical_features(entity_df=entity_df, features=refs).to_df(), keys)
    got = _sorted(spark.get_historical_features(entity_df=entity_df, features=refs).to_df(), keys)

    assert len(entity_df) > 2_500 and len(got) == len(expected) == len(entity_df)
    names = [*keys, "event_timestamp", *(f for v in views for f in FEATURES[v])]
    assert (expected[keys + ["event_timestamp"]] == got[keys + ["event_timestamp"]]).all().all()
    differing = {}
    for name in names[len(keys) + 1:]:
        a, b = expected[name].to_numpy(dtype=object), got[name].to_numpy(dtype=object)
        equal = [same(x, y) for x, y in zip(a, b)]
        if not all(equal):
            differing[name] = int(len(equal) - sum(equal))
    assert not differing, f"values differing per feature: {differing}"
    found = expected[names[len(keys) + 1:]].notna().any(axis=1).sum()
    assert found > len(entity_df) // 10  # rows within a view's TTL of some features
