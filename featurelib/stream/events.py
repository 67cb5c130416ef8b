"""Raw events on Redis Streams: names, fields, and decoding into the raw-event Arrow schema.

Producers ``XADD`` one entry per event to ``events:transactions`` or
``events:clickstream``; the fields are the raw event columns of
``featurelib.generate`` (``TRANSACTION_SCHEMA``, ``CLICKSTREAM_SCHEMA``) as text:

* ``event_timestamp``: integer microseconds since the Unix epoch (UTC);
* integers as decimal text (at most 18 digits), booleans ``true``/``false``, strings as they are;
* an absent field is null.

Example: ``XADD events:transactions * txn_id t-1 card_id card_12345 user_id user_1001
device_id device_100000 merchant_id merchant_7 merchant_category grocery country US
amount_cents 1250 event_timestamp 1795708800123456``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.raw_events import REQUIRED, SCHEMAS
from featurelib.semantics import CLICKSTREAM, TRANSACTIONS

STREAMS = {TRANSACTIONS: "events:transactions", CLICKSTREAM: "events:clickstream"}


@dataclass
class Decoded:
    """One read of a stream, split by what happens to each entry."""

    events: pa.Table  # well-formed events, raw schema, in stream order
    event_ids: list[bytes]  # their stream entry ids
    arrival_us: np.ndarray  # when Redis received each (from the entry id), microseconds
    malformed: pa.Table  # entries that could not be decoded: stream id, fields as JSON, reason
    malformed_ids: list[bytes]


MALFORMED_SCHEMA = pa.schema([("stream_id", pa.string()), ("fields", pa.string()), ("reason", pa.string())])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing optional ones become nulls."""
    if table.schema.equals(schema):
        return table
    present = set(table.column_names)
    columns = [pa.nulls(table.num_rows, f.type) if f.name not in present
               else table.column(f.name) if table.schema.field(f.name).type == f.type
               else table.column(f.name).cast(f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def entry_arrival_us(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0]) * 1000


def encode_event(row: dict) -> dict[str, str]:
    """Stream fields of one raw event (``event_timestamp`` as a datetime or integer µs)."""
    fields = {}
    for name, value in row.items():
        if value is None:
            continue
        if name == "event_timestamp" and not isinstance(value, int):
            value = int(pa.scalar(value, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py())
        if isinstance(value, bool):
            value = "true" if value else "false"
        fields[name] = str(value)
    return fields


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


def _columns(entries: list[Entry], names: list[str]) -> dict[str, pa.Array]:
    """The named fields of every entry as binary columns (null where an entry lacks one).

    Large reads are grouped by field layout (producers send few: every entry's fields in the
    same order, optional fields left out), and each group's columns are one transpose of its
    flat field lists, done in C. Small reads (a live step) build a dict per entry instead.
    Both give the same columns (``tests/test_stream_events.py``)."""
    if len(entries) < 1000:  # a live step: one dict per entry costs less than grouping
        dicts = [f if isinstance(f, dict) else dict(zip(f[0::2], f[1::2])) for _, f in entries]
        return {n: pa.array([d.get(k) for d in dicts], pa.binary()) for n, k in ((n, n.encode()) for n in names)}
    flats = [f if isinstance(f, list) else [x for kv in f.items() for x in kv] for _, f in entries]
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(flats):
        groups.setdefault(tuple(f[0::2]), []).append(i)
    wanted = {n.encode(): n for n in names}
    parts = []
    for layout, positions in groups.items():
        values = list(zip(*[flats[i][1::2] for i in positions]))
        columns = {wanted[name]: col for name, col in zip(layout, values) if name in wanted}  # a repeated field: the last
        parts.append(pa.table({"_at": pa.array(positions, pa.int64()),
                               **{n: pa.array(c, pa.binary()) for n, c in columns.items()}}))
    schema = pa.schema([("_at", pa.int64()), *[(n, pa.binary()) for n in names]])
    table = pa.concat_tables([conform(t, schema) for t in parts]) if parts else schema.empty_table()
    if len(parts) > 1:
        table = table.take(pc.sort_indices(table.column("_at")))
    return {n: table.column(n).combine_chunks() for n in names}


SMALL_READ = 200
"""Reads of fewer entries are parsed in plain Python (a live step), larger ones by columns in Arrow."""

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # fits in int64


def _parse_columns(kind: str, entries: list[Entry]) -> tuple[dict[str, pa.Array], list[str | None]]:
    """Every field of every entry as a typed column, and the first problem of each entry."""
    schema = SCHEMAS[kind]
    raw = {name: col.cast(pa.string()) for name, col in _columns(entries, schema.names).items()}
    problems: list[str | None] = [None] * len(entries)
    missing = [(name, np.asarray(raw[name].is_null())) for name in REQUIRED[kind]]
    for i in np.flatnonzero(np.logical_or.reduce([m for _, m in missing])) if missing and entries else []:
        problems[i] = "missing " + ", ".join(name for name, m in missing if m[i])
    parsed = {}
    for field in schema:
        col = raw[field.name]
        if pa.types.is_string(field.type):
            parsed[field.name] = col
            continue
        if pa.types.is_boolean(field.type):
            ok = pc.or_(pc.is_null(col), pc.is_in(col, pa.array(["true", "false"])))
            parsed[field.name] = pc.equal(col, "true")
        else:  # integers and the timestamp: decimal integer text
            ok = pc.or_(pc.is_null(col), pc.match_substring_regex(col, r"^-?[0-9]{1,18}$"))  # fits in int64
            ints = pc.cast(pc.if_else(ok, col, pa.scalar(None, pa.string())), pa.int64())
            parsed[field.name] = ints.cast(field.type) if pa.types.is_timestamp(field.type) else ints
        for i in np.flatnonzero(~np.asarray(ok.fill_null(True))):
            problems[i] = problems[i] or f"{field.name} is not a valid {field.type}"
    return parsed, problems


def _parse_rows(kind: str, entries: list[Entry]) -> tuple[dict[str, list], list[str | None]]:
    """What ``_parse_columns`` returns, entry by entry in Python: cheaper for a few entries."""
    schema = SCHEMAS[kind]
    fields = [(f.name, f.name.encode(), "string" if pa.types.is_string(f.type) else
               "bool" if pa.types.is_boolean(f.type) else "int", f"{f.name} is not a valid {f.type}") for f in schema]
    required = [(name, name.encode()) for name in REQUIRED[kind]]
    columns: dict[str, list] = {name: [] for name, *_ in fields}
    problems: list[str | None] = []
    for _, flat in entries:
        d = flat if isinstance(flat, dict) else dict(zip(flat[0::2], flat[1::2]))
        absent = [name for name, key in required if d.get(key) is None]
        problem = "missing " + ", ".join(absent) if absent else None
        for name, key, how, invalid in fields:
            raw = d.get(key)
            value = None if raw is None else raw.decode()
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
        problems.append(problem)
    return {f.name: pa.array(columns[f.name], f.type) for f in schema}, problems


def decode(kind: str, entries: list[Entry]) -> Decoded:
    """Decode ``XREADGROUP`` entries of one stream into a table of the raw-event schema."""
    schema = SCHEMAS[kind]
    parse = _parse_rows if len(entries) < SMALL_READ else _parse_columns
    parsed, problems = parse(kind, entries)
    keep = np.array([p is None for p in problems], dtype=bool)
    table = pa.table(parsed, schema=schema)
    table = table.filter(pa.array(keep)) if not keep.all() else table
    ids = [entries[i][0] for i in np.flatnonzero(keep)] if not keep.all() else [e[0] for e in entries]
    bad = [(entries[i], problems[i]) for i in np.flatnonzero(~keep)]
    malformed = pa.table({
        "stream_id": [entry[0].decode() for entry, _ in bad],
        "fields": [str({k.decode(): v.decode(errors="replace") for k, v in _pairs(entry[1])}) for entry, _ in bad],
        "reason": [reason for _, reason in bad],
    }, schema=MALFORMED_SCHEMA)
    # An entry id is "<milliseconds>-<sequence>": when Redis received the entry.
    if len(ids) < SMALL_READ:
        arrival = np.array([int(i.split(b"-", 1)[0]) for i in ids], dtype=np.int64) * 1000
    else:
        millis = pc.list_element(pc.split_pattern(pa.array(ids, pa.binary()).cast(pa.string()), "-"), 0)
        arrival = np.asarray(pc.cast(millis, pa.int64()), dtype=np.int64) * 1000
    return Decoded(table, ids, arrival, malformed, [entry[0] for entry, _ in bad])


def _pairs(fields: list[bytes] | dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return list(fields.items()) if isinstance(fields, dict) else list(zip(fields[0::2], fields[1::2]))
