"""The whole store on a Redis Cluster of 3 masters (private redis-servers): materialize, reads
through the SDK and ``feast serve`` over HTTP, ``validate`` and ``skew-audit --all``.

The repository copy sets ``redis_type: redis_cluster`` and ``REDIS_CONNECTION_STRING`` lists the
three nodes, as a production deployment would (README, "Production deployment").
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from featurelib.redis_server import RedisClusterServers
from tests.conftest import BIN, TINY, Repo, copy_repo, feature_utils, make_repo, set_project
from tests.processes import http_server

CARDS = ["card_10000", "card_10001", "card_10002", "card_10003", "card_10004", "card_10005"]
FEATURES = ["transaction_stats_5m:txn_count_24h", "transaction_stats_5m:amount_sum_5m",
            "card_profile_24h:card_amount_avg_24h", "card_profile_24h:card_countries_24h"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    with RedisClusterServers(3, tmp_path_factory.mktemp("cluster")) as servers:
        yield servers


@pytest.fixture(scope="module")
def cluster_repo(tmp_path_factory: pytest.TempPathFactory, cluster: RedisClusterServers) -> Iterator[Repo]:
    path = copy_repo(tmp_path_factory.mktemp("cluster_repo"))
    set_project(path, "cluster_repo")
    yaml = path / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace("  key_prefix: cluster_repo", "  key_prefix: cluster_repo\n  redis_type: redis_cluster"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REDIS_CONNECTION_STRING", cluster.connection_string)
        yield make_repo(path, TINY)


def _env(cluster: RedisClusterServers) -> dict:
    return {"REDIS_CONNECTION_STRING": cluster.connection_string}


def test_materialized_rows_spread_over_every_master(cluster_repo: Repo, cluster: RedisClusterServers) -> None:
    per_node = [len(list(node.client().scan_iter("cluster_repo:*", count=1000))) for node in cluster.nodes]
    assert all(n > 0 for n in per_node), per_node
    assert sum(per_node) > 100


def test_sdk_and_feast_serve_read_the_same_values(cluster_repo: Repo, cluster: RedisClusterServers) -> None:
    sdk = cluster_repo.store().get_online_features(features=FEATURES, entity_rows=[{"card_id": c} for c in CARDS]).to_dict()
    assert any(v is not None for v in sdk["txn_count_24h"])
    with http_server([str(BIN / "feast"), "serve", "--workers", "1"], cluster_repo.path, env=_env(cluster)) as url:
        reply = httpx.post(f"{url}/get-online-features", json={"features": FEATURES, "entities": {"card_id": CARDS}},
                           timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    names = body["metadata"]["feature_names"]
    served = {name: result["values"] for name, result in zip(names, body["results"])}
    for ref in FEATURES:
        name = ref.split(":")[1]
        assert served[name] == sdk[name], name


def test_validate_and_skew_audit_pass_on_the_cluster(cluster_repo: Repo, cluster: RedisClusterServers) -> None:
    validate = feature_utils(cluster_repo.path, "validate", "--json", env=_env(cluster))
    report = json.loads(validate.stdout)
    assert validate.returncode == 0 and report["ok"], [c for c in report["checks"] if c["status"] != "ok"]
    assert {c["name"]: c["status"] for c in report["checks"]}["stream contract"] == "ok"
    audit = feature_utils(cluster_repo.path, "skew-audit", "--all", "--json", env=_env(cluster))
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
    audited = json.loads(audit.stdout)
    assert sum(audited["entities"].values()) > 100 and all(f["compared"] > 0 for f in audited["features"])


def test_keys_live_where_the_cluster_routes_them(cluster_repo: Repo, cluster: RedisClusterServers) -> None:
    """Every key sits on the master that owns its hash slot (nothing written around the cluster)."""
    from redis.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for node in cluster.nodes:
            for key in list(node.client().scan_iter("cluster_repo:*", count=1000))[:50]:
                owner = client.get_node_from_key(key)
                assert owner.port == node.port, key
    finally:
        client.close()
