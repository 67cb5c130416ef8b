"""The raw events every feature is computed from: fields, types, required fields and ranges.

One place for the input contract, used by the generator (its Arrow schemas), the stream
processor (decoded entries are checked here) and the batch job (every raw Parquet row is
checked here before any feature is computed). An event that breaks a rule is *quarantined*
by both, never applied, so the two engines still agree bit for bit.

Transactions (``events:transactions``, ``data/raw/transactions``):

==================  ============  ========  =============================================
field               type          required  allowed
==================  ============  ========  =============================================
txn_id              string        yes       1 to 256 characters; the event's identity
card_id             string        yes       1 to 256 characters
user_id             string        yes       1 to 256 characters
device_id           string        yes       1 to 256 characters
merchant_id         string        yes       1 to 256 characters
merchant_category   string        yes       1 to 256 characters
country             string        yes       1 to 256 characters
amount_cents        int64         yes       0 to 1,000,000,000 (USD 10 million)
event_timestamp     timestamp µs  yes       2000-01-01 UTC to 60 s after the event's arrival
is_fraud            bool          no        (label of generated data)
fraud_pattern       string        no        at most 256 characters
==================  ============  ========  =============================================

Clickstream (``events:clickstream``, ``data/raw/clickstream``):

==================  ============  ========  =============================================
event_id            string        yes       1 to 256 characters; the event's identity
user_id             string        yes       1 to 256 characters
session_id          string        yes       1 to 256 characters
device_id           string        yes       1 to 256 characters
event_type          string        yes       1 to 256 characters (page_view, click,
                                            add_to_cart, purchase are counted)
page_category       string        yes       1 to 256 characters
dwell_ms            int64         no        0 to 86,400,000 (a day)
scroll_pct          int64         no        0 to 100
event_timestamp     timestamp µs  yes       as for transactions
==================  ============  ========  =============================================

**Time is bounded.** An event may be stamped at most ``MAX_AHEAD_US`` (60 s, the write
script's tolerance, ``featurelib.contract``) ahead of the clock it is judged by: the moment
Redis received it (stream entries, from the entry id) or the start of the batch job (rows
of raw Parquet files). A clock running behind by more than that is the producer's fault;
the event is quarantined and can never move a processor's clock or pin a row into the
future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.contract import MAX_AHEAD_US
from featurelib.semantics import CLICKSTREAM, TRANSACTIONS
from featurelib.timeutil import format_us

MIN_EVENT_US = 946_684_800_000_000
"""2000-01-01T00:00:00Z: no event is older (µs since the epoch)."""
MAX_AMOUNT_CENTS = 1_000_000_000
"""USD 10,000,000.00: the largest transaction amount, in cents."""
MAX_DWELL_MS = 86_400_000
"""A day: the longest time on one page, in milliseconds."""
MAX_TEXT_CHARS = 256
"""The longest text value (ids, categories, countries), in characters."""

__all__ = ["MAX_AHEAD_US", "MIN_EVENT_US", "MAX_AMOUNT_CENTS", "MAX_DWELL_MS", "MAX_TEXT_CHARS", "RawField",
           "RawSchema", "RAW", "SCHEMAS", "ID_FIELD", "REQUIRED", "TRANSACTION_SCHEMA", "CLICKSTREAM_SCHEMA",
           "problems", "problem_of"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class RawField:
    """One field of a raw event. ``low``/``high`` bound integers (inclusive); text is bounded
    by ``MAX_TEXT_CHARS`` and, when required, must not be empty."""

    name: str
    type: pa.DataType
    required: bool = False
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class RawSchema:
    kind: str
    id_field: str
    fields: tuple[RawField, ...]

    @property
    def arrow(self) -> pa.Schema:
        return pa.schema([(f.name, f.type) for f in self.fields])

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _text(name: str, required: bool = True) -> RawField:
    return RawField(name, pa.string(), required)


_EVENT_TIME = RawField("event_timestamp", _TIMESTAMP, True, low=MIN_EVENT_US)  # high: the clock + MAX_AHEAD_US

RAW: dict[str, RawSchema] = {
    TRANSACTIONS: RawSchema(TRANSACTIONS, "txn_id", (
        _text("txn_id"), _text("card_id"), _text("user_id"), _text("device_id"), _text("merchant_id"),
        _text("merchant_category"), _text("country"),
        RawField("amount_cents", pa.int64(), True, low=0, high=MAX_AMOUNT_CENTS),
        _EVENT_TIME,
        RawField("is_fraud", pa.bool_()),
        _text("fraud_pattern", required=False),
    )),
    CLICKSTREAM: RawSchema(CLICKSTREAM, "event_id", (
        _text("event_id"), _text("user_id"), _text("session_id"), _text("device_id"), _text("event_type"),
        _text("page_category"),
        RawField("dwell_ms", pa.int64(), low=0, high=MAX_DWELL_MS),
        RawField("scroll_pct", pa.int64(), low=0, high=100),
        _EVENT_TIME,
    )),
}
SCHEMAS: dict[str, pa.Schema] = {kind: raw.arrow for kind, raw in RAW.items()}
ID_FIELD: dict[str, str] = {kind: raw.id_field for kind, raw in RAW.items()}
REQUIRED: dict[str, tuple[str, ...]] = {kind: raw.required for kind, raw in RAW.items()}
TRANSACTION_SCHEMA = SCHEMAS[TRANSACTIONS]
CLICKSTREAM_SCHEMA = SCHEMAS[CLICKSTREAM]


def _ints(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An integer or timestamp column as int64 (nulls as 0; callers mask them)."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, _TIMESTAMP).cast(pa.int64())
    return np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def problems(kind: str, table: pa.Table, clock_us: int | np.ndarray) -> list[str | None]:
    """The first rule each event of ``table`` breaks (``None`` for a valid event).

    ``table`` has the kind's columns with their Arrow types (absent optional columns are
    allowed); ``clock_us`` is the clock each event is judged by (one instant, or one per
    event): no event may be stamped more than ``MAX_AHEAD_US`` after it."""
    raw = RAW[kind]
    n = table.num_rows
    out: list[str | None] = [None] * n
    if n == 0:
        return out
    present = set(table.column_names)
    null = {f.name: (np.asarray(table.column(f.name).is_null()) if f.name in present else np.ones(n, bool))
            for f in raw.fields if f.required}
    missing = np.logical_or.reduce(list(null.values()))
    for i in np.flatnonzero(missing).tolist():
        out[i] = "missing " + ", ".join(name for name, m in null.items() if m[i])
    for f in raw.fields:
        if f.name not in present:
            continue
        column = table.column(f.name)
        if pa.types.is_string(f.type):
            length = np.asarray(pc.utf8_length(column).fill_null(-1), dtype=np.int64)
            for i in np.flatnonzero(length > MAX_TEXT_CHARS).tolist():
                out[i] = out[i] or f"{f.name} is longer than {MAX_TEXT_CHARS} characters ({length[i]:,})"
            if f.required:
                for i in np.flatnonzero(length == 0).tolist():
                    out[i] = out[i] or f"{f.name} is empty"
            continue
        if f.low is None and f.high is None and f.name != "event_timestamp":
            continue
        values, valid = _ints(column), ~np.asarray(column.is_null())
        high = np.asarray(clock_us, dtype=np.int64) + MAX_AHEAD_US if f.name == "event_timestamp" else f.high
        if f.low is not None:
            for i in np.flatnonzero(valid & (values < f.low)).tolist():
                out[i] = out[i] or _below(f, int(values[i]))
        if high is not None:
            highs = np.broadcast_to(high, (n,))
            for i in np.flatnonzero(valid & (values > highs)).tolist():
                out[i] = out[i] or _above(f, int(values[i]), int(highs[i]))
    return out


def problem_of(kind: str, event: dict[str, Any], clock_us: int) -> str | None:
    """``problems`` for one event given as a dict of Python values (``event_timestamp`` in
    integer µs): the same rules and messages, without Arrow's cost per call (a live step)."""
    raw = RAW[kind]
    missing = [f.name for f in raw.fields if f.required and event.get(f.name) is None]
    if missing:
        return "missing " + ", ".join(missing)
    for f in raw.fields:
        value = event.get(f.name)
        if value is None:
            continue
        if isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:
                return f"{f.name} is longer than {MAX_TEXT_CHARS} characters ({len(value):,})"
            if f.required and not value:
                return f"{f.name} is empty"
            continue
        if isinstance(value, bool) or (f.low is None and f.high is None and f.name != "event_timestamp"):
            continue
        if f.low is not None and value < f.low:
            return _below(f, value)
        high = clock_us + MAX_AHEAD_US if f.name == "event_timestamp" else f.high
        if high is not None and value > high:
            return _above(f, value, high)
    return None


def _instant(us: int) -> str:
    """ISO-8601 where pandas can represent the instant (years 1678 to 2261), else the integer."""
    return format_us(us) if -9_000_000_000_000_000 < us < 9_000_000_000_000_000 else f"{us} µs"


def _below(f: RawField, value: int) -> str:
    if f.name == "event_timestamp":
        return f"event_timestamp {_instant(value)} is before {_instant(MIN_EVENT_US)}"
    return f"{f.name} {value:,} is below its minimum {f.low:,}"


def _above(f: RawField, value: int, high: int) -> str:
    if f.name == "event_timestamp":
        ahead = (value - (high - MAX_AHEAD_US)) / 1e6
        return (f"event_timestamp {_instant(value)} is {ahead:,.1f} s "
                f"ahead of the clock (at most {MAX_AHEAD_US / 1e6:g} s allowed)")
    return f"{f.name} {value:,} is above its maximum {high:,}"
