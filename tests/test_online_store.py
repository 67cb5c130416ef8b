"""The contract store (featurelib.online_store) against real Redis servers."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from featurelib import contract
from featurelib.errors import RowsRefusedError
from featurelib.redis_server import RedisClusterServers, RedisServer, free_port, redis_server_binary
from featurelib.timeutil import to_us
from tests.conftest import Repo
from tests.toy import TTL, now, read, rows, toy_store, two_writer_race


@pytest.fixture
def server():
    with RedisServer() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path, server: RedisServer):
    return toy_store(tmp_path / "toy", server.connection_string)


def statuses(response) -> dict[str, list]:
    proto = response.proto
    return {name: list(r.statuses) for name, r in zip(proto.metadata.feature_names.val, proto.results)}


def test_materialized_rows_follow_the_documented_layout(feature_repo: Repo, redis_server: RedisServer) -> None:
    client = redis_server.client()
    key = "features:card:card_12345:transaction_stats_5m"
    row = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    assert set(row) <= {"_event_ts", "_created_ts", "txn_count_5m", "txn_count_30m", "txn_count_24h", "amount_sum_5m",
                        "amount_avg_5m", "amount_max_5m", "unique_countries_5m", "geo_diversity_score",
                        "time_since_last_txn_min", "is_weekend", "velocity_score", "high_risk_txn_ratio", "is_high_velocity"}
    online = feature_repo.store().get_online_features(features=["transaction_stats_5m:txn_count_5m",
                                                                 "transaction_stats_5m:velocity_score",
                                                                 "transaction_stats_5m:is_high_velocity"],
                                                       entity_rows=[{"card_id": "card_12345"}]).to_dict()
    assert row["txn_count_5m"] == str(online["txn_count_5m"][0])
    assert float(row["velocity_score"]) == online["velocity_score"][0]
    assert row["is_high_velocity"] in ("true", "false")
    assert int(row["_event_ts"]) > 0 and int(row["_created_ts"]) > 0
    ttl_ms = client.pttl(key)
    expected = int(row["_event_ts"]) // 1000 + (7 * 86400 + 3600) * 1000 - int(pd.Timestamp.now(tz="UTC").value // 1_000_000)
    assert abs(ttl_ms - expected) < 60_000
    countries = {k.decode(): v.decode() for k, v in client.hgetall("features:card:card_12345:card_profile_24h").items()}
    assert countries["card_countries_24h"].startswith('["')


def test_values_round_trip_with_every_type(store, server: RedisServer) -> None:
    t = now() - timedelta(minutes=1)
    df = rows(["a", "b:c+d%"], [t, t], n=[7, None], x=[0.1, float("inf")], ok=[True, False],
              label=["x: y", ""], tags=[["DE", "US"], []])
    store.write_to_online_store("items", df)
    raw = server.client().hgetall("features:item:b%3Ac%2Bd%25:items")
    assert b"n" not in raw  # null: an absent field
    assert raw[b"x"] == b"inf" and raw[b"ok"] == b"false" and raw[b"tags"] == b"[]"
    out = read(store, ["a", "b:c+d%"]).to_dict()
    assert out["n"] == [7, None]
    assert out["x"] == [0.1, float("inf")]
    assert out["ok"] == [True, False]
    assert out["label"] == ["x: y", ""]
    assert out["tags"] == [["DE", "US"], []]
    assert statuses(read(store, ["b:c+d%"]))["n"] == [FieldStatus.PRESENT]


def test_missing_entity_is_not_found(store) -> None:
    response = read(store, ["nobody"])
    assert statuses(response)["n"] == [FieldStatus.NOT_FOUND]
    assert response.to_dict()["n"] == [None]


def test_newer_wins_older_is_ignored_equal_is_idempotent(store, server: RedisServer) -> None:
    t = now() - timedelta(minutes=5)
    store.write_to_online_store("items", rows(["a"], [t], n=[2]))
    store.write_to_online_store("items", rows(["a"], [t - timedelta(microseconds=1)], n=[1]))
    assert read(store, ["a"]).to_dict()["n"] == [2]
    before = server.client().hgetall("features:item:a:items")
    store.write_to_online_store("items", rows(["a"], [t], n=[2]))
    after = server.client().hgetall("features:item:a:items")
    assert {k: v for k, v in before.items() if k != b"_created_ts"} == {k: v for k, v in after.items() if k != b"_created_ts"}
    store.write_to_online_store("items", rows(["a"], [t + timedelta(microseconds=1)], n=[3]))
    assert read(store, ["a"]).to_dict()["n"] == [3]


def test_equal_event_timestamps_are_decided_by_the_created_timestamp(server: RedisServer) -> None:
    client = server.client()
    sha = client.script_load(contract.WRITE_SCRIPT)
    seconds, micros = client.time()
    key, e = "features:item:a:items", (seconds - 3600) * 1_000_000 + micros  # an hour ago: the script refuses the future

    def write(event_us: int, created_us: int, n: int) -> int:
        return client.evalsha(sha, 1, key, *contract.write_args(event_us, created_us, 0, [("n", str(n))]))[0]

    assert write(e, 10, 1) == 1
    assert write(e, 5, 2) == 0  # computed before the stored row: ignored
    assert write(e, 10, 1) == 1  # the same row again: idempotent
    assert write(e, 20, 3) == 1  # a correction for the same instant
    assert write(e - 1, 99, 4) == 0  # an older event, however recent its computation
    assert client.hget(key, "n") == b"3" and client.hget(key, "_created_ts") == b"20"
    client.hdel(key, "_created_ts")  # written by a job that sets no created timestamp: counts as 0
    assert write(e, 0, 5) == 1 and client.hget(key, "n") == b"5"


def test_ttl_outside_max_age_and_expiry(store, server: RedisServer) -> None:
    fresh, stale = now() - TTL + timedelta(minutes=1), now() - TTL - timedelta(minutes=1)
    store.write_to_online_store("items", rows(["fresh", "stale"], [fresh, stale], n=[1, 2]))
    response = read(store, ["fresh", "stale"])
    assert statuses(response)["n"] == [FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE]
    assert response.to_dict()["n"] == [1, None]
    stamps = response.proto.results[1].event_timestamps
    assert stamps[1].ToDatetime().replace(tzinfo=stale.tzinfo) == stale.replace(microsecond=stale.microsecond)
    client = server.client()
    for item, t in (("fresh", fresh), ("stale", stale)):
        expire_ms = contract.expire_at_ms(to_us(t), TTL.total_seconds(), 3600)
        assert client.pexpiretime(f"features:item:{item}:items") == expire_ms
    # Past TTL + grace: not written at all (it would expire at once).
    store.write_to_online_store("items", rows(["gone"], [now() - TTL - timedelta(hours=2)]))
    assert not client.exists("features:item:gone:items")
    assert statuses(read(store, ["gone"]))["n"] == [FieldStatus.NOT_FOUND]


def test_all_views_of_a_request_in_one_round_trip(store, server: RedisServer) -> None:
    t = now()
    store.write_to_online_store("items", rows(["a", "b"], [t, t], n=[1, 2]))
    store.write_to_online_store("others", rows(["a", "b"], [t, t], n=[10, 20])[["item_id", "event_timestamp", "n"]])
    client = server.client()
    before = client.info("stats")["total_commands_processed"]
    out = store.get_online_features(features=["items:n", "others:n"], entity_rows=[{"item_id": "a"}, {"item_id": "b"}],
                                    full_feature_names=True).to_dict()
    after = client.info("stats")["total_commands_processed"]
    assert out["items__n"] == [1, 2] and out["others__n"] == [10, 20]
    assert after - before == 4 + 1  # four HMGETs in one pipeline, plus this INFO


def test_async_read_and_write(store) -> None:
    async def go():
        await store.write_to_online_store_async("items", rows(["z"], [now()], n=[42]))
        response = await store.get_online_features_async(features=["items:n", "items:tags"], entity_rows=[{"item_id": "z"}])
        await store._get_provider().online_store.close()
        return response.to_dict()

    out = asyncio.run(go())
    assert out["n"] == [42] and out["tags"] == [["a", "b"]]


def test_push_and_materialize_write_through_the_contract(store, server: RedisServer, tmp_path: Path) -> None:
    t = now() - timedelta(minutes=2)
    rows(["m1", "m2"], [t, t], n=[5, 6]).to_parquet(tmp_path / "toy" / "data" / "items.parquet")
    store.materialize(t - timedelta(minutes=1), t + timedelta(minutes=1), feature_views=["items"])
    assert read(store, ["m1", "m2"]).to_dict()["n"] == [5, 6]
    assert server.client().hget("features:item:m1:items", "n") == b"5"


def test_update_deletes_hashes_of_removed_views_and_teardown_deletes_all(store, server: RedisServer) -> None:
    t = now()
    store.write_to_online_store("items", rows(["a", "b"], [t, t]))
    store.write_to_online_store("others", rows(["a", "b"], [t, t])[["item_id", "event_timestamp", "n"]])
    client = server.client()
    assert len(list(client.scan_iter("features:*:*:others"))) == 2
    store.apply([], objects_to_delete=[store.get_feature_view("others")], partial=False)
    assert list(client.scan_iter("features:*:*:others")) == []
    assert len(list(client.scan_iter("features:*:*:items"))) == 2
    store.teardown()
    assert list(client.scan_iter("features:*")) == []


def test_a_stream_job_writing_with_the_script_is_served(store, server: RedisServer) -> None:
    """What a Flink or Go job does: EVALSHA the contract's script with text values."""
    client = server.client()
    sha = client.script_load(contract.WRITE_SCRIPT_PATH.read_text())
    event_us = to_us(now())
    assert client.evalsha(sha, 1, "features:item:s1:items", event_us, event_us, 0, 5,
                          "n", "12", "x", "2.5", "ok", "true", "label", "from stream", "tags", '["X"]') == [1]
    assert client.evalsha(sha, 1, "features:item:s1:items", event_us - 1, event_us, 0, 1, "n", "11") == [0]
    # Several rows in one call: each is judged on its own.
    assert client.evalsha(sha, 2, "features:item:s1:items", "features:item:s2:items",
                          event_us - 1, event_us, 0, 1, "n", "11", event_us, event_us, 0, 1, "n", "21") == [0, 1]
    out = read(store, ["s1"]).to_dict()
    assert out == {"item_id": ["s1"], "n": [12], "x": [2.5], "ok": [True], "label": ["from stream"], "tags": [["X"]]}


def test_race_between_two_writers_keeps_the_newest_row(store, server: RedisServer) -> None:
    """Thousands of interleaved writes with random timestamps from two writers, then every key
    must hold the newest row written to it."""
    held, newest = two_writer_race(store, seeds=(1, 2))
    assert held == newest


# ------------------------------------------------------------------ topologies


def test_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with RedisServer(extra_args=("--requirepass", "s3cret")) as server:
        monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
        store = toy_store(tmp_path / "toy", server.connection_string)
        store.write_to_online_store("items", rows(["p"], [now()], n=[1]))
        assert read(store, ["p"]).to_dict()["n"] == [1]
        monkeypatch.delenv("REDIS_PASSWORD")
        with pytest.raises(redis.AuthenticationError):
            read(toy_store(tmp_path / "toy2", server.connection_string), ["p"])
        assert "s3cret" not in (tmp_path / "toy" / "feature_store.yaml").read_text()


def test_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    port = free_port()
    args = ("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    server = RedisServer(port, extra_args=args)
    try:
        server.start()
        monkeypatch.setenv("REDIS_SSL", "true")
        monkeypatch.setenv("REDIS_SSL_CA_CERTS", str(cert))
        store = toy_store(tmp_path / "toy", f"127.0.0.1:{port}")
        store.write_to_online_store("items", rows(["t"], [now()], n=[9]))
        assert read(store, ["t"]).to_dict()["n"] == [9]
    finally:
        server.stop()


def test_redis_cluster(tmp_path: Path) -> None:
    with RedisClusterServers(3, tmp_path / "cluster") as cluster:
        nodes = cluster.nodes
        store = toy_store(tmp_path / "toy", cluster.connection_string, redis_type="redis_cluster")
        ids = [f"c{i}" for i in range(30)]
        store.write_to_online_store("items", rows(ids, [now()] * 30, n=list(range(30))))
        assert read(store, ids, ["items:n"]).to_dict()["n"] == list(range(30))
        assert sum(len(list(n.client().scan_iter("features:*"))) for n in nodes) == 30
        assert all(list(n.client().scan_iter("features:*")) for n in nodes), "keys spread over the nodes"
        # A row stamped in 2035 is refused on its node; the rows on the other nodes are written.
        with pytest.raises(RowsRefusedError, match="refused 1 row of feature view items"):
            store.write_to_online_store("items", rows(ids[:3], [now(), now().replace(year=2035), now()], n=[100, 101, 102]))
        assert read(store, ids[:3], ["items:n"]).to_dict()["n"] == [100, 1, 102]
        from featurelib.skew import sample_online_entities  # skew-audit's SCAN visits every primary

        assert sorted(sample_online_entities(store, store.get_feature_view("items"), None, 1e6)) == sorted(ids)
        store.teardown()
        assert sum(len(list(n.client().scan_iter("features:*"))) for n in nodes) == 0


def test_redis_sentinel(tmp_path: Path) -> None:
    with RedisServer() as master:
        conf = tmp_path / "sentinel.conf"
        sport = free_port()
        conf.write_text(f"port {sport}\nbind 127.0.0.1\nsentinel monitor toymaster 127.0.0.1 {master.port} 1\n")
        sentinel = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        try:
            _wait_port(sport)
            store = toy_store(tmp_path / "toy", f"127.0.0.1:{sport}", redis_type="redis_sentinel",
                              extra="  sentinel_master: toymaster")
            store.write_to_online_store("items", rows(["s"], [now()], n=[3]))
            assert read(store, ["s"]).to_dict()["n"] == [3]
            assert master.client().hget("features:item:s:items", "n") == b"3"
        finally:
            sentinel.terminate()
            sentinel.wait(10)


def _wait_port(port: int, timeout: float = 10) -> None:
    import time

    from featurelib.redis_server import ping

    deadline = time.monotonic() + timeout
    while not ping("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answers on {port}")
        time.sleep(0.05)



@pytest.mark.parametrize("store_type", ["featurelib.online_store.RedisHashOnlineStore", "redis"])
def test_an_on_demand_view_written_to_the_online_store(tmp_path: Path, server: RedisServer, store_type: str) -> None:
    """``write_to_online_store=True``: ``feast apply`` hands the on-demand view (which has no TTL)
    to the store's ``update``, and its rows are written and read back as with Feast's own store."""
    from feast import Field
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Int64

    store = toy_store(tmp_path / "toy", server.connection_string, store_type=store_type)

    @on_demand_feature_view(entities=[store.get_entity("item")], sources=[store.get_feature_view("items")],
                            schema=[Field(name="n2", dtype=Int64)], mode="python", write_to_online_store=True)
    def doubled(inputs: dict) -> dict:
        return {"n2": [v * 2 for v in inputs["n"]]}

    store.apply([doubled])
    store.write_to_online_store("doubled", rows(["a", "b"], [now(), now()], n=[21, 5]))
    assert read(store, ["a", "b", "c"], ["doubled:n2"]).to_dict() == {"item_id": ["a", "b", "c"], "n2": [42, 10, None]}


@pytest.mark.parametrize("key_ttl", [None, 120])
def test_key_ttl_seconds_sets_how_long_a_hash_lives(tmp_path: Path, server: RedisServer, key_ttl: int | None) -> None:
    """Feast's ``key_ttl_seconds`` is accepted; a hash then lives that long after its row's event time
    (by default: the view TTL plus ``ttl_grace_seconds``, an hour each here)."""
    store = toy_store(tmp_path / "toy", server.connection_string, extra=f"  key_ttl_seconds: {key_ttl}" if key_ttl else "")
    store.write_to_online_store("items", rows(["a"], [now() - timedelta(seconds=10)]))
    life_s = server.client().pttl("features:item:a:items") / 1000
    expected = (key_ttl or TTL.total_seconds() + 3600) - 10
    assert expected - 5 < life_s <= expected
    assert read(store, ["a"], ["items:n"]).to_dict()["n"] == [0]


def test_a_key_prefix_belongs_to_one_project(tmp_path: Path, server: RedisServer) -> None:
    """Keys carry no project: a second project naming the same prefix on the same Redis is refused
    at apply, before it can read or delete the first one's rows; with its own prefix it is fine."""
    from featurelib.errors import KeyPrefixOwnedError

    first = toy_store(tmp_path / "first", server.connection_string, project="first")
    first.write_to_online_store("items", rows(["a"], [now()], n=[1]))
    with pytest.raises(KeyPrefixOwnedError, match="key prefix 'features' on this Redis holds the rows of Feast "
                                                   "project 'first', not 'second'"):
        toy_store(tmp_path / "second", server.connection_string, project="second")
    second = toy_store(tmp_path / "second_own", server.connection_string, project="second", key_prefix="second")
    second.write_to_online_store("items", rows(["a"], [now()], n=[2]))
    assert read(first, ["a"], ["items:n"]).to_dict()["n"] == [1]
    assert read(second, ["a"], ["items:n"]).to_dict()["n"] == [2]
    assert server.client().hgetall(contract.PREFIX_OWNERS_KEY) == {b"features": b"first", b"second": b"second"}
    first.apply([])  # the owner applies again: fine


def test_teardown_removes_every_row_of_the_project_and_releases_the_prefix(tmp_path: Path, server: RedisServer) -> None:
    """Feast hands ``teardown`` only its feature views (not on-demand views written online): every
    hash under the project's prefix goes, and another project may then use the prefix."""
    from feast import FeatureView, Field, PushSource
    from feast.data_source import PushMode
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Int64

    store = toy_store(tmp_path / "toy", server.connection_string)
    items, item = store.get_feature_view("items"), store.get_entity("item")
    pushed = FeatureView(name="pushed", entities=[item], ttl=TTL, schema=[Field(name="n", dtype=Int64)],
                         source=PushSource(name="pushed_source", batch_source=items.batch_source))

    @on_demand_feature_view(entities=[item], sources=[items], schema=[Field(name="n2", dtype=Int64)], mode="python",
                            write_to_online_store=True)
    def doubled(inputs: dict) -> dict:
        return {"n2": [v * 2 for v in inputs["n"]]}

    store.apply([pushed, doubled])
    store.write_to_online_store("items", rows(["a", "b"], [now(), now()]))
    store.push("pushed_source", rows(["c"], [now()], n=[3])[["item_id", "event_timestamp", "n"]], to=PushMode.ONLINE)
    store.write_to_online_store("doubled", rows(["d"], [now()], n=[4]))
    client = server.client()
    assert client.exists("features:item:c:pushed", "features:item:d:doubled") == 2
    assert client.hget(contract.PREFIX_OWNERS_KEY, "features") == b"toy"
    client.set("events:transactions:unrelated", "1")  # outside the prefix: not the project's
    store.teardown()
    assert sorted(client.scan_iter("*")) == [b"events:transactions:unrelated"]
    toy_store(tmp_path / "other", server.connection_string, project="other")  # the prefix is free again


def _online_write(store, view: str, item: str, values: dict) -> None:
    """``online_write_batch`` with ValueProtos as another plugin or a custom job hands them in."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["item_id"], entity_values=[Value(string_val=item)])
    provider = store._get_provider()
    provider.online_write_batch(store.config, store.get_feature_view(view), [(key, values, now(), now())], None)


@pytest.mark.parametrize("store_type", ["featurelib.online_store.RedisHashOnlineStore", "redis"])
def test_values_of_another_kind_are_converted_to_the_declared_type(tmp_path: Path, server: RedisServer,
                                                                    store_type: str) -> None:
    """An ``int32_val`` for an Int64 feature, an integral ``double_val`` for one, an ``int64_val`` for a
    Float64 one and an ``int32_list_val`` for an ``Array(Int64)`` are read back as Feast's own store
    reads them. A value the declared type cannot hold is refused with the feature's name (Feast's
    store keeps it as written)."""
    from feast import FeatureView
    from feast import Field as FeastField
    from feast.protos.feast.types.Value_pb2 import FloatList, Int32List, Value
    from feast.types import Array, Float32, Float64, Int64

    store = toy_store(tmp_path / "toy", server.connection_string, store_type=store_type)
    kinds = FeatureView(name="kinds", entities=[store.get_entity("item")], ttl=TTL,
                        source=store.get_feature_view("items").batch_source,
                        schema=[FeastField(name="lat", dtype=Float32), FeastField(name="ids", dtype=Array(Int64)),
                                FeastField(name="n", dtype=Int64), FeastField(name="x", dtype=Float64)])
    store.apply([kinds])
    _online_write(store, "kinds", "a", {"n": Value(int32_val=7), "x": Value(int64_val=3), "ids": Value(int32_list_val=Int32List(val=[1, 2]))})
    _online_write(store, "kinds", "b", {"n": Value(double_val=5.0), "lat": Value(float_val=1.5)})
    got = read(store, ["a", "b"], ["kinds:n", "kinds:x", "kinds:ids", "kinds:lat"]).to_dict()
    assert got["n"] == [7, 5] and got["x"] == [3.0, None] and got["ids"] == [[1, 2], None] and got["lat"] == [None, 1.5]
    if store_type == "redis":
        return
    _online_write(store, "kinds", "c", {"lat": Value(double_val=1.1), "ids": Value(float_list_val=FloatList(val=[1.0]))})
    got = read(store, ["c"], ["kinds:lat", "kinds:ids"]).to_dict()
    assert got["lat"] == [pytest.approx(1.1)] and got["ids"] == [[1]]
    with pytest.raises(ValueError, match="feature 'n' is declared as int64: a double_val value 2.5 does not fit it"):
        _online_write(store, "kinds", "d", {"n": Value(double_val=2.5)})
    with pytest.raises(ValueError, match="feature 'n' is declared as int64: a string_val value 'x' does not fit it"):
        _online_write(store, "kinds", "d", {"n": Value(string_val="x")})


@pytest.mark.parametrize("store_type", ["featurelib.online_store.RedisHashOnlineStore", "redis"])
def test_each_version_of_a_view_has_its_own_rows(tmp_path: Path, server: RedisServer, store_type: str) -> None:
    """With ``enable_online_feature_view_versioning``, version 2 does not read version 1's rows,
    writing one leaves the other, and deleting version 1 leaves version 2, as in Feast's store."""
    import copy

    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    store = toy_store(tmp_path / "toy", server.connection_string, store_type=store_type, versioning=True)
    online = store._get_provider().online_store
    v1, v2 = copy.copy(store.get_feature_view("items")), copy.copy(store.get_feature_view("items"))
    v1.current_version_number, v2.current_version_number = 1, 2
    key = EntityKey(join_keys=["item_id"], entity_values=[Value(string_val="a")])

    def write(view, n: int) -> None:
        online.online_write_batch(store.config, view, [(key, {"n": Value(int64_val=n)}, now(), now())], None)

    def n_of(view):
        (_, values), = online.online_read(store.config, view, [key], ["n"])
        value = (values or {}).get("n")
        return value.int64_val if value is not None and value.WhichOneof("val") else None

    write(v1, 10)
    assert (n_of(v1), n_of(v2)) == (10, None)
    write(v2, 20)
    assert (n_of(v1), n_of(v2)) == (10, 20)
    online.update(store.config, tables_to_delete=[v1], tables_to_keep=[v2], entities_to_delete=[], entities_to_keep=[],
                  partial=False)
    assert (n_of(v1), n_of(v2)) == (None, 20)
    if store_type != "redis":
        assert sorted(k for k in server.client().scan_iter("features:*")) == [b"features:item:a:items_v2"]


def test_a_map_member_json_cannot_type_back_is_refused_by_name(tmp_path: Path, server: RedisServer) -> None:
    """A ``Map`` holding bytes fails the write naming the feature, and nothing of the row is
    stored (docs/STREAM_CONTRACT.md: untyped members)."""
    from feast import FeatureView
    from feast import Field as FeastField
    from feast.protos.feast.types.Value_pb2 import Map, Value
    from feast.types import Map as MapType

    store = toy_store(tmp_path / "toy", server.connection_string)
    maps = FeatureView(name="maps", entities=[store.get_entity("item")], ttl=TTL,
                       source=store.get_feature_view("items").batch_source, schema=[FeastField(name="attrs", dtype=MapType)])
    store.apply([maps])
    with pytest.raises(ValueError, match="feature 'attrs' \\(MAP\\): a bytes value inside a map"):
        _online_write(store, "maps", "a", {"attrs": Value(map_val=Map(val={"raw": Value(bytes_val=b"x")}))})
    assert not server.client().exists("features:item:a:maps")
    _online_write(store, "maps", "a", {"attrs": Value(map_val=Map(val={"n": Value(int64_val=3)}))})
    assert server.client().hget("features:item:a:maps", "attrs") == b'{"n":3}'
