"""Online/offline consistency of one entity: the library behind ``feature_utils.py validate-pit``.

For every feature view keyed by the entity, read the online values and their event
timestamp ``T`` through the Feast SDK, read the offline point-in-time values as of
exactly ``T`` with ``get_historical_features``, and compare feature by feature. Values
must be identical: floats bit for bit, nulls equal to nulls, lists element by element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore, FeatureView

from featurelib import duck
from featurelib.feature_data import offline_path, online_values
from featurelib.repo import UserError, entity, quiet, require_redis, views_of
from featurelib.report import Report
from featurelib.timeutil import format_us, now_us


@dataclass
class FeatureCheck:
    feature: str
    online: Any
    offline: Any
    match: bool


@dataclass
class ViewCheck:
    view: str
    status: str  # match | mismatch | no online value
    online_event_time: str | None = None
    features: list[FeatureCheck] = field(default_factory=list)
    note: str = ""

    @property
    def mismatches(self) -> list[FeatureCheck]:
        return [f for f in self.features if not f.match]


@dataclass
class PitReport(Report):
    entity_type: str
    entity_id: str
    views: list[ViewCheck]

    @property
    def ok(self) -> bool:
        return all(v.status == "match" for v in self.views)

    def render(self) -> str:
        lines = [f"Point-in-time check of {self.entity_type} {self.entity_id}: online values against offline "
                 "values as of the online event time"]
        for v in self.views:
            mark = "✅" if v.status == "match" else "❌"
            head = f"  {mark} {v.view}: {v.status}"
            if v.online_event_time:
                head += f" at {v.online_event_time}"
            if v.status == "match":
                head += f" ({len(v.features)} features identical)"
            lines.append(head)
            for f in v.mismatches:
                lines.append(f"       {f.feature}: online {f.online!r} != offline {f.offline!r}")
            if v.note:
                lines.append(f"       {v.note}")
        bad = sum(v.status != "match" for v in self.views)
        lines.append(f"Result: {'OK' if self.ok else 'FAILED'} ({len(self.views) - bad} of {len(self.views)} views consistent)")
        return "\n".join(lines)


def normalize(value: Any) -> Any:
    """One representation per value across the SDK's dicts and pandas frames."""
    if value is None:
        return None
    if isinstance(value, (np.ndarray, list, tuple)):
        return [normalize(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def same(a: Any, b: Any) -> bool:
    """Exact equality after ``normalize``; floats compare bit for bit, ints equal to equal floats."""
    a, b = normalize(a), normalize(b)
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a is not None and b is not None and bool(a) == bool(b) and type(a) is type(b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and float(a).hex() == float(b).hex()
    return a == b


def offline_as_of(store: FeatureStore, view: FeatureView, entity_id: str, at_us: int, features: list[str]) -> dict[str, Any]:
    """Offline point-in-time values of ``features`` of ``view`` for one entity at ``at_us``."""
    key = view.join_keys[0]
    entity_df = pd.DataFrame({key: [entity_id],
                              "event_timestamp": pd.Series([pd.Timestamp(at_us * 1000, tz="UTC")]).astype("datetime64[us, UTC]")})
    with quiet():
        df = store.get_historical_features(entity_df=entity_df, features=[f"{view.name}:{f}" for f in features]).to_df()
    return {f: df[f].iloc[0] for f in features}


def has_offline_rows(store: FeatureStore, view: FeatureView, entity_id: str) -> bool:
    path = offline_path(store, view)
    if not path.is_file():
        return False
    key = view.join_keys[0]
    return bool(duck.one(f"SELECT count(*) FROM {duck.parquet(path)} WHERE {key} = ?", [entity_id])[0])


def latest_offline_us(store: FeatureStore, view: FeatureView, entity_id: str, at_us: int) -> int | None:
    path, key = offline_path(store, view), view.join_keys[0]
    row = duck.one(f"SELECT epoch_us(max(event_timestamp)) FROM {duck.parquet(path)} "
                   f"WHERE {key} = ? AND event_timestamp <= make_timestamptz(?::BIGINT)", [entity_id, at_us])
    return row[0] if row else None


def validate_pit(store: FeatureStore, entity_type: str, entity_id: str, features: list[str] | None = None) -> PitReport:
    """Compare online and offline values of every view of ``entity_type`` for ``entity_id``.

    ``features`` (names or ``view:name`` refs) restricts the comparison; an unknown one is
    a ``UserError``, as are an unknown entity type and an id with no rows anywhere.
    """
    ent = entity(store, entity_type)
    views = views_of(store, ent.name)
    wanted = _select(views, features)
    require_redis(store)
    now = now_us()
    checks = []
    for view in views:
        names = wanted.get(view.name, [])
        if not names:
            continue
        online = online_values(store, view, [entity_id])[0]
        if not online["present"]:
            checks.append(ViewCheck(view.name, "no online value"))
            continue
        at = online["event_us"]
        offline = offline_as_of(store, view, entity_id, at, names)
        compared = [FeatureCheck(n, normalize(online["values"][n]), normalize(offline[n]),
                                 same(online["values"][n], offline[n])) for n in names]
        check = ViewCheck(view.name, "match" if all(c.match for c in compared) else "mismatch", format_us(at), compared)
        latest = latest_offline_us(store, view, entity_id, now)
        if latest is not None and latest > at:
            check.note = (f"the offline store has a newer row ({format_us(latest)}); online values are "
                          f"{(latest - at) / 1e6:,.1f}s behind: run `feast materialize-incremental`")
        checks.append(check)
    if all(c.status == "no online value" for c in checks) and not any(has_offline_rows(store, v, entity_id) for v in views):
        raise UserError(f"unknown {ent.join_key} {entity_id!r}: no online or offline rows in any view of {ent.name}")
    return PitReport(ent.name, entity_id, checks)


def _select(views: list[FeatureView], features: list[str] | None) -> dict[str, list[str]]:
    everything = {v.name: [f.name for f in v.features] for v in views}
    if not features:
        return everything
    chosen: dict[str, list[str]] = {}
    for ref in features:
        view_name, _, name = ref.rpartition(":")
        hits = [v for v, names in everything.items() if name in names and (not view_name or v == view_name)]
        if not hits:
            known = ", ".join(sorted(everything))
            raise UserError(f"unknown feature {ref!r} for this entity (views: {known})")
        for v in hits:
            chosen.setdefault(v, []).append(name)
    return chosen
