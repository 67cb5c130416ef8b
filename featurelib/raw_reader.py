"""Reading raw event Parquet for the batch job and the stream processor's restart.

``data/raw/<kind>/**.parquet`` holds generated events and events landed by the stream
processor; anyone may drop more files there. Before a feature is computed, every row is
checked against ``featurelib.raw_events`` (types, required fields, ranges, and no event
stamped more than 60 s after the job's start), the same rules the stream processor applies
to stream entries, so an event quarantined by one engine is left out by the other and both
still agree bit for bit. Invalid rows are left out of every query by their position (file,
row number), never rewritten in place, and listed for the quarantine.

A file that is not readable Parquet, or whose columns have the wrong types, is an
``UnreadableFileError`` naming the file (one line, exit code 2 in every CLI).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurelib import duck
from featurelib.errors import UnreadableFileError
from featurelib.parquet_files import raw_files, write_table
from featurelib.raw_events import ID_FIELD, RAW, SCHEMAS, problems
from featurelib.timeutil import now_us

SCAN_ROWS = 1_000_000
"""Rows per batch when checking raw files."""


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_dictionary(actual)
    return actual.equals(expected)


def open_raw_file(path: Path, kind: str) -> pq.ParquetFile:
    """The file, checked to be Parquet with the kind's columns in compatible types (``UnreadableFileError``
    naming it otherwise); only its footer is read."""
    try:
        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableFileError(path, exc) from None
    for field in RAW[kind].fields:
        if field.name in schema.names and not _compatible(schema.field(field.name).type, field.type):
            raise UnreadableFileError(path, f"column {field.name} is {schema.field(field.name).type}, "
                                            f"expected {field.type}")
    return handle


@dataclass
class RawEvents:
    """The raw events of one kind, with the invalid ones found and left out.

    ``invalid`` lists them: ``filename``, ``file_row_number`` (0-based), ``reason`` and the
    event's columns."""

    kind: str
    files: list[Path]
    invalid: pa.Table

    @classmethod
    def scan(cls, raw_dir: Path, kind: str, clock_us: int | None = None) -> RawEvents:
        """Check every row of every raw file of ``kind`` (all columns, in batches); no event may
        be stamped more than 60 s after ``clock_us`` (default: now)."""
        clock = now_us() if clock_us is None else clock_us
        files = raw_files(raw_dir, kind)
        bad: list[pa.Table] = []
        for path in files:
            handle = open_raw_file(path, kind)
            columns = [n for n in RAW[kind].names if n in handle.schema_arrow.names]
            offset = 0
            try:
                for batch in handle.iter_batches(batch_size=SCAN_ROWS, columns=columns):
                    table = pa.Table.from_batches([batch])
                    found = problems(kind, table, clock)
                    rows = np.flatnonzero([p is not None for p in found])
                    if len(rows):
                        picked = table.take(pa.array(rows))
                        bad.append(pa.table({
                            "filename": pa.array([path.as_posix()] * len(rows), pa.string()),
                            "file_row_number": pa.array(rows + offset, pa.int64()),
                            "reason": pa.array([found[i] for i in rows.tolist()], pa.string()),
                            **{n: picked.column(n) for n in picked.column_names},
                        }))
                    offset += batch.num_rows
            except (OSError, pa.ArrowException) as exc:
                raise UnreadableFileError(path, exc) from None
        invalid = pa.concat_tables(bad, promote_options="permissive") if bad else pa.table({
            "filename": pa.array([], pa.string()), "file_row_number": pa.array([], pa.int64()),
            "reason": pa.array([], pa.string())})
        return cls(kind, files, invalid)

    def relation(self, columns: list[str] | tuple[str, ...], where: str | None = None) -> str:
        """SQL of the valid events' ``columns`` (those matching ``where``), each event id once:
        an id delivered twice, in two files or in one, counts once, with the copy of the first
        file (in path order: for landed stream partitions, the order of arrival) at its first
        row, as the stream processor keeps the first to arrive. Run it on ``connect()``, which
        knows the invalid rows."""
        paths = ", ".join(duck.literal(p) for p in self.files)
        cols = ", ".join(columns)
        dedupe = len(self.files) > 1 or self.invalid.num_rows > 0 or self._one_file_repeats_ids
        scan = f"read_parquet([{paths}], union_by_name = true{', filename = true, file_row_number = true' if dedupe else ''})"
        source = f"(SELECT * FROM {scan} ANTI JOIN _invalid USING (filename, file_row_number))" if self.invalid.num_rows else scan
        filtered = f"{source} WHERE {where}" if where else source
        if dedupe:
            return (f"SELECT {cols} FROM {filtered} QUALIFY row_number() OVER "
                    f"(PARTITION BY {ID_FIELD[self.kind]} ORDER BY filename, file_row_number) = 1")
        return f"SELECT {cols} FROM {filtered}"

    @functools.cached_property
    def _one_file_repeats_ids(self) -> bool:
        """Whether the only raw file holds an event id more than once (asked once; several files
        are de-duplicated whatever they hold)."""
        if len(self.files) != 1:
            return False
        (repeats,) = duck.one(f"SELECT count(*) <> count(DISTINCT {ID_FIELD[self.kind]}) FROM {duck.parquet(self.files[0])}")
        return bool(repeats)

    def connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection on which ``relation`` runs."""
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if self.invalid.num_rows:
            con.register("_invalid", self.invalid.select(["filename", "file_row_number"]))
        return con

    def newest_us(self) -> int:
        """The latest valid event time, µs (0 when there is none)."""
        with self.connect() as con:
            sql = f"SELECT coalesce(epoch_us(max(event_timestamp)), 0) FROM ({self.relation(['event_timestamp'])})"
            return int(con.execute(sql).fetchone()[0])

    def after(self, after_us: int) -> pa.Table:
        """The valid events later than ``after_us`` (µs), every raw column, by event time."""
        with self.connect() as con:
            sql = self.relation(SCHEMAS[self.kind].names, f"epoch_us(event_timestamp) > {int(after_us)}")
            return con.sql(sql + " ORDER BY event_timestamp").to_arrow_table().cast(SCHEMAS[self.kind])

    def write_quarantine(self, quarantine_dir: Path) -> Path | None:
        """Replace ``<quarantine_dir>/<kind>/batch-invalid.parquet`` with the invalid rows of this
        scan (removed when there are none); returns its path when written."""

        path = quarantine_dir / self.kind / "batch-invalid.parquet"
        if not self.invalid.num_rows:
            path.unlink(missing_ok=True)
            return None
        write_table(self.invalid, path)
        return path
