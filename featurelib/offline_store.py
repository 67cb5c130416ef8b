"""The offline store: Feast's DuckDB store over this repository's Parquet files, reading
lookup instants at the store's precision.

``feature_store.yaml`` names it (``offline_store: type: featurelib.offline_store.ParquetOfflineStore``);
the settings are those of Feast's ``duckdb`` store.

**Lookup instants are read at microsecond precision.** Every stored timestamp is an integer
count of microseconds (docs/SEMANTICS.md), and pandas gives nanoseconds by default. Feast's
DuckDB store refuses an ``entity_df`` whose timestamps have a sub-microsecond part (``ArrowInvalid
... would lose data``). Here such an instant ``T`` is looked up at ``floor_us(T)``, the microsecond
that contains it: since feature rows are stamped on whole microseconds, ``event_timestamp <= T``
selects exactly the rows ``event_timestamp <= floor_us(T)`` does. (The view TTL is measured from
``floor_us(T)`` too.) The rows come back with the caller's own timestamps, nanoseconds included.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob
from pydantic import StrictStr

ROW = "__featurelib_entity_row"


class ParquetOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Feast's ``duckdb`` offline store settings."""

    type: StrictStr = "featurelib.offline_store.ParquetOfflineStore"


class ParquetOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store that also accepts nanosecond lookup instants."""

    @staticmethod
    def get_historical_features(config, feature_views, feature_refs, entity_df, registry, project,
                                full_feature_names: bool = False, filter_by_created_timestamp: bool = False,
                                ) -> RetrievalJob:
        original = None
        if isinstance(entity_df, pd.DataFrame):
            column = _timestamp_column(entity_df)
            instants = _as_utc(entity_df[column]) if column is not None else None
            if instants is not None and _has_sub_microseconds(instants):
                original = instants
                entity_df = entity_df.assign(**{column: instants.dt.floor("us"), ROW: range(len(entity_df))})
        job = DuckDBOfflineStore.get_historical_features(
            config, feature_views, feature_refs, entity_df, registry, project,
            full_feature_names=full_feature_names, filter_by_created_timestamp=filter_by_created_timestamp)
        return job if original is None else CallerTimestampsJob(job, original)


def _timestamp_column(entity_df: pd.DataFrame) -> str | None:
    schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
    try:
        return offline_utils.infer_event_timestamp_from_entity_df(schema)
    except Exception:  # Feast's own call reports it
        return None


def _as_utc(values: pd.Series) -> pd.Series:
    """Timestamps given as strings parsed (as UTC when they carry no zone, as Feast does); others as given."""
    if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
        return pd.to_datetime(values, utc=True)
    return values


def _has_sub_microseconds(values: pd.Series) -> bool:
    if not pd.api.types.is_datetime64_any_dtype(values):
        return False
    return bool((values.dropna().dt.nanosecond != 0).any())


class CallerTimestampsJob(RetrievalJob):
    """Feast's retrieval job over floored instants, answering with the caller's instants."""

    def __init__(self, job: RetrievalJob, original: pd.Series):
        self._job = job
        self._original = original.reset_index(drop=True)
        self._column = str(original.name)

    @property
    def full_feature_names(self) -> bool:
        return self._job.full_feature_names

    @property
    def on_demand_feature_views(self) -> list[Any]:
        return self._job.on_demand_feature_views

    @property
    def metadata(self):
        return self._job.metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        df = self._job._to_df_internal(timeout=timeout)
        rows = df.pop(ROW).to_numpy()
        df[self._column] = self._original.to_numpy()[rows]
        return df

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        table = self._job._to_arrow_internal(timeout=timeout)
        rows = table.column(ROW).to_numpy()
        table = table.drop_columns([ROW])
        restored = pa.Array.from_pandas(self._original.iloc[rows].reset_index(drop=True))
        return table.set_column(table.schema.get_field_index(self._column), self._column, restored)

    def persist(self, storage, allow_overwrite: bool = False, timeout: int | None = None):
        raise ValueError("saved datasets keep microseconds: floor the entity_df timestamps with "
                         ".dt.floor('us') before get_historical_features, then persist")
