"""The stream contract's value codecs: the text of each Feast value type in a Redis field, both ways.

One ``Codec`` per value type (``codec``): to text and back, and to and from Feast's ``ValueProto``
(``decoder``: the read path's fast per-value step). Scalars are their own text, lists of scalars
a JSON array, everything else one JSON document (``JsonCodec``, over ``featurelib/json_values.py``).
The table of encodings is the contract's (``featurelib/contract.py``, ``docs/STREAM_CONTRACT.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType

from featurelib import json_values


def format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def parse_float(text: str) -> float:
    lowered = text.strip().lower()
    if lowered in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"):
        return float(lowered.replace("infinity", "inf"))
    return float(text)


def parse_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"not a boolean (true/false): {text!r}")


def _json_list(parse_item: Callable[[Any], Any]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError(f"not a JSON array: {text!r}")
        return [parse_item(i) for i in items]

    return parse


def _strict_int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"not an integer: {x!r}")
    return x


def _json_float(x: Any) -> float:
    if isinstance(x, str):
        return parse_float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"not a number: {x!r}")
    return float(x)


def _json_bool(x: Any) -> bool:
    if not isinstance(x, bool):
        raise ValueError(f"not a boolean: {x!r}")
    return x


def _json_str(x: Any) -> str:
    if not isinstance(x, str):
        raise ValueError(f"not a string: {x!r}")
    return x


@dataclass(frozen=True)
class Codec:
    """Text encoding of one Feast value type, both ways, and to/from ``ValueProto``."""

    value_type: ValueType
    field: str  # the ValueProto oneof field
    to_text: Callable[[Any], str]
    from_text: Callable[[str], Any]
    binary: bool = False
    composite: bool = False  # a JSON document (``JsonCodec``), not a scalar or a list of scalars

    def field_text(self, value: Any) -> str | bytes | None:
        """The text of a proto's ``self.field`` content (``getattr(proto, self.field)``)."""
        if self.field.endswith("_list_val"):
            return self.to_text(list(value.val))
        if self.field == "unix_timestamp_val":
            return str(int(value) * 1_000_000)
        return value if self.binary else self.to_text(value)

    def encode_proto(self, proto: ValueProto) -> str | bytes | None:
        if proto.WhichOneof("val") != self.field:
            return None
        return self.field_text(getattr(proto, self.field))

    def decoder(self) -> Callable[[bytes], ValueProto]:
        """``decode_proto`` specialized to this type: the read path's per-value step."""
        field = self.field
        if self.field in ("double_val", "float_val"):  # float() reads nan, inf, -inf, infinity
            return lambda raw: ValueProto(**{field: float(raw)})
        if self.field in ("int64_val", "int32_val"):
            return lambda raw: ValueProto(**{field: int(raw)})
        if self.field == "string_val":
            return lambda raw: ValueProto(string_val=raw.decode())
        if self.field == "bool_val":
            return lambda raw: ValueProto(bool_val=parse_bool(raw.decode()))
        return self.decode_proto

    def decode_proto(self, raw: bytes) -> ValueProto:
        proto = ValueProto()
        if self.binary:
            setattr(proto, self.field, raw)
            return proto
        value = self.from_text(raw.decode())
        if self.field.endswith("_list_val"):
            getattr(proto, self.field).val.extend(value)
        elif self.field == "unix_timestamp_val":
            setattr(proto, self.field, value // 1_000_000)
        else:
            setattr(proto, self.field, value)
        return proto


@dataclass(frozen=True)
class JsonCodec(Codec):
    """A composite type (map, struct, set, list of bytes, ...): one JSON document
    (``featurelib/json_values.py``). ``from_text`` gives the Python value Feast's reads give."""

    composite: bool = True

    def field_text(self, value: Any) -> str:
        return self.to_text(value)

    def decode_proto(self, raw: bytes) -> ValueProto:
        return json_values.from_json(self.value_type, json.loads(raw))


def _json_codec(value_type: ValueType, field: str) -> JsonCodec:
    def from_text(text: str) -> Any:
        return feast_value_type_to_python_type(json_values.from_json(value_type, json.loads(text)))

    return JsonCodec(value_type, field, lambda value: json_values.dumps(json_values.to_json(field, value)), from_text)


def _json_text(text: str) -> str:
    json.loads(text)  # a ``Json`` feature holds valid JSON text, stored as written
    return text


def _list_codec(
    value_type: ValueType, field: str, item_to_json: Callable[[Any], Any], parse_item: Callable[[Any], Any]
) -> Codec:
    return Codec(
        value_type,
        field,
        lambda items: json.dumps([item_to_json(i) for i in items], separators=(",", ":")),
        _json_list(parse_item),
    )


def _float_item(x: float) -> Any:
    return x if math.isfinite(x) else format_float(x)


CODECS: dict[ValueType, Codec] = {
    ValueType.INT32: Codec(ValueType.INT32, "int32_val", str, int),
    ValueType.INT64: Codec(ValueType.INT64, "int64_val", str, int),
    ValueType.FLOAT: Codec(ValueType.FLOAT, "float_val", format_float, parse_float),
    ValueType.DOUBLE: Codec(ValueType.DOUBLE, "double_val", format_float, parse_float),
    ValueType.BOOL: Codec(ValueType.BOOL, "bool_val", lambda b: "true" if b else "false", parse_bool),
    ValueType.STRING: Codec(ValueType.STRING, "string_val", str, str),
    ValueType.BYTES: Codec(ValueType.BYTES, "bytes_val", bytes, bytes, binary=True),
    ValueType.UNIX_TIMESTAMP: Codec(ValueType.UNIX_TIMESTAMP, "unix_timestamp_val", str, int),
    ValueType.INT32_LIST: _list_codec(ValueType.INT32_LIST, "int32_list_val", int, _strict_int),
    ValueType.INT64_LIST: _list_codec(ValueType.INT64_LIST, "int64_list_val", int, _strict_int),
    ValueType.FLOAT_LIST: _list_codec(ValueType.FLOAT_LIST, "float_list_val", _float_item, _json_float),
    ValueType.DOUBLE_LIST: _list_codec(ValueType.DOUBLE_LIST, "double_list_val", _float_item, _json_float),
    ValueType.BOOL_LIST: _list_codec(ValueType.BOOL_LIST, "bool_list_val", bool, _json_bool),
    ValueType.STRING_LIST: _list_codec(ValueType.STRING_LIST, "string_list_val", str, _json_str),
    ValueType.PDF_BYTES: Codec(ValueType.PDF_BYTES, "bytes_val", bytes, bytes, binary=True),
    ValueType.IMAGE_BYTES: Codec(ValueType.IMAGE_BYTES, "bytes_val", bytes, bytes, binary=True),
    ValueType.JSON: Codec(ValueType.JSON, "json_val", str, _json_text),
    ValueType.UUID: Codec(ValueType.UUID, "uuid_val", str, str),
    ValueType.TIME_UUID: Codec(ValueType.TIME_UUID, "time_uuid_val", str, str),
    ValueType.DECIMAL: Codec(ValueType.DECIMAL, "decimal_val", str, str),
}
"""Codecs whose text is the value itself or a JSON array of scalars; ``COMPOSITE_TYPES`` adds the rest."""

COMPOSITE_TYPES = (
    ValueType.MAP,
    ValueType.MAP_LIST,
    ValueType.STRUCT,
    ValueType.STRUCT_LIST,
    ValueType.JSON_LIST,
    ValueType.BYTES_LIST,
    ValueType.UNIX_TIMESTAMP_LIST,
    ValueType.UUID_LIST,
    ValueType.TIME_UUID_LIST,
    ValueType.DECIMAL_LIST,
    ValueType.VALUE_LIST,
    ValueType.VALUE_SET,
    ValueType.SCALAR_MAP,
    ValueType.ZONED_TIMESTAMP,
    *(t for t in ValueType if t.name.endswith("_SET") and t != ValueType.VALUE_SET),
)
CODECS.update(
    {
        t: _json_codec(
            t,
            "list_val"
            if t == ValueType.VALUE_LIST
            else "set_val"
            if t == ValueType.VALUE_SET
            else t.name.lower() + "_val",
        )
        for t in COMPOSITE_TYPES
    }
)


def codec(value_type: ValueType) -> Codec:
    if value_type not in CODECS:
        raise ValueError(f"the stream contract has no encoding for {value_type.name}")
    return CODECS[value_type]


def decode_python(value_type: ValueType, raw: bytes | str) -> Any:
    """The Python value of a field's text (``ValueError`` when it does not parse)."""
    c = codec(value_type)
    if c.binary:
        return raw if isinstance(raw, bytes) else raw.encode()
    return c.from_text(raw.decode() if isinstance(raw, bytes) else raw)
