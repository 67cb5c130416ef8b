"""The whole store on a Redis Cluster of 3 masters (private redis-servers): materialize, reads
through the SDK and ``feast serve`` over HTTP, ``validate``, ``skew-audit --all``, and the stream
processor over partitioned streams spread over the masters.

The repository copy sets ``redis_type: redis_cluster`` and ``REDIS_CONNECTION_STRING`` lists the
three nodes, as a production deployment would (README, "Production deployment").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from featurelib.generate import GeneratorConfig, generate
from featurelib.redis_server import RedisClusterServers
from featurelib.stream.events import STREAMS
from featurelib.stream.partitions import lanes
from featurelib.stream.replay import replay
from featurelib.timeutil import SECOND, now_us
from tests.conftest import BIN, TINY, Repo, copy_repo, feast_cli, feature_utils, make_repo, run, set_project
from tests.processes import assert_online_equals_batch_per_partition, http_server, landed_ids

CARDS = ["card_10000", "card_10001", "card_10002", "card_10003", "card_10004", "card_10005"]
FEATURES = ["transaction_stats_5m:txn_count_24h", "transaction_stats_5m:amount_sum_5m",
            "card_profile_24h:card_amount_avg_24h", "card_profile_24h:card_countries_24h"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    with RedisClusterServers(3, tmp_path_factory.mktemp("cluster")) as servers:
        yield servers


def _on_cluster(path: Path, project: str) -> Path:
    """A repository copy with its own project and key prefix, on ``redis_type: redis_cluster``."""
    copy_repo(path)
    set_project(path, project)
    yaml = path / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace(f"  key_prefix: {project}", f"  key_prefix: {project}\n  redis_type: redis_cluster"))
    return path


@pytest.fixture(scope="module")
def cluster_repo(tmp_path_factory: pytest.TempPathFactory, cluster: RedisClusterServers) -> Iterator[Repo]:
    path = _on_cluster(tmp_path_factory.mktemp("cluster_repo"), "cluster_repo")
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


def test_partitioned_stream_processor_on_the_cluster(cluster: RedisClusterServers, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Events replayed into 4 partitions per family (16 streams over the 3 masters), one processor
    consuming them all: every event landed once, every online value equals the batch job's."""
    from redis.cluster import RedisCluster

    monkeypatch.setenv("REDIS_CONNECTION_STRING", cluster.connection_string)
    repo = _on_cluster(tmp_path / "repo", "cluster_stream")
    feast_cli(repo, "apply")
    source = tmp_path / "events"  # ending an hour ago: every row stays within its view's ttl
    generate(GeneratorConfig(n_cards=150, days=0.5, seed=23, end_us=now_us() // SECOND * SECOND - 3600 * SECOND), source)
    client = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        sent = replay(client, source, partitions=4)
        streams = [lane.stream for lane in lanes(STREAMS, 4)]
        masters = {client.get_node_from_key(key).port for key in streams}
        assert len(streams) == 16 and len(masters) == 3, masters
        run([sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), "--partitions", "4",
             "--clock", "event", "--lateness", "0", "--until-idle", "3"], repo, timeout=300)
        assert all(client.xpending(key, "featurelib")["pending"] == 0 for key in streams)
    finally:
        client.close()
    landed = {kind: landed_ids(repo, kind) for kind in STREAMS}
    assert sum(len(ids) for ids in landed.values()) == sent
    assert all(len(set(ids)) == len(ids) for ids in landed.values())
    assert assert_online_equals_batch_per_partition(repo, 4) > 100
