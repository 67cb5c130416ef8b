"""Arrow batches to stream-contract write commands, a column at a time (materialization's fast path).

Feast's local engine turns every materialized Arrow batch into rows of ``ValueProto`` dicts,
one Python object per value (``feast.utils._convert_arrow_to_proto``), and an online store
then turns each value back into bytes. For this repository's store both steps are waste:
the contract wants text, and Arrow already has the columns. ``write_commands`` makes the
``(key, script args)`` pairs of ``featurelib/write_row.lua`` straight from the batch.

It yields exactly what ``RedisHashOnlineStore.online_write_batch`` writes for the protos
Feast would have built from the same batch (``tests/test_arrow_rows.py`` compares them on
random batches), except where Feast's rows lose information and this path does not:
an integer column with nulls stays exact beyond 2**53 (Feast's rows pass it through
float64), and a ``UnixTimestamp`` keeps its microseconds and its nulls (Feast's rows
truncate it to seconds and turn a null into -2**63 seconds):

* keys from the join key columns, escaped as the contract says;
* ``_event_ts`` from the view's timestamp field and ``_created_ts`` from its created
  timestamp column (``now`` when it has none or the cell is null), integer microseconds,
  sub-microsecond digits truncated as Feast truncates them;
* a null cell, and a NaN in any numeric column, is an absent field (Feast reads both as
  null); floats are ``repr`` of the double (a ``Float32`` feature of the float32 value),
  integers in decimal, booleans ``true``/``false``, strings as they are, timestamps in
  microseconds;
* rows whose hash would already have expired are skipped.

Columns of other types (lists, bytes, timestamps, or an Arrow type Feast converts its own
way) go through Feast's conversion, that column only. A batch without some feature column,
or with join keys that are neither integers nor strings, returns ``None``: the caller
falls back to Feast's rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureView
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from featurelib import codecs, contract
from featurelib.timeutil import column_us

_FLOATS = (ValueType.FLOAT, ValueType.DOUBLE)
_INTS = (ValueType.INT32, ValueType.INT64)


_LISTS = {  # list features whose Arrow item type converts as Feast converts it
    ValueType.STRING_LIST: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    ValueType.DOUBLE_LIST: pa.types.is_float64,
    ValueType.INT64_LIST: pa.types.is_int64,
    ValueType.BOOL_LIST: pa.types.is_boolean,
}


def _is_id_column(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


SMALL_COLUMN = 32
"""Columns of at most this many cells are encoded from their Python values (``_small_texts``):
below it, Arrow's cost per call is more than the per-value work it saves (a live stream step
writes a few rows of each view)."""


def _small_texts(column: pa.ChunkedArray, value_type: ValueType) -> list | None:
    """``_texts`` of a short column through the contract's codec of each Python value, for the
    types whose Python values give the Arrow path's text (doubles from float64 or integers,
    integers, booleans, strings); None for the others."""
    t = column.type
    if not (
        (value_type == ValueType.DOUBLE and (pa.types.is_float64(t) or pa.types.is_integer(t)))
        or (value_type in _INTS and pa.types.is_integer(t))
        or (value_type == ValueType.BOOL and pa.types.is_boolean(t))
        or (value_type == ValueType.STRING and pa.types.is_string(t))
    ):
        return None
    to_text = codecs.codec(value_type).to_text
    return [None if v is None or v != v else to_text(v) for v in column.to_pylist()]  # v != v: NaN


def _texts(column: pa.ChunkedArray, value_type: ValueType) -> list:
    """The contract text of every cell (``None`` for a null, and for NaN in a numeric column)."""
    if len(column) <= SMALL_COLUMN:
        texts = _small_texts(column, value_type)
        if texts is not None:
            return texts
    t = column.type
    if value_type in _FLOATS and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        values = column.to_numpy(zero_copy_only=False)  # nulls become NaN
        values = values.astype(np.float32 if value_type == ValueType.FLOAT else np.float64, copy=False)
        return [None if v != v else repr(v) for v in values.tolist()]
    if value_type in _INTS and pa.types.is_integer(t):
        if column.null_count == 0:
            return pc.cast(column, pa.string()).to_pylist()
        return [None if v is None else str(v) for v in column.to_pylist()]
    if value_type in _INTS and pa.types.is_floating(t):  # an integer column with nulls, via pandas
        return [None if v != v else str(int(v)) for v in column.to_numpy(zero_copy_only=False).tolist()]
    if value_type == ValueType.BOOL and pa.types.is_boolean(t):
        return [None if v is None else ("true" if v else "false") for v in column.to_pylist()]
    if value_type == ValueType.STRING and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return column.to_pylist()
    if value_type == ValueType.UNIX_TIMESTAMP and pa.types.is_timestamp(t):  # exact microseconds
        us = pc.cast(pc.cast(column, pa.timestamp("us", t.tz), safe=False), pa.int64())
        return [None if v is None else str(v) for v in us.to_pylist()]
    if value_type in _LISTS and (pa.types.is_list(t) or pa.types.is_large_list(t)) and _LISTS[value_type](t.value_type):
        to_text = codecs.codec(value_type).to_text
        return [None if v is None else to_text(v) for v in column.to_pylist()]
    # Anything else (bytes, other lists, unusual column types): Feast's own conversion
    # of this one column, then the contract's encoding of each value.
    encode = codecs.codec(value_type).encode_proto
    return [encode(p) for p in python_values_to_proto_values(column.to_numpy(zero_copy_only=False), value_type)]


def _ids(batch: pa.Table, join_keys: list[str]) -> list[str]:
    """The escaped ``entity_id`` part of every row's key."""
    parts = []
    for name in sorted(join_keys):
        column = batch.column(name)
        if column.null_count:
            raise ValueError(f"join key {name} has {column.null_count} null value(s)")
        if len(column) <= SMALL_COLUMN:  # as ``_texts``: Python values, for a few rows
            parts.append([contract.escape(str(v)) for v in column.to_pylist()])
            continue
        texts = pc.cast(column, pa.string())
        if pc.any(pc.match_substring_regex(texts, contract.ESCAPED.pattern)).as_py():
            parts.append([contract.escape(t) for t in texts.to_pylist()])
        else:
            parts.append(texts.to_pylist())
    return parts[0] if len(parts) == 1 else ["+".join(p) for p in zip(*parts)]


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Integer microseconds since the epoch (UTC) of a timestamp column; nulls as 0.

    Any other column type (Feast's pandas dedup step can hand over timestamps as text) is
    parsed by pandas, as Feast's rows parse it; a naive time is UTC."""
    if not pa.types.is_timestamp(column.type):
        parsed = pd.to_datetime(column.to_numpy(zero_copy_only=False), utc=True)
        column = pa.chunked_array([pa.array(parsed, pa.timestamp("ns", "UTC"))])
    return column_us(pc.fill_null(column, pa.scalar(0, column.type)))


_FEATURE_TYPES: dict[int, tuple[FeatureView, list[tuple[str, ValueType]]]] = {}


def feature_types(view: FeatureView) -> list[tuple[str, ValueType]]:
    """``(name, value type)`` of each feature of ``view``, worked out once per view object (Feast
    derives a value type per call; a live stream step asks for every feature of every view)."""
    cached = _FEATURE_TYPES.get(id(view))
    if cached is None or cached[0] is not view:
        cached = _FEATURE_TYPES[id(view)] = (view, [(f.name, f.dtype.to_value_type()) for f in view.features])
    return cached[1]


def supports(view: FeatureView, schema: pa.Schema) -> bool:
    """Whether ``schema`` has every feature of ``view`` (of a type the contract encodes as a scalar or
    a list of scalars: composite values go through Feast's rows) and integer or string join keys."""
    names = set(schema.names)
    for name, value_type in feature_types(view):
        codec = codecs.CODECS.get(value_type)
        if name not in names or codec is None or codec.composite:
            return False
    return all(e.name in names and _is_id_column(schema.field(e.name).type) for e in view.entity_columns)


def write_commands(
    view: FeatureView, batch: pa.Table, prefix: str, now_us: int, life_ms: int, rows_per_chunk: int = 2000
) -> Iterator[list[tuple[str, list]]] | None:
    """The ``(key, args)`` pairs of every row of ``batch``, ``rows_per_chunk`` rows of the batch
    at a time, or ``None`` when ``supports`` says no. ``life_ms`` is the view's TTL plus grace
    in milliseconds (0: never expires); rows that expire at or before ``now_us`` are left out.
    A row's ``_created_ts`` is the source's created timestamp column when the batch has it,
    else ``now_us``."""
    if not supports(view, batch.schema):
        return None
    return (
        _encode(view, batch.slice(start, rows_per_chunk), prefix, now_us, life_ms)
        for start in range(0, batch.num_rows, rows_per_chunk)
    )


def _encode(view: FeatureView, batch: pa.Table, prefix: str, now_us: int, life_ms: int) -> list[tuple[str, list]]:
    source = view.batch_source
    event_us = _micros(batch.column(source.timestamp_field))
    expire_ms = contract.expiry_ms(event_us, life_ms)
    live = contract.is_live(expire_ms, now_us)
    if not live.all():
        batch, event_us, expire_ms = batch.filter(pa.array(live)), event_us[live], expire_ms[live]
    created = source.created_timestamp_column
    if created and created in batch.column_names:
        created_us = _micros(batch.column(created))
        created_us = np.where(created_us == 0, now_us, created_us)
    else:
        created_us = np.full_like(event_us, now_us)
    join_keys = [e.name for e in view.entity_columns]
    head, tail = contract.key_head(prefix, join_keys), contract.key_tail(view.name)
    keys = [head + i + tail for i in _ids(batch, join_keys)]
    columns = [_texts(batch.column(name), value_type) for name, value_type in feature_types(view)]
    return _commands(view, keys, event_us.tolist(), created_us.tolist(), expire_ms.tolist(), columns)


def _commands(
    view: FeatureView,
    keys: list[str],
    event_us: list[int],
    created_us: list[int],
    expire_ms: list[int],
    columns: list[list],
) -> list[tuple[str, list]]:
    """The ``(key, args)`` of each row: timestamps, then the fields that are not null."""
    names = [name for name, _ in feature_types(view)]
    return [
        (key, contract.write_args(ev, cr, ex, zip(names, texts)))
        for key, ev, cr, ex, *texts in zip(keys, event_us, created_us, expire_ms, *columns)
    ]
