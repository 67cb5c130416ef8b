"""Materialization from Arrow (featurelib.arrow_rows, featurelib.materialization).

The Arrow path must write exactly what Feast's own path writes: the same batch, turned
into Feast's rows (``_convert_arrow_to_proto``) and encoded by the store, gives the same
keys and script arguments on random batches with nulls, NaN, infinities, escaped ids,
composite keys, list and timestamp features, and expired rows. Then ``feast materialize``
through ``ArrowLocalEngine`` (with and without ``pull_latest_features``) leaves the same
hashes in a real Redis as Feast's local engine.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from feast import Entity, FeatureView, Field, FileSource, RepoConfig, ValueType, utils
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

from featurelib import arrow_rows
from featurelib.online_store import RedisHashOnlineStore
from featurelib.redis_server import RedisServer
from tests.toy import rows, toy_store

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone.utc)
NOW_US = 1_795_694_400_123_456
TTL = timedelta(hours=1)

ID_CHARS = "ab:%+é9"
SPECIAL_FLOATS = [None, float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 123.0, 1e-5, 1e16, 5e-324]


def _view(composite: bool, created: bool) -> FeatureView:
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
    source = FileSource(path="unused.parquet", timestamp_field="event_timestamp",
                        created_timestamp_column="created" if created else "")
    return FeatureView(
        name="mixed", entities=[card, merchant] if composite else [card], ttl=TTL, source=source,
        schema=[Field(name="card_id", dtype=String),
                *([Field(name="merchant_id", dtype=Int64)] if composite else []),
                Field(name="i64", dtype=Int64), Field(name="i32", dtype=Int32), Field(name="f64", dtype=Float64),
                Field(name="f32", dtype=Float32), Field(name="flag", dtype=Bool), Field(name="label", dtype=String),
                Field(name="tags", dtype=Array(String)), Field(name="scores", dtype=Array(Float64)),
                Field(name="counts", dtype=Array(Int64)),
                Field(name="seen_at", dtype=UnixTimestamp)])


def _batch(seed: int, n: int, composite: bool, created: bool, ns: bool) -> pa.Table:
    rng = random.Random(seed)

    def maybe(value, p=0.15):
        return None if rng.random() < p else value

    now_us = NOW_US
    # Rows from 3 h ago (expired: TTL 1 h + grace 1 h) up to now; none near the expiry boundary.
    event_us = [now_us - rng.choice([rng.randrange(0, 3_000_000_000), rng.randrange(10_800_000_000, 11_000_000_000)])
                for _ in range(n)]
    columns = {
        "card_id": ["".join(rng.choice(ID_CHARS) for _ in range(rng.randint(1, 6))) for _ in range(n)],
        "event_timestamp": pa.array([t * 1000 + rng.randrange(1000) for t in event_us], pa.timestamp("ns", "UTC"))
        if ns else pa.array(event_us, pa.timestamp("us", "UTC")),
        # Within 2**53: Feast's rows carry an integer column with nulls through float64.
        "i64": pa.array([maybe(rng.randrange(-2**53, 2**53)) for _ in range(n)], pa.int64()),
        "i32": pa.array([maybe(rng.randrange(-2**31, 2**31)) for _ in range(n)], pa.int32()),
        "f64": pa.array([rng.choice(SPECIAL_FLOATS) if rng.random() < 0.3 else rng.uniform(-1e6, 1e6) for _ in range(n)],
                        pa.float64()),
        "f32": pa.array([maybe(rng.uniform(-10, 10)) for _ in range(n)], pa.float32()),
        "flag": pa.array([maybe(rng.random() < 0.5) for _ in range(n)], pa.bool_()),
        "label": pa.array([maybe(rng.choice(["", "x: y", "naïve + 100%", "plain"])) for _ in range(n)], pa.string()),
        "tags": pa.array([maybe(rng.sample(["DE", "US", "a:b"], rng.randint(0, 3))) for _ in range(n)],
                         pa.list_(pa.string())),
        "scores": pa.array([maybe([rng.choice([rng.uniform(0, 1), float("nan"), -float("inf"), 123.0])
                                   for _ in range(rng.randint(0, 3))]) for _ in range(n)], pa.list_(pa.float64())),
        "counts": pa.array([maybe([rng.randrange(-9, 10**12) for _ in range(rng.randint(0, 3))]) for _ in range(n)],
                           pa.list_(pa.int64())),
        # Whole seconds: Feast's rows truncate a UnixTimestamp to seconds (see the test below).
        "seen_at": pa.array([maybe(now_us // 10**6 - rng.randrange(10**4)) for _ in range(n)], pa.timestamp("s", "UTC")),
    }
    if composite:
        columns["merchant_id"] = pa.array([rng.randrange(-5, 10**12) for _ in range(n)], pa.int64())
    if created:
        columns["created"] = pa.array([maybe(t + rng.randrange(10**6)) for t in event_us], pa.timestamp("us", "UTC"))
    return pa.table(columns).combine_chunks()


def _feast_commands(view: FeatureView, batch: pa.Table, config: RepoConfig) -> list:
    """What the store writes for the rows Feast builds from ``batch`` (its own path)."""
    join_keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    protos = utils._convert_arrow_to_proto(batch, view, join_keys)
    return [c for chunk in RedisHashOnlineStore()._write_commands(config, view, protos) for c in chunk]


@pytest.fixture
def config(tmp_path: Path) -> RepoConfig:
    return RepoConfig(project="p", registry=str(tmp_path / "registry.db"), provider="local",
                      online_store={"type": "featurelib.online_store.RedisHashOnlineStore"},
                      entity_key_serialization_version=3)


@pytest.mark.filterwarnings("ignore:Discarding nonzero nanoseconds")  # Feast's rows, truncating as this path does
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("composite", "created", "ns"), [(False, False, False), (True, True, False), (False, True, True)])
@pytest.mark.parametrize("per_chunk", [64, arrow_rows.SMALL_COLUMN])  # columns encoded by Arrow, or from Python values
def test_arrow_encoding_equals_feasts_rows(seed: int, composite: bool, created: bool, ns: bool, per_chunk: int,
                                           config: RepoConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(utils, "_utc_now", lambda: NOW)
    view = _view(composite, created)
    batch = _batch(seed, 400, composite, created, ns)
    expected = _feast_commands(view, batch, config)
    life_ms = config.online_store.life_ms(view)
    chunks = list(arrow_rows.write_commands(view, batch, "features", NOW_US, life_ms, rows_per_chunk=per_chunk))
    assert len(chunks) == -(-400 // per_chunk) and all(len(c) <= per_chunk for c in chunks)  # per_chunk rows at a time
    got = [c for chunk in chunks for c in chunk]
    assert 0 < len(got) < 400  # some rows expired, most did not
    assert got == expected


def test_null_created_timestamp_and_expiry(config: RepoConfig) -> None:
    view = _view(False, True)
    t = NOW_US - 1_000_000
    batch = pa.table({"card_id": ["a", "b", "old"], "event_timestamp": pa.array([t, t, NOW_US - 3 * 3600 * 10**6],
                                                                                  pa.timestamp("us", "UTC")),
                      "created": pa.array([t + 5, None, t], pa.timestamp("us", "UTC")),
                      **{f.name: pa.nulls(3, pa.int64()) for f in view.features if f.dtype in (Int64, Int32)},
                      **{f.name: pa.nulls(3, pa.float64()) for f in view.features if f.dtype in (Float64, Float32)},
                      "flag": pa.array([True, None, None]), "label": pa.nulls(3, pa.string()),
                      "tags": pa.nulls(3, pa.list_(pa.string())), "scores": pa.nulls(3, pa.list_(pa.float64())),
                      "counts": pa.nulls(3, pa.list_(pa.int64())), "seen_at": pa.nulls(3, pa.timestamp("us", "UTC"))})
    life_ms = config.online_store.life_ms(view)
    got = [c for chunk in arrow_rows.write_commands(view, batch, "features", NOW_US, life_ms) for c in chunk]
    expire = t // 1000 + 2 * 3600 * 1000
    assert got == [("features:card:a:mixed", [t, t + 5, expire, 1, "flag", "true"]),
                   ("features:card:b:mixed", [t, NOW_US, expire, 0])]


def test_arrow_path_keeps_what_feasts_rows_lose(config: RepoConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big integers next to nulls, sub-second and null timestamps: exact here, not in Feast's rows."""
    monkeypatch.setattr(utils, "_utc_now", lambda: NOW)
    view = _view(False, False)
    big, t = 2**62 + 1, NOW_US - 1_500_000
    batch = pa.table({"card_id": ["a", "b"], "event_timestamp": pa.array([t, t], pa.timestamp("us", "UTC")),
                      "i64": pa.array([big, None], pa.int64()), "i32": pa.nulls(2, pa.int32()),
                      "f64": pa.nulls(2, pa.float64()), "f32": pa.nulls(2, pa.float32()), "flag": pa.nulls(2, pa.bool_()),
                      "label": pa.nulls(2, pa.string()), "tags": pa.nulls(2, pa.list_(pa.string())),
                      "scores": pa.nulls(2, pa.list_(pa.float64())), "counts": pa.nulls(2, pa.list_(pa.int64())),
                      "seen_at": pa.array([t, None], pa.timestamp("us", "UTC"))})
    got = dict(c for chunk in arrow_rows.write_commands(view, batch, "features", NOW_US, 0) for c in chunk)
    assert got["features:card:a:mixed"][4:] == ["i64", str(big), "seen_at", str(t)]
    assert got["features:card:b:mixed"][3:] == [0]
    feast = dict(_feast_commands(view, batch, config))
    assert feast["features:card:a:mixed"][4:] == ["i64", str(int(float(big))),
                                                  "seen_at", str(t // 10**6 * 10**6)]
    assert feast["features:card:b:mixed"][3:] == [0]  # the store drops Feast's null timestamp (-2**63 s)


def test_unsupported_batches_fall_back() -> None:
    view = _view(False, False)
    assert arrow_rows.write_commands(view, pa.table({"card_id": ["a"]}), "features", NOW_US, 0) is None
    float_ids = pa.table({"card_id": pa.array([1.5]), **{f.name: pa.nulls(1) for f in view.features}})
    assert not arrow_rows.supports(view, float_ids.schema)


def _hashes(client, prefix: str) -> dict[str, dict[bytes, bytes]]:
    out = {}
    for key in client.scan_iter(match=f"{prefix}:*"):
        row = client.hgetall(key)
        row.pop(b"_created_ts")
        out[key.decode().split(":", 1)[1]] = row
    return out


def test_materialize_through_the_arrow_engine_equals_feasts_engine(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = RedisHashOnlineStore.online_write_arrow

    def spy(self, config, table, batch):
        calls.append(batch.num_rows)
        return original(self, config, table, batch)

    monkeypatch.setattr(RedisHashOnlineStore, "online_write_arrow", spy)
    now = datetime.now(timezone.utc)
    rng = np.random.default_rng(4)
    ids = [f"id:{i % 97}+{i % 5}" for i in range(600)]
    times = [now - timedelta(seconds=int(s)) for s in rng.integers(1, 3000, 600)]
    df = rows(ids, times, n=[None if i % 7 == 0 else int(v) for i, v in enumerate(rng.integers(-9, 9, 600))],
              x=[float("nan") if i % 11 == 0 else float(v) for i, v in enumerate(rng.normal(size=600))],
              tags=[[] if i % 3 == 0 else ["a", str(i)] for i in range(600)])
    with RedisServer() as server:
        found = {}
        for prefix, engine, latest in (("arrow", "featurelib.materialization.ArrowLocalEngine", "false"),
                                       ("latest", "featurelib.materialization.ArrowLocalEngine", "true"),
                                       ("feast", "local", "false")):
            store = toy_store(tmp_path / prefix, server.connection_string, key_prefix=prefix)
            df.to_parquet(tmp_path / prefix / "data" / "items.parquet")
            yaml = tmp_path / prefix / "feature_store.yaml"
            yaml.write_text(yaml.read_text() + f"batch_engine:\n  type: {engine}\n"
                            f"materialization:\n  pull_latest_features: {latest}\n")
            from feast import FeatureStore

            store = FeatureStore(repo_path=str(tmp_path / prefix))
            store.materialize(now - timedelta(hours=2), now, feature_views=["items"])
            found[prefix] = _hashes(server.client(), prefix)
    assert calls == [97 * 5, 97 * 5]  # the Arrow engine wrote once per run, the local engine never
    assert len(found["arrow"]) == 97 * 5
    assert found["arrow"] == found["feast"]
    assert found["latest"] == found["feast"]  # DuckDB's latest rows, without pandas' second de-duplication
