"""Batch job: raw event Parquet -> one Parquet file of feature rows per feature view.

Every raw partition (``data/raw/<events>/**/*.parquet``) is first checked against the
raw-event schema (``featurelib.raw_reader``): invalid events (out of range, stamped more
than 60 s after the job's start, ...) are left out, as the stream processor leaves them
out, and listed in ``data/quarantine/<events>/batch-invalid.parquet``. DuckDB then reads
the valid events, drops duplicates (same id), and streams them sorted by (entity, time) in
batches. Whole entities are cut into chunks and handed to
``featurelib.engine.compute_view``; each chunk's rows are appended to the
view's Parquet file. The file is written under a temporary name and renamed
at the end, so Feast never reads a half-written file and a failed run leaves
the previous output in place.

``--engine spark`` computes the same files with PySpark (``featurelib.spark_engine``, the
same rules and the same evaluator, spread over a Spark cluster or ``local[N]`` cores).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurelib import semantics as s
from featurelib import tags
from featurelib.engine import compute_view, output_schema
from featurelib.errors import OperationalError, unreadable
from featurelib.paths import data_dir, features_dir, raw_dir, repo_option
from featurelib.raw_reader import RawEvents

EVENT_COLUMNS = {
    s.TRANSACTIONS: ("card_id", "user_id", "device_id", "merchant_id", "merchant_category", "country",
                     "amount_cents", "event_timestamp"),
    s.CLICKSTREAM: ("user_id", "session_id", "event_type", "page_category", "dwell_ms", "scroll_pct",
                    "event_timestamp"),
}
"""The raw columns each stream's views are computed from."""
ROW_GROUP_ROWS = 1_000_000
"""Rows per row group of a feature file (at most)."""
ENGINES = ("local", "spark")


@dataclass
class ViewBuild:
    """What one run of ``build_view`` did."""

    view: str
    events: int
    rows: int
    seconds: float
    path: Path
    invalid: int = 0  # raw events left out (see ``data/quarantine/<events>/batch-invalid.parquet``)


def _sorted_batches(view: s.ViewSemantics, events: RawEvents, batch_rows: int, threads: int | None) -> Iterator[pa.RecordBatch]:
    order = ", ".join([view.join_key, *view.sort_keys])
    con = events.connect(threads)
    reader = con.sql(f"{events.relation(EVENT_COLUMNS[view.events])} ORDER BY {order}").to_arrow_reader(batch_rows)
    try:
        yield from reader
    finally:
        con.close()


def entity_chunks(batches: Iterable[pa.RecordBatch], key: str, min_rows: int) -> Iterator[pa.Table]:
    """Regroup sorted batches into tables of whole entities, at least ``min_rows`` each."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows < min_rows:
            continue
        table = pa.Table.from_batches(pending)
        keys = table.column(key)
        last = keys[table.num_rows - 1]
        # Everything before the last entity's first row is complete.
        cut = table.num_rows - int(pc.sum(pc.equal(keys, last)).as_py())
        if cut == 0:
            continue
        yield table.slice(0, cut)
        rest = table.slice(cut)
        pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending)


def feature_schema(view: s.ViewSemantics, newest_us: int) -> pa.Schema:
    """The schema of ``view``'s feature file, with the newest event time (µs) its rows were computed
    from in the metadata (``featurelib.freshness`` reads it)."""
    return output_schema(view).with_metadata({tags.MAX_EVENT_US: str(newest_us)})


@contextlib.contextmanager
def feature_writer(out_path: Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer of a feature file: it writes ``.<name>.tmp`` next to ``out_path`` and renames
    it to ``out_path`` when the block ends without an error (Feast never reads a half-written
    file; a failed run leaves the previous file in place and no temporary file behind)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            yield writer
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)


def view_names(views: Iterable[str] | None) -> list[str]:
    """The named views (all when ``None``), checked to exist (``ValueError``)."""
    names = list(views) if views is not None else list(s.VIEWS)
    unknown = sorted(set(names) - set(s.VIEWS))
    if unknown:
        raise ValueError(f"unknown feature view(s) {', '.join(unknown)}; known: {', '.join(s.VIEWS)}")
    return names


def report_invalid(raw: RawEvents, quarantine_dir: Path | None, progress: Callable[[str], None] | None) -> None:
    """List ``raw``'s invalid events in ``<quarantine_dir>/<events>/batch-invalid.parquet`` (with a
    ``quarantine_dir``) and say how many were left out (with ``progress``)."""
    if quarantine_dir is not None:
        raw.write_quarantine(quarantine_dir)
    if progress and raw.invalid.num_rows:
        progress(f"{raw.kind}: {raw.invalid.num_rows:,} invalid events left out "
                 f"(first: {raw.invalid.column('reason')[0]})")


def scan_raw(raw_dir: Path, kind: str) -> RawEvents:
    """The raw events of ``kind``, checked (``featurelib.raw_reader``); ``FileNotFoundError``
    when there are none."""
    events = RawEvents.scan(raw_dir, kind)
    if not events.files:
        raise FileNotFoundError(f"no raw {kind} events under {raw_dir / kind}")
    return events


def build_view(
    view: s.ViewSemantics,
    raw_dir: Path,
    out_path: Path,
    *,
    events: RawEvents | None = None,
    chunk_rows: int = 250_000,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ViewBuild:
    """Compute every feature row of ``view`` from the valid raw events under ``raw_dir``
    (``events``: their scan, when the caller has it already)."""
    started = time.perf_counter()
    raw = events or scan_raw(raw_dir, view.events)
    events_read = rows = 0
    schema = feature_schema(view, raw.newest_us())
    try:
        with feature_writer(out_path, schema) as writer:
            for chunk in entity_chunks(_sorted_batches(view, raw, 500_000, threads), view.join_key, chunk_rows):
                table = compute_view(view, chunk, presorted=True).replace_schema_metadata(schema.metadata)
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                events_read += chunk.num_rows
                rows += table.num_rows
                if progress:
                    progress(f"{view.name}: {events_read:,} events -> {rows:,} rows ({time.perf_counter() - started:.1f}s)")
    except duckdb.Error as exc:  # a file that the scan could read but DuckDB cannot
        raise unreadable(raw.files, exc) or exc from None
    return ViewBuild(view.name, events_read, rows, time.perf_counter() - started, out_path, raw.invalid.num_rows)



def build_all(
    raw_dir: Path,
    features_dir: Path,
    views: Iterable[str] | None = None,
    *,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    quarantine_dir: Path | None = None,
    **kwargs,
) -> list[ViewBuild]:
    """Build the Parquet file ``features_dir/<view>.parquet`` of every (or the named) view.

    The raw events of each stream are checked once; the invalid ones are left out and, with
    ``quarantine_dir``, listed in ``<quarantine_dir>/<events>/batch-invalid.parquet``. With
    ``workers > 1`` views are built in that many processes at once (progress is then
    reported per finished view).
    """
    names = view_names(views)
    scans = {kind: scan_raw(raw_dir, kind) for kind in dict.fromkeys(s.VIEWS[n].events for n in names)}
    for raw in scans.values():
        report_invalid(raw, quarantine_dir, progress)
    jobs = [(s.VIEWS[n], raw_dir, features_dir / f"{n}.parquet", scans[s.VIEWS[n].events]) for n in names]
    if workers <= 1:
        return [build_view(*job[:3], events=job[3], progress=progress, **kwargs) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(build_view, *job[:3], events=job[3], **kwargs): job[0].name for job in jobs}
        for future in as_completed(futures):
            build = future.result()
            results[build.view] = build
            if progress:
                progress(f"{build.view}: {build.events:,} events -> {build.rows:,} rows ({build.seconds:.1f}s)")
    return [results[n] for n in names]


@click.command()
@repo_option("Feature repository whose data/raw is read and data/features written.")
@click.option("--view", "views", multiple=True, type=click.Choice(list(s.VIEWS)),
              help="Build only this view (repeatable). Default: all.")
@click.option("--workers", default=1, show_default=True, help="Views built in parallel processes (local engine).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: DuckDB and this process; spark: PySpark (featurelib.spark_engine), same rows.")
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL (--engine spark).")
def main(repo: Path, views: tuple[str, ...], workers: int, engine: str, spark_master: str) -> None:
    """Recompute feature rows from raw events: data/raw -> data/features/<view>.parquet.

    Run it after new raw events land (generated, or landed by a stream), then
    `feast materialize-incremental` to load the online store.
    """
    run(repo, views or None, engine=engine, workers=workers, spark_master=spark_master)


def run(repo: Path, views: Iterable[str] | None, *, engine: str = "local", workers: int = 1,
        spark_master: str | None = "local[2]") -> list[ViewBuild]:
    """What the command does: build the views of ``repo`` with ``engine``, list the invalid raw events
    in ``data/quarantine``, print progress and one line per view (``spark_master``: ``None`` keeps
    the master ``spark-submit`` was given)."""
    quarantine = data_dir(repo) / "quarantine"
    try:
        if engine == "spark":
            from featurelib import spark_engine

            builds = spark_engine.build_all(raw_dir(repo), features_dir(repo), views, master=spark_master,
                                            progress=click.echo, quarantine_dir=quarantine)
        else:
            builds = build_all(raw_dir(repo), features_dir(repo), views, workers=workers,
                               progress=click.echo, quarantine_dir=quarantine)
    except FileNotFoundError as exc:
        raise OperationalError(f"{exc} (generate them with python -m featurelib.generate)") from None
    for b in builds:
        click.echo(f"{b.view:<22} {b.events:>11,} events -> {b.rows:>12,} rows in {b.seconds:6.2f}s "
                   f"({b.events / max(b.seconds, 1e-9):,.0f} events/s) -> {b.path}")
    return builds

if __name__ == "__main__":
    main()
