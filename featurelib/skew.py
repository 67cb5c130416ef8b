"""Online/offline skew at scale: the library behind ``feature_utils.py skew-audit``.

``validate-pit`` for many entities: for every feature view, sample entities from the
online store itself (a bounded ``SCAN`` of the view's hashes, paced to at most
``max_keys_per_second``, so it can run against a production Redis), read their online
values and event timestamps, read the offline point-in-time values as of those
timestamps in one ``get_historical_features`` call per view, and count per feature:

* **mismatch**: both sides have a value and they differ (floats bit for bit);
* **missing**: offline has a value, online has none;
* **extra**: online has a value, offline has none.

The largest numeric differences are listed with their entity.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from feast import FeatureStore, FeatureView

from featurelib import contract
from featurelib.feature_data import online_values
from featurelib.pit import normalize, same
from featurelib.repo import UserError, quiet, redis_client
from featurelib.report import Report


@dataclass
class FeatureSkew:
    view: str
    feature: str
    compared: int
    mismatches: int
    missing: int
    extra: int
    largest: list[str] = field(default_factory=list)
    diffs: list[tuple[float, str]] = field(default_factory=list, repr=False)  # (|online - offline|, text), largest first

    @property
    def bad(self) -> int:
        return self.mismatches + self.missing + self.extra


@dataclass
class SkewReport(Report):
    entities: dict[str, int]
    max_mismatch_rate: float
    features: list[FeatureSkew]

    def failed(self, f: FeatureSkew) -> bool:
        return f.compared > 0 and f.bad / f.compared > self.max_mismatch_rate

    @property
    def empty_views(self) -> list[str]:
        """Views with no online entity to compare: nothing was audited, which is no pass."""
        compared = {f.view for f in self.features if f.compared}
        return [v for v in self.entities if v not in compared]

    @property
    def ok(self) -> bool:
        return not self.empty_views and not any(self.failed(f) for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entities": self.entities, "max_mismatch_rate": self.max_mismatch_rate,
                "empty_views": self.empty_views,
                "features": [{k: v for k, v in asdict(f).items() if k != "diffs"}
                             | {"mismatch_rate": f.bad / f.compared if f.compared else 0.0, "failed": self.failed(f)}
                             for f in self.features]}

    def render(self) -> str:
        sampled = ", ".join(f"{v} {n:,}" for v, n in self.entities.items())
        lines = [f"Skew audit: online values against offline values as of their event time ({sampled} entities)"]
        for f in self.features:
            if not f.bad:
                continue
            mark = "❌" if self.failed(f) else "⚠️ "
            lines.append(f"  {mark} {f.view}:{f.feature}: {f.bad / f.compared:.2%} differ "
                         f"({f.mismatches} mismatched, {f.missing} missing online, {f.extra} extra online, of {f.compared})")
            lines += [f"         {x}" for x in f.largest]
        lines += [f"  ❌ {v}: no online entity to compare" for v in self.empty_views]
        bad = sum(self.failed(f) for f in self.features)
        if not bad:
            lines.append(f"  ✅ {len(self.features)} features identical online and offline for every sampled entity")
        lines.append(f"Result: {'OK' if self.ok else 'SKEW'} ({bad} of {len(self.features)} features over the threshold)")
        return "\n".join(lines)


class Pace:
    """Spend at most ``rate`` units (keys examined or read) a second, on average since the start."""

    def __init__(self, rate: float) -> None:
        self.rate, self.started, self.used = rate, time.monotonic(), 0

    def spend(self, units: int) -> None:
        self.used += units
        ahead = self.used / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


def _scan_clients(client) -> list:
    """One client per node that holds keys: the client itself, or every primary of a cluster."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def sample_online_entities(store: FeatureStore, view: FeatureView, limit: int | None, max_keys_per_second: float,
                           scan_count: int = 100, pace: Pace | None = None) -> list[str]:
    """Entity ids of up to ``limit`` (None: all) hashes of ``view``, scanning gently: ``SCAN
    MATCH`` with ``COUNT scan_count`` on every primary, paced so that the server examines at
    most ``max_keys_per_second`` keys a second (of any view or application) on our behalf.
    Each id once, although ``SCAN`` may return a key twice."""
    cfg = store.config.online_store
    prefix = getattr(cfg, "key_prefix", None)
    if prefix is None:
        raise UserError(f"skew-audit samples the stream contract's keys; online store {cfg.type} does not use them")
    pace = pace or Pace(max_keys_per_second)
    ids: dict[str, None] = {}
    pattern = contract.scan_pattern(prefix, view.name)
    for client in _scan_clients(redis_client(store)):
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor=cursor, match=pattern, count=scan_count)
            for key in keys:
                if contract.is_key_of(key, prefix, view.name):
                    ids[contract.parse_key(key).entity_ids[0]] = None
                    if limit is not None and len(ids) >= limit:
                        return list(ids)
            if cursor == 0:
                break
            pace.spend(scan_count)  # keys the server examined, matching or not
    return list(ids)


def audit_view(store: FeatureStore, view: FeatureView, ids: list[str], top: int = 3,
               into: dict[str, FeatureSkew] | None = None) -> list[FeatureSkew]:
    """Compare the online values of ``ids`` with their offline values as of each online event
    time; counts are added to ``into`` (per feature) when given, so chunks accumulate."""
    key = view.join_keys[0]
    online = online_values(store, view, ids)
    present = [(i, r) for i, r in zip(ids, online) if r["present"]]
    result = into if into is not None else {f.name: FeatureSkew(view.name, f.name, 0, 0, 0, 0) for f in view.features}
    for f in view.features:
        result[f.name].compared += len(present)
    if not present:
        return list(result.values())
    entity_df = pd.DataFrame({key: [i for i, _ in present], "i": range(len(present)),
                              "event_timestamp": pd.to_datetime([r["event_us"] for _, r in present], unit="us", utc=True)})
    with quiet():
        offline = store.get_historical_features(entity_df=entity_df, features=[f"{view.name}:{f.name}" for f in view.features]
                                                ).to_df().sort_values("i").reset_index(drop=True)
    for row, (entity, r) in enumerate(present):
        for f in view.features:
            on, off = normalize(r["values"].get(f.name)), normalize(offline.loc[row, f.name])
            if same(on, off):
                continue
            s = result[f.name]
            if on is None:
                s.missing += 1
            elif off is None:
                s.extra += 1
            else:
                s.mismatches += 1
                if isinstance(on, (int, float)) and isinstance(off, (int, float)) and not isinstance(on, bool):
                    s.diffs.append((abs(float(on) - float(off)), f"{entity}: online {on!r}, offline {off!r}"))
    for s in result.values():
        s.diffs = sorted(s.diffs, reverse=True)[:top]
        s.largest = [text for _, text in s.diffs]
    return list(result.values())


def skew_audit(store: FeatureStore, *, per_view: int | None = 200, max_keys_per_second: float = 10_000.0,
               max_mismatch_rate: float = 0.0, views: list[str] | None = None, chunk: int = 1000) -> SkewReport:
    """Audit ``per_view`` entities of every feature view (None: all of them), ``chunk`` at a
    time: online reads count against the same ``max_keys_per_second`` budget as the SCAN."""
    features, entities = [], {}
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if views and view.name not in views:
            continue
        pace = Pace(max_keys_per_second)
        ids = sample_online_entities(store, view, per_view, max_keys_per_second, pace=pace)
        entities[view.name] = len(ids)
        acc = {f.name: FeatureSkew(view.name, f.name, 0, 0, 0, 0) for f in view.features}
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            pace.spend(len(part))
            audit_view(store, view, part, into=acc)
        features += acc.values()
    return SkewReport(entities, max_mismatch_rate, features)
