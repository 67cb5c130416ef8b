"""The offline store: Feast's DuckDB store over this repository's Parquet files, with
``get_historical_features`` as DuckDB ``ASOF JOIN``s (``featurelib/asof_join.py``).

``feature_store.yaml`` names it::

    offline_store:
      type: featurelib.offline_store.ParquetOfflineStore
      memory_limit: 1GB          # DuckDB's memory_limit for a retrieval; beyond it, DuckDB spills
      temp_directory: null       # where it spills (default: the system temp directory)
      threads: null              # DuckDB threads (default: one per core)
      progress: true             # DuckDB's progress bar for retrievals longer than 2 s
      on_demand_rows: 100000     # rows per slice on which on-demand views are computed

Everything else is Feast's ``duckdb`` store (materialization reads, ``offline_write_batch``,
saved datasets, monitoring).

**The point-in-time join** returns exactly what Feast's DuckDB store returns (the same rows,
columns and values; ``tests/test_offline_store.py`` compares them on random data): for each
entity row and view, the latest row with ``event_timestamp <= T`` within the view's TTL, ties
decided by the created timestamp, nulls where there is none; ``full_feature_names``; on-demand
views over the joined columns. ``entity_df`` may also be an SQL query (DuckDB dialect, e.g. over
``read_parquet('labels.parquet')``), which Feast's DuckDB store does not accept. Rows come back
in ``entity_df``'s order. Retrievals this join does not cover fall back to Feast's own:
``filter_by_created_timestamp``, versioned feature references (``view@v2:feature``), sources
other than local Parquet files, substrait on-demand views.

**Lookup instants are read at microsecond precision.** Every stored timestamp is an integer
count of microseconds (docs/SEMANTICS.md), and pandas gives nanoseconds by default. An instant
``T`` with a sub-microsecond part is looked up at ``floor_us(T)``, the microsecond that contains
it: since feature rows are stamped on whole microseconds, ``event_timestamp <= T`` selects exactly
the rows ``event_timestamp <= floor_us(T)`` does (the TTL is measured from ``floor_us(T)`` too).
The rows come back with the caller's own timestamps, nanoseconds included.

**Memory is bounded** by ``memory_limit``: DuckDB sorts and joins out of core, so the join itself
needs about that much whatever the number of rows; ``to_df()`` and ``to_arrow()`` hold the result
(and the caller holds ``entity_df``), while ``to_parquet(path)`` and ``persist`` stream the result
to a Parquet file without holding it.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureView, FileSource
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.on_demand_feature_view import OnDemandFeatureView
from pydantic import StrictBool, StrictInt, StrictStr

from featurelib import asof_join, duck
from featurelib.asof_join import ROW

ENTITY = "__featurelib_entity"


class ParquetOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Feast's ``duckdb`` offline store settings, plus DuckDB's resources for retrievals."""

    type: StrictStr = "featurelib.offline_store.ParquetOfflineStore"
    memory_limit: StrictStr = "1GB"
    """DuckDB's ``memory_limit`` for a point-in-time join; beyond it DuckDB spills to disk."""
    temp_directory: StrictStr | None = None
    """Where DuckDB spills (default: ``featurelib-duckdb`` in the system temp directory)."""
    threads: StrictInt | None = None
    """DuckDB threads for a retrieval (default: one per core)."""
    progress: StrictBool = True
    """DuckDB's progress bar for retrievals that run longer than 2 s (and one for on-demand views)."""
    on_demand_rows: StrictInt = 100_000
    """Rows per slice on which on-demand feature views are computed (``AsofRetrievalJob.to_arrow``)."""


class ParquetOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with an ``ASOF JOIN`` point-in-time join."""

    @staticmethod
    def get_historical_features(config, feature_views, feature_refs, entity_df, registry, project,
                                full_feature_names: bool = False, filter_by_created_timestamp: bool = False,
                                ) -> RetrievalJob:
        views = None if filter_by_created_timestamp else _view_joins(config, feature_views, feature_refs, full_feature_names)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        if views is None or any(o.mode == "substrait" for o in odfvs):
            return _feast_join(config, feature_views, feature_refs, entity_df, registry, project,
                               full_feature_names, filter_by_created_timestamp)
        entity = _EntityRows(entity_df)
        metadata = RetrievalMetadata(features=feature_refs, keys=[c for c in entity.columns if c != entity.timestamp],
                                     min_event_timestamp=entity.min_max[0], max_event_timestamp=entity.min_max[1])
        return AsofRetrievalJob(config.offline_store, entity, views, odfvs, full_feature_names, metadata)


def _view_joins(config, feature_views: list[FeatureView], feature_refs: list[str],
                full_feature_names: bool) -> list[asof_join.ViewJoin] | None:
    """Each view's part of the join, in Feast's column order, or ``None`` when one of them is
    outside what the ``ASOF`` join covers."""
    if any("@" in ref.split(":", 1)[0] for ref in feature_refs):
        return None
    joins = []
    for view in feature_views:
        source = view.batch_source
        if not isinstance(source, FileSource) or "://" in source.path or source.file_format is not None and \
                type(source.file_format).__name__ != "ParquetFormat":
            return None
        path = Path(source.path)
        if not path.is_absolute():
            path = Path(config.repo_path or ".") / path
        prefix = view.projection.name_to_use()
        names = [ref.split(":", 1)[1] for ref in feature_refs if ref.startswith(f"{prefix}:")]
        alias = view.projection.name_alias or view.name
        renamed = {v: k for k, v in source.field_mapping.items()}  # Feast's name -> the file's
        relation = asof_join.parquet_relation(str(path))
        if renamed:
            relation = (f"(SELECT * EXCLUDE ({', '.join(asof_join.ident(c) for c in renamed.values())}), "
                        + ", ".join(f"{asof_join.ident(old)} AS {asof_join.ident(new)}" for new, old in renamed.items())
                        + f" FROM {relation})")
        joins.append(asof_join.ViewJoin(
            source_sql=relation, timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column or None,
            join_keys=dict(view.projection.join_key_map or {e.name: e.name for e in view.entity_columns}),
            columns={n: f"{alias}__{n}" if full_feature_names else n for n in names}, ttl=view.ttl))
    return joins


class _EntityRows:
    """``entity_df`` as the join reads it: a DataFrame (registered with DuckDB, its timestamps in
    UTC microseconds) or an SQL query."""

    def __init__(self, entity_df: pd.DataFrame | str):
        self.sql = entity_df if isinstance(entity_df, str) else None
        self.frame: pd.DataFrame | None = None
        self.caller_instants: pd.Series | None = None
        if self.sql is not None:
            with _connect(None) as con:
                schema = con.sql(f"SELECT * FROM ({self.sql}) LIMIT 0").df().dtypes
                self.columns = list(schema.index)
                self.timestamp = offline_utils.infer_event_timestamp_from_entity_df(dict(schema))
                low, high = con.execute(f"SELECT min({asof_join.ident(self.timestamp)}), "
                                        f"max({asof_join.ident(self.timestamp)}) FROM ({self.sql})").fetchone()
            self.min_max = (_utc(low), _utc(high))
            return
        self.columns = list(entity_df.columns)
        self.timestamp = offline_utils.infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes)))
        instants = _parsed(entity_df[self.timestamp])
        instants = instants.dt.tz_localize("UTC") if instants.dt.tz is None else instants.dt.tz_convert("UTC")
        if (instants.dropna().dt.nanosecond != 0).any():
            self.caller_instants = instants.reset_index(drop=True)
        self.min_max = (instants.min().floor("us").to_pydatetime(), instants.max().floor("us").to_pydatetime())
        self.frame = entity_df.assign(**{self.timestamp: instants.dt.floor("us").astype("datetime64[us, UTC]"),
                                         ROW: np.arange(len(entity_df), dtype=np.int64)})

    def relation(self, con: duckdb.DuckDBPyConnection) -> str:
        ts = asof_join.ident(self.timestamp)
        if self.frame is not None:
            con.register(ENTITY, self.frame)
            return f"SELECT * REPLACE (CAST({ts} AS TIMESTAMPTZ) AS {ts}) FROM {ENTITY}"
        return (f"SELECT * REPLACE (CAST({ts} AS TIMESTAMPTZ) AS {ts}), row_number() OVER () - 1 AS {asof_join.ident(ROW)} "
                f"FROM ({self.sql})")

    def restore_instants(self, table: pa.Table) -> pa.Table:
        """The caller's own (nanosecond) instants in place of the microseconds the join used."""
        if self.caller_instants is None:
            return table
        restored = pa.Array.from_pandas(self.caller_instants)
        return table.set_column(table.schema.get_field_index(self.timestamp), self.timestamp, restored)


def _parsed(instants: pd.Series) -> pd.Series:
    """Lookup instants given as text parsed as Feast parses them (UTC when they carry no zone)."""
    if pd.api.types.is_string_dtype(instants) or pd.api.types.is_object_dtype(instants):
        return pd.to_datetime(instants, utc=True)
    return instants


def _utc(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")).to_pydatetime()


def _connect(settings: ParquetOfflineStoreConfig | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if settings is not None:
        spill = settings.temp_directory or str(Path(tempfile.gettempdir()) / "featurelib-duckdb")
        con.execute(f"SET memory_limit = {duck.literal(settings.memory_limit)}")
        con.execute(f"SET temp_directory = {duck.literal(spill)}")
        if settings.threads:
            con.execute(f"SET threads = {int(settings.threads)}")
        con.execute(f"SET enable_progress_bar = {'true' if settings.progress else 'false'}")
        con.execute("SET preserve_insertion_order = false")
    return con


class AsofRetrievalJob(RetrievalJob):
    """A point-in-time join run by DuckDB when the result is asked for."""

    def __init__(self, settings: ParquetOfflineStoreConfig, entity: _EntityRows, views: list[asof_join.ViewJoin],
                 odfvs: list[OnDemandFeatureView], full_feature_names: bool, metadata: RetrievalMetadata):
        self._settings, self._entity, self._views = settings, entity, views
        self._odfvs, self._full_feature_names, self._metadata = odfvs, full_feature_names, metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def query(self, con: duckdb.DuckDBPyConnection) -> str:
        """The SQL of the join on ``con`` (which holds the registered ``entity_df``)."""
        return asof_join.query(self._entity.relation(con), self._entity.columns, self._entity.timestamp, self._views)

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        with _connect(self._settings) as con:
            table = con.sql(self.query(con)).to_arrow_table()
        return self._entity.restore_instants(table)

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def to_arrow(self, validation_reference=None, timeout: int | None = None) -> pa.Table:
        """The joined rows, then the on-demand views, computed by Feast's own ``to_arrow`` on
        slices of ``on_demand_rows`` rows: Feast hands a python-mode view the whole table as
        Python lists (``to_pydict``), which for 10M rows takes tens of GB, where slices take a
        bounded amount. On-demand views are row-level transformations (online, they run on each
        request's rows), so the slices give the same values."""
        joined = self._to_arrow_internal(timeout)
        if not self._odfvs:
            return _Computed(self, joined, self._odfvs).to_arrow(validation_reference)
        size = self._settings.on_demand_rows
        starts = range(0, max(joined.num_rows, 1), size)
        if self._settings.progress and len(starts) > 10:
            from tqdm import tqdm

            starts = tqdm(starts, desc="on-demand feature views", unit="slice")
        table = pa.concat_tables(_Computed(self, joined.slice(i, size), self._odfvs).to_arrow() for i in starts)
        return _Computed(self, table, []).to_arrow(validation_reference) if validation_reference else table

    def to_parquet(self, path: str | Path) -> Path:
        """Write the joined rows (before on-demand views) straight to one Parquet file, without
        holding them in memory; returns the path."""
        if self._entity.caller_instants is not None:
            raise ValueError("a Parquet file keeps microseconds: floor the entity_df timestamps with "
                             ".dt.floor('us') before get_historical_features")
        target = Path(path)
        with _connect(self._settings) as con:
            con.execute(f"COPY ({self.query(con)}) TO {duck.literal(target)} (FORMAT parquet)")
        return target

    def persist(self, storage, allow_overwrite: bool = False, timeout: int | None = None):
        """Save the joined rows (as Feast's DuckDB store saves them: before on-demand views) to the
        storage's Parquet file, streamed."""
        from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

        if not isinstance(storage, SavedDatasetFileStorage):
            raise ValueError(f"this offline store saves datasets as Parquet files (SavedDatasetFileStorage), "
                             f"not {type(storage).__name__}")
        target = Path(storage.file_options.uri)
        if target.exists() and not allow_overwrite:
            from feast.errors import SavedDatasetLocationAlreadyExists

            raise SavedDatasetLocationAlreadyExists(location=str(target))
        self.to_parquet(target)


class _Computed(RetrievalJob):
    """Rows already joined, handed to Feast's ``RetrievalJob.to_arrow`` for its on-demand views
    (``odfvs``), column selection and validation."""

    def __init__(self, job: AsofRetrievalJob, table: pa.Table, odfvs: list[OnDemandFeatureView]):
        self._job, self._table, self._odfvs = job, table, odfvs

    @property
    def full_feature_names(self) -> bool:
        return self._job.full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._job.metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._table

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._table.to_pandas()


def _feast_join(config, feature_views, feature_refs, entity_df, registry, project, full_feature_names,
                filter_by_created_timestamp) -> RetrievalJob:
    """Feast's own DuckDB join, for what the ``ASOF`` join does not cover; nanosecond instants
    are still read at their microsecond."""
    original = None
    if isinstance(entity_df, pd.DataFrame):
        column = offline_utils.infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes)))
        instants = _parsed(entity_df[column])
        if pd.api.types.is_datetime64_any_dtype(instants) and (instants.dropna().dt.nanosecond != 0).any():
            original = instants
            entity_df = entity_df.assign(**{column: instants.dt.floor("us"), ROW: range(len(entity_df))})
    job = DuckDBOfflineStore.get_historical_features(
        config, feature_views, feature_refs, entity_df, registry, project,
        full_feature_names=full_feature_names, filter_by_created_timestamp=filter_by_created_timestamp)
    return job if original is None else CallerTimestampsJob(job, original)


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
