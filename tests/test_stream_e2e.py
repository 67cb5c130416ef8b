"""End to end: events are XADDed, the processor (its documented command) runs, and
``feast serve`` returns the new values over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from featurelib.redis_server import free_port
from featurelib.timeutil import now_us
from tests.conftest import BIN, copy_repo, feast_cli, set_project


def _start(args: list[str], repo: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _poll(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def live(tmp_path: Path, redis_server):
    repo = copy_repo(tmp_path / "repo")
    set_project(repo, "e2e_repo")
    feast_cli(repo, "apply")
    port = free_port()
    serve = _start([str(BIN / "feast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], repo)
    processor = _start([sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), "--lateness", "5"], repo)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200 or None
        except httpx.HTTPError:
            return None

    try:
        _poll(healthy, 90)
        yield repo, url, processor
    finally:
        serve.terminate()
        serve.wait(10)
        if processor.poll() is None:
            processor.kill()


def _online(url: str, card: str) -> dict:
    body = {"features": ["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:amount_sum_5m",
                         "card_profile_24h:card_countries_24h"], "entities": {"card_id": [card]}}
    data = httpx.post(f"{url}/get-online-features", json=body, timeout=5).json()
    return {name: r["values"][0] for name, r in zip(data["metadata"]["feature_names"], data["results"])}


def test_xadd_then_feast_serve_returns_the_new_values(live, redis_server) -> None:
    repo, url, processor = live
    client = redis_server.client()
    txn = {"card_id": "card_e2e", "user_id": "user_e2e", "device_id": "device_e2e", "merchant_id": "merchant_1",
           "merchant_category": "grocery"}
    client.xadd("events:transactions", {**txn, "txn_id": "e2e-1", "country": "US", "amount_cents": "1250",
                                        "event_timestamp": str(now_us())})
    first = _poll(lambda: (v := _online(url, "card_e2e"))["txn_count_5m"] == 1 and v or None)
    assert first["amount_sum_5m"] == 12.5 and first["card_countries_24h"] == ["US"]
    client.xadd("events:transactions", {**txn, "txn_id": "e2e-2", "country": "FR", "amount_cents": "99",
                                        "event_timestamp": str(now_us())})
    second = _poll(lambda: (v := _online(url, "card_e2e"))["txn_count_5m"] == 2 and v or None)
    assert second["amount_sum_5m"] == 13.49 and second["card_countries_24h"] == ["FR", "US"]
    processor.send_signal(signal.SIGTERM)
    assert processor.wait(30) == 0, processor.stderr.read() if processor.stderr else ""
    landed = list((repo / "data" / "raw" / "transactions" / "stream").rglob("*.parquet"))
    assert landed, "events are landed as Parquet before they are acknowledged"
