"""The benchmark script runs (a small size; the README's figures come from the full run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import ROOT, run


def test_backfill_benchmark_small(tmp_path: Path) -> None:
    run([sys.executable, "bench/backfill.py", "--sizes", "20000", "--out", str(tmp_path)], ROOT, timeout=600)
    rows = json.loads((tmp_path / "backfill.json").read_text())
    assert {(r["input"], r["workers"]) for r in rows} == {("transactions", 1), ("transactions", 2), ("clickstream", 1)}
    assert all(r["events"] > 0 and r["events_per_second"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert "| transactions |" in (tmp_path / "backfill.md").read_text()
