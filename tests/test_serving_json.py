"""``serving.response.json_body`` writes what ``feast serve`` writes for the same response:
Feast's own converter (``convert_response_to_dict``) on the proto, dumped as its
``JSONResponse`` dumps it. Pure logic, on random columns of every type the read path serves."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from feast.feature_server_utils import convert_response_to_dict
from feast.value_type import ValueType

from featurelib.serving.plan import ReadResult
from featurelib.serving.response import ColumnarOnlineResponse, json_body, to_proto

SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e16, 1e-7, 123.456, 5e-324, 1.7976931348623157e308]
TEXTS = ["card_1", "é ü 中文", 'quote " and \\ backslash', "\n\t", "", "emoji 🙂"]


def _value(kind: ValueType, rng: random.Random):
    if rng.random() < 0.15:
        return None
    if kind == ValueType.DOUBLE:
        return rng.choice(SPECIAL_FLOATS + [rng.uniform(-1e6, 1e6)])
    if kind == ValueType.FLOAT:
        return float(np.float32(rng.choice([0.1, 3.3, 1e10, -2.5, math.nan, math.inf])))
    if kind in (ValueType.INT64, ValueType.INT32):
        return rng.choice([0, -1, 2**31 - 1, rng.randint(-10**6, 10**6)] + ([2**62] if kind == ValueType.INT64 else []))
    if kind == ValueType.STRING:
        return rng.choice(TEXTS)
    if kind == ValueType.BOOL:
        return rng.random() < 0.5
    if kind == ValueType.BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 6)))
    if kind == ValueType.STRING_LIST:
        return [rng.choice(TEXTS) for _ in range(rng.randint(0, 3))]
    if kind == ValueType.INT64_LIST:
        return [rng.randint(-5, 5) for _ in range(rng.randint(0, 3))]
    if kind == ValueType.DOUBLE_LIST:
        return [rng.choice(SPECIAL_FLOATS) for _ in range(rng.randint(0, 3))]
    if kind == ValueType.BOOL_LIST:
        return [rng.random() < 0.5 for _ in range(rng.randint(0, 3))]
    raise AssertionError(kind)


KINDS = [ValueType.DOUBLE, ValueType.FLOAT, ValueType.INT64, ValueType.INT32, ValueType.STRING, ValueType.BOOL,
         ValueType.BYTES, ValueType.STRING_LIST, ValueType.INT64_LIST, ValueType.DOUBLE_LIST, ValueType.BOOL_LIST]


def _result(rng: random.Random) -> ReadResult:
    rows = rng.choice([1, 2, 5])
    names, values, statuses, event_us, kinds = ["card_id"], [[f"card_{i}" for i in range(rows)]], [None], [None], \
        [ValueType.STRING]
    shared = [rng.choice([0, 1_764_000_000_000_000, 1_764_000_000_123_000, 1_764_000_000_123_456]) for _ in range(rows)]
    for i in range(rng.randint(1, 8)):
        kind = rng.choice(KINDS)
        names.append(f"f{i}")
        kinds.append(kind)
        values.append([_value(kind, rng) for _ in range(rows)])
        statuses.append(None if rng.random() < 0.5 else [rng.choice([1, 2, 3, 4]) for _ in range(rows)])
        event_us.append(shared if rng.random() < 0.7 else None)
    return ReadResult(names, values, statuses, event_us, kinds, {})


@pytest.mark.parametrize("seed", range(300))
def test_json_body_is_feast_servers_json(seed: int) -> None:
    result = _result(random.Random(seed))
    feast_json = json.dumps(convert_response_to_dict(to_proto(result)), ensure_ascii=False, allow_nan=False,
                            indent=None, separators=(",", ":")).encode("utf-8")
    assert json_body(result) == feast_json


def test_to_dict_equals_the_protos_to_dict() -> None:
    from feast.online_response import OnlineResponse

    for seed in range(100):
        result = _result(random.Random(seed))
        for kind, column in zip(result.value_types, result.values):
            if kind == ValueType.BYTES:  # Feast's to_dict gives bytes back as bytes
                assert all(v is None or isinstance(v, bytes) for v in column)
        ours = ColumnarOnlineResponse(result).to_dict(include_event_timestamps=True)
        theirs = OnlineResponse(to_proto(result)).to_dict(include_event_timestamps=True)
        assert json.dumps(ours, default=repr, sort_keys=True) == json.dumps(theirs, default=repr, sort_keys=True)
