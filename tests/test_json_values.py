"""The contract's text of composite values (featurelib/json_values.py): the golden examples of
``tests/golden/value_texts.json``, exact round trips of random maps, and the values refused."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from feast.protos.feast.types.Value_pb2 import BytesList, Map, MapKey, ScalarMap, ScalarMapEntry, Value
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

from featurelib import contract

GOLDEN = json.loads((Path(__file__).parent / "golden" / "value_texts.json").read_text())
_NAMES = {"datetime": datetime, "timezone": timezone, "Decimal": Decimal, "UUID": UUID, "ZoneInfo": ZoneInfo}


def _proto(value_type: ValueType, value: Any) -> Value:
    return python_values_to_proto_values([value], value_type)[0]


def _encode(value_type: ValueType, proto: Value) -> str | bytes | None:
    return contract.codec(value_type).encode_proto(proto)


@pytest.mark.parametrize("example", GOLDEN, ids=[e["type"] for e in GOLDEN])
def test_golden_text_of_each_type(example: dict) -> None:
    """The Python value encodes to the golden text (built as Feast builds it), the text decodes
    to the same Python value Feast's reads give, and decoding then encoding keeps the text."""
    value_type, value = ValueType[example["value_type"]], eval(example["python"], _NAMES)  # noqa: S307 (our own file)
    codec = contract.codec(value_type)
    assert _encode(value_type, _proto(value_type, value)) == example["text"]
    assert feast_value_type_to_python_type(codec.decode_proto(example["text"].encode())) == value
    assert codec.encode_proto(codec.decode_proto(example["text"].encode())) == example["text"]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["int", "float", "str", "bool", "none", "list", "map", "maps"][: 5 if depth > 2 else 8])
    if kind == "int":
        return rng.randint(-(1 << 62), 1 << 62)
    if kind == "float":
        return rng.choice([0.1, -0.0, 1e300, 5e-324, rng.random()])
    if kind == "str":
        return rng.choice(["", "x", "naïve: %+", "😀", '"quoted"'])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        item = rng.choice([lambda: rng.randint(-9, 9), lambda: rng.random(), lambda: rng.choice("abc"), lambda: rng.random() < .5])
        return [item() for _ in range(rng.randint(1, 4))]
    if kind == "maps":
        return [_random_map(rng, depth + 1) for _ in range(rng.randint(1, 3))]
    return _random_map(rng, depth + 1)


def _random_map(rng: random.Random, depth: int = 0) -> dict:
    return {f"k{i}": _random_json(rng, depth) for i in range(rng.randint(0, 5))}


@pytest.mark.parametrize("value_type", [ValueType.MAP, ValueType.STRUCT])
def test_random_maps_round_trip_exactly(value_type: ValueType) -> None:
    """Maps of random JSON-typed members, nested maps, lists and lists of maps, as Feast builds
    them from Python dicts: the decoded proto equals the written one, member for member."""
    rng = random.Random(11)
    codec = contract.codec(value_type)
    for _ in range(300):
        proto = _proto(value_type, _random_map(rng))
        assert codec.decode_proto(_encode(value_type, proto).encode()) == proto


@pytest.mark.parametrize(("value_type", "proto", "message"), [
    (ValueType.MAP, Value(map_val=Map(val={"b": Value(bytes_val=b"x")})), "a bytes value inside a map"),
    (ValueType.MAP, Value(map_val=Map(val={"t": Value(unix_timestamp_val=1)})), "a unix_timestamp value inside a map"),
    (ValueType.MAP, Value(map_val=Map(val={"l": Value(bytes_list_val=BytesList(val=[b"x"]))})), "a bytes_list value"),
    (ValueType.MAP, Value(map_val=Map(val={"e": Value(int64_list_val={})})), "a int64_list value"),
    (ValueType.SCALAR_MAP, Value(scalar_map_val=ScalarMap(val=[ScalarMapEntry(key=MapKey(uuid_key="u"), value=Value())])),
     "a ScalarMap key of kind uuid_key"),
])
def test_values_json_cannot_type_back_are_refused(value_type: ValueType, proto: Value, message: str) -> None:
    """A member that would read back as another value (bytes as text, a timestamp as a number,
    an empty list as nothing Feast can type) is refused, never stored changed."""
    with pytest.raises(ValueError, match=message):
        _encode(value_type, proto)


@pytest.mark.parametrize(("value_type", "text"), [
    (ValueType.MAP, "[1]"), (ValueType.BYTES_LIST, '["not base64!"]'), (ValueType.UNIX_TIMESTAMP_LIST, "[1.5]"),
    (ValueType.INT64_SET, '["1"]'), (ValueType.JSON, "{not json"), (ValueType.ZONED_TIMESTAMP, '{"us": 1}'),
    (ValueType.UUID_LIST, "[1]"), (ValueType.SCALAR_MAP, '[["k", 1]]'),
])
def test_text_that_is_not_the_type_does_not_decode(value_type: ValueType, text: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        contract.codec(value_type).decode_proto(text.encode())
