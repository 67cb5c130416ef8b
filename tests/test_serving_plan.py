"""The compiled read path (``featurelib.serving``) against Feast's own path, on a real Redis.

Feast's path is the online store's ``get_online_features`` (what ``provider: local``
serves); the compiled path is ``ServingProvider``'s. For random requests (feature
subsets, both services, duplicated and unknown entities, rows past their TTL, rows stamped
in the future, hashes missing fields, both entity-row shapes, ``full_feature_names``) the
two responses must be the same proto, field for field, and the same ``to_dict``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from feast.infra.passthrough_provider import PassthroughProvider

from featurelib import contract
from featurelib.errors import BadRequestError
from featurelib.serving.provider import ServingProvider
from featurelib.serving.response import ColumnarOnlineResponse
from tests.conftest import Repo, feast_cli

STORED = {
    "transaction_stats_5m": "card_id",
    "card_profile_24h": "card_id",
    "device_activity_24h": "device_id",
    "user_engagement_5m": "user_id",
    "session_activity": "session_id",
}
ODFV = "transaction_request_features"


@pytest.fixture(scope="module")
def store(feature_repo: Repo):
    return feature_repo.store()


@pytest.fixture(scope="module")
def crafted(store, redis_server) -> Iterator[dict[str, list[str]]]:
    """Rows at the edges, written straight into Redis: past the TTL, stamped in the future,
    missing fields, and present but fresh. Yields the ids of each kind per join key; the rows
    are deleted afterwards (the repository is shared by the session's tests)."""
    client = redis_server.client()
    written: list[str] = []
    now_us = int(time.time() * 1_000_000)
    ids: dict[str, list[str]] = {}
    for view_name, join_key in STORED.items():
        view = store.get_feature_view(view_name)
        ttl_us = int(view.ttl.total_seconds() * 1_000_000)
        fields = {f.name: f.dtype.to_value_type() for f in view.features}
        kind = join_key[:-3]
        for label, event_us, keep in (("stale", now_us - ttl_us - 5_000_000, 1.0),
                                      ("future", now_us + contract.MAX_AHEAD_US + 30_000_000, 1.0),
                                      ("sparse", now_us - 1_000_000, 0.4),
                                      ("fresh", now_us - 2_000_000, 1.0)):
            entity = f"{kind}_edge_{label}"
            mapping = {contract.EVENT_TS: str(event_us), contract.CREATED_TS: str(event_us)}
            rng = random.Random(label + view_name)
            for name, value_type in fields.items():
                if rng.random() > keep:
                    continue
                if value_type.name == "STRING_LIST":
                    mapping[name] = '["US","FR"]'
                elif value_type.name == "BOOL":
                    mapping[name] = rng.choice(["true", "false"])
                elif value_type.name == "INT64":
                    mapping[name] = str(rng.randint(0, 1000))
                else:
                    mapping[name] = repr(rng.uniform(0, 500))
            written.append(f"features:{kind}:{entity}:{view_name}")
            client.hset(written[-1], mapping=mapping)
            ids.setdefault(join_key, []).append(entity)
    try:
        yield ids
    finally:
        client.delete(*written)


_POOLS: dict[str, list[str]] = {}


def _ids(store, redis_server, crafted, join_key: str, rng: random.Random, n: int) -> list[str]:
    kind = join_key[:-3]
    if join_key not in _POOLS:
        real = sorted({contract.parse_key(k).entity_ids[0] for k in
                       redis_server.client().scan_iter(f"features:{kind}:*", count=1000)} - set(crafted[join_key]))
        _POOLS[join_key] = real[:200] + crafted[join_key] + [f"{kind}_never_seen"]
    return [rng.choice(_POOLS[join_key]) for _ in range(n)]


def _random_request(store, redis_server, crafted, rng: random.Random):
    full = rng.random() < 0.3
    if rng.random() < 0.25:
        service = store.get_feature_service(rng.choice(["fraud_detection", "personalization"]))
        features = service
        views = {p.name for p in service.feature_view_projections}
        with_odfv = ODFV in views
    else:
        refs = []
        for view_name in STORED:
            if rng.random() < 0.5:
                names = [f.name for f in store.get_feature_view(view_name).features]
                refs += [f"{view_name}:{f}" for f in rng.sample(names, rng.randint(1, len(names)))]
        with_odfv = not full and rng.random() < 0.4
        if with_odfv:
            names = [f.name for f in store.get_on_demand_feature_view(ODFV).features]
            refs += [f"{ODFV}:{f}" for f in rng.sample(names, rng.randint(1, len(names)))]
        if not refs:
            refs = ["transaction_stats_5m:txn_count_5m"]
        features = refs
        views = {r.split(":")[0] for r in refs}
    if with_odfv:
        full = False
    n = rng.choice([1, 1, 3, 10, 40])
    keys = set()
    if with_odfv:
        keys |= {"card_id", "device_id"}
    for view_name in views & set(STORED):
        keys.add(STORED[view_name])
    if with_odfv or (not isinstance(features, list)):
        keys |= {STORED[v] for v in views & set(STORED)}
    rows = {k: _ids(store, redis_server, crafted, k, rng, n) for k in sorted(keys)}
    if with_odfv:
        rows["txn_amount"] = [round(rng.uniform(1, 900), 2) for _ in range(n)]
        rows["txn_country"] = [rng.choice(["US", "FR", "BR"]) for _ in range(n)]
        rows["txn_merchant_category"] = [rng.choice(["grocery", "crypto", "travel"]) for _ in range(n)]
        rows["txn_unix_us"] = [int(time.time() * 1_000_000) for _ in range(n)]
    as_dicts = rng.random() < 0.3
    entity_rows = [dict(zip(rows, values)) for values in zip(*rows.values())] if as_dicts else rows
    return features, entity_rows, full


def test_compiled_path_gives_feasts_response_on_random_requests(store, redis_server, crafted) -> None:
    provider = store._get_provider()
    assert isinstance(provider, ServingProvider)
    rng = random.Random(20261129)
    compiled = 0
    for _ in range(150):
        features, entity_rows, full = _random_request(store, redis_server, crafted, rng)
        args = dict(config=store.config, features=features, entity_rows=entity_rows, registry=store.registry,
                    project=store.project, full_feature_names=full)
        ours = provider.get_online_features(**args)
        theirs = PassthroughProvider.get_online_features(provider, **args)
        compiled += isinstance(ours, ColumnarOnlineResponse)
        assert ours.to_dict(include_event_timestamps=True) == theirs.to_dict(include_event_timestamps=True), features
        assert ours.proto == theirs.proto, features
    assert compiled == 150


@pytest.mark.parametrize("entities, message", [
    ({}, "no join key given"),
    ({"card_id": []}, "no entity rows"),
    ({"card_id": [None]}, "entities.card_id[0]: an id must be a string, got null"),
    ({"card_id": [12345]}, "entities.card_id[0]: an id must be a string, got 12345 (int)"),
    ({"cardid": ["card_1"]}, "the join key card_id is missing (not join keys or request fields here: cardid)"),
    ({"card_id": ["card_1", "card_2"], "device_id": ["d"]}, "every field must have the same number of values"),
    ({"card_id": ["\ud800"]}, "entities.card_id[0]: not valid Unicode text"),
])
def test_bad_entity_rows_are_bad_request_errors(store, entities, message) -> None:
    with pytest.raises(BadRequestError, match=None) as info:
        store.get_online_features(features=["transaction_stats_5m:txn_count_5m"], entity_rows=entities)
    assert message in str(info.value)


def test_a_value_that_does_not_parse_is_null_with_its_own_status(store, redis_server) -> None:
    client = redis_server.client()
    now_us = int(time.time() * 1_000_000)
    keys = [f"features:card:{card}:transaction_stats_5m" for card in ("card_bad_value", "card_good_value")]
    for key, count in zip(keys, ("abc", "7")):
        client.hset(key, mapping={contract.EVENT_TS: now_us - 1_000_000, "txn_count_5m": count, "amount_sum_5m": "12.5"})
    try:
        response = store.get_online_features(
            features=["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:amount_sum_5m"],
            entity_rows={"card_id": ["card_bad_value", "card_good_value"]})
    finally:
        client.delete(*keys)  # the repository is shared by the session's tests
    assert response.to_dict()["txn_count_5m"] == [None, 7]
    assert response.to_dict()["amount_sum_5m"] == [12.5, 12.5]
    statuses = {name: list(vector.statuses) for name, vector in
                zip(response.proto.metadata.feature_names.val, response.proto.results)}
    assert statuses["txn_count_5m"] == [2, 1]  # NULL_VALUE, PRESENT
    assert statuses["amount_sum_5m"] == [1, 1]


def test_the_feature_service_resolves_once_per_registry_version(store) -> None:
    provider = store._get_provider()
    service = store.get_feature_service("fraud_detection")
    first = provider.compiled(store.config, service, store.registry, store.project, False)
    assert first is provider.compiled(store.config, service, store.registry, store.project, False)
    store.refresh_registry()
    assert first is not provider.compiled(store.config, service, store.registry, store.project, False)


def test_a_hung_redis_fails_an_sdk_read_within_the_socket_timeout(tmp_path) -> None:
    """``socket_timeout_seconds`` bounds an SDK read: a stopped (SIGSTOP) Redis raises
    ``StoreUnavailableError`` instead of hanging the caller."""
    import os
    import signal

    from featurelib.errors import StoreUnavailableError
    from featurelib.redis_server import RedisServer
    from featurelib.repo import load_store
    from tests.conftest import copy_repo
    from tests.processes import private_redis

    repo = copy_repo(tmp_path / "repo")
    yaml = repo / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace("  type: featurelib.online_store.RedisHashOnlineStore",
                                             "  type: featurelib.online_store.RedisHashOnlineStore\n"
                                             "  socket_timeout_seconds: 0.3"))
    with RedisServer() as redis, private_redis(redis):
        feast_cli(repo, "apply")
        store = load_store(repo)
        features = ["transaction_stats_5m:txn_count_5m"]
        assert store.get_online_features(features, {"card_id": ["c"]}).to_dict()["txn_count_5m"] == [None]
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="did not answer"):
                store.get_online_features(features, {"card_id": ["c"]})
            assert time.monotonic() - started < 2.0
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        assert store.get_online_features(features, {"card_id": ["c"]}).to_dict()["txn_count_5m"] == [None]
