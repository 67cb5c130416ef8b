"""``feast materialize`` with Arrow batches handed straight to the online store.

Selected in ``feature_store.yaml``::

    batch_engine:
      type: featurelib.materialization.ArrowLocalEngine

It is Feast's ``local`` compute engine (same plan: read the offline store, keep the latest
row per entity in the interval, validate), except for two steps. With
``pull_latest_features: true`` the offline store's query already keeps the latest row per
entity, so the second de-duplication in pandas is skipped. And Feast's output node
converts each batch into ``ValueProto`` rows one value at a time and calls
``online_write_batch``; here, an online store that has ``online_write_arrow`` (this
repository's ``RedisHashOnlineStore``) gets the Arrow batch itself and encodes whole
columns (``featurelib.arrow_rows``). Other stores get exactly Feast's path, so the engine
is safe with any online store. Writing back to the offline store is unchanged.

Failures a person can act on end ``feast materialize`` with one line and exit code 2
(``featurelib.errors``): a view's Parquet file that does not open (truncated, corrupt, not
Parquet; its footer is read before the view is materialized) or that DuckDB or Arrow fails to
read during the run is an ``UnreadableFileError`` naming the file; rows the online store's
write script refuses (stamped too far ahead) are a ``RowsRefusedError``, raised once every
batch of the view is written.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView, FileSource
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import LocalComputeEngine, LocalComputeEngineConfig
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.registry.base_registry import BaseRegistry

from featurelib.errors import OperationalError, RowsRefusedError, UnreadableFileError, unreadable


def source_path(view: FeatureView) -> Path | None:
    """The local file or directory of the view's batch source (a relative path is relative to
    the working directory, as Feast's DuckDB store reads it); None for other sources."""
    source = getattr(view, "batch_source", None)
    if not isinstance(source, FileSource) or not source.path:
        return None
    path = source.path.removeprefix("file://")
    return None if "://" in path else Path(path)


def _parquet_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.parquet"))


def check_source_files(view: FeatureView) -> None:
    """Read the footer of each Parquet file of the view's batch source; ``UnreadableFileError``
    naming the first that fails. A missing path is left to the offline store."""
    path = source_path(view)
    if path is None or not path.exists():
        return
    for file in _parquet_files(path):
        try:
            pq.read_metadata(file)
        except (pa.ArrowException, OSError) as exc:
            raise UnreadableFileError(file, exc) from exc


def operational(exc: Exception, view: FeatureView) -> Exception:
    """``exc`` as the error ``feast materialize`` should report: after a DuckDB or Arrow error,
    the view's source file that caused it (``errors.unreadable``), when one did; anything else
    unchanged."""
    path = source_path(view)
    if isinstance(exc, OperationalError) or not isinstance(exc, (duckdb.Error, pa.ArrowException)) or path is None:
        return exc
    error = unreadable(_parquet_files(path) if path.is_dir() else [path], exc)
    if error is None:
        return exc
    error.__cause__ = exc
    return error


_IBIS_DUCKDB_DEPRECATION = r"fetch_arrow_table\(\) is deprecated"
"""ibis (Feast's DuckDB offline store) calls a DuckDB method DuckDB deprecated: nothing a user can act on."""


class ArrowLocalEngineConfig(LocalComputeEngineConfig):
    """Configuration of ``ArrowLocalEngine`` (``backend`` as for Feast's local engine)."""

    type: Literal["featurelib.materialization.ArrowLocalEngine"] = "featurelib.materialization.ArrowLocalEngine"  # type: ignore[assignment]


class ArrowOutputNode(LocalOutputNode):
    """Feast's output node, writing online through ``online_write_arrow`` where the store has it."""

    def execute(self, context: ExecutionContext) -> ArrowTableValue:
        write_arrow = getattr(context.online_store, "online_write_arrow", None)
        if write_arrow is None or not self.feature_view.online:
            return super().execute(context)
        table = self.get_single_table(context).data
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        if table.num_rows == 0:
            return output
        batch_size = context.repo_config.materialization_config.online_write_batch_size
        refused: list[RowsRefusedError] = []
        for batch in [table] if batch_size is None else table.to_batches(max_chunksize=batch_size):
            try:
                write_arrow(context.repo_config, self.feature_view, batch)
            except RowsRefusedError as exc:  # the batch's other rows are written: go on with the next
                refused.append(exc)
        if self.feature_view.offline:
            context.offline_store.offline_write_batch(config=context.repo_config, feature_view=self.feature_view,
                                                      table=table, progress=lambda x: None)
        if refused:
            raise RowsRefusedError.combine(refused)
        return output


class ArrowFeatureBuilder(LocalFeatureBuilder):
    def __init__(self, registry: BaseRegistry, task: MaterializationTask, backend, latest_only: bool):
        super().__init__(registry, task, backend=backend)
        self.latest_only = latest_only

    def build_dedup_node(self, view, input_node):
        """With ``pull_latest_features`` the offline store already returned one row per
        entity (the latest); Feast's engine de-duplicates again in pandas, which costs a
        round trip through pandas (and turns integers with nulls into doubles)."""
        if self.latest_only:
            return input_node
        return super().build_dedup_node(view, input_node)

    def build_output_nodes(self, view, input_node):
        node = ArrowOutputNode("output", self.dag_root.view, inputs=[input_node])
        self.nodes.append(node)
        return node


class ArrowLocalEngine(LocalComputeEngine):
    """Feast's local engine with ``ArrowOutputNode`` as the last step of materialization."""

    def _materialize_one(self, registry: BaseRegistry, task: MaterializationTask, **kwargs) -> LocalMaterializationJob:
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        try:
            check_source_files(task.feature_view)
            context = self.get_execution_context(registry, task)
            builder = ArrowFeatureBuilder(registry, task, backend=self._get_backend(context),
                                          latest_only=self.repo_config.materialization_config.pull_latest_features)
            with warnings.catch_warnings():  # Feast shows every DeprecationWarning once, this one on each run
                warnings.filterwarnings("ignore", message=_IBIS_DUCKDB_DEPRECATION, category=DeprecationWarning)
                builder.build().execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as e:  # reported through the job, as Feast's engine does (Feast raises it)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR,
                                           error=operational(e, task.feature_view))
