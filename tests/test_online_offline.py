"""After ``feast materialize-incremental``, every entity's online values equal the offline
point-in-time values at the online event timestamp, and that timestamp is the entity's
latest offline row at or before the materialization time. All entities, every feature."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from featurelib.feature_data import offline_path, online_values
from featurelib.pit import same
from featurelib.repo import quiet
from tests.conftest import Repo

VIEWS = ["transaction_stats_5m", "card_profile_24h", "device_activity_24h", "user_engagement_5m", "session_activity"]


@pytest.mark.parametrize("view_name", VIEWS)
def test_every_entity_online_equals_offline(feature_repo: Repo, view_name: str) -> None:
    store = feature_repo.store()
    view = store.get_feature_view(view_name)
    key = view.join_keys[0]
    path = offline_path(store, view).as_posix()
    cutoff = pd.Timestamp(feature_repo.materialized_at)
    latest = duckdb.execute(
        f"SELECT {key}, epoch_us(max(event_timestamp)) FROM read_parquet('{path}') "
        f"WHERE event_timestamp <= ? GROUP BY {key} ORDER BY {key}", [cutoff]).fetchall()
    ids = [r[0] for r in latest]
    assert len(ids) > 20
    online = online_values(store, view, ids)
    assert all(o["present"] for o in online), "materialized entities must have online values"
    assert [o["event_us"] for o in online] == [r[1] for r in latest]

    entity_df = pd.DataFrame({key: ids, "event_timestamp": pd.to_datetime([o["event_us"] for o in online], unit="us", utc=True),
                              "i": range(len(ids))})
    with quiet():
        offline = store.get_historical_features(entity_df=entity_df, features=[f"{view.name}:{f.name}" for f in view.features]
                                                ).to_df().sort_values("i").reset_index(drop=True)
    mismatches = [(ids[i], f.name, online[i]["values"][f.name], offline.loc[i, f.name])
                  for i in range(len(ids)) for f in view.features
                  if not same(online[i]["values"][f.name], offline.loc[i, f.name])]
    assert not mismatches, mismatches[:10]
