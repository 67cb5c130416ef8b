"""This repository's online store against Feast's built-in ``redis`` store: the same scenarios,
each store on a private Redis of its own, equal results.

Every Feast value type is written and read back (through the store API, the SDK and the DataFrame
path), newer rows win, deletes and teardown remove rows, the async API matches the sync one. The
one deliberate difference, the view TTL enforced online, has a test of its own
(docs/FEAST_NOTES.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore, FeatureView, Field
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.types import (
    Array,
    Bool,
    Bytes,
    Decimal,
    Float32,
    Float64,
    ImageBytes,
    Int32,
    Int64,
    Json,
    Map,
    PdfBytes,
    ScalarMap,
    Set,
    String,
    Struct,
    TimeUuid,
    UnixTimestamp,
    Uuid,
    ZonedTimestamp,
)

from featurelib.redis_server import RedisServer
from tests.toy import TTL, toy_store

STORES = {"this repository": "featurelib.online_store.RedisHashOnlineStore", "Feast's redis": "redis"}
UTC = dt.timezone.utc
T0 = dt.datetime.now(UTC).replace(microsecond=123456) - dt.timedelta(minutes=10)  # within the views' TTL
_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")

VALUES: dict[str, tuple[Any, Any]] = {  # feature -> (Feast type, a Python value of it)
    "i32": (Int32, -7), "i64": (Int64, 1 << 60), "f32": (Float32, 0.5), "f64": (Float64, 0.1), "b": (Bool, True),
    "s": (String, "naïve: 100% + x"), "raw": (Bytes, b"\x00\xff:"), "ts": (UnixTimestamp, dt.datetime(2026, 1, 2, tzinfo=UTC)),
    "doc": (Json, {"a": [1, 2.5, None], "b": {"c": "d"}}),
    "attrs": (Map, {"n": 3, "x": 1.5, "s": "t", "ok": False, "none": None, "tags": ["a", "b"], "nested": {"k": [1, 2]},
                    "rows": [{"r": 1}]}),
    "point": (Struct({"lat": Float64, "label": String}), {"lat": 48.85, "label": "Paris"}),
    "id": (Uuid, _ID), "tid": (TimeUuid, uuid.UUID("ede1fdde-ec1e-11f1-b54a-02fc00000001")),
    "amount": (Decimal, decimal.Decimal("12.50")), "pdf": (PdfBytes, b"%PDF-1.7"), "png": (ImageBytes, b"\x89PNG"),
    "zoned": (ZonedTimestamp, dt.datetime(2026, 1, 2, 9, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))),
    "by_code": (ScalarMap, {1: "one", 2: "two"}),
    "i32s": (Array(Int32), [1, -2]), "i64s": (Array(Int64), [1 << 40]), "f32s": (Array(Float32), [0.25]),
    "f64s": (Array(Float64), [0.1, -0.0]), "bs": (Array(Bool), [True, False]), "ss": (Array(String), ["DE", "ü"]),
    "raws": (Array(Bytes), [b"\x00", b""]), "tss": (Array(UnixTimestamp), [dt.datetime(2026, 1, 2, tzinfo=UTC), None]),
    "docs": (Array(Json), [{"a": 1}, [1, 2], "\"x\""]), "maps": (Array(Map), [{"a": 1}, {"b": "c"}]),
    "points": (Array(Struct({"lat": Float64})), [{"lat": 1.5}]), "ids": (Array(Uuid), [_ID]),
    "amounts": (Array(Decimal), [decimal.Decimal("0.01")]), "grid": (Array(Array(Int64)), [[1, 2], [3]]),
    "i64_set": (Set(Int64), {3}), "s_set": (Set(String), {"x"}), "f64_set": (Set(Float64), {2.5}),
    "b_set": (Set(Bool), {True}), "raw_set": (Set(Bytes), {b"k"}), "ts_set": (Set(UnixTimestamp), {dt.datetime(2026, 1, 3, tzinfo=UTC)}),
    "id_set": (Set(Uuid), {_ID}), "amount_set": (Set(Decimal), {decimal.Decimal("3")}),
}


def _typed_store(path: Path, connection_string: str, store_type: str) -> FeatureStore:
    """The toy repository plus ``typed``: one feature of every Feast value type."""
    store = toy_store(path, connection_string, store_type=store_type)
    items = store.get_feature_view("items")
    typed = FeatureView(name="typed", entities=[store.get_entity("item")], ttl=TTL, source=items.batch_source,
                        schema=[Field(name=n, dtype=t) for n, (t, _) in VALUES.items()])
    store.apply([typed])
    return store


def _key(item: str) -> EntityKey:
    return EntityKey(join_keys=["item_id"], entity_values=[Value(string_val=item)])


def _protos(values: dict[str, tuple[Any, Any]]) -> dict[str, Value]:
    """The ``ValueProto`` of each value, as Feast's own paths build it from the Python value."""
    return {n: python_values_to_proto_values([v], t.to_value_type())[0] for n, (t, v) in values.items()}


def _python(values: dict[str, Value] | None) -> dict[str, Any] | None:
    return None if values is None else {n: feast_value_type_to_python_type(v) for n, v in sorted(values.items())}


def _found(rows: list[tuple[dt.datetime | None, dict[str, Value] | None]]) -> list:
    """``online_read``'s rows as ``(event time, Python values)``, and ``None`` for a row not found.

    Feast's interface lets a store say "not found" two ways: this store returns ``(None, None)``,
    Feast's returns the epoch and an empty value for every feature (its SDK reads both as
    ``NOT_FOUND``)."""
    return [None if values is None or not any(v.WhichOneof("val") for v in values.values()) else (ts, _python(values))
            for ts, values in rows]


def _read(store: FeatureStore, view: str, items: list[str]) -> list:
    online = store._get_provider().online_store
    return _found(online.online_read(store.config, store.get_feature_view(view), [_key(i) for i in items]))


def _write(store: FeatureStore, view: str, rows: list[tuple[str, dict[str, Value], dt.datetime]]) -> None:
    store._get_provider().online_store.online_write_batch(
        store.config, store.get_feature_view(view), [(_key(i), values, ts, ts) for i, values, ts in rows], None)


def every_type_round_trips(store: FeatureStore) -> Any:
    """Every value type through ``online_write_batch``, back through ``online_read`` (the protos
    themselves and their Python values) and through ``get_online_features``."""
    protos = _protos(VALUES)
    _write(store, "typed", [("a", protos, T0)])
    view = store.get_feature_view("typed")
    (ts, read), = store._get_provider().online_store.online_read(store.config, view, [_key("a")])
    assert read == protos  # the very protos Feast built: nothing converted on the way
    sdk = store.get_online_features([f"typed:{n}" for n in VALUES], [{"item_id": "a"}, {"item_id": "zz"}]).to_dict()
    return ts, _python(read), sdk


def dataframe_writes_round_trip(store: FeatureStore) -> Any:
    """``write_to_online_store`` with a DataFrame of Python values (Feast's DataFrame path)."""
    frame = pd.DataFrame({"item_id": ["a", "b"], "event_timestamp": [T0, T0 + dt.timedelta(seconds=1)],
                          "n": pd.array([1, None], dtype="Int64"), "x": [0.5, float("nan")], "ok": [True, False],
                          "label": ["x", None], "tags": [["DE"], []]})
    store.write_to_online_store("items", frame)
    return _read(store, "items", ["a", "b"])


def newer_rows_win(store: FeatureStore) -> Any:
    """A newer row replaces the stored one, an older one is ignored, per entity."""
    n = {i: {"n": Value(int64_val=i)} for i in range(4)}
    _write(store, "items", [("a", n[2], T0 + dt.timedelta(seconds=2)), ("b", n[1], T0)])
    _write(store, "items", [("a", n[1], T0 + dt.timedelta(seconds=1)), ("b", n[3], T0 + dt.timedelta(seconds=3))])
    return _read(store, "items", ["a", "b", "c"])


def missing_entities_and_null_features(store: FeatureStore) -> Any:
    """A feature not written is null; an entity never written is not found."""
    _write(store, "items", [("a", {"n": Value(int64_val=1), "label": Value()}, T0)])
    response = store.get_online_features(["items:n", "items:label", "items:x"], [{"item_id": "a"}, {"item_id": "zz"}])
    return _read(store, "items", ["a", "zz"]), response.to_dict()


def deleting_a_view_removes_its_rows_only(store: FeatureStore) -> Any:
    """``update`` with a view to delete removes its rows; the other view's rows stay."""
    _write(store, "items", [("a", {"n": Value(int64_val=1)}, T0)])
    _write(store, "others", [("a", {"n": Value(int64_val=2)}, T0)])
    online = store._get_provider().online_store
    items, others = store.get_feature_view("items"), store.get_feature_view("others")
    online.update(store.config, tables_to_delete=[items], tables_to_keep=[others], entities_to_delete=[],
                  entities_to_keep=[store.get_entity("item")], partial=False)
    return [_found(online.online_read(store.config, view, [_key("a")])) for view in (items, others)]


def teardown_removes_every_row(store: FeatureStore) -> Any:
    """``feast teardown`` (``FeatureStore.teardown``): no row of any view is left to read."""
    _write(store, "items", [("a", {"n": Value(int64_val=1)}, T0)])
    _write(store, "typed", [("a", _protos(VALUES), T0)])
    views = [store.get_feature_view(v) for v in ("items", "typed")]
    store.teardown()
    online = store._get_provider().online_store
    return [_found(online.online_read(store.config, view, [_key("a")])) for view in views]


def async_api_equals_the_sync_one(store: FeatureStore) -> Any:
    """``online_write_batch_async`` then ``online_read_async`` and ``get_online_features_async``."""
    online = store._get_provider().online_store
    view = store.get_feature_view("typed")

    async def scenario() -> Any:
        await online.online_write_batch_async(store.config, view, [(_key("a"), _protos(VALUES), T0, T0)], None)
        read = await online.online_read_async(store.config, view, [_key("a"), _key("zz")])
        sdk = await store.get_online_features_async([f"typed:{n}" for n in VALUES], [{"item_id": "a"}])
        return _found(read), sdk.to_dict()

    async_result = asyncio.run(scenario())
    assert async_result[0] == _read(store, "typed", ["a", "zz"])
    return async_result


SCENARIOS: dict[str, Callable[[FeatureStore], Any]] = {f.__name__: f for f in (
    every_type_round_trips, dataframe_writes_round_trip, newer_rows_win, missing_entities_and_null_features,
    deleting_a_view_removes_its_rows_only, teardown_removes_every_row, async_api_equals_the_sync_one)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_stores_give_the_same_results(scenario: str, tmp_path: Path) -> None:
    results = {}
    for name, store_type in STORES.items():
        with RedisServer() as server:
            store = _typed_store(tmp_path / store_type, server.connection_string, store_type)
            results[name] = SCENARIOS[scenario](store)
    assert results["this repository"] == results["Feast's redis"]


def test_the_one_deliberate_difference_the_view_ttl_is_enforced_online(tmp_path: Path) -> None:
    """A row older than its view's TTL: this store reads it as null (outside max age), as
    ``get_historical_features`` would; Feast's store serves the stale value."""
    stale = dt.datetime.now(UTC) - TTL - dt.timedelta(minutes=1)
    results = {}
    for name, store_type in STORES.items():
        with RedisServer() as server:
            store = _typed_store(tmp_path / store_type, server.connection_string, store_type)
            _write(store, "items", [("a", {"n": Value(int64_val=7)}, stale)])
            results[name] = store.get_online_features(["items:n"], [{"item_id": "a"}]).to_dict()["n"]
    assert results == {"this repository": [None], "Feast's redis": [7]}


def test_an_entity_never_written_is_not_found(tmp_path: Path) -> None:
    """The status of an entity no row was written for: ``NOT_FOUND`` from this store, as from
    Feast's SQLite store; Feast's Redis store reads it as the epoch with empty values, which its
    SDK reports as ``PRESENT`` (null either way)."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    results = {}
    for name, store_type in STORES.items():
        with RedisServer() as server:
            store = _typed_store(tmp_path / store_type, server.connection_string, store_type)
            _write(store, "items", [("a", {"n": Value(int64_val=1)}, T0)])
            response = store.get_online_features(["items:n"], [{"item_id": "a"}, {"item_id": "zz"}])
            results[name] = [FieldStatus.Name(s) for s in response.proto.results[1].statuses], response.to_dict()["n"]
    assert results == {"this repository": (["PRESENT", "NOT_FOUND"], [1, None]),
                       "Feast's redis": (["PRESENT", "PRESENT"], [1, None])}
