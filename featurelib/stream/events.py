"""Raw events on Redis Streams: names, fields, and decoding into the raw-event Arrow schema.

Producers ``XADD`` one entry per event to ``events:transactions`` or
``events:clickstream``; the fields are the raw event fields of ``featurelib.raw_events``
as text:

* ``event_timestamp``: integer microseconds since the Unix epoch (UTC);
* integers as decimal text (at most 18 digits), booleans ``true``/``false``, strings as
  UTF-8 text;
* an absent field is null.

Example: ``XADD events:transactions * txn_id t-1 card_id card_12345 user_id user_1001
device_id device_100000 merchant_id merchant_7 merchant_category grocery country US
amount_cents 1250 event_timestamp 1795708800123456``. Partitioned producers XADD the same fields
to the event's partition of every family of its stream instead (``featurelib.stream.partitions``).

**No entry can stop the processor.** ``decode`` never raises on an entry's content: an
entry with a field the schema does not know, a field given twice, bytes that are not UTF-8,
a value that does not parse as its type, a missing required field, or a value outside the
ranges of ``featurelib.raw_events`` (including a timestamp more than 60 s after the entry's
arrival) is *invalid*. It is returned with its fields exactly as received (bytes, in order)
and the first rule it breaks, for the quarantine; the valid entries around it decode as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.raw_events import SCHEMAS, problem_of, problems
from featurelib.semantics import CLICKSTREAM, TRANSACTIONS

STREAMS = {TRANSACTIONS: "events:transactions", CLICKSTREAM: "events:clickstream"}


@dataclass
class Decoded:
    """One read of a stream, split by what happens to each entry."""

    events: pa.Table  # valid events, raw schema, in stream order
    event_ids: list[bytes]  # their stream entry ids
    arrival_us: np.ndarray  # when Redis received each (from the entry id), microseconds
    invalid: pa.Table  # the other entries, as received (INVALID_SCHEMA)
    invalid_ids: list[bytes]


INVALID_SCHEMA = pa.schema([
    ("stream_id", pa.string()),
    ("fields", pa.list_(pa.struct([("name", pa.binary()), ("value", pa.binary())]))),  # as received, in order
    ("reason", pa.string()),
])
"""Quarantined entries: the stream id, every field exactly as received, the first rule broken."""


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing optional ones become nulls."""
    if table.schema.equals(schema):
        return table
    present = set(table.column_names)
    columns = [pa.nulls(table.num_rows, f.type) if f.name not in present
               else table.column(f.name) if table.schema.field(f.name).type == f.type
               else table.column(f.name).cast(f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def encode_table(table: pa.Table) -> list[dict[str, str]]:
    """Stream fields of every row of a raw event table, vectorized where it matters."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz)), pa.int64())
        cols[name] = pc.cast(col, pa.string()).to_pylist()
    names = list(cols)
    return [{n: v for n, v in zip(names, values) if v is not None} for values in zip(*(cols[n] for n in names))]


Entry = tuple[bytes, "list[bytes] | dict[bytes, bytes]"]
"""A stream entry: its id and its fields, flat (``[name, value, ...]``, as Redis sends them)
or as a dict (as redis-py's default ``XREADGROUP`` parsing returns them)."""

SMALL_READ = 200
"""Reads of fewer entries are parsed in plain Python (a live step), larger ones by columns in Arrow."""

_INTEGER_PATTERN = "^-?[0-9]{1,18}$"  # decimal text that fits in int64 (Arrow's regex, whole value)
_INTEGER = re.compile(_INTEGER_PATTERN[1:-1])  # the same, for ``fullmatch`` in Python


def _flat(fields: list[bytes] | dict[bytes, bytes]) -> list[bytes]:
    return [x for kv in fields.items() for x in kv] if isinstance(fields, dict) else fields


def _layout_problem(names: tuple[bytes, ...], known: frozenset[bytes]) -> str | None:
    """What is wrong with an entry's field names: one the schema does not know, or one given twice."""
    for name in names:
        if name not in known:
            return f"unknown field '{name.decode(errors='backslashreplace')}'"
    if len(set(names)) < len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        return f"field {twice.decode()!r} given twice"
    return None


class _Layouts:
    """The problem of each distinct field layout, computed once per layout (producers send few)."""

    def __init__(self, kind: str):
        self.known = frozenset(name.encode() for name in SCHEMAS[kind].names)
        self._seen: dict[tuple[bytes, ...], str | None] = {}

    def problem(self, names: tuple[bytes, ...]) -> str | None:
        if names not in self._seen:
            self._seen[names] = _layout_problem(names, self.known)
        return self._seen[names]


def _texts(binary: pa.Array, name: str, problems_: list[str | None]) -> pa.Array:
    """A binary column as a string column; values that are not UTF-8 become null and a problem."""
    try:
        return binary.cast(pa.string())
    except pa.ArrowInvalid:  # rare: find the offending values one by one
        texts: list[str | None] = []
        for row, raw in enumerate(binary.to_pylist()):
            try:
                texts.append(None if raw is None else raw.decode())
            except UnicodeDecodeError:
                texts.append(None)
                problems_[row] = problems_[row] or f"{name} is not UTF-8 text"
        return pa.array(texts, pa.string())


def _typed(field: pa.Field, col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A string column parsed as ``field``'s type, and where the text did not parse."""
    if pa.types.is_string(field.type):
        return col, np.zeros(len(col), bool)
    if pa.types.is_boolean(field.type):
        ok = pc.or_(pc.is_null(col), pc.is_in(col, pa.array(["true", "false"])))
        return pc.equal(col, "true"), ~np.asarray(ok.fill_null(True))
    ok = pc.or_(pc.is_null(col), pc.match_substring_regex(col, _INTEGER_PATTERN))  # integers and the timestamp
    ints = pc.cast(pc.if_else(ok, col, pa.scalar(None, pa.string())), pa.int64())
    return (ints.cast(field.type) if pa.types.is_timestamp(field.type) else ints), ~np.asarray(ok.fill_null(True))


def _columns(kind: str, flats: list[list[bytes]], found: list[str | None]) -> dict[str, pa.Array]:
    """The schema's fields of every entry as binary columns in entry order (null where absent).

    Entries are grouped by field layout (producers send few: every entry's fields in the same
    order, optional fields left out); a group's values become one Arrow array, entry after
    entry, and each field's column every k-th value of it (one ``take``). Entries whose layout
    is wrong (an unknown or repeated field) get their problem in ``found`` and null values."""
    layouts = _Layouts(kind)
    names = SCHEMAS[kind].names
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(flats):
        groups.setdefault(tuple(f[0::2]), []).append(i)
    schema = pa.schema([("_at", pa.int64()), *[(n, pa.binary()) for n in names]])
    parts = []
    for layout, positions in groups.items():
        columns: dict[str, pa.Array] = {}
        problem = layouts.problem(layout)
        if problem is None:  # the values of the group, entry after entry, then every k-th of them per field
            values = pa.array(list(chain.from_iterable(flats[i][1::2] for i in positions)), pa.binary())
            k = len(layout)
            columns = {name.decode(): values.take(pa.array(np.arange(j, len(positions) * k, k)))
                       for j, name in enumerate(layout)}
        else:
            for i in positions:
                found[i] = problem
        parts.append(conform(pa.table({"_at": pa.array(positions, pa.int64()), **columns}), schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if len(parts) > 1:
        table = table.take(pc.sort_indices(table.column("_at")))
    return {n: table.column(n).combine_chunks() for n in names}


def _parse_columns(kind: str, entries: list[Entry], found: list[str | None], arrival: np.ndarray) -> dict[str, pa.Array]:
    """Every field of every entry as a typed column (null where absent or invalid); the first
    problem of each entry, including the ranges of ``raw_events``, goes to ``found``.
    Vectorized: large reads."""
    flats = [_flat(f) for _, f in entries]
    raw = _columns(kind, flats, found)
    parsed = {}
    for field in SCHEMAS[kind]:
        col, bad = _typed(field, _texts(raw[field.name], field.name, found))
        for i in np.flatnonzero(bad).tolist():
            found[i] = found[i] or f"{field.name} is not a valid {field.type}"
        parsed[field.name] = col
    for i, problem in enumerate(problems(kind, pa.table(parsed, schema=SCHEMAS[kind]), arrival)):
        found[i] = found[i] or problem
    return parsed


def _parse_rows(kind: str, entries: list[Entry], found: list[str | None], arrival: np.ndarray) -> dict[str, pa.Array]:
    """What ``_parse_columns`` returns, entry by entry in plain Python: cheaper for a few entries."""
    schema = SCHEMAS[kind]
    layouts = _Layouts(kind)
    fields = [(f.name, f.name.encode(), "string" if pa.types.is_string(f.type) else
               "bool" if pa.types.is_boolean(f.type) else "int", f"{f.name} is not a valid {f.type}") for f in schema]
    columns: dict[str, list] = {name: [] for name, *_ in fields}
    clocks = arrival.tolist()
    for row, (_, raw_fields) in enumerate(entries):
        flat = _flat(raw_fields)
        problem = layouts.problem(tuple(flat[0::2]))
        d = {} if problem else dict(zip(flat[0::2], flat[1::2]))
        event = {}
        for name, key, how, invalid in fields:
            raw = d.get(key)
            try:
                value = None if raw is None else raw.decode()
            except UnicodeDecodeError:
                problem, value = problem or f"{name} is not UTF-8 text", None
            if value is not None and how == "bool":
                if value not in ("true", "false"):
                    problem = problem or invalid
                value = value == "true"
            elif value is not None and how == "int":
                if _INTEGER.fullmatch(value):
                    value = int(value)
                else:
                    problem, value = problem or invalid, None
            columns[name].append(value)
            event[name] = value
        found[row] = problem or problem_of(kind, event, clocks[row])
    return {f.name: pa.array(columns[f.name], f.type) for f in schema}


def _arrivals(ids: list[bytes]) -> np.ndarray:
    """When Redis received each entry: an entry id is "<milliseconds>-<sequence>"; µs."""
    if len(ids) < SMALL_READ:
        return np.array([int(i.split(b"-", 1)[0]) for i in ids], dtype=np.int64) * 1000
    millis = pc.list_element(pc.split_pattern(pa.array(ids, pa.binary()).cast(pa.string()), "-"), 0)
    return np.asarray(pc.cast(millis, pa.int64()), dtype=np.int64) * 1000


def decode(kind: str, entries: list[Entry]) -> Decoded:
    """Decode ``XREADGROUP`` entries of one stream into a table of the raw-event schema; the
    entries that break a rule are returned apart, as received (see the module docstring)."""
    schema = SCHEMAS[kind]
    found: list[str | None] = [None] * len(entries)
    arrival = _arrivals([e[0] for e in entries])
    parse = _parse_rows if len(entries) < SMALL_READ else _parse_columns
    table = pa.table(parse(kind, entries, found, arrival), schema=schema)
    keep = np.array([p is None for p in found], dtype=bool)
    if keep.all():
        return Decoded(table, [e[0] for e in entries], arrival, INVALID_SCHEMA.empty_table(), [])
    bad = np.flatnonzero(~keep).tolist()
    invalid = pa.table({
        "stream_id": [entries[i][0].decode() for i in bad],
        "fields": [[{"name": n, "value": v} for n, v in _pairs(entries[i][1])] for i in bad],
        "reason": [found[i] for i in bad],
    }, schema=INVALID_SCHEMA)
    good = np.flatnonzero(keep)
    return Decoded(table.filter(pa.array(keep)), [entries[i][0] for i in good.tolist()], arrival[good], invalid,
                   [entries[i][0] for i in bad])


def _pairs(fields: list[bytes] | dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    flat = _flat(fields)
    return list(zip(flat[0::2], flat[1::2]))
