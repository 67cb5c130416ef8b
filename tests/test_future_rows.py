"""Rows stamped in the future: the write script refuses them, Feast's writes report them (after
writing every valid row), and reads do not serve a row pinned ahead by an older writer.

All on the private Redis of the session and one module-scoped scratch repository.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import redis
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from featurelib import contract
from featurelib.errors import OperationalError, RowsRefusedError
from featurelib.redis_server import RedisServer
from featurelib.timeutil import to_us
from tests.conftest import Repo

VIEW, PUSH_SOURCE = "transaction_stats_5m", "transaction_stats_push_source"
YEAR_2035 = datetime(2035, 1, 1, tzinfo=timezone.utc)
YEAR_2035_US = to_us(YEAR_2035)


def server_now_us(client: redis.Redis) -> int:
    """The Redis server's clock (``TIME``), µs since the epoch."""
    seconds, micros = client.time()
    return seconds * 1_000_000 + micros


def key_of(store: FeatureStore, card: str) -> str:
    return contract.hash_key(store.config.online_store.key_prefix, ["card_id"], [card], VIEW)


def offline_latest(repo: Repo, until: datetime) -> pd.DataFrame:
    """The latest offline row of every card at ``until``, one row per card, sorted by card."""
    rows = pd.read_parquet(repo.path / "data" / "features" / f"{VIEW}.parquet")
    rows = rows[rows.event_timestamp <= pd.Timestamp(until)]
    return rows.sort_values(["card_id", "event_timestamp"]).groupby("card_id").tail(1).reset_index(drop=True)


def push_rows(repo: Repo, cards: list[str], stamps: list[datetime]) -> pd.DataFrame:
    """A push dataframe: each card's materialized offline row, restamped."""
    latest = offline_latest(repo, repo.materialized_at).set_index("card_id")
    df = latest.loc[cards].reset_index()
    df["event_timestamp"] = pd.to_datetime(stamps, utc=True)
    return df


def pin_in_2035(client: redis.Redis, key: str) -> None:
    """What a writer without the script did: a plain HSET of a whole row stamped 2035-01-01."""
    client.delete(key)
    client.hset(key, mapping={"_event_ts": YEAR_2035_US, "_created_ts": YEAR_2035_US, "txn_count_5m": 999,
                              "velocity_score": "0.5", "is_high_velocity": "true"})


def read_count(store: FeatureStore, card: str) -> tuple[list, list]:
    """``txn_count_5m`` of ``card`` as served, and its statuses."""
    response = store.get_online_features(features=[f"{VIEW}:txn_count_5m"], entity_rows=[{"card_id": card}])
    return response.to_dict()["txn_count_5m"], list(response.proto.results[1].statuses)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def test_the_script_refuses_a_row_a_year_ahead_and_accepts_one_30_s_ahead(redis_server: RedisServer) -> None:
    client = redis_server.client()
    sha = client.script_load(contract.WRITE_SCRIPT)
    key = "futurerows:item:a:items"
    client.delete(key)

    def write(event_us: int | str, n: int) -> list:
        return client.evalsha(sha, 1, key, *contract.write_args(event_us, 0, 0, [("n", str(n))]))

    now_us = server_now_us(client)
    assert write(now_us + 365 * 86_400_000_000, 1) == [contract.REFUSED_FUTURE]
    assert not client.exists(key)
    assert write("soon", 2) == [contract.REFUSED_INVALID]
    assert not client.exists(key)
    assert write(now_us + 30_000_000, 3) == [contract.WRITTEN]
    assert client.hget(key, "n") == b"3"
    # Several rows in one call: each judged on its own, the refused one leaves its key alone.
    other = "futurerows:item:b:items"
    args = [*contract.write_args(now_us + 365 * 86_400_000_000, 0, 0, [("n", "4")]),
            *contract.write_args(now_us, 0, 0, [("n", "5")])]
    assert client.evalsha(sha, 2, key, other, *args) == [contract.REFUSED_FUTURE, contract.WRITTEN]
    assert client.hget(key, "n") == b"3" and client.hget(other, "n") == b"5"


def test_a_row_pinned_in_2035_is_not_served_and_the_next_write_replaces_it(scratch_repo: Repo,
                                                                            redis_server: RedisServer) -> None:
    store, client = scratch_repo.store(), redis_server.client()
    card = "card_12345"
    key = key_of(store, card)
    assert client.exists(key)
    pin_in_2035(client, key)
    assert read_count(store, card) == ([None], [FieldStatus.NOT_FOUND])

    async def read_async() -> dict:
        response = await store.get_online_features_async(features=[f"{VIEW}:txn_count_5m"],
                                                         entity_rows=[{"card_id": card}])
        await store._get_provider().online_store.close()
        return response.to_dict()

    assert asyncio.run(read_async())["txn_count_5m"] == [None]
    stamp = now_utc() - timedelta(seconds=1)
    row = push_rows(scratch_repo, [card], [stamp])
    store.push(PUSH_SOURCE, row, to=PushMode.ONLINE)  # a normal write: the pinned row counts as absent
    assert int(client.hget(key, "_event_ts")) == to_us(stamp)
    assert read_count(store, card) == ([int(row.txn_count_5m[0])], [FieldStatus.PRESENT])


def test_a_row_pinned_in_2035_is_replaced_by_materialization(scratch_repo: Repo, redis_server: RedisServer) -> None:
    store, client = scratch_repo.store(), redis_server.client()
    card = "card_67890"
    key = key_of(store, card)
    pin_in_2035(client, key)
    assert read_count(store, card) == ([None], [FieldStatus.NOT_FOUND])
    end = scratch_repo.materialized_at
    store.materialize(end - timedelta(days=scratch_repo.cfg.days + 2), end, feature_views=[VIEW])
    expected = offline_latest(scratch_repo, end).set_index("card_id").loc[card]
    assert int(client.hget(key, "_event_ts")) == to_us(expected.event_timestamp)
    assert read_count(store, card) == ([int(expected.txn_count_5m)], [FieldStatus.PRESENT])


def _two_cards(repo: Repo, client: redis.Redis, store: FeatureStore) -> list[str]:
    """Two materialized cards no other test of this module writes."""
    cards = [c for c in offline_latest(repo, repo.materialized_at).card_id if c not in ("card_12345", "card_67890")]
    assert client.exists(key_of(store, cards[0])) and client.exists(key_of(store, cards[1]))
    return cards[:2]


def test_a_push_stamped_2035_is_refused_and_the_valid_rows_of_the_push_are_written(scratch_repo: Repo,
                                                                                   redis_server: RedisServer) -> None:
    store, client = scratch_repo.store(), redis_server.client()
    future, valid = _two_cards(scratch_repo, client, store)
    before = client.hgetall(key_of(store, future))
    stamp = now_utc() - timedelta(seconds=1)
    with pytest.raises(RowsRefusedError) as refused:
        store.push(PUSH_SOURCE, push_rows(scratch_repo, [future, valid], [YEAR_2035, stamp]), to=PushMode.ONLINE)
    message = str(refused.value)
    assert message.startswith(f"refused 1 row of feature view {VIEW}")
    assert key_of(store, future) in message and "2035-01-01T00:00:00+00:00" in message
    assert "at most 60 s ahead of the Redis server's clock" in message
    assert isinstance(refused.value, OperationalError) and refused.value.http_status_code() == 422
    assert client.hgetall(key_of(store, future)) == before
    assert int(client.hget(key_of(store, valid), "_event_ts")) == to_us(stamp)


def test_an_async_push_stamped_2035_is_refused_too(scratch_repo: Repo, redis_server: RedisServer) -> None:
    store, client = scratch_repo.store(), redis_server.client()
    future, valid = _two_cards(scratch_repo, client, store)
    before = client.hgetall(key_of(store, future))
    stamp = now_utc() - timedelta(milliseconds=500)

    async def push() -> None:
        try:
            await store.push_async(PUSH_SOURCE, push_rows(scratch_repo, [valid, future], [stamp, YEAR_2035]),
                                   to=PushMode.ONLINE)
        finally:
            await store._get_provider().online_store.close()

    with pytest.raises(RowsRefusedError, match=key_of(store, future)):
        asyncio.run(push())
    assert client.hgetall(key_of(store, future)) == before
    assert int(client.hget(key_of(store, valid), "_event_ts")) == to_us(stamp)


def test_materializing_up_to_tomorrow_refuses_the_rows_ahead_and_writes_the_others(scratch_repo: Repo,
                                                                                  redis_server: RedisServer) -> None:
    """The offline rows include window exits up to a day after the last event: a materialization
    that ends tomorrow must not serve them now."""
    store, client = scratch_repo.store(), redis_server.client()
    end = now_utc() + timedelta(days=1)
    latest = offline_latest(scratch_repo, end)
    before = {card: client.hgetall(key_of(store, card)) for card in latest.card_id}
    start_us = server_now_us(client)
    with pytest.raises(RowsRefusedError) as refused:
        store.materialize(end - timedelta(days=scratch_repo.cfg.days + 3), end, feature_views=[VIEW])
    end_us = server_now_us(client)
    stamps = latest.event_timestamp.map(to_us)
    surely_ahead = int((stamps > end_us + contract.MAX_AHEAD_US).sum())
    assert 0 < surely_ahead <= refused.value.refused <= int((stamps > start_us + contract.MAX_AHEAD_US).sum())
    for card, stamp in zip(latest.card_id, stamps):
        after = client.hgetall(key_of(store, card))
        if stamp > end_us + contract.MAX_AHEAD_US:
            assert after == before[card], card
        elif stamp <= start_us + contract.MAX_AHEAD_US:
            stored = int(before[card][b"_event_ts"]) if before[card] else 0
            assert int(after[b"_event_ts"]) == max(stamp, stored), card
