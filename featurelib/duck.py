"""DuckDB queries over Parquet, each on its own connection and fetched completely.

(DuckDB 2 keeps a partly fetched result open on a connection and refuses other work on
it; the module-level default connection is shared by everything in the process.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa


def literal(path: Path | str) -> str:
    """A path as an SQL string literal: ``'path'``, quotes doubled."""
    text = path.as_posix() if isinstance(path, Path) else str(path)
    return "'" + text.replace("'", "''") + "'"


def parquet(path: Path | str | list[Path]) -> str:
    """``read_parquet('path')`` (or ``read_parquet(['a', 'b'])`` for a list of files) with every
    path quoted as an SQL string literal."""
    if isinstance(path, list):
        return f"read_parquet([{', '.join(literal(p) for p in path)}])"
    return f"read_parquet({literal(path)})"


def rows(sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(sql, params or []).fetchall()


def one(sql: str, params: list[Any] | None = None) -> tuple:
    """The first row (queries that return exactly one)."""
    return rows(sql, params)[0]


def arrow(sql: str) -> pa.Table:
    with duckdb.connect() as con:
        return con.sql(sql).to_arrow_table()


def frame(sql: str):
    with duckdb.connect() as con:
        return con.sql(sql).df()
