"""Feast's online response, built from a ``reads.ReadResult``'s columns.

``ColumnarOnlineResponse`` is a Feast ``OnlineResponse``: ``to_dict``, ``to_df`` and
``to_arrow`` read the columns directly (the values Feast's proto round trip would give),
and ``.proto`` builds Feast's ``GetOnlineFeaturesResponse`` only when someone asks for it
(``feast serve`` does). ``json_body`` renders the JSON Feast's feature server answers
``/get-online-features`` with, byte for byte (``feast.feature_server_utils``: native
values, non-finite floats as ``"NaN"``/``"Infinity"``, bytes in base64, RFC 3339
timestamps with Feast's adaptive precision).
"""

from __future__ import annotations

import base64
import functools
import json
import math
from datetime import datetime, timezone
from json.encoder import encode_basestring as _encode_string  # what ensure_ascii=False writes strings with
from typing import Any

from feast.online_response import TIMESTAMP_POSTFIX, OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus, GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from featurelib import codecs
from featurelib.serving.reads import ReadResult

_STATUS_NAMES = {s: FieldStatus.Name(s) for s in FieldStatus.values()}
_float_repr, _int_repr = float.__repr__, int.__repr__
_FIELDS = {
    kind: c.field
    for kind, c in codecs.CODECS.items()  # types whose Python value is the proto field's
    if not c.composite
    and kind not in (ValueType.UNIX_TIMESTAMP, ValueType.JSON, ValueType.UUID, ValueType.TIME_UUID, ValueType.DECIMAL)
}
_NULL = ValueProto()
_EPOCH_TEXT = "1970-01-01T00:00:00Z"
_FLOAT_TYPES = (ValueType.DOUBLE, ValueType.FLOAT)
_FLOAT_LIST_TYPES = (ValueType.DOUBLE_LIST, ValueType.FLOAT_LIST)


class ColumnarOnlineResponse(OnlineResponse):
    """An ``OnlineResponse`` over columns; the proto is built on first use of ``.proto``."""

    def __init__(self, result: ReadResult):  # noqa: D107 (no call to OnlineResponse.__init__: no proto yet)
        self.result = result
        self._feature_types = result.feature_types
        self._proto: GetOnlineFeaturesResponse | None = None

    @property
    def proto(self) -> GetOnlineFeaturesResponse:  # type: ignore[override]
        if self._proto is None:
            self._proto = to_proto(self.result)
        return self._proto

    @proto.setter
    def proto(self, value: GetOnlineFeaturesResponse) -> None:
        self._proto = value

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, Any]:
        r = self.result
        out: dict[str, Any] = {}
        for name, values, event_us in zip(r.names, r.values, r.event_us):
            out[name] = list(values)
            if include_event_timestamps:
                out[name + TIMESTAMP_POSTFIX] = (
                    [0] * len(values) if event_us is None else [us // 1_000_000 for us in event_us]
                )
        return out


def to_proto(r: ReadResult) -> GetOnlineFeaturesResponse:
    """Feast's response proto of a result (the slow form: one ``Value`` per cell). Values are set
    on their type's field as they are, as Feast's read path sets them (a stored NaN stays NaN)."""
    response = GetOnlineFeaturesResponse(results=[])
    response.metadata.feature_names.val.extend(r.names)
    for values, statuses, event_us, kind in zip(r.values, r.statuses, r.event_us, r.value_types):
        n = len(values)
        stamps = [Timestamp()] * n if event_us is None else [_timestamp(us) for us in event_us]
        response.results.append(
            GetOnlineFeaturesResponse.FeatureVector(
                values=_protos(values, kind),
                statuses=[FieldStatus.PRESENT] * n if statuses is None else statuses,
                event_timestamps=stamps,
            )
        )
    return response


def _protos(values: list, kind: ValueType) -> list[ValueProto]:
    field = _FIELDS.get(kind)
    if field is None:  # a type the compiled path does not decode (on-demand outputs of other types)
        return python_values_to_proto_values(values, kind)
    if field.endswith("_list_val"):
        return [_NULL if v is None else ValueProto(**{field: {"val": v}}) for v in values]
    return [_NULL if v is None else ValueProto(**{field: v}) for v in values]


def _timestamp(us: int) -> Timestamp:
    seconds, micros = divmod(us, 1_000_000)
    return Timestamp(seconds=seconds, nanos=micros * 1000)


def timestamp_text(us: int) -> str:
    """µs since the epoch as Feast's server writes an event timestamp."""
    if us == 0:
        return _EPOCH_TEXT
    seconds, micros = divmod(us, 1_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def _float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _json_values(values: list, kind: ValueType) -> list:
    if kind in _FLOAT_TYPES:
        if all(v is None or math.isfinite(v) for v in values):
            return values
        return [None if v is None else _float(v) for v in values]
    if kind in _FLOAT_LIST_TYPES:
        return [None if v is None else [_float(x) for x in v] for v in values]
    if kind == ValueType.BYTES:
        return [None if v is None else base64.b64encode(v).decode("ascii") for v in values]
    if kind == ValueType.UNKNOWN:  # on-demand outputs without a declared type: as Feast infers them
        return [_float(v) if isinstance(v, float) else v for v in values]
    return values


_STAMP_TEXTS: dict[int, str] = {0: _EPOCH_TEXT}


def _stamp_texts(event_us: list[int]) -> list[str]:
    texts = _STAMP_TEXTS
    if len(texts) > 100_000:  # rows change, texts of old timestamps are not needed again
        texts.clear()
        texts[0] = _EPOCH_TEXT
    out = []
    for us in event_us:
        text = texts.get(us)
        if text is None:
            text = texts[us] = timestamp_text(us)
        out.append(text)
    return out


def json_body(r: ReadResult) -> bytes:
    """The ``/get-online-features`` JSON body of a result, as ``feast serve`` writes it: the text
    ``json.dumps`` gives Feast's dict (``_ENCODER``), written column by column."""
    columns = []
    stamps_of: dict[int, str] = {}  # the columns of one view share one list of timestamps
    texts_of: dict[int, str] = {}  # ... and often one list of statuses
    for values, statuses, event_us, kind in zip(r.values, r.statuses, r.event_us, r.value_types):
        n = len(values)
        if event_us is None:
            stamps = _epoch_stamps(n)
        else:
            stamps = stamps_of.get(id(event_us))  # type: ignore[assignment]
            if stamps is None:
                stamps = stamps_of[id(event_us)] = _ENCODER.encode(_stamp_texts(event_us))
        if kind._value_ not in _NATIVE_TYPES:
            values = _json_values(values, kind)
        columns.append(
            "".join(
                (
                    '{"values":[',
                    _scalar(values[0]) if n == 1 else ",".join(map(_scalar, values)),
                    '],"statuses":',
                    _present(n) if statuses is None else _statuses_json(statuses, texts_of),
                    ',"event_timestamps":',
                    stamps,
                    "}",
                )
            )
        )
    text = '{"results":[' + ",".join(columns) + '],"metadata":{"feature_names":' + _ENCODER.encode(r.names) + "}}"
    return text.encode("utf-8")


def _statuses_json(statuses: list[int], texts_of: dict[int, str]) -> str:
    text = texts_of.get(id(statuses))
    if text is None:
        text = texts_of[id(statuses)] = _ENCODER.encode([_STATUS_NAMES.get(s, "INVALID") for s in statuses])
    return text


def _scalar(v: Any) -> str:
    """One value as ``_ENCODER`` writes it."""
    kind = type(v)
    if kind is str:
        return _encode_string(v)
    if kind is float and math.isfinite(v):
        return _float_repr(v)
    if kind is int:
        return _int_repr(v)
    if v is None:
        return "null"
    if kind is bool:
        return "true" if v else "false"
    return _ENCODER.encode(v)


@functools.lru_cache(maxsize=64)
def _present(n: int) -> str:
    return _ENCODER.encode(["PRESENT"] * n)


@functools.lru_cache(maxsize=64)
def _epoch_stamps(n: int) -> str:
    return _ENCODER.encode([_EPOCH_TEXT] * n)


# Feast's JSONResponse: json.dumps(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
_NATIVE_TYPES = frozenset(
    t.value
    for t in (
        ValueType.INT64,
        ValueType.INT32,
        ValueType.STRING,
        ValueType.BOOL,
        ValueType.INT64_LIST,
        ValueType.INT32_LIST,
        ValueType.STRING_LIST,
        ValueType.BOOL_LIST,
    )
)  # values, not members: hashing an Enum is slow
