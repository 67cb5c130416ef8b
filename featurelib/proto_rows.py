"""Feast's rows (``ValueProto`` values, ``EntityKey`` keys) to and from the stream contract:
the front-end of the contract's row writes for Feast's write paths (push, materialize,
``write_to_online_store``, other plugins' ``online_write_batch``), and the per-view decoders of
its reads. Arrow batches have their own front-end, ``featurelib/arrow_rows.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from feast import FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from featurelib import codecs, contract, feast_compat, json_values
from featurelib.timeutil import from_us

_NULL = ValueProto()


def view_ttl_seconds(view: Any) -> float:
    """The view's TTL in seconds, 0 for none: also for an on-demand view written to the online
    store (``write_to_online_store=True``), which has no TTL."""
    ttl = getattr(view, "ttl", None)
    return ttl.total_seconds() if ttl else 0.0


def _entity_text(value: ValueProto) -> str:
    kind = value.WhichOneof("val")
    if kind is None:
        raise ValueError("an entity key value is null")
    return str(getattr(value, kind))


def key_of(prefix: str, entity_key: EntityKeyProto, view: str) -> str:
    join_keys = list(entity_key.join_keys)
    return contract.hash_key(prefix, join_keys, [_entity_text(v) for v in entity_key.entity_values], view)


_INT_RANGES = {"int32_val": (-(1 << 31), (1 << 31) - 1), "int64_val": (-(1 << 63), (1 << 63) - 1)}
_FLOAT_KINDS = ("float_val", "double_val")


def _coerce_scalar(kind: str, value: Any, field: str) -> Any:
    """``value`` of proto kind ``kind`` as the declared ``field`` holds it, or ``None`` when it cannot."""
    if field in _INT_RANGES and (kind in _INT_RANGES or (kind in _FLOAT_KINDS and float(value).is_integer())):
        lo, hi = _INT_RANGES[field]
        return int(value) if lo <= value <= hi else None
    if field in _FLOAT_KINDS and (kind in _INT_RANGES or kind in _FLOAT_KINDS):
        return float(np.float32(value)) if field == "float_val" else float(value)
    return None


class _ListValue:
    """A stand-in for a proto list value (``.val``), as the list encoders read it."""

    def __init__(self, values: list):
        self.val = values


def coerce(name: str, kind: str, value: Any, field: str) -> Any:
    """A feature value written with another proto kind than its declared one (``double_val`` to a
    Float32 feature, ``int32_val`` to an Int64 one, and the same for lists), converted as Feast's
    DataFrame paths convert to the declared type: integers that fit, any number to a float (to
    float32 for Float32); raises ``ValueError`` naming the feature when the type cannot hold it."""
    if kind.endswith("_list_val") and field.endswith("_list_val"):
        item_kind, item_field = kind[:-9] + "_val", field[:-9] + "_val"
        items = [_coerce_scalar(item_kind, v, item_field) for v in value.val]
        if None not in items:
            return _ListValue(items)
    elif not kind.endswith("_list_val") and not field.endswith("_list_val"):
        converted = _coerce_scalar(kind, value, field)
        if converted is not None:
            return converted
    raise ValueError(
        f"feature {name!r} is declared as {field.removesuffix('_val')}: a {kind} value "
        f"{value if not kind.endswith('_list_val') else list(value.val)!r} does not fit it"
    )


def _text_encoder(codec: codecs.Codec, name: str) -> Callable[[Any], str | bytes | None]:
    """value of the proto's oneof field -> contract text, None for null (the hot path of every write);
    a composite value JSON cannot hold raises ``ValueError`` naming the feature ``name``."""
    if codec.field in ("double_val", "float_val"):
        return repr  # shortest round-trip decimal; spells inf, -inf, nan as the contract does
    if codec.field in ("int64_val", "int32_val"):
        return str
    if codec.field == "bool_val":
        return lambda b: "true" if b else "false"
    if codec.field == "string_val" or codec.binary:
        return lambda v: v
    if codec.field == "unix_timestamp_val":  # Feast turns a null (NaT) into -2**63 seconds
        return lambda seconds: None if seconds == json_values.NULL_TIMESTAMP_SECONDS else str(int(seconds) * 1_000_000)
    if not codec.composite:
        return codec.field_text  # lists of scalars

    def composite(value: Any) -> str | bytes | None:
        try:
            return codec.field_text(value)
        except ValueError as exc:
            raise ValueError(f"feature {name!r} ({codec.value_type.name}): {exc}") from None

    return composite


class ViewCodecs:
    """Per feature view: how each feature's value is encoded and decoded, its TTL, and its keys."""

    def __init__(self, table: FeatureView, prefix: str = contract.DEFAULT_PREFIX, name: str | None = None):
        self.by_name = {f.name: codecs.codec(f.dtype.to_value_type()) for f in table.features}
        self.ttl_seconds = view_ttl_seconds(table)
        self.encoders = [(name, c.field, _text_encoder(c, name)) for name, c in self.by_name.items()]
        self.decoders = {name: c.decoder() for name, c in self.by_name.items()}
        self.prefix, self.view = prefix, name or table.name
        self._heads: dict[tuple[str, ...], str] = {}  # join keys -> contract.key_head
        self._tail = contract.key_tail(self.view)

    def row_args(self, values: dict[str, ValueProto], event_us: int, created_us: int, expire_ms: int) -> list:
        """The script arguments of one row (``contract.write_args``) from Feast's values."""
        return contract.write_args(event_us, created_us, expire_ms, self._texts(values))

    def _texts(self, values: dict[str, ValueProto]) -> Iterator[tuple[str, str | bytes | None]]:
        """``(name, text)`` of each feature in ``values``: of another proto kind than declared,
        converted first (``coerce``); ``None`` for a null."""
        for name, field, encode in self.encoders:
            proto = values.get(name)
            if proto is None:
                continue
            kind = proto.WhichOneof("val")
            if kind == field:
                yield name, encode(getattr(proto, field))
            elif kind is not None:
                yield name, encode(coerce(name, kind, getattr(proto, kind), field))

    def key(self, entity_key: EntityKeyProto) -> str:
        """``contract.key_head + escaped id + key_tail``; the head is kept per join keys."""
        if len(entity_key.join_keys) != 1:
            return key_of(self.prefix, entity_key, self.view)
        join_keys = tuple(entity_key.join_keys)
        head = self._heads.get(join_keys)
        if head is None:
            head = self._heads[join_keys] = contract.key_head(self.prefix, join_keys)
        return head + contract.escape(_entity_text(entity_key.entity_values[0])) + self._tail


def read_codecs(table: FeatureView) -> ViewCodecs:
    """The view's codecs, built once per view object: Feast passes the same registry objects
    to every read until the registry is refreshed, and building them costs ~30 µs a view."""
    return feast_compat.cached_on(table, "_featurelib_codecs", lambda: ViewCodecs(table))


def decode_rows(table: FeatureView, requested: list[str], results: list[list], now_us: int) -> tuple[list, list, list]:
    """Decode HMGET replies ``[_event_ts, *requested]`` into Feast's ``(ts, values)`` rows,
    the positions of rows older than the view's TTL, and the (row, feature) positions of
    stored values that do not parse (served as null, status NULL_VALUE). ``now_us``: the reader's clock, µs
    since the epoch. A row stamped more than ``contract.MAX_AHEAD_US`` ahead of it is not
    served: it reads as absent (NOT_FOUND), like a missing hash, until a write replaces it."""
    view_codecs = read_codecs(table)
    decode = [view_codecs.decoders[name] for name in requested]
    ttl_us = int(view_codecs.ttl_seconds * 1_000_000)
    latest_us = now_us + contract.MAX_AHEAD_US
    rows, stale, unparsable = [], [], []
    for i, reply in enumerate(results):
        raw_ts = reply[0]
        if raw_ts is None:
            rows.append((None, None))
            continue
        event_us = int(raw_ts)
        if event_us > latest_us:  # pinned in the future (a writer before the script's rule)
            rows.append((None, None))
            continue
        if ttl_us and now_us - event_us > ttl_us:
            rows.append((from_us(event_us), None))
            stale.append(i)
            continue
        try:
            values = {
                name: (d(raw) if raw is not None else _NULL) for name, d, raw in zip(requested, decode, reply[1:])
            }
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
            values = _tolerant_values(table.name, requested, decode, reply, i, unparsable)
        rows.append((from_us(event_us), values))
    return rows, stale, unparsable


def _tolerant_values(
    view: str, requested: list[str], decode: list, reply: list, row: int, unparsable: list[tuple[int, int]]
) -> dict[str, ValueProto]:
    """One row's values when one of them does not parse: that one is null (and counted,
    ``serving.observe``), the others are served."""
    from featurelib.serving import observe

    values = {}
    for f, (name, d, raw) in enumerate(zip(requested, decode, reply[1:])):
        try:
            values[name] = d(raw) if raw is not None else _NULL
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
            values[name] = _NULL
            unparsable.append((row, f))
            observe.decode_error(view, name, f"row {row}", raw, exc)
    return values
