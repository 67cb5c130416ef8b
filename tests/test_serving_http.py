"""``python feature_utils.py serve`` over real HTTP: Feast's responses, and every bad request a
careless client sends answered with a 4xx naming the field (or a 503 when Redis is gone).

Each row of the bad-request list of the serving issue has a test here. Servers run as
subprocesses against private redis-servers: two gunicorn workers (the default) for the shared server,
one where a test needs only one.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from featurelib import contract
from featurelib.redis_server import RedisServer
from tests.conftest import BIN, Repo, copy_repo, feast_cli, run
from tests.processes import http_server

FRAUD = {"feature_service": "fraud_detection",
         "entities": {"card_id": ["card_12345"], "device_id": ["device_1"], "txn_amount": [120.5],
                      "txn_country": ["US"], "txn_merchant_category": ["grocery"],
                      "txn_unix_us": [1_780_000_000_000_000]}}
SEED = {"features": ["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:velocity_score"],
        "entities": {"card_id": ["card_12345"]}}


def serve_command(*extra: str) -> list[str]:
    return [sys.executable, "feature_utils.py", "serve", *extra]


# Feast orders a view's features through a set, so the order of response columns depends on
# Python's string hashing; both servers get the same seed so their bytes can be compared.
SAME_ORDER = {"PYTHONHASHSEED": "0"}


@pytest.fixture(scope="module")
def server(feature_repo: Repo) -> Iterator[str]:
    with http_server(serve_command(), feature_repo.path, SAME_ORDER) as url:
        yield url


@pytest.fixture(scope="module")
def feast_server(feature_repo: Repo) -> Iterator[str]:
    with http_server([str(BIN / "feast"), "serve", "--workers", "1"], feature_repo.path, SAME_ORDER) as url:
        yield url


def post(url: str, body: dict | bytes | str, timeout: float = 10, **kwargs) -> httpx.Response:
    if isinstance(body, dict):
        return httpx.post(f"{url}/get-online-features", json=body, timeout=timeout, **kwargs)
    return httpx.post(f"{url}/get-online-features", content=body, timeout=timeout,
                      headers={"content-type": "application/json"}, **kwargs)


def _cards(feature_repo: Repo, redis_server, n: int) -> list[str]:
    keys = redis_server.client().scan_iter("features:card:*:card_profile_24h", count=1000)
    return sorted(contract.parse_key(k).entity_ids[0] for k in keys)[:n]


def test_same_bytes_as_feast_serve(server: str, feast_server: str, feature_repo: Repo, redis_server) -> None:
    cards = _cards(feature_repo, redis_server, 5)
    n = len(cards) + 1
    bodies = [
        SEED,
        FRAUD,
        {**SEED, "full_feature_names": True},
        {"feature_service": "personalization", "entities": {"user_id": ["user_1001", "user_x"],
                                                            "session_id": ["session_x", "session_y"]}},
        {"feature_service": "fraud_detection",
         "entities": {"card_id": [*cards, "card_unknown"], "device_id": ["device_1"] * n, "txn_amount": [5.0] * n,
                      "txn_country": ["FR"] * n, "txn_merchant_category": ["crypto"] * n,
                      "txn_unix_us": [1_780_000_000_000_000] * n}},
        {"features": ["card_profile_24h:card_countries_24h", "card_profile_24h:card_amount_std_24h"],
         "entities": {"card_id": [*cards, cards[0]]}},
    ]
    for body in bodies:
        ours, theirs = post(server, body), post(feast_server, body)
        assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
        assert ours.content == theirs.content, body


def test_readme_curl_command(server: str) -> None:
    """The README's curl command, as written, against this server's port."""
    import shutil

    from tests.conftest import ROOT
    from tests.test_readme import blocks, commands

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine; the same request is sent with httpx above")
    (curl,) = [c for b in blocks(ROOT / "README.md", "bash") for c in commands(b) if c.startswith("curl")]
    result = run(["bash", "-c", curl.replace("http://localhost:6566", server)], ROOT)
    by_name = dict(zip(json.loads(result.stdout)["metadata"]["feature_names"], json.loads(result.stdout)["results"]))
    assert by_name["card_id"]["values"] == ["card_12345"]
    assert by_name["txn_count_5m"]["statuses"] == ["PRESENT"]


def test_health_metrics_and_readiness(server: str) -> None:
    assert httpx.get(f"{server}/health").status_code == 200
    ready = httpx.get(f"{server}/ready")
    assert ready.status_code == 200 and ready.json()["redis"] == "ok" and ready.json()["feature_views"] == 5
    post(server, SEED)
    metrics = httpx.get(f"{server}/metrics").text
    assert 'featurelib_serving_request_seconds_count{endpoint="/get-online-features",status="200"}' in metrics


# The bad-request list of the serving issue: (body, status, words the message must contain).
BAD = [
    ("empty feature list", {"features": [], "entities": {"card_id": ["card_1"]}}, 422, "features: give a non-empty"),
    ("no entities", {"features": SEED["features"], "entities": {}}, 422, "no join key given"),
    ("null id", {"features": SEED["features"], "entities": {"card_id": [None]}}, 422,
     "entities.card_id[0]: an id must be a string, got null"),
    ("numeric id", {"features": SEED["features"], "entities": {"card_id": [12345]}}, 422,
     "entities.card_id[0]: an id must be a string, got 12345 (int)"),
    ("wrong join key", {"features": SEED["features"], "entities": {"cardid": ["card_1"]}}, 422,
     "the join key card_id is missing (not join keys or request fields here: cardid)"),
    ("ref without colon", {"features": ["txn_count_5m"], "entities": {"card_id": ["card_1"]}}, 422,
     "features[0]: 'txn_count_5m' is not a feature reference (view:feature)"),
    ("name collision", {"features": [SEED["features"][0]] * 2, "entities": {"card_id": ["card_1"]}}, 422,
     "txn_count_5m"),
    ("NaN", '{"features": ["transaction_stats_5m:txn_count_5m"], "entities": {"card_id": [NaN]}}', 422,
     "the body is not valid JSON: NaN is not valid JSON"),
    ("lone surrogate", '{"features": ["transaction_stats_5m:txn_count_5m"], "entities": {"card_id": ["\\ud800"]}}',
     422, "entities.card_id[0]: not valid Unicode text"),
    ("NaN request value", '{"feature_service": "fraud_detection", "entities": {"card_id": ["c"], "device_id": ["d"],'
     ' "txn_amount": [NaN], "txn_country": ["US"], "txn_merchant_category": ["x"], "txn_unix_us": [1]}}', 422,
     "NaN is not valid JSON"),
    ("string amount", {"feature_service": "fraud_detection",
                       "entities": {**FRAUD["entities"], "txn_amount": ["12.5"]}}, 422,
     "entities.txn_amount[0]: a request value must be a number, got '12.5' (str)"),
    ("missing request field", {"feature_service": "fraud_detection",
                               "entities": {k: v for k, v in FRAUD["entities"].items() if k != "txn_country"}}, 422,
     "request field(s) txn_country are missing"),
    ("ragged entities", {"features": SEED["features"], "entities": {"card_id": ["a", "b"], "device_id": ["d"]}}, 422,
     "every field must have the same number of values"),
    ("entities not lists", {"features": SEED["features"], "entities": {"card_id": "card_1"}}, 422,
     "entities.card_id: expected a list of values"),
    ("not JSON", "features=1", 422, "the body is not valid JSON"),
    ("not an object", "[1, 2]", 422, "the body must be a JSON object"),
    ("unknown view", {"features": ["no_such_view:x"], "entities": {"card_id": ["c"]}}, 404, "no_such_view"),
    ("unknown feature", {"features": ["transaction_stats_5m:nope"], "entities": {"card_id": ["c"]}}, 404, "nope"),
    ("unknown service", {"feature_service": "nope", "entities": {"card_id": ["c"]}}, 404, "nope"),
    ("service and features", {**FRAUD, "features": SEED["features"]}, 422, "not both"),
    ("flag not boolean", {**SEED, "full_feature_names": "yes"}, 422, "full_feature_names: expected true or false"),
]


@pytest.mark.parametrize("case, body, status, words", BAD, ids=[row[0] for row in BAD])
def test_bad_request_is_a_4xx_naming_the_field(server: str, case: str, body, status: int, words: str) -> None:
    response = post(server, body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert words in detail and "\n" not in detail


def test_50000_entity_rows_are_a_413_and_others_are_served_meanwhile(server: str) -> None:
    big = {"features": SEED["features"], "entities": {"card_id": [f"card_{i}" for i in range(50_000)]}}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        large = pool.submit(post, server, big, 30)
        small = [pool.submit(post, server, SEED) for _ in range(20)]
        assert all(f.result().status_code == 200 for f in small)
        response = large.result()
    assert response.status_code == 413
    assert "50000 rows; this server serves at most 1000" in response.json()["detail"]


def test_a_50_mb_body_is_a_413(server: str) -> None:
    body = json.dumps({"features": SEED["features"], "entities": {"card_id": ["x" * 1000] * 50_000}})
    assert len(body) > 50_000_000
    response = post(server, body, timeout=60)
    assert response.status_code == 413
    assert "this server takes at most 1048576" in response.json()["detail"]


def test_an_unparsable_stored_value_is_null_and_counted(server: str, redis_server) -> None:
    client = redis_server.client()
    now_us = int(time.time() * 1_000_000)
    keys = [f"features:card:{card}:transaction_stats_5m" for card in ("card_http_bad", "card_http_good")]
    for key, count in zip(keys, ("abc", "3")):
        client.hset(key, mapping={contract.EVENT_TS: now_us, "txn_count_5m": count, "velocity_score": "0.5"})
    body = {"features": SEED["features"], "entities": {"card_id": ["card_http_bad", "card_http_good"]}}
    try:
        response = post(server, body)
    finally:
        client.delete(*keys)  # the repository is shared by the session's tests
    assert response.status_code == 200, response.text
    by_name = dict(zip(response.json()["metadata"]["feature_names"], response.json()["results"]))
    assert by_name["txn_count_5m"]["values"] == [None, 3]
    assert by_name["txn_count_5m"]["statuses"] == ["NULL_VALUE", "PRESENT"]
    assert by_name["velocity_score"]["values"] == [0.5, 0.5]
    metrics = ""
    for _ in range(4):  # the count lives in the worker that answered; both report through the shared directory
        metrics = httpx.get(f"{server}/metrics").text
        if 'featurelib_serving_decode_errors_total{feature_view="transaction_stats_5m"}' in metrics:
            break
    assert 'featurelib_serving_decode_errors_total{feature_view="transaction_stats_5m"} 1.0' in metrics


def test_writes_are_off_by_default(server: str) -> None:
    for path in ("/push", "/write-to-online-store"):
        response = httpx.post(f"{server}{path}", json={"push_source_name": "x", "df": {"a": [1]}})
        assert response.status_code == 403
        assert "writes are disabled on this server" in response.json()["detail"]
    assert httpx.post(f"{server}/materialize", json={}).status_code == 404


def test_writes_need_the_token_when_allowed(feature_repo: Repo) -> None:
    token = "s3cret-token"
    with http_server(serve_command("--allow-writes", "--workers", "1"), feature_repo.path, {"FEATURE_SERVER_WRITE_TOKEN": token}) as url:
        body = {"feature_view_name": "no_such_view", "df": {"card_id": ["c"]}}
        assert httpx.post(f"{url}/write-to-online-store", json=body).status_code == 401
        wrong = httpx.post(f"{url}/write-to-online-store", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = httpx.post(f"{url}/write-to-online-store", json=body, headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 404 and "no_such_view" in right.json()["detail"]
    result = run([sys.executable, "feature_utils.py", "serve", "--allow-writes"], feature_repo.path, check=False,
                 env={"FEATURE_SERVER_WRITE_TOKEN": ""})
    assert result.returncode == 2 and "FEATURE_SERVER_WRITE_TOKEN" in result.stderr


@pytest.fixture()
def own_redis_server(tmp_path: Path) -> Iterator[tuple[str, RedisServer]]:
    """A server whose Redis the test may stop, hang or kill: an applied copy of the repository
    over an empty private redis-server."""
    repo = copy_repo(tmp_path / "repo")
    redis = RedisServer()
    redis.start()
    env = {"REDIS_CONNECTION_STRING": redis.connection_string}
    try:
        feast_cli(repo, "apply", env=env)
        with http_server(serve_command("--deadline-ms", "800", "--redis-timeout-ms", "300", "--workers", "1"), repo, env) as url:
            yield url, redis
    finally:
        if redis.process is not None and redis.process.poll() is None:
            os.kill(redis.process.pid, signal.SIGCONT)
        redis.stop()


def test_hung_or_dead_redis_is_a_503_within_the_deadline(own_redis_server) -> None:
    url, redis = own_redis_server
    assert post(url, SEED).status_code == 200
    os.kill(redis.process.pid, signal.SIGSTOP)  # hung: connections open, nothing answers
    try:
        started = time.monotonic()
        response = post(url, SEED)
        took = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert "did not answer" in response.json()["detail"]
        assert took < 2.0
        assert httpx.get(f"{url}/health").status_code == 200  # liveness: the process is fine
        assert httpx.get(f"{url}/ready", timeout=5).status_code == 503
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
    assert post(url, SEED).status_code == 200  # recovers once Redis answers again
    redis.stop()
    started = time.monotonic()
    response = post(url, SEED)
    assert response.status_code == 503 and time.monotonic() - started < 2.0
    assert httpx.get(f"{url}/ready").status_code == 503


def test_a_redis_refusing_the_password_is_a_503(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    with RedisServer(extra_args=("--requirepass", "right-password")) as redis:
        good = {"REDIS_CONNECTION_STRING": redis.connection_string, "REDIS_PASSWORD": "right-password"}
        feast_cli(repo, "apply", env=good)
        with http_server(serve_command("--workers", "1"), repo, {**good, "REDIS_PASSWORD": "wrong-password"}) as url:
            response = post(url, SEED)
            assert response.status_code == 503, response.text
            ready = httpx.get(f"{url}/ready")
            assert ready.status_code == 503 and "Redis does not answer PING" in ready.json()["detail"]

