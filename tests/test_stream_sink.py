"""The processor's two ways of encoding a step's rows give the same write commands.

A step computed by the brute-force reference hands the writer the last row of each entity
as dicts (``StepResult.latest``), encoded by ``arrow_rows.row_commands``; a step computed by
the engine hands it Arrow rows, encoded by ``arrow_rows.write_commands``. On random steps,
every view, with and without rows past their TTL, both must give identical commands.
"""

from __future__ import annotations

import numpy as np
import pytest

from featurelib import arrow_rows, contract
from featurelib import semantics as s
from featurelib.stream.core import StreamCore, latest_rows
from featurelib.timeutil import DAY, MINUTE
from tests.conftest import Repo
from tests.events import random_clickstream, random_transactions


@pytest.fixture(scope="module")
def views(feature_repo: Repo) -> dict:
    return {v.name: v for v in feature_repo.store().list_feature_views() if v.name in s.VIEWS}


@pytest.mark.parametrize("seed", range(8))
def test_rows_as_dicts_encode_like_arrow_rows(seed: int, views: dict) -> None:
    rng = np.random.default_rng(seed)
    streams = {s.TRANSACTIONS: random_transactions(rng, 150), s.CLICKSTREAM: random_clickstream(rng, 150)}
    core = StreamCore(lateness_us=10 * MINUTE)
    compared = 0
    for start in range(0, 150, 5):
        result = core.step({k: (t.slice(start, 5), None) for k, t in streams.items()})
        for name, latest in result.latest.items():
            view = views[name]
            arrow = latest_rows(result.rows[name], view.join_keys[0])
            for now_us, grace in ((core.now_us, 3600.0), (core.now_us + 7 * DAY + int(rng.integers(0, DAY)), 0.0)):
                life = contract.life_ms(view.ttl.total_seconds(), grace)
                expected = [c for chunk in arrow_rows.write_commands(view, arrow, "features", now_us, life) for c in chunk]
                assert arrow_rows.row_commands(view, latest, "features", now_us, life) == expected, name
                compared += len(expected)
    assert compared > 20 and len(views) == 5
