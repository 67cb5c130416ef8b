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
from featurelib.pit import normalize, same
from featurelib.repo import UserError, quiet, redis_client
from featurelib.validation import online_values


@dataclass
class FeatureSkew:
    view: str
    feature: str
    compared: int
    mismatches: int
    missing: int
    extra: int
    largest: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return self.mismatches + self.missing + self.extra


@dataclass
class SkewReport:
    entities: dict[str, int]
    max_mismatch_rate: float
    features: list[FeatureSkew]

    def failed(self, f: FeatureSkew) -> bool:
        return f.compared > 0 and f.bad / f.compared > self.max_mismatch_rate

    @property
    def ok(self) -> bool:
        return not any(self.failed(f) for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entities": self.entities, "max_mismatch_rate": self.max_mismatch_rate,
                "features": [asdict(f) | {"mismatch_rate": f.bad / f.compared if f.compared else 0.0,
                                          "failed": self.failed(f)} for f in self.features]}

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
        bad = sum(self.failed(f) for f in self.features)
        if not bad:
            lines.append(f"  ✅ {len(self.features)} features identical online and offline for every sampled entity")
        lines.append(f"Result: {'OK' if self.ok else 'SKEW'} ({bad} of {len(self.features)} features over the threshold)")
        return "\n".join(lines)


def sample_online_entities(store: FeatureStore, view: FeatureView, limit: int | None, max_keys_per_second: float,
                           scan_count: int = 100) -> list[str]:
    """Entity ids of up to ``limit`` (None: all) hashes of ``view``, scanning gently: ``SCAN
    MATCH`` with ``COUNT scan_count``, paced so that the server examines at most
    ``max_keys_per_second`` keys a second (of any view or application) on our behalf."""
    cfg = store.config.online_store
    prefix = getattr(cfg, "key_prefix", None)
    if prefix is None:
        raise UserError(f"skew-audit samples the stream contract's keys; online store {cfg.type} does not use them")
    client = redis_client(store)
    ids: list[str] = []
    cursor, started, seen = 0, time.monotonic(), 0
    pattern = contract.scan_pattern(prefix, view.name)
    while True:
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=scan_count)
        seen += scan_count  # keys the server examined, matching or not
        for key in keys:
            if contract.is_key_of(key, prefix, view.name):
                ids.append(contract.parse_key(key).entity_ids[0])
                if limit is not None and len(ids) >= limit:
                    return ids
        if cursor == 0:
            return ids
        # Pace the scan: SCAN is cheap per call, but a production Redis has other clients.
        ahead = seen / max_keys_per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def audit_view(store: FeatureStore, view: FeatureView, ids: list[str], top: int = 3) -> list[FeatureSkew]:
    key = view.join_keys[0]
    online = online_values(store, view, ids)
    present = [(i, r) for i, r in zip(ids, online) if r["present"]]
    result = {f.name: FeatureSkew(view.name, f.name, len(present), 0, 0, 0) for f in view.features}
    if not present:
        return list(result.values())
    entity_df = pd.DataFrame({key: [i for i, _ in present], "i": range(len(present)),
                              "event_timestamp": pd.to_datetime([r["event_us"] for _, r in present], unit="us", utc=True)})
    with quiet():
        offline = store.get_historical_features(entity_df=entity_df, features=[f"{view.name}:{f.name}" for f in view.features]
                                                ).to_df().sort_values("i").reset_index(drop=True)
    diffs: dict[str, list[tuple[float, str]]] = {f.name: [] for f in view.features}
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
                    diffs[f.name].append((abs(float(on) - float(off)), f"{entity}: online {on!r}, offline {off!r}"))
    for name, d in diffs.items():
        result[name].largest = [text for _, text in sorted(d, reverse=True)[:top]]
    return list(result.values())


def skew_audit(store: FeatureStore, *, per_view: int | None = 200, max_keys_per_second: float = 10_000.0,
               max_mismatch_rate: float = 0.0, views: list[str] | None = None) -> SkewReport:
    """Audit ``per_view`` entities of every feature view (None: all of them)."""
    features, entities = [], {}
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if views and view.name not in views:
            continue
        ids = sample_online_entities(store, view, per_view, max_keys_per_second)
        entities[view.name] = len(ids)
        features += audit_view(store, view, ids)
    return SkewReport(entities, max_mismatch_rate, features)
