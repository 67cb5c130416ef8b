"""The stream contract's JSON text of Feast's composite values: maps, structs, JSON, sets,
lists of bytes, timestamps, UUIDs, decimals and nested lists (docs/STREAM_CONTRACT.md).

A composite value is stored as one JSON document (UTF-8, no insignificant spaces, object keys
sorted):

* **typed positions** (the value itself, the items of an ``Array``/``Set`` of a primitive type):
  numbers, strings and booleans as JSON; non-finite floats as the strings ``"nan"``, ``"inf"``,
  ``"-inf"``; bytes as base64 (RFC 4648) text; timestamps as integer microseconds (``null``
  for a null item); UUIDs and decimals as their canonical text; a ``ZonedTimestamp`` as
  ``{"us": <microseconds>, "zone": "<IANA name or offset>"}``; the items of an ``Array(Json)``
  as the JSON values themselves.
* **untyped positions** (the members of a ``Map`` or ``Struct``, the entries of a ``ScalarMap``
  (``[[key, value], ...]``), the inner lists of ``Array(Array(...))``): plain JSON, typed back
  as Feast types a Python value (``python_values_to_proto_values``): an integer is ``Int64``,
  a fraction ``Float64`` (``NaN``, ``Infinity`` as JavaScript spells them), text ``String``,
  ``true``/``false`` ``Bool``, an object a ``Map``, an array a list of its items' type.
  A value JSON cannot type back (bytes, a timestamp, a UUID, a decimal, a set, an empty list)
  is refused at write with ``ValueError``: the contract never stores what it would read back
  as something else. ``Int32`` and ``Float32`` members come back as ``Int64`` and ``Float64``,
  the same Python numbers.

``to_json`` and ``from_json`` are exact inverses on every value Feast builds from Python values
(``tests/test_json_values.py`` checks both ways, and against Feast's own Redis store).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

NULL_TIMESTAMP_SECONDS = -(1 << 63)
"""Feast's null ``UnixTimestamp`` (list items and scalars): -2**63 seconds."""

_NUMBERS = ("int32", "int64", "float", "double", "bool", "string")
_UNTYPED_LISTS = ("int32_list_val", "int64_list_val", "float_list_val", "double_list_val", "bool_list_val",
                  "string_list_val")
_INFERRED = {  # composite types Feast builds from Python values by inference, as JSON gives them back
    ValueType.MAP, ValueType.MAP_LIST, ValueType.STRUCT, ValueType.STRUCT_LIST, ValueType.VALUE_LIST,
    ValueType.VALUE_SET, ValueType.SCALAR_MAP,
}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _parse_float(x: Any) -> float:
    if isinstance(x, str) and x.lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return float(x.lower().replace("infinity", "inf"))
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"not a number: {x!r}")
    return float(x)


def _item(base: str, x: Any) -> Any:
    """A typed item of kind ``base`` (``int64``, ``bytes``, ``unix_timestamp``, ...) as JSON."""
    if base in ("float", "double"):
        return _float(x)
    if base == "bytes":
        return base64.b64encode(x).decode()
    if base == "unix_timestamp":
        return None if x == NULL_TIMESTAMP_SECONDS else int(x) * 1_000_000
    if base == "json":
        return json.loads(x)
    return x


def _parse_item(base: str, x: Any) -> Any:
    if base in ("float", "double"):
        return _parse_float(x)
    if base in ("int32", "int64"):
        if isinstance(x, bool) or not isinstance(x, int):
            raise ValueError(f"not an integer: {x!r}")
        return x
    if base == "bool":
        if not isinstance(x, bool):
            raise ValueError(f"not a boolean: {x!r}")
        return x
    if base == "bytes":
        return base64.b64decode(x, validate=True)
    if base == "unix_timestamp":
        if x is None:
            return NULL_TIMESTAMP_SECONDS
        if isinstance(x, bool) or not isinstance(x, int):
            raise ValueError(f"not integer microseconds: {x!r}")
        return x // 1_000_000
    if base == "json":
        return json.dumps(x)  # the text Feast's own conversion gives a Python value
    if not isinstance(x, str):
        raise ValueError(f"not a string: {x!r}")
    return x


def to_json(kind: str, value: Any) -> Any:
    """The JSON (as Python) of a proto's ``kind`` field content ``value`` in a typed position."""
    if kind.endswith("_list_val") or kind.endswith("_set_val"):
        base = kind.rsplit("_", 2)[0]
        if base in ("map", "struct"):
            return [_members(m) for m in value.val]
        return [_item(base, x) for x in value.val]
    if kind in ("map_val", "struct_val"):
        return _members(value)
    if kind in ("list_val", "set_val"):
        return [_untyped(v) for v in value.val]
    if kind == "scalar_map_val":
        return [[_key(e.key), _untyped(e.value)] for e in value.val]
    if kind == "zoned_timestamp_val":
        return {"us": value.unix_timestamp * 1_000_000, "zone": value.zone}
    return _item(kind.removesuffix("_val"), value)


def _members(message: Any) -> dict:
    return {name: _untyped(member) for name, member in message.val.items()}


def _untyped(value: ValueProto) -> Any:
    """A value in an untyped position: only what JSON types back to the same Python value."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    content = getattr(value, kind)
    if kind in ("map_val", "struct_val", "list_val"):
        return to_json(kind, content)
    if kind in ("map_list_val", "struct_list_val") + _UNTYPED_LISTS and len(content.val):
        if kind in ("float_list_val", "double_list_val"):
            return list(content.val)  # NaN, Infinity as JSON tokens: the typed "nan" strings would read back as text
        return to_json(kind, content)
    if kind.removesuffix("_val") in _NUMBERS:
        return content
    raise ValueError(f"a {kind.removesuffix('_val')} value inside a map, struct or nested list has no JSON "
                     "encoding that reads back as the same value; store it in a feature of its own type")


def _key(key: Any) -> Any:
    kind = key.WhichOneof("key")
    if kind in ("int32_key", "int64_key", "float_key", "double_key", "bool_key"):
        return getattr(key, kind)
    raise ValueError(f"a ScalarMap key of kind {kind} has no JSON encoding that reads back as the same key")


def from_json(value_type: ValueType, obj: Any) -> ValueProto:
    """The ``ValueProto`` of declared type ``value_type`` that ``obj`` (parsed JSON) encodes."""
    if obj is None:
        return ValueProto()
    if value_type in _INFERRED:
        if value_type == ValueType.SCALAR_MAP:
            obj = {_scalar_key(k): v for k, v in obj}
        try:
            return python_values_to_proto_values([obj], value_type)[0]
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a {value_type.name}: {exc}") from None
    if value_type == ValueType.ZONED_TIMESTAMP:
        return ValueProto(zoned_timestamp_val={"unix_timestamp": _parse_item("unix_timestamp", obj["us"]),
                                               "zone": _parse_item("string", obj["zone"])})
    name = value_type.name.lower()
    if name.endswith("_list") or name.endswith("_set"):
        if not isinstance(obj, list):
            raise ValueError(f"not a JSON array: {obj!r}")
        base = name.rsplit("_", 1)[0]
        proto = ValueProto()
        getattr(proto, f"{name}_val").val.extend(_parse_item(base, x) for x in obj)
        return proto
    return ValueProto(**{f"{name}_val": _parse_item(name, obj)})


def _scalar_key(key: Any) -> Any:
    if isinstance(key, (bool, int, float)):
        return key
    raise ValueError(f"not a ScalarMap key (a number or a boolean): {key!r}")
