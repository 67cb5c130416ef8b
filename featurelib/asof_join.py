"""Point-in-time joins as DuckDB ``ASOF JOIN``s over Parquet: the query behind
``get_historical_features`` (``featurelib/offline_store.py``).

For each entity row ``(keys, T)`` and each feature view, the row of the view's Parquet with
the same join keys and the **latest** ``event_timestamp <= T``, as Feast's rule says:

* equal event timestamps are decided by the source's created timestamp column (the latest wins;
  without one, Feast leaves the choice open and so does this join);
* the view's TTL: a row with ``event_timestamp < T - ttl`` is too old, and since it is the
  latest row at or before ``T``, the view's features are null for that entity row;
* an entity row without any such row (unknown keys, ``T`` before the first row) keeps its
  place with nulls;
* instants are compared in UTC microseconds (a sub-microsecond ``T`` is read at its microsecond:
  every feature row is stamped on a whole microsecond).

DuckDB's ``ASOF JOIN`` sorts both sides once and merges them, spilling to ``temp_directory``
beyond ``memory_limit``: time and memory grow linearly with the rows, where Feast's generic
join (every feature row of an entity joined to every entity row, then ranked) grows faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from featurelib import duck

ROW = "__featurelib_row"
"""The entity row's position: the join keeps it, the result is sorted by it."""


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ViewJoin:
    """One feature view's part of a point-in-time join.

    ``source_sql`` is a relation with the view's columns as Feast names them (field mapping
    applied); ``join_keys`` maps each of its join key columns to the entity column it matches;
    ``columns`` maps each feature column to its output name (``view__feature`` with full feature
    names)."""

    source_sql: str
    timestamp_field: str
    created_timestamp_column: str | None
    join_keys: dict[str, str]
    columns: dict[str, str]
    ttl: timedelta | None

    def relation(self) -> str:
        """The view's rows, one per (join keys, event timestamp): the latest created wins a tie."""
        ts = ident(self.timestamp_field)
        others = dict.fromkeys(c for c in [*self.join_keys, *self.columns] if c != self.timestamp_field)
        select = ", ".join([f"CAST({ts} AS TIMESTAMPTZ) AS {ts}", *(ident(c) for c in others)])
        if not self.created_timestamp_column:
            return f"SELECT {select} FROM {self.source_sql}"
        partition = ", ".join(ident(c) for c in [*self.join_keys, self.timestamp_field])
        return (f"SELECT {select} FROM {self.source_sql} QUALIFY row_number() OVER "
                f"(PARTITION BY {partition} ORDER BY {ident(self.created_timestamp_column)} DESC) = 1")


def query(entity_relation: str, entity_columns: Sequence[str], timestamp_column: str, views: Sequence[ViewJoin]) -> str:
    """The whole join: the entity columns (without ``ROW``), then each view's features, in entity
    row order. ``entity_relation`` has the entity columns, ``ROW``, and ``timestamp_column`` as a
    ``TIMESTAMPTZ``."""
    t = f"e.{ident(timestamp_column)}"
    selects = [f"e.{ident(c)}" for c in entity_columns if c != ROW]
    joins = []
    for i, view in enumerate(views):
        alias = f"v{i}"
        on = [f"e.{ident(entity)} = {alias}.{ident(key)}" for key, entity in view.join_keys.items()]
        stamp = f"{alias}.{ident(view.timestamp_field)}"
        on.append(f"{t} >= {stamp}")
        fresh = None
        if view.ttl:
            micros = view.ttl // timedelta(microseconds=1)
            fresh = f"{stamp} >= {t} - INTERVAL {micros} MICROSECONDS"
        for column, name in view.columns.items():
            value = f"{alias}.{ident(column)}"
            selects.append(f"CASE WHEN {fresh} THEN {value} END AS {ident(name)}" if fresh else f"{value} AS {ident(name)}")
        joins.append(f"ASOF LEFT JOIN ({view.relation()}) AS {alias} ON {' AND '.join(on)}")
    return (f"SELECT {', '.join(selects)} FROM ({entity_relation}) AS e {' '.join(joins)} "
            f"ORDER BY e.{ident(ROW)}")


def parquet_relation(path: str) -> str:
    """``read_parquet`` of a file, or of every Parquet file under a directory."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        return f"read_parquet({duck.literal(target / '**' / '*.parquet')}, hive_partitioning = true)"
    return duck.parquet(target)
