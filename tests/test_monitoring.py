"""quality, freshness, drift, skew-audit and spec: data built to pass, then data built to fail.

One applied and materialized repository (three days of events, its own key prefix); each
failure case changes the offline Parquet or an online hash, checks that the right command
catches it with the right exit code, and restores what it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featurelib.generate import GeneratorConfig
from featurelib.quality import Expectation, expectations_of
from featurelib.timeutil import DAY, SECOND, now_us
from tests.conftest import Repo, copy_repo, feature_utils, make_repo, set_project


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Repo:
    path = copy_repo(tmp_path_factory.mktemp("monitor"))
    set_project(path, "monitor_repo")
    return make_repo(path, GeneratorConfig(n_cards=300, days=3, seed=21, end_us=now_us() // SECOND * SECOND))


def cli(repo: Repo, *args: str):
    result = feature_utils(repo.path, *args)
    return result, (json.loads(result.stdout) if "--json" in args and result.stdout.strip().startswith("{") else None)


@contextmanager
def rewritten(path: Path, change) -> Iterator[None]:
    """Rewrite a Parquet file with ``change(table) -> table``; put the original back afterwards."""
    original = path.read_bytes()
    table = pq.read_table(path)
    try:
        pq.write_table(change(table), path)
        yield
    finally:
        path.write_bytes(original)


def _set(table: pa.Table, column: str, rows: np.ndarray, value) -> pa.Table:
    values = table.column(column).to_pylist()
    for i in rows:
        values[int(i)] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))


def _recent_rows(table: pa.Table, n: int) -> np.ndarray:
    t = table.column("event_timestamp").cast(pa.int64()).to_numpy()
    return np.flatnonzero((t > now_us() - DAY) & (t <= now_us()))[:n]


def test_expectations_are_declared_and_read() -> None:
    import feature_views

    e = {x.feature: x for x in expectations_of(feature_views.transaction_stats_5m_fv)}
    assert e["is_weekend"].allowed == ("0", "1") and e["is_weekend"].describe() == "in {0, 1}"
    assert e["velocity_score"].describe() == "in [0, 1]; nulls <= 0%"
    assert e["amount_avg_5m"].describe() == ">= 0"
    assert Expectation("v", "f", min=0, max=1).violates(1.5) and not Expectation("v", "f", min=0, max=1).violates(1.0)
    assert Expectation("v", "f", allowed=("0", "1")).violates(7) and not Expectation("v", "f", allowed=("0", "1")).violates(1)


@pytest.mark.parametrize(("reference", "recent", "expected"), [
    ([90, 10], [90, 10], 0.0),
    ([90, 10], [50, 50], (0.5 - 0.9) * np.log(0.5 / 0.9) + (0.5 - 0.1) * np.log(0.5 / 0.1)),
    ([100, 0], [99, 1], (0.99 - 1.0) * np.log(0.99 / 1.0) + (0.01 - 1e-4) * np.log(0.01 / 1e-4)),  # share floored
])
def test_psi_follows_its_formula(reference: list[int], recent: list[int], expected: float) -> None:
    from featurelib.drift import psi

    assert psi(np.array(reference), np.array(recent)) == pytest.approx(expected, abs=1e-12)


def test_psi_keeps_a_bin_per_value_of_a_mostly_constant_feature() -> None:
    """A count that is mostly 0: its deciles are all 0, and the bins must still separate 0 from 1."""
    from featurelib.drift import compare

    kind, value, *_ = compare(pa.array([0] * 950 + [1] * 50), pa.array([0] * 500 + [1] * 500))
    assert kind == "numeric" and value > 1.0


def test_drift_window_samples_after_filtering(repo: Repo) -> None:
    """The reservoir sample is drawn from the window's rows, not from the whole file."""
    from featurelib import duck
    from featurelib.drift import _window

    store = repo.store()
    view = store.get_feature_view("user_engagement_5m")
    start, end = now_us() - 6 * 3600 * SECOND, now_us()
    path = repo.path / "data/features/user_engagement_5m.parquet"
    in_window = duck.one(f"SELECT count(*) FROM {duck.parquet(path)} WHERE event_timestamp >= make_timestamptz({start}) "
                         f"AND event_timestamp <= make_timestamptz({end})")[0]
    total = pq.ParquetFile(path).metadata.num_rows
    limit = in_window // 2
    assert total > 4 * in_window > 0
    assert _window(store, view, start, end, limit).num_rows == limit
    assert _window(store, view, start, end, total).num_rows == in_window


def test_skew_report_with_nothing_compared_fails() -> None:
    from featurelib.skew import FeatureSkew, SkewReport

    report = SkewReport({"a": 0, "b": 3}, 0.0, [FeatureSkew("a", "x", 0, 0, 0, 0), FeatureSkew("b", "y", 3, 0, 0, 0)])
    assert report.empty_views == ["a"] and not report.ok and "a: no online entity to compare" in report.render()
    assert SkewReport({"b": 3}, 0.0, [FeatureSkew("b", "y", 3, 0, 0, 0)]).ok


def test_drift_test_counts_entities_not_rows() -> None:
    """30 entities a side from one distribution, each repeated in 100 rows: counted as 3,000
    independent rows the KS test calls the sampling noise significant; counted as 30 entities
    it does not. A real shift of the same data is flagged either way."""
    from featurelib.drift import compare, effective_size

    rng = np.random.default_rng(0)
    keys = pa.array([f"e{i}" for i in range(30) for _ in range(100)])
    a, b = (pa.array(np.repeat(rng.normal(size=30), 100)) for _ in range(2))
    assert effective_size(keys, a) == 30
    assert effective_size(keys, pa.array([None] * 100 + a.to_pylist()[100:])) == 29  # entities with a value
    *_, p_rows, flags_rows = compare(a, b)
    *_, p_entities, flags_entities = compare(a, b, (30, 30))
    assert flags_rows and p_rows < 1e-3 and not flags_entities and p_entities > 1e-3
    shifted = pa.array(np.asarray(b) + 3.0)
    assert compare(a, shifted, (30, 30))[-1]


NOW = 1_795_000_000 * SECOND


@pytest.mark.parametrize(("text", "expected"), [
    ("7d..1d", (NOW - 7 * DAY, NOW - DAY)),
    ("90s..now", (NOW - 90 * SECOND, NOW)),
    ("1.5d..0", (NOW - 36 * 3600 * SECOND, NOW)),
    ("2026-11-01T00:00:00Z..2026-11-02", (1_793_491_200 * SECOND, 1_793_577_600 * SECOND)),  # naive: UTC
])
def test_time_ranges(text: str, expected: tuple[int, int]) -> None:
    from featurelib.timeutil import parse_range

    assert parse_range(text, now=NOW) == expected


@pytest.mark.parametrize(("text", "message"), [("yesterday", "not a range"), ("1d..7d", "empty range"),
                                               ("3x..now", "not a time")])
def test_bad_time_ranges(text: str, message: str) -> None:
    from featurelib.timeutil import parse_range

    with pytest.raises(ValueError, match=message):
        parse_range(text, now=NOW)


@pytest.mark.parametrize(("expectation", "value", "violates"), [
    (Expectation("v", "f", min=0, max=1), float("nan"), False),  # NaN is a null, counted against max_null_share
    (Expectation("v", "f", min=0, max=1), 1.5, True),
    (Expectation("v", "f", allowed=("0", "1"), kind="int"), 1.0, False),  # numeric features compare as numbers
    (Expectation("v", "f", allowed=("0", "1"), kind="int"), 7, True),
    (Expectation("v", "f", allowed=("true", "false"), kind="bool"), True, False),
    (Expectation("v", "f", allowed=("a", "b"), kind="string"), "c", True),
])
def test_expectation_violations(expectation: Expectation, value, violates: bool) -> None:
    assert expectation.violates(value) is violates


def test_offline_quality_counts_nan_as_null(tmp_path: Path) -> None:
    """The SQL side agrees with ``violates``: NaN is a null, never a violation of a bound."""
    from featurelib import duck
    from featurelib.quality import _null_sql, _violation_sql

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [0.5, float("nan"), None, 2.0, -1.0]}), path)
    e = Expectation("v", "x", min=0, max=1, kind="float")
    nulls, bad = duck.one(f"SELECT count(*) FILTER (WHERE {_null_sql('x', e)}), "
                          f"count(*) FILTER (WHERE {_violation_sql('x', e)}) FROM {duck.parquet(path)}")
    assert (nulls, bad) == (2, 2)
    allowed = Expectation("v", "x", allowed=("0", "1"), kind="float")
    pq.write_table(pa.table({"x": [0.0, 1.0, 1.0, 7.0]}), path)
    assert duck.one(f"SELECT count(*) FILTER (WHERE {_violation_sql('x', allowed)}) FROM {duck.parquet(path)}")[0] == 1


def test_quality_passes_on_generated_data(repo: Repo) -> None:
    result, report = cli(repo, "quality", "--range", "3d..now", "--json")
    assert result.returncode == 0, result.stdout
    assert report["ok"] and len(report["results"]) == 2 * 42  # every feature, offline and online
    assert all(r["violations"] == 0 for r in report["results"])


def test_quality_catches_out_of_range_offline_values(repo: Repo) -> None:
    path = repo.path / "data/features/transaction_stats_5m.parquet"

    def corrupt(table: pa.Table) -> pa.Table:
        rows = _recent_rows(table, 8)
        return _set(_set(table, "amount_avg_5m", rows[:5], -1.0), "is_weekend", rows[5:], 7)

    with rewritten(path, corrupt):
        result, report = cli(repo, "quality", "--range", "1d..now", "--offline-only", "--json")
        text, _ = cli(repo, "quality", "--range", "1d..now", "--offline-only")
    assert result.returncode == 1
    failed = {r["feature"]: r for r in report["results"] if r["failed"]}
    assert set(failed) == {"amount_avg_5m", "is_weekend"}
    assert failed["amount_avg_5m"]["violations"] == 5 and failed["is_weekend"]["violations"] == 3
    assert len(failed["amount_avg_5m"]["examples"]) == 3 and "-1.0" in failed["amount_avg_5m"]["examples"][0]
    assert "❌ offline transaction_stats_5m:is_weekend expects in {0, 1}: 3 of" in text.stdout
    # A threshold above the share of bad rows lets it pass.
    with rewritten(path, corrupt):
        result, _ = cli(repo, "quality", "--range", "1d..now", "--offline-only", "--max-violations", "0.5")
    assert result.returncode == 0


def test_quality_catches_a_corrupted_online_value(repo: Repo, redis_server) -> None:
    from featurelib.feature_data import recent_entities

    store = repo.store()
    user = recent_entities(store, store.get_feature_view("user_engagement_5m"), 1)[0]
    key = f"monitor_repo:user:{user}:user_engagement_5m"
    client = redis_server.client()
    saved = client.hget(key, "avg_scroll_depth")
    try:
        client.hset(key, "avg_scroll_depth", "1.7")
        result, report = cli(repo, "quality", "--view", "user_engagement_5m", "--json")
    finally:
        client.hset(key, "avg_scroll_depth", saved) if saved is not None else client.hdel(key, "avg_scroll_depth")
    assert result.returncode == 1
    (bad,) = [r for r in report["results"] if r["failed"]]
    assert (bad["source"], bad["feature"], bad["violations"]) == ("online", "avg_scroll_depth", 1)
    assert bad["examples"] == [f"{user}: 1.7"]


def test_freshness_passes_and_catches_a_stale_view(repo: Repo, redis_server) -> None:
    result, report = cli(repo, "freshness", "--json")
    assert result.returncode == 0, result.stdout
    assert {v["view"]: v["max_age_s"] for v in report["views"]}["session_activity"] == 86400

    path = repo.path / "data/features/session_activity.parquet"
    stale = str(now_us() - 3 * DAY).encode()
    with rewritten(path, lambda t: t.replace_schema_metadata({b"featurelib.max_event_us": stale})):
        result, report = cli(repo, "freshness", "--json")
    assert result.returncode == 1
    assert {v["view"]: v["stale"] for v in report["views"] if v["stale"]} == {"session_activity": ["offline"]}
    assert len(report["hints"]) == 1 and "python -m featurelib.batch" in report["hints"][0]

    store = repo.store()
    client = redis_server.client()
    keys = list(client.scan_iter("monitor_repo:*:*:device_activity_24h"))
    saved = [(k, client.hgetall(k), client.pttl(k)) for k in keys]
    try:
        store._get_provider().online_store.delete_view(store.config, "device_activity_24h")
        result, report = cli(repo, "freshness", "--json")
    finally:
        for k, fields, ttl in saved:
            client.hset(k, mapping=fields)
            client.pexpire(k, ttl)
    assert result.returncode == 1
    assert {v["view"]: v["stale"] for v in report["views"] if v["stale"]} == {"device_activity_24h": ["online"]}
    assert len(report["hints"]) == 1 and "feast materialize-incremental" in report["hints"][0]


def test_a_stale_report_says_what_brings_each_kind_up_to_date() -> None:
    from featurelib.freshness import FreshnessReport, ViewFreshness

    fresh = FreshnessReport("now", [ViewFreshness("a", 600, 10, 10, [])])
    assert fresh.hints == [] and "hint" not in fresh.render()
    stale = FreshnessReport("now", [ViewFreshness("a", 600, 10, 900, ["online"]),
                                    ViewFreshness("b", 600, 900, 900, ["offline", "online"])])
    text = stale.render()
    assert "  hint: offline: " in text and "  hint: online: " in text and "python -m featurelib.stream run" in text


def test_drift_passes_on_stationary_data_and_flags_a_shift(repo: Repo) -> None:
    # Transaction views: thousands of rows a day in this small data set. (Session features of
    # ~200 sessions a day, each contributing many correlated rows, vary more from day to day.)
    views = ("--view", "transaction_stats_5m", "--view", "card_profile_24h", "--view", "device_activity_24h")
    args = ("drift", "--reference", "2d..1d", "--recent", "1d..now", *views, "--json")
    result, report = cli(repo, *args)
    assert result.returncode == 0, [(f["feature"], f["psi"]) for f in report["features"] if f["flagged"]]
    assert {f["feature"] for f in report["features"]} >= {"amount_sum_5m", "velocity_score", "is_high_velocity"}
    assert "last_txn_unix_us" not in {f["feature"] for f in report["features"]}  # tagged monitor.drift: skip

    path = repo.path / "data/features/transaction_stats_5m.parquet"

    def shift(table: pa.Table) -> pa.Table:
        t = table.column("event_timestamp").cast(pa.int64())
        recent = pc.greater(t, now_us() - DAY)
        for col in ("amount_sum_5m", "amount_avg_5m", "amount_max_5m"):
            table = table.set_column(table.schema.get_field_index(col), col,
                                     pc.if_else(recent, pc.multiply(table.column(col), 4.0), table.column(col)))
        return table

    with rewritten(path, shift):
        result, report = cli(repo, *args)
    assert result.returncode == 1
    flagged = {f["feature"]: f for f in report["features"] if f["flagged"]}
    assert {"amount_avg_5m", "amount_max_5m"} <= set(flagged)
    assert flagged["amount_avg_5m"]["psi"] > 0.2 and flagged["amount_avg_5m"]["test"] == "KS"
    plot = Path(flagged["amount_avg_5m"]["plot"])
    assert plot.exists() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert flagged["amount_avg_5m"]["recent_profile"]["mean"] > 3 * flagged["amount_avg_5m"]["reference_profile"]["mean"]


def test_drift_against_a_training_set(repo: Repo, tmp_path: Path) -> None:
    """A training set whose card_amount_avg_24h is 5,000 USD higher than what is online now is flagged.

    A 24-hour view, not a 5-minute one: at 'now' almost every 5-minute window online is past
    its last event and null, so a 5-minute feature's comparison would be about null shares only."""
    rows = pq.read_table(repo.path / "data/features/card_profile_24h.parquet")
    rows = rows.filter(pc.less_equal(rows.column("event_timestamp").cast(pa.int64()), now_us()))
    pq.write_table(rows, tmp_path / "training.parquet")
    shifted = rows.set_column(rows.schema.get_field_index("card_amount_avg_24h"), "card_amount_avg_24h",
                              pc.add(rows.column("card_amount_avg_24h"), 5000.0))
    pq.write_table(shifted, tmp_path / "shifted.parquet")
    _, plain = cli(repo, "drift", "--training-set", str(tmp_path / "training.parquet"), "--online-sample", "100", "--json")
    result, moved = cli(repo, "drift", "--training-set", str(tmp_path / "shifted.parquet"), "--online-sample", "100", "--json")
    before = next(r for r in plain["features"] if r["feature"] == "card_amount_avg_24h")
    after = next(r for r in moved["features"] if r["feature"] == "card_amount_avg_24h")
    assert result.returncode == 1 and after["flagged"] and after["test"] == "KS"
    assert after["statistic"] > 0.9 > before["statistic"] and after["psi"] > before["psi"]
    assert after["reference_profile"]["min_val"] >= 5000 > after["recent_profile"]["max_val"]
    assert {r["view"] for r in plain["features"]} == {"card_profile_24h"}


def test_drift_of_a_training_set_against_served_features(repo: Repo, tmp_path: Path) -> None:
    """--served: two halves of one training_frame agree; amounts four times larger do not."""
    from featurelib.training import training_frame, transaction_labels

    store = repo.store()
    labels = transaction_labels(repo.path / "data/raw", since=None)
    labels = labels[labels.event_timestamp.astype("int64") // 1000 <= now_us()]
    frame = training_frame(store, labels, store.get_feature_service("fraud_detection"))
    rng = np.random.default_rng(3)
    half = rng.random(len(frame)) < 0.5
    frame[half].to_parquet(tmp_path / "training.parquet")
    frame[~half].to_parquet(tmp_path / "served.parquet")
    moved = frame[~half].copy()
    moved["card_amount_avg_24h"] *= 4
    moved.to_parquet(tmp_path / "moved.parquet")
    args = ("drift", "--training-set", str(tmp_path / "training.parquet"), "--json")
    same, report = cli(repo, *args, "--served", str(tmp_path / "served.parquet"))
    assert same.returncode == 0, same.stdout
    assert {"transaction_stats_5m", "card_profile_24h", "device_activity_24h"} == {f["view"] for f in report["features"]}
    assert all(f["flagged"] is False for f in report["features"])
    shifted, report = cli(repo, *args, "--served", str(tmp_path / "moved.parquet"))
    assert shifted.returncode == 1
    assert [f["feature"] for f in report["features"] if f["flagged"]] == ["card_amount_avg_24h"]


def test_skew_audit_passes_and_catches_a_corrupted_online_value(repo: Repo, redis_server) -> None:
    result, report = cli(repo, "skew-audit", "--all", "--json")
    assert result.returncode == 0, result.stdout
    assert sum(report["entities"].values()) > 300 and all(f["compared"] > 0 for f in report["features"])
    client = redis_server.client()
    key = next(iter(client.scan_iter("monitor_repo:card:*:transaction_stats_5m")))
    saved = client.hget(key, "txn_count_24h")
    try:
        client.hset(key, "txn_count_24h", "999")
        result, report = cli(repo, "skew-audit", "--all", "--view", "transaction_stats_5m", "--json")
        text, _ = cli(repo, "skew-audit", "--all", "--view", "transaction_stats_5m")
    finally:
        client.hset(key, "txn_count_24h", saved)
    assert result.returncode == 1
    (bad,) = [f for f in report["features"] if f["failed"]]
    assert bad["feature"] == "txn_count_24h" and bad["mismatches"] == 1 and bad["missing"] == bad["extra"] == 0
    card = key.decode().split(":")[2]
    assert bad["largest"][0].startswith(f"{card}: online 999, offline ")
    assert "❌ transaction_stats_5m:txn_count_24h" in text.stdout


def test_spec_describes_a_service_and_its_hash_follows_the_definitions(repo: Repo) -> None:
    result, _ = cli(repo, "spec", "--feature-service", "fraud_detection")
    spec = json.loads(result.stdout)
    assert len(spec["features"]) == 13 + 7 + 6 + 5
    velocity = next(f for f in spec["features"] if f["name"] == "velocity_score")
    assert velocity == {"name": "velocity_score", "ref": "transaction_stats_5m:velocity_score", "view": "transaction_stats_5m",
                        "type": "Float64", "description": velocity["description"], "unit": "score in [0, 1)",
                        "window": "5m and 24h", "expectations": "in [0, 1]; nulls <= 0%"}
    assert {s["view"] for s in spec["sources"]} == {"transaction_stats_5m", "card_profile_24h", "device_activity_24h",
                                                    "transaction_request_features"}
    again = json.loads(cli(repo, "spec", "--feature-service", "fraud_detection", "--json")[0].stdout)
    assert again == spec  # --json, as every command takes it, changes nothing: the spec is JSON

    from featurelib.spec import service_spec

    store = repo.store()
    view = store.get_feature_view("transaction_stats_5m")
    view.description = view.description + " (changed)"
    store.apply([view])
    try:
        assert service_spec(store, "fraud_detection")["definitions_sha256"] != spec["definitions_sha256"]
    finally:
        view.description = view.description.removesuffix(" (changed)")
        store.apply([view])
    assert service_spec(repo.store(), "fraud_detection")["definitions_sha256"] == spec["definitions_sha256"]


@pytest.mark.parametrize(("args", "message"), [
    (("spec", "--feature-service", "nope"), "unknown feature service 'nope'"),
    (("drift", "--reference", "1d..7d"), "--reference: empty range"),
    (("quality", "--range", "yesterday"), "--range: not a range"),
    (("quality", "--view", "nope"), "unknown feature view 'nope'"),
    (("drift", "--served", "feature_store.yaml"), "--served compares with a training set"),
])
def test_bad_input(repo: Repo, args: tuple[str, ...], message: str) -> None:
    result, _ = cli(repo, *args)
    assert result.returncode == 2 and result.stderr.strip().startswith("Error: ") and message in result.stderr
