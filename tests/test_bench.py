"""The benchmark script runs (a small size; the README's figures come from the full run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run


@pytest.mark.slow
def test_backfill_benchmark_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/backfill.py", "--sizes", "20000", "--out", str(tmp_path)], ROOT, timeout=600)
    rows = json.loads((tmp_path / "backfill.json").read_text())
    assert {(r["input"], r["workers"]) for r in rows} == {("transactions", 1), ("transactions", 2), ("clickstream", 1)}
    assert all(r["events"] > 0 and r["events_per_second"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert "| transactions |" in (tmp_path / "backfill.md").read_text()


@pytest.mark.slow
def test_online_store_stream_and_race_benchmarks_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/online_store.py", "--cards", "200", "--reads", "20", "--out", str(tmp_path)], ROOT, timeout=900)
    online = json.loads((tmp_path / "online_store.json").read_text())
    assert set(online["writes"]) == {"this store", "Feast redis"}
    assert online["reads"]["store_read_1"]["raw floor (redis-py HMGET pipeline)"]["p50_ms"] > 0
    for variant, name, processes in (([], "stream", 1), (["--per-stream"], "stream_per_stream", 2),
                                     (["--pacing", "shaped"], "stream_shaped", 1)):
        run([sys.executable, "bench/stream.py", "--cards", "200", "--days", "1", "--seconds", "3", "--rate", "200",
             "--warmup", "6", *variant, "--out", str(tmp_path)], ROOT, timeout=900)
        stream = json.loads((tmp_path / f"{name}.json").read_text())
        assert stream["throughput"]["events"] > 0 and stream["latency"]["events"] > 0 and stream["latency"]["p99_ms"] > 0
        assert stream["latency"]["processes"] == len(stream["latency"]["processor_reports"]) == processes
        assert stream["latency"]["pacing"] == ("shaped" if "shaped" in name else "steady")
        assert stream["floor"]["events"] == stream["latency"]["events"] and stream["floor"]["p99_ms"] > 0
    run([sys.executable, "bench/race.py", "--rounds", "1", "--out", str(tmp_path)], ROOT, timeout=900)
    race = json.loads((tmp_path / "race.json").read_text())
    assert race["this store"][0]["keys_left_with_an_older_row"] == 0


@pytest.mark.slow
def test_fault_benchmark_small(tmp_path: Path) -> None:
    """One processor kill and one redis-server kill during a small replay: nothing lost or
    landed twice, and every entity's online row equals the batch recomputation."""
    run([sys.executable, "bench/faults.py", "--cards", "300", "--days", "1", "--processor-kills", "1",
         "--redis-kills", "1", "--chunk", "500", "--max-backlog", "500", "--out", str(tmp_path)], ROOT, timeout=300)
    result = json.loads((tmp_path / "faults.json").read_text())
    events, online = result["events"], result["online_vs_batch"]
    assert [f["kind"] for f in result["faults"]] == ["processor", "redis"]
    assert result["reconnects"] >= 1 and result["final_exit_code"] == 0 and not result["unexpected_exits"]
    assert events["data_set"] > 2_000 and events["produced"] == events["data_set"] == events["landed"]
    assert events["lost"] == 0 and events["duplicated"] == 0
    assert online["entities_checked"] > 500
    assert online["mismatching_entities"] == 0 and online["missing_online"] == 0
    assert result["targets_met"]
    assert "| lost (produced, neither landed nor quarantined) | 0 | 0 |" in (tmp_path / "faults.md").read_text()


@pytest.mark.slow
def test_serving_benchmark_small(tmp_path: Path) -> None:
    """SDK, serial HTTP and loaded HTTP for this repo, stock Feast and the floor: every setup answers,
    with the same values."""
    run([sys.executable, "bench/serving.py", "--cards", "200", "--reads", "20", "--duration", "1", "--long-requests", "200",
         "--out", str(tmp_path)], ROOT, timeout=300)
    result = json.loads((tmp_path / "serving.json").read_text())
    for key in ("fraud_detection_1", "fraud_detection_10", "fraud_detection_100", "seed_features_1"):
        assert set(result["sdk"][key]) == {"this repo", "Feast stock", "floor"}
        assert all(m["p50_ms"] > 0 for m in result["sdk"][key].values())
    assert result["answers"]["mismatches_Feast stock"] == 0 and result["answers"]["mismatches_floor"] == 0
    stock = result["http"]["Feast stock"]
    assert stock["available"] and stock["serial"]["health"]["p50_ms"] > 0 and "error" not in stock
    runs = [stock["load"][body][c] for body in ("fraud_detection", "seed_features") for c in ("1", "8", "32")]
    # A 1 s run may fall entirely in a worker restart of `feast serve` (--max-requests 1000): 0 requests.
    assert sum(r["requests"] for r in runs) > 0 and all(r["non_2xx"] == 0 for r in runs)
    ours = result["http"]["this repo"]
    assert ours["available"] and "error" not in ours and ours["serial"]["fraud_detection"]["non_2xx"] == 0
    assert ours["serial_lean"]["fraud_detection"]["non_2xx"] == 0
    assert ours["long_run"]["requests"] >= 200 and ours["long_run"]["non_2xx"] == 0
    assert "| SDK fraud_detection, 1 entity |" in (tmp_path / "serving.md").read_text()
    assert (tmp_path / "serving.png").stat().st_size > 0


@pytest.mark.slow
def test_historical_benchmark_small(tmp_path: Path) -> None:
    """Training sets: every store answers every retrieval, and this store's rows and non-null
    values match Feast's DuckDB store's."""
    run([sys.executable, "bench/historical.py", "--sizes", "3000", "--cards", "200", "--days", "1",
         "--out", str(tmp_path)], ROOT, timeout=600)
    results = json.loads((tmp_path / "historical.json").read_text())
    by = {(r["store"], r["scope"]): r for r in results}
    assert len(by) == 6 and all("seconds" in r for r in results), results
    for scope in ("view", "service"):
        ours, feast = by[("this repository (ASOF)", scope)], by[("Feast duckdb", scope)]
        assert ours["rows"] == feast["rows"] == 3000 and ours["non_null"] == feast["non_null"] > 0
    assert (tmp_path / "historical.png").stat().st_size > 0
    assert "| 3,000 | transaction_stats_5m | this repository (ASOF) |" in (tmp_path / "historical.md").read_text()


def test_stream_core_benchmark_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/stream_core.py", "--cards", "100", "--days", "1", "--steps", "20", "--out", str(tmp_path)],
        ROOT, timeout=300)
    core = json.loads((tmp_path / "stream_core.json").read_text())
    assert core["live"]["steps"] == 20 and core["live"]["p50_ms"] > 0
    assert core["backlog"]["events"] > 0 and core["backlog"]["events_per_second"] > 0


@pytest.mark.slow
def test_stream_scale_benchmark_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/stream_scale.py", "--cards", "200", "--days", "1", "--partitions", "2",
         "--out", str(tmp_path)], ROOT, timeout=600)
    runs = json.loads((tmp_path / "stream_scale.json").read_text())["runs"]
    assert [(r["processors"], r["partitions"]) for r in runs] == [(1, 1), (1, 2), (2, 2)]
    assert len({r["events"] for r in runs}) == 1 and all(r["events_per_second"] > 0 for r in runs)


@pytest.mark.slow
def test_spark_backfill_benchmark_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/spark_backfill.py", "--sizes", "20000", "--out", str(tmp_path)], ROOT, timeout=600)
    rows = json.loads((tmp_path / "spark_backfill.json").read_text())
    assert [r["engine"] for r in rows] == ["local", "spark"]
    assert all(r["identical"] and r["events"] > 0 and r["events_per_second"] > 0 for r in rows)
    assert "| transactions | engine |" in (tmp_path / "spark_backfill.md").read_text()
