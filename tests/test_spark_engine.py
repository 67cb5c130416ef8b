"""The Spark engine against the local engine and the brute-force reference, on the same raw files.

One local Spark session (``local[2]``) for the module. The raw files hold random events of both
kinds with ties (equal timestamps) and events exactly on (and 1 µs off) each other's window
edges (``tests/events.py``), spread over two files whose path order and path-string order differ
(``p/b.parquet`` is listed first, ``p-a.parquet`` sorts first as a string, which is what decides
between duplicates), with duplicate event ids (later copies that differ, in one file and across
files, and an invalid first copy of a valid event) and invalid events of every rule. Every view's
Spark file must equal the local engine's (schema with its metadata, rows in order, every value)
and the reference's rows computed from the events that should count.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featurelib import batch, paths, reference, spark_engine
from featurelib import semantics as s
from featurelib.errors import UnreadableFileError
from featurelib.generate import generate
from featurelib.raw_events import ID_FIELD, MAX_AMOUNT_CENTS, MAX_DWELL_MS
from featurelib.timeutil import DAY, now_us
from tests.conftest import BIN, ROOT, TINY, copy_repo, run
from tests.events import bitwise_equal, feature_rows, random_clickstream, random_transactions, records

pytestmark = pytest.mark.skipif(shutil.which("java") is None and "JAVA_HOME" not in os.environ,
                                reason="Spark needs a Java runtime (17)")
AHEAD = now_us() + 365 * DAY
INVALID = {  # (column, value) per invalid event: one of each rule
    s.TRANSACTIONS: [("amount_cents", -1), ("amount_cents", MAX_AMOUNT_CENTS + 1), ("card_id", ""), ("country", None),
                     ("event_timestamp", AHEAD), ("event_timestamp", 0), ("merchant_id", "m" * 257)],
    s.CLICKSTREAM: [("dwell_ms", MAX_DWELL_MS + 1), ("scroll_pct", 101), ("session_id", ""), ("event_type", None),
                    ("event_timestamp", AHEAD)],
}
ALTERED = {s.TRANSACTIONS: [("card_id", "card_0"), ("amount_cents", 7)],  # a later copy moves to another entity
           s.CLICKSTREAM: [("user_id", "user_0"), ("event_type", "purchase")]}


def _with(table: pa.Table, changes: list[tuple[str, object]], id_suffix: str | None = None) -> pa.Table:
    for column, value in changes:
        field = table.schema.field(column)
        type_ = pa.int64() if pa.types.is_timestamp(field.type) else field.type  # timestamps given in µs
        array = pa.array([value] * table.num_rows, type_)
        table = table.set_column(table.schema.get_field_index(column), column, array.cast(field.type))
    if id_suffix is not None:
        key = ID_FIELD[_kind(table)]
        ids = pc.binary_join_element_wise(table.column(key), id_suffix, "")
        table = table.set_column(table.schema.get_field_index(key), key, ids)
    return table


def _kind(table: pa.Table) -> str:
    return s.TRANSACTIONS if "txn_id" in table.column_names else s.CLICKSTREAM


def _invalid_rows(base: pa.Table, kind: str, tag: str) -> pa.Table:
    return pa.concat_tables([_with(base.slice(i, 1), [change], f"-bad-{tag}{i}")
                             for i, change in enumerate(INVALID[kind])])


def _write_raw(raw: Path, kind: str, base: pa.Table) -> None:
    """``base`` (the events that count) over two files, with duplicates and invalid events."""
    half = base.num_rows // 2
    a, b = base.slice(0, half), base.slice(half)
    first = [a,
             _with(a.slice(0, 5), ALTERED[kind]),  # later rows of the same file: ignored
             _with(b.slice(0, 3), [INVALID[kind][0]]),  # invalid copies of valid events in p/b: left out
             _invalid_rows(a, kind, "a")]
    second = [_with(a.slice(5, 5), ALTERED[kind]),  # first rows, but p-a.parquet comes first: ignored
              b, _invalid_rows(b, kind, "b")]
    (raw / kind / "p").mkdir(parents=True)
    pq.write_table(pa.concat_tables(first), raw / kind / "p-a.parquet")
    pq.write_table(pa.concat_tables(second), raw / kind / "p" / "b.parquet")


def _on_edges(table: pa.Table, kind: str) -> pa.Table:
    """``table`` and copies of its first rows (same entities, new ids) at ``t + w`` for every window
    ``w`` of the kind's views, and at ``t`` itself (ties)."""
    offsets = sorted({o for v in s.VIEWS.values() if v.events == kind for o in v.change_offsets})
    copies = []
    for i, offset in enumerate(offsets):
        copy = table.slice(0, 3)
        t = pc.add(copy.column("event_timestamp").cast(pa.int64()), offset).cast(pa.timestamp("us", tz="UTC"))
        copy = copy.set_column(copy.schema.get_field_index("event_timestamp"), "event_timestamp", t)
        copies.append(_with(copy, [], f"-edge{i}"))
    return pa.concat_tables([table, *copies])


@pytest.fixture(scope="module")
def events() -> dict[str, pa.Table]:
    """The events that count, per kind: unique ids, ties and window edges on purpose."""
    rng = np.random.default_rng(20261129)
    clicks = random_clickstream(rng, 360, n_users=24)
    sessions = pc.binary_join_element_wise(clicks.column("user_id"), clicks.column("session_id"), "/")
    clicks = clicks.set_column(clicks.schema.get_field_index("session_id"), "session_id", sessions)
    return {s.TRANSACTIONS: _on_edges(random_transactions(rng, 400, n_cards=40), s.TRANSACTIONS),
            s.CLICKSTREAM: _on_edges(clicks, s.CLICKSTREAM)}


@pytest.fixture(scope="module")
def spark():
    session = spark_engine.session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, events: dict[str, pa.Table], spark) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spark")
    for kind, table in events.items():
        _write_raw(root / "raw", kind, table)
    local = batch.build_all(root / "raw", root / "local", quarantine_dir=root / "quarantine-local")
    remote = spark_engine.build_all(root / "raw", root / "spark", spark=spark, chunk_rows=37,
                                    quarantine_dir=root / "quarantine-spark")
    assert [b.events for b in remote] == [b.events for b in local] == [events[s.VIEWS[b.view].events].num_rows
                                                                       for b in local]
    assert [b.invalid for b in remote] == [b.invalid for b in local] == [len(INVALID[s.VIEWS[b.view].events]) * 2 + 3
                                                                         for b in local]
    return {"root": root, "local": root / "local", "spark": root / "spark"}


def test_the_events_have_ties_and_events_on_every_window_edge(events: dict[str, pa.Table]) -> None:
    for kind, table in events.items():
        for view in (v for v in s.VIEWS.values() if v.events == kind):
            by_entity: dict[str, list[int]] = {}
            for e in records(table):
                by_entity.setdefault(e[view.join_key], []).append(e["event_timestamp"])
            gaps = {abs(b - a) for times in by_entity.values() for i, a in enumerate(times) for b in times[i + 1:]}
            assert set(view.change_offsets) <= gaps, f"{view.name}: no tie or no event on a window edge"


@pytest.mark.parametrize("view", list(s.VIEWS.values()), ids=lambda v: v.name)
def test_spark_rows_equal_the_local_engine_and_the_reference(view: s.ViewSemantics, built: dict[str, Path],
                                                             events: dict[str, pa.Table]) -> None:
    mine, local = built["spark"] / f"{view.name}.parquet", built["local"] / f"{view.name}.parquet"
    assert pq.read_schema(mine).equals(pq.read_schema(local), check_metadata=True)
    got, expected_local = pq.read_table(mine), pq.read_table(local)
    assert got.num_rows == expected_local.num_rows > 0
    assert got.equals(expected_local)
    rows = feature_rows(got)
    expected = reference.reference_rows(view, records(events[view.events]))
    assert len(rows) == len(expected)
    differing = [f"{e[view.join_key]} @ {e['event_timestamp']}: {c} spark={g.get(c)!r} reference={v!r}"
                 for g, e in zip(rows, expected) for c, v in e.items() if not bitwise_equal(g.get(c), v)]
    assert differing == []


def _same_rule(reasons: pa.ChunkedArray) -> list[str]:
    """Reasons without the distance to the clock (each engine's clock is its own start)."""
    return [re.sub(r"is [\d,.]+ s ahead", "is ... s ahead", r) for r in reasons.to_pylist()]


def test_invalid_events_are_listed_as_the_local_job_lists_them(built: dict[str, Path]) -> None:
    for kind in (s.TRANSACTIONS, s.CLICKSTREAM):
        name = Path(kind) / "batch-invalid.parquet"
        listed = pq.read_table(built["root"] / "quarantine-spark" / name)
        expected = pq.read_table(built["root"] / "quarantine-local" / name)
        assert listed.drop(["reason"]).equals(expected.drop(["reason"]))
        assert _same_rule(listed.column("reason")) == _same_rule(expected.column("reason"))
        assert listed.column("filename")[0].as_py().endswith("p/b.parquet")  # listing order, as local


def test_no_part_files_are_left_behind(built: dict[str, Path]) -> None:
    assert sorted(p.name for p in built["spark"].iterdir()) == sorted(f"{v}.parquet" for v in s.VIEWS)


def test_a_file_spark_would_skip_is_a_clear_error(tmp_path: Path, events: dict[str, pa.Table], spark) -> None:
    """The local job reads ``_x.parquet``; Spark's reader would silently skip it."""
    raw = tmp_path / "raw" / s.TRANSACTIONS
    raw.mkdir(parents=True)
    pq.write_table(events[s.TRANSACTIONS], raw / "_x.parquet")
    with pytest.raises(UnreadableFileError, match="_x.parquet.*Spark does not read it"):
        spark_engine.build_all(tmp_path / "raw", tmp_path / "out", [s.CARD_PROFILE.name], spark=spark)


def test_batch_cli_with_the_spark_engine_end_to_end(tmp_path: Path) -> None:
    """``python -m featurelib.batch --engine spark`` in a small repository: every view's file as
    the local engine writes it, and the quarantine listed."""
    repo = copy_repo(tmp_path / "repo")
    generate(TINY, paths.raw_dir(repo))
    result = run([sys.executable, "-m", "featurelib.batch", "--engine", "spark", "--spark-master", "local[2]",
                  "--repo", str(repo)], cwd=repo, timeout=240)
    local = batch.build_all(paths.raw_dir(repo), tmp_path / "local")
    for b in local:
        assert f"{b.view} " in result.stdout
        mine = paths.feature_file(b.view, repo)
        assert pq.read_schema(mine).equals(pq.read_schema(b.path), check_metadata=True)
        assert pq.read_table(mine).equals(pq.read_table(b.path)), b.view
    assert sorted(p.name for p in paths.features_dir(repo).iterdir()) == sorted(f"{v}.parquet" for v in s.VIEWS)


def test_spark_submit_starts_the_engine() -> None:
    result = run([str(BIN / "spark-submit"), "featurelib/spark_engine.py", "--help"], cwd=ROOT, timeout=120)
    assert "--master" in result.stdout and "spark-submit" in result.stdout


@pytest.mark.slow
def test_spark_submit_builds_a_view(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    generate(TINY, paths.raw_dir(repo))
    run([str(BIN / "spark-submit"), "--master", "local[2]", str(ROOT / "featurelib" / "spark_engine.py"),
         "--repo", str(repo), "--view", s.CARD_PROFILE.name], cwd=repo, timeout=240)
    local = batch.build_view(s.CARD_PROFILE, paths.raw_dir(repo), tmp_path / "local.parquet")
    assert pq.read_table(paths.feature_file(s.CARD_PROFILE.name, repo)).equals(pq.read_table(local.path))
