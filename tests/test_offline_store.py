"""The ASOF point-in-time join (featurelib.offline_store) against Feast's own DuckDB store.

One small repository, written twice with the same Parquet files: once with this store, once
with Feast's ``duckdb`` store. Random entity rows hit ties (decided by the created timestamp),
both TTL edges, entities without rows, instants before any row and after the last; every
retrieval must return the same rows, columns and values from both.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float64, Int64, String

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
TTL = timedelta(hours=2)
CARDS = [f"c{i}" for i in range(12)]
MERCHANTS = list(range(6))

YAML = """project: offline_{name}
registry: {path}/registry.db
provider: local
online_store: {{type: sqlite, path: {path}/online.db}}
offline_store:
  type: {store}
entity_key_serialization_version: 3
"""


def _instants(rng: random.Random, n: int, grid: int) -> list[datetime]:
    """Instants on a coarse grid (so that rows and lookups collide) over about 10 hours."""
    return [T0 + timedelta(minutes=rng.randrange(0, 600 // grid) * grid) + rng.choice([0, 0, 1, 7]) * US for _ in range(n)]


def _write_data(data: Path, seed: int) -> None:
    rng = random.Random(seed)
    n = 400
    cards = pd.DataFrame({
        "card_id": [rng.choice(CARDS[:10]) for _ in range(n)],  # c10, c11 never have rows
        "event_timestamp": _instants(rng, n, 10),
        "x": [rng.choice([None, 0.5, -1.25, rng.random()]) for _ in range(n)],
        "n": pd.array([rng.choice([None, 1, 2, 3 << 40]) for _ in range(n)], dtype="Int64"),
        "s": [rng.choice([None, "a", "b", "ü"]) for _ in range(n)],
        "tags": [rng.choice([None, [], ["DE"], ["DE", "US"]]) for _ in range(n)],
    })
    # Ties: equal event timestamps, decided by distinct created timestamps.
    cards["created"] = [T0 + timedelta(days=1, seconds=i) for i in rng.sample(range(10 * n), n)]
    cards = cards.astype({"event_timestamp": "datetime64[us, UTC]", "created": "datetime64[us, UTC]"})
    pq.write_table(pa.Table.from_pandas(cards, preserve_index=False), data / "cards.parquet")
    m = 120  # merchant rows: no created column, so no two rows of a merchant share an instant
    stamps = sorted(set(_instants(rng, m, 5)))
    merchants = pd.DataFrame({"merchant": [rng.choice(MERCHANTS[:5]) for _ in stamps], "ts": stamps,
                              "risk_raw": [rng.random() for _ in stamps]})
    merchants = merchants.drop_duplicates(["merchant", "ts"]).astype({"ts": "datetime64[us, UTC]"})
    pq.write_table(pa.Table.from_pandas(merchants, preserve_index=False), data / "merchants.parquet")


def _definitions(data: Path) -> list:
    card = Entity(name="card", join_keys=["card_id"], value_type=ValueType.STRING)
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
    card_source = FileSource(path=str(data / "cards.parquet"), timestamp_field="event_timestamp",
                             created_timestamp_column="created")
    merchant_source = FileSource(path=str(data / "merchants.parquet"), timestamp_field="ts",
                                 field_mapping={"merchant": "merchant_id", "risk_raw": "risk"})
    cards = FeatureView(name="cards", entities=[card], ttl=TTL, source=card_source,
                        schema=[Field(name="x", dtype=Float64), Field(name="n", dtype=Int64), Field(name="s", dtype=String),
                                Field(name="tags", dtype=Array(String))])
    merchants = FeatureView(name="merchants", entities=[merchant], ttl=timedelta(0), source=merchant_source,
                            schema=[Field(name="risk", dtype=Float64)])

    @on_demand_feature_view(sources=[cards, merchants], schema=[Field(name="x_risk", dtype=Float64)], mode="pandas")
    def scored(inputs: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame()
        out["x_risk"] = inputs["x"].astype("float64") * inputs["risk"].astype("float64")
        return out

    service = FeatureService(name="everything", features=[cards, merchants, scored])
    return [card, merchant, cards, merchants, scored, service]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FeatureStore]:
    root = tmp_path_factory.mktemp("offline")
    data = root / "data"
    data.mkdir()
    _write_data(data, seed=5)
    out = {}
    for name, store in [("asof", "featurelib.offline_store.ParquetOfflineStore"), ("feast", "duckdb")]:
        repo = root / name
        repo.mkdir()
        (repo / "feature_store.yaml").write_text(YAML.format(name=name, path=repo, store=store))
        fs = FeatureStore(repo_path=str(repo))
        fs.apply(_definitions(data))
        out[name] = fs
    return out


def _entity_df(seed: int, n: int = 300) -> pd.DataFrame:
    rng = random.Random(seed)
    instants = _instants(rng, n, 10)
    # TTL edges: exactly ttl after a grid instant, and 1 µs past it; before any row; far after.
    instants[:4] = [T0 + TTL, T0 + TTL + US, T0 - US, T0 + timedelta(days=3)]
    return pd.DataFrame({
        "card_id": [rng.choice(CARDS) for _ in range(n)],
        "merchant_id": [rng.choice(MERCHANTS) for _ in range(n)],
        "event_timestamp": pd.Series(instants).astype("datetime64[ns, UTC]"),
        "row": range(n),
    })


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.sort_values("row").reset_index(drop=True), b.sort_values("row").reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    for column in a.columns:
        left, right = a[column].tolist(), b[column].tolist()
        norm = [[None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else
                 (list(v) if isinstance(v, np.ndarray) else v) for v in col] for col in (left, right)]
        assert norm[0] == norm[1], column


FEATURES = ["cards:x", "cards:n", "cards:s", "cards:tags", "merchants:risk"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("full_feature_names", [False, True])
def test_same_rows_and_values_as_feasts_duckdb_store(stores: dict[str, FeatureStore], seed: int,
                                                     full_feature_names: bool) -> None:
    entity_df = _entity_df(seed)
    frames = {name: fs.get_historical_features(entity_df=entity_df.copy(), features=FEATURES,
                                               full_feature_names=full_feature_names).to_df()
              for name, fs in stores.items()}
    _same(frames["asof"], frames["feast"])
    assert len(frames["asof"]) == len(entity_df)
    assert frames["asof"]["row"].tolist() == list(range(len(entity_df)))  # entity_df's order
    x = "cards__x" if full_feature_names else "x"
    assert frames["asof"][x].notna().any() and frames["asof"][x].isna().any()


@pytest.mark.parametrize("on_demand_rows", [100_000, 7])
def test_a_feature_service_with_an_on_demand_view(stores: dict[str, FeatureStore], on_demand_rows: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The on-demand view over the joined columns, computed on the whole result or on slices
    of 7 rows (``on_demand_rows``), gives Feast's values."""
    monkeypatch.setattr(stores["asof"].config.offline_store, "on_demand_rows", on_demand_rows)
    entity_df = _entity_df(7)
    frames = {name: fs.get_historical_features(entity_df=entity_df.copy(), features=fs.get_feature_service("everything"))
              .to_df() for name, fs in stores.items()}
    _same(frames["asof"], frames["feast"])
    assert frames["asof"]["x_risk"].notna().any()


def test_arrow_and_parquet_outputs_hold_the_same_rows(stores: dict[str, FeatureStore], tmp_path: Path) -> None:
    entity_df = _entity_df(8)
    job = stores["asof"].get_historical_features(entity_df=entity_df, features=FEATURES)
    frame = job.to_df()
    assert job.to_arrow().to_pandas().equals(frame)
    written = job.to_parquet(tmp_path / "training.parquet")
    _same(pq.read_table(written).to_pandas(), frame)


def test_an_sql_entity_query(stores: dict[str, FeatureStore], tmp_path: Path) -> None:
    """``entity_df`` as a DuckDB query gives what the same rows as a DataFrame give."""
    entity_df = _entity_df(9)
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pandas(entity_df.astype({"event_timestamp": "datetime64[us, UTC]"}), preserve_index=False), path)
    fs = stores["asof"]
    from_sql = fs.get_historical_features(entity_df=f"SELECT * FROM read_parquet('{path}')", features=FEATURES).to_df()
    from_frame = fs.get_historical_features(entity_df=entity_df, features=FEATURES).to_df()
    from_frame["event_timestamp"] = from_frame["event_timestamp"].astype(from_sql["event_timestamp"].dtype)
    _same(from_sql, from_frame)


def test_ttl_edges_and_rows_before_any_data(stores: dict[str, FeatureStore]) -> None:
    """A row exactly ``ttl`` old is served, one 1 µs older is not; before a card's first row, and
    for a card without rows, the features are null."""
    fs = stores["asof"]
    cards = pd.read_parquet(Path(fs.get_feature_view("cards").batch_source.path))
    first = cards.sort_values(["event_timestamp", "created"]).iloc[-1]  # the latest row of all
    card, at = first["card_id"], first["event_timestamp"]
    later = cards[(cards["card_id"] == card) & (cards["event_timestamp"] > at)]
    assert later.empty
    entity_df = pd.DataFrame({"card_id": [card, card, card, "c11"], "merchant_id": 0,
                              "event_timestamp": [at + TTL, at + TTL + US, T0 - US, at], "row": range(4)})
    out = fs.get_historical_features(entity_df=entity_df, features=["cards:s", "cards:n"]).to_df().sort_values("row")
    served = [pd.notna(n) or s is not None for n, s in zip(out["n"], out["s"])]
    expected_first = pd.notna(first["n"]) or first["s"] is not None
    assert served == [expected_first, False, False, False]


def test_duckdb_resources_come_from_the_store_settings(tmp_path: Path) -> None:
    """``memory_limit``, ``temp_directory``, ``threads`` and ``progress`` under ``offline_store:``
    are the settings of the DuckDB connection a retrieval runs on."""
    from featurelib.offline_store import ParquetOfflineStoreConfig, _connect

    settings = ParquetOfflineStoreConfig(memory_limit="300MB", temp_directory=str(tmp_path / "spill"), threads=1,
                                         progress=False)
    with _connect(settings) as con:
        got = con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
                          "current_setting('threads'), current_setting('enable_progress_bar'), "
                          "current_setting('TimeZone')").fetchone()
    assert got[0].replace(" ", "") in ("286.1MiB", "300.0MB") and got[1] == str(tmp_path / "spill")
    assert got[2:] == (1, False, "UTC")


def test_a_saved_dataset_is_written_by_duckdb(stores: dict[str, FeatureStore], tmp_path: Path) -> None:
    """``create_saved_dataset`` (``persist``) writes the joined rows to Parquet, streamed; an
    existing file is kept unless overwriting is allowed."""
    from feast.errors import SavedDatasetLocationAlreadyExists
    from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

    fs, entity_df = stores["asof"], _entity_df(11)
    job = fs.get_historical_features(entity_df=entity_df, features=FEATURES)
    target = tmp_path / "saved.parquet"
    fs.create_saved_dataset(from_=job, name="asof_saved", storage=SavedDatasetFileStorage(path=str(target)))
    _same(pq.read_table(target).to_pandas(), job.to_df())
    with pytest.raises(SavedDatasetLocationAlreadyExists):
        job.persist(SavedDatasetFileStorage(path=str(target)))
    job.persist(SavedDatasetFileStorage(path=str(target)), allow_overwrite=True)
