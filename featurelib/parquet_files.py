"""Parquet files on disk: written atomically, and listed as the partitions of a raw event stream.

Every writer of raw events (the generator, the stream processor's landing, the raw checks'
record of invalid rows) writes through ``write_table``; every reader of a stream's raw events
lists them with ``raw_files``, which leaves out the hidden files a write in progress uses.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_table(table: pa.Table, path: Path, row_group_size: int = 1_000_000) -> None:
    """Write Parquet atomically: a reader never sees a half-written file (it is written as a
    hidden ``.<name>.tmp`` next to ``path``, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")
    tmp.replace(path)


def raw_files(raw_dir: Path, kind: str) -> list[Path]:
    """All raw Parquet partitions of one event stream (``raw_dir/<kind>/**.parquet``), in a stable
    order, without hidden files."""
    return sorted(p for p in (raw_dir / kind).rglob("*.parquet") if not p.name.startswith("."))
