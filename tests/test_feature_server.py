"""``feast serve`` over real HTTP: the seed README's curl request, and bad requests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BIN, Repo
from tests.processes import http_server

SEED_BODY = {
    "features": ["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:velocity_score"],
    "entities": {"card_id": ["card_12345"]},
}


@pytest.fixture(scope="module")
def server(feature_repo: Repo) -> Iterator[str]:
    with http_server([str(BIN / "feast"), "serve", "--workers", "1"], feature_repo.path) as url:
        yield url


def test_seed_curl_request_returns_values_for_card_12345(server: str, feature_repo: Repo) -> None:
    response = httpx.post(f"{server}/get-online-features", json=SEED_BODY, timeout=10)
    assert response.status_code == 200
    body = response.json()
    names = body["metadata"]["feature_names"]
    assert sorted(names) == ["card_id", "txn_count_5m", "velocity_score"]
    by_name = dict(zip(names, body["results"]))
    assert by_name["card_id"]["values"] == ["card_12345"]
    assert by_name["txn_count_5m"]["statuses"] == ["PRESENT"]
    sdk = feature_repo.store().get_online_features(features=SEED_BODY["features"], entity_rows=[{"card_id": "card_12345"}]).to_dict()
    assert by_name["txn_count_5m"]["values"] == sdk["txn_count_5m"]
    assert by_name["velocity_score"]["values"] == sdk["velocity_score"]


def test_feature_service_over_http(server: str) -> None:
    body = {"feature_service": "personalization", "entities": {"user_id": ["user_1001"], "session_id": ["session_x"]}}
    response = httpx.post(f"{server}/get-online-features", json=body, timeout=10)
    assert response.status_code == 200
    names = response.json()["metadata"]["feature_names"]
    assert "engagement_score" in names and "session_page_views" in names


def test_unknown_feature_view_is_a_404_with_a_message(server: str) -> None:
    body = {"features": ["no_such_view:txn_count_5m"], "entities": {"card_id": ["card_12345"]}}
    response = httpx.post(f"{server}/get-online-features", json=body, timeout=10)
    assert response.status_code == 404
    assert "no_such_view" in response.text


def test_malformed_request_is_a_422(server: str) -> None:
    response = httpx.post(f"{server}/get-online-features", json={"features": "not a list"}, timeout=10)
    assert response.status_code == 422


def test_unknown_feature_of_a_known_view_is_a_4xx_with_a_message(server: str) -> None:
    body = {"features": ["transaction_stats_5m:no_such_feature"], "entities": {"card_id": ["card_12345"]}}
    response = httpx.post(f"{server}/get-online-features", json=body, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert "no_such_feature" in response.text


def test_a_push_stamped_2035_is_a_422_and_the_stored_row_is_intact(server: str, feature_repo: Repo, redis_server) -> None:
    """The card's materialized row, restamped 2035-01-01, pushed over HTTP: refused by the write
    script (more than 60 s ahead of the Redis server's clock), answered 422 with the reason."""
    import json

    import pandas as pd

    key = "features:card:card_12345:transaction_stats_5m"
    client = redis_server.client()
    before = client.hgetall(key)
    assert before
    offline = pd.read_parquet(feature_repo.path / "data/features/transaction_stats_5m.parquet")
    row = offline[(offline.card_id == "card_12345") & (offline.event_timestamp <= pd.Timestamp(feature_repo.materialized_at))]
    record = json.loads(row.tail(1).to_json(orient="records"))[0]  # NaN -> null
    record["event_timestamp"] = "2035-01-01T00:00:00+00:00"
    body = {"push_source_name": "transaction_stats_push_source", "df": {k: [v] for k, v in record.items()}, "to": "online"}
    response = httpx.post(f"{server}/push", json=body, timeout=30)
    assert response.status_code == 422, response.text
    assert "refused 1 row of feature view transaction_stats_5m" in response.text
    assert key in response.text and "2035-01-01T00:00:00+00:00" in response.text
    assert "at most 60 s ahead of the Redis server's clock" in response.text
    assert client.hgetall(key) == before


def test_readme_curl_command(server: str) -> None:
    """The README's curl command, as written, against this server's port."""
    import json
    import shutil

    from tests.conftest import ROOT, run
    from tests.test_readme import blocks, commands

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine; the request itself is tested above with httpx")
    (curl,) = [c for b in blocks(ROOT / "README.md", "bash") for c in commands(b) if c.startswith("curl")]
    result = run(["bash", "-c", curl.replace("http://localhost:6566", server)], ROOT)
    body = json.loads(result.stdout)
    by_name = dict(zip(body["metadata"]["feature_names"], body["results"]))
    assert by_name["card_id"]["values"] == ["card_12345"]
    assert by_name["txn_count_5m"]["statuses"] == ["PRESENT"]
