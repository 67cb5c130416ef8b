"""Golden vectors (``tests/golden``): hand-picked raw events and every row they must produce.

``expected.json`` was written once by ``tests/golden/make_golden.py`` from the brute-force
reference. Here it is checked, bit for bit, against:

* the reference itself, and the script's output (the committed files must not drift);
* the batch engine (``engine.compute_view``, as the batch job calls it), and the batch job
  itself (``batch.build_all``: raw Parquet, the raw-event checks, DuckDB's sort);
* the stream processor's computation (``stream.core.StreamCore``, in-process, as
  ``tests/test_stream_conformance.py`` drives it), fed all at once, one event per step in
  time order, and one event per step in reverse time order, each with the step computed by
  the vectorized engine and by the reference.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featurelib.stream.core as core_module
from featurelib import reference
from featurelib import semantics as s
from featurelib.batch import build_all
from featurelib.engine import compute_view, output_schema
from featurelib.raw_events import SCHEMAS
from featurelib.stream.core import StreamCore
from featurelib.timeutil import DAY, column_us
from tests.events import bitwise_equal, feature_rows
from tests.golden import make_golden

GOLDEN = Path(__file__).resolve().parent / "golden"
VIEWS = list(s.VIEWS.values())
TYPES = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "list<string>": pa.list_(pa.string())}


@functools.cache
def golden_events() -> dict[str, list[dict[str, Any]]]:
    return json.loads((GOLDEN / "events.json").read_text(encoding="utf-8"))


@functools.cache
def golden_expected() -> dict[str, Any]:
    return json.loads((GOLDEN / "expected.json").read_text(encoding="utf-8"))["views"]


def expected_rows(view: s.ViewSemantics) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "event_timestamp_iso"} for r in golden_expected()[view.name]["rows"]]


def raw_table(kind: str) -> pa.Table:
    """The golden events of ``kind`` in the raw-event schema (``featurelib.raw_events``)."""
    events = golden_events()[kind]
    columns = {}
    for field in SCHEMAS[kind]:
        values = [e.get(field.name) for e in events]
        if field.name == "event_timestamp":
            columns[field.name] = pa.array(values, pa.int64()).cast(field.type)
        else:
            columns[field.name] = pa.array(values, field.type)
    return pa.table(columns, schema=SCHEMAS[kind])


def assert_rows_equal(view: s.ViewSemantics, got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    key = view.join_key
    assert [(r[key], r["event_timestamp"]) for r in got] == [(r[key], r["event_timestamp"]) for r in expected], \
        "change points differ"
    bad = [f"{e[key]} @ {e['event_timestamp']}: {c} got {g[c]!r}, expected {e[c]!r}"
           for g, e in zip(got, expected) for c in e if not bitwise_equal(g[c], e[c])]
    assert not bad, "\n".join(bad[:20])


def test_golden_files_are_the_output_of_make_golden() -> None:
    """The committed files are exactly what the script writes now: regenerating changes nothing."""
    assert (GOLDEN / "events.json").read_text(encoding="utf-8") == make_golden.render_events()
    assert (GOLDEN / "expected.json").read_text(encoding="utf-8") == make_golden.render_expected()


def test_golden_events_are_valid_raw_events() -> None:
    """Every golden event passes the raw-event schema: nothing in them is quarantined."""
    from featurelib.raw_events import problems

    for kind in golden_events():
        assert problems(kind, raw_table(kind), 2**62) == [None] * len(golden_events()[kind])


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_declared_types_are_the_stored_types(view: s.ViewSemantics) -> None:
    declared = golden_expected()[view.name]["features"]
    schema = output_schema(view)
    assert list(declared) == list(view.features)
    assert {f: TYPES[t] for f, t in declared.items()} == {f: schema.field(f).type for f in view.features}


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_reference(view: s.ViewSemantics) -> None:
    events = make_golden.reference_input(golden_events()[view.events])
    assert_rows_equal(view, reference.reference_rows(view, events), expected_rows(view))


@pytest.mark.parametrize("order", ["as_listed", "shuffled"])
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_batch_engine(view: s.ViewSemantics, order: str) -> None:
    table = raw_table(view.events)
    if order == "shuffled":
        table = table.take(pa.array(np.random.default_rng(3).permutation(table.num_rows)))
    assert_rows_equal(view, feature_rows(compute_view(view, table)), expected_rows(view))


@pytest.fixture(scope="module")
def batch_job_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden")
    for kind in golden_events():
        (root / "raw" / kind).mkdir(parents=True)
        pq.write_table(raw_table(kind), root / "raw" / kind / "golden.parquet")
    builds = build_all(root / "raw", root / "features")
    assert all(b.invalid == 0 for b in builds)
    return root / "features"


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_batch_job(view: s.ViewSemantics, batch_job_output: Path) -> None:
    rows = feature_rows(pq.read_table(batch_job_output / f"{view.name}.parquet"))
    assert_rows_equal(view, rows, expected_rows(view))


# ------------------------------------------------------------------------------ stream

FEEDS = ["one_step", "in_time_order", "reverse_time_order"]
PATHS = ["engine", "incremental"]


@functools.cache
def stream_rows(feed: str, path: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The rows ``StreamCore`` emits for the golden events (the last emission per view, entity and
    instant, as Redis would hold it), on the event-time clock."""
    calls = {"engine": 0}

    def counted(*args, **kwargs):
        calls["engine"] += 1
        return compute(*args, **kwargs)

    compute = core_module.compute_view
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core_module, "compute_view", counted)
        # Reverse time order is out of order by up to the events' span: allow that much lateness.
        core = StreamCore(lateness_us=7 * DAY if feed == "reverse_time_order" else 0, now_us=0,
                          vectorized_from=0 if path == "engine" else 10**9)
        tables = {kind: raw_table(kind) for kind in golden_events()}
        steps: list[dict[str, pa.Table]] = []
        if feed == "one_step":
            steps.append({k: t.sort_by("event_timestamp") for k, t in tables.items()})
        else:
            single = [(int(column_us(t.column("event_timestamp"))[i]), k, i) for k, t in tables.items() for i in range(t.num_rows)]
            single.sort(reverse=feed == "reverse_time_order")
            steps += [{k: tables[k].slice(i, 1)} for _, k, i in single]
        emitted: dict[tuple[str, str, int], dict[str, Any]] = {}
        end = max(int(column_us(t.column("event_timestamp")).max()) for t in tables.values()) + s.W_24H + 1
        for step in [*steps, {}]:
            result = core.step({k: (t, None) for k, t in step.items()}, now_us=None if step else end)
            assert not any(t.num_rows for t in result.too_late.values()) and result.duplicates == 0
            for name, rows in result.rows.items():
                for r in feature_rows(rows):
                    emitted[(name, r[s.VIEWS[name].join_key], r["event_timestamp"])] = r
            core.trim(None, min_share=0)  # forgetting what no longer matters must not change a row
    assert (calls["engine"] > 0) == (path == "engine")
    return emitted


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("feed", FEEDS)
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_stream_processor(view: s.ViewSemantics, feed: str, path: str) -> None:
    emitted = stream_rows(feed, path)
    rows = sorted((r for (name, _, _), r in emitted.items() if name == view.name),
                  key=lambda r: (r[view.join_key], r["event_timestamp"]))
    assert_rows_equal(view, rows, expected_rows(view))
