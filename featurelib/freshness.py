"""How old each feature view's data is, against the freshness it declares: ``feature_utils.py freshness``.

A view declares ``freshness_max_age`` in its tags (``10m`` for the stream-fed views, ``1d``
for the batch one). Two ages are compared with it:

* **offline**: now minus the newest raw event the view's Parquet file was computed from
  (the batch job records it in the file's metadata). The file also holds future rows (window
  exits), so its newest row says nothing about how fresh it is;
* **online**: now minus the newest online row among the entities most recently active
  offline. When materialization or the stream processor stops, this grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView

from featurelib import tags
from featurelib.feature_data import offline_path, online_values, recent_entities
from featurelib.report import Report
from featurelib.timeutil import SECOND, format_age, format_us, now_us, parse_duration

MAX_EVENT_KEY = tags.MAX_EVENT_US.encode()


def max_event_us(store: FeatureStore, view: FeatureView) -> int | None:
    path = offline_path(store, view)
    if not path.is_file():
        return None
    meta = pq.read_schema(path).metadata or {}
    return int(meta[MAX_EVENT_KEY]) if MAX_EVENT_KEY in meta else None


@dataclass
class ViewFreshness:
    view: str
    max_age_s: float
    offline_age_s: float | None
    online_age_s: float | None
    stale: list[str]


HINTS = {
    "offline": "offline: the feature Parquet is only as new as its last computation: run `python -m featurelib.batch` "
               "(a running stream processor lands new events for it)",
    "online": "online: rows are only as new as the last `feast materialize-incremental <now>`, unless a stream "
              "processor keeps them current (`python -m featurelib.stream run`, docs/STREAMING.md)",
}


@dataclass
class FreshnessReport(Report):
    at: str
    views: list[ViewFreshness]

    @property
    def ok(self) -> bool:
        return not any(v.stale for v in self.views)

    @property
    def hints(self) -> list[str]:
        """What brings each kind of stale data up to date, for the kinds found stale."""
        return [HINTS[kind] for kind in HINTS if any(kind in v.stale for v in self.views)]

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"hints": self.hints}

    def render(self) -> str:
        lines = [f"Freshness at {self.at} (age of the newest data against each view's freshness_max_age)"]
        for v in self.views:
            mark = "❌" if v.stale else "✅"
            lines.append(f"  {mark} {v.view:<22} max {format_age(v.max_age_s):>6}: offline {format_age(v.offline_age_s):>7}, "
                         f"online {format_age(v.online_age_s):>7}" + (f"  stale: {', '.join(v.stale)}" if v.stale else ""))
        lines.append(f"Result: {'OK' if self.ok else 'STALE'} ({sum(bool(v.stale) for v in self.views)} of {len(self.views)} views stale)")
        lines += [f"  hint: {hint}" for hint in self.hints]
        return "\n".join(lines)


def freshness(store: FeatureStore, at_us: int | None = None, sample: int = 50) -> FreshnessReport:
    at = at_us if at_us is not None else now_us()
    out = []
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        declared = view.tags.get(tags.FRESHNESS_MAX_AGE)
        if not declared:
            continue
        max_age = parse_duration(declared)
        newest_event = max_event_us(store, view)
        offline_age = (at - newest_event) / SECOND if newest_event is not None else None
        ids = recent_entities(store, view, sample, at) if offline_path(store, view).is_file() else []
        stamps = [r["event_us"] for r in online_values(store, view, ids) if r["present"]] if ids else []
        online_age = (at - max(stamps)) / SECOND if stamps else None
        stale = []
        if offline_age is None or offline_age * SECOND > max_age:
            stale.append("offline")
        if online_age is None or online_age * SECOND > max_age:
            stale.append("online")
        out.append(ViewFreshness(view.name, max_age / SECOND, offline_age, online_age, stale))
    return FreshnessReport(format_us(at), out)
