"""Feast's Spark offline store over this repository's Parquet sources: training sets on Spark.

The repository's feature views read ``FileSource`` Parquet files (``data_sources.py``), which
Feast's ``SparkOfflineStore`` refuses: it takes only ``SparkSource``. This store is Feast's
Spark store with one change: before each call, every ``FileSource`` is handed over as the
``SparkSource`` of the same Parquet path, timestamp fields and field mapping. The SQL, the
point-in-time join (newest row with ``event_timestamp <= `` the entity row's timestamp and
within the view's TTL, created timestamp breaking ties) and everything else are Feast's.

Selected by the second profile, ``feature_store.spark.yaml`` (its own registry file,
``data/registry_spark.db``), with the same definitions and the same online store::

    feast -f feature_store.spark.yaml apply
    FeatureStore(repo_path=".", fs_yaml_file=Path("feature_store.spark.yaml"))

``spark_conf`` in that file says where Spark runs (``spark.master``: ``local[2]`` here, a
cluster's master URL there); on a cluster the Parquet paths must be readable by every
executor (a shared file system, or object storage paths in ``data_sources.py``). Timestamps
are microseconds in UTC (``spark.sql.session.timeZone``), as in the Parquet files.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from feast import FeatureView, FileSource
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore, SparkOfflineStoreConfig
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.repo_config import RepoConfig


class SparkParquetOfflineStoreConfig(SparkOfflineStoreConfig):
    type: Literal["featurelib.spark_offline_store.SparkParquetOfflineStore"] = (  # type: ignore[assignment]
        "featurelib.spark_offline_store.SparkParquetOfflineStore"
    )


def as_spark_source(source: DataSource) -> DataSource:
    """The ``SparkSource`` reading what a ``FileSource`` reads; any other source unchanged."""
    if not isinstance(source, FileSource):
        return source
    return SparkSource(
        name=source.name,
        path=source.path,
        file_format="parquet",
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=dict(source.field_mapping),
        description=source.description,
        tags=dict(source.tags),
        owner=source.owner,
    )


def _with_spark_sources(views: list[FeatureView]) -> list[FeatureView]:
    out = []
    for view in views:
        if isinstance(view.batch_source, FileSource):
            view = copy.copy(view)  # the registry's object stays as it is
            view.batch_source = as_spark_source(view.batch_source)
        out.append(view)
    return out


class SparkParquetOfflineStore(SparkOfflineStore):
    """``SparkOfflineStore`` that also reads the repository's ``FileSource`` Parquet files."""

    @staticmethod
    def get_historical_features(config: RepoConfig, feature_views: list[FeatureView], *args: Any,
                                **kwargs: Any) -> RetrievalJob:
        return SparkOfflineStore.get_historical_features(config, _with_spark_sources(feature_views), *args, **kwargs)

    @staticmethod
    def pull_latest_from_table_or_query(config: RepoConfig, data_source: DataSource, join_key_columns: list[str],
                                        feature_name_columns: list[str], timestamp_field: str,
                                        created_timestamp_column: str | None, start_date: datetime,
                                        end_date: datetime) -> RetrievalJob:
        return SparkOfflineStore.pull_latest_from_table_or_query(
            config, as_spark_source(data_source), join_key_columns, feature_name_columns, timestamp_field,
            created_timestamp_column, start_date, end_date)

    @staticmethod
    def pull_all_from_table_or_query(config: RepoConfig, data_source: DataSource, join_key_columns: list[str],
                                     feature_name_columns: list[str], timestamp_field: str, *args: Any,
                                     **kwargs: Any) -> RetrievalJob:
        return SparkOfflineStore.pull_all_from_table_or_query(
            config, as_spark_source(data_source), join_key_columns, feature_name_columns, timestamp_field,
            *args, **kwargs)
