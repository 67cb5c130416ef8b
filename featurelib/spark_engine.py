"""Spark backfill engine: raw event Parquet -> the same feature Parquet files as ``featurelib.batch``.

A second *evaluator of the same specs*, not a second implementation of them: the rules that decide
which raw events count and the window logic are the local job's own Python functions, run by Spark
on its partitions. For the same raw files the output equals the local engine's (schema, rows, row
order and every value, bit for bit; ``tests/test_spark_engine.py``). Per event stream:

1. **Read.** The raw files are listed as the local job lists them (``parquet_files.raw_files``) and
   their footers checked on the driver (``raw_reader.open_raw_file``: the same ``UnreadableFileError``).
   Spark reads them with the stream's raw schema, and each row's file and row number
   (``_metadata.file_path``, ``_metadata.row_index``).
2. **Validity.** ``mapInArrow`` runs ``raw_events.problems``, the function the local scan runs, on
   each Arrow batch against one clock (the job's start). Valid rows go on (only the columns used
   from here on); each task writes its invalid rows to a side file, from which the driver lists
   them in ``data/quarantine/<events>/batch-invalid.parquet`` as the local job lists them.
3. **Duplicates.** Of the valid rows sharing an event id, the copy of the first file in path-string
   order, at its first row, is kept (``row_number() OVER (PARTITION BY id ORDER BY file, row) = 1``):
   the rule of ``RawEvents.relation``. These events are cached for the stream's views.
4. **Per view.** ``repartitionByRange(4 x cores, join_key)``: an entity is never split between
   partitions, and every key of partition ``i`` sorts before those of ``i + 1`` (binary string
   order, as DuckDB and Arrow sort; checked). ``sortWithinPartitions(join key, *sort keys)``, then
   ``mapInArrow`` cuts whole entities (``batch.entity_chunks``, at least ``CHUNK_ROWS`` events, so a
   worker holds one chunk at a time, never a whole partition) and evaluates them with
   ``engine.compute_view``; the Python worker writes its partition's rows to one part file, in the
   view's exact Arrow schema (no round trip through Spark types), and returns a summary row.
5. **Output.** The driver concatenates the part files, in partition order, into the single file the
   local job writes, ``data/features/<view>.parquet`` (``batch.feature_writer``: a temporary file
   renamed at the end, with the newest event time in its metadata). One file, not a directory of
   part files, because Feast's ``FileSource`` and every reader here (offline store, freshness,
   training, validation, restore) read that one path. The part files live in a hidden directory
   next to it (``.<view>.parquet.parts/``), which the executors must be able to write: always so
   with ``local[N]``; on a cluster, ``data/`` must be on a file system shared with the driver.

Running it (PySpark from ``requirements-spark.txt``, Java 17)::

    python -m featurelib.batch --engine spark [--spark-master local[4]] [--repo R] [--view V ...]
    spark-submit featurelib/spark_engine.py --repo .   # spark-submit's --master (default local[*])
    python -m featurelib.spark_engine --repo . [--master local[2]]

``spark-submit`` runs the driver with ``python3`` from ``PATH`` (or ``$PYSPARK_PYTHON``): activate
the venv, or set ``PYSPARK_PYTHON=.venv/bin/python``. Python workers run the driver's interpreter.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import StorageLevel, TaskContext
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from featurelib import semantics as s
from featurelib.batch import (
    EVENT_COLUMNS,
    ROW_GROUP_ROWS,
    ViewBuild,
    entity_chunks,
    feature_schema,
    feature_writer,
    report_invalid,
    run,
    view_names,
)
from featurelib.engine import compute_view, output_schema
from featurelib.errors import UnreadableFileError
from featurelib.parquet_files import raw_files
from featurelib.paths import repo_option
from featurelib.raw_events import ID_FIELD, SCHEMAS, problems
from featurelib.raw_reader import RawEvents, open_raw_file
from featurelib.timeutil import now_us

DEFAULT_MASTER = "local[2]"
LOG_CONFIG = Path(__file__).with_name("spark_log4j2.properties")
CHUNK_ROWS = 250_000
"""Events per ``compute_view`` call, at least (whole entities), as the local job's ``chunk_rows``."""
_ORIGIN = pa.schema([("_file", pa.int32()), ("_row", pa.int64())])
"""Where a raw row comes from: its file's rank in path-string order, its row number in the file."""
_PART = pa.schema([("partition", pa.int32()), ("path", pa.string()), ("events", pa.int64()),
                   ("rows", pa.int64()), ("first_key", pa.string()), ("last_key", pa.string())])
"""The summary row each partition of a view returns."""


def session(master: str | None = DEFAULT_MASTER, *, driver_memory: str = "2g") -> SparkSession:
    """A Spark session for backfills: ``master`` (``None``: the one ``spark-submit`` was given),
    Arrow on, UTC, no UI, errors-only logs, and ``4 x`` the cores in shuffle partitions (the range
    partitions of each view: a few per core to even out their sizes, not Spark's 200, which on a
    small machine is mostly overhead). Python workers run this interpreter unless
    ``$PYSPARK_PYTHON`` names another. ``driver_memory`` applies when this call starts the JVM."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("featurelib-backfill")
    if master:
        builder = builder.master(master)
    conf = {
        "spark.driver.memory": driver_memory,
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        "spark.sql.files.maxPartitionBytes": str(32 << 20),  # more read tasks where row groups allow
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")  # also when spark-submit started the JVM without LOG_CONFIG
    spark.conf.set("spark.sql.shuffle.partitions", str(4 * spark.sparkContext.defaultParallelism))
    return spark


def _spark_schema(schema: pa.Schema) -> StructType:
    return from_arrow_schema(schema)


def _listed(raw_dir: Path, kind: str) -> dict[Path, list[str]]:
    """The raw files of ``kind`` as the local job lists them, each with the raw columns it has; their
    footers checked to be readable (``UnreadableFileError``) by the local job and by Spark."""
    files = raw_files(raw_dir, kind)
    if not files:
        raise FileNotFoundError(f"no raw {kind} events under {raw_dir / kind}")
    listed = {}
    for path in files:
        with open_raw_file(path, kind) as handle:
            schema = handle.schema_arrow
        for field in (f for f in schema if f.name in SCHEMAS[kind].names):
            if field.type == pa.uint64() or getattr(field.type, "unit", "") == "ns":
                raise UnreadableFileError(path, f"column {field.name} is {field.type}, which Spark does not read "
                                                "(use --engine local, or write microseconds / int64)")
        listed[path] = [n for n in SCHEMAS[kind].names if n in schema.names]
    return listed


def _local_path(uri: str) -> str:
    """The absolute local path of a file URI as Spark names it (``file:/a%20b/c.parquet``)."""
    return os.path.abspath(unquote(urlsplit(uri).path))


def _task_file(staging: str, name: str) -> tuple[Path, Path]:
    """In a Spark worker: ``<staging>/<name>-<partition>.parquet`` and the temporary name this task
    attempt writes it under (a retried or recomputed task writes the same file again, whole)."""
    context = TaskContext.get()
    path = Path(staging) / f"{name}-{context.partitionId():05d}.parquet"
    return path, path.with_name(f".{path.name}.{context.attemptNumber()}")


def _checked_schema(kind: str) -> pa.Schema:
    """The valid events as the validity step passes them on: id, ``batch.EVENT_COLUMNS``, origin."""
    fields = [SCHEMAS[kind].field(n) for n in (ID_FIELD[kind], *EVENT_COLUMNS[kind])]
    return pa.unify_schemas([pa.schema(fields), _ORIGIN])


def _check_batches(kind: str, ranks: dict[str, int], clock_us: int, staging: str,
                   batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Validity, in a Spark worker: the first rule each raw row breaks (``raw_events.problems``, as
    the local scan). Valid rows go on (``_checked_schema``; ``ranks``: file rank by absolute path);
    invalid ones, every raw column with origin and ``_reason``, go to ``<staging>/invalid-<n>.parquet``."""
    names, schema = list(SCHEMAS[kind].names), _checked_schema(kind)
    invalid = []
    for batch in batches:
        files = batch.column("file_path").dictionary_encode()
        rank = pa.array([ranks[_local_path(u)] for u in files.dictionary.to_pylist()], pa.int32()).take(files.indices)
        reasons = pa.array(problems(kind, pa.Table.from_batches([batch]).select(names), clock_us), pa.string())
        columns = {**{n: batch.column(n) for n in names}, "_file": rank, "_row": batch.column("row_index")}
        valid = reasons.is_null()
        if valid.false_count:
            invalid.append(pa.RecordBatch.from_pydict({**columns, "_reason": reasons}).filter(pc.invert(valid)))
        yield pa.RecordBatch.from_arrays([columns[n] for n in schema.names], schema=schema).filter(valid)
    if invalid:
        path, tmp = _task_file(staging, "invalid")
        pq.write_table(pa.Table.from_batches(invalid), tmp)
        tmp.replace(path)


def _checked(spark: SparkSession, files: list[Path], kind: str, clock_us: int, staging: Path) -> DataFrame:
    """The valid raw rows of ``files`` (``_checked_schema``); running it lists the invalid ones in
    ``staging``."""
    reader = spark.read.schema(_spark_schema(SCHEMAS[kind])).parquet(*(p.as_posix() for p in files))
    read = {_local_path(uri) for uri in reader.inputFiles()}
    for path in files:
        if os.path.abspath(path) not in read:  # Spark leaves out names starting with "_"
            raise UnreadableFileError(path, "Spark does not read it (a name starting with '_'); rename it")
    ranks = {os.path.abspath(p): i for i, p in enumerate(sorted(files, key=Path.as_posix))}
    raw = reader.select("*", "_metadata.file_path", "_metadata.row_index")
    check = functools.partial(_check_batches, kind, ranks, clock_us, str(staging))
    return raw.mapInArrow(check, _spark_schema(_checked_schema(kind)))


def _invalid(staging: Path, files: dict[Path, list[str]], kind: str) -> pa.Table:
    """The invalid rows the check wrote to ``staging``, as ``RawEvents.invalid`` lists them: by file
    (listing order) and row, with ``filename``, ``file_row_number``, ``reason`` and the file's columns."""
    found = [pq.read_table(p) for p in sorted(staging.glob("invalid-*.parquet"))]
    if not found:
        return pa.table({"filename": pa.array([], pa.string()), "file_row_number": pa.array([], pa.int64()),
                         "reason": pa.array([], pa.string())})
    rows = pa.concat_tables(found)
    paths = list(files)
    listed = sorted(range(len(paths)), key=lambda i: paths[i].as_posix())  # rank -> position in the listing
    tables = []
    for rank in sorted(set(rows.column("_file").to_pylist()), key=listed.__getitem__):
        path = paths[listed[rank]]
        mine = rows.filter(pc.equal(rows.column("_file"), rank)).sort_by("_row")
        tables.append(pa.table({
            "filename": pa.array([path.as_posix()] * mine.num_rows, pa.string()),
            "file_row_number": mine.column("_row"), "reason": mine.column("_reason"),
            **{n: mine.column(n).cast(SCHEMAS[kind].field(n).type) for n in files[path]}}))
    return pa.concat_tables(tables, promote_options="permissive")


@dataclass
class Stream:
    """The valid events of one raw stream, each event id once, cached in Spark for its views."""

    kind: str
    events: DataFrame  # the stream's ``batch.EVENT_COLUMNS``
    count: int
    newest_us: int  # the latest event time (0 when there is none), as ``RawEvents.newest_us``
    raw: RawEvents  # the files and the invalid rows (``raw.invalid``)


def prepare(spark: SparkSession, raw_dir: Path, kind: str, clock_us: int, staging: Path) -> Stream:
    """Read, check and de-duplicate the raw events of ``kind`` (steps 1 to 3 of the module doc);
    ``staging``: a directory the executors can write, for the invalid rows (removed at the end)."""
    files = _listed(raw_dir, kind)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        checked = _checked(spark, list(files), kind, clock_us, staging)
        first = Window.partitionBy(ID_FIELD[kind]).orderBy("_file", "_row")
        events = (checked.withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1)
                  .select(*EVENT_COLUMNS[kind]).persist(StorageLevel.MEMORY_AND_DISK))
        count, newest = events.agg(F.count(F.lit(1)), F.max(F.unix_micros("event_timestamp"))).first()
        invalid = _invalid(staging, files, kind)  # every raw row has been checked by now
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Stream(kind, events, int(count), int(newest or 0), RawEvents(kind, list(files), invalid))


def _write_part(view_name: str, staging: str, chunk_rows: int,
                batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """In a Spark worker: the feature rows of one partition (sorted by entity and time, whole
    entities) into ``<staging>/part-<partition>.parquet``; returns one ``_PART`` summary row."""
    view = s.VIEWS[view_name]
    path, tmp = _task_file(staging, "part")
    columns = pa.schema([SCHEMAS[view.events].field(n) for n in _view_columns(view)])
    events = rows = 0
    first = last = None
    with pq.ParquetWriter(tmp, output_schema(view), compression="lz4") as writer:
        for chunk in entity_chunks((b.cast(columns) for b in batches), view.join_key, chunk_rows):
            table = compute_view(view, chunk, presorted=True)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            keys = chunk.column(view.join_key)
            first = keys[0].as_py() if first is None else first
            last = keys[-1].as_py()
            events, rows = events + chunk.num_rows, rows + table.num_rows
    tmp.replace(path)
    summary = {"partition": TaskContext.get().partitionId(), "path": str(path), "events": events, "rows": rows,
               "first_key": first, "last_key": last}
    yield pa.RecordBatch.from_pylist([summary], schema=_PART)


def _view_columns(view: s.ViewSemantics) -> list[str]:
    """The raw columns ``view`` is computed from: its join key and what its aggregates read."""
    return list(dict.fromkeys([view.join_key, *view.columns]))


def build_view(view: s.ViewSemantics, stream: Stream, out_path: Path, *, chunk_rows: int = CHUNK_ROWS) -> ViewBuild:
    """Compute every feature row of ``view`` from the stream's events and write ``out_path`` (steps 4
    and 5 of the module doc)."""
    started = time.perf_counter()
    staging = out_path.with_name(f".{out_path.name}.parts")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        partitions = int(stream.events.sparkSession.conf.get("spark.sql.shuffle.partitions"))
        ordered = (stream.events.select(*_view_columns(view)).repartitionByRange(partitions, view.join_key)
                   .sortWithinPartitions(view.join_key, *view.sort_keys))
        write = functools.partial(_write_part, view.name, str(staging), chunk_rows)
        parts = ordered.mapInArrow(write, _spark_schema(_PART)).toArrow().sort_by("partition").to_pylist()
        keys = [(p["first_key"], p["last_key"]) for p in parts if p["rows"]]
        if any(a[1] >= b[0] for a, b in zip(keys, keys[1:])):
            raise RuntimeError(f"{view.name}: Spark partitions are not in {view.join_key} order: {keys}")
        schema = feature_schema(view, stream.newest_us)
        with feature_writer(out_path, schema) as writer:
            for part in parts:
                handle = pq.ParquetFile(part["path"])
                for group in range(handle.num_row_groups):
                    writer.write_table(handle.read_row_group(group).cast(schema), row_group_size=ROW_GROUP_ROWS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    events, rows = sum(p["events"] for p in parts), sum(p["rows"] for p in parts)
    return ViewBuild(view.name, events, rows, time.perf_counter() - started, out_path, stream.raw.invalid.num_rows)


def build_all(
    raw_dir: Path,
    features_dir: Path,
    views: Iterable[str] | None = None,
    *,
    spark: SparkSession | None = None,
    master: str | None = DEFAULT_MASTER,
    progress: Callable[[str], None] | None = None,
    quarantine_dir: Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> list[ViewBuild]:
    """``featurelib.batch.build_all`` on Spark: ``features_dir/<view>.parquet`` of every (or the named)
    view, the same files. ``spark``: a session to use (else one is started on ``master`` and
    stopped at the end, unless a session was active already)."""
    names = view_names(views)
    own = spark is None and SparkSession.getActiveSession() is None
    spark = spark or session(master)
    clock = now_us()
    builds = {}
    try:
        for kind in dict.fromkeys(s.VIEWS[n].events for n in names):
            started = time.perf_counter()
            stream = prepare(spark, raw_dir, kind, clock, features_dir / f".{kind}.invalid.parts")
            report_invalid(stream.raw, quarantine_dir, progress)
            if progress:
                progress(f"{kind}: {stream.count:,} valid events read in {time.perf_counter() - started:.1f}s")
            for name in (n for n in names if s.VIEWS[n].events == kind):
                build = builds[name] = build_view(s.VIEWS[name], stream, features_dir / f"{name}.parquet",
                                                  chunk_rows=chunk_rows)
                if progress:
                    progress(f"{name}: {build.events:,} events -> {build.rows:,} rows ({build.seconds:.1f}s)")
            stream.events.unpersist()
    finally:
        if own:
            spark.stop()
    return [builds[n] for n in names]


@click.command()
@repo_option("Feature repository whose data/raw is read and data/features written.")
@click.option("--view", "views", multiple=True, type=click.Choice(list(s.VIEWS)),
              help="Build only this view (repeatable). Default: all.")
@click.option("--master", default=None,
              help=f"Spark master URL. Default: spark-submit's --master, else {DEFAULT_MASTER}.")
def main(repo: Path, views: tuple[str, ...], master: str | None) -> None:
    """Recompute feature rows from raw events with Spark: data/raw -> data/features/<view>.parquet
    (as `python -m featurelib.batch --engine spark`)."""
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # its JVM is already running
    master = master or (None if launched_by_spark_submit else DEFAULT_MASTER)
    run(repo, views or None, engine="spark", spark_master=master)


if __name__ == "__main__":
    # `spark-submit featurelib/spark_engine.py` puts featurelib/ itself first on sys.path, where its
    # modules would shadow top-level ones (codecs.py): run the package's module instead.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    from featurelib.spark_engine import main as _main

    _main()
