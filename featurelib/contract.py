"""The stream contract: how feature rows live in Redis, for Feast and for any stream job.

One Redis hash per (entity, feature view)::

    features:{entity_type}:{entity_id}:{feature_view}

* ``entity_type``: the view's join keys, sorted by name, each without a trailing ``_id``,
  joined by ``+`` (``card_id`` -> ``card``; ``card_id, merchant_id`` -> ``card+merchant``).
* ``entity_id``: the join key values in the same order, joined by ``+``, each with exactly
  three characters percent-encoded: ``%`` -> ``%25``, ``:`` -> ``%3A``, ``+`` -> ``%2B``.
* ``features`` is the configurable key prefix (``key_prefix``).

Fields are the plain feature names, plus two meta fields:

* ``_event_ts``: the row's event timestamp, integer microseconds since the epoch (UTC);
* ``_created_ts``: when the row was computed or written, integer microseconds (0 if unknown).

Values are text any language can produce with ``HSET``:

=====================  =================================================================
Feast type             value
=====================  =================================================================
Int32, Int64           decimal integer: ``42``, ``-7``
Float32, Float64       decimal that round-trips to the same double (``repr`` in Python,
                       ``Double.toString`` in Java, ``strconv.FormatFloat(f,'g',-1,64)``
                       in Go); ``nan``, ``inf``, ``-inf`` for the special values
Bool                   ``true`` or ``false``
String                 the UTF-8 text itself
Bytes                  the bytes themselves
UnixTimestamp          integer microseconds since the epoch
Uuid, Decimal, Json    the text itself (``Json``: valid JSON, stored as written)
Array(...) of scalars  a JSON array of the element encoding (numbers, strings, booleans)
anything else          one JSON document (maps, structs, sets, lists of bytes or timestamps,
                       ...): ``featurelib/json_values.py``
=====================  =================================================================

The codecs of these texts live in ``featurelib/codecs.py``; this module re-exports them.

A null is an absent field. A write replaces the whole row, atomically, and only if its
event timestamp is at least the stored one (``WRITE_SCRIPT``, one or many rows per call):
newer wins, an equal event timestamp is decided by the created timestamp (later wins),
equal timestamps are idempotent, and a writer can never replace a newer row
with an older one.
The hash expires ``ttl`` after its event timestamp, plus a grace period during which a
read reports the value as outside its max age (null) instead of not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurelib.codecs import (  # noqa: F401  (re-exported: the value texts are part of the contract)
    CODECS,
    COMPOSITE_TYPES,
    Codec,
    JsonCodec,
    codec,
    decode_python,
    format_float,
    parse_bool,
    parse_float,
)

DEFAULT_PREFIX = "features"
PREFIX_OWNERS_KEY = "featurelib:key-prefix-owners"
"""A Redis hash outside every key prefix: key prefix -> the Feast project whose rows live under
it. ``feast apply`` claims the prefix (the store's ``update``), ``feast teardown`` releases it;
a second project that names the same prefix on the same Redis is refused."""
EVENT_TS = "_event_ts"
CREATED_TS = "_created_ts"
META_FIELDS = (EVENT_TS, CREATED_TS)

WRITE_SCRIPT_PATH = Path(__file__).with_name("write_row.lua")
WRITE_SCRIPT = WRITE_SCRIPT_PATH.read_text()
"""The Lua script every writer calls (``featurelib/write_row.lua``): newer wins, atomically."""

MAX_AHEAD_US = int(re.search(r"^local MAX_AHEAD_US = (\d+)$", WRITE_SCRIPT, re.M).group(1))  # type: ignore[union-attr]
"""How far (µs) a row or a raw event may be stamped ahead of the clock: 60 s. The write script
refuses rows stamped further ahead of the Redis server's ``TIME``; reads do not serve them; the
stream processor and the batch job quarantine raw events stamped further ahead of their arrival
or of the job's start. The script owns the number; everything else reads it from there."""

WRITTEN, OLDER, REFUSED_FUTURE, REFUSED_INVALID = 1, 0, -1, -2
"""What the write script returns for each row."""

_ESCAPES = (("%", "%25"), (":", "%3A"), ("+", "%2B"))


ESCAPED = re.compile("[" + re.escape("".join(raw for raw, _ in _ESCAPES)) + "]")
"""The characters ``escape`` encodes, as a regular expression (for vectorized checks)."""


def escape(value: str) -> str:
    if "%" not in value and ":" not in value and "+" not in value:
        return value  # the common case, without three replaces
    for raw, encoded in _ESCAPES:
        value = value.replace(raw, encoded)
    return value


def unescape(value: str) -> str:
    for raw, encoded in reversed(_ESCAPES):
        value = value.replace(encoded, raw)
    return value


def entity_type(join_keys: Sequence[str]) -> str:
    """``card_id`` -> ``card``; several join keys, sorted, joined by ``+``."""
    return "+".join(k[:-3] if k.endswith("_id") and len(k) > 3 else k for k in sorted(join_keys))


def entity_id(join_keys: Sequence[str], values: Sequence[Any]) -> str:
    """The escaped id part for ``values`` given in the order of ``join_keys``."""
    by_key = dict(zip(join_keys, values))
    return "+".join(escape(str(by_key[k])) for k in sorted(join_keys))


def key_head(prefix: str, join_keys: Sequence[str]) -> str:
    """What every key of an entity type starts with: ``{prefix}:{entity_type}:``. A key is
    ``key_head + entity_id + key_tail``, however it is built (one row, a column, an Arrow batch)."""
    return f"{prefix}:{entity_type(join_keys)}:"


def key_tail(view: str) -> str:
    return f":{view}"


def hash_key(prefix: str, join_keys: Sequence[str], values: Sequence[Any], view: str) -> str:
    return key_head(prefix, join_keys) + entity_id(join_keys, values) + key_tail(view)


def hash_keys(prefix: str, join_keys: Sequence[str], columns: Sequence[Sequence[Any]], view: str) -> list[str]:
    """``hash_key`` of every row of ``columns`` (one column of values per join key, in the order of
    ``join_keys``); a single join key, the common case, without the per-row sorting."""
    if len(join_keys) == 1:
        head, tail = key_head(prefix, join_keys), key_tail(view)
        return [head + escape(str(v)) + tail for v in columns[0]]
    return [hash_key(prefix, join_keys, values, view) for values in zip(*columns)]


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    entity_type: str
    entity_ids: tuple[str, ...]
    view: str


def parse_key(key: str | bytes) -> ParsedKey:
    """Split a key into its parts (ids unescaped); ``ValueError`` if it has not four parts."""
    text = key.decode() if isinstance(key, bytes) else key
    parts = text.split(":")
    if len(parts) != 4:
        raise ValueError(f"not a feature key: {text!r}")
    return ParsedKey(parts[0], parts[1], tuple(unescape(p) for p in parts[2].split("+")), parts[3])


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def scan_pattern(prefix: str, view: str | None = None) -> str:
    """SCAN pattern of every hash of ``view`` (or of every view) under ``prefix``. A ``*`` also
    matches ``:``, so callers confirm each key with ``parse_key``."""
    return f"{_glob_escape(prefix)}:*:*:{_glob_escape(view)}" if view else f"{_glob_escape(prefix)}:*"


def is_key_of(key: str | bytes, prefix: str, view: str | None = None) -> bool:
    """True when ``key`` is a feature key under exactly ``prefix`` (and of ``view``)."""
    try:
        parsed = parse_key(key)
    except ValueError:
        return False
    return parsed.prefix == prefix and (view is None or parsed.view == view)


def view_keys(client: Any, prefix: str, view: str | None, count: int = 1000) -> Iterator[bytes]:
    """Every key of ``view``'s hashes (of every view's, for ``None``) under ``prefix``: a ``SCAN``
    of ``scan_pattern`` with each key confirmed by ``is_key_of`` (the pattern also matches longer
    prefixes). SCAN may return a key twice; callers that count use a set."""
    for key in client.scan_iter(match=scan_pattern(prefix, view), count=count):
        if is_key_of(key, prefix, view):
            yield key


def life_ms(ttl_seconds: float, grace_seconds: float) -> int:
    """How long a row's hash lives after its event time, ms, or 0 when its view has no TTL."""
    return int((ttl_seconds + grace_seconds) * 1000) if ttl_seconds else 0


def expiry_ms(event_us: Any, life_ms: int) -> Any:
    """When a row stamped ``event_us`` expires, ms since the epoch, for a hash that lives
    ``life_ms`` after its event time; 0 when it never expires (``life_ms`` 0). ``event_us`` may be
    an integer or a numpy array of them (one expiry per row)."""
    return event_us // 1000 + life_ms if life_ms else event_us * 0


def is_live(expire_ms: Any, now_us: int) -> Any:
    """Whether a row expiring at ``expire_ms`` (0: never) is still alive at ``now_us``; writers
    skip the others (Redis would drop them at once). Integers or numpy arrays."""
    return (expire_ms == 0) | (expire_ms > now_us // 1000)


def expire_at_ms(event_us: int, ttl_seconds: float, grace_seconds: float) -> int:
    """When a row's hash expires (ms since the epoch), or 0 when its view has no TTL."""
    return expiry_ms(event_us, life_ms(ttl_seconds, grace_seconds))


ROWS_PER_CALL = 64
"""Rows per script call when writing many (one call may carry several rows)."""


def write_args(
    event_us: int, created_us: int, expire_ms: int, fields: Iterable[tuple[str, str | bytes | None]]
) -> list:
    """The script arguments of one row: event ts, created ts, expire-at, n, then the n field/value
    pairs whose value is not null (a null is an absent field). Every writer builds its rows here."""
    args: list = [event_us, created_us, expire_ms, 0]
    for name, value in fields:
        if value is not None:
            args.append(name)
            args.append(value)
    args[3] = (len(args) - 4) // 2
    return args


def script_calls(
    commands: Sequence[tuple[str, list]], rows_per_call: int = ROWS_PER_CALL
) -> list[tuple[list[str], list]]:
    """Group ``(key, args)`` rows into script calls of at most ``rows_per_call`` rows."""
    calls = []
    for start in range(0, len(commands), rows_per_call):
        chunk = commands[start : start + rows_per_call]
        keys = [k for k, _ in chunk]
        args = [a for _, row in chunk for a in row]
        calls.append((keys, args))
    return calls
