"""A small Feast repository for online-store tests: one entity, two views, every value type."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String

TTL = timedelta(hours=1)

YAML = """project: {project}
registry: {registry}
provider: local
online_store:
  type: {store_type}
{online_extra}
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


def definitions(data_dir: Path) -> tuple[Entity, FeatureView, FeatureView]:
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A test item.")
    source = FileSource(path=str(data_dir / "items.parquet"), timestamp_field="event_timestamp")
    items = FeatureView(
        name="items", entities=[item], ttl=TTL, online=True, source=source,
        schema=[Field(name="n", dtype=Int64), Field(name="x", dtype=Float64), Field(name="ok", dtype=Bool),
                Field(name="label", dtype=String), Field(name="tags", dtype=Array(String))],
    )
    others = FeatureView(name="others", entities=[item], ttl=TTL, online=True, source=source,
                         schema=[Field(name="n", dtype=Int64)])
    return item, items, others


def toy_store(path: Path, connection_string: str, *, redis_type: str = "redis", key_prefix: str = "features",
              store_type: str = "featurelib.online_store.RedisHashOnlineStore", extra: str = "",
              project: str = "toy", versioning: bool = False) -> FeatureStore:
    """Write the configuration, apply the definitions, return the store."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    online = [f"  connection_string: \"{connection_string}\""]
    if store_type.endswith("RedisHashOnlineStore"):
        online.append(f"  key_prefix: {key_prefix}")
    if redis_type != "redis":
        online.append(f"  redis_type: {redis_type}")
    if extra:
        online.append(extra)
    (path / "feature_store.yaml").write_text(YAML.format(project=project, registry=_registry(path / "data" / "registry.db", versioning),
                                                         store_type=store_type, online_extra="\n".join(online)))
    item, items, others = definitions(path / "data")
    rows(["a"], [now()]).to_parquet(path / "data" / "items.parquet")
    store = FeatureStore(repo_path=str(path))
    store.apply([item, items, others])
    return store


def _registry(path: Path, versioning: bool) -> str:
    return f"{{path: {path}, enable_online_feature_view_versioning: true}}" if versioning else str(path)


def now() -> datetime:
    return datetime.now(timezone.utc)


def rows(ids: list[str], times: list[datetime], n: list[int | None] | None = None, **columns) -> pd.DataFrame:
    size = len(ids)
    df = pd.DataFrame({
        "item_id": ids,
        "event_timestamp": pd.to_datetime(times, utc=True),
        "n": pd.array(n if n is not None else list(range(size)), dtype="Int64"),
        "x": columns.get("x", [0.1 * i for i in range(size)]),
        "ok": columns.get("ok", [i % 2 == 0 for i in range(size)]),
        "label": columns.get("label", [f"label {i}: +%" for i in range(size)]),
        "tags": columns.get("tags", [["a", "b"] for _ in range(size)]),
    })
    return df


def read(store: FeatureStore, ids: list[str], features: list[str] | None = None):
    features = features or ["items:n", "items:x", "items:ok", "items:label", "items:tags"]
    return store.get_online_features(features=features, entity_rows=[{"item_id": i} for i in ids])


def two_writer_race(store: FeatureStore, seeds: tuple[int, int], keys: int = 40,
                    writes: int = 3000) -> tuple[dict[str, int], dict[str, int]]:
    """Two threads write ``writes`` rows each to ``keys`` keys of ``items``, 25 per
    ``write_to_online_store``, with random event times (writer ``i`` draws from
    ``random.Random(seeds[i])``; ``n`` is the row's offset in µs). Returns (what each key
    holds afterwards, the newest offset written to it): a store without lost updates ends
    with the two equal."""
    import random
    import threading

    names = [f"r{i}" for i in range(keys)]
    base = now() - timedelta(minutes=30)
    plans = []
    for seed in seeds:
        rng = random.Random(seed)
        plans.append([(rng.choice(names), rng.randrange(0, 20 * 60 * 1_000_000)) for _ in range(writes)])
    newest: dict[str, int] = {}
    for plan in plans:
        for key, offset in plan:
            newest[key] = max(newest.get(key, -1), offset)

    def writer(plan: list) -> None:
        fs = FeatureStore(repo_path=store.repo_path)
        for start in range(0, len(plan), 25):
            chunk = plan[start:start + 25]
            fs.write_to_online_store("items", rows([k for k, _ in chunk], [base + timedelta(microseconds=o) for _, o in chunk],
                                                   n=[o for _, o in chunk]))

    threads = [threading.Thread(target=writer, args=(plan,)) for plan in plans]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out = read(store, names, ["items:n"]).to_dict()
    return dict(zip(out["item_id"], out["n"])), newest
