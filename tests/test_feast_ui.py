"""``feast ui``, Feast's registry browser, starts from the requirements and serves this registry."""

from __future__ import annotations

import httpx

from tests.conftest import BIN, Repo
from tests.processes import http_server


def test_feast_ui_serves_the_registry(feature_repo: Repo) -> None:
    with http_server([str(BIN / "feast"), "ui"], feature_repo.path) as url:
        views = httpx.get(f"{url}/api/v1/feature_views", params={"project": "realtime_features"}, timeout=30)
        assert views.status_code == 200, views.text
        names = {v["spec"]["name"] for v in views.json()["featureViews"]}
        assert names == {"transaction_stats_5m", "card_profile_24h", "device_activity_24h", "user_engagement_5m",
                         "session_activity", "transaction_request_features"}  # the on-demand view too
        assert httpx.get(url, timeout=30).status_code == 200  # the browser's page
