"""A Redis restarted empty: ``validate`` notices (online coverage), ``restore-online`` puts every key back.

One small repository (its own Feast project and key prefix on the session's private Redis),
applied and materialized as a fresh clone would be. Each test that needs an emptied store
empties it itself (every key under the copy's prefix), as a Redis restarted without
persistence would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from featurelib import contract, duck
from featurelib.coverage import check_coverage, coverage_status, expected_online
from featurelib.feature_data import offline_path
from featurelib.redis_server import free_port
from featurelib.report import FAIL, OK, WARN
from featurelib.restore import count_keys
from featurelib.timeutil import format_us, now_us, to_us
from tests.conftest import TINY, Repo, copy_repo, feature_utils, make_repo, run, set_project

VIEWS = {"card_profile_24h", "device_activity_24h", "session_activity", "transaction_stats_5m", "user_engagement_5m"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Repo:
    path = tmp_path_factory.mktemp("restore")
    copy_repo(path)
    set_project(path, f"restore_{path.name.replace('-', '_')}")
    return make_repo(path, TINY)


def prefix_of(repo: Repo) -> str:
    return repo.store().config.online_store.key_prefix


def online_keys(repo: Repo, redis_server) -> set[str]:
    prefix = prefix_of(repo)
    return {k.decode() for k in redis_server.client().scan_iter(match=contract.scan_pattern(prefix), count=1000)
            if contract.is_key_of(k, prefix)}


def empty_online_store(repo: Repo, redis_server) -> None:
    """What a Redis restarted without persistence leaves of this repository's keys: none."""
    keys = online_keys(repo, redis_server)
    if keys:
        redis_server.client().delete(*keys)
    assert not online_keys(repo, redis_server)


def invoke(repo: Repo, *args: str, env: dict | None = None):
    """``python feature_utils.py ARGS`` in-process (see ``tests.conftest.feature_utils``)."""
    return feature_utils(repo.path, *args, env=env)


def coverage_of(stdout: str) -> dict:
    return next(c for c in json.loads(stdout)["checks"] if c["name"] == "online coverage")


def whole_history_keys(repo: Repo, end_us: int) -> set[str]:
    """The keys a fresh ``feast materialize`` of the whole history up to ``end_us`` writes: one per
    entity with a row at or before ``end_us`` (no row of these one-day data has expired)."""
    store = repo.store()
    prefix = prefix_of(repo)
    keys = set()
    for view in store.list_feature_views():
        assert view.ttl and view.ttl.total_seconds() > 86_400 * TINY.days  # else expiry would drop some
        rows = duck.rows(f"SELECT DISTINCT {', '.join(view.join_keys)} FROM {duck.parquet(offline_path(store, view))} "
                         f"WHERE event_timestamp <= TIMESTAMPTZ '{format_us(end_us)}'")
        keys |= {contract.hash_key(prefix, view.join_keys, r, view.name) for r in rows}
    return keys


def test_coverage_thresholds() -> None:
    assert coverage_status(1000, 1000) == OK
    assert coverage_status(0, 0) == OK
    assert coverage_status(991, 1000) == WARN
    assert coverage_status(990, 1000) == WARN
    assert coverage_status(989, 1000) == FAIL
    assert coverage_status(0, 1000) == FAIL


def test_validate_reports_full_coverage_of_a_materialized_store(repo: Repo) -> None:
    result = invoke(repo, "validate", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    check = coverage_of(result.stdout)
    assert check["status"] == "ok", check
    assert set(check["data"]["views"]) == VIEWS
    for name, view in check["data"]["views"].items():
        assert view["sampled"] == view["present"] == min(view["population"], 1000) > 0, name
        assert view["estimated_missing"] == 0 and view["seconds"] < 5, name
    text = invoke(repo, "validate").stdout
    assert "✅ online coverage" in text and "sampled keys present" in text


def test_coverage_sample_is_deterministic_bounded_and_drawn_from_the_ttl_population(repo: Repo) -> None:
    store = repo.store()
    view = store.get_feature_view("transaction_stats_5m")
    at = now_us()
    sample, population = expected_online(store, view, 10, at)
    assert len(sample) == 10 and expected_online(store, view, 10, at) == (sample, population)
    rows = pd.read_parquet(offline_path(store, view))
    latest = rows[rows.event_timestamp <= pd.Timestamp(at, unit="us", tz="UTC")].groupby("card_id").event_timestamp.max()
    within = latest[latest >= pd.Timestamp(at - int(view.ttl.total_seconds() * 1e6), unit="us", tz="UTC")]
    assert population == len(within) > 10
    assert {s[0] for s in sample} <= set(within.index)
    # An instant long after the data: nobody's latest row is within the 7-day ttl any more.
    assert expected_online(store, view, 10, at + 8 * 86_400 * 1_000_000) == ([], 0)


def test_coverage_counts_and_estimates_missing_keys(repo: Repo, redis_server) -> None:
    store = repo.store()
    view = store.get_feature_view("card_profile_24h")
    sample, population = expected_online(store, view, 1000, now_us())
    assert len(sample) == population  # the whole population is sampled: the estimate is exact
    gone = [contract.hash_key(prefix_of(repo), view.join_keys, values, view.name) for values in sample[:3]]
    saved = {key: (redis_server.client().dump(key), redis_server.client().pttl(key)) for key in gone}
    redis_server.client().delete(*gone)
    try:
        check = check_coverage(store)
        assert check.status == FAIL
        data = check.data["views"]["card_profile_24h"]
        assert (data["present"], data["sampled"], data["estimated_missing"]) == (population - 3, population, 3)
        assert f"3 of {sum(v['sampled'] for v in check.data['views'].values()):,} sampled keys missing" in check.summary
        assert "card_profile_24h" in check.summary and "python feature_utils.py restore-online" in check.summary
        assert all(v["present"] == v["sampled"] for n, v in check.data["views"].items() if n != "card_profile_24h")
    finally:
        for key, (dumped, pttl) in saved.items():
            redis_server.client().restore(key, max(pttl, 0), dumped, replace=True)


def test_an_emptied_store_fails_validate_and_materialize_incremental_does_not_fix_it(repo: Repo, redis_server) -> None:
    empty_online_store(repo, redis_server)
    result = invoke(repo, "validate")
    assert result.returncode == 1, result.stdout
    assert "❌ online coverage" in result.stdout
    assert "sampled keys missing" in result.stdout and "run `python feature_utils.py restore-online`" in result.stdout
    assert "materialize-incremental" not in result.stdout  # the advice that restored 0.85 % of the keys
    # The complaint: the incremental run loads only what changed since the last one.
    run(["feast", "materialize-incremental", pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S")], repo.path)
    after = invoke(repo, "validate", "--json")
    assert after.returncode == 1
    check = coverage_of(after.stdout)
    assert check["status"] == "fail"
    assert sum(v["present"] for v in check["data"]["views"].values()) < 0.5 * sum(
        v["sampled"] for v in check["data"]["views"].values())


def test_restore_online_restores_every_key(repo: Repo, redis_server) -> None:
    empty_online_store(repo, redis_server)
    offline_files = {p: p.stat().st_mtime_ns for p in (repo.path / "data" / "features").glob("*.parquet")}
    result = invoke(repo, "restore-online")
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("keys before:", "recomputing 5 offline feature files", "transaction_stats_5m: materializing",
                 "transaction_stats_5m: 0 -> "):
        assert line in result.stderr  # progress while it works
    assert all(p.stat().st_mtime_ns != mtime for p, mtime in offline_files.items())  # rebuilt from data/raw
    end = re.search(r"rows up to (\S+)\n", result.stdout).group(1)
    table = dict(re.findall(r"^  (\w+) +0 +([\d,]+) +[\d.]+$", result.stdout, re.M))
    assert set(table) == VIEWS, result.stdout  # every view: 0 keys before, the count after

    restored = online_keys(repo, redis_server)
    assert restored == whole_history_keys(repo, to_us(end))
    by_view = {name: sum(contract.parse_key(k).view == name for k in restored) for name in VIEWS}
    assert {name: int(n.replace(",", "")) for name, n in table.items()} == by_view
    assert f"Result: OK (0 keys before, {len(restored):,} after" in result.stdout

    validate = invoke(repo, "validate", "--json")
    assert validate.returncode == 0, validate.stdout
    assert coverage_of(validate.stdout)["status"] == "ok"
    audit = invoke(repo, "skew-audit", "--all", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    audited = json.loads(audit.stdout)
    assert audited["entities"] == by_view
    assert audited["features"] and all(f["mismatches"] == 0 and f["missing"] == 0 for f in audited["features"])


def test_restore_keeps_rows_that_are_newer_online(repo: Repo, redis_server) -> None:
    store = repo.store()
    offline = pd.read_parquet(offline_path(store, store.get_feature_view("transaction_stats_5m")))
    row = offline[(offline.card_id == "card_12345") & (offline.event_timestamp <= pd.Timestamp.now(tz="UTC"))].tail(1).copy()
    row["txn_count_5m"] = 999
    row["event_timestamp"] += pd.Timedelta(microseconds=1)  # what a stream job wrote after the offline files
    store.write_to_online_store("transaction_stats_5m", row)
    key = contract.hash_key(prefix_of(repo), ["card_id"], ["card_12345"], "transaction_stats_5m")
    try:
        result = invoke(repo, "restore-online", "--skip-build")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Result: OK" in result.stdout and "transaction_stats_5m" in result.stdout
        assert redis_server.client().hget(key, "txn_count_5m") == b"999"
    finally:
        redis_server.client().delete(key)


def test_restore_skip_build_keeps_the_offline_files(repo: Repo, redis_server) -> None:
    store = repo.store()
    files = {p: p.stat().st_mtime_ns for p in (repo.path / "data" / "features").glob("*.parquet")}
    view = store.get_feature_view("session_activity")
    client = redis_server.client()
    before = count_keys(client, prefix_of(repo), view.name)
    assert before > 0
    client.delete(*[k for k in online_keys(repo, redis_server) if contract.parse_key(k).view == view.name])
    result = invoke(repo, "restore-online", "--skip-build", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert report["ok"] and not report["built"] and "recomputing" not in result.stderr
    restored = next(v for v in report["views"] if v["view"] == view.name)
    assert (restored["keys_before"], restored["keys_after"], restored["build_seconds"]) == (0, before, None)
    assert online_keys(repo, redis_server) == whole_history_keys(repo, to_us(report["end"]))
    assert report["keys_after"] == len(online_keys(repo, redis_server))


def test_restore_online_errors_are_one_line(repo: Repo, tmp_path: Path) -> None:
    unreachable = invoke(repo, "restore-online", env={"REDIS_CONNECTION_STRING": f"127.0.0.1:{free_port()}"})
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().splitlines() == [unreachable.stderr.strip()]
    assert unreachable.stderr.startswith("Error: cannot reach Redis at 127.0.0.1:")
    raw = repo.path / "data" / "raw"
    hidden = tmp_path / "raw"
    raw.rename(hidden)
    try:
        no_raw = invoke(repo, "restore-online")
        assert no_raw.returncode == 2, no_raw.stdout + no_raw.stderr
        assert no_raw.stderr.strip().splitlines()[-1].startswith("Error: no raw ")
        assert "--skip-build" in no_raw.stderr
    finally:
        hidden.rename(raw)
