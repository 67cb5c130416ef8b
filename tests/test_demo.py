"""`make demo`'s job (``python -m featurelib.demo``) end to end, twice (the second after a stream
replay's leftovers), on a private copy."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurelib.redis_server import RedisServer, free_port
from tests.conftest import copy_repo, run, set_project


def _counts(repo: Path) -> dict[str, int]:
    files = sorted((repo / "data").rglob("*.parquet"))
    return {str(p.relative_to(repo)): pq.ParquetFile(p).metadata.num_rows for p in files}


@pytest.mark.slow
def test_demo_starts_redis_if_needed_and_runs_twice_without_duplicating_data(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    set_project(repo, "demo_repo")
    port = free_port()  # nothing listens here: the demo must start its own redis-server
    env = {"REDIS_CONNECTION_STRING": f"localhost:{port}"}
    args = [sys.executable, "-m", "featurelib.demo", "--repo", str(repo), "--cards", "200", "--days", "2"]
    server = RedisServer(port, workdir=repo / "data" / "redis", daemon=True)
    try:
        first = run(args, repo, timeout=600, env=env)
        assert f"Nothing answered at localhost:{port}: started a private redis-server" in first.stdout
        for step in ("feast apply", "feast materialize-incremental", "Fraud features:", "Training frame",
                     "Result: OK", "Demo finished", "Try next", "python feature_utils.py serve", "feast ui"):
            assert step in first.stdout, step
        assert "'card_id': ['card_12345']" in first.stdout
        counts = _counts(repo)
        keys = server.client().dbsize()
        assert keys > 0
        # Durable, as the stream processor needs: an append-only file, flushed every second.
        config = server.client().config_get("append*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
        # What the README's stream replay leaves behind: landed and quarantined events, an event
        # stream with its consumer group, a processor's lease.
        generated = repo / "data/raw/transactions/generated.parquet"
        landed = repo / "data/raw/transactions/stream/2026-11-29/part-0-0.parquet"
        landed.parent.mkdir(parents=True)
        pq.write_table(pq.read_table(generated).slice(0, 10), landed)
        (repo / "data/quarantine/transactions").mkdir(parents=True)
        pq.write_table(pq.read_table(generated).slice(0, 1), repo / "data/quarantine/transactions/invalid-0.parquet")
        client = server.client()
        client.xadd("events:transactions", {"event_id": "x"})
        client.xgroup_create("events:transactions", "featurelib", id="0")
        client.set("{events:transactions}:lease:featurelib", "someone", px=60_000)
        second = run(args, repo, timeout=600, env=env)
        assert f"Redis answers at localhost:{port}" in second.stdout
        assert "Removed an earlier stream replay: 2 directories of landed or quarantined events, 2 Redis key(s)" \
            in second.stdout
        assert "feast teardown" in second.stdout and "Result: OK" in second.stdout
        again = _counts(repo)
        # Replaced, not appended: the same files with about as many rows. The generator follows the
        # hour of day, so regenerating a minute later may move a few events across the window's ends.
        assert again.keys() == counts.keys(), "a second run must replace, not append"
        assert all(abs(again[f] - counts[f]) <= max(10, counts[f] // 100) for f in counts), (again, counts)
        assert not client.exists("events:transactions", "{events:transactions}:lease:featurelib")
        assert abs(client.dbsize() - keys) <= max(10, keys // 100)
    finally:
        server.stop()  # the demo's server is a daemon: stop it by its pid file
