"""The batch job: Parquet in, Parquet out, same rows as the engine on everything at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featurelib import semantics as s
from featurelib.batch import build_all, build_view
from featurelib.engine import compute_view
from featurelib.generate import GeneratorConfig, generate
from featurelib.parquet_files import write_table
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


def test_an_id_repeated_in_one_file_counts_once_with_its_first_copy(raw: Path, tmp_path: Path) -> None:
    """As the stream processor keeps the first delivery: a later copy that differs is ignored."""
    events = pq.read_table(raw / "transactions" / "generated.parquet")
    copies = events.slice(0, 50)
    amount = copies.schema.get_field_index("amount_cents")
    copies = copies.set_column(amount, "amount_cents", pc.add(copies.column(amount), 1))
    write_table(pa.concat_tables([events, copies]), tmp_path / "raw" / "transactions" / "generated.parquet")
    result = build_view(s.TRANSACTION_STATS, tmp_path / "raw", tmp_path / "features.parquet")
    assert result.events == events.num_rows
    assert pq.read_table(result.path).equals(compute_view(s.TRANSACTION_STATS, events))


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


def test_invalid_raw_events_are_left_out_and_listed(raw: Path, tmp_path: Path) -> None:
    """Rows of raw files that break the raw-event schema (here: a negative amount, an amount
    above the maximum, a timestamp a year ahead) are left out of every view and listed, by
    file and row, in the quarantine; the other rows give exactly the rows of the clean data."""
    from featurelib.raw_events import MAX_AMOUNT_CENTS
    from featurelib.timeutil import DAY, now_us

    dirty = tmp_path / "raw"
    shutil.copytree(raw, dirty)
    clean = pq.read_table(raw / "transactions" / "generated.parquet")
    bad = clean.slice(0, 3).to_pylist()
    for row, (field, value) in zip(bad, [("amount_cents", -1), ("amount_cents", MAX_AMOUNT_CENTS + 1),
                                         ("event_timestamp", now_us() + 365 * DAY)]):
        row["txn_id"] += "-bad"
        row[field] = value if field != "event_timestamp" else pa.scalar(value, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")).as_py()
    pq.write_table(pa.Table.from_pylist(bad, clean.schema), dirty / "transactions" / "dropped.parquet")
    builds = build_all(dirty, tmp_path / "features", [s.CARD_PROFILE.name], quarantine_dir=tmp_path / "quarantine")
    assert builds[0].invalid == 3 and builds[0].events == clean.num_rows
    assert pq.read_table(builds[0].path).equals(compute_view(s.CARD_PROFILE, clean))
    listed = pq.read_table(tmp_path / "quarantine" / "transactions" / "batch-invalid.parquet").to_pylist()
    assert [(r["file_row_number"], r["txn_id"]) for r in listed] == [(i, bad[i]["txn_id"]) for i in range(3)]
    assert [r["reason"].split(" is ")[0] for r in listed] == ["amount_cents -1", "amount_cents 1,000,000,001",
                                                               listed[2]["reason"].split(" is ")[0]]
    assert "ahead of the clock" in listed[2]["reason"]
