"""The batch job: Parquet in, Parquet out, same rows as the engine on everything at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurelib import semantics as s
from featurelib.batch import build_all, build_view
from featurelib.engine import compute_view
from featurelib.generate import GeneratorConfig, generate
from featurelib.timeutil import to_us

CFG = GeneratorConfig(n_cards=120, days=2, seed=3, end_us=to_us("2026-11-20T00:00:00Z"))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw_dir = tmp_path_factory.mktemp("raw")
    generate(CFG, raw_dir)
    return raw_dir


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_chunked_batch_equals_engine_on_all_events(view: s.ViewSemantics, raw: Path, tmp_path: Path) -> None:
    events = pq.read_table(raw / view.events / "generated.parquet")
    expected = compute_view(view, events)
    small = build_view(view, raw, tmp_path / "small.parquet", chunk_rows=500)
    large = build_view(view, raw, tmp_path / "large.parquet", chunk_rows=10_000_000)
    assert small.events == large.events == events.num_rows
    assert small.rows == expected.num_rows
    assert pq.read_table(small.path).equals(expected)
    assert pq.read_table(large.path).equals(expected)


def test_events_delivered_twice_count_once(raw: Path, tmp_path: Path) -> None:
    twice = tmp_path / "raw"
    shutil.copytree(raw, twice)
    shutil.copy(raw / "transactions" / "generated.parquet", twice / "transactions" / "stream-part-0001.parquet")
    once = build_view(s.TRANSACTION_STATS, raw, tmp_path / "once.parquet")
    again = build_view(s.TRANSACTION_STATS, twice, tmp_path / "twice.parquet")
    assert again.events == once.events
    assert pq.read_table(again.path).equals(pq.read_table(once.path))


def test_a_failed_build_keeps_the_previous_file(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    build_view(s.TRANSACTION_STATS, raw, out)
    before = out.read_bytes()
    broken = tmp_path / "broken"
    shutil.copytree(raw, broken)
    (broken / "transactions" / "zz-corrupt.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception):  # noqa: B017 - any read error will do
        build_view(s.TRANSACTION_STATS, broken, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_raw_events_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no raw transactions events"):
        build_view(s.TRANSACTION_STATS, tmp_path, tmp_path / "out.parquet")


def test_build_all_writes_every_view_with_its_schema(raw: Path, tmp_path: Path) -> None:
    builds = build_all(raw, tmp_path)
    assert sorted(b.view for b in builds) == sorted(s.VIEWS)
    for b in builds:
        schema = pq.read_schema(b.path)
        view = s.VIEWS[b.view]
        assert schema.names == [view.join_key, "event_timestamp", *view.features]
        assert schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
        assert b.rows > b.events  # entries and exits: at least one row per event, more with exits
