"""Point-in-time retrieval through Feast (DuckDB over the batch job's Parquet).

Hand-built events make every expected value obvious:

* card_a: $10 at T-10m, $20 at T, and two canaries ($9,999 at T+1µs and T+1s);
* card_b: one $5 transaction three days before T (for TTL edges).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from featurelib import paths
from featurelib.batch import build_all
from featurelib.parquet_files import write_table
from featurelib.raw_events import CLICKSTREAM_SCHEMA, TRANSACTION_SCHEMA
from featurelib.repo import load_store
from featurelib.timeutil import DAY, MINUTE, SECOND, to_us
from featurelib.training import training_frame
from tests.conftest import copy_repo, feast_cli, run, set_project

T = to_us("2026-11-20T10:00:00Z")
TTL = 7 * DAY  # transaction_stats_5m


def _txn(i: int, card: str, t: int, cents: int) -> dict:
    return {"txn_id": f"t{i}", "card_id": card, "user_id": "user_1", "device_id": "device_1", "merchant_id": "merchant_1",
            "merchant_category": "grocery", "country": "US", "amount_cents": cents, "event_timestamp": t,
            "is_fraud": False, "fraud_pattern": None}


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    for r in rows:
        r["event_timestamp"] = pd.Timestamp(r["event_timestamp"] * 1000, tz="UTC")
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def pit_repo(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("pit"))
    set_project(repo, "pit_repo")
    txns = [_txn(0, "card_a", T - 10 * MINUTE, 1000), _txn(1, "card_a", T, 2000),
            _txn(2, "card_a", T + 1, 999_900), _txn(3, "card_a", T + SECOND, 999_900),
            _txn(4, "card_b", T - 3 * DAY, 500)]
    clicks = [{"event_id": "e0", "user_id": "user_1", "session_id": "session_1", "device_id": "device_1",
               "event_type": "page_view", "page_category": "home", "dwell_ms": 1000, "scroll_pct": 10,
               "event_timestamp": T}]
    write_table(_table(txns, TRANSACTION_SCHEMA), paths.raw_dir(repo) / "transactions" / "generated.parquet")
    write_table(_table(clicks, CLICKSTREAM_SCHEMA), paths.raw_dir(repo) / "clickstream" / "generated.parquet")
    build_all(paths.raw_dir(repo), paths.features_dir(repo))
    feast_cli(repo, "apply")
    return repo


def _historical(repo: Path, rows: list[tuple[str, object]], features: list[str]) -> pd.DataFrame:
    store = load_store(repo)
    entity_df = pd.DataFrame({"card_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows], "i": range(len(rows))})
    df = store.get_historical_features(entity_df=entity_df, features=[f"transaction_stats_5m:{f}" for f in features]).to_df()
    return df.sort_values("i").reset_index(drop=True)


def _ts(us: int) -> pd.Timestamp:
    return pd.Timestamp(us * 1000, tz="UTC")


def test_lookup_at_an_event_includes_it_and_nothing_later(pit_repo: Path) -> None:
    df = _historical(pit_repo, [("card_a", _ts(T))], ["txn_count_5m", "txn_count_30m", "amount_sum_5m", "amount_max_5m"])
    assert df.loc[0, ["txn_count_5m", "txn_count_30m"]].tolist() == [1, 2]
    assert df.loc[0, "amount_sum_5m"] == 20.0
    assert df.loc[0, "amount_max_5m"] == 20.0  # the $9,999 canaries at T+1µs and T+1s are not there


def test_training_rows_never_see_their_own_event_or_later_ones(pit_repo: Path) -> None:
    """Labels at T (the $20 transaction) and at T+1µs (a canary): features as of 1 µs earlier."""
    store = load_store(pit_repo)
    labels = pd.DataFrame({"card_id": ["card_a", "card_a", "card_a"], "event_timestamp": [_ts(T), _ts(T + 1), _ts(T + SECOND)],
                           "is_fraud": [False, True, True]})
    frame = training_frame(store, labels, ["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:txn_count_30m",
                                           "transaction_stats_5m:amount_max_5m"])
    assert frame["event_timestamp"].tolist() == labels["event_timestamp"].tolist()
    assert (frame["feature_timestamp"] == frame["event_timestamp"] - pd.Timedelta(microseconds=1)).all()
    # The $20 transaction at T: only the $10 one 10 minutes earlier (30m window), nothing in 5m.
    assert frame.loc[0, ["txn_count_5m", "txn_count_30m"]].tolist() == [0, 1]
    assert pd.isna(frame.loc[0, "amount_max_5m"])
    # The canary at T+1µs sees the $20 transaction but not itself.
    assert frame.loc[1, "txn_count_5m"] == 1 and frame.loc[1, "amount_max_5m"] == 20.0
    # The canary at T+1s sees the first canary but not itself.
    assert frame.loc[2, "txn_count_5m"] == 2 and frame.loc[2, "amount_max_5m"] == 9999.0


def test_ttl_boundaries(pit_repo: Path) -> None:
    """card_b's last row is its 24-hour exit at L = T-3d+24h; Feast serves it until L + ttl inclusive."""
    last = T - 3 * DAY + DAY
    df = _historical(pit_repo, [("card_b", _ts(T - 3 * DAY - 1)), ("card_b", _ts(T - 3 * DAY)), ("card_b", _ts(last)),
                                ("card_b", _ts(last + TTL)), ("card_b", _ts(last + TTL + 1))], ["txn_count_24h"])
    counts = df["txn_count_24h"].tolist()
    assert pd.isna(counts[0])  # before the first event: no row
    assert counts[1] == 1
    assert counts[2] == 0  # the exit row: the window is empty, a real 0
    assert counts[3] == 0  # exactly ttl after the last row: still served
    assert pd.isna(counts[4])  # 1 µs later: expired


@pytest.mark.parametrize("form", ["aware-utc", "naive", "aware-offset", "ns", "ms-exact", "string"])
def test_timestamp_forms_name_the_same_instant(pit_repo: Path, form: str) -> None:
    at = _ts(T)  # the $20 event
    value = {
        "aware-utc": at,
        "naive": at.tz_convert(None),
        "aware-offset": at.tz_convert("Asia/Kolkata"),
        "ns": at.as_unit("ns"),
        "ms-exact": at.as_unit("ms"),
        "string": "2026-11-20T10:00:00.000000+00:00",
    }[form]
    before = {"aware-utc": at - pd.Timedelta(microseconds=1), "naive": (at - pd.Timedelta(microseconds=1)).tz_convert(None),
              "aware-offset": (at - pd.Timedelta(microseconds=1)).tz_convert("Asia/Kolkata"),
              "ns": (at - pd.Timedelta(microseconds=1)).as_unit("ns"), "ms-exact": at.as_unit("ms") - pd.Timedelta(milliseconds=1),
              "string": "2026-11-20T09:59:59.999999+00:00"}[form]
    df = _historical(pit_repo, [("card_a", value), ("card_a", before)], ["txn_count_5m"])
    assert df["txn_count_5m"].tolist() == [1, 0]


def test_naive_timestamps_are_utc_whatever_the_machine_time_zone(pit_repo: Path) -> None:
    """One process started in Asia/Kolkata (UTC+5:30), then moved to America/Los_Angeles with tzset
    (the offsets printed are those of the looked-up instant, in November)."""
    script = f"""
import json, os, time, pandas as pd
from feast import FeatureStore
fs = FeatureStore(repo_path={str(pit_repo)!r})
t = pd.Timestamp({T * 1000}, tz="UTC").tz_convert(None)
df = pd.DataFrame({{"card_id": ["card_a", "card_a"], "event_timestamp": [t, t - pd.Timedelta(microseconds=1)], "i": [0, 1]}})
seen = {{}}
for tz in ("Asia/Kolkata", "America/Los_Angeles"):
    os.environ["TZ"] = tz
    time.tzset()
    out = fs.get_historical_features(entity_df=df, features=["transaction_stats_5m:txn_count_5m"]).to_df().sort_values("i")
    seen[tz] = [time.strftime("%z", time.localtime({T // 1_000_000})), out["txn_count_5m"].tolist()]
print(json.dumps(seen))
"""
    out = run([sys.executable, "-c", script], pit_repo, env={"TZ": "Asia/Kolkata"}).stdout.strip().splitlines()[-1]
    assert json.loads(out) == {"Asia/Kolkata": ["+0530", [1, 0]], "America/Los_Angeles": ["-0800", [1, 0]]}


def test_nanosecond_instants_are_read_at_their_microsecond(pit_repo: Path) -> None:
    """pandas' default precision: T+999ns is still T's microsecond (the $20 event counts), T-1ns is
    the microsecond before it; the TTL is measured from the floored instant; rows come back with
    the caller's nanoseconds, from to_df and to_arrow alike."""
    last = T - 3 * DAY + DAY  # card_b's last row
    ns = pd.Timedelta(nanoseconds=1)
    rows = [("card_a", _ts(T) + 999 * ns), ("card_a", _ts(T) - ns), ("card_a", _ts(T + 1) + 123 * ns),
            ("card_b", _ts(last + TTL) + 999 * ns), ("card_b", _ts(last + TTL + 1) + ns)]
    entity_df = pd.DataFrame({"card_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows], "i": range(len(rows))})
    assert (entity_df["event_timestamp"].dt.nanosecond != 0).all()
    job = load_store(pit_repo).get_historical_features(
        entity_df=entity_df, features=["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:txn_count_24h"])
    df = job.to_df().sort_values("i").reset_index(drop=True)
    assert df["event_timestamp"].tolist() == entity_df["event_timestamp"].tolist()
    assert df["txn_count_5m"].tolist()[:3] == [1, 0, 2]
    assert df.loc[3, "txn_count_24h"] == 0 and pd.isna(df.loc[4, "txn_count_24h"])
    table = job.to_arrow().sort_by("i")
    assert table.schema.field("event_timestamp").type == pa.timestamp("ns", tz="UTC")
    assert table.column("event_timestamp").to_pylist() == entity_df["event_timestamp"].tolist()
    assert "__featurelib_row" not in table.column_names
