"""``feature_utils.py`` as users run it: reports, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from featurelib.feature_data import offline_path
from featurelib.redis_server import free_port
from tests.conftest import ROOT, Repo, copy_repo, feast_cli, feature_utils, run

CLI = [sys.executable, "feature_utils.py"]


def entry_point(repo: Path, *args: str, env: dict | None = None):
    """``python feature_utils.py ARGS`` as a real subprocess: the entry point itself."""
    return run([*CLI, *args], repo, check=False, env=env)


def cli(repo: Path, *args: str, env: dict | None = None):
    """The same command in-process (see ``tests.conftest.feature_utils``)."""
    return feature_utils(repo, *args, env=env)


def one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_reads_like_documentation(feature_repo: Repo) -> None:
    out = entry_point(feature_repo.path, "--help").stdout
    for command in ("validate", "validate-pit", "docs"):
        assert command in out
    assert "REDIS_CONNECTION_STRING" in out
    assert "Checks, in order" in cli(feature_repo.path, "validate", "--help").stdout


def test_validate_passes_on_a_healthy_repo(feature_repo: Repo) -> None:
    result = cli(feature_repo.path, "validate")
    assert result.returncode == 0, result.stdout
    for check in ("registry", "redis", "definitions", "offline sources", "online data"):
        assert f"✅ {check}" in result.stdout
    assert "answers PING in" in result.stdout


def test_validate_json(feature_repo: Repo) -> None:
    report = json.loads(cli(feature_repo.path, "validate", "--json").stdout)
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["redis"]["data"]["rtt_ms"] > 0
    assert checks["definitions"]["data"]["drift"] == []
    assert set(checks["online data"]["data"]["views"]) == {
        "transaction_stats_5m", "card_profile_24h", "device_activity_24h", "user_engagement_5m", "session_activity"}


def _an_entity(repo: Repo, view: str) -> str:
    store = repo.store()
    fv = store.get_feature_view(view)
    return duckdb.execute(f"SELECT {fv.join_keys[0]} FROM read_parquet('{offline_path(store, fv).as_posix()}') "
                          "WHERE event_timestamp <= ? ORDER BY event_timestamp DESC LIMIT 1",
                          [pd.Timestamp(repo.materialized_at)]).fetchone()[0]


@pytest.mark.parametrize(("entity_type", "view"), [("card", "transaction_stats_5m"), ("user", "user_engagement_5m"),
                                                   ("device", "device_activity_24h"), ("session", "session_activity")])
def test_validate_pit_passes_for_every_entity_type(feature_repo: Repo, entity_type: str, view: str) -> None:
    entity_id = "card_12345" if entity_type == "card" else _an_entity(feature_repo, view)
    result = cli(feature_repo.path, "validate-pit", "--entity-id", entity_id, "--entity-type", entity_type, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["views"]
    assert all(v["status"] == "match" and v["features"] for v in report["views"])


def test_validate_pit_text_report(feature_repo: Repo) -> None:
    result = cli(feature_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card")
    assert result.returncode == 0
    assert "✅ transaction_stats_5m: match" in result.stdout and "13 features identical" in result.stdout


def test_validate_pit_catches_a_corrupted_online_value(scratch_repo: Repo) -> None:
    assert cli(scratch_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card").returncode == 0
    store = scratch_repo.store()
    offline = pd.read_parquet(scratch_repo.path / "data/features/transaction_stats_5m.parquet")
    row = offline[(offline.card_id == "card_12345") & (offline.event_timestamp <= pd.Timestamp(scratch_repo.materialized_at))].tail(1)
    corrupted = row.copy()
    corrupted["txn_count_5m"] = 999
    corrupted["event_timestamp"] += pd.Timedelta(microseconds=1)  # the store keeps the newer write
    store.write_to_online_store("transaction_stats_5m", corrupted)
    result = cli(scratch_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card")
    assert result.returncode == 1
    assert "❌ transaction_stats_5m: mismatch" in result.stdout
    assert f"txn_count_5m: online 999 != offline {row.txn_count_5m.iloc[0]}" in result.stdout
    assert "✅ card_profile_24h: match" in result.stdout


def test_validate_pit_restricted_to_features(feature_repo: Repo) -> None:
    report = json.loads(cli(feature_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card",
                            "--feature", "txn_count_5m", "--feature", "card_profile_24h:last_txn_unix_us", "--json").stdout)
    assert {v["view"]: [f["feature"] for f in v["features"]] for v in report["views"]} == {
        "transaction_stats_5m": ["txn_count_5m"], "card_profile_24h": ["last_txn_unix_us"]}


def test_unknown_entity_type(feature_repo: Repo) -> None:
    one_line_error(entry_point(feature_repo.path, "validate-pit", "--entity-id", "x", "--entity-type", "merchant"),
                   "unknown entity type 'merchant'", "card, device, session, user")


def test_unknown_entity_id(feature_repo: Repo) -> None:
    one_line_error(cli(feature_repo.path, "validate-pit", "--entity-id", "test_card", "--entity-type", "card"),
                   "unknown card_id 'test_card'")


def test_unknown_feature(feature_repo: Repo) -> None:
    one_line_error(cli(feature_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card",
                       "--feature", "no_such_feature"), "unknown feature 'no_such_feature'")


def test_missing_registry(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    one_line_error(entry_point(repo, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card"),
                   "registry not found", "feast apply")
    one_line_error(cli(repo, "docs"), "registry not found")
    result = cli(repo, "validate")
    assert result.returncode == 1 and "❌ registry" in result.stdout


def test_unreachable_redis(feature_repo: Repo) -> None:
    env = {"REDIS_CONNECTION_STRING": f"127.0.0.1:{free_port()}"}
    one_line_error(cli(feature_repo.path, "validate-pit", "--entity-id", "card_12345", "--entity-type", "card", env=env),
                   "cannot reach Redis at 127.0.0.1:")
    result = cli(feature_repo.path, "validate", env=env)
    assert result.returncode == 1
    assert "❌ redis" in result.stdout and "✅ registry" in result.stdout


def test_validate_reports_drift_between_code_and_registry(scratch_repo: Repo, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(scratch_repo.path, repo, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "data_sources.py").write_text((ROOT / "data_sources.py").read_text())  # absolute paths point at the copy
    views = repo / "feature_views.py"
    views.write_text(views.read_text().replace("Transactions of the card in the last 5 minutes",
                                               "Card transactions in the last 5 minutes"))
    result = cli(repo, "validate", "--json")
    assert result.returncode == 1
    drift = {d["name"]: d for d in next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "definitions")["data"]["drift"]}
    assert drift["transaction_stats_5m"]["change"] == "UPDATE"
    assert "features" in drift["transaction_stats_5m"]["properties"]


def test_docs_output_equals_the_committed_file(feature_repo: Repo, tmp_path: Path) -> None:
    out = tmp_path / "FEATURES.md"
    result = cli(feature_repo.path, "docs", "--output-file", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text() == (ROOT / "docs" / "FEATURES.md").read_text(), \
        "docs/FEATURES.md is stale: run `python feature_utils.py docs --output-file docs/FEATURES.md`"
    text = out.read_text()
    for needle in ("`txn_count_5m` | Int64 | transactions | 5m", "### `fraud_detection`", "`amount_vs_avg_5m_ratio`"):
        assert needle in text


def test_validate_checks_the_stream_contract(scratch_repo: Repo, redis_server) -> None:
    store = scratch_repo.store()
    prefix = store.config.online_store.key_prefix
    client = redis_server.client()
    good = json.loads(cli(scratch_repo.path, "validate", "--json").stdout)
    contract_check = next(c for c in good["checks"] if c["name"] == "stream contract")
    assert contract_check["status"] == "ok" and contract_check["data"]["transaction_stats_5m"]["sampled"] > 0
    key = next(iter(client.scan_iter(f"{prefix}:card:*:transaction_stats_5m")))
    saved = client.hgetall(key), client.pttl(key)
    try:
        client.hset(key, mapping={"bogus_field": "1", "txn_count_5m": "many", "_event_ts": "2051222400000000"})
        client.persist(key)
        client.hset(f"{prefix}:card:card_x:retired_view", mapping={"_event_ts": "1", "a": "1"})
        result = cli(scratch_repo.path, "validate", "--json")
        assert result.returncode == 1
        problems = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "stream contract")["data"]["problems"]
        text = "\n".join(problems)
        assert "unknown field 'bogus_field'" in text
        assert "txn_count_5m='many' is not a valid INT64" in text
        assert "no TTL" in text
        assert "_event_ts 2035-01-01T00:00:00.000000Z is more than 60 s ahead" in text
        assert "'retired_view', which is not a registered feature view" in text
    finally:
        client.delete(key, f"{prefix}:card:card_x:retired_view")
        client.hset(key, mapping=saved[0])
        client.pexpire(key, saved[1])


def test_validate_on_a_repository_without_data_says_how_to_make_it(tmp_path: Path) -> None:
    """A fresh clone, applied but with no data yet (the design spec's quick start): both failing
    checks say which command produces what they miss."""
    from tests.conftest import set_project

    repo = copy_repo(tmp_path / "fresh")
    set_project(repo, "fresh_clone")
    feast_cli(repo, "apply")
    result = cli(repo, "validate")
    assert result.returncode == 1
    assert "❌ offline sources  no feature data yet: `make demo` computes it (or `python -m featurelib.generate` then " \
           "`python -m featurelib.batch`)" in result.stdout
    assert "❌ online data      nothing to load for card_profile_24h, device_activity_24h, session_activity, " \
           "transaction_stats_5m, user_engagement_5m: compute the features first" in result.stdout


def test_feast_runs_from_another_directory_with_chdir(feature_repo: Repo, tmp_path: Path) -> None:
    """The README's way to run `feast` from elsewhere (`feast -c <repo>`) finds the registry; the way
    it warns against (`FEAST_FS_YAML_FILE_PATH` alone) really does not."""
    listed = run(["feast", "-c", str(feature_repo.path), "feature-views", "list"], tmp_path)
    assert all(view in listed.stdout for view in ("transaction_stats_5m", "card_profile_24h", "session_activity"))
    env = {"FEAST_FS_YAML_FILE_PATH": str(feature_repo.path / "feature_store.yaml")}
    other = run(["feast", "feature-views", "list"], tmp_path, env=env, check=False)
    assert "transaction_stats_5m" not in other.stdout


def test_feast_apply_of_a_second_project_on_the_same_key_prefix_is_one_line(feature_repo: Repo, tmp_path: Path) -> None:
    """The shared repository's project owns the prefix `features` on the session's Redis. (Feast's
    own warnings about the copy's missing data files come first on stderr.)"""
    repo = copy_repo(tmp_path / "intruder")
    yaml = repo / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace("project: realtime_features", "project: intruder"))
    result = run(["feast", "apply"], repo, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: key prefix 'features' on this Redis holds the rows of Feast project 'realtime_features', not "
        "'intruder': give 'intruder' its own online_store.key_prefix in feature_store.yaml")


def test_every_command_finds_the_repository_one_way(tmp_path: Path, monkeypatch) -> None:
    """``--repo`` first, then ``FEAST_REPO``, then the current directory when it holds a
    ``feature_store.yaml``, else this checkout (``paths.repo_option``, used by every command)."""
    import click
    from click.testing import CliRunner

    from featurelib import paths

    @click.command()
    @paths.repo_option("Feature repository.")
    def show(repo: Path) -> None:
        click.echo(repo)

    other, here = tmp_path / "other", tmp_path / "here"
    here.mkdir()
    (here / "feature_store.yaml").write_text("project: x\n")
    monkeypatch.chdir(here)
    monkeypatch.delenv("FEAST_REPO", raising=False)
    runner = CliRunner()
    assert runner.invoke(show, ["--repo", str(other)]).output.strip() == str(other)
    assert runner.invoke(show, [], env={"FEAST_REPO": str(other)}).output.strip() == str(other)
    assert Path(runner.invoke(show, []).output.strip()).resolve() == here.resolve()
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(show, []).output.strip() == str(paths.REPO_ROOT)


def test_the_featurelib_command_groups_the_jobs() -> None:
    """``featurelib`` (installed with the package; ``python -m featurelib``) lists the jobs, each
    with the shared ``--repo`` option, and is installed next to the venv's Python."""
    from click.testing import CliRunner

    from featurelib.__main__ import COMMANDS, cli

    runner = CliRunner()
    listing = runner.invoke(cli, ["--help"])
    assert listing.exit_code == 0 and all(name in listing.output for name in ("generate", "batch", "stream", "demo"))
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "--repo" in result.output or name == "stream"
    assert "--repo" in runner.invoke(cli, ["stream", "run", "--help"]).output
    assert Path(sys.executable).with_name("featurelib").exists()
